//! Notifications pushed by the backend (`POST /api/publish`).
//!
//! `/notifications` subscribes to events for everyone; `/notifications/:user_id`
//! also to the events for that user. A client with a verified token may only
//! open the feed of its token's `sub` (else 1008); without a token, which
//! the operator may allow, the path is trusted.
//!
//! An event whose payload has a `user_id` goes to that user only, never to
//! everyone: a string names the user, an integer too by its decimal text
//! (`1160856237` reaches `/notifications/1160856237`), and any other value
//! (a float, bool, null, object or array) is a backend mistake, logged as a
//! warning and dropped, since a publish has no way to answer with an error.
//! If the user has no open connection on any node, the host keeps the event
//! and hands it, in order, to their next connection: run the plugin with
//! `mailbox_size` in its limits (`switchboard.toml` keeps 1000). An event without
//! `user_id` goes to every subscriber. An event arrives as its payload with
//! `type` set to the topic: `{"type":"user_created",...}`.

use serde_json::{Map, Value, json};
use switchboard_sdk::{
    BadMessage, Conn, ConnectRequest, Message, Plugin, Reject, User, broadcast_json, log, now_rfc3339,
};

#[derive(Default)]
struct Notifications;

impl Plugin for Notifications {
    const NAME: &'static str = "notifications";
    const ROUTES: &'static [&'static str] = &["/notifications", "/notifications/:user_id"];

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        let user = request.user_param("user_id")?;
        let message = match user {
            Some(user) => format!("Connected to notifications for user {user}"),
            None => "Connected to notifications".to_owned(),
        };
        conn.send_json(&json!({ "type": "connected", "message": message, "timestamp": now_rfc3339() }));
        // Binding the user hands over what was kept while they were away.
        // Without it their events would be kept for later: refuse rather
        // than pretend.
        if let Some(user) = user
            && let Err(error) = conn.set_user(user)
        {
            return Err(Reject::policy(format!("cannot subscribe: {}", error.reason())));
        }
        Ok(())
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        let message = match message.json() {
            Ok(message) => message,
            Err(error) => return conn.send_error(error),
        };
        match message.kind() {
            Some("subscribe") => {
                conn.send_json(&json!({ "type": "subscribed", "message": "Subscribed to notifications" }))
            }
            Some("ping") => conn.send_json(&json!({ "type": "pong", "timestamp": now_rfc3339() })),
            _ => conn.send_error(BadMessage::UnknownType),
        }
    }

    fn on_publish(&mut self, topic: &str, payload: Value) {
        let mut event = match payload {
            Value::Object(fields) => fields,
            Value::Null => Map::new(),
            other => Map::from_iter([("data".to_owned(), other)]),
        };
        event.insert("type".into(), topic.into());
        event.entry("timestamp").or_insert_with(|| now_rfc3339().into());
        let recipient = match event.get("user_id") {
            None => None,
            Some(Value::String(user)) => Some(user.clone()),
            Some(Value::Number(id)) if id.is_i64() || id.is_u64() => Some(id.to_string()),
            Some(other) => {
                let kind = kind_of(other);
                return log::warn(&format!(
                    "dropped a {topic:?} event: user_id must be a string or an integer, not {kind}"
                ));
            }
        };
        let event = Value::Object(event);
        match recipient {
            Some(user) => {
                User::named(&user).send_json(&event);
            }
            None => {
                broadcast_json(&event, None);
            }
        }
    }
}

/// A JSON value's kind, for a log line that must not repeat the payload
/// (events may carry secrets, such as reset links).
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a non-integer number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

switchboard_sdk::export!(Notifications);
