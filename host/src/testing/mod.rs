//! The plugin test kit: a plugin loaded with the real runtime and the real
//! channel logic, driven by fake clients instead of sockets.
//!
//! ```ignore
//! use switchboard::testing::{TestChannel, build_plugin};
//!
//! #[tokio::test]
//! async fn ping_gets_pong() {
//!     let chat = TestChannel::load(build_plugin(env!("CARGO_MANIFEST_DIR")).unwrap()).await.unwrap();
//!     let client = chat.connect("/chat/lobby?user=ann").await.unwrap();
//!     assert_eq!(chat.connections(), 1);
//!     client.send_json(&serde_json::json!({"type": "ping"})).await;
//!     assert_eq!(client.json_frames().last().unwrap()["type"], "pong");
//!     client.close().await;
//!     assert_eq!(chat.connections(), 0);
//! }
//! ```
//!
//! Each step (connect, send, publish, advance the clock, close) runs the
//! plugin's callbacks to the end before it returns, then hands every
//! client what was queued for it, and runs `on-close` for the connections
//! the plugin (or the host) closed, as the server does after the closing
//! handshake. Time is the kit's own: timers fire only when a test calls
//! [`TestChannel::advance`]. A step costs microseconds; what is not here is
//! the network: no sockets, no keep-alive, no rate limits, no tokens (the
//! claims a verified token would carry are given as they are).
//!
//! - `client.rs`: [`TestClient`], one fake connection, and what it received;
//! - `build.rs`: [`build_plugin`], the plugin crate built for `wasm32-wasip2`.

mod build;
mod client;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};
use tokio_tungstenite::tungstenite::Message;

pub use build::build_plugin;
pub use client::{Closed, Frame, TestClient};

use crate::channel::Channel;
use crate::channel::peer::{ConnId, Peer};
use crate::channel::timers::Clock;
use crate::close::Close;
use crate::config::Limits;
use crate::loading::routes::{RoutePattern, RouteTable};
use crate::runtime::{Compiled, ConnectRequest, LoadError, PluginHandle, Runtime, Tier};
use client::ClientState;

/// Why the kit could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The plugin file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a plugin the host can load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The plugin failed to start, to reload, or to handle a backend event.
    #[error("{0}")]
    Plugin(String),
    /// The plugin crate did not build.
    #[error("cannot build the plugin: {0}")]
    Build(String),
}

/// Why a fake client could not connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// No route of the plugin matches the path (the server would answer 404).
    #[error("no route of the plugin matches {0}")]
    NoRoute(String),
    /// The plugin refused the connection (or trapped: 1011): the close
    /// frame the client would get.
    #[error("refused with {code}: {reason}")]
    Rejected {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// A connection request beyond a path: headers, token claims, address.
#[derive(Debug, Clone)]
pub struct Request {
    path_and_query: String,
    headers: Vec<(String, String)>,
    claims: Option<serde_json::Value>,
    remote_addr: String,
}

impl Request {
    /// A request for `path_and_query`, e.g. `/chat/lobby?user=ann`.
    pub fn new(path_and_query: &str) -> Request {
        Request {
            path_and_query: path_and_query.to_owned(),
            headers: Vec::new(),
            claims: None,
            remote_addr: "127.0.0.1:50000".to_owned(),
        }
    }

    /// Add a header (its name is lower-cased, as the server hands it over).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The claims of the token the server would have verified.
    pub fn claims(mut self, claims: serde_json::Value) -> Request {
        self.claims = Some(claims);
        self
    }

    /// The client's address, `ip:port`.
    pub fn remote_addr(mut self, addr: &str) -> Request {
        addr.clone_into(&mut self.remote_addr);
        self
    }
}

/// A plugin under test. See the module documentation.
#[derive(Debug)]
pub struct TestChannel {
    inner: Arc<Inner>,
}

struct Inner {
    /// Compiles the plugin and its new versions.
    runtime: Runtime,
    handle: PluginHandle,
    channel: Arc<Channel>,
    /// The routes of the running version.
    routes: Mutex<RouteTable<()>>,
    /// The open fake connections.
    clients: Mutex<HashMap<ConnId, Arc<ClientState>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("plugin", &self.channel.name).finish_non_exhaustive()
    }
}

impl TestChannel {
    /// Load the plugin at `path` (a `.wasm` component) with default limits.
    pub async fn load(path: impl AsRef<Path>) -> Result<TestChannel, KitError> {
        TestChannel::load_with(path, Limits::default()).await
    }

    /// Load the plugin at `path` with `limits`.
    pub async fn load_with(path: impl AsRef<Path>, limits: Limits) -> Result<TestChannel, KitError> {
        let runtime = Runtime::new(None).map_err(|error| KitError::Plugin(format!("{error:#}")))?;
        let compiled = compile(&runtime, path.as_ref(), &limits).await?;
        let channel = Arc::new(Channel::new(&compiled.info.name, limits, None).with_clock(Clock::manual()));
        let routes = route_table(&compiled)?;
        let handle = PluginHandle::start(compiled, Arc::clone(&channel)).await.map_err(KitError::Plugin)?;
        let inner = Inner {
            runtime,
            handle,
            channel,
            routes: Mutex::new(routes),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        };
        Ok(TestChannel { inner: Arc::new(inner) })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.inner.channel.name
    }

    /// Connect a fake client to `path_and_query`, e.g. `/chat/lobby?user=ann`.
    pub async fn connect(&self, path_and_query: &str) -> Result<TestClient, ConnectError> {
        self.connect_with(Request::new(path_and_query)).await
    }

    /// Connect a fake client with headers or token claims.
    pub async fn connect_with(&self, request: Request) -> Result<TestClient, ConnectError> {
        let (path, query) = request.path_and_query.split_once('?').unwrap_or((&request.path_and_query, ""));
        let (route, params) = {
            let routes = self.inner.routes.lock();
            let found = routes.find(path).ok_or_else(|| ConnectError::NoRoute(path.to_owned()))?;
            (found.pattern.as_str().to_owned(), found.params)
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let limits = &self.inner.channel.limits;
        let peer = Arc::new(Peer::new(id, &route, &self.inner.channel, limits.send_queue, limits.send_queue_bytes));
        let state = Arc::new(ClientState::new(Arc::clone(&peer)));
        self.inner.clients.lock().insert(id, Arc::clone(&state));
        let connect = ConnectRequest {
            route,
            path: path.to_owned(),
            params,
            query: form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
            headers: request.headers,
            remote_addr: request.remote_addr,
            claims: request.claims.map(|claims| claims.to_string()),
        };
        let answer = self.inner.handle.connect(peer, connect).await;
        if let Err(rejection) = answer {
            self.inner.clients.lock().remove(&id);
            return Err(ConnectError::Rejected { code: rejection.code, reason: rejection.reason });
        }
        self.inner.settle().await;
        Ok(TestClient::new(Arc::clone(&self.inner), state))
    }

    /// Publish a backend event, as `POST /api/publish` does; returns how
    /// many messages the plugin queued while handling it.
    pub async fn publish(&self, topic: &str, payload: &serde_json::Value) -> Result<u64, KitError> {
        let delivered = self.inner.handle.publish(topic.to_owned(), payload.to_string()).await;
        self.inner.settle().await;
        delivered.map_err(KitError::Plugin)
    }

    /// Move the kit's clock on by `by`, firing every timer that falls due
    /// on the way, each at its own time; returns how many fired.
    pub async fn advance(&self, by: Duration) -> usize {
        let clock = &self.inner.channel.clock;
        let until = clock.now() + by;
        let mut fired = 0;
        while let Some(due) = self.inner.channel.next_timer().filter(|due| *due <= until) {
            clock.set(due);
            fired += self.inner.handle.fire_timers(due).await;
            self.inner.settle().await;
        }
        clock.set(until);
        fired
    }

    /// Hot-reload to the plugin at `path`, as the server does when the file
    /// changes: the old version's snapshot goes to the new one's restore;
    /// connections, rooms, the store and timers stay, but connections on a
    /// route the new version dropped are closed with 1001.
    pub async fn reload(&self, path: impl AsRef<Path>) -> Result<(), KitError> {
        let compiled = compile(&self.inner.runtime, path.as_ref(), &self.inner.channel.limits).await?;
        let routes = route_table(&compiled)?;
        let served = compiled.info.routes.clone();
        self.inner.handle.reload(compiled).await.map_err(KitError::Plugin)?;
        *self.inner.routes.lock() = routes;
        for peer in self.inner.channel.peers() {
            if !served.iter().any(|route| **route == *peer.route) {
                peer.close(Close::RouteRemoved);
            }
        }
        self.inner.settle().await;
        Ok(())
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.inner.channel.stats().connections
    }

    /// The connections in `room`, in ascending order.
    pub fn room_members(&self, room: &str) -> Vec<u64> {
        let mut members = self.inner.channel.room_members(room);
        members.sort_unstable();
        members
    }

    /// Who is in a tracked room, with their connection counts, by user.
    pub fn presence(&self, room: &str) -> Vec<(String, u32)> {
        let mut users = self.inner.channel.presence(room);
        users.sort();
        users
    }

    /// The value under `key` in the plugin's store.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.channel.stored(key)
    }

    /// The timers the plugin has set.
    pub fn timers(&self) -> usize {
        self.inner.channel.stats().timers
    }
}

impl Inner {
    /// Hand each client what was queued for it, and close the connections
    /// that were closed, until no `on-close` sends anything more.
    async fn settle(&self) {
        loop {
            let clients: Vec<Arc<ClientState>> = self.clients.lock().values().cloned().collect();
            let ended: Vec<(ConnId, Closed)> =
                clients.iter().filter_map(|client| Some((client.peer.id, client.collect()?))).collect();
            if ended.is_empty() {
                return;
            }
            for (id, closed) in ended {
                self.clients.lock().remove(&id);
                self.handle.closed(id, closed.code, closed.reason).await;
            }
        }
    }

    /// A client's message, as its connection task hands it to the plugin.
    async fn message(&self, client: &ClientState, message: Message) {
        if client.closed().is_some() {
            return;
        }
        if message.len() > self.channel.limits.max_message_size {
            client.peer.close(Close::MessageTooBig);
        } else {
            self.handle.message(client.peer.id, message).await;
        }
        self.settle().await;
    }

    /// The client closed its connection.
    async fn close(&self, client: &ClientState, code: u16, reason: &str) {
        if self.clients.lock().remove(&client.peer.id).is_none() {
            return;
        }
        client.end(Closed { code, reason: reason.to_owned() });
        self.handle.closed(client.peer.id, code, reason.to_owned()).await;
        self.settle().await;
    }
}

async fn compile(runtime: &Runtime, path: &Path, limits: &Limits) -> Result<Compiled, KitError> {
    let bytes = std::fs::read(path).map_err(|source| KitError::Read { path: path.display().to_string(), source })?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    Ok(runtime.compile(&bytes, &sha256, Tier::Quick)?.describe(limits).await?)
}

fn route_table(compiled: &Compiled) -> Result<RouteTable<()>, KitError> {
    let mut routes = RouteTable::default();
    for route in &compiled.info.routes {
        let pattern = RoutePattern::parse(route).map_err(|error| KitError::Plugin(error.to_string()))?;
        routes.insert(pattern, &compiled.info.name, ()).map_err(|error| KitError::Plugin(error.to_string()))?;
    }
    Ok(routes)
}
