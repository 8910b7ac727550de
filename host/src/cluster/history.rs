//! The rooms' history when clustered: a Redis stream per room, numbered and
//! published by one script, so that the number a message gets, its place
//! in the stream and its `PUBLISH` are one atomic step (Centrifugo's
//! shape). Every node, the origin too, delivers a history message when
//! Redis hands it back, in the order Redis numbered it.
//!
//! Keys, per plugin and room: `sb:hm:…` (a hash: `epoch`, the last
//! `offset`, the stream's `bytes`) and `sb:hs:…` (the stream; entry ids
//! are `<offset>-0`, fields `t` (ms since the Unix epoch, the publishing
//! node's clock), `x` (the connection left out, 0 for none), `d` (the
//! text)); per plugin: `sb:hr:…` (its history rooms by last use) and
//! `sb:hb:…` (their bytes). The script trims a room to `history_size`
//! and `history_room_bytes`, and drops whole rooms, least recently used
//! first, beyond `history_rooms` and `history_bytes`: the same bounds as a
//! single node's. A room whose hash is gone (evicted, Redis restarted
//! empty, reset after an outage) starts a new epoch.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use ::redis::{RedisError, Script, Value};
use bytes::Bytes;

use super::{Cluster, Outgoing, wire};
use crate::config::HistoryBounds;
use crate::random::random_u64;

/// What an entry costs beyond its text, for the byte bounds (as on one node).
const ENTRY_OVERHEAD: usize = 64;

/// Number, keep and publish one message. KEYS: the room's hash, its
/// stream, the plugin's rooms, the plugin's bytes. ARGV: the Redis channel,
/// the payload header, the text, the connection left out, now (ms), the
/// most messages, the most bytes of a room, the most rooms, the most
/// bytes of the plugin, a new epoch (used when the room has none), the
/// room, the prefix of every room's hash and stream keys, the entry
/// overhead.
static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local meta, stream, rooms, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local overhead = tonumber(ARGV[13])
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  epoch = ARGV[10]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'offset', 0, 'bytes', 0)
end
redis.call('PERSIST', meta)
local offset = redis.call('HINCRBY', meta, 'offset', 1)
local cost = #ARGV[3] + #ARGV[11] + overhead
redis.call('XADD', stream, offset .. '-0', 't', ARGV[5], 'x', ARGV[4], 'd', ARGV[3])
local bytes = tonumber(redis.call('HGET', meta, 'bytes')) + cost
redis.call('INCRBY', total, cost)
local kept = redis.call('XLEN', stream)
while kept > tonumber(ARGV[6]) or bytes > tonumber(ARGV[7]) do
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if not oldest then break end
  local freed = #oldest[2][6] + #ARGV[11] + overhead
  redis.call('XDEL', stream, oldest[1])
  bytes = bytes - freed
  kept = kept - 1
  redis.call('INCRBY', total, -freed)
end
redis.call('HSET', meta, 'bytes', bytes)
redis.call('ZADD', rooms, ARGV[5], ARGV[11])
while redis.call('ZCARD', rooms) > tonumber(ARGV[8]) or tonumber(redis.call('GET', total)) > tonumber(ARGV[9]) do
  local lru = redis.call('ZRANGE', rooms, 0, 1)
  local victim = lru[1]
  if victim == ARGV[11] then victim = lru[2] end
  if not victim then break end
  redis.call('ZREM', rooms, victim)
  local freed = tonumber(redis.call('HGET', ARGV[12] .. 'm:' .. victim, 'bytes') or '0')
  redis.call('INCRBY', total, -freed)
  redis.call('DEL', ARGV[12] .. 'm:' .. victim, ARGV[12] .. 's:' .. victim)
end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. epoch .. ' ' .. offset .. ' ' .. ARGV[4] .. '\n' .. ARGV[3])
return offset
",
    )
});

/// Where a room stands, and (when asked) what it kept after an offset, as
/// one atomic step. A room without history gets its epoch now, so that a
/// client that joined before its first message can come back from offset
/// 0 (the hash expires in a day unless a message follows). KEYS: the
/// room's hash, its stream. ARGV: the first offset wanted (0: none), the
/// most entries, a new epoch. Returns {epoch, last offset, entries}.
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local position = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
if not position[1] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[3], 'offset', 0, 'bytes', 0)
  redis.call('EXPIRE', KEYS[1], 86400)
  return {ARGV[3], 0, {}}
end
local entries = {}
if tonumber(ARGV[1]) > 0 then
  entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
end
return {position[1], tonumber(position[2]), entries}
",
    )
});

/// Forget a room's history (its next message starts a new epoch). KEYS:
/// the room's hash, its stream, the plugin's rooms, the plugin's bytes.
/// ARGV: the room.
static RESET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local freed = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
redis.call('INCRBY', KEYS[4], -freed)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2])
return 1
",
    )
});

/// A history message waiting for the publisher.
#[derive(Debug)]
pub(crate) struct Numbered {
    pub(crate) plugin: String,
    pub(crate) room: String,
    pub(crate) text: Bytes,
    pub(crate) except: u64,
    pub(crate) bounds: HistoryBounds,
    /// When it was published (ms since the Unix epoch), for the TTL.
    pub(crate) at: u64,
}

/// A room's stream as read: its epoch (`None`: no history), last offset,
/// and the entries asked for: (offset, published at in ms, except, text).
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub(crate) epoch: Option<String>,
    pub(crate) last: u64,
    pub(crate) entries: Vec<(u64, u64, u64, String)>,
}

/// Every key prefix of `plugin`'s rooms (`…m:<room>`, `…s:<room>`), and
/// its rooms and bytes keys.
fn plugin_keys(plugin: &str) -> (String, String, String) {
    let prefix = format!("sb:h:{}:{plugin}:", plugin.len());
    (prefix.clone(), format!("{prefix}rooms"), format!("{prefix}bytes"))
}

/// The hash and stream of `room`.
fn room_keys(plugin: &str, room: &str) -> (String, String) {
    let (prefix, _, _) = plugin_keys(plugin);
    (format!("{prefix}m:{room}"), format!("{prefix}s:{room}"))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Add `message`'s script call to `pipeline` (which must load the script first).
pub(super) fn add_publish(pipeline: &mut ::redis::Pipeline, node: u64, message: &Numbered) {
    let (meta, stream) = room_keys(&message.plugin, &message.room);
    let (prefix, rooms, total) = plugin_keys(&message.plugin);
    let channel = wire::channel_name(&message.plugin, wire::Topic::Room(&message.room));
    let mut invocation = PUBLISH.key(meta);
    invocation
        .key(stream)
        .key(rooms)
        .key(total)
        .arg(channel)
        .arg(wire::history_header(node).as_ref())
        .arg(message.text.as_ref())
        .arg(message.except)
        .arg(message.at)
        .arg(message.bounds.size)
        .arg(message.bounds.room_bytes)
        .arg(message.bounds.rooms)
        .arg(message.bounds.bytes)
        .arg(format!("{:016x}", random_u64()))
        .arg(&message.room)
        .arg(prefix)
        .arg(ENTRY_OVERHEAD);
    pipeline.invoke_script(&invocation).ignore();
}

/// `SCRIPT LOAD` of the publish script, for a pipeline that calls it.
pub(super) fn load_publish(pipeline: &mut ::redis::Pipeline) {
    pipeline.load_script(&PUBLISH).ignore();
}

impl Cluster {
    /// Number, keep and publish `text` to `room` of `plugin` (see the
    /// module doc); `false` when the queue to Redis is full: the caller
    /// delivers it locally, unnumbered, and the room's history is reset
    /// once Redis takes messages again. (When Redis fails the script, the
    /// publisher does the same.)
    pub(crate) fn publish_history(
        &self,
        plugin: &str,
        room: &str,
        text: Bytes,
        except: u64,
        bounds: HistoryBounds,
    ) -> bool {
        let bytes = text.len() + room.len() + plugin.len();
        let message = Numbered { plugin: plugin.into(), room: room.into(), text, except, bounds, at: now_ms() };
        if self.outgoing.push(Outgoing::History(message), bytes) {
            return true;
        }
        self.dropped("publish_queue_full", 1);
        self.history_lost(plugin, room);
        false
    }

    /// `room` of `plugin` had messages that are not in its stream: its
    /// history starts a new epoch once Redis answers, so that clients
    /// recover with `recovered:false` rather than past a gap.
    pub(super) fn history_lost(&self, plugin: &str, room: &str) {
        let mut lost = self.lost_history.lock();
        if lost.len() < super::MAX_LOST_HISTORY {
            lost.insert((plugin.into(), room.into()));
        } else {
            tracing::warn!(plugin, room, "cluster: too many rooms lost history messages; this one keeps its epoch");
        }
    }

    /// Start new epochs for the rooms that lost messages (Redis is back).
    pub(super) async fn reset_lost_history(&self) {
        let lost: Vec<(String, String)> = self.lost_history.lock().drain().collect();
        if lost.is_empty() {
            return;
        }
        let mut pipeline = ::redis::pipe();
        pipeline.load_script(&RESET).ignore();
        for (plugin, room) in &lost {
            let (meta, stream) = room_keys(plugin, room);
            let (_, rooms, total) = plugin_keys(plugin);
            pipeline.invoke_script(RESET.key(meta).key(stream).key(rooms).key(total).arg(room)).ignore();
        }
        let mut connection = self.commands.clone();
        match pipeline.query_async::<()>(&mut connection).await {
            Ok(()) => tracing::info!(rooms = lost.len(), "cluster: rooms that lost messages start new history epochs"),
            Err(error) => {
                let mut pending = self.lost_history.lock();
                pending.extend(lost);
                tracing::warn!("cluster: cannot reset the history of rooms that lost messages: {error}");
            }
        }
    }

    /// `room`'s epoch and last offset, and its entries from offset `from`
    /// on (at most `most`), when `from` is given.
    pub(crate) async fn read_history(
        &self,
        plugin: &str,
        room: &str,
        from: Option<u64>,
        most: usize,
    ) -> Result<Stream, RedisError> {
        let (meta, stream) = room_keys(plugin, room);
        let mut connection = self.commands.clone();
        let mut invocation = READ.key(meta);
        invocation.key(stream).arg(from.unwrap_or(0)).arg(most.max(1)).arg(format!("{:016x}", random_u64()));
        let value: Value = invocation.invoke_async(&mut connection).await?;
        Ok(parse_read(value).unwrap_or_default())
    }
}

/// The reply of [`READ`].
fn parse_read(value: Value) -> Option<Stream> {
    let Value::Array(mut parts) = value else { return None };
    let entries = parts.pop()?;
    let last = match parts.pop()? {
        Value::Int(last) => u64::try_from(last).ok()?,
        _ => return None,
    };
    let epoch = match parts.pop()? {
        Value::BulkString(epoch) => Some(String::from_utf8(epoch).ok()?),
        _ => None,
    };
    let Value::Array(entries) = entries else { return None };
    let entries = entries.into_iter().filter_map(parse_entry).collect();
    Some(Stream { epoch, last, entries })
}

/// One stream entry: `[id, [t, …, x, …, d, …]]`.
fn parse_entry(entry: Value) -> Option<(u64, u64, u64, String)> {
    let Value::Array(mut entry) = entry else { return None };
    let Value::Array(fields) = entry.pop()? else { return None };
    let id = match entry.pop()? {
        Value::BulkString(id) => String::from_utf8(id).ok()?,
        Value::SimpleString(id) => id,
        _ => return None,
    };
    let offset = id.strip_suffix("-0")?.parse().ok()?;
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    let mut at = None;
    let mut except = None;
    let mut data = None;
    for pair in fields.chunks(2) {
        let [name, value] = pair else { return None };
        match text(name)?.as_str() {
            "t" => at = text(value)?.parse().ok(),
            "x" => except = text(value)?.parse().ok(),
            "d" => data = text(value),
            _ => {}
        }
    }
    Some((offset, at?, except?, data?))
}
