// `/echo-js`: sends every message, text or binary, back to its sender
// unchanged, and answers the text `ping` with `pong` as well. The `echo`
// example plugin, written in JavaScript.
//
// A plugin is a WebAssembly component of the WIT world `channel`
// (../../wit/channel.wit); `npm run build` turns this module into one with
// componentize-js. WIT names become camelCase: the world's exports are this
// module's exports, the host's calls are imported below. Connection ids
// (u64) are BigInts, a payload is `{ tag: "text", val: string }` or
// `{ tag: "binary", val: Uint8Array }`, and a host call that fails throws.

// The one place that names the WIT package's version: it must be the one in
// ../../wit/channel.wit (`package switchboard:channel@...`).
import { send } from "switchboard:channel/host@0.2.0";

export function describe() {
  return { name: "echo-js", version: "0.1.0", routes: ["/echo-js"] };
}

export function onConnect(request) {
  // Returning accepts the connection; to refuse it, throw a rejection
  // (a plain object, not an Error), e.g. `throw { code: 4001, reason: "no" }`.
}

export function onMessage(connection, message) {
  reply(connection, message);
  if (message.tag === "text" && message.val === "ping") {
    reply(connection, { tag: "text", val: "pong" });
  }
}

// Queue a message, ignoring a refusal: the host refuses only a connection
// that is gone or too slow (and disconnects it), or an oversized message.
function reply(connection, message) {
  try {
    send(connection, message);
  } catch {}
}

// The other callbacks: nothing to do, and no state to carry over a reload.
export function onClose(info) {}
export function onPresence(room, joins, leaves) {}
export function onPublish(topic, payload) {}
export function onTimer(name) {}
export function snapshot() {
  return new Uint8Array();
}
export function restore(state) {}
