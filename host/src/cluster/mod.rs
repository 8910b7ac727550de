//! Several nodes as one server: what a plugin publishes to a room, sends to
//! a user or broadcasts reaches the connections of every node, through
//! Redis pub/sub. Below `channel/`, which calls it; it knows nothing of
//! channels but the [`Sink`] they implement.
//!
//! - `wire`: the Redis channel names and the payload layout;
//! - `queue`: the bounded queues between the node and Redis;
//! - `redis`: the connections and the tasks that drain the queues;
//! - `liveness`: which nodes are alive, and presence kept in Redis;
//! - `kv`: the plugins' key-value stores, shared in Redis;
//! - `history`: the rooms' history, a Redis stream per room;
//! - `mailbox`: messages kept for users connected nowhere.
//!
//! A message crosses Redis once per publish, whatever the number of nodes
//! and recipients: one `PUBLISH` to the topic's channel, which a node
//! subscribes to only while it has a local member (a room), connection (a
//! user) or the plugin loaded (`broadcast`). The origin delivers to its own
//! connections at once, before Redis, and drops its own message when Redis
//! hands it back. Order holds per publisher: one queue, one connection,
//! pipelines sent one after the other.
//!
//! Presence spans the nodes too: each node reports its own connections per
//! user and tracked room (in the room's hash, and on the room's channel for
//! the nodes already tracking it); a node that starts tracking a room reads
//! the hash. Every node refreshes its entry in a sorted set of live nodes
//! every [`HEARTBEAT`]; one that misses [`NODE_TTL`] (killed, cut off) is
//! dropped by the others, its users leaving every room with a
//! `presence_diff`; one that stops gracefully says so at once.
//!
//! Redis being down or slow never blocks a callback's sends and publishes:
//! publishing is a push into a bounded queue, and what does not fit (or
//! fails) is dropped, counted and logged at growing intervals; the node
//! keeps serving its own connections. Only the key-value calls wait for
//! Redis (one round trip each, under the callback's deadline).

mod history;
mod kv;
mod liveness;
mod mailbox;
mod queue;
mod redis;
mod wire;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use crate::config::ClusterSettings;
use crate::metrics::ClusterMetrics;

pub(crate) use self::history::{Stream, now_ms};
pub(crate) use self::kv::{Write, Written};
pub(crate) use self::mailbox::Mail;
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

/// How often a node says it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a node counts as alive after it last said so: a node killed
/// without a word leaves everyone's presence within this (plus a heartbeat).
pub(crate) const NODE_TTL: Duration = Duration::from_secs(10);

/// Where messages from other nodes go: one plugin's channel.
pub(crate) trait Sink: Send + Sync {
    /// Hand `frame`, published to `topic` on another node, to the local
    /// connections it is for.
    fn deliver(&self, topic: Topic<'_>, frame: Message);
    /// Hand a numbered message of history room `room` (from any node, this
    /// one too) to its local members but `except`.
    fn deliver_numbered(&self, room: &str, epoch: &str, offset: u64, except: u64, text: &str);
    /// A history message Redis did not take: to the local members but
    /// `except`, unnumbered.
    fn deliver_unnumbered(&self, room: &str, text: Utf8Bytes, except: u64);
    /// The node now receives `room` (`again`: after a lost connection).
    fn subscribed(&self, room: &str, again: bool);
    /// The node now receives `user`'s channel.
    fn user_subscribed(&self, user: &str);
    /// Node `node` has `count` connections of `user` in `room` (its report
    /// number `seq`).
    fn presence(&self, room: &str, node: u64, user: &str, count: u32, seq: u64);
    /// Forget the presence reported by nodes for which `alive` is false.
    fn retain_nodes(&self, alive: &dyn Fn(u64) -> bool);
    /// Report every local user of every tracked room again (Redis lost them).
    fn report_all(&self);
    /// Whether the plugin tracks the presence of `room`.
    fn tracks(&self, room: &str) -> bool;
}

/// What the publisher sends to Redis, in order.
#[derive(Debug)]
enum Outgoing {
    /// `PUBLISH channel payload`.
    Publish { channel: String, payload: Bytes },
    /// This node's connections of a user in a room: kept in the room's
    /// presence hash (`HSET`, or `HDEL` at zero) and told on its channel.
    Presence { key: String, field: String, value: Option<String>, channel: String, payload: Bytes },
    /// This node is leaving: out of the live nodes, and told on the control
    /// channel; the sender hears when it is done.
    Gone(oneshot::Sender<()>),
    /// A history room's message: numbered, kept and published by one script.
    History(history::Numbered),
    /// A step on a user's mailbox.
    Mail(mailbox::Mail),
}

/// This node's link to the others.
pub(crate) struct Cluster {
    /// This node's number, unique among the nodes sharing the Redis (from
    /// the live nodes' set, see `redis::claim_node_number`): the high bits of its connection ids, and the origin of its
    /// messages.
    node: u64,
    /// Messages for Redis.
    outgoing: BoundedQueue<Outgoing>,
    /// The number of this node's next presence report: reports of one node
    /// apply in this order, whichever way (channel, hash) they arrive.
    presence_seq: AtomicU64,
    /// For the commands outside the publisher's pipeline (presence reads,
    /// heartbeats): the same reconnecting connection.
    commands: ::redis::aio::ConnectionManager,
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
    /// Set once the node leaves: it no longer says it is alive, nor reports
    /// presence, which the other nodes have dropped.
    leaving: AtomicBool,
    /// History rooms that had messages Redis did not take: (plugin, room),
    /// reset to a new epoch before the next publish (at most
    /// [`MAX_LOST_HISTORY`]; beyond, the rest are logged and not reset).
    lost_history: Mutex<HashSet<(String, String)>>,
    /// When Redis last failed or lost the connection (see `heartbeat`).
    disrupted: Mutex<std::time::Instant>,
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
/// History rooms remembered as having lost messages during an outage.
const MAX_LOST_HISTORY: usize = 100_000;

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
        self.send(Outgoing::Publish { channel: wire::channel_name(plugin, topic), payload }, bytes);
    }

    /// This node now has `count` connections of `user` in tracked `room`
    /// of `plugin`: tell the nodes tracking it, and keep it for those that
    /// will.
    pub(crate) fn report_presence(&self, plugin: &str, room: &str, user: &str, count: u32) {
        if self.leaving.load(Ordering::Relaxed) {
            return;
        }
        let seq = self.presence_seq.fetch_add(1, Ordering::Relaxed);
        let payload = wire::encode_presence(self.node, seq, count, user);
        let value = (count > 0).then(|| format!("{count}:{seq}"));
        let field = wire::presence_field(self.node, user);
        let bytes = payload.len() + field.len() * 2 + room.len() * 2;
        let key = wire::presence_key(plugin, room);
        let channel = wire::channel_name(plugin, Topic::Room(room));
        self.send(Outgoing::Presence { key, field, value, channel, payload }, bytes);
    }

    fn send(&self, outgoing: Outgoing, bytes: usize) {
        if !self.outgoing.push(outgoing, bytes) {
            self.dropped("publish_queue_full", 1);
        }
    }

    /// Hand each message from Redis to its plugin's channel.
    fn deliver(&self, channel: &str, payload: Bytes) {
        let origin = wire::origin(&payload);
        let Some(payload) = wire::decode(payload) else { return self.dropped("malformed", 1) };
        if channel == wire::CONTROL {
            if let (Some(node), wire::Payload::Gone) = (origin, payload) {
                tracing::info!(node, "cluster: a node left");
                self.each_sink(|sink| sink.retain_nodes(&|other| other != node));
            }
            return;
        }
        let Some((plugin, topic)) = wire::parse_channel_name(channel) else { return self.dropped("malformed", 1) };
        let Some(sink) = self.sink(plugin) else { return };
        match (payload, topic, origin) {
            (wire::Payload::Frame(frame), _, _) => {
                self.metrics.received.inc();
                sink.deliver(topic, frame);
            }
            (wire::Payload::History { epoch, offset, except, text }, Topic::Room(room), _) => {
                self.metrics.received.inc();
                sink.deliver_numbered(room, &epoch, offset, except, &text);
            }
            (wire::Payload::Presence { seq, count, user }, Topic::Room(room), Some(node)) => {
                sink.presence(room, node, &user, count, seq);
            }
            _ => self.dropped("malformed", 1),
        }
    }

    /// The channel of `plugin`, if attached.
    fn sink(&self, plugin: &str) -> Option<Arc<dyn Sink>> {
        self.sinks.read().get(plugin).and_then(Weak::upgrade)
    }

    /// Run `each` on every attached channel.
    fn each_sink(&self, each: impl Fn(&dyn Sink)) {
        let sinks: Vec<Arc<dyn Sink>> = self.sinks.read().values().filter_map(Weak::upgrade).collect();
        for sink in sinks {
            each(&*sink);
        }
    }

    /// Leave the cluster (the server is stopping): the other nodes drop
    /// this node's presence now rather than after [`NODE_TTL`], without
    /// waiting for its connections to close. Waits until what was queued
    /// before is sent, for up to a second.
    pub(crate) async fn leave(&self) {
        self.leaving.store(true, Ordering::Relaxed);
        let (done, sent) = oneshot::channel();
        if self.outgoing.push(Outgoing::Gone(done), 0) {
            let _ = tokio::time::timeout(Duration::from_secs(1), sent).await;
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
        if !up {
            self.disrupted();
        }
        if self.up.swap(up, Ordering::Relaxed) != up {
            self.metrics.up.set(i64::from(up));
            match (up, error) {
                (true, _) => {
                    tracing::info!("cluster: Redis reachable again");
                    // It may have restarted empty, and reports sent meanwhile were dropped.
                    self.each_sink(|sink| sink.report_all());
                }
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
