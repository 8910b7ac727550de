#![allow(clippy::print_stdout, reason = "cargo reads its instructions from a build script's stdout")]
#![allow(clippy::expect_used, reason = "a build script reports failure by panicking, with the reason")]

//! Builds the example and test plugins for `wasm32-wasip2`, so that
//! `cargo test` on a fresh clone just works, and tells the tests where the
//! `.wasm` files are (`$OUT_DIR/plugins.rs`).
//!
//! The plugins get a target folder of their own: the outer cargo holds the
//! lock on the main one while this script runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, package)
const PLUGINS: &[(&str, &str)] = &[
    ("ECHO", "switchboard-plugin-echo"),
    ("CHAT", "switchboard-plugin-chat"),
    ("NOTIFICATIONS", "switchboard-plugin-notifications"),
    ("GAME", "switchboard-plugin-game"),
    ("COUNTER", "switchboard-plugin-counter"),
    ("TODO", "switchboard-plugin-todo"),
    ("CHAT_ROOM", "switchboard-plugin-chat-room"),
    ("LIVE_PROBE", "switchboard-test-plugin-live-probe"),
    ("LIVE_PROBE_V2", "switchboard-test-plugin-live-probe-v2"),
    ("PROBE", "switchboard-test-plugin-probe"),
    ("RIVAL", "switchboard-test-plugin-rival"),
    ("PREFIX_V1", "switchboard-test-plugin-prefix-v1"),
    ("PREFIX_V2", "switchboard-test-plugin-prefix-v2"),
    ("SLOW_DESCRIBE", "switchboard-test-plugin-slow-describe"),
];

/// Variables of the outer build that must not leak into the plugin build
/// (they name the host target, clippy's wrapper, or the outer job server).
const OUTER_BUILD_VARIABLES: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("the tests crate lives in the workspace").to_owned();
    for watched in ["wit", "guest-sdk", "plugins", "tests/plugins", "Cargo.toml", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = root.join("target").join("test-plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for (_, package) in PLUGINS {
        command.args(["-p", package]);
    }
    for variable in OUTER_BUILD_VARIABLES {
        command.env_remove(variable);
    }
    let status = command.status().expect("cannot run cargo to build the test plugins");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    let out = target_dir.join("wasm32-wasip2").join("plugin");
    let mut constants = String::new();
    for (constant, package) in PLUGINS {
        let file = out.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.is_file(), "{} was not built", file.display());
        constants.push_str(&format!(
            "/// The `{package}` plugin, built for wasm32-wasip2.\npub const {constant}: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    write_if_changed(&out_dir.join("plugins.rs"), &constants);
}

fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).expect("cannot write plugins.rs");
    }
}
