//! `switchboard new` as a user runs it: a plugin crate scaffolded into a
//! temp folder builds, passes its own test (the kit's), and runs under
//! `switchboard dev`; and the mistakes a user makes get clear errors.

#![forbid(unsafe_code)]
#![allow(clippy::expect_used, reason = "a test fails by panicking, with the reason")]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{BINARY, Running};
use tokio_tungstenite::tungstenite::{self, Message};

fn new(args: &[&str], dir: &Path) -> Output {
    Command::new(BINARY).arg("new").args(args).arg("--dir").arg(dir).output().expect("run switchboard new")
}

/// `switchboard dev` serving the plugins under `sources`, with `env` set and
/// its log to `log`; and the address it listens on.
fn dev(sources: &Path, plugins: &Path, env: (&str, &Path), log: Stdio) -> (Running, String) {
    let child = Command::new(BINARY)
        .args(["dev", "--listen", "127.0.0.1:0", "--sources"])
        .arg(sources)
        .arg("--plugins")
        .arg(plugins)
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start switchboard dev");
    let mut server = Running(child);
    let address = server.address();
    (server, address)
}

/// The workspace's target folder: the scaffolded crate reuses its build.
fn target_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target")
}

#[test]
fn a_new_plugin_builds_passes_its_test_and_runs_under_dev() {
    let parent = tempfile::tempdir().expect("temp dir");
    let created = new(&["shout", "--template", "chat"], parent.path());
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let dir = parent.path().join("shout");
    assert!(dir.join("tests/shout.rs").is_file() && dir.join("Cargo.lock").is_file());

    // Its own test, written with the kit, passes as generated.
    let tested = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--release", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run cargo test");
    let report = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{report}\n{}", String::from_utf8_lossy(&tested.stderr));
    assert!(report.contains("test result: ok. 1 passed"), "{report}");

    // `switchboard dev` builds it and serves it.
    let plugins = tempfile::tempdir().expect("temp dir");
    let (_server, address) = dev(parent.path(), plugins.path(), ("CARGO_TARGET_DIR", &target_dir()), Stdio::null());
    let (mut ann, _) = tungstenite::connect(format!("ws://{address}/shout/lobby?user=ann")).expect("connect");
    ann.send(Message::text("hello")).expect("send");
    loop {
        match ann.read().expect("read") {
            Message::Text(text) if text.as_str() == "hello" => break,
            Message::Text(_) => {} // presence
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn mistakes_get_clear_errors_and_leave_nothing_behind() {
    let parent = tempfile::tempdir().expect("temp dir");
    let error = |output: Output| {
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(error(new(&["Shout"], parent.path())).contains("not a valid plugin name"));
    assert!(error(new(&["test"], parent.path())).contains("reserved"));
    assert!(error(new(&["shout", "--template", "nope"], parent.path())).contains("no template \"nope\""));
    assert!(new(&["shout"], parent.path()).status.success());
    assert!(error(new(&["shout"], parent.path())).contains("already exists"));
    let file = parent.path().join("a-file");
    std::fs::write(&file, "").expect("write");
    assert!(error(new(&["other"], &file)).contains("cannot create"));
    let left: Vec<_> =
        std::fs::read_dir(parent.path()).expect("read").map(|entry| entry.expect("entry").file_name()).collect();
    assert_eq!(left.len(), 2, "only shout and a-file: {left:?}");
}

#[test]
fn dev_builds_and_serves_a_javascript_plugin() {
    let sources = tempfile::tempdir().expect("temp dir");
    let echo_js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/echo-js");
    std::os::unix::fs::symlink(echo_js, sources.path().join("echo-js")).expect("link the plugin");
    let plugins = tempfile::tempdir().expect("temp dir");
    // The default compile cache, kept across runs in the target folder.
    let cache = target_dir().join("test-xdg-cache");
    let (_server, address) = dev(sources.path(), plugins.path(), ("XDG_CACHE_HOME", &cache), Stdio::null());
    assert!(plugins.path().join("echo-js.wasm").is_file(), "built into the plugins folder");
    let (mut client, _) = tungstenite::connect(format!("ws://{address}/echo-js")).expect("connect");
    client.send(Message::text("ping")).expect("send");
    assert_eq!(client.read().expect("read"), Message::text("ping"));
    assert_eq!(client.read().expect("read"), Message::text("pong"));
}

#[test]
fn inside_the_switchboard_workspace_the_crate_is_a_member() {
    // A stand-in for the Switchboard sources: `--switchboard` names them.
    let sources = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(sources.path().join("guest-sdk")).expect("mkdir");
    std::fs::write(sources.path().join("guest-sdk/Cargo.toml"), "").expect("write");
    let plugins = sources.path().join("plugins");
    let output = Command::new(BINARY)
        .args(["new", "shout", "--switchboard"])
        .arg(sources.path())
        .arg("--dir")
        .arg(&plugins)
        .output()
        .expect("run switchboard new");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let manifest = std::fs::read_to_string(plugins.join("shout/Cargo.toml")).expect("a manifest");
    assert!(manifest.contains("switchboard-sdk.workspace = true") && !manifest.contains("[workspace]"), "{manifest}");
    assert!(!plugins.join("shout/Cargo.lock").exists(), "the workspace's lock file serves");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("cargo test --release --workspace --test shout"), "{printed}");
}

#[test]
fn a_new_javascript_plugin_runs_under_dev() {
    let parent = tempfile::tempdir().expect("temp dir");
    let created = new(&["yell", "--template", "js"], parent.path());
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(parent.path().join("yell/plugin.js").is_file());
    let plugins = tempfile::tempdir().expect("temp dir");
    let cache = target_dir().join("test-xdg-cache");
    let (_server, address) = dev(parent.path(), plugins.path(), ("XDG_CACHE_HOME", &cache), Stdio::null());
    let (mut client, _) = tungstenite::connect(format!("ws://{address}/yell")).expect("connect");
    client.send(Message::text("hi")).expect("send");
    assert_eq!(client.read().expect("read"), Message::text("hi"));
}

#[test]
fn dev_serves_without_node_and_says_why_the_javascript_plugin_is_missing() {
    let sources = tempfile::tempdir().expect("temp dir");
    let echo_js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/echo-js");
    std::os::unix::fs::symlink(echo_js, sources.path().join("echo-js")).expect("link the plugin");
    let plugins = tempfile::tempdir().expect("temp dir");
    let (mut server, address) =
        dev(sources.path(), plugins.path(), ("PATH", Path::new("/nonexistent")), Stdio::piped());
    assert!(!address.is_empty());
    let _ = server.0.kill();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.0.stderr.take().expect("stderr"), &mut log).expect("read the log");
    assert!(log.contains("is Node.js installed?"), "{log}");
}
