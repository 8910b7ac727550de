//! The node's two Redis connections and the tasks around them: the
//! publisher (the outgoing queue → pipelined `PUBLISH`es), the subscriber
//! (subscription changes → `SUBSCRIBE` / `UNSUBSCRIBE` in batches; every
//! subscription again after a reconnect) and the deliverer (the incoming
//! queue → the plugins' channels). Messages arrive as RESP3 pushes, handed
//! by the connection to a closure that only queues them, so that a slow
//! node never blocks its Redis connection.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use super::liveness::claim;
use super::queue::BoundedQueue;
use super::{Cluster, ClusterError, NODE_SHIFT, NODES, Outgoing, wire};
use super::{history, mailbox};
use crate::config::ClusterSettings;
use crate::metrics::ClusterMetrics;

/// Commands per pipeline (`PUBLISH`) or per `SUBSCRIBE` (channels): big
/// enough to amortise a round trip, small enough not to stall Redis.
const BATCH: usize = 512;
/// Seconds a room's presence hash outlives its last report (entries of
/// dead nodes are also deleted whenever a node reads the hash).
const PRESENCE_KEY_TTL: i64 = 24 * 3600;
/// The longest wait between two tries while Redis is down.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) async fn connect(
    settings: &ClusterSettings,
    url: &str,
    metrics: ClusterMetrics,
) -> Result<Arc<Cluster>, ClusterError> {
    let info = url.into_connection_info().map_err(|source| ClusterError::Url { url: url.to_owned(), source })?;
    let info = info.clone().set_redis_settings(info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3));
    let client = Client::open(info).map_err(|source| ClusterError::Url { url: url.to_owned(), source })?;
    let unreachable = |source| ClusterError::Unreachable { url: url.to_owned(), source };
    let mut commands =
        ConnectionManager::new_with_config(client.clone(), manager_config()).await.map_err(unreachable)?;
    let node = claim_node_number(&mut commands).await.map_err(unreachable)?;
    debug_assert!(node << NODE_SHIFT < 1 << 53);
    metrics.up.set(1);
    let cluster = Arc::new(Cluster {
        node,
        outgoing: BoundedQueue::new(settings.publish_queue, settings.publish_queue_bytes),
        presence_seq: AtomicU64::new(1),
        commands: commands.clone(),
        disrupted: Mutex::new(Instant::now()),
        incoming: BoundedQueue::new(settings.receive_queue, settings.receive_queue_bytes),
        subscriptions: Mutex::new(Default::default()),
        lost_history: Mutex::new(Default::default()),
        subscriptions_changed: Notify::new(),
        resubscribe: AtomicBool::new(false),
        leaving: AtomicBool::new(false),
        sinks: RwLock::new(Default::default()),
        up: AtomicBool::new(true),
        metrics,
        tasks: Mutex::new(Vec::new()),
    });
    let pushes = Arc::clone(&cluster);
    let config = manager_config().set_push_sender(move |push: PushInfo| {
        pushes.pushed(push);
        Ok::<(), ()>(())
    });
    let subscriber = ConnectionManager::new_with_config(client, config).await.map_err(unreachable)?;
    cluster.heartbeat_once().await.map_err(unreachable)?;
    cluster.want(wire::CONTROL.to_owned(), true);
    tracing::info!(node, "cluster: joined the nodes sharing {url}");
    let tasks = vec![
        tokio::spawn(publish(Arc::clone(&cluster), commands)),
        tokio::spawn(subscribe(Arc::clone(&cluster), subscriber)),
        tokio::spawn(deliver(Arc::clone(&cluster))),
        tokio::spawn(Arc::clone(&cluster).heartbeat()),
    ];
    *cluster.tasks.lock() = tasks;
    Ok(cluster)
}

/// A node number no live node holds, claimed in the live nodes' set.
/// Random rather than counted: a Redis that restarted empty would count
/// from 1 again, next to live nodes that hold the small numbers.
async fn claim_node_number(commands: &mut ConnectionManager) -> Result<u64, RedisError> {
    let mut candidate = crate::random::random_u64();
    loop {
        let node = candidate % NODES + 1;
        if claim(commands, node).await? {
            return Ok(node);
        }
        candidate = candidate.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Reconnect quickly and keep trying; give up on a command after 2 s, so
/// that a stalled Redis shows as an outage instead of a stall.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(MAX_BACKOFF)
        .set_number_of_retries(3)
}

impl Cluster {
    /// A push from the subscription connection: a message is queued (unless
    /// it is this node's own, or the queue is full); a lost connection
    /// calls for every subscription again.
    fn pushed(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) = (data.next(), data.next())
                else {
                    return self.dropped("malformed", 1);
                };
                if wire::origin(&payload) == Some(self.node) && !wire::delivered_by_origin_too(&payload) {
                    return;
                }
                let Ok(channel) = String::from_utf8(channel) else { return self.dropped("malformed", 1) };
                let bytes = channel.len() + payload.len();
                if !self.incoming.push((channel, Bytes::from(payload)), bytes) {
                    self.dropped("receive_queue_full", 1);
                }
            }
            PushKind::Disconnection => {
                self.set_up(false, None);
                self.disrupted();
                self.resubscribe.store(true, Ordering::Relaxed);
                self.subscriptions_changed.notify_one();
            }
            _ => {}
        }
    }
}

/// Drain the outgoing queue into pipelines of `PUBLISH`, in order. A
/// pipeline that fails is dropped (it may have been half applied: sending
/// it again could deliver twice), counted, and the next waits for Redis.
async fn publish(cluster: Arc<Cluster>, mut connection: ConnectionManager) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut messages = cluster.outgoing.take_all().await;
        while !messages.is_empty() {
            // Rooms that lost messages start a new epoch before they get more.
            cluster.reset_lost_history().await;
            let rest = messages.split_off(messages.len().min(BATCH));
            let mut pipeline = ::redis::pipe();
            let mut published = 0;
            let mut done = Vec::new();
            let mut numbered = Vec::new();
            let mut claims = Vec::new();
            let mut mail = 0;
            for message in messages {
                match message {
                    Outgoing::Publish { channel, payload } => {
                        pipeline.publish(channel, payload.as_ref()).ignore();
                        published += 1;
                    }
                    Outgoing::Presence { key, field, value, channel, payload } => {
                        match value {
                            Some(value) => pipeline.hset(&key, field, value).ignore(),
                            None => pipeline.hdel(&key, field).ignore(),
                        };
                        // A tracked room's hash outlives its last report by a day at most.
                        pipeline.expire(&key, PRESENCE_KEY_TTL).ignore().publish(channel, payload.as_ref()).ignore();
                    }
                    Outgoing::History(message) => {
                        if numbered.is_empty() {
                            history::load_publish(&mut pipeline);
                        }
                        history::add_publish(&mut pipeline, cluster.node, &message);
                        numbered.push(message);
                        published += 1;
                    }
                    Outgoing::Mail(step) => {
                        if mail == 0 {
                            mailbox::load(&mut pipeline);
                        }
                        mail += 1;
                        claims.extend(mailbox::add(&mut pipeline, cluster.node, step));
                    }
                    Outgoing::Gone(sent) => {
                        pipeline.zrem(wire::ALIVE, cluster.node).ignore();
                        pipeline.publish(wire::CONTROL, wire::encode_gone(cluster.node).as_ref()).ignore();
                        done.push(sent);
                    }
                }
            }
            messages = rest;
            match pipeline.query_async::<Vec<Value>>(&mut connection).await {
                Ok(answers) => {
                    // The claims' answers, in order: the only commands not ignored.
                    for (reply, answer) in claims.drain(..).zip(answers) {
                        let _ = reply.send(mailbox::parse_claim(answer));
                    }
                    cluster.metrics.published.inc_by(published);
                    cluster.set_up(true, None);
                    backoff = Duration::from_millis(50);
                }
                Err(error) => {
                    for reply in claims.drain(..) {
                        let _ = reply.send(None);
                    }
                    cluster.dropped("redis_error", published + mail);
                    cluster.set_up(false, Some(&error));
                    // History messages reach this node's members at least,
                    // and their rooms start new epochs.
                    for message in numbered {
                        cluster.history_lost(&message.plugin, &message.room);
                        if let (Some(sink), Ok(text)) =
                            (cluster.sink(&message.plugin), Utf8Bytes::try_from(message.text))
                        {
                            sink.deliver_unnumbered(&message.room, text, message.except);
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            for sent in done {
                let _ = sent.send(());
            }
        }
    }
}

/// Keep Redis's subscriptions equal to what the channels want: apply the
/// changes in batches; after a lost connection, subscribe to everything
/// again. A change that fails is retried with backoff.
async fn subscribe(cluster: Arc<Cluster>, mut connection: ConnectionManager) {
    let mut active: HashSet<String> = HashSet::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        let changes = std::mem::take(&mut *cluster.subscriptions.lock());
        let resubscribe = cluster.resubscribe.swap(false, Ordering::Relaxed);
        let mut wanted = Vec::new();
        let mut unwanted = Vec::new();
        // Wanted again before it was dropped: in place all along.
        let mut kept = Vec::new();
        for (channel, want) in changes {
            match (want, active.contains(&channel)) {
                (true, false) => wanted.push(channel),
                (false, true) => unwanted.push(channel),
                (true, true) => kept.push(channel),
                (false, false) => {}
            }
        }
        if resubscribe {
            wanted.extend(active.iter().filter(|channel| !unwanted.contains(channel)).cloned());
        }
        match apply(&mut connection, &wanted, &unwanted).await {
            Ok(()) => {
                for channel in &unwanted {
                    active.remove(channel);
                }
                for channel in &wanted {
                    cluster.subscribed(channel, resubscribe);
                }
                for channel in &kept {
                    cluster.subscribed(channel, false);
                }
                active.extend(wanted);
                if resubscribe {
                    cluster.set_up(true, None);
                    tracing::info!(channels = active.len(), "cluster: subscribed again after a lost connection");
                }
                backoff = Duration::from_millis(50);
                cluster.subscriptions_changed.notified().await;
            }
            Err(error) => {
                cluster.set_up(false, Some(&error));
                // Try again: keep the newer wish where one came meanwhile.
                {
                    let mut pending = cluster.subscriptions.lock();
                    for channel in wanted.into_iter().filter(|channel| !active.contains(channel)) {
                        pending.entry(channel).or_insert(true);
                    }
                    for channel in unwanted {
                        pending.entry(channel).or_insert(false);
                    }
                }
                // What Redis holds is unknown now: send all of it again.
                cluster.resubscribe.store(true, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn apply(connection: &mut ConnectionManager, wanted: &[String], unwanted: &[String]) -> Result<(), RedisError> {
    for batch in wanted.chunks(BATCH) {
        connection.subscribe(batch).await?;
    }
    for batch in unwanted.chunks(BATCH) {
        connection.unsubscribe(batch).await?;
    }
    Ok(())
}

/// Hand what other nodes published to the local connections.
async fn deliver(cluster: Arc<Cluster>) {
    loop {
        for (channel, payload) in cluster.incoming.take_all().await {
            cluster.deliver(&channel, payload);
        }
    }
}
