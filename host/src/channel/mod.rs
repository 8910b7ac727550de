//! What the host keeps for each plugin: its connections, rooms, users,
//! presence and key-value store. Kept by plugin name, so it outlives any one
//! version of the plugin; every collection in it is bounded by the plugin's
//! [`Limits`].
//!
//! - `peer`: a connection as the rest of the host sees it; `outbox`: its
//!   bounded queue of outgoing frames;
//! - `presence`: who is in a tracked room, Phoenix-style;
//! - `history`: the rooms' recent messages, for clients that come back;
//!   `recovery`: publishing to them and joining them, on one node;
//! - `store`: the key-value store, bounded in keys and bytes; `kv`: the
//!   plugin's calls on it, in memory or, clustered, in Redis;
//! - `mailbox`: messages kept for users who are not connected; `offline`:
//!   `send-to-user` for them, on one node or through Redis;
//! - `timers`: the plugin's timers, and the clock they run on;
//! - `tracking`: the channel's side of presence; `users`: `set-user` and
//!   `send-to-user`;
//! - `remote`: the link to the other nodes, when clustered; `streams`: the
//!   history rooms then, whose history is in Redis.

pub(crate) mod history;
mod kv;
mod mailbox;
mod offline;
pub(crate) mod outbox;
pub(crate) mod peer;
mod presence;
mod recovery;
mod remote;
mod store;
mod streams;
pub(crate) mod timers;
mod tracking;
mod users;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio_tungstenite::tungstenite::Message;

use crate::channel::history::{History, Requested};
use crate::channel::outbox::Outgoing;
use crate::channel::peer::{ConnId, Peer, Sent};
use crate::channel::presence::Presence;
use crate::channel::store::{Store, StoreLimits};
use crate::channel::timers::{Clock, Timers};
use crate::cluster::{Cluster, Topic};
use crate::config::Limits;
use crate::metrics::PluginMetrics;
use crate::rate_limit::{TokenBucket, Verdict};
use crate::storage::Durable;

/// Why a plugin's call on its channel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallError {
    /// The connection is closed, never existed, or belongs to another plugin.
    #[error("unknown connection")]
    UnknownConnection,
    /// An argument broke a limit.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// The connections, rooms and store of one plugin.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The plugin's name, for logs.
    pub(crate) name: Arc<str>,
    /// The plugin's limits: what its calls may create.
    pub(crate) limits: Limits,
    /// Who is connected and which rooms they are in. One lock for both, so
    /// that a connection and its room memberships never disagree.
    members: RwLock<Members>,
    /// The plugin's key-value store: here, not in the plugin, so that it
    /// survives reloads and crashes.
    store: Mutex<Store>,
    /// The plugin's timers: here, so that they survive reloads.
    timers: Mutex<Timers>,
    /// The rooms' recent messages (with `history_size`). Held while a
    /// history room's message is queued for its members, so that every
    /// member gets a room's messages in offset order.
    history: Mutex<History>,
    /// Where the store and, at a graceful stop, the history are saved.
    durable: Option<Arc<Durable>>,
    /// The history rooms with local members, when clustered.
    streams: Mutex<streams::Streams>,
    /// Messages kept for users connected nowhere (one node; clustered,
    /// Redis keeps them).
    mailboxes: Mutex<mailbox::Mailboxes>,
    /// Users whose first connection here is registering in Redis.
    claims: Mutex<offline::Claims>,
    /// This channel, for the tasks it starts (reads of Redis).
    me: OnceLock<Weak<Channel>>,
    /// Wakes whoever fires the timers when they change: a timer set now
    /// may be due before the one it sleeps for.
    pub(crate) timers_changed: tokio::sync::Notify,
    /// Wakes whoever tells the plugin of presence changes made by other
    /// nodes (outside any callback of this one).
    pub(crate) presence_from_cluster: tokio::sync::Notify,
    /// What timers are set and fired by: real time, or a test's.
    pub(crate) clock: Clock,
    /// Connections admitted (upgrading or open), for `max_connections`:
    /// reserved before the upgrade, so that concurrent upgrades cannot
    /// overshoot the cap.
    admitted: AtomicUsize,
    /// The plugin's log rate: one plugin cannot flood the server's log.
    log: Mutex<LogBudget>,
    /// Presence changes not told to `on-presence` because a callback
    /// caused more than `max_presence_events`.
    presence_events_dropped: AtomicU64,
    /// The plugin's own metrics (empty unless metrics are served): counts
    /// what the plugin's calls queue, once per fan-out.
    pub(crate) metrics: PluginMetrics,
    /// The other nodes, when clustered: what is published here goes there
    /// too, and this channel subscribes to the rooms and users it holds.
    cluster: Option<Arc<Cluster>>,
}

#[derive(Debug, Default)]
struct Members {
    /// Every open connection of the channel and the rooms it is in.
    peers: HashMap<ConnId, Member>,
    /// Room name → its members. Holds the peers themselves so that a publish
    /// does one lookup per room, not one per recipient.
    rooms: HashMap<Arc<str>, HashMap<ConnId, Arc<Peer>>>,
    /// User id → that user's connections (`set-user`), for `send-to-user`.
    users: HashMap<Arc<str>, HashMap<ConnId, Arc<Peer>>>,
    /// Who is in the rooms whose presence the plugin tracks.
    presence: Presence,
    /// Presence changes the plugin has not been told of yet: (room, joins, leaves).
    presence_events: Vec<PresenceEvent>,
}

/// A change of who is in a room: the room, users who arrived, users who left.
pub(crate) type PresenceEvent = (String, Vec<String>, Vec<String>);

#[derive(Debug)]
struct Member {
    /// The connection, as rooms and users hold it too.
    peer: Arc<Peer>,
    rooms: HashSet<Arc<str>>,
    /// The positions it asked to recover from, used at its joins.
    recover: Requested,
    /// The user this connection is bound to; kept after it closes, until
    /// `remove`, so that `on-close` can still ask.
    user: Option<Arc<str>>,
}

/// What `GET /api/plugins` shows of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) connections: usize,
    pub(crate) rooms: usize,
    pub(crate) tracked_rooms: usize,
    pub(crate) kv_keys: usize,
    pub(crate) kv_bytes: usize,
    pub(crate) history_rooms: usize,
    pub(crate) history_bytes: usize,
    pub(crate) mailbox_users: usize,
    pub(crate) mailbox_bytes: usize,
    pub(crate) timers: usize,
    pub(crate) log_dropped: u64,
    pub(crate) presence_events_dropped: u64,
}

/// Whether a plugin may write a log record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogVerdict {
    /// Write it; `dropped` records were dropped since the last one written.
    Write { dropped: u64 },
    /// Drop it.
    Drop,
}

#[derive(Debug)]
struct LogBudget {
    bucket: TokenBucket,
    /// Dropped since the last record written, reported with the next one.
    dropped_since: u64,
    /// Dropped in all.
    dropped: u64,
}

impl Channel {
    /// The channel of plugin `name`; its store is loaded from `durable`
    /// (and written back to it), when there is one.
    pub(crate) fn new(name: &str, limits: Limits, durable: Option<Arc<Durable>>) -> Channel {
        let store_limits = store_limits(&limits);
        let store = match durable.clone() {
            Some(durable) => Store::load(store_limits, durable, name.into()),
            None => Store::new(store_limits),
        };
        let log = LogBudget {
            bucket: TokenBucket::new(limits.log_records_per_second, limits.log_burst),
            dropped_since: 0,
            dropped: 0,
        };
        let timers = Timers::new(limits.max_timers, limits.min_timer_interval);
        let mut history = History::new(limits.history());
        if let Some(durable) = &durable {
            match durable.take_history(name) {
                Ok(rooms) if history.enabled() => history.restore(rooms, Instant::now()),
                Ok(_) => {}
                Err(error) => tracing::error!(plugin = name, "the rooms' saved history cannot be read: {error}"),
            }
        }
        Channel {
            history: Mutex::new(history),
            durable: durable.clone(),
            streams: Mutex::default(),
            mailboxes: Mutex::new(mailbox::Mailboxes::open(limits.mailbox(), durable.as_ref(), name)),
            claims: Mutex::default(),
            me: OnceLock::new(),
            name: name.into(),
            limits,
            timers: Mutex::new(timers),
            members: RwLock::new(Members::default()),
            store: Mutex::new(store),
            timers_changed: tokio::sync::Notify::new(),
            presence_from_cluster: tokio::sync::Notify::new(),
            clock: Clock::default(),
            admitted: AtomicUsize::new(0),
            log: Mutex::new(log),
            presence_events_dropped: AtomicU64::new(0),
            metrics: PluginMetrics::default(),
            cluster: None,
        }
    }

    /// The same channel, recording to `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: PluginMetrics) -> Channel {
        self.metrics = metrics;
        self
    }

    /// The same channel, its timers run by `clock`.
    pub(crate) fn with_clock(mut self, clock: Clock) -> Channel {
        self.clock = clock;
        self
    }

    /// Count one more connection (upgrading or open), unless the plugin has
    /// `max_connections` already; [`Channel::release`] undoes it.
    pub(crate) fn admit(&self) -> bool {
        let max = self.limits.max_connections;
        self.admitted.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).is_ok()
    }

    /// A connection counted by [`Channel::admit`] ended.
    pub(crate) fn release(&self) {
        self.admitted.fetch_sub(1, Ordering::SeqCst);
    }

    /// A new connection joins the channel (in no room yet), asking to
    /// recover the history rooms of `recover` when it joins them.
    pub(crate) fn add(&self, peer: Arc<Peer>, recover: Requested) {
        let conn = peer.id;
        self.members.write().peers.insert(conn, Member { peer, rooms: HashSet::new(), recover, user: None });
    }

    /// Take a connection out of all its rooms (and out of its user's
    /// connections); returns the rooms' names. The connection itself stays
    /// known (its metadata and user readable) until `remove`.
    pub(crate) fn leave_all(&self, conn: ConnId) -> Vec<String> {
        let mut members = self.members.write();
        let Some(member) = members.peers.get_mut(&conn) else { return Vec::new() };
        let left: Vec<Arc<str>> = member.rooms.drain().collect();
        let user = member.user.clone();
        for room in &left {
            self.leave_room(&mut members, room, conn, user.as_ref());
        }
        if let Some(user) = &user
            && remove_from_group(&mut members.users, user, conn)
        {
            self.subscribe(Topic::User(user), false);
            self.last_connection_of(user);
        }
        left.iter().map(|room| room.to_string()).collect()
    }

    /// Forget a connection entirely.
    pub(crate) fn remove(&self, conn: ConnId) -> Option<Arc<Peer>> {
        self.leave_all(conn);
        self.members.write().peers.remove(&conn).map(|member| Arc::clone(&member.peer))
    }

    pub(crate) fn peer(&self, conn: ConnId) -> Result<Arc<Peer>, CallError> {
        let members = self.members.read();
        members.peers.get(&conn).map(|member| Arc::clone(&member.peer)).ok_or(CallError::UnknownConnection)
    }

    /// Every open connection, e.g. to close them all.
    pub(crate) fn peers(&self) -> Vec<Arc<Peer>> {
        self.members.read().peers.values().map(|member| Arc::clone(&member.peer)).collect()
    }

    pub(crate) fn stats(&self) -> Stats {
        let (connections, rooms, tracked_rooms) = {
            let members = self.members.read();
            (members.peers.len(), members.rooms.len(), members.presence.len())
        };
        let (kv_keys, kv_bytes) = {
            let store = self.store.lock();
            (store.len(), store.bytes())
        };
        let (history_rooms, history_bytes) = self.history.lock().size();
        let (mailbox_users, mailbox_bytes) = self.mailboxes.lock().size();
        Stats {
            mailbox_users,
            mailbox_bytes,
            connections,
            history_rooms,
            history_bytes,
            rooms,
            tracked_rooms,
            kv_keys,
            kv_bytes,
            timers: self.timers.lock().len(),
            log_dropped: self.log.lock().dropped,
            presence_events_dropped: self.presence_events_dropped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn join(&self, conn: ConnId, room: &str) -> Result<(), CallError> {
        self.check_name("room name", room)?;
        let mut guard = self.members.write();
        let members = &mut *guard;
        let member = members.peers.get_mut(&conn).ok_or(CallError::UnknownConnection)?;
        if member.rooms.contains(room) {
            return Ok(());
        }
        let max_rooms = self.limits.max_rooms;
        if !members.rooms.contains_key(room) && members.rooms.len() >= max_rooms {
            return Err(CallError::InvalidArgument(format!("too many rooms (the limit is {max_rooms})")));
        }
        let room: Arc<str> = room.into();
        member.rooms.insert(Arc::clone(&room));
        let local = members.rooms.entry(Arc::clone(&room)).or_default();
        if local.is_empty() {
            self.subscribe(Topic::Room(&room), true);
        }
        local.insert(conn, Arc::clone(&member.peer));
        if self.limits.history_size > 0 {
            self.join_history(&room, member);
        }
        if members.presence.is_tracked(&room) {
            let peer = Arc::clone(&member.peer);
            let user = member.user.clone();
            let change = user.and_then(|user| self.arrive(members, &room, &user));
            let state = members.presence.state_frame(&room);
            let bytes = state.len();
            if peer.send(state) == Sent::Queued {
                self.metrics.sent(1, bytes);
            }
            if let Some(change) = change {
                self.announce(members, &room, &[change], Some(conn));
            }
        }
        Ok(())
    }

    pub(crate) fn leave(&self, conn: ConnId, room: &str) -> Result<(), CallError> {
        let mut members = self.members.write();
        let member = members.peers.get_mut(&conn).ok_or(CallError::UnknownConnection)?;
        if let Some(room) = member.rooms.take(room) {
            let user = member.user.clone();
            self.leave_room(&mut members, &room, conn, user.as_ref());
        }
        Ok(())
    }

    /// Take `conn` (bound to `user`) out of `room`'s members and presence; a
    /// room that empties is forgotten, its presence tracking too.
    fn leave_room(&self, members: &mut Members, room: &str, conn: ConnId, user: Option<&Arc<str>>) {
        let emptied = remove_from_group(&mut members.rooms, room, conn);
        if let Some(change) = user.and_then(|user| self.depart(members, room, user)) {
            self.announce(members, room, &[change], None);
        }
        if emptied {
            members.presence.forget(room);
            self.subscribe(Topic::Room(room), false);
        }
        if self.streamed() {
            self.leave_stream(room, conn, emptied);
        }
    }

    /// Attach a metadata value to a connection.
    pub(crate) fn set_meta(&self, conn: ConnId, key: String, value: String) -> Result<(), CallError> {
        self.check_name("key", &key)?;
        let max_value = self.limits.max_meta_value_size;
        if value.len() > max_value {
            return Err(CallError::InvalidArgument(format!("value longer than {max_value} bytes")));
        }
        self.peer(conn)?
            .set_meta(key, value, self.limits.max_meta_keys)
            .map_err(|max| CallError::InvalidArgument(format!("too many metadata keys (the limit is {max})")))
    }

    pub(crate) fn rooms_of(&self, conn: ConnId) -> Result<Vec<String>, CallError> {
        let members = self.members.read();
        let member = members.peers.get(&conn).ok_or(CallError::UnknownConnection)?;
        Ok(member.rooms.iter().map(|room| room.to_string()).collect())
    }

    pub(crate) fn room_members(&self, room: &str) -> Vec<ConnId> {
        self.members.read().rooms.get(room).map(|room| room.keys().copied().collect()).unwrap_or_default()
    }

    pub(crate) fn room_size(&self, room: &str) -> usize {
        self.members.read().rooms.get(room).map_or(0, HashMap::len)
    }

    /// Queue `frame` for every member of `room` but `except`, on every
    /// node; the frame's bytes are shared, not copied. Returns how many of
    /// this node's members got it.
    pub(crate) fn publish(&self, room: &str, frame: &Message, except: Option<ConnId>) -> u32 {
        if self.limits.history_size > 0
            && let Message::Text(text) = frame
        {
            return match self.cluster {
                Some(_) => self.publish_streamed(room, text, except),
                None => self.publish_numbered(room, frame, except),
            };
        }
        let reached = self.deliver_to_room(room, frame, except);
        self.publish_to_cluster(Topic::Room(room), frame);
        reached
    }

    fn deliver_to_room(&self, room: &str, frame: &Message, except: Option<ConnId>) -> u32 {
        let members = self.members.read();
        let Some(room) = members.rooms.get(room) else { return 0 };
        fan_out(&self.metrics, room.iter(), frame, except)
    }

    /// Queue `frame` for every connection of the plugin but `except`, on
    /// every node; returns how many of this node's got it.
    pub(crate) fn broadcast(&self, frame: &Message, except: Option<ConnId>) -> u32 {
        let reached = self.deliver_to_all(frame, except);
        self.publish_to_cluster(Topic::All, frame);
        reached
    }

    fn deliver_to_all(&self, frame: &Message, except: Option<ConnId>) -> u32 {
        let members = self.members.read();
        fan_out(&self.metrics, members.peers.iter().map(|(conn, member)| (conn, &member.peer)), frame, except)
    }

    /// Save the rooms' history for the next start (a graceful stop, once
    /// no callback runs).
    pub(crate) fn save_history(&self) {
        let Some(durable) = &self.durable else { return };
        let rooms = self.history.lock().save(self.clock.now());
        if let Err(error) = durable.save_history(&self.name, &rooms) {
            tracing::error!(plugin = &*self.name, "the rooms' history cannot be saved: {error}");
        }
    }

    /// Set (or replace) timer `name`, due in `after` (and every `after` if `repeat`).
    pub(crate) fn set_timer(&self, name: String, after: Duration, repeat: bool) -> Result<(), CallError> {
        self.check_name("timer name", &name)?;
        self.timers.lock().set(name, after, repeat, self.clock.now())?;
        self.timers_changed.notify_one();
        Ok(())
    }

    pub(crate) fn cancel_timer(&self, name: &str) -> bool {
        self.timers.lock().cancel(name)
    }

    /// Drop every timer (the plugin is unloaded).
    pub(crate) fn clear_timers(&self) {
        self.timers.lock().clear();
        self.timers_changed.notify_one();
    }

    /// When the next timer is due.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.lock().next_due()
    }

    /// The timers due at `now`, earliest first (see `Timers::take_due`).
    pub(crate) fn take_due_timers(&self, now: Instant) -> Vec<String> {
        self.timers.lock().take_due(now)
    }

    /// Whether the plugin may write a log record now (its log rate).
    pub(crate) fn log_verdict(&self) -> LogVerdict {
        let mut log = self.log.lock();
        match log.bucket.take(Instant::now()) {
            Verdict::Allow => LogVerdict::Write { dropped: std::mem::take(&mut log.dropped_since) },
            Verdict::Refuse { .. } | Verdict::Disconnect => {
                log.dropped_since += 1;
                log.dropped += 1;
                LogVerdict::Drop
            }
        }
    }

    /// Refuse names that are empty or too long.
    pub(crate) fn check_name(&self, what: &str, name: &str) -> Result<(), CallError> {
        let max = self.limits.max_name_size;
        if name.is_empty() || name.len() > max {
            return Err(CallError::InvalidArgument(format!("{what} must be 1 to {max} bytes")));
        }
        Ok(())
    }
}

/// Queue `frame` for each recipient but `except`; returns how many got it,
/// and counts them in `metrics` once, not per recipient.
fn fan_out<'a>(
    metrics: &PluginMetrics,
    recipients: impl Iterator<Item = (&'a ConnId, &'a Arc<Peer>)>,
    frame: &Message,
    except: Option<ConnId>,
) -> u32 {
    let mut reached = 0;
    // Cloned for each recipient: a reference count, not the payload; and a
    // compressed form made once, if anyone needs it.
    let shared = Outgoing::shared(frame.clone());
    for (_, recipient) in recipients.filter(|(conn, _)| Some(**conn) != except) {
        if recipient.send(shared.clone()) == Sent::Queued {
            reached += 1;
        }
    }
    metrics.sent(reached, frame.len());
    reached
}

fn store_limits(limits: &Limits) -> StoreLimits {
    StoreLimits {
        max_keys: limits.kv_max_keys,
        max_key_size: limits.max_name_size,
        max_value_size: limits.kv_max_value_size,
        max_bytes: limits.kv_max_bytes,
    }
}

/// Take `conn` out of a room or a user's connections; drop the group when
/// empty, and say so.
fn remove_from_group(groups: &mut HashMap<Arc<str>, HashMap<ConnId, Arc<Peer>>>, name: &str, conn: ConnId) -> bool {
    let Some(members) = groups.get_mut(name) else { return false };
    members.remove(&conn);
    if members.is_empty() {
        groups.remove(name);
        return true;
    }
    false
}

#[cfg(test)]
mod tests;
