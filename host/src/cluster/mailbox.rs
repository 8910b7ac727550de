//! Messages for offline users when clustered: whether a user is connected
//! anywhere, and what was kept for them, live in Redis, and one script
//! decides "deliver or keep" against both, so that a message sent while
//! the user connects on another node is either delivered or kept, never
//! both, never lost.
//!
//! Keys, per plugin and user: `sb:on:…` (a hash: the nodes where the user
//! has a connection) and `sb:mb:…` (a list: the kept messages, as wire
//! payloads); per plugin: `sb:mbb:…` (a hash: each user's kept bytes) and
//! `sb:mbt:…` (their total). A node's entry counts only while the node is
//! alive (`sb:alive`): a message for a user whose only node died less than
//! the node TTL ago is published to nobody, the one case where a message
//! is lost.
//!
//! A node registers a user (and takes what was kept, in the same script)
//! once it receives the user's channel, so that every message after the
//! registration reaches it; its releases, keeps and take-backs go through
//! the one publisher queue, so Redis applies a node's steps in order.

use std::sync::LazyLock;

use ::redis::{Script, Value};
use bytes::Bytes;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use super::{Cluster, Outgoing, Topic, wire};
use crate::config::MailboxBounds;

/// A kept message's cost beyond its bytes (as on one node).
const MESSAGE_OVERHEAD: usize = 32;

/// Deliver (publish on the user's channel) if a live node has the user,
/// else keep, within the bounds. KEYS: the user's nodes, the user's list,
/// the plugin's bytes per user, the plugin's total. ARGV: the user's
/// channel, the payload, now (ms), the most messages, the most bytes of a
/// user, the most users, the most bytes in all, the user, the live nodes'
/// set, the overhead. Returns 1 (published), 0 (kept), -1 (full).
static DELIVER_OR_KEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for _, node in ipairs(redis.call('HKEYS', KEYS[1])) do
  local alive = redis.call('ZSCORE', ARGV[9], node)
  if alive and tonumber(alive) >= tonumber(ARGV[3]) then
    redis.call('PUBLISH', ARGV[1], ARGV[2])
    return 1
  end
  redis.call('HDEL', KEYS[1], node)
end
local overhead = tonumber(ARGV[10])
local cost = #ARGV[2] + overhead
local mine = tonumber(redis.call('HGET', KEYS[3], ARGV[8]) or '0')
if mine == 0 and redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[6]) then return -1 end
if tonumber(redis.call('GET', KEYS[4]) or '0') + cost > tonumber(ARGV[7]) then return -1 end
redis.call('RPUSH', KEYS[2], ARGV[2])
mine = mine + cost
local added = cost
local kept = redis.call('LLEN', KEYS[2])
while kept > tonumber(ARGV[4]) or mine > tonumber(ARGV[5]) do
  local oldest = redis.call('LPOP', KEYS[2])
  if not oldest then break end
  mine = mine - (#oldest + overhead)
  added = added - (#oldest + overhead)
  kept = kept - 1
end
if kept == 0 then redis.call('HDEL', KEYS[3], ARGV[8]) else redis.call('HSET', KEYS[3], ARGV[8], mine) end
redis.call('INCRBY', KEYS[4], added)
return 0
",
    )
});

/// Register this node for the user and take what was kept; the node
/// counts as alive from now (a Redis that restarted empty has not had its
/// heartbeat yet, and must not take the registration for a dead node's).
/// KEYS: as above. ARGV: the node, the user, the live nodes' set, until
/// when the node is alive (ms). Returns the kept payloads.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', ARGV[3], 'GT', ARGV[4], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], 1)
local kept = redis.call('LRANGE', KEYS[2], 0, -1)
if #kept > 0 then
  redis.call('DEL', KEYS[2])
  local mine = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('INCRBY', KEYS[4], -mine)
end
return kept
",
    )
});

/// Put taken messages back in front (their user left before they could
/// be handed over). KEYS: as above. ARGV: the user, the overhead, the
/// payloads, oldest first.
static RESTORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local overhead = tonumber(ARGV[2])
local added = 0
for index = #ARGV, 3, -1 do
  redis.call('LPUSH', KEYS[2], ARGV[index])
  added = added + #ARGV[index] + overhead
end
redis.call('HINCRBY', KEYS[3], ARGV[1], added)
redis.call('INCRBY', KEYS[4], added)
return 1
",
    )
});

/// A step on a user's mailbox, in the publisher's order.
#[derive(Debug)]
pub(crate) enum Mail {
    /// Deliver `payload` or keep it.
    DeliverOrKeep { plugin: String, user: String, payload: Bytes, bounds: MailboxBounds },
    /// Register this node and take what was kept (handed to `reply`).
    Claim { plugin: String, user: String, reply: oneshot::Sender<Option<Vec<Bytes>>> },
    /// This node has no connection of the user any more.
    Release { plugin: String, user: String },
    /// Put back what was taken.
    Restore { plugin: String, user: String, payloads: Vec<Bytes> },
}

/// The four keys of `user` in `plugin`.
fn keys(plugin: &str, user: &str) -> [String; 4] {
    let length = plugin.len();
    [
        format!("sb:on:{length}:{plugin}{user}"),
        format!("sb:mb:{length}:{plugin}{user}"),
        format!("sb:mbb:{length}:{plugin}"),
        format!("sb:mbt:{length}:{plugin}"),
    ]
}

/// Add `mail`'s commands to `pipeline` (whose scripts are loaded first);
/// returns the claim's reply, whose answer is the pipeline's next value.
pub(super) fn add(
    pipeline: &mut ::redis::Pipeline,
    node: u64,
    mail: Mail,
) -> Option<oneshot::Sender<Option<Vec<Bytes>>>> {
    match mail {
        Mail::DeliverOrKeep { plugin, user, payload, bounds } => {
            let [online, list, bytes, total] = keys(&plugin, &user);
            let mut invocation = DELIVER_OR_KEEP.key(online);
            invocation
                .key(list)
                .key(bytes)
                .key(total)
                .arg(wire::channel_name(&plugin, Topic::User(&user)))
                .arg(payload.as_ref())
                .arg(super::history::now_ms())
                .arg(bounds.size)
                .arg(bounds.bytes)
                .arg(bounds.users)
                .arg(bounds.total_bytes)
                .arg(&user)
                .arg(wire::ALIVE)
                .arg(MESSAGE_OVERHEAD);
            pipeline.invoke_script(&invocation).ignore();
            None
        }
        Mail::Claim { plugin, user, reply } => {
            let [online, list, bytes, total] = keys(&plugin, &user);
            let alive_until = super::history::now_ms() + u64::try_from(super::NODE_TTL.as_millis()).unwrap_or(0);
            let mut invocation = CLAIM.key(online);
            invocation.key(list).key(bytes).key(total).arg(node).arg(&user).arg(wire::ALIVE).arg(alive_until);
            pipeline.invoke_script(&invocation);
            Some(reply)
        }
        Mail::Release { plugin, user } => {
            let [online, ..] = keys(&plugin, &user);
            pipeline.hdel(online, node).ignore();
            None
        }
        Mail::Restore { plugin, user, payloads } => {
            let [_, list, bytes, total] = keys(&plugin, &user);
            let mut invocation = RESTORE.key(list);
            invocation.key(bytes).key(total).arg(&user).arg(MESSAGE_OVERHEAD);
            for payload in &payloads {
                invocation.arg(payload.as_ref());
            }
            pipeline.invoke_script(&invocation).ignore();
            None
        }
    }
}

/// `SCRIPT LOAD` of the mailbox scripts, for a pipeline that calls them.
pub(super) fn load(pipeline: &mut ::redis::Pipeline) {
    for script in [&*DELIVER_OR_KEEP, &*CLAIM, &*RESTORE] {
        pipeline.load_script(script).ignore();
    }
}

/// A claim's answer: the kept payloads.
pub(super) fn parse_claim(value: Value) -> Option<Vec<Bytes>> {
    let Value::Array(kept) = value else { return None };
    kept.into_iter()
        .map(|payload| match payload {
            Value::BulkString(payload) => Some(Bytes::from(payload)),
            _ => None,
        })
        .collect()
}

impl Cluster {
    /// Queue a step on a user's mailbox; `false` when the queue is full.
    pub(crate) fn mail(&self, mail: Mail) -> bool {
        let bytes = match &mail {
            Mail::DeliverOrKeep { payload, .. } => payload.len(),
            Mail::Restore { payloads, .. } => payloads.iter().map(Bytes::len).sum(),
            _ => 0,
        };
        if self.outgoing.push(Outgoing::Mail(mail), bytes + 64) {
            return true;
        }
        self.dropped("publish_queue_full", 1);
        false
    }

    /// The payload of a message for a user's mailbox: from no node (0), so
    /// that every node delivers it when published, the sender's too.
    pub(crate) fn mail_payload(frame: &Message) -> Option<Bytes> {
        wire::encode(0, frame)
    }

    /// A kept payload, as the message it carries.
    pub(crate) fn mail_message(payload: Bytes) -> Option<Message> {
        match wire::decode(payload)? {
            wire::Payload::Frame(message) => Some(message),
            _ => None,
        }
    }
}
