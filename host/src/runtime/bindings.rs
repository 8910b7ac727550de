//! The generated host bindings: the one place that runs `bindgen!`, once per
//! contract version the host links.
//!
//! Exports are async so that a callback runs as a future on the connection's
//! own task (no thread hop per message) and can yield at epoch ticks (a long
//! callback shares the worker instead of blocking it). Imports are
//! synchronous but for the key-value calls, which wait for Redis when the
//! node is clustered (the rest never waits for anything).

mod current {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "channel",
        exports: { default: async },
        imports: {
            "switchboard:channel/host.kv-get": async,
            "switchboard:channel/host.kv-set": async,
            "switchboard:channel/host.kv-delete": async,
            "switchboard:channel/host.kv-compare-and-swap": async,
        },
    });
}

/// The frozen 0.1.0 contract (`wit/v0.1.0`), for plugins built before 0.2.0:
/// `legacy.rs` maps it onto the current one.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "channel",
        exports: { default: async },
        imports: {
            "switchboard:channel/host.kv-get": async,
            "switchboard:channel/host.kv-set": async,
            "switchboard:channel/host.kv-delete": async,
        },
    });
}

pub(crate) use self::current::switchboard::channel::host::Host as HostImports;
pub(crate) use self::current::switchboard::channel::types::{Host as HostTypes, HostError, LogLevel};
pub(crate) use self::current::{Channel, ChannelPre, CloseInfo, ConnectRequest, Payload, PluginInfo};
