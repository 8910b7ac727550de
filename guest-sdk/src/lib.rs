//! Write Switchboard channel plugins in a few lines of Rust.
//!
//! A plugin is a type that implements [`Plugin`] and is exported with
//! [`export!`]. The host calls it when a client connects, sends a message or
//! leaves; the plugin answers through the handles this crate offers:
//!
//! - [`Conn`]: one WebSocket connection (send, join a room, metadata, close);
//! - [`Room`]: a named group of connections (publish, members);
//! - [`User`]: every connection of one user (bound with [`Conn::set_user`]);
//! - [`broadcast`]: every connection of the plugin;
//! - [`kv`]: a key-value store that the host keeps across reloads;
//! - [`timer`]: callbacks later ([`Plugin::on_timer`]), one-shot or repeating;
//! - [`log`]: the server's log, tagged with the plugin's name;
//! - [`live`]: live components, server-rendered UI kept in sync with the
//!   browser by minimal diffs ([`export_live!`] instead of [`export!`]);
//! - [`Json`] and [`BadMessage`]: reading JSON messages with errors a client
//!   can understand.
//!
//! ```ignore
//! use switchboard_sdk::{Conn, Message, Plugin};
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     const NAME: &'static str = "echo";
//!     const ROUTES: &'static [&'static str] = &["/echo"];
//!
//!     fn on_message(&mut self, conn: Conn, message: Message) {
//!         conn.send(message);
//!     }
//! }
//!
//! switchboard_sdk::export!(Echo);
//! ```
//!
//! Build it with `cargo build --profile plugin --target wasm32-wasip2` (the
//! workspace's size-optimised profile) and drop the `.wasm` file, from
//! `target/wasm32-wasip2/plugin/`, into the server's plugins folder.

// The `export!` macro and the bindings refer to this crate by name, also from inside it.
extern crate self as switchboard_sdk;

#[doc(hidden)]
pub mod bindings;
mod conn;
mod export;
mod json;
pub mod kv;
pub mod live;
pub mod log;
mod message;
mod plugin;
mod room;
pub mod timer;
mod user;

pub use bindings::switchboard::channel::types::HostError;
pub use conn::Conn;
pub use json::{BadMessage, Json};
pub use message::Message;
pub use plugin::{Close, ConnectRequest, Plugin, Reject};
pub use room::{Room, broadcast, broadcast_json};
pub use user::User;

impl HostError {
    /// Why the host refused, in words fit for a log line or a client (the
    /// `Display` that the bindings generate is the `Debug` form).
    pub fn reason(&self) -> &str {
        match self {
            HostError::UnknownConnection => "unknown or closed connection",
            HostError::InvalidArgument(why) => why,
            HostError::QueueFull => "the client's send queue is full: it is too slow and is being disconnected",
        }
    }
}

/// The current time as an RFC 3339 timestamp in UTC with millisecond
/// precision, e.g. `2026-11-23T10:15:30.123Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// What the `export!` macro needs; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::export::Export;
    pub use wit_bindgen;
}
