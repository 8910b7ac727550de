//! A WebSocket data message, as a plugin receives and sends it.

use crate::bindings::switchboard::channel::types::Payload;
use crate::json::{BadMessage, Json};

/// A text or binary WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl Message {
    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
        }
    }

    /// The raw bytes, whatever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// Parse the message as a JSON object (text or UTF-8 binary).
    pub fn json(&self) -> Result<Json, BadMessage> {
        Json::from_slice(self.as_bytes())
    }

    /// A text message holding `value` serialised as JSON.
    pub fn json_of(value: &impl serde::Serialize) -> Message {
        // Serialising plain data (maps with string keys, structs) cannot fail;
        // `null` is a safe answer for the exotic types that can.
        Message::Text(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Message::Binary(bytes)
    }
}

impl From<Payload> for Message {
    fn from(payload: Payload) -> Self {
        match payload {
            Payload::Text(text) => Message::Text(text),
            Payload::Binary(bytes) => Message::Binary(bytes),
        }
    }
}

impl From<Message> for Payload {
    fn from(message: Message) -> Self {
        match message {
            Message::Text(text) => Payload::Text(text),
            Message::Binary(bytes) => Payload::Binary(bytes),
        }
    }
}
