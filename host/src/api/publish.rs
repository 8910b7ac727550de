//! `POST /api/publish`: the backend pushes an event into a channel.
//!
//! Two forms, both JSON, both authorised by `Authorization: Bearer <api key>`:
//!
//! - `{"plugin":"notifications","topic":"user_created","payload":{...}}`
//!   hands the event to the plugin's `on-publish`, which decides who gets it;
//! - `{"plugin":"chat","room":"lobby","message":{...}}` (or `"user":"ann"`)
//!   delivers `message` straight to a room or a user, without a plugin call.
//!
//! The answer is `{"delivered":N}`: how many messages the event queued for
//! connections (one per recipient of a room or user message; for an
//! `on-publish` event, every message the plugin's sends queued).

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

use crate::loading::registry::Registry;

/// A request body, before it is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    plugin: String,
    topic: Option<String>,
    payload: Option<Value>,
    room: Option<String>,
    user: Option<String>,
    message: Option<Value>,
}

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Publish {
    /// Call the plugin's `on-publish`.
    Event { plugin: String, topic: String, payload: Value },
    /// Deliver `message` to a room's members.
    ToRoom { plugin: String, room: String, message: Value },
    /// Deliver `message` to a user's connections.
    ToUser { plugin: String, user: String, message: Value },
}

/// A refused or failed publish: the HTTP status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) status: u16,
    pub(crate) error: String,
}

fn failure(status: u16, error: impl Into<String>) -> Failure {
    Failure { status, error: error.into() }
}

/// Parse and check a request body.
pub(crate) fn parse(body: &[u8]) -> Result<Publish, Failure> {
    let body: Body =
        serde_json::from_slice(body).map_err(|error| failure(400, format!("invalid request body: {error}")))?;
    let Body { plugin, topic, payload, room, user, message } = body;
    match (topic, room, user, message) {
        (Some(topic), None, None, None) => {
            Ok(Publish::Event { plugin, topic, payload: payload.unwrap_or(Value::Null) })
        }
        (None, Some(room), None, Some(message)) if payload.is_none() => Ok(Publish::ToRoom { plugin, room, message }),
        (None, None, Some(user), Some(message)) if payload.is_none() => Ok(Publish::ToUser { plugin, user, message }),
        _ => Err(failure(
            400,
            "give either `topic` (and `payload`) for the plugin, or `room` or `user` with `message` to deliver directly",
        )),
    }
}

/// Whether `header` (the `Authorization` value) carries `key`. Compares
/// digests, so that the time taken says nothing about the key.
pub(crate) fn authorised(header: Option<&str>, key: Option<&str>) -> bool {
    let (Some(header), Some(key)) = (header, key) else { return false };
    let Some(presented) = crate::api::auth::bearer_token(header) else { return false };
    Sha256::digest(presented.as_bytes()) == Sha256::digest(key.as_bytes())
}

/// Carry out a checked request; returns how many messages it queued.
pub(crate) async fn deliver(registry: &Registry, request: Publish) -> Result<Value, Failure> {
    let name = match &request {
        Publish::Event { plugin, .. } | Publish::ToRoom { plugin, .. } | Publish::ToUser { plugin, .. } => plugin,
    };
    let plugin = registry.plugin(name).ok_or_else(|| failure(404, format!("no plugin named `{name}` is loaded")))?;
    let delivered = match request {
        Publish::Event { topic, payload, .. } => {
            plugin.handle.publish(topic, payload.to_string()).await.map_err(|error| failure(500, error))?
        }
        Publish::ToRoom { room, message, .. } => u64::from(plugin.channel.publish(&room, &frame(message), None)),
        Publish::ToUser { user, message, .. } => u64::from(plugin.channel.send_to_user(&user, &frame(message))),
    };
    Ok(json!({ "delivered": delivered }))
}

/// A JSON string goes out as its text; anything else as JSON.
fn frame(message: Value) -> Message {
    match message {
        Value::String(text) => Message::text(text),
        other => Message::text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse() {
        assert_eq!(
            parse(br#"{"plugin":"n","topic":"user_created","payload":{"id":1}}"#),
            Ok(Publish::Event { plugin: "n".into(), topic: "user_created".into(), payload: json!({"id": 1}) })
        );
        assert_eq!(
            parse(br#"{"plugin":"chat","room":"lobby","message":"hi"}"#),
            Ok(Publish::ToRoom { plugin: "chat".into(), room: "lobby".into(), message: json!("hi") })
        );
        assert!(matches!(parse(br#"{"plugin":"chat","user":"ann","message":{}}"#), Ok(Publish::ToUser { .. })));
    }

    #[test]
    fn malformed_bodies_are_400_with_a_reason() {
        for body in [
            &b"not json"[..],
            br#"{"topic":"t"}"#,
            br#"{"plugin":"p"}"#,
            br#"{"plugin":"p","room":"r"}"#,
            br#"{"plugin":"p","room":"r","user":"u","message":1}"#,
            br#"{"plugin":"p","topic":"t","message":1}"#,
            br#"{"plugin":"p","topic":"t","extra":1}"#,
            br#"{"plugin":5,"topic":"t"}"#,
        ] {
            let error = parse(body).expect_err("refused");
            assert_eq!(error.status, 400, "{}", String::from_utf8_lossy(body));
            assert!(!error.error.is_empty());
        }
    }

    proptest::proptest! {
        /// Whatever a backend sends, the answer is a request or a 400.
        #[test]
        fn any_body_is_answered(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Err(error) = parse(&body) {
                proptest::prop_assert_eq!(error.status, 400);
            }
        }

        /// The same for bodies that are JSON objects of the right keys, with
        /// values of any type.
        #[test]
        fn any_mix_of_fields_is_answered(
            fields in proptest::collection::btree_map(
                proptest::sample::select(vec!["plugin", "topic", "payload", "room", "user", "message", "other"]),
                proptest::sample::select(vec![json!("x"), json!(1), json!(null), json!([]), json!({"a": 1}), json!(true)]),
                0..7,
            )
        ) {
            let body = serde_json::to_vec(&fields).expect("a map of JSON values serialises");
            if let Err(error) = parse(&body) {
                proptest::prop_assert_eq!(error.status, 400);
            }
        }
    }

    #[test]
    fn only_the_right_key_is_authorised() {
        assert!(authorised(Some("Bearer k3y"), Some("k3y")));
        assert!(authorised(Some("bearer k3y"), Some("k3y")), "the scheme is case-insensitive, as for tokens");
        assert!(!authorised(Some("Bearer nope"), Some("k3y")));
        assert!(!authorised(Some("k3y"), Some("k3y")));
        assert!(!authorised(None, Some("k3y")));
        assert!(!authorised(Some("Bearer k3y"), None));
    }
}
