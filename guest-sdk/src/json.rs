//! Reading JSON messages from clients, with errors worth sending back.
//!
//! Channel protocols route JSON objects by their `type` field. A client that
//! sends something wrong should learn what: [`BadMessage`] names the problem
//! (and the field) in words a client developer understands, and
//! [`Conn::send_error`](crate::Conn::send_error) sends it as
//! `{"type":"error","message":...}`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a client's message could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadMessage {
    /// Not JSON, or not a JSON object.
    InvalidJson,
    /// The `type` field is missing or names no known message.
    UnknownType,
    /// A required field is absent (or `null`).
    MissingField(String),
    /// A field has the wrong JSON type; `expected` says what it should be.
    WrongType {
        /// The field's name.
        field: String,
        /// What the field should hold, e.g. "a string".
        expected: &'static str,
    },
    /// Anything else the plugin wants to tell the client.
    Other(String),
}

/// A host call the message needed was refused: the client is told why.
impl From<crate::HostError> for BadMessage {
    fn from(error: crate::HostError) -> Self {
        BadMessage::Other(error.reason().to_owned())
    }
}

impl fmt::Display for BadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadMessage::InvalidJson => f.write_str("Invalid JSON"),
            BadMessage::UnknownType => f.write_str("Unknown message type"),
            BadMessage::MissingField(field) => write!(f, "Missing field: {field}"),
            BadMessage::WrongType { field, expected } => {
                write!(f, "Invalid field: {field} must be {expected}")
            }
            BadMessage::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for BadMessage {}

/// A JSON object received from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Json(Map<String, Value>);

impl Json {
    /// Parse bytes that must hold one JSON object.
    pub fn from_slice(bytes: &[u8]) -> Result<Json, BadMessage> {
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(map)) => Ok(Json(map)),
            _ => Err(BadMessage::InvalidJson),
        }
    }

    /// The `type` field, which names the kind of message.
    pub fn kind(&self) -> Option<&str> {
        self.0.get("type").and_then(Value::as_str)
    }

    /// A required string field.
    pub fn str(&self, field: &str) -> Result<&str, BadMessage> {
        self.required(field)?.as_str().ok_or_else(|| wrong_type(field, "a string"))
    }

    /// A required boolean field.
    pub fn bool(&self, field: &str) -> Result<bool, BadMessage> {
        self.required(field)?.as_bool().ok_or_else(|| wrong_type(field, "a boolean"))
    }

    /// A required integer field.
    pub fn i64(&self, field: &str) -> Result<i64, BadMessage> {
        self.required(field)?.as_i64().ok_or_else(|| wrong_type(field, "an integer"))
    }

    /// A required field of any type that serde can read.
    pub fn get<T: DeserializeOwned>(&self, field: &str) -> Result<T, BadMessage> {
        T::deserialize(self.required(field)?).map_err(|_| wrong_type(field, "of another type"))
    }

    /// An optional field: `None` when absent or `null`.
    pub fn optional(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|value| !value.is_null())
    }

    /// The whole object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    fn required(&self, field: &str) -> Result<&Value, BadMessage> {
        self.optional(field).ok_or_else(|| BadMessage::MissingField(field.to_owned()))
    }
}

fn wrong_type(field: &str, expected: &'static str) -> BadMessage {
    BadMessage::WrongType { field: field.to_owned(), expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let json = Json::from_slice(br#"{"type":"message","user":5}"#).expect("valid");
        assert_eq!(json.kind(), Some("message"));
        assert_eq!(json.str("user").unwrap_err().to_string(), "Invalid field: user must be a string");
        assert_eq!(json.str("content").unwrap_err().to_string(), "Missing field: content");
    }

    #[test]
    fn non_objects_are_invalid() {
        assert_eq!(Json::from_slice(b"[1]"), Err(BadMessage::InvalidJson));
        assert_eq!(Json::from_slice(b"{"), Err(BadMessage::InvalidJson));
    }
}
