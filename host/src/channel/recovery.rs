//! A channel's history rooms on one node (see `history`): a message is
//! numbered, kept and queued for the members under one lock, and a joining
//! connection gets its missed messages (or its position) under the members
//! write lock, so that no message falls between the replay and the live
//! ones. Clustered, `streams` does the same against Redis.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;

use crate::channel::peer::{ConnId, Sent};
use crate::channel::{Channel, Member, fan_out};

impl Channel {
    /// `publish` of a text message in a history room: numbered and kept,
    /// then queued for the members while the history is held (so that
    /// members get a room's messages in offset order); the publisher left
    /// out is told its position.
    pub(super) fn publish_numbered(&self, room: &str, frame: &Message, except: Option<ConnId>) -> u32 {
        let members = self.members.read();
        let mut history = self.history.lock();
        let Some((frame, position)) = history.publish(room, frame, self.clock.now()) else { return 0 };
        let Some(local) = members.rooms.get(room) else { return 0 };
        let reached = fan_out(&self.metrics, local.iter(), &frame, except);
        if let Some(publisher) = except.and_then(|except| local.get(&except)) {
            let bytes = position.len();
            if publisher.send(position) == Sent::Queued {
                self.metrics.sent(1, bytes);
            }
        }
        reached
    }

    /// `member` joins history room `room` (under the members write lock):
    /// what it missed and `recovered`, or its `position`; clustered, it
    /// waits for a read of the room's stream.
    pub(super) fn join_history(&self, room: &Arc<str>, member: &mut Member) {
        let asked = member.recover.take(room);
        if self.cluster.is_some() {
            return self.join_stream(room, member.peer.id, asked);
        }
        for frame in self.history.lock().join(room, asked, self.clock.now()) {
            let bytes = frame.len();
            if member.peer.send(frame) == Sent::Queued {
                self.metrics.sent(1, bytes);
            }
        }
    }
}
