//! Which components are subscribed to which rooms, inside the plugin: a
//! component's room messages and presence never leave the plugin instance
//! (one per server), so they need no host round trip.

use std::collections::HashMap;

/// A component: its connection and its id on that connection.
pub(crate) type Target = (u64, String);

/// Room name → its subscribers, each with an optional presence label.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: HashMap<String, Vec<(Target, Option<String>)>>,
}

impl Rooms {
    /// Subscribe `target` (again: its label is replaced). Returns whether
    /// the room's presence changed.
    pub(crate) fn subscribe(&mut self, room: &str, target: &Target, label: Option<String>) -> bool {
        let before = self.labels(room);
        let members = self.rooms.entry(room.to_owned()).or_default();
        match members.iter_mut().find(|(member, _)| member == target) {
            Some((_, old)) => *old = label,
            None => members.push((target.clone(), label)),
        }
        self.labels(room) != before
    }

    /// Unsubscribe `target`; whether the room's presence changed.
    pub(crate) fn unsubscribe(&mut self, room: &str, target: &Target) -> bool {
        let before = self.labels(room);
        if let Some(members) = self.rooms.get_mut(room) {
            members.retain(|(member, _)| member != target);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
        self.labels(room) != before
    }

    /// The room's subscribers.
    pub(crate) fn members(&self, room: &str) -> Vec<Target> {
        self.rooms
            .get(room)
            .map(|members| members.iter().map(|(target, _)| target.clone()).collect())
            .unwrap_or_default()
    }

    /// The room's presence labels, each once, sorted.
    pub(crate) fn labels(&self, room: &str) -> Vec<String> {
        let mut labels: Vec<String> = self
            .rooms
            .get(room)
            .map(|members| members.iter().filter_map(|(_, label)| label.clone()).collect())
            .unwrap_or_default();
        labels.sort_unstable();
        labels.dedup();
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_counts_a_label_once_and_changes_only_when_a_label_comes_or_goes() {
        let mut rooms = Rooms::default();
        let (a, b, c) = ((1, "c1".to_owned()), (2, "c1".to_owned()), (3, "c1".to_owned()));
        assert!(rooms.subscribe("lobby", &a, Some("ann".into())));
        assert!(!rooms.subscribe("lobby", &b, Some("ann".into())), "a second tab of ann");
        assert!(!rooms.subscribe("lobby", &c, None), "an anonymous watcher");
        assert_eq!(rooms.labels("lobby"), ["ann"]);
        assert_eq!(rooms.members("lobby").len(), 3);
        assert!(!rooms.unsubscribe("lobby", &a));
        assert!(rooms.unsubscribe("lobby", &b));
        assert!(rooms.labels("lobby").is_empty());
        rooms.unsubscribe("lobby", &c);
        assert!(rooms.rooms.is_empty(), "an empty room is dropped");
    }
}
