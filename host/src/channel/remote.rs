//! A channel's link to the other nodes (when clustered): what it publishes
//! goes to them, what they publish and report arrives through [`Sink`].

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use crate::channel::presence::Change;
use crate::channel::{Channel, Members};
use crate::cluster::{Cluster, Sink, Topic};

impl Channel {
    /// The same channel, sharing its rooms, users and broadcasts with the
    /// other nodes of `cluster` (see [`Channel::attach`]).
    pub(crate) fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Channel {
        if cluster.is_some() {
            // Redis keeps the history then (`streams`).
            self.history.get_mut().disable();
        }
        self.cluster = cluster;
        self
    }

    /// Receive what the other nodes publish for this plugin (once the
    /// channel is shared).
    pub(crate) fn attach(self: &Arc<Self>) {
        let _ = self.me.set(Arc::downgrade(self));
        if let Some(cluster) = &self.cluster {
            let sink: Arc<dyn Sink> = Arc::clone(self) as Arc<dyn Sink>;
            cluster.attach(&self.name, Arc::downgrade(&sink));
        }
    }

    /// Start or stop receiving `topic` from the other nodes: called when
    /// its first local member arrives and when its last one leaves.
    pub(super) fn subscribe(&self, topic: Topic<'_>, wanted: bool) {
        match (&self.cluster, wanted) {
            (Some(cluster), true) => cluster.subscribe(&self.name, topic),
            (Some(cluster), false) => cluster.unsubscribe(&self.name, topic),
            (None, _) => {}
        }
    }

    /// Send `frame` to `topic`'s connections on the other nodes.
    pub(super) fn publish_to_cluster(&self, topic: Topic<'_>, frame: &Message) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(&self.name, topic, frame);
        }
    }

    /// Presence changes another node caused: told to the channel's members
    /// at once, and to the plugin's `on-presence` by `drive_timers`.
    fn apply_remote_presence(&self, members: &mut Members, changes: Vec<(Arc<str>, Vec<Change>)>) {
        if changes.is_empty() {
            return;
        }
        for (room, changes) in changes {
            self.announce(members, &room, &changes, None);
        }
        self.presence_from_cluster.notify_one();
    }
}

/// What another node published for this plugin reaches this node's
/// connections as if published here (but is not sent on again).
impl Sink for Channel {
    fn deliver(&self, topic: Topic<'_>, frame: Message) {
        match topic {
            Topic::Room(room) => self.deliver_to_room(room, &frame, None),
            Topic::User(user) => self.deliver_to_user(user, &frame),
            Topic::All => self.deliver_to_all(&frame, None),
        };
    }

    fn deliver_numbered(&self, room: &str, epoch: &str, offset: u64, except: u64, text: &str) {
        self.deliver_streamed(room, epoch, offset, except, text);
    }

    fn deliver_unnumbered(&self, room: &str, text: Utf8Bytes, except: u64) {
        self.deliver_to_room(room, &Message::Text(text), Some(except));
    }

    fn user_subscribed(&self, user: &str) {
        self.claim(user);
    }

    fn subscribed(&self, room: &str, again: bool) {
        if self.streamed() {
            self.stream_subscribed(room, again);
        }
    }

    fn presence(&self, room: &str, node: u64, user: &str, count: u32, seq: u64) {
        let mut members = self.members.write();
        if let Some(change) = members.presence.report(room, node, user, count, seq) {
            self.apply_remote_presence(&mut members, vec![(room.into(), vec![change])]);
        }
    }

    fn retain_nodes(&self, alive: &dyn Fn(u64) -> bool) {
        let mut members = self.members.write();
        let changes = members.presence.retain_nodes(alive);
        self.apply_remote_presence(&mut members, changes);
    }

    fn report_all(&self) {
        let Some(cluster) = &self.cluster else { return };
        let members = self.members.read();
        for room in members.presence.rooms() {
            for (user, here) in members.presence.local_users(room) {
                cluster.report_presence(&self.name, room, &user, here);
            }
        }
        self.claim_all(&members);
    }

    fn tracks(&self, room: &str) -> bool {
        self.members.read().presence.is_tracked(room)
    }
}
