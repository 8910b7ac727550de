//! Switchboard: a real-time WebSocket channel server whose channel logic
//! runs in WebAssembly components.
//!
//! The host owns the sockets, the rooms and the fan-out; plugins (components
//! of the `switchboard:channel` world, see `wit/`) decide what happens. The
//! parts, one layer per folder, each using only the layers below it:
//!
//! - `testing/`: the plugin test kit ([`testing`]): a plugin driven by fake
//!   clients, with the real runtime and channel logic but no sockets;
//! - `net/`: the listener, HTTP, one task per WebSocket connection, the
//!   public folder; the only layer that touches sockets;
//! - `api/`: the publish API for backends, token authentication;
//! - `loading/`: the registry of loaded plugins and their routes, hot
//!   reload (the folder watcher);
//! - `runtime/`: wasmtime: compiling, instantiating and calling plugins,
//!   and the host functions they call; the only layer that names wasmtime;
//! - `channel/`: what the host keeps for each plugin (connections, rooms,
//!   users, presence, the key-value store) and each connection's outbox;
//! - `cluster/`: the other nodes, through Redis pub/sub (with
//!   `[cluster] redis`): what a plugin publishes reaches them;
//! - `storage/`: what outlives the process (the key-value stores on disk,
//!   with `[store] path`).
//!
//! Beside them: `config` (every setting and limit, with its default),
//! `close` (every close code the host sends, with its meaning),
//! `deflate` (permessage-deflate: the offer a client makes, and each
//! message compressed once), `rate_limit` (the token bucket of connections and of plugin logs),
//! `random` (ids that must not repeat across restarts) and
//! `metrics/` (every Prometheus metric, and the per-plugin handles every
//! layer records through; `net/metrics.rs` serves them).
//!
//! The public API is what the binary and the tests need: [`Config`] and
//! [`Server`], and the test kit for plugin authors, [`testing`].

#![forbid(unsafe_code)]

mod api;
mod channel;
mod close;
mod cluster;
mod config;
mod deflate;
mod loading;
mod metrics;
mod net;
mod random;
mod rate_limit;
mod runtime;
mod storage;
pub mod testing;

pub use cluster::ClusterError;
pub use config::{
    Api, Auth, ClusterSettings, Compression, Config, ConfigError, KeepAlive, LimitOverrides, Limits, MetricsSettings,
    PluginSettings, StoreSettings,
};
pub use loading::registry::PluginError;
pub use loading::routes::{RouteError, RoutePattern, RouteTable};
pub use net::server::Server;
pub use runtime::LoadError;
pub use storage::StorageError;
