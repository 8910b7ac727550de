//! Who is in a room, in the manner of Phoenix Presence: per tracked room,
//! each user and how many of their connections are there. A user with
//! several tabs counts once; the diffs name a user when their first
//! connection arrives and when their last one goes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Presence of the rooms a plugin asked to track.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    /// Room → user → connections of that user in the room.
    rooms: HashMap<Arc<str>, HashMap<Arc<str>, u32>>,
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
        let mut counts: HashMap<Arc<str>, u32> = HashMap::new();
        for user in users {
            *counts.entry(Arc::clone(user)).or_default() += 1;
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

    /// One more connection of `user` in `room`.
    pub(crate) fn arrive(&mut self, room: &str, user: &Arc<str>) -> Option<Change> {
        let count = self.rooms.get_mut(room)?.entry(Arc::clone(user)).or_default();
        *count += 1;
        (*count == 1).then(|| Change::Joined(Arc::clone(user)))
    }

    /// One connection fewer of `user` in `room`.
    pub(crate) fn depart(&mut self, room: &str, user: &Arc<str>) -> Option<Change> {
        let counts = self.rooms.get_mut(room)?;
        let count = counts.get_mut(user)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        counts.remove(user);
        Some(Change::Left(Arc::clone(user)))
    }

    /// Each user in `room` and their connection count, sorted by user.
    pub(crate) fn users(&self, room: &str) -> Vec<(String, u32)> {
        let Some(counts) = self.rooms.get(room) else { return Vec::new() };
        let sorted: BTreeMap<&str, u32> = counts.iter().map(|(user, count)| (&**user, *count)).collect();
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
                    let count = counts.and_then(|counts| counts.get(user)).copied().unwrap_or(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_connections_of_a_user_count_once() {
        let (room, ann): (Arc<str>, Arc<str>) = ("r".into(), "ann".into());
        let mut presence = Presence::default();
        assert_eq!(presence.arrive(&room, &ann), None, "untracked rooms have no presence");
        presence.track(&room, std::iter::empty());
        assert_eq!(presence.arrive(&room, &ann), Some(Change::Joined(Arc::clone(&ann))));
        assert_eq!(presence.arrive(&room, &ann), None);
        assert_eq!(presence.users(&room), vec![("ann".to_owned(), 2)]);
        assert_eq!(presence.depart(&room, &ann), None);
        assert_eq!(presence.depart(&room, &ann), Some(Change::Left(Arc::clone(&ann))));
        assert!(presence.users(&room).is_empty());
    }
}
