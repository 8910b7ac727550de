//! Which nodes are alive, and the presence a node reads when it starts
//! receiving a tracked room: the two uses of Redis that are reads, not
//! publishes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::redis::RedisResult;

use super::{Cluster, HEARTBEAT, NODE_TTL, Topic, wire};

/// Milliseconds since the epoch: the live nodes' scores. Nodes on several
/// machines need clocks within a few seconds of each other (NTP).
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Take node number `node` in the live nodes' set, unless a live node
/// holds it.
pub(super) async fn claim(commands: &mut ::redis::aio::ConnectionManager, node: u64) -> RedisResult<bool> {
    let now = now_ms();
    let added: u64 = ::redis::pipe()
        .zrembyscore(wire::ALIVE, "-inf", now)
        .ignore()
        .cmd("ZADD")
        .arg(wire::ALIVE)
        .arg("NX")
        .arg(now + ms(NODE_TTL))
        .arg(node)
        .query_async::<(u64,)>(commands)
        .await?
        .0;
    Ok(added == 1)
}

impl Cluster {
    /// Say this node is alive (until now + [`NODE_TTL`]); at start-up, and
    /// then every [`HEARTBEAT`].
    pub(super) async fn heartbeat_once(&self) -> RedisResult<Vec<u64>> {
        let now = now_ms();
        let mut connection = self.commands.clone();
        ::redis::pipe()
            .zadd(wire::ALIVE, self.node, now + ms(NODE_TTL))
            .ignore()
            .zrembyscore(wire::ALIVE, "-inf", now)
            .ignore()
            .zrange(wire::ALIVE, 0, -1)
            .query_async::<(Vec<u64>,)>(&mut connection)
            .await
            .map(|(alive,)| alive)
    }

    /// Keep this node alive, and drop the presence of nodes that are not:
    /// only once Redis has answered without a break for [`NODE_TTL`], since
    /// a Redis that restarted has forgotten every node until its next
    /// heartbeat.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(HEARTBEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if self.leaving.load(Ordering::Relaxed) {
                return;
            }
            match self.heartbeat_once().await {
                Ok(alive) if self.disrupted.lock().elapsed() >= NODE_TTL => {
                    self.set_up(true, None);
                    let alive = |node| node == self.node || alive.contains(&node);
                    self.each_sink(|sink| sink.retain_nodes(&alive));
                }
                Ok(_) => self.set_up(true, None),
                Err(error) => self.set_up(false, Some(&error)),
            }
        }
    }

    /// Redis may have lost what it held: wait [`NODE_TTL`] before taking a
    /// node's absence for its death.
    pub(super) fn disrupted(&self) {
        *self.disrupted.lock() = Instant::now();
    }

    /// This node now receives `channel` (`again`: after a lost connection):
    /// the room's channel hears (its history rooms catch up), and when its
    /// plugin tracks the room's presence, read what the other live nodes
    /// reported for it (reports from now on arrive on the channel; the
    /// sequence numbers sort out the overlap).
    pub(super) fn subscribed(self: &Arc<Self>, channel: &str, again: bool) {
        let Some((plugin, topic)) = wire::parse_channel_name(channel) else { return };
        let Some(sink) = self.sink(plugin) else { return };
        let room = match topic {
            Topic::Room(room) => room,
            Topic::User(user) => return sink.user_subscribed(user),
            Topic::All => return,
        };
        sink.subscribed(room, again);
        if sink.tracks(room) {
            self.read_presence(plugin, room);
        }
    }

    /// Read `room`'s presence from its hash and hand it to `plugin`'s
    /// channel, in a task of its own; entries of dead nodes are deleted on
    /// the way.
    pub(crate) fn read_presence(self: &Arc<Self>, plugin: &str, room: &str) {
        let Some(sink) = self.sink(plugin) else { return };
        let cluster = Arc::clone(self);
        let key = wire::presence_key(plugin, room);
        let room = room.to_owned();
        tokio::spawn(async move {
            let mut connection = cluster.commands.clone();
            let read = ::redis::pipe()
                .hgetall(&key)
                .zrangebyscore(wire::ALIVE, now_ms(), "+inf")
                .query_async::<(HashMap<String, String>, Vec<u64>)>(&mut connection)
                .await;
            let (entries, alive) = match read {
                Ok(read) => read,
                Err(error) => return cluster.set_up(false, Some(&error)),
            };
            // Right after a Redis restart (or this node's start) the live
            // nodes may not have said so yet: take every entry, delete none;
            // the heartbeat drops the dead ones once the TTL has passed.
            let settled = cluster.disrupted.lock().elapsed() >= NODE_TTL;
            let mut dead = Vec::new();
            for (field, value) in &entries {
                match wire::parse_presence_entry(field, value) {
                    Some((node, _, _, _)) if node == cluster.node => {}
                    Some((node, user, count, seq)) if alive.contains(&node) || !settled => {
                        sink.presence(&room, node, user, count, seq);
                    }
                    _ => dead.push(field),
                }
            }
            if !dead.is_empty() {
                let _: RedisResult<()> = ::redis::cmd("HDEL").arg(&key).arg(dead).query_async(&mut connection).await;
            }
        });
    }
}
