//! The generated host bindings for the `channel` world: the one `bindgen!` of the host.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "channel",
});

pub(crate) use self::switchboard::channel::host::Host as HostImports;
pub(crate) use self::switchboard::channel::types::{HostError, LogLevel};
