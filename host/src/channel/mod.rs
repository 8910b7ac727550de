//! A plugin's share of the host: its connections, its rooms and its
//! key-value store. Kept by name, so it outlives any one version of the plugin.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio_tungstenite::tungstenite::Message;

use crate::peer::{ConnId, Peer};
use crate::presence::{Change, Presence};

/// Longest room name, metadata key or store key a plugin may use, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 1024;
/// Largest metadata value, in bytes.
pub(crate) const MAX_META_VALUE_LEN: usize = 64 * 1024;
/// Largest value in the key-value store, in bytes.
pub(crate) const MAX_KV_VALUE_LEN: usize = 1 << 20;
/// Most keys one plugin may keep in its store.
pub(crate) const MAX_KV_KEYS: usize = 100_000;

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
    /// Who is connected and which rooms they are in. One lock for both, so
    /// that a connection and its room memberships never disagree.
    members: RwLock<Members>,
    /// The plugin's key-value store: here, not in the plugin, so that it
    /// survives reloads and crashes.
    store: Mutex<HashMap<String, Vec<u8>>>,
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
    /// The user this connection is bound to; kept after it closes, until
    /// `remove`, so that `on-close` can still ask.
    user: Option<Arc<str>>,
}

impl Channel {
    pub(crate) fn new(name: &str) -> Channel {
        Channel { name: name.into(), members: RwLock::new(Members::default()), store: Mutex::new(HashMap::new()) }
    }

    /// A new connection joins the channel (in no room yet).
    pub(crate) fn add(&self, peer: Arc<Peer>) {
        let conn = peer.id;
        self.members.write().peers.insert(conn, Member { peer, rooms: HashSet::new(), user: None });
    }

    /// Take a connection out of all its rooms (and out of its user's
    /// connections); returns the rooms' names. The connection itself stays
    /// known (its metadata and user readable) until `remove`.
    pub(crate) fn leave_all(&self, conn: ConnId) -> Vec<String> {
        let mut members = self.members.write();
        let Members { peers, rooms, users, presence, presence_events } = &mut *members;
        let Some(member) = peers.get_mut(&conn) else { return Vec::new() };
        let left: Vec<Arc<str>> = member.rooms.drain().collect();
        for room in &left {
            remove_from_group(rooms, room, conn);
            if let Some(change) = member.user.as_ref().and_then(|user| presence.depart(room, user)) {
                announce(rooms, presence, presence_events, room, &[change], None);
            }
        }
        if let Some(user) = &member.user {
            remove_from_group(users, user, conn);
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

    pub(crate) fn connection_count(&self) -> usize {
        self.members.read().peers.len()
    }

    pub(crate) fn join(&self, conn: ConnId, room: &str) -> Result<(), CallError> {
        check_name("room name", room)?;
        let mut members = self.members.write();
        let Members { peers, rooms, presence, presence_events, .. } = &mut *members;
        let member = peers.get_mut(&conn).ok_or(CallError::UnknownConnection)?;
        if !member.rooms.contains(room) {
            let room: Arc<str> = room.into();
            member.rooms.insert(Arc::clone(&room));
            rooms.entry(Arc::clone(&room)).or_default().insert(conn, Arc::clone(&member.peer));
            if presence.is_tracked(&room) {
                let change = member.user.as_ref().and_then(|user| presence.arrive(&room, user));
                member.peer.send(presence.state_frame(&room));
                if let Some(change) = change {
                    announce(rooms, presence, presence_events, &room, &[change], Some(conn));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn leave(&self, conn: ConnId, room: &str) -> Result<(), CallError> {
        let mut members = self.members.write();
        let Members { peers, rooms, presence, presence_events, .. } = &mut *members;
        let member = peers.get_mut(&conn).ok_or(CallError::UnknownConnection)?;
        if member.rooms.remove(room) {
            remove_from_group(rooms, room, conn);
            if let Some(change) = member.user.as_ref().and_then(|user| presence.depart(room, user)) {
                announce(rooms, presence, presence_events, room, &[change], None);
            }
        }
        Ok(())
    }

    /// Bind a connection to a user, replacing an earlier binding.
    pub(crate) fn set_user(&self, conn: ConnId, user: &str) -> Result<(), CallError> {
        check_name("user id", user)?;
        let mut members = self.members.write();
        let Members { peers, rooms, users, presence, presence_events } = &mut *members;
        let member = peers.get_mut(&conn).ok_or(CallError::UnknownConnection)?;
        let user: Arc<str> = user.into();
        let previous = member.user.replace(Arc::clone(&user));
        if let Some(previous) = &previous {
            remove_from_group(users, previous, conn);
        }
        users.entry(Arc::clone(&user)).or_default().insert(conn, Arc::clone(&member.peer));
        for room in &member.rooms {
            let left = previous.as_ref().and_then(|previous| presence.depart(room, previous));
            let changes: Vec<Change> = left.into_iter().chain(presence.arrive(room, &user)).collect();
            if !changes.is_empty() {
                announce(rooms, presence, presence_events, room, &changes, None);
            }
        }
        Ok(())
    }

    /// Track presence in `room` from now on.
    pub(crate) fn track_presence(&self, room: &str) -> Result<(), CallError> {
        check_name("room name", room)?;
        let mut members = self.members.write();
        let Members { peers, rooms, presence, .. } = &mut *members;
        let in_room = rooms.get(room).into_iter().flat_map(|members| members.keys());
        let users = in_room.filter_map(|conn| peers.get(conn)?.user.as_ref());
        presence.track(&Arc::from(room), users);
        Ok(())
    }

    /// Whether presence changed since the last `take_presence_events`: a
    /// shared lock, for the check after every callback.
    pub(crate) fn presence_changed(&self) -> bool {
        !self.members.read().presence_events.is_empty()
    }

    /// The presence changes since the last call, for `on-presence`.
    pub(crate) fn take_presence_events(&self) -> Vec<PresenceEvent> {
        std::mem::take(&mut self.members.write().presence_events)
    }

    /// Who is in `room`, when its presence is tracked.
    pub(crate) fn presence(&self, room: &str) -> Vec<(String, u32)> {
        self.members.read().presence.users(room)
    }

    pub(crate) fn user_of(&self, conn: ConnId) -> Result<Option<String>, CallError> {
        let members = self.members.read();
        let member = members.peers.get(&conn).ok_or(CallError::UnknownConnection)?;
        Ok(member.user.as_deref().map(str::to_owned))
    }

    /// Queue `frame` for every open connection of `user`.
    pub(crate) fn send_to_user(&self, user: &str, frame: &Message) -> u32 {
        let members = self.members.read();
        let Some(connections) = members.users.get(user) else { return 0 };
        fan_out(connections.iter(), frame, None)
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

    /// Queue `frame` for every member of `room` but `except`; the frame's
    /// bytes are shared, not copied. Returns how many got it.
    pub(crate) fn publish(&self, room: &str, frame: &Message, except: Option<ConnId>) -> u32 {
        let members = self.members.read();
        let Some(room) = members.rooms.get(room) else { return 0 };
        fan_out(room.iter(), frame, except)
    }

    /// Queue `frame` for every connection of the channel but `except`.
    pub(crate) fn broadcast(&self, frame: &Message, except: Option<ConnId>) -> u32 {
        let members = self.members.read();
        fan_out(members.peers.iter().map(|(conn, member)| (conn, &member.peer)), frame, except)
    }

    pub(crate) fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.store.lock().get(key).cloned()
    }

    pub(crate) fn kv_set(&self, key: String, value: Vec<u8>) -> Result<(), CallError> {
        check_name("key", &key)?;
        if value.len() > MAX_KV_VALUE_LEN {
            return Err(CallError::InvalidArgument(format!("value longer than {MAX_KV_VALUE_LEN} bytes")));
        }
        let mut store = self.store.lock();
        if store.len() >= MAX_KV_KEYS && !store.contains_key(&key) {
            return Err(CallError::InvalidArgument(format!("store full ({MAX_KV_KEYS} keys)")));
        }
        store.insert(key, value);
        Ok(())
    }

    pub(crate) fn kv_delete(&self, key: &str) -> bool {
        self.store.lock().remove(key).is_some()
    }
}

fn fan_out<'a>(
    recipients: impl Iterator<Item = (&'a ConnId, &'a Arc<Peer>)>,
    frame: &Message,
    except: Option<ConnId>,
) -> u32 {
    let mut reached = 0;
    for (_, recipient) in recipients.filter(|(conn, _)| Some(**conn) != except) {
        // Cloning a `Message` clones a reference-counted buffer, not the payload.
        if recipient.send(frame.clone()) {
            reached += 1;
        }
    }
    reached
}

/// Tell a room's members (but `except`) who arrived and left, and note it
/// for the plugin.
fn announce(
    rooms: &HashMap<Arc<str>, HashMap<ConnId, Arc<Peer>>>,
    presence: &Presence,
    events: &mut Vec<PresenceEvent>,
    room: &str,
    changes: &[Change],
    except: Option<ConnId>,
) {
    if let Some(connections) = rooms.get(room) {
        fan_out(connections.iter(), &presence.diff_frame(room, changes), except);
    }
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for change in changes {
        match change {
            Change::Joined(user) => joins.push(user.to_string()),
            Change::Left(user) => leaves.push(user.to_string()),
        }
    }
    events.push((room.to_owned(), joins, leaves));
}

/// Take `conn` out of a room or a user's connections; drop the group when empty.
fn remove_from_group(groups: &mut HashMap<Arc<str>, HashMap<ConnId, Arc<Peer>>>, name: &str, conn: ConnId) {
    if let Some(members) = groups.get_mut(name) {
        members.remove(&conn);
        if members.is_empty() {
            groups.remove(name);
        }
    }
}

/// Refuse names that are empty or too long.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), CallError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(CallError::InvalidArgument(format!("{what} must be 1 to {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_util::FutureExt as _;

    fn channel_with(ids: &[ConnId]) -> (Channel, Vec<Arc<Peer>>) {
        let channel = Channel::new("test");
        let peers: Vec<_> = ids.iter().map(|id| Arc::new(Peer::new(*id, "/test", 8))).collect();
        for peer in &peers {
            channel.add(Arc::clone(peer));
        }
        (channel, peers)
    }

    /// What is queued for `peer`, taken out of its queue.
    fn queued(peer: &Peer) -> Vec<Message> {
        let mut batch = std::collections::VecDeque::new();
        peer.outbox().take(&mut batch).now_or_never();
        batch.into()
    }

    #[test]
    fn publish_reaches_room_members_except_one() {
        let (channel, peers) = channel_with(&[1, 2, 3]);
        channel.join(1, "a").unwrap();
        channel.join(2, "a").unwrap();
        channel.join(3, "b").unwrap();
        assert_eq!(channel.publish("a", &Message::text("hi"), Some(1)), 1);
        assert!(queued(&peers[0]).is_empty());
        assert_eq!(queued(&peers[1]), [Message::text("hi")]);
        assert!(queued(&peers[2]).is_empty());
        assert_eq!(channel.broadcast(&Message::text("all"), None), 3);
    }

    #[test]
    fn leaving_empties_rooms() {
        let (channel, _peers) = channel_with(&[1, 2]);
        channel.join(1, "a").unwrap();
        channel.join(2, "a").unwrap();
        assert_eq!(channel.leave_all(1), vec!["a".to_owned()]);
        assert_eq!(channel.room_members("a"), vec![2]);
        assert_eq!(channel.rooms_of(1).unwrap(), Vec::<String>::new());
        channel.remove(2);
        assert!(channel.room_members("a").is_empty());
        assert_eq!(channel.join(2, "a"), Err(CallError::UnknownConnection));
    }

    #[test]
    fn a_user_is_reached_on_every_connection_while_open() {
        let (channel, peers) = channel_with(&[1, 2, 3]);
        channel.set_user(1, "ann").unwrap();
        channel.set_user(2, "ann").unwrap();
        channel.set_user(3, "bob").unwrap();
        assert_eq!(channel.send_to_user("ann", &Message::text("hi ann")), 2);
        assert_eq!(queued(&peers[0]), [Message::text("hi ann")]);
        assert_eq!(queued(&peers[1]), [Message::text("hi ann")]);
        assert!(queued(&peers[2]).is_empty());
        channel.leave_all(1);
        assert_eq!(channel.user_of(1).unwrap().as_deref(), Some("ann"), "still readable until removed");
        assert_eq!(channel.send_to_user("ann", &Message::text("again")), 1);
        channel.set_user(3, "ann").unwrap();
        assert_eq!(channel.send_to_user("bob", &Message::text("gone")), 0);
    }

    #[test]
    fn limits_are_enforced() {
        let (channel, _peers) = channel_with(&[1]);
        assert!(matches!(channel.join(1, ""), Err(CallError::InvalidArgument(_))));
        assert!(matches!(
            channel.kv_set("k".into(), vec![0; MAX_KV_VALUE_LEN + 1]),
            Err(CallError::InvalidArgument(_))
        ));
        channel.kv_set("k".into(), b"v".to_vec()).unwrap();
        assert_eq!(channel.kv_get("k"), Some(b"v".to_vec()));
        assert!(channel.kv_delete("k"));
        assert!(!channel.kv_delete("k"));
    }
}
