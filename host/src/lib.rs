//! Switchboard: a real-time WebSocket channel server whose channel logic
//! runs in WebAssembly components.
//!
//! The host owns the sockets, the rooms and the fan-out; plugins (components
//! of the `switchboard:channel` world, see `wit/`) decide what happens. The
//! parts, from the socket inwards:
//!
//! - `server`: binds, loads plugins, accepts connections, shuts down;
//! - `http`: 404 / 426 / the HTTP API, and the WebSocket upgrade;
//! - `publish`: `POST /api/publish`, events from the backend;
//! - `static_files`: the public folder (the demo page);
//! - `routes`: route patterns with `:param` segments and the route table;
//! - `auth`: token (JWT) verification;
//! - `websocket`: one connection's task: frames in to the plugin, frames out
//!   from its bounded queue, batched; rate limit (`rate_limit`), keep-alive,
//!   slow clients;
//! - `peer`: a connection as everyone else sees it (queue, abort, metadata);
//!   `outbox`: its queue of outgoing frames, one cache line per fan-out;
//! - `channel`: a plugin's connections, rooms, users and key-value store;
//!   `presence`: who is in a room, Phoenix-style;
//! - `registry`: the loaded plugins and the route table leading to them;
//!   loading, replacing (hot reload) and unloading them;
//! - `watcher`: watches the plugins folder and hands changes to the registry;
//! - `runtime`: wasmtime: compiling, instantiating and calling plugins, and
//!   the host functions they call.
//!
//! The public API is what the binary and the tests need: [`Config`] and
//! [`Server`].

mod auth;
mod channel;
mod config;
mod http;
mod outbox;
mod peer;
mod presence;
mod publish;
mod rate_limit;
mod registry;
mod routes;
mod runtime;
mod server;
mod static_files;
mod watcher;
mod websocket;

pub use config::{Api, Auth, Config, ConfigError, KeepAlive, LimitOverrides, Limits, PluginSettings};
pub use registry::PluginError;
pub use routes::{RouteError, RoutePattern, RouteTable};
pub use runtime::LoadError;
pub use server::Server;
