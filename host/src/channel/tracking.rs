//! Presence of the tracked rooms, as the channel keeps it: who arrives
//! and leaves (told to the other nodes when clustered), `track-presence`,
//! the diffs to the room's members and the events for `on-presence`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::channel::peer::ConnId;
use crate::channel::presence::Change;
use crate::channel::{CallError, Channel, Members, PresenceEvent, fan_out};

impl Channel {
    /// One more connection of `user` in `room` (if tracked), told to the
    /// other nodes.
    pub(super) fn arrive(&self, members: &mut Members, room: &str, user: &Arc<str>) -> Option<Change> {
        let (change, here) = members.presence.arrive(room, user)?;
        if let Some(cluster) = &self.cluster {
            cluster.report_presence(&self.name, room, user, here);
        }
        change
    }

    /// One connection fewer of `user` in `room` (if tracked), told to the
    /// other nodes.
    pub(super) fn depart(&self, members: &mut Members, room: &str, user: &Arc<str>) -> Option<Change> {
        let (change, here) = members.presence.depart(room, user)?;
        if let Some(cluster) = &self.cluster {
            cluster.report_presence(&self.name, room, user, here);
        }
        change
    }

    /// Track presence in `room` from now until it empties.
    pub(crate) fn track_presence(&self, room: &str) -> Result<(), CallError> {
        self.check_name("room name", room)?;
        let mut guard = self.members.write();
        let Members { peers, rooms, presence, .. } = &mut *guard;
        if presence.is_tracked(room) {
            return Ok(());
        }
        let max = self.limits.max_tracked_rooms;
        if presence.len() >= max {
            // Rooms tracked before anyone joined them, and never joined.
            presence.retain(|room| rooms.contains_key(room));
            if presence.len() >= max {
                return Err(CallError::InvalidArgument(format!("too many tracked rooms (the limit is {max})")));
            }
        }
        let in_room = rooms.get(room).into_iter().flat_map(|members| members.keys());
        let users = in_room.filter_map(|conn| peers.get(conn)?.user.as_ref());
        presence.track(&Arc::from(room), users);
        if let Some(cluster) = &self.cluster {
            for (user, here) in presence.local_users(room) {
                cluster.report_presence(&self.name, room, &user, here);
            }
            // Already receiving the room: what the other nodes reported
            // before now is in Redis (otherwise it is read once the
            // subscription is in place).
            if rooms.contains_key(room) {
                cluster.read_presence(&self.name, room);
            }
        }
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

    /// Tell a room's members (but `except`) who arrived and left, and note it
    /// for the plugin, up to `max_presence_events` per callback.
    pub(super) fn announce(&self, members: &mut Members, room: &str, changes: &[Change], except: Option<ConnId>) {
        if let Some(connections) = members.rooms.get(room) {
            fan_out(&self.metrics, connections.iter(), &members.presence.diff_frame(room, changes), except);
        }
        if members.presence_events.len() >= self.limits.max_presence_events {
            if self.presence_events_dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(plugin = &*self.name, "too many presence changes in one callback, not all are told");
            }
            return;
        }
        let (mut joins, mut leaves) = (Vec::new(), Vec::new());
        for change in changes {
            match change {
                Change::Joined(user) => joins.push(user.to_string()),
                Change::Left(user) => leaves.push(user.to_string()),
            }
        }
        members.presence_events.push((room.to_owned(), joins, leaves));
    }
}
