//! The [`Plugin`] trait: what a channel plugin implements.

use crate::bindings::switchboard::channel::types;
use crate::conn::Conn;
use crate::message::Message;

/// A channel plugin. Every callback has a default that does nothing, so a
/// plugin implements only what it needs.
///
/// The host creates the value with `Default` when the plugin is instantiated,
/// then calls the callbacks one at a time: `&mut self` is the plugin's
/// in-memory state. That state is lost when the plugin is reloaded or
/// restarted after a crash, unless it is carried over with
/// [`Plugin::snapshot`] and [`Plugin::restore`], or kept in [`crate::kv`].
/// A reload also happens shortly after a new file is loaded, when the
/// host's optimised build of the same code takes over from its quick one.
pub trait Plugin: Default + 'static {
    /// The plugin's name: unique on a server, shown in its logs and API.
    const NAME: &'static str;

    /// The route patterns this plugin serves, e.g. `"/chat/:room_id"`. A
    /// `:name` segment matches one path segment and becomes a path parameter.
    const ROUTES: &'static [&'static str];

    /// A client connected on one of [`Plugin::ROUTES`]. It can already be
    /// sent to. Return `Err` to refuse it: the client gets a close frame
    /// with the rejection's code and reason, and `on_close` is not called.
    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        let _ = (conn, request);
        Ok(())
    }

    /// A message arrived from `conn`. Messages of one connection arrive in
    /// the order they were sent.
    fn on_message(&mut self, conn: Conn, message: Message) {
        let _ = (conn, message);
    }

    /// `conn` closed. It has already left its rooms (listed in `close`); its
    /// metadata can still be read.
    fn on_close(&mut self, conn: Conn, close: &Close) {
        let _ = (conn, close);
    }

    /// Who is in a room whose presence this plugin tracks
    /// ([`Room::track_presence`](crate::Room::track_presence)) changed:
    /// `joins` arrived (their first connection), `leaves` left (their last).
    fn on_presence(&mut self, room: &str, joins: Vec<String>, leaves: Vec<String>) {
        let _ = (room, joins, leaves);
    }

    /// The backend published an event for this plugin (`POST /api/publish`
    /// with a `topic`); `payload` is the JSON it sent. Whatever the plugin
    /// sends while handling it is counted in the answer to the backend.
    fn on_publish(&mut self, topic: &str, payload: serde_json::Value) {
        let _ = (topic, payload);
    }

    /// The timer `name`, set with [`crate::timer::after`] or
    /// [`crate::timer::every`], is due.
    fn on_timer(&mut self, name: &str) {
        let _ = name;
    }

    /// Hot reload: the state to hand to the next version of this plugin.
    fn snapshot(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// Hot reload: take over what the previous version's
    /// [`Plugin::snapshot`] returned. Called before any other callback.
    fn restore(&mut self, state: Vec<u8>) {
        let _ = state;
    }
}

/// A WebSocket upgrade request on one of the plugin's routes.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct ConnectRequest {
    /// The route pattern that matched, e.g. `/chat/:room_id`.
    pub route: String,
    /// The request path, e.g. `/chat/lobby`.
    pub path: String,
    /// The route's `:name` parameters, percent-decoded.
    pub params: Vec<(String, String)>,
    /// The query string's pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The request headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The client's address, `ip:port`.
    pub remote_addr: String,
    /// The verified token's claims (a JSON object), when the client sent a
    /// token. The host refuses invalid or expired tokens before the plugin
    /// hears of the connection.
    pub claims: Option<serde_json::Value>,
}

impl ConnectRequest {
    /// The path parameter `name` (for the route `/chat/:room_id`, `"room_id"`).
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }

    /// The first query parameter called `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        lookup(&self.query, name)
    }

    /// The path parameter `name`, when it names the connecting user (as in
    /// `/notifications/:user_id`): a client with a verified token may only
    /// open its own, so the token's `sub` claim must be a string equal to
    /// the parameter, else the connection is refused with 1008. Without a
    /// token (the operator does not require them) the parameter is taken
    /// as given: anonymous mode trusts the path. `Ok(None)` when the route
    /// has no such parameter.
    pub fn user_param(&self, name: &str) -> Result<Option<&str>, Reject> {
        let value = self.param(name);
        if self.claims.is_none() {
            return Ok(value);
        }
        match (value, self.claim("sub").and_then(serde_json::Value::as_str)) {
            (Some(value), Some(subject)) if value == subject => Ok(Some(value)),
            (None, _) => Ok(None),
            _ => Err(Reject::policy(format!("token subject does not match {name}"))),
        }
    }

    /// The claim `name` of the verified token, e.g. `"sub"`.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.as_ref()?.get(name)
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

impl From<types::ConnectRequest> for ConnectRequest {
    fn from(request: types::ConnectRequest) -> Self {
        ConnectRequest {
            route: request.route,
            path: request.path,
            params: request.params,
            query: request.query,
            headers: request.headers,
            remote_addr: request.remote_addr,
            claims: request.claims.and_then(|claims| serde_json::from_str(&claims).ok()),
        }
    }
}

/// A refused connection: the WebSocket close code and reason the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// A WebSocket close code, e.g. 1008 or 4000–4999.
    pub code: u16,
    /// A short reason (at most 123 bytes reach the client).
    pub reason: String,
}

impl Reject {
    /// Refuse with any close code.
    pub fn new(code: u16, reason: impl Into<String>) -> Reject {
        Reject { code, reason: reason.into() }
    }

    /// Refuse with 1008, "policy violation": the usual code for a client
    /// that is not allowed in.
    pub fn policy(reason: impl Into<String>) -> Reject {
        Reject::new(1008, reason)
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The WebSocket close code; 1006 when the socket dropped without one.
    pub code: u16,
    /// The close reason, possibly empty.
    pub reason: String,
    /// The rooms the connection was in when it closed.
    pub rooms: Vec<String>,
}
