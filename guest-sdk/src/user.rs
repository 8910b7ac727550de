//! Users: the people behind connections. A user may have several
//! connections (tabs, devices); a message to the user reaches all of them.

use serde::Serialize;

use crate::bindings::switchboard::channel::host;
use crate::message::Message;

/// A user id, as bound to connections with [`Conn::set_user`](crate::Conn::set_user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User<'a>(&'a str);

impl<'a> User<'a> {
    /// The user called `id`.
    pub fn named(id: &'a str) -> User<'a> {
        User(id)
    }

    /// The user's id.
    pub fn id(self) -> &'a str {
        self.0
    }

    /// Send a message to every open connection of the user; returns how
    /// many it reached (0: the user is offline).
    pub fn send(self, message: impl Into<Message>) -> u32 {
        host::send_to_user(self.0, &message.into().into())
    }

    /// Send `value` as JSON to every open connection of the user.
    pub fn send_json(self, value: &impl Serialize) -> u32 {
        self.send(Message::json_of(value))
    }
}
