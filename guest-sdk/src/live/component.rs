//! What a live-component author implements ([`LiveComponent`]) and what its
//! callbacks get: the mount's [`Props`], the browser's [`Event`], the
//! server's [`Info`], and a [`Ctx`] to act through.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::html::Html;
use super::rooms::Rooms;
use crate::plugin::ConnectRequest;

/// A live component: state kept on the server, shown in the browser as the
/// HTML it renders. After every callback the runtime renders it again and
/// sends the browser what changed; there is no `refresh` to forget.
///
/// The state is `Serialize + DeserializeOwned` because it outlives the
/// plugin's memory: it is handed to the next version on a hot reload and
/// kept for a while after the browser's connection drops, so that the page
/// gets it back when it reconnects.
pub trait LiveComponent: Serialize + DeserializeOwned + 'static {
    /// The name a page mounts it by: `<div data-live="counter">`.
    const NAME: &'static str;

    /// A page mounted the component with `props` (the element's
    /// `data-props`). Check here that the user may see it (`props.request()`
    /// has the connection's verified token claims): `Err` refuses the mount
    /// and the page shows the error.
    fn mount(ctx: &mut Ctx, props: &Props) -> Result<Self, Error>;

    /// The component's HTML, built with [`html!`](crate::html).
    fn render(&self) -> Html;

    /// The user triggered a binding (`data-on-click="name"`, …). `Err`
    /// keeps the state as the callback left it and shows the error.
    fn on_event(&mut self, ctx: &mut Ctx, event: &Event) -> Result<(), Error>;

    /// Something happened on the server: a message in a room the component
    /// subscribed to, a backend publish, its timer, or presence.
    fn on_info(&mut self, ctx: &mut Ctx, info: &Info) {
        let _ = (ctx, info);
    }

    /// The component is going away: the page removed it or closed.
    fn unmount(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
}

/// Why a mount or an event failed; the page shows the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl<T: Into<String>> From<T> for Error {
    fn from(message: T) -> Error {
        Error(message.into())
    }
}

/// What a page mounts a component with.
#[derive(Debug)]
pub struct Props {
    pub(crate) value: Value,
    pub(crate) request: ConnectRequest,
}

impl Props {
    /// The prop `name`, when present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.value.get(name).and_then(|value| T::deserialize(value).ok())
    }

    /// All the props, as the page wrote them (a JSON object).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The connection's upgrade request: its verified token claims, path
    /// and query parameters.
    pub fn request(&self) -> &ConnectRequest {
        &self.request
    }
}

/// A user's action on a binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The binding's name: `inc` for `data-on-click="inc"`.
    pub name: String,
    /// `click`, `submit`, `change`, `input` or `keydown`.
    pub kind: String,
    pub(crate) values: Value,
    pub(crate) form: Value,
}

impl Event {
    /// The element's `data-val-<name>` attribute; `value` is the field's
    /// value for `input` and `change` events.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(Value::as_str)
    }

    /// A field of the form (for `submit` and `change` events).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.get(name).and_then(Value::as_str)
    }
}

/// Something that happened on the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Info {
    /// A component published `data` to `room` ([`Ctx::broadcast`]).
    Message {
        /// The room.
        room: String,
        /// What was published.
        data: Value,
    },
    /// The backend published `data` on `topic` (`POST /api/publish`); the
    /// components subscribed to the room named `topic` get it.
    Publish {
        /// The topic, a room name.
        topic: String,
        /// The event's JSON.
        data: Value,
    },
    /// The component's timer ([`Ctx::every`]).
    Tick,
    /// Who is in `room`: the labels of its components subscribed with
    /// [`Ctx::subscribe_as`], each once, sorted. Sent to all of the room's
    /// subscribers when it changes.
    Presence {
        /// The room.
        room: String,
        /// The labels present.
        users: Vec<String>,
    },
}

/// What a callback can do besides changing the component's state. Its
/// effects take place when the callback returns.
#[derive(Debug)]
pub struct Ctx {
    /// The plugin's rooms, read by [`Ctx::present`].
    pub(crate) rooms: Rc<RefCell<Rooms>>,
    pub(crate) effects: Vec<Effect>,
}

/// A deferred action of a [`Ctx`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    Subscribe { room: String, label: Option<String> },
    Unsubscribe(String),
    Broadcast { room: String, data: Value },
    Every(Option<Duration>),
    Push { name: String, value: Value },
    Flash { kind: &'static str, message: String },
    Redirect(String),
}

impl Ctx {
    pub(crate) fn new(rooms: &Rc<RefCell<Rooms>>) -> Ctx {
        Ctx { rooms: Rc::clone(rooms), effects: Vec::new() }
    }

    /// Get [`Info::Message`] for what is broadcast to `room`, and
    /// [`Info::Publish`] for backend events whose topic is `room`.
    pub fn subscribe(&mut self, room: &str) {
        self.effects.push(Effect::Subscribe { room: room.to_owned(), label: None });
    }

    /// [`Ctx::subscribe`], and be counted in the room's presence as
    /// `label` (e.g. the user's name): every subscriber gets
    /// [`Info::Presence`] when the room's labels change.
    pub fn subscribe_as(&mut self, room: &str, label: &str) {
        self.effects.push(Effect::Subscribe { room: room.to_owned(), label: Some(label.to_owned()) });
    }

    /// Stop getting `room`'s messages.
    pub fn unsubscribe(&mut self, room: &str) {
        self.effects.push(Effect::Unsubscribe(room.to_owned()));
    }

    /// Give every component subscribed to `room`, this one included,
    /// [`Info::Message`] with `data`.
    pub fn broadcast(&mut self, room: &str, data: impl Serialize) {
        let data = serde_json::to_value(data).unwrap_or(Value::Null);
        self.effects.push(Effect::Broadcast { room: room.to_owned(), data });
    }

    /// The labels present in `room` now (see [`Ctx::subscribe_as`]).
    pub fn present(&self, room: &str) -> Vec<String> {
        self.rooms.borrow().labels(room)
    }

    /// Get [`Info::Tick`] every `period` (at least the host's minimum,
    /// 10 ms by default), until [`Ctx::stop_timer`].
    pub fn every(&mut self, period: Duration) {
        self.effects.push(Effect::Every(Some(period)));
    }

    /// Stop the component's timer.
    pub fn stop_timer(&mut self) {
        self.effects.push(Effect::Every(None));
    }

    /// Send the page a custom event: `live:<name>` on the component's
    /// element, with `value` as its `detail`.
    pub fn push_event(&mut self, name: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.effects.push(Effect::Push { name: name.to_owned(), value });
    }

    /// Show the user a short message.
    pub fn flash(&mut self, message: impl Into<String>) {
        self.effects.push(Effect::Flash { kind: "info", message: message.into() });
    }

    /// Show the user a short error message.
    pub fn flash_error(&mut self, message: impl Into<String>) {
        self.effects.push(Effect::Flash { kind: "error", message: message.into() });
    }

    /// Send the browser to another page.
    pub fn redirect(&mut self, to: impl Into<String>) {
        self.effects.push(Effect::Redirect(to.into()));
    }
}
