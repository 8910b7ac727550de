// A small Switchboard client: JSON messages over one WebSocket that comes
// back by itself (exponential backoff with jitter) when the connection drops.
//
//   const chat = new Channel("/chat/lobby?user=ann", { onMessage: (msg) => ... });
//   chat.send({ type: "message", user: "ann", content: "hi" });
//
// In rooms with history (the plugin's `history_size`), messages arrive
// numbered (`publication` frames): the client remembers the latest position
// per room and, when it comes back, asks for what it missed (`?recover=`).
// `onMessage` gets the message itself, missed ones first; `onRecovered(room,
// recovered)` says whether the gap was filled (false: ask for a snapshot).

/** Rooms whose positions are remembered (the server takes at most 100). */
const MAX_POSITIONS = 32;

export class Channel {
  /**
   * @param {string} path  the channel route, e.g. "/chat/lobby" (or a full ws:// URL)
   * @param {{onMessage?: Function, onOpen?: Function, onClose?: Function,
   *          onRecovered?: Function, minDelay?: number, maxDelay?: number}} options
   */
  constructor(path, options = {}) {
    this.url = path.startsWith("ws") ? path : `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.options = { minDelay: 250, maxDelay: 10000, ...options };
    this.delay = this.options.minDelay;
    this.queue = []; // sent while disconnected: delivered on (re)connect
    this.positions = new Map(); // room → {epoch, offset}, most recently used last
    this.closed = false;
    this.connect();
  }

  connect() {
    const socket = new WebSocket(this.recoveringUrl());
    this.socket = socket;
    socket.onopen = () => {
      this.delay = this.options.minDelay;
      for (const message of this.queue.splice(0)) socket.send(message);
      this.options.onOpen?.();
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        message = { type: "text", data: event.data };
      }
      switch (message?.type) {
        case "publication":
          this.remember(message);
          message = "data" in message ? message.data : { type: "text", data: message.text };
          break;
        case "position":
          return this.remember(message);
        case "recovered":
          this.remember(message);
          return this.options.onRecovered?.(message.room, message.recovered);
      }
      this.options.onMessage?.(message);
    };
    socket.onclose = (event) => {
      this.options.onClose?.(event);
      if (this.closed || event.code === 1008) return; // refused: retrying would not help
      const wait = this.delay * (0.5 + Math.random());
      this.delay = Math.min(this.delay * 2, this.options.maxDelay);
      setTimeout(() => this.connect(), wait);
    };
  }

  /** Note where a room's stream stands. */
  remember({ room, epoch, offset }) {
    this.positions.delete(room);
    this.positions.set(room, { epoch, offset });
    if (this.positions.size > MAX_POSITIONS) this.positions.delete(this.positions.keys().next().value);
  }

  /** The URL, with the positions to recover from once there are some. */
  recoveringUrl() {
    if (this.positions.size === 0) return this.url;
    const recover = encodeURIComponent(JSON.stringify(Object.fromEntries(this.positions)));
    return `${this.url}${this.url.includes("?") ? "&" : "?"}recover=${recover}`;
  }

  /** Send a JSON message (queued while the connection is down). */
  send(message) {
    const text = JSON.stringify(message);
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
    else this.queue.push(text);
  }

  /** Close for good: no reconnect. */
  close() {
    this.closed = true;
    this.socket.close(1000);
  }
}
