//! The generated bindings for the `channel` world: the only place that names wit-bindgen.
//!
//! Plugin authors never touch this module; it is public only because the
//! `export!` macro expands in the plugin's crate.
#![allow(unsafe_code, missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]

wit_bindgen::generate!({
    path: "../wit",
    world: "channel",
    pub_export_macro: true,
    export_macro_name: "export_channel",
    default_bindings_module: "switchboard_sdk::__private::bindings",
    runtime_path: "switchboard_sdk::__private::wit_bindgen::rt",
});
