//! `send-to-user` for a user with no connection here, when the plugin keeps
//! messages for offline users (`mailbox_size`): on one node the message is
//! kept in `Mailboxes` and handed to the user's next connection; clustered,
//! Redis decides whether the user is connected elsewhere
//! (`cluster/mailbox.rs`), and a node that gets a user's first connection
//! registers it there and takes what was kept — holding the user's
//! messages that arrive meanwhile, so that kept ones come first.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;

use crate::channel::mailbox::Refused;
use crate::channel::peer::{Peer, Sent};
use crate::channel::{Channel, Members};
use crate::cluster::{Cluster, Mail};

/// The users whose first connection here is registering (clustered).
#[derive(Debug, Default)]
pub(super) struct Claims {
    users: HashMap<Arc<str>, Claim>,
    /// Numbers claims, so that an answer is matched to its claim.
    next: u64,
}

#[derive(Debug, Default)]
struct Claim {
    id: u64,
    /// Sent to Redis (once the user's channel is subscribed).
    sent: bool,
    /// The user's messages that arrived meanwhile, bounded like an outbox.
    held: Vec<Message>,
    held_bytes: usize,
}

impl Channel {
    /// Whether `send-to-user` keeps messages for offline users.
    pub(super) fn keeps_mail(&self) -> bool {
        self.limits.mailbox_size > 0
    }

    /// `user` has no connection here: keep `frame` for them (one node), or
    /// let Redis deliver or keep it (clustered). Called under the members
    /// lock, which a `set-user` needs too.
    pub(super) fn deliver_or_keep(&self, user: &str, frame: &Message) {
        let refused = match &self.cluster {
            Some(cluster) => {
                let Some(payload) = Cluster::mail_payload(frame) else { return };
                let bounds = self.limits.mailbox();
                let step = Mail::DeliverOrKeep { plugin: self.name.to_string(), user: user.into(), payload, bounds };
                !cluster.mail(step)
            }
            None => self.mailboxes.lock().keep(user, frame) == Err(Refused::Full),
        };
        if refused {
            tracing::warn!(
                plugin = &*self.name,
                user,
                "a message for an offline user was dropped: the mailboxes are full"
            );
        }
    }

    /// `peer` is `user`'s first connection here: it gets what was kept.
    pub(super) fn first_connection_of(&self, user: &Arc<str>, peer: &Arc<Peer>) {
        if !self.keeps_mail() {
            return;
        }
        if self.cluster.is_none() {
            for frame in self.mailboxes.lock().take(user) {
                self.send_to(peer, frame);
            }
            return;
        }
        let mut claims = self.claims.lock();
        claims.next += 1;
        let id = claims.next;
        claims.users.insert(Arc::clone(user), Claim { id, ..Claim::default() });
    }

    /// `user` has no connection here any more.
    pub(super) fn last_connection_of(&self, user: &str) {
        let Some(cluster) = self.cluster.as_ref().filter(|_| self.keeps_mail()) else { return };
        self.claims.lock().users.remove(user);
        cluster.mail(Mail::Release { plugin: self.name.to_string(), user: user.into() });
    }

    /// Hold `frame` for `user` if its registration is under way.
    pub(super) fn hold_for_claim(&self, user: &str, frame: &Message) -> bool {
        if self.cluster.is_none() || !self.keeps_mail() {
            return false;
        }
        let mut claims = self.claims.lock();
        let Some(claim) = claims.users.get_mut(user) else { return false };
        if claim.held.len() < self.limits.send_queue && claim.held_bytes + frame.len() <= self.limits.send_queue_bytes {
            claim.held_bytes += frame.len();
            claim.held.push(frame.clone());
        } else {
            tracing::warn!(plugin = &*self.name, user, "a message for a connecting user was dropped: too many held");
        }
        true
    }

    /// `user`'s channel is subscribed: register the user in Redis (a claim).
    pub(super) fn claim(&self, user: &str) {
        let Some(cluster) = self.cluster.clone() else { return };
        let id = {
            let mut claims = self.claims.lock();
            let Some(claim) = claims.users.get_mut(user).filter(|claim| !claim.sent) else { return };
            claim.sent = true;
            claim.id
        };
        self.send_claim(&cluster, user, id);
    }

    fn send_claim(&self, cluster: &Arc<Cluster>, user: &str, id: u64) {
        let Some(me) = self.me.get().cloned() else { return };
        let (reply, answer) = tokio::sync::oneshot::channel();
        if !cluster.mail(Mail::Claim { plugin: self.name.to_string(), user: user.into(), reply }) {
            return;
        }
        let user = user.to_owned();
        tokio::spawn(async move {
            let kept = answer.await.ok().flatten();
            if let Some(channel) = me.upgrade() {
                channel.claimed(&user, id, kept);
            }
        });
    }

    /// A claim's answer (`None`: it failed): what was kept, then what was
    /// held, to the user's connections here; back to Redis if none is left.
    fn claimed(&self, user: &str, id: u64, kept: Option<Vec<Bytes>>) {
        let members = self.members.read();
        let connections = members.users.get(user);
        let Some(kept) = kept else {
            // Try again while the user is still here.
            if let (Some(cluster), Some(_)) = (&self.cluster, connections)
                && self.claims.lock().users.get(user).is_some_and(|claim| claim.id == id)
            {
                self.send_claim(cluster, user, id);
            }
            return;
        };
        let held = {
            let mut claims = self.claims.lock();
            match claims.users.get(user) {
                Some(claim) if claim.id == id => claims.users.remove(user).map(|claim| claim.held).unwrap_or_default(),
                _ => Vec::new(),
            }
        };
        let Some(connections) = connections else {
            if let Some(cluster) = &self.cluster
                && !kept.is_empty()
            {
                cluster.mail(Mail::Restore { plugin: self.name.to_string(), user: user.into(), payloads: kept });
            }
            return;
        };
        let frames = kept.into_iter().filter_map(Cluster::mail_message).chain(held);
        for frame in frames {
            for peer in connections.values() {
                self.send_to(peer, frame.clone());
            }
        }
    }

    /// Redis may have lost who is connected (it answers again): every user
    /// connected here registers again, taking what was kept meanwhile.
    pub(super) fn claim_all(&self, members: &Members) {
        let Some(cluster) = self.cluster.clone().filter(|_| self.keeps_mail()) else { return };
        for user in members.users.keys() {
            let id = {
                let mut claims = self.claims.lock();
                claims.next += 1;
                let id = claims.next;
                claims.users.entry(Arc::clone(user)).or_insert_with(|| Claim { id, sent: true, ..Claim::default() }).id
            };
            self.send_claim(&cluster, user, id);
        }
    }

    fn send_to(&self, peer: &Arc<Peer>, frame: Message) {
        let bytes = frame.len();
        if peer.send(frame) == Sent::Queued {
            self.metrics.sent(1, bytes);
        }
    }
}
