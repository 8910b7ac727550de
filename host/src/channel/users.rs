//! Users: binding a connection to a user (`set-user`), and messages to all
//! of a user's connections, here and on the other nodes (kept for later
//! when the user is connected nowhere, see `offline`).

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;

use crate::channel::peer::ConnId;
use crate::channel::presence::Change;
use crate::channel::{CallError, Channel, fan_out, remove_from_group};
use crate::cluster::Topic;

impl Channel {
    /// Bind a connection to a user, replacing an earlier binding.
    pub(crate) fn set_user(&self, conn: ConnId, user: &str) -> Result<(), CallError> {
        self.check_name("user id", user)?;
        let mut guard = self.members.write();
        let members = &mut *guard;
        let member = members.peers.get_mut(&conn).ok_or(CallError::UnknownConnection)?;
        if member.user.as_deref() == Some(user) {
            return Ok(());
        }
        let user: Arc<str> = user.into();
        let previous = member.user.replace(Arc::clone(&user));
        if let Some(previous) = &previous
            && remove_from_group(&mut members.users, previous, conn)
        {
            self.subscribe(Topic::User(previous), false);
            self.last_connection_of(previous);
        }
        let connections = members.users.entry(Arc::clone(&user)).or_default();
        let first = connections.is_empty();
        connections.insert(conn, Arc::clone(&member.peer));
        if first {
            self.subscribe(Topic::User(&user), true);
            self.first_connection_of(&user, &member.peer);
        }
        let rooms: Vec<Arc<str>> = member.rooms.iter().cloned().collect();
        for room in &rooms {
            let left = previous.as_ref().and_then(|previous| self.depart(members, room, previous));
            let changes: Vec<Change> = left.into_iter().chain(self.arrive(members, room, &user)).collect();
            if !changes.is_empty() {
                self.announce(members, room, &changes, None);
            }
        }
        Ok(())
    }

    pub(crate) fn user_of(&self, conn: ConnId) -> Result<Option<String>, CallError> {
        let members = self.members.read();
        let member = members.peers.get(&conn).ok_or(CallError::UnknownConnection)?;
        Ok(member.user.as_deref().map(str::to_owned))
    }

    /// Queue `frame` for every open connection of `user`, on every node;
    /// returns how many of this node's got it.
    /// A user connected nowhere gets it later, when the plugin keeps
    /// messages for offline users (see `offline`).
    pub(crate) fn send_to_user(&self, user: &str, frame: &Message) -> u32 {
        let members = self.members.read();
        if let Some(connections) = members.users.get(user) {
            let reached = fan_out(&self.metrics, connections.iter(), frame, None);
            drop(members);
            self.publish_to_cluster(Topic::User(user), frame);
            return reached;
        }
        if self.keeps_mail() {
            self.deliver_or_keep(user, frame);
            return 0;
        }
        drop(members);
        self.publish_to_cluster(Topic::User(user), frame);
        0
    }

    /// What another node sent to `user`: to its connections here (held
    /// while the user registers, see `offline`).
    pub(super) fn deliver_to_user(&self, user: &str, frame: &Message) -> u32 {
        let members = self.members.read();
        if self.hold_for_claim(user, frame) {
            return 0;
        }
        let Some(connections) = members.users.get(user) else { return 0 };
        fan_out(&self.metrics, connections.iter(), frame, None)
    }
}
