//! One WebSocket connection, as a plugin sees it: an id and what it can do with it.

use serde::Serialize;

use crate::HostError;
use crate::bindings::switchboard::channel::host;
use crate::message::Message;

/// A connection of this plugin.
///
/// Cheap to copy and valid across plugin reloads. The calls that change the
/// connection (join, leave, metadata, user, close) return the host's answer:
/// a client can leave at any moment, so [`HostError::UnknownConnection`] is
/// an ordinary outcome for code that was about to act on it, and a plugin
/// that does not care may ignore it; [`HostError::InvalidArgument`] says
/// which rule or limit the call broke (names may be neither empty nor too
/// long, and the host's configuration caps what one connection or plugin
/// may hold).
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

    /// Queue a message for this connection, ignoring a refusal: the message
    /// is silently dropped when the connection is gone, its send queue is
    /// full, or the message is larger than the host accepts. Use
    /// [`Conn::try_send`] to know.
    pub fn send(self, message: impl Into<Message>) {
        let _dropped = host::send(self.0, &message.into().into());
    }

    /// Queue a message, learning why the host refused it: the connection is
    /// gone ([`HostError::UnknownConnection`]), its send queue is full (the
    /// client is too slow and is being disconnected: [`HostError::QueueFull`]),
    /// or the message is larger than the host accepts
    /// ([`HostError::InvalidArgument`]).
    pub fn try_send(self, message: impl Into<Message>) -> Result<(), HostError> {
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

    /// Add this connection to a room (created on first join); joining a room
    /// twice is harmless.
    ///
    /// Fails with [`HostError::UnknownConnection`] when the connection is
    /// closed or not this plugin's, and with [`HostError::InvalidArgument`]
    /// when the name is empty or too long, or the connection is already in
    /// as many rooms as the host allows.
    pub fn join(self, room: &str) -> Result<(), HostError> {
        host::join(self.0, room)
    }

    /// Remove this connection from a room; leaving a room it is not in is
    /// harmless.
    ///
    /// Fails with [`HostError::UnknownConnection`] when the connection is
    /// closed or not this plugin's, and with [`HostError::InvalidArgument`]
    /// when the name is empty or too long.
    pub fn leave(self, room: &str) -> Result<(), HostError> {
        host::leave(self.0, room)
    }

    /// The rooms this connection is in.
    pub fn rooms(self) -> Vec<String> {
        host::rooms_of(self.0).unwrap_or_default()
    }

    /// Close the connection with a WebSocket close code and reason, after the
    /// messages already queued for it; `on_close` follows.
    ///
    /// Fails with [`HostError::UnknownConnection`] when the connection is
    /// already closed or not this plugin's, and with
    /// [`HostError::InvalidArgument`] for a code a server may not send (it
    /// may send 1000–1003, 1007–1014 and 3000–4999).
    pub fn close(self, code: u16, reason: &str) -> Result<(), HostError> {
        host::close(self.0, code, reason)
    }

    /// Attach a value to this connection (e.g. the user's name); the host
    /// keeps it as long as the connection lives, across reloads.
    ///
    /// Fails with [`HostError::UnknownConnection`] when the connection is
    /// closed or not this plugin's, and with [`HostError::InvalidArgument`]
    /// when the key is empty or too long, the value too long, or the
    /// connection already holds as many keys as the host allows.
    pub fn set_meta(self, key: &str, value: &str) -> Result<(), HostError> {
        host::set_meta(self.0, key, value)
    }

    /// Bind this connection to a user id (from a token's claims, say), so
    /// that [`User::send`](crate::User::send) reaches it; binding again
    /// replaces the id.
    ///
    /// Fails with [`HostError::UnknownConnection`] when the connection is
    /// closed or not this plugin's, and with [`HostError::InvalidArgument`]
    /// when the id is empty or too long.
    pub fn set_user(self, user: &str) -> Result<(), HostError> {
        host::set_user(self.0, user)
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
