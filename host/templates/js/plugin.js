// `/{{name}}`: sends every message back to its sender. Edit `onMessage`.
//
// A Switchboard plugin in JavaScript: the exports of the WIT world
// `channel`, in camelCase. Connection ids are BigInts; a payload is
// `{ tag: "text", val: string }` or `{ tag: "binary", val: Uint8Array }`;
// a host call that fails throws. `npm run build -- OUT.wasm` (or
// `switchboard dev`) makes the component.

import { send } from "switchboard:channel/host@0.2.0";

export function describe() {
  return { name: "{{name}}", version: "0.1.0", routes: ["/{{name}}"] };
}

export function onConnect(request) {
  // Return to accept; throw `{ code: 4001, reason: "no" }` (a plain object) to refuse.
}

export function onMessage(connection, message) {
  try {
    send(connection, message);
  } catch {} // the connection is gone or too slow: nothing to do
}

export function onClose(info) {}
export function onPresence(room, joins, leaves) {}
export function onPublish(topic, payload) {}
export function onTimer(name) {}
export function snapshot() {
  return new Uint8Array();
}
export function restore(state) {}
