// A small Switchboard client: JSON messages over one WebSocket that comes
// back by itself (exponential backoff with jitter) when the connection drops.
//
//   const chat = new Channel("/chat/lobby?user=ann", { onMessage: (msg) => ... });
//   chat.send({ type: "message", user: "ann", content: "hi" });

export class Channel {
  /**
   * @param {string} path  the channel route, e.g. "/chat/lobby" (or a full ws:// URL)
   * @param {{onMessage?: Function, onOpen?: Function, onClose?: Function,
   *          minDelay?: number, maxDelay?: number}} options
   */
  constructor(path, options = {}) {
    this.url = path.startsWith("ws") ? path : `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.options = { minDelay: 250, maxDelay: 10000, ...options };
    this.delay = this.options.minDelay;
    this.queue = []; // sent while disconnected: delivered on (re)connect
    this.closed = false;
    this.connect();
  }

  connect() {
    const socket = new WebSocket(this.url);
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
