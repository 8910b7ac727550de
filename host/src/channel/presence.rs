//! Who is in a room, in the manner of Phoenix Presence: per tracked room,
//! each user and how many of their connections are there. A user with
//! several tabs counts once; the diffs name a user when their first
//! connection arrives and when their last one goes.
//!
//! When clustered, a room's presence adds up every node's: each user's
//! connections here, and the counts the other nodes reported for them
//! (newest report per node wins, by its sequence number). A node that
//! stops or dies takes its users with it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Presence of the rooms a plugin asked to track.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    /// Room → user → connections of that user in the room.
    rooms: HashMap<Arc<str>, HashMap<Arc<str>, Count>>,
}

/// One user's connections in one room.
#[derive(Debug, Default)]
struct Count {
    /// On this node.
    local: u32,
    /// On other nodes: node → (connections, the report's sequence number).
    remote: HashMap<u64, (u32, u64)>,
}

impl Count {
    fn total(&self) -> u32 {
        self.remote.values().fold(self.local, |total, (count, _)| total.saturating_add(*count))
    }
}

/// A user who arrived in or left a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Joined(Arc<str>),
    Left(Arc<str>),
}

impl Presence {
    /// Start tracking `room`, whose connections are now bound to `users`.
    pub(crate) fn track<'a>(&mut self, room: &Arc<str>, users: impl Iterator<Item = &'a Arc<str>>) {
        if self.rooms.contains_key(room) {
            return;
        }
        let mut counts: HashMap<Arc<str>, Count> = HashMap::new();
        for user in users {
            counts.entry(Arc::clone(user)).or_default().local += 1;
        }
        self.rooms.insert(Arc::clone(room), counts);
    }

    pub(crate) fn is_tracked(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// Stop tracking `room` (it emptied).
    pub(crate) fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// Keep tracking only the rooms for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.rooms.retain(|room, _| keep(room));
    }

    /// How many rooms are tracked.
    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }

    /// One more connection of `user` in `room`; with this node's count of
    /// them after it.
    pub(crate) fn arrive(&mut self, room: &str, user: &Arc<str>) -> Option<(Option<Change>, u32)> {
        let count = self.rooms.get_mut(room)?.entry(Arc::clone(user)).or_default();
        count.local += 1;
        let change = (count.total() == 1).then(|| Change::Joined(Arc::clone(user)));
        Some((change, count.local))
    }

    /// One connection fewer of `user` in `room`; with this node's count of
    /// them after it.
    pub(crate) fn depart(&mut self, room: &str, user: &Arc<str>) -> Option<(Option<Change>, u32)> {
        let counts = self.rooms.get_mut(room)?;
        let count = counts.get_mut(user)?;
        count.local = count.local.checked_sub(1)?;
        let local = count.local;
        Some((settle(counts, user), local))
    }

    /// Another node reports `count` connections of `user` in `room`, in its
    /// report number `seq` (reports older than its last are ignored).
    pub(crate) fn report(&mut self, room: &str, node: u64, user: &str, count: u32, seq: u64) -> Option<Change> {
        let counts = self.rooms.get_mut(room)?;
        let before = counts.get(user).map_or(0, Count::total);
        if counts.get(user).and_then(|entry| entry.remote.get(&node)).is_some_and(|&(_, last)| last >= seq) {
            return None;
        }
        if count == 0 && before == 0 {
            return None;
        }
        let user: Arc<str> = counts.get_key_value(user).map_or_else(|| user.into(), |(user, _)| Arc::clone(user));
        let entry = counts.entry(Arc::clone(&user)).or_default();
        if count == 0 {
            entry.remote.remove(&node);
        } else {
            entry.remote.insert(node, (count, seq));
        }
        match (before, entry.total()) {
            (0, after) if after > 0 => Some(Change::Joined(user)),
            _ => settle(counts, &user),
        }
    }

    /// Forget what the nodes for which `alive` is false reported: their
    /// users leave every room; returns the changes per room.
    pub(crate) fn retain_nodes(&mut self, alive: impl Fn(u64) -> bool) -> Vec<(Arc<str>, Vec<Change>)> {
        let mut changes = Vec::new();
        for (room, counts) in &mut self.rooms {
            let mut users = Vec::new();
            for (user, count) in counts.iter_mut() {
                let before = count.remote.len();
                count.remote.retain(|node, _| alive(*node));
                if count.remote.len() != before {
                    users.push(Arc::clone(user));
                }
            }
            let left: Vec<Change> = users.iter().filter_map(|user| settle(counts, user)).collect();
            if !left.is_empty() {
                changes.push((Arc::clone(room), left));
            }
        }
        changes
    }

    /// This node's users of `room` and their connections (to report them).
    pub(crate) fn local_users(&self, room: &str) -> Vec<(Arc<str>, u32)> {
        let Some(counts) = self.rooms.get(room) else { return Vec::new() };
        counts
            .iter()
            .filter(|(_, count)| count.local > 0)
            .map(|(user, count)| (Arc::clone(user), count.local))
            .collect()
    }

    /// The tracked rooms' names.
    pub(crate) fn rooms(&self) -> impl Iterator<Item = &Arc<str>> {
        self.rooms.keys()
    }

    /// Each user in `room` and their connection count, sorted by user.
    pub(crate) fn users(&self, room: &str) -> Vec<(String, u32)> {
        let Some(counts) = self.rooms.get(room) else { return Vec::new() };
        let sorted: BTreeMap<&str, u32> = counts.iter().map(|(user, count)| (&**user, count.total())).collect();
        sorted.into_iter().map(|(user, count)| (user.to_owned(), count)).collect()
    }

    /// `{"type":"presence_state",...}` for a connection that joined `room`.
    pub(crate) fn state_frame(&self, room: &str) -> Message {
        let users: serde_json::Map<String, Value> =
            self.users(room).into_iter().map(|(user, count)| (user, json!({ "connections": count }))).collect();
        Message::text(json!({ "type": "presence_state", "room": room, "users": users }).to_string())
    }

    /// `{"type":"presence_diff",...}` for `changes` in `room`.
    pub(crate) fn diff_frame(&self, room: &str, changes: &[Change]) -> Message {
        let counts = self.rooms.get(room);
        let mut joins = serde_json::Map::new();
        let mut leaves = serde_json::Map::new();
        for change in changes {
            match change {
                Change::Joined(user) => {
                    let count = counts.and_then(|counts| counts.get(user)).map_or(1, Count::total);
                    joins.insert(user.to_string(), json!({ "connections": count }));
                }
                Change::Left(user) => {
                    leaves.insert(user.to_string(), json!({ "connections": 0 }));
                }
            }
        }
        Message::text(json!({ "type": "presence_diff", "room": room, "joins": joins, "leaves": leaves }).to_string())
    }
}

/// Forget `user` in a room once nobody counts them, and say they left.
fn settle(counts: &mut HashMap<Arc<str>, Count>, user: &Arc<str>) -> Option<Change> {
    if counts.get(user).is_some_and(|count| count.total() == 0) {
        counts.remove(user);
        return Some(Change::Left(Arc::clone(user)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_connections_of_a_user_count_once() {
        let (room, ann): (Arc<str>, Arc<str>) = ("r".into(), "ann".into());
        let mut presence = Presence::default();
        assert_eq!(presence.arrive(&room, &ann), None, "untracked rooms have no presence");
        presence.track(&room, std::iter::empty());
        assert_eq!(presence.arrive(&room, &ann), Some((Some(Change::Joined(Arc::clone(&ann))), 1)));
        assert_eq!(presence.arrive(&room, &ann), Some((None, 2)));
        assert_eq!(presence.users(&room), vec![("ann".to_owned(), 2)]);
        assert_eq!(presence.depart(&room, &ann), Some((None, 1)));
        assert_eq!(presence.depart(&room, &ann), Some((Some(Change::Left(Arc::clone(&ann))), 0)));
        assert!(presence.users(&room).is_empty());
    }

    #[test]
    fn a_user_on_several_nodes_counts_once_and_leaves_with_the_last_one() {
        let (room, ann): (Arc<str>, Arc<str>) = ("r".into(), "ann".into());
        let mut presence = Presence::default();
        presence.track(&room, std::iter::empty());
        assert_eq!(presence.report(&room, 7, "ann", 2, 1), Some(Change::Joined(Arc::clone(&ann))));
        assert_eq!(presence.arrive(&room, &ann), Some((None, 1)), "here too: no second join");
        assert_eq!(presence.report(&room, 8, "ann", 1, 1), None);
        assert_eq!(presence.users(&room), vec![("ann".to_owned(), 4)]);
        assert_eq!(presence.report(&room, 7, "ann", 5, 1), None, "an old report is ignored");
        assert_eq!(presence.report(&room, 7, "ann", 0, 2), None);
        assert_eq!(presence.depart(&room, &ann), Some((None, 0)), "node 8 still has her");
        let gone = presence.retain_nodes(|node| node != 8);
        assert_eq!(gone, vec![(Arc::clone(&room), vec![Change::Left(Arc::clone(&ann))])]);
        assert!(presence.users(&room).is_empty());
        assert!(presence.retain_nodes(|node| node != 8).is_empty());
        assert_eq!(presence.report(&room, 9, "bob", 0, 1), None, "a zero for nobody changes nothing");
        assert!(presence.users(&room).is_empty());
    }
}
