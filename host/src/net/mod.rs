//! The network edge: the listener, HTTP, the WebSocket connections and the
//! public folder. The only layer that touches sockets.
//!
//! - `server`: binds, accepts, shuts down (every connection, upgrading or
//!   not, holds a shutdown signal);
//! - `http`: 404 / 426 / the HTTP API, admission, the WebSocket upgrade;
//! - `websocket`: one connection's task: frames in to the plugin, frames
//!   out from its bounded outbox, batched; keep-alive and slow clients;
//! - `static_files`: the public folder (the demo page);
//! - `metrics`: `GET /metrics` on an address of its own.

pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod server;
pub(crate) mod static_files;
pub(crate) mod websocket;
