//! History rooms when clustered: the stream is Redis's (`cluster/history.rs`),
//! numbered by the script that publishes; this node delivers each room's
//! messages to its members in offset order, and brings members up to date
//! with reads of the stream.
//!
//! A member that joins waits until the room's subscription is in place,
//! then one read tells where the stream stands (`position`) or hands it
//! what it missed (`recovered`); messages that arrive meanwhile are held
//! for it and delivered after, those the read already covered dropped. A
//! gap in the offsets this node receives (its receive queue overflowed, its
//! subscription was lost) makes every member of the room wait for a read
//! from the last offset delivered here, so that they get the missing
//! messages in order — or `recovered:false` when the stream no longer has
//! them. A new epoch (the room's history was lost) is told as
//! `recovered:false`.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use crate::channel::Channel;
use crate::channel::history::{self, Position};
use crate::channel::peer::{ConnId, Peer, Sent};
use crate::cluster::{Stream, now_ms};

/// The history rooms with local members.
#[derive(Debug, Default)]
pub(super) struct Streams {
    rooms: HashMap<Arc<str>, RoomStream>,
    /// Numbers each room's life here, so that a read started for a room
    /// that emptied is not taken for its next life.
    generations: u64,
}

#[derive(Debug, Default)]
struct RoomStream {
    generation: u64,
    /// The room's subscription is in place: a read started now misses
    /// nothing published after it.
    live: bool,
    /// The last message delivered here: (epoch, offset).
    cursor: Option<(Arc<str>, u64)>,
    /// Members waiting for a read before they get the room's messages.
    waiting: HashMap<ConnId, Waiting>,
    /// A read is in flight.
    reading: bool,
}

#[derive(Debug)]
struct Waiting {
    asked: Asked,
    /// Messages that arrived meanwhile: (epoch, offset, except, frame).
    held: Vec<(Arc<str>, u64, u64, Message)>,
    held_bytes: usize,
    /// More arrived than an outbox holds: the member gets `recovered:false`.
    overflowed: bool,
    /// Served by the read in flight (those who came later wait for the next).
    in_read: bool,
}

/// What a waiting member is to get.
#[derive(Debug, Clone)]
enum Asked {
    /// A first join: the room's position.
    Position,
    /// A client that came back from here: the missed messages and `recovered`.
    Recover(Position),
    /// A member this node may have let miss messages after `offset`: the
    /// missed messages, silently (or `recovered:false`).
    Resync(Arc<str>, u64),
    /// A `recover` parameter that did not parse: `recovered:false`.
    Invalid,
}

impl Asked {
    /// The first offset the read must return for this member.
    fn first_wanted(&self) -> Option<u64> {
        match self {
            Asked::Recover(position) => Some(position.offset + 1),
            Asked::Resync(_, offset) => Some(offset + 1),
            Asked::Position | Asked::Invalid => None,
        }
    }
}

impl Channel {
    /// Whether this channel's rooms keep history in Redis.
    pub(super) fn streamed(&self) -> bool {
        self.cluster.is_some() && self.limits.history_size > 0
    }

    /// `publish` of a text message in a streamed room: numbered and
    /// delivered through Redis (this node's members too, when it comes
    /// back); while Redis cannot take it, delivered here unnumbered.
    /// Returns this node's members but `except`.
    pub(super) fn publish_streamed(&self, room: &str, text: &Utf8Bytes, except: Option<ConnId>) -> u32 {
        let Some(cluster) = &self.cluster else { return 0 };
        let bytes = bytes::Bytes::copy_from_slice(text.as_bytes());
        if cluster.publish_history(&self.name, room, bytes, except.unwrap_or(0), self.limits.history()) {
            let members = self.members.read();
            let local = members.rooms.get(room);
            let count = local.map_or(0, |local| local.keys().filter(|conn| Some(**conn) != except).count());
            return u32::try_from(count).unwrap_or(u32::MAX);
        }
        self.deliver_to_room(room, &Message::Text(text.clone()), except)
    }

    /// `conn` joined streamed `room`: it waits for a read.
    pub(super) fn join_stream(&self, room: &Arc<str>, conn: ConnId, asked: Result<Option<Position>, ()>) {
        let asked = match asked {
            Ok(None) => Asked::Position,
            Ok(Some(position)) => Asked::Recover(position),
            Err(()) => Asked::Invalid,
        };
        let streams = &mut *self.streams.lock();
        if !streams.rooms.contains_key(room) {
            streams.generations += 1;
            let stream = RoomStream { generation: streams.generations, ..RoomStream::default() };
            streams.rooms.insert(Arc::clone(room), stream);
        }
        let Some(stream) = streams.rooms.get_mut(room) else { return };
        stream
            .waiting
            .insert(conn, Waiting { asked, held: Vec::new(), held_bytes: 0, overflowed: false, in_read: false });
        self.start_read(room, stream);
    }

    /// `conn` left `room` (which `emptied`): it waits no more; an empty
    /// room's stream is forgotten.
    pub(super) fn leave_stream(&self, room: &str, conn: ConnId, emptied: bool) {
        let mut streams = self.streams.lock();
        if emptied {
            streams.rooms.remove(room);
        } else if let Some(stream) = streams.rooms.get_mut(room) {
            stream.waiting.remove(&conn);
        }
    }

    /// The room's subscription is in place (`again`: after a lost
    /// connection, which may have lost messages).
    pub(super) fn stream_subscribed(&self, room: &str, again: bool) {
        let members = self.members.read();
        let mut streams = self.streams.lock();
        let Some(stream) = streams.rooms.get_mut(room) else { return };
        stream.live = true;
        if again && let Some((epoch, offset)) = stream.cursor.clone() {
            for conn in members.rooms.get(room).into_iter().flat_map(|local| local.keys()) {
                stream.waiting.entry(*conn).or_insert_with(|| resync(&epoch, offset));
            }
        }
        self.start_read(room, stream);
    }

    /// A numbered message of streamed `room`, from Redis: delivered in
    /// offset order (see the module doc).
    pub(super) fn deliver_streamed(&self, room: &str, epoch: &str, offset: u64, except: u64, text: &str) {
        let members = self.members.read();
        let Some(local) = members.rooms.get(room) else { return };
        let mut streams = self.streams.lock();
        let Some(stream) = streams.rooms.get_mut(room) else { return };
        let mut gap = false;
        match &stream.cursor {
            Some((known, last)) if **known == *epoch && offset <= *last => return,
            Some((known, last)) if **known == *epoch && offset > last + 1 => {
                let (known, last) = (Arc::clone(known), *last);
                for conn in local.keys() {
                    stream.waiting.entry(*conn).or_insert_with(|| resync(&known, last));
                }
                gap = true;
            }
            Some(_) => {
                let lost = history::position_frame("recovered", room, epoch, offset.saturating_sub(1), Some(false));
                let ready = local.iter().filter(|(conn, _)| !stream.waiting.contains_key(conn));
                fan_out_each(self, ready, &lost);
            }
            None => {}
        }
        let epoch: Arc<str> = epoch.into();
        stream.cursor = Some((Arc::clone(&epoch), offset));
        let frame = history::publication(room, &epoch, offset, text);
        let (max_frames, max_bytes) = (self.limits.send_queue, self.limits.send_queue_bytes);
        let mut reached = 0;
        for (conn, peer) in local {
            if *conn == except {
                continue;
            }
            match stream.waiting.get_mut(conn) {
                Some(waiting) => waiting.hold(&epoch, offset, except, &frame, max_frames, max_bytes),
                None if peer.send(frame.clone()) == Sent::Queued => reached += 1,
                None => {}
            }
        }
        self.metrics.sent(reached, frame.len());
        // The publisher, left out, is told its position (after what it waits for).
        if let Some(peer) = local.get(&except) {
            let position = history::position_frame("position", room, &epoch, offset, None);
            match stream.waiting.get_mut(&except) {
                Some(waiting) => waiting.hold(&epoch, offset, except, &position, max_frames, max_bytes),
                None => send(self, peer, position),
            }
        }
        if gap {
            self.start_read(room, stream);
        }
    }

    /// Start a read for the members waiting in `room`, unless one is in
    /// flight or the subscription is not in place yet.
    fn start_read(&self, room: &str, stream: &mut RoomStream) {
        if stream.reading || !stream.live || stream.waiting.is_empty() {
            return;
        }
        let (Some(cluster), Some(me)) = (self.cluster.clone(), self.me.get().cloned()) else { return };
        stream.reading = true;
        let mut from = None;
        for waiting in stream.waiting.values_mut() {
            waiting.in_read = true;
            from = match (from, waiting.asked.first_wanted()) {
                (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                (a, b) => a.or(b),
            };
        }
        let (plugin, room, generation) = (Arc::clone(&self.name), room.to_owned(), stream.generation);
        let most = self.limits.history_size + 1;
        tokio::spawn(async move {
            let read = cluster.read_history(&plugin, &room, from, most).await;
            if let Err(error) = &read {
                tracing::warn!(plugin = &*plugin, room, "cannot read the room's history: {error}");
            }
            if let Some(channel) = me.upgrade() {
                channel.read_done(&room, generation, read.ok());
            }
        });
    }

    /// A read for `room` came back (`None`: it failed): each member it was
    /// for gets its frames, then what was held for it.
    fn read_done(&self, room: &str, generation: u64, read: Option<Stream>) {
        let members = self.members.read();
        let mut streams = self.streams.lock();
        let Some(stream) = streams.rooms.get_mut(room).filter(|stream| stream.generation == generation) else { return };
        stream.reading = false;
        let read = read.unwrap_or_default();
        let epoch: Arc<str> = read.epoch.clone().unwrap_or_default().into();
        match &stream.cursor {
            // Redis has no history of the room (lost, or none yet): whatever
            // comes next starts afresh, without a second `recovered:false`.
            _ if read.epoch.is_none() => stream.cursor = None,
            Some((known, last)) if *known == epoch && *last >= read.last => {}
            _ => stream.cursor = Some((Arc::clone(&epoch), read.last)),
        }
        let served: Vec<ConnId> =
            stream.waiting.iter().filter(|(_, waiting)| waiting.in_read).map(|(conn, _)| *conn).collect();
        let local = members.rooms.get(room);
        for conn in served {
            let Some(waiting) = stream.waiting.remove(&conn) else { continue };
            let Some(peer) = local.and_then(|local| local.get(&conn)) else { continue };
            for frame in self.catch_up(room, conn, &epoch, &read, waiting) {
                send(self, peer, frame);
            }
        }
        self.start_read(room, stream);
    }

    /// What `conn`, waiting with `waiting`, gets from `read`.
    fn catch_up(&self, room: &str, conn: ConnId, epoch: &Arc<str>, read: &Stream, waiting: Waiting) -> Vec<Message> {
        let last = read.last;
        let missed = |from: u64| self.missed(room, read, epoch, from, conn);
        let mut frames = match (&waiting.asked, waiting.overflowed) {
            (Asked::Position, false) => vec![history::position_frame("position", room, epoch, last, None)],
            (Asked::Recover(position), false) if *position.epoch == **epoch => match missed(position.offset) {
                Some(mut frames) => {
                    frames.push(history::position_frame("recovered", room, epoch, last, Some(true)));
                    frames
                }
                None => vec![history::position_frame("recovered", room, epoch, last, Some(false))],
            },
            (Asked::Resync(known, offset), false) if known == epoch => match missed(*offset) {
                Some(frames) => frames,
                None => vec![history::position_frame("recovered", room, epoch, last, Some(false))],
            },
            _ => vec![history::position_frame("recovered", room, epoch, last, Some(false))],
        };
        if !waiting.overflowed {
            let newer = waiting.held.into_iter().filter(|(held, offset, _, _)| held != epoch || *offset > last);
            for (held, offset, except, frame) in newer {
                frames.push(if except == conn {
                    history::position_frame("position", room, &held, offset, None)
                } else {
                    frame
                });
            }
        }
        frames
    }

    /// The messages after `from` in `read`, as publications (but those
    /// `conn` was left out of); `None` unless `read` holds every one of
    /// them, none expired.
    fn missed(&self, room: &str, read: &Stream, epoch: &str, from: u64, conn: ConnId) -> Option<Vec<Message>> {
        if from > read.last {
            return None;
        }
        let entries: Vec<_> = read.entries.iter().filter(|(offset, ..)| *offset > from).collect();
        let complete =
            entries.len() as u64 == read.last - from && entries.first().is_none_or(|(offset, ..)| *offset == from + 1);
        let ttl = u64::try_from(self.limits.history_ttl.as_millis()).unwrap_or(u64::MAX);
        let now = now_ms();
        let fresh = entries.iter().all(|(_, at, ..)| at.saturating_add(ttl) >= now);
        if !complete || !fresh {
            return None;
        }
        let frames = entries.into_iter().filter(|(_, _, except, _)| *except != conn);
        Some(frames.map(|(offset, _, _, text)| history::publication(room, epoch, *offset, text)).collect())
    }
}

impl Waiting {
    fn hold(
        &mut self,
        epoch: &Arc<str>,
        offset: u64,
        except: u64,
        frame: &Message,
        max_frames: usize,
        max_bytes: usize,
    ) {
        if self.overflowed {
            return;
        }
        if self.held.len() >= max_frames || self.held_bytes + frame.len() > max_bytes {
            self.overflowed = true;
            self.held = Vec::new();
            return;
        }
        self.held_bytes += frame.len();
        self.held.push((Arc::clone(epoch), offset, except, frame.clone()));
    }
}

fn resync(epoch: &Arc<str>, offset: u64) -> Waiting {
    Waiting {
        asked: Asked::Resync(Arc::clone(epoch), offset),
        held: Vec::new(),
        held_bytes: 0,
        overflowed: false,
        in_read: false,
    }
}

fn send(channel: &Channel, peer: &Arc<Peer>, frame: Message) {
    let bytes = frame.len();
    if peer.send(frame) == Sent::Queued {
        channel.metrics.sent(1, bytes);
    }
}

fn fan_out_each<'a>(channel: &Channel, peers: impl Iterator<Item = (&'a ConnId, &'a Arc<Peer>)>, frame: &Message) {
    for (_, peer) in peers {
        send(channel, peer, frame.clone());
    }
}
