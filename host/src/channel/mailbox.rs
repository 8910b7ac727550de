//! Messages kept for users who are not connected (`mailbox_size`): with
//! it, `send-to-user` to a user with no connection keeps the message, and
//! the user's next connection (its `set-user`) gets what was kept, in
//! order, once, before anything else sent to the user. On one node the
//! choice between delivering and keeping is made under the channel's
//! members lock, which `set-user` also takes, so a message sent while the
//! user connects is either delivered or kept, never both, never lost.
//! Clustered, `cluster/mailbox.rs` makes the same choice in Redis.
//!
//! Bounded per user by `mailbox_size` messages and `mailbox_bytes` (the
//! oldest go first), and per plugin by `mailbox_users` users and
//! `mailbox_total_bytes` (beyond them a message for one more user is
//! dropped, logged). With `[store] path` every change is written behind to
//! the store file, so kept messages survive a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;

use crate::config::MailboxBounds;
use crate::storage::Durable;

/// A kept message's cost beyond its bytes.
const MESSAGE_OVERHEAD: usize = 32;

/// The kept messages of one plugin's users.
#[derive(Debug)]
pub(crate) struct Mailboxes {
    limits: MailboxBounds,
    users: HashMap<Arc<str>, Mailbox>,
    bytes: usize,
    /// Where changes are written behind, and the plugin's name there.
    durable: Option<(Arc<Durable>, Arc<str>)>,
}

#[derive(Debug, Default)]
struct Mailbox {
    messages: VecDeque<Message>,
    bytes: usize,
}

/// Why a message was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The plugin keeps nothing (`mailbox_size` is 0).
    Off,
    /// One user too many, or the plugin's bytes are used up.
    Full,
}

impl Mailboxes {
    pub(crate) fn new(limits: MailboxBounds) -> Mailboxes {
        Mailboxes { limits, users: HashMap::new(), bytes: 0, durable: None }
    }

    /// The mailboxes of `plugin`: those kept in `durable`, when there is
    /// one (changes are written back to it).
    pub(crate) fn open(limits: MailboxBounds, durable: Option<&Arc<Durable>>, plugin: &str) -> Mailboxes {
        let mut mailboxes = Mailboxes::new(limits);
        let Some(durable) = durable else { return mailboxes };
        let plugin: Arc<str> = plugin.into();
        match durable.load_mailboxes(&plugin) {
            Ok(users) => {
                for (user, encoded) in users {
                    let mailbox = decode(&encoded);
                    mailboxes.bytes += mailbox.bytes;
                    mailboxes.users.insert(user.into(), mailbox);
                }
            }
            Err(error) => tracing::error!(plugin = &*plugin, "kept messages cannot be read: {error}"),
        }
        mailboxes.durable = Some((Arc::clone(durable), plugin));
        mailboxes
    }

    pub(crate) fn enabled(&self) -> bool {
        self.limits.size > 0
    }

    /// Keep `message` for `user`.
    pub(crate) fn keep(&mut self, user: &str, message: &Message) -> Result<(), Refused> {
        if !self.enabled() {
            return Err(Refused::Off);
        }
        let cost = message.len() + MESSAGE_OVERHEAD;
        let new_user = !self.users.contains_key(user);
        if (new_user && self.users.len() >= self.limits.users) || self.bytes + cost > self.limits.total_bytes {
            return Err(Refused::Full);
        }
        let limits = self.limits;
        let mailbox = self.users.entry(user.into()).or_default();
        mailbox.messages.push_back(message.clone());
        mailbox.bytes += cost;
        self.bytes += cost;
        while mailbox.messages.len() > limits.size || mailbox.bytes > limits.bytes {
            let Some(oldest) = mailbox.messages.pop_front() else { break };
            let freed = oldest.len() + MESSAGE_OVERHEAD;
            mailbox.bytes -= freed;
            self.bytes -= freed;
        }
        let encoded = encode(mailbox);
        if let Some((durable, plugin)) = &self.durable {
            durable.write_mailbox(plugin, user, Some(&encoded));
        }
        Ok(())
    }

    /// What was kept for `user`, oldest first; forgotten.
    pub(crate) fn take(&mut self, user: &str) -> Vec<Message> {
        let Some(mailbox) = self.users.remove(user) else { return Vec::new() };
        self.bytes -= mailbox.bytes;
        if let Some((durable, plugin)) = &self.durable {
            durable.write_mailbox(plugin, user, None);
        }
        mailbox.messages.into()
    }

    /// Users with kept messages, and their bytes, for the stats.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.users.len(), self.bytes)
    }
}

/// A mailbox on disk: per message, its kind (0 text, 1 binary), its length
/// (u32, little-endian) and its bytes.
fn encode(mailbox: &Mailbox) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(mailbox.bytes);
    for message in &mailbox.messages {
        let (kind, data): (u8, &[u8]) = match message {
            Message::Text(text) => (0, text.as_bytes()),
            Message::Binary(data) => (1, data),
            _ => continue,
        };
        encoded.push(kind);
        encoded.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
        encoded.extend_from_slice(data);
    }
    encoded
}

/// [`encode`] undone; what does not decode (a damaged file) is dropped.
fn decode(mut encoded: &[u8]) -> Mailbox {
    let mut mailbox = Mailbox::default();
    while let [kind, a, b, c, d, rest @ ..] = encoded {
        let length = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
        let Some(data) = rest.get(..length) else { break };
        let message = match kind {
            0 => match std::str::from_utf8(data) {
                Ok(text) => Message::text(text),
                Err(_) => break,
            },
            _ => Message::binary(data.to_vec()),
        };
        mailbox.bytes += message.len() + MESSAGE_OVERHEAD;
        mailbox.messages.push_back(message);
        encoded = &rest[length..];
    }
    mailbox
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> MailboxBounds {
        MailboxBounds { size: 3, bytes: 1000, users: 2, total_bytes: 10_000 }
    }

    #[test]
    fn a_mailbox_keeps_the_latest_in_order_and_is_taken_once() {
        let mut mailboxes = Mailboxes::new(limits());
        for n in 0..5 {
            mailboxes.keep("ann", &Message::text(n.to_string())).unwrap();
        }
        assert_eq!(mailboxes.take("ann"), ["2", "3", "4"].map(Message::text));
        assert!(mailboxes.take("ann").is_empty());
        assert_eq!(mailboxes.size(), (0, 0));
    }

    #[test]
    fn users_and_bytes_are_bounded_and_off_keeps_nothing() {
        let mut mailboxes = Mailboxes::new(limits());
        mailboxes.keep("ann", &Message::text("a")).unwrap();
        mailboxes.keep("bob", &Message::text("b")).unwrap();
        assert_eq!(mailboxes.keep("cid", &Message::text("c")), Err(Refused::Full));
        mailboxes.keep("ann", &Message::text("x".repeat(2000))).unwrap();
        assert!(mailboxes.size().1 <= 1000 + 40, "{:?}", mailboxes.size());
        let mut off = Mailboxes::new(MailboxBounds { size: 0, ..limits() });
        assert_eq!(off.keep("ann", &Message::text("a")), Err(Refused::Off));
    }

    #[test]
    fn mailboxes_round_trip_through_their_encoding() {
        let mut mailbox = Mailbox::default();
        for message in [Message::text("héllo"), Message::binary(vec![0, 255]), Message::text("")] {
            mailbox.bytes += message.len() + MESSAGE_OVERHEAD;
            mailbox.messages.push_back(message);
        }
        let decoded = decode(&encode(&mailbox));
        assert_eq!((decoded.messages, decoded.bytes), (mailbox.messages, mailbox.bytes));
        assert!(decode(&[0, 9, 0, 0, 0, b'x']).messages.is_empty(), "cut short: dropped");
    }
}
