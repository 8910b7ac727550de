//! One WebSocket connection, as a plugin sees it: an id and what it can do with it.

use serde::Serialize;

use crate::bindings::switchboard::channel::host;
use crate::message::Message;

/// A connection of this plugin.
///
/// Cheap to copy and valid across plugin reloads. Calls on a connection that
/// has closed in the meantime do nothing: a client can leave at any moment,
/// and that is not an error for the code that was about to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn(u64);

impl Conn {
    /// The connection named by a host id (as returned by
    /// [`Room::members`](crate::Room::members), say).
    pub fn from_id(id: u64) -> Conn {
        Conn(id)
    }

    /// The host's id for this connection, unique while the server runs.
    pub fn id(self) -> u64 {
        self.0
    }

    /// Queue a message for this connection.
    pub fn send(self, message: impl Into<Message>) {
        let _closed = host::send(self.0, &message.into().into());
    }

    /// Queue a message, learning why the host refused it (the connection is
    /// gone, or the message is larger than the host accepts).
    pub fn try_send(self, message: impl Into<Message>) -> Result<(), crate::HostError> {
        host::send(self.0, &message.into().into())
    }

    /// Queue `value` as a JSON text message.
    pub fn send_json(self, value: &impl Serialize) {
        self.send(Message::json_of(value));
    }

    /// Send `{"type":"error","message":...}`, the channel protocol's error reply.
    pub fn send_error(self, message: impl std::fmt::Display) {
        self.send_json(&serde_json::json!({ "type": "error", "message": message.to_string() }));
    }

    /// Add this connection to a room.
    pub fn join(self, room: &str) {
        let _closed = host::join(self.0, room);
    }

    /// Remove this connection from a room.
    pub fn leave(self, room: &str) {
        let _closed = host::leave(self.0, room);
    }

    /// The rooms this connection is in.
    pub fn rooms(self) -> Vec<String> {
        host::rooms_of(self.0).unwrap_or_default()
    }

    /// Close the connection with a WebSocket close code and reason, after the
    /// messages already queued for it.
    pub fn close(self, code: u16, reason: &str) {
        let _closed = host::close(self.0, code, reason);
    }

    /// Attach a value to this connection (e.g. the user's name); the host
    /// keeps it as long as the connection lives, across reloads.
    pub fn set_meta(self, key: &str, value: &str) {
        let _closed = host::set_meta(self.0, key, value);
    }

    /// Bind this connection to a user id (from a token's claims, say), so
    /// that [`User::send`](crate::User::send) reaches it.
    pub fn set_user(self, user: &str) {
        let _closed = host::set_user(self.0, user);
    }

    /// The user this connection is bound to.
    pub fn user(self) -> Option<String> {
        host::user_of(self.0).ok().flatten()
    }

    /// Read back a value stored with [`Conn::set_meta`].
    pub fn meta(self, key: &str) -> Option<String> {
        host::get_meta(self.0, key).ok().flatten()
    }
}
