//! The 0.1.0 `host` interface, for plugins built before 0.2.0: every call is
//! the current one's, its types converted. 0.1.0 had no `queue-full` error:
//! such a plugin is told `invalid-argument`, as it was then.

use super::bindings::v0_1::switchboard::channel::{host, types};
use super::bindings::{HostError, HostImports, LogLevel, Payload};
use super::host_api::HostState;
use crate::channel::peer::ConnId;

impl From<types::Payload> for Payload {
    fn from(payload: types::Payload) -> Payload {
        match payload {
            types::Payload::Text(text) => Payload::Text(text),
            types::Payload::Binary(bytes) => Payload::Binary(bytes),
        }
    }
}

impl From<HostError> for types::HostError {
    fn from(error: HostError) -> types::HostError {
        match error {
            HostError::UnknownConnection => types::HostError::UnknownConnection,
            HostError::InvalidArgument(why) => types::HostError::InvalidArgument(why),
            HostError::QueueFull => types::HostError::InvalidArgument(
                "the send queue is full: the client is too slow and is being disconnected".into(),
            ),
        }
    }
}

/// A current call's result, its error converted.
fn old<T>(result: Result<T, HostError>) -> Result<T, types::HostError> {
    result.map_err(types::HostError::from)
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn send(&mut self, connection: ConnId, message: types::Payload) -> Result<(), types::HostError> {
        old(HostImports::send(self, connection, message.into()))
    }

    fn broadcast(&mut self, message: types::Payload, except: Option<ConnId>) -> u32 {
        HostImports::broadcast(self, message.into(), except)
    }

    fn join(&mut self, connection: ConnId, room: String) -> Result<(), types::HostError> {
        old(HostImports::join(self, connection, room))
    }

    fn leave(&mut self, connection: ConnId, room: String) -> Result<(), types::HostError> {
        old(HostImports::leave(self, connection, room))
    }

    fn publish(&mut self, room: String, message: types::Payload, except: Option<ConnId>) -> u32 {
        HostImports::publish(self, room, message.into(), except)
    }

    fn room_members(&mut self, room: String) -> Vec<ConnId> {
        HostImports::room_members(self, room)
    }

    fn room_size(&mut self, room: String) -> u32 {
        HostImports::room_size(self, room)
    }

    fn rooms_of(&mut self, connection: ConnId) -> Result<Vec<String>, types::HostError> {
        old(HostImports::rooms_of(self, connection))
    }

    fn close(&mut self, connection: ConnId, code: u16, reason: String) -> Result<(), types::HostError> {
        old(HostImports::close(self, connection, code, reason))
    }

    fn set_meta(&mut self, connection: ConnId, key: String, value: String) -> Result<(), types::HostError> {
        old(HostImports::set_meta(self, connection, key, value))
    }

    fn get_meta(&mut self, connection: ConnId, key: String) -> Result<Option<String>, types::HostError> {
        old(HostImports::get_meta(self, connection, key))
    }

    fn set_user(&mut self, connection: ConnId, user: String) -> Result<(), types::HostError> {
        old(HostImports::set_user(self, connection, user))
    }

    fn user_of(&mut self, connection: ConnId) -> Result<Option<String>, types::HostError> {
        old(HostImports::user_of(self, connection))
    }

    fn send_to_user(&mut self, user: String, message: types::Payload) -> u32 {
        HostImports::send_to_user(self, user, message.into())
    }

    fn track_presence(&mut self, room: String) -> Result<(), types::HostError> {
        old(HostImports::track_presence(self, room))
    }

    fn presence(&mut self, room: String) -> Vec<(String, u32)> {
        HostImports::presence(self, room)
    }

    async fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        HostImports::kv_get(self, key).await
    }

    async fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::HostError> {
        old(HostImports::kv_set(self, key, value).await)
    }

    async fn kv_delete(&mut self, key: String) -> bool {
        HostImports::kv_delete(self, key).await
    }

    fn log(&mut self, level: types::LogLevel, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            types::LogLevel::Trace => LogLevel::Trace,
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        };
        HostImports::log(self, level, message, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_is_an_invalid_argument_for_a_0_1_0_plugin() {
        let old = types::HostError::from(HostError::QueueFull);
        assert!(matches!(old, types::HostError::InvalidArgument(why) if why.contains("send queue is full")));
    }
}
