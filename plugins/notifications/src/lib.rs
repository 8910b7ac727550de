//! Notifications pushed by the backend (`POST /api/publish`).
//!
//! `/notifications` subscribes to events for everyone; `/notifications/:user_id`
//! also to the events for that user. An event whose payload names a
//! `user_id` goes to that user only; if they have no open connection it is
//! kept in the host's store and delivered, in order, when they next connect.
//! Every other event goes to every subscriber. An event arrives as its
//! payload with `type` set to the topic: `{"type":"user_created",...}`.

use serde_json::{Map, Value, json};
use switchboard_sdk::{
    BadMessage, Conn, ConnectRequest, Message, Plugin, Reject, User, broadcast_json, kv, now_rfc3339,
};

/// Most events kept for one offline user; the oldest go first.
const MAX_PENDING: usize = 1000;

#[derive(Default)]
struct Notifications;

impl Plugin for Notifications {
    const NAME: &'static str = "notifications";
    const ROUTES: &'static [&'static str] = &["/notifications", "/notifications/:user_id"];

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        let user = request.param("user_id");
        let message = match user {
            Some(user) => format!("Connected to notifications for user {user}"),
            None => "Connected to notifications".to_owned(),
        };
        conn.send_json(&json!({ "type": "connected", "message": message, "timestamp": now_rfc3339() }));
        if let Some(user) = user {
            conn.set_user(user);
            // What arrived while the user was away, oldest first, once.
            for event in kv::get_json::<Vec<Value>>(&pending_key(user)).unwrap_or_default() {
                conn.send_json(&event);
            }
            kv::delete(&pending_key(user));
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
        let event = Value::Object(event);
        match event.get("user_id").and_then(Value::as_str) {
            Some(user) if User::named(user).send_json(&event) == 0 => keep_for_later(user, event.clone()),
            Some(_) => {}
            None => {
                broadcast_json(&event, None);
            }
        }
    }
}

fn pending_key(user: &str) -> String {
    format!("pending:{user}")
}

fn keep_for_later(user: &str, event: Value) {
    let key = pending_key(user);
    let mut pending = kv::get_json::<Vec<Value>>(&key).unwrap_or_default();
    pending.push(event);
    let excess = pending.len().saturating_sub(MAX_PENDING);
    pending.drain(..excess);
    if let Err(error) = kv::set_json(&key, &pending) {
        switchboard_sdk::log::warn(&format!("cannot keep a notification for {user}: {error:?}"));
    }
}

switchboard_sdk::export!(Notifications);
