//! Room history, so that a client that comes back gets exactly what it
//! missed (Centrifugo's model). On for every room of a plugin whose
//! `history_size` limit is above 0.
//!
//! Each text message published to a room is numbered: it reaches the
//! members as `{"type":"publication","room":R,"epoch":E,"offset":N,"data":…}`
//! (`"text":"…"` instead of `data` when the payload is not JSON) and is kept
//! in the room's ring, bounded by `history_size` messages,
//! `history_room_bytes` and `history_ttl`; the plugin's rings together by
//! `history_rooms` and `history_bytes` (the least recently used room's
//! history goes first). The epoch names one ring's life: a new ring (after
//! a restart, or an eviction) has a new one, so that offsets of an old life
//! are never taken for offsets of the new one.
//!
//! A client that reconnects passes its last position per room in the query
//! (`?recover={"lobby":{"epoch":"…","offset":41}}`, since browsers cannot
//! set WebSocket headers). When the plugin joins it to one of those rooms,
//! it gets the missed messages in order, then
//! `{"type":"recovered","room":R,"recovered":true,…}`; or, when the ring no
//! longer covers the gap (trimmed, expired, another epoch), nothing but
//! `"recovered":false`, so that it can ask for a full snapshot. A join
//! without a position gets `{"type":"position",…}`: where the room's stream
//! stands, to come back from. A publisher left out of its own message
//! (`except`) gets its position too, so that its own message is not
//! replayed to it.
//!
//! Binary messages are delivered as they are and not kept.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::config::HistoryBounds;
use crate::random::random_u64;

/// The most rooms one `?recover=` may name: a client remembers the rooms
/// it was in, not every room it ever saw.
pub(crate) const MAX_RECOVER_ROOMS: usize = 100;
/// What an entry costs beyond its bytes (its place in the ring, the shared
/// buffer's header), for the byte caps.
const ENTRY_OVERHEAD: usize = 64;

/// The rings of one plugin's rooms.
#[derive(Debug)]
pub(crate) struct History {
    limits: HistoryBounds,
    rooms: HashMap<Arc<str>, Ring>,
    /// Bytes of every ring's entries, for `history_bytes`.
    bytes: usize,
    /// Counts uses, to find the least recently used ring.
    clock: u64,
}

/// One room's stream.
#[derive(Debug)]
struct Ring {
    epoch: Arc<str>,
    /// The offset of the room's latest message (0: none yet).
    last: u64,
    /// The messages still kept, oldest first, with when they were published.
    entries: VecDeque<(u64, Instant, Message)>,
    bytes: usize,
    /// `History::clock` when last used.
    used: u64,
}

/// A ring as a graceful stop saves it (`Durable::save_history`) and the
/// next start restores it.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    epoch: String,
    last: u64,
    /// (offset, when published in ms since the Unix epoch, the frame).
    entries: Vec<(u64, u64, String)>,
}

/// Where a client stood in a room's stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Position {
    pub(crate) epoch: String,
    pub(crate) offset: u64,
}

/// What a connection asked to recover (`?recover=`), room by room.
#[derive(Debug, Default)]
pub(crate) enum Requested {
    /// Nothing: a first connection.
    #[default]
    Nothing,
    /// These rooms, from these positions; each is used once, at the join.
    Rooms(HashMap<String, Position>),
    /// A `recover` parameter that does not parse: every history room it
    /// joins answers `recovered:false`.
    Invalid,
}

impl Requested {
    /// The `recover` parameter of a connection's query, if any.
    pub(crate) fn from_query(query: &[(String, String)]) -> Requested {
        let Some((_, value)) = query.iter().find(|(name, _)| name == "recover") else { return Requested::Nothing };
        match serde_json::from_str::<HashMap<String, Position>>(value) {
            Ok(rooms) if rooms.len() <= MAX_RECOVER_ROOMS => Requested::Rooms(rooms),
            Ok(_) => {
                tracing::info!("recover names more than {MAX_RECOVER_ROOMS} rooms: nothing will be recovered");
                Requested::Invalid
            }
            Err(error) => {
                tracing::info!("recover parameter refused ({error}): nothing will be recovered");
                Requested::Invalid
            }
        }
    }

    /// The position asked for `room` (taken: a second join starts afresh);
    /// `Err` when the parameter was invalid.
    pub(crate) fn take(&mut self, room: &str) -> Result<Option<Position>, ()> {
        match self {
            Requested::Nothing => Ok(None),
            Requested::Rooms(rooms) => Ok(rooms.remove(room)),
            Requested::Invalid => Err(()),
        }
    }
}

impl History {
    pub(crate) fn new(limits: HistoryBounds) -> History {
        History { limits, rooms: HashMap::new(), bytes: 0, clock: 0 }
    }

    /// Whether the plugin keeps history at all.
    pub(crate) fn enabled(&self) -> bool {
        self.limits.size > 0
    }

    /// Keep nothing from now on; returns whether history was on.
    pub(crate) fn disable(&mut self) -> bool {
        self.rooms.clear();
        self.bytes = 0;
        std::mem::replace(&mut self.limits.size, 0) > 0
    }

    /// Number and keep a message published to `room`: the frame its members
    /// get, and the position frame for a publisher left out of it. `None`
    /// for a binary message, which is not kept.
    pub(crate) fn publish(&mut self, room: &str, message: &Message, now: Instant) -> Option<(Message, Message)> {
        let Message::Text(text) = message else { return None };
        let limits = self.limits;
        let ring = self.ring(room, now);
        ring.last += 1;
        let offset = ring.last;
        let epoch = Arc::clone(&ring.epoch);
        let frame = publication(room, &epoch, offset, text.as_str());
        let cost = frame.len() + room.len() + ENTRY_OVERHEAD;
        ring.entries.push_back((offset, now, frame.clone()));
        ring.bytes += cost;
        let mut freed = 0;
        while ring.entries.len() > limits.size || ring.bytes > limits.room_bytes {
            freed += ring.pop_front(room);
        }
        self.bytes = self.bytes + cost - freed;
        while self.bytes > limits.bytes && self.rooms.len() > 1 {
            self.evict_least_recently_used(room);
        }
        Some((frame, position_frame("position", room, &epoch, offset, None)))
    }

    /// The frames a connection joining `room` gets before anything else of
    /// the room: the missed messages and `recovered`, or `position`.
    pub(crate) fn join(&mut self, room: &str, asked: Result<Option<Position>, ()>, now: Instant) -> Vec<Message> {
        let ring = self.ring(room, now);
        let (epoch, last) = (Arc::clone(&ring.epoch), ring.last);
        let replay = match asked {
            Ok(None) => return vec![position_frame("position", room, &epoch, last, None)],
            Ok(Some(position)) => ring.since(&position),
            Err(()) => None,
        };
        let recovered = replay.is_some();
        let mut frames = replay.unwrap_or_default();
        frames.push(position_frame("recovered", room, &epoch, last, Some(recovered)));
        frames
    }

    /// `room`'s ring, created (with a new epoch) when there is none; its
    /// expired entries dropped.
    fn ring(&mut self, room: &str, now: Instant) -> &mut Ring {
        self.clock += 1;
        if !self.rooms.contains_key(room) {
            while self.rooms.len() >= self.limits.rooms.max(1) {
                self.evict_least_recently_used(room);
            }
            let ring = Ring {
                epoch: format!("{:016x}", random_u64()).into(),
                last: 0,
                entries: VecDeque::new(),
                bytes: 0,
                used: 0,
            };
            self.rooms.insert(room.into(), ring);
        }
        let (clock, ttl) = (self.clock, self.limits.ttl);
        let Some(ring) = self.rooms.get_mut(room) else { unreachable!("inserted above") };
        ring.used = clock;
        let mut freed = 0;
        while ring.entries.front().is_some_and(|(_, at, _)| now.saturating_duration_since(*at) > ttl) {
            freed += ring.pop_front(room);
        }
        self.bytes -= freed;
        ring
    }

    /// Drop the history of the room used longest ago (but `keep`).
    fn evict_least_recently_used(&mut self, keep: &str) {
        let oldest = self.rooms.iter().filter(|(room, _)| &***room != keep).min_by_key(|(_, ring)| ring.used);
        let Some(oldest) = oldest.map(|(room, _)| Arc::clone(room)) else { return };
        if let Some(ring) = self.rooms.remove(&oldest) {
            self.bytes -= ring.bytes;
        }
    }

    /// Every ring, encoded for `Durable::save_history`.
    pub(crate) fn save(&self, now: Instant) -> Vec<(String, Vec<u8>)> {
        let wall = unix_ms(SystemTime::now());
        let saved = self.rooms.iter().map(|(room, ring)| {
            let entries = ring.entries.iter().filter_map(|(offset, at, frame)| {
                let age = u64::try_from(now.saturating_duration_since(*at).as_millis()).unwrap_or(u64::MAX);
                Some((*offset, wall.saturating_sub(age), frame.to_text().ok()?.to_owned()))
            });
            let saved = Saved { epoch: ring.epoch.to_string(), last: ring.last, entries: entries.collect() };
            (room.to_string(), serde_json::to_vec(&saved).unwrap_or_default())
        });
        saved.collect()
    }

    /// Take back the rings the previous run saved, within today's limits.
    pub(crate) fn restore(&mut self, rooms: Vec<(String, Vec<u8>)>, now: Instant) {
        let wall = unix_ms(SystemTime::now());
        for (room, bytes) in rooms {
            let saved: Saved = match serde_json::from_slice(&bytes) {
                Ok(saved) => saved,
                Err(error) => {
                    tracing::warn!(room, "saved history cannot be read, dropped: {error}");
                    continue;
                }
            };
            if self.rooms.len() >= self.limits.rooms {
                break;
            }
            let mut ring =
                Ring { epoch: saved.epoch.into(), last: saved.last, entries: VecDeque::new(), bytes: 0, used: 0 };
            for (offset, published, frame) in saved.entries {
                let age = Duration::from_millis(wall.saturating_sub(published));
                let frame = Message::text(frame);
                ring.bytes += frame.len() + room.len() + ENTRY_OVERHEAD;
                ring.entries.push_back((offset, now.checked_sub(age).unwrap_or(now), frame));
            }
            while ring.entries.len() > self.limits.size || ring.bytes > self.limits.room_bytes {
                ring.pop_front(&room);
            }
            self.bytes += ring.bytes;
            self.rooms.insert(room.into(), ring);
        }
        while self.bytes > self.limits.bytes && !self.rooms.is_empty() {
            self.evict_least_recently_used("");
        }
    }

    /// Rooms and bytes kept, for the stats.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.rooms.len(), self.bytes)
    }
}

impl Ring {
    /// Drop the oldest entry; returns the bytes it cost.
    fn pop_front(&mut self, room: &str) -> usize {
        let Some((_, _, frame)) = self.entries.pop_front() else { return 0 };
        let cost = frame.len() + room.len() + ENTRY_OVERHEAD;
        self.bytes -= cost;
        cost
    }

    /// Every message after `position`, or `None` when the ring no longer
    /// holds them all (or the position is of another life).
    fn since(&self, position: &Position) -> Option<Vec<Message>> {
        if *position.epoch != *self.epoch || position.offset > self.last {
            return None;
        }
        let first_kept = self.entries.front().map_or(self.last + 1, |(offset, _, _)| *offset);
        if position.offset + 1 < first_kept {
            return None;
        }
        let missed = self.entries.iter().filter(|(offset, _, _)| *offset > position.offset);
        Some(missed.map(|(_, _, frame)| frame.clone()).collect())
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// A message of a history room, as its members get it.
pub(crate) fn publication(room: &str, epoch: &str, offset: u64, text: &str) -> Message {
    let head = json!({ "type": "publication", "room": room, "epoch": epoch, "offset": offset }).to_string();
    let head = head.strip_suffix('}').unwrap_or(&head);
    let frame = if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        format!("{head},\"data\":{text}}}")
    } else {
        format!("{head},\"text\":{}}}", serde_json::Value::from(text))
    };
    Message::text(frame)
}

/// `{"type":<kind>,"room":R,"epoch":E,"offset":N}`, with `recovered` when given.
pub(crate) fn position_frame(kind: &str, room: &str, epoch: &str, offset: u64, recovered: Option<bool>) -> Message {
    let mut frame = json!({ "type": kind, "room": room, "epoch": epoch, "offset": offset });
    if let Some(recovered) = recovered {
        frame["recovered"] = recovered.into();
    }
    Message::text(frame.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(recover: &str) -> Vec<(String, String)> {
        vec![("user".into(), "ann".into()), ("recover".into(), recover.into())]
    }

    #[test]
    fn a_recover_parameter_names_at_most_so_many_rooms_and_must_parse() {
        let rooms = |count: usize| {
            let positions: Vec<String> =
                (0..count).map(|n| format!("\"r{n}\":{{\"epoch\":\"e\",\"offset\":1}}")).collect();
            format!("{{{}}}", positions.join(","))
        };
        let mut within = Requested::from_query(&query(&rooms(MAX_RECOVER_ROOMS)));
        assert_eq!(within.take("r0"), Ok(Some(Position { epoch: "e".into(), offset: 1 })));
        assert_eq!(within.take("r0"), Ok(None), "a position is used once");
        assert!(matches!(Requested::from_query(&query(&rooms(MAX_RECOVER_ROOMS + 1))), Requested::Invalid));
        assert!(matches!(Requested::from_query(&query("{not json")), Requested::Invalid));
        assert!(matches!(Requested::from_query(&[]), Requested::Nothing));
    }
}
