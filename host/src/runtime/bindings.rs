//! The generated host bindings for the `channel` world: the one `bindgen!` of the host.
//!
//! Exports are async so that a callback runs as a future on the connection's
//! own task (no thread hop per message) and can yield at epoch ticks (a long
//! callback shares the worker instead of blocking it). Imports stay
//! synchronous: none of them waits for anything.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "channel",
    exports: { default: async },
});

pub(crate) use self::switchboard::channel::host::Host as HostImports;
pub(crate) use self::switchboard::channel::types::{HostError, LogLevel};
