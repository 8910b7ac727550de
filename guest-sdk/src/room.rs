//! Rooms (named groups of connections) and broadcasting to all connections.

use serde::Serialize;

use crate::HostError;
use crate::bindings::switchboard::channel::host;
use crate::conn::Conn;
use crate::message::Message;

/// A room of this plugin, named by a string. Rooms exist while they have
/// members; [`Conn::join`] creates one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room<'a>(&'a str);

impl<'a> Room<'a> {
    /// The room called `name`.
    pub fn named(name: &'a str) -> Room<'a> {
        Room(name)
    }

    /// The room's name.
    pub fn name(self) -> &'a str {
        self.0
    }

    /// Send a message to every member; returns how many it reached.
    pub fn publish(self, message: impl Into<Message>) -> u32 {
        host::publish(self.0, &message.into().into(), None)
    }

    /// Send a message to every member but `except` (typically the sender).
    pub fn publish_except(self, message: impl Into<Message>, except: Conn) -> u32 {
        host::publish(self.0, &message.into().into(), Some(except.id()))
    }

    /// Send `value` as JSON to every member.
    pub fn publish_json(self, value: &impl Serialize) -> u32 {
        self.publish(Message::json_of(value))
    }

    /// Send `value` as JSON to every member but `except`.
    pub fn publish_json_except(self, value: &impl Serialize, except: Conn) -> u32 {
        self.publish_except(Message::json_of(value), except)
    }

    /// The connections in the room.
    pub fn members(self) -> Vec<Conn> {
        host::room_members(self.0).into_iter().map(Conn::from_id).collect()
    }

    /// How many connections are in the room.
    pub fn len(self) -> usize {
        host::room_size(self.0) as usize
    }

    /// Turn on presence for this room: the host then sends its clients
    /// `presence_state` when they join and `presence_diff` when a user
    /// (bound with [`Conn::set_user`]) arrives or goes. Harmless to repeat.
    ///
    /// Fails with [`HostError::InvalidArgument`] when the name is empty or
    /// too long, or the plugin already tracks as many rooms as the host
    /// allows.
    pub fn track_presence(self) -> Result<(), HostError> {
        host::track_presence(self.0)
    }

    /// The users in the room (when its presence is tracked) and how many
    /// connections each has there.
    pub fn presence(self) -> Vec<(String, u32)> {
        host::presence(self.0)
    }

    /// Whether the room has no members (that is, does not exist).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Send a message to every connection of this plugin, except `except`;
/// returns how many it reached.
pub fn broadcast(message: impl Into<Message>, except: Option<Conn>) -> u32 {
    host::broadcast(&message.into().into(), except.map(Conn::id))
}

/// Send `value` as JSON to every connection of this plugin, except `except`.
pub fn broadcast_json(value: &impl Serialize, except: Option<Conn>) -> u32 {
    broadcast(Message::json_of(value), except)
}
