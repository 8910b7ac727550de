// The benchmark's uWebSockets peer: the baseline's chat and echo
// (bench/src/bin/baseline.rs) on uWebSockets.js, as a uWS user would write
// them: the room is a uWS topic, a chat message is published to it once
// (`app.publish`, which, like the baseline, reaches the sender too).
//
// `node server.js [ADDR]` prints `listening on http://ADDR` (the real port)
// like the baseline. The package is `@rjweb/uws`, a build of uWebSockets.js
// published on npm: `npm ci --prefix bench/uws`.
'use strict';

const uWS = require('@rjweb/uws');

// As in the chat plugin and the baseline: larger rooms tell only a newcomer their size.
const LOUD_ROOM_LIMIT = 1000;

const address = process.argv[2] || '127.0.0.1:0';
const colon = address.lastIndexOf(':');
const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
const port = Number(address.slice(colon + 1));

// Room name → members, counted here as the baseline counts its map.
const members = new Map();
const app = uWS.App();
const text = new TextDecoder('utf-8', { fatal: true });

// The baseline's JSON (serde_json without `preserve_order`): keys sorted.
const users = (room, count) => JSON.stringify({ count, room, type: 'users' });

// Tell the room its size, or only `newcomer` once the room is large.
function announceUserCount(room, newcomer) {
  const count = members.get(room) || 0;
  if (count <= LOUD_ROOM_LIMIT) {
    app.publish(room, users(room, count));
  } else if (newcomer) {
    newcomer.send(users(room, count));
  }
}

function chat(ws, room, message) {
  let value;
  try {
    value = JSON.parse(text.decode(message));
  } catch (error) {
    // Not UTF-8: ignored, as the baseline does; not JSON: an error.
    if (error instanceof SyntaxError) {
      ws.send('{"type":"error","message":"Invalid JSON"}');
    }
    return;
  }
  const object = value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
  switch (typeof object.type === 'string' ? object.type : undefined) {
    case 'message': {
      // As the chat plugin stamps it: RFC 3339, milliseconds, UTC.
      const reply = {
        content: object.content ?? null,
        timestamp: new Date().toISOString(),
        type: 'message',
        user: object.user ?? null,
      };
      app.publish(room, JSON.stringify(reply));
      break;
    }
    case 'ping':
      ws.send('{"type":"pong"}');
      break;
    default:
      ws.send('{"type":"error","message":"Unknown message type"}');
  }
}

// Every path, as the baseline: `/chat/ROOM` is a chat room, anything else an echo.
app.ws('/*', {
  compression: uWS.DISABLED,
  // The baseline's (tungstenite's) limit on a message.
  maxPayloadLength: 64 * 1024 * 1024,
  // The baseline drops frames past 1024 queued for a connection (about
  // 110 KiB of the bench's chat messages); uWS skips a connection past this
  // many bytes. Above what any run sends a subscriber (at most 1000 messages),
  // so that neither drops anything: the bench checks every message.
  maxBackpressure: 1024 * 1024,
  closeOnBackpressureLimit: false,
  // The baseline has no idle timeout and sends no pings.
  idleTimeout: 0,
  sendPingsAutomatically: false,
  upgrade: (res, req, context) => {
    const path = req.getUrl();
    const room = path.startsWith('/chat/') ? path.slice('/chat/'.length) : null;
    res.upgrade(
      { room },
      req.getHeader('sec-websocket-key'),
      '',
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    const { room } = ws.getUserData();
    if (room === null) return;
    ws.subscribe(room);
    members.set(room, (members.get(room) || 0) + 1);
    ws.send(JSON.stringify({ room, type: 'connected' }));
    announceUserCount(room, ws);
  },
  message: (ws, message, isBinary) => {
    const { room } = ws.getUserData();
    if (room === null) {
      ws.send(message, isBinary);
    } else {
      chat(ws, room, message);
    }
  },
  close: (ws) => {
    const { room } = ws.getUserData();
    if (room === null) return;
    const count = members.get(room) - 1;
    if (count === 0) members.delete(room);
    else members.set(room, count);
    announceUserCount(room, null);
  },
});

app.listen(host, port, (listenSocket) => {
  if (!listenSocket) {
    process.stderr.write(`cannot listen on ${address}\n`);
    process.exit(1);
  }
  const shown = host.includes(':') ? `[${host}]` : host;
  // A pipe's writes are synchronous on Linux: the line is out when this returns.
  process.stdout.write(`listening on http://${shown}:${uWS.getSocketPort(listenSocket)}\n`);
});
