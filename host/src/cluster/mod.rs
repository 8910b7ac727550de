//! Several nodes as one server: what a plugin publishes to a room, sends to
//! a user or broadcasts reaches the connections of every node, through
//! Redis pub/sub. Below `channel/`, which calls it; it knows nothing of
//! channels but the [`Sink`] they implement.
//!
//! - `wire`: the Redis channel names and the payload layout;
//! - `queue`: the bounded queues between the node and Redis;
//! - `redis`: the connections and the tasks that drain the queues.
//!
//! A message crosses Redis once per publish, whatever the number of nodes
//! and recipients: one `PUBLISH` to the topic's channel, which a node
//! subscribes to only while it has a local member (a room), connection (a
//! user) or the plugin loaded (`broadcast`). The origin delivers to its own
//! connections at once, before Redis, and drops its own message when Redis
//! hands it back. Order holds per publisher: one queue, one connection,
//! pipelines sent one after the other.
//!
//! Redis being down or slow never blocks a callback: publishing is a push
//! into a bounded queue, and what does not fit (or fails) is dropped,
//! counted and logged once per outage; the node keeps serving its own
//! connections.

mod queue;
mod redis;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::config::ClusterSettings;
use crate::metrics::ClusterMetrics;

use self::queue::BoundedQueue;
pub(crate) use self::wire::Topic;

/// Why the node could not join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL {url:?}: {source}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        source: ::redis::RedisError,
    },
    /// Redis did not answer at start-up.
    #[error("cannot reach Redis at {url}: {source}")]
    Unreachable {
        /// The URL as configured.
        url: String,
        /// Why.
        source: ::redis::RedisError,
    },
}

/// Where messages from other nodes go: one plugin's channel.
pub(crate) trait Sink: Send + Sync {
    /// Hand `frame`, published to `topic` on another node, to the local
    /// connections it is for.
    fn deliver(&self, topic: Topic<'_>, frame: Message);
}

/// This node's link to the others.
pub(crate) struct Cluster {
    /// This node's number, unique among the nodes sharing the Redis (from
    /// `INCR`): the high bits of its connection ids, and the origin of its
    /// messages.
    node: u64,
    /// Messages for Redis: (channel, payload).
    outgoing: BoundedQueue<(String, Bytes)>,
    /// Messages from Redis for local connections: (channel, payload).
    incoming: BoundedQueue<(String, Bytes)>,
    /// Subscription changes not yet sent to Redis: channel → wanted. Keyed
    /// by channel, so a burst of joins and leaves costs one entry per room.
    subscriptions: Mutex<HashMap<String, bool>>,
    /// Wakes the subscriber when `subscriptions` changes or the connection
    /// was lost.
    subscriptions_changed: Notify,
    /// Set when the subscription connection was lost: every subscription is
    /// sent again once it is back.
    resubscribe: AtomicBool,
    /// The channels of the loaded plugins, by plugin name.
    sinks: RwLock<HashMap<Arc<str>, Weak<dyn Sink>>>,
    /// Whether Redis answered last time: an outage is logged once, when it
    /// starts, and once when it ends.
    up: AtomicBool,
    metrics: ClusterMetrics,
    /// The tasks talking to Redis, stopped with the server.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Cluster").field("node", &self.node).finish_non_exhaustive()
    }
}

/// Connection ids are `node << NODE_SHIFT | n`: unique across nodes, and
/// below 2^53, so that JavaScript reads them exactly.
const NODE_SHIFT: u32 = 36;
/// Node numbers wrap at this many nodes started (node 0 is a single node).
const NODES: u64 = (1 << 16) - 1;

impl Cluster {
    /// Join the nodes sharing `settings.redis`: connect (Redis must answer
    /// now; later outages are survived), take a node number, start the tasks.
    pub(crate) async fn join(
        settings: &ClusterSettings,
        url: &str,
        metrics: ClusterMetrics,
    ) -> Result<Arc<Cluster>, ClusterError> {
        redis::connect(settings, url, metrics).await
    }

    /// The first connection id of this node.
    pub(crate) fn first_connection_id(&self) -> u64 {
        (self.node << NODE_SHIFT) + 1
    }

    /// Receive the messages for `plugin` in `sink` (from now on, and
    /// `broadcast`s at once).
    pub(crate) fn attach(&self, plugin: &str, sink: Weak<dyn Sink>) {
        self.sinks.write().insert(plugin.into(), sink);
        self.subscribe(plugin, Topic::All);
    }

    /// Start receiving what other nodes publish to `topic` of `plugin`.
    pub(crate) fn subscribe(&self, plugin: &str, topic: Topic<'_>) {
        self.want(wire::channel_name(plugin, topic), true);
    }

    /// Stop receiving `topic` of `plugin`.
    pub(crate) fn unsubscribe(&self, plugin: &str, topic: Topic<'_>) {
        self.want(wire::channel_name(plugin, topic), false);
    }

    fn want(&self, channel: String, wanted: bool) {
        self.subscriptions.lock().insert(channel, wanted);
        self.subscriptions_changed.notify_one();
    }

    /// Send `frame` to the other nodes' connections of `topic` in `plugin`.
    /// Never waits: when the queue to Redis is full the frame reaches this
    /// node's connections only, and the drop is counted.
    pub(crate) fn publish(&self, plugin: &str, topic: Topic<'_>, frame: &Message) {
        let Some(payload) = wire::encode(self.node, frame) else { return };
        let bytes = payload.len();
        if !self.outgoing.push((wire::channel_name(plugin, topic), payload), bytes) {
            self.dropped("publish_queue_full", 1);
        }
    }

    /// Hand each message from Redis to its plugin's channel.
    fn deliver(&self, channel: &str, payload: Bytes) {
        let Some((plugin, topic)) = wire::parse_channel_name(channel) else { return self.dropped("malformed", 1) };
        let Some(frame) = wire::decode(payload) else { return self.dropped("malformed", 1) };
        let sink = self.sinks.read().get(plugin).and_then(Weak::upgrade);
        if let Some(sink) = sink {
            self.metrics.received.inc();
            sink.deliver(topic, frame);
        }
    }

    fn dropped(&self, reason: &'static str, count: u64) {
        if self.metrics.dropped(reason, count) {
            tracing::warn!(
                reason,
                "cluster: messages between nodes dropped (counted in switchboard_cluster_dropped_total)"
            );
        }
    }

    /// Redis answered (`true`) or failed: log the change.
    fn set_up(&self, up: bool, error: Option<&::redis::RedisError>) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            self.metrics.up.set(i64::from(up));
            match (up, error) {
                (true, _) => tracing::info!("cluster: Redis reachable again"),
                (false, Some(error)) => {
                    tracing::warn!("cluster: Redis unreachable, serving local connections only: {error}")
                }
                (false, None) => tracing::warn!("cluster: connection to Redis lost, serving local connections only"),
            }
        }
    }

    /// Stop talking to Redis (the server is stopping).
    pub(crate) fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}
