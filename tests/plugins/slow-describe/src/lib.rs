//! A test plugin whose `describe` never returns: only the host's deadline
//! stops it. Start-up must not wait for such files one after another.
//!
//! The SDK's `Plugin` trait cannot express this (its `describe` is made of
//! constants), so this implements the generated world directly.

use switchboard_sdk::__private::bindings::Guest;
use switchboard_sdk::__private::bindings::switchboard::channel::types;

struct SlowDescribe;

impl Guest for SlowDescribe {
    #[allow(clippy::empty_loop, reason = "the point: never return")]
    fn describe() -> types::PluginInfo {
        loop {}
    }

    fn on_connect(_request: types::ConnectRequest) -> Result<(), types::Rejection> {
        Ok(())
    }

    fn on_message(_connection: types::ConnectionId, _message: types::Payload) {}

    fn on_close(_info: types::CloseInfo) {}

    fn on_presence(_room: String, _joins: Vec<String>, _leaves: Vec<String>) {}

    fn on_publish(_topic: String, _payload: String) {}

    fn on_timer(_name: String) {}

    fn snapshot() -> Vec<u8> {
        Vec::new()
    }

    fn restore(_state: Vec<u8>) {}
}

#[allow(unsafe_code, reason = "the generated exports are `unsafe extern` functions")]
const _: () = {
    switchboard_sdk::__private::bindings::export_channel!(
        SlowDescribe with_types_in switchboard_sdk::__private::bindings
    );
};
