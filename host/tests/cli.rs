//! The `switchboard` binary as a user runs it: the `listening on` line,
//! configuration errors, `--metrics`, and a clean exit on SIGTERM.

#![forbid(unsafe_code)]
#![allow(clippy::expect_used, reason = "a test fails by panicking, with the reason")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{BINARY, Running};

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the server") {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_on_the_printed_port_and_exits_cleanly_on_sigterm() {
    let plugins = tempfile::tempdir().expect("temp dir");
    let child = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(plugins.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut server = Running(child);
    let address = server.address();
    assert!(!address.ends_with(":0"), "the real port is printed: {address}");

    let mut stream = TcpStream::connect(&address).expect("connect");
    write!(stream, "GET /api/plugins HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"errors":[],"plugins":[]}"#), "{response}");

    let killed = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("run kill");
    assert!(killed.success());
    let status = wait_for_exit(&mut server.0, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn the_metrics_flag_serves_metrics_on_their_own_port() {
    let plugins = tempfile::tempdir().expect("temp dir");
    let child = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--plugins"])
        .arg(plugins.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut server = Running(child);
    let mut log = BufReader::new(server.0.stderr.take().expect("stderr"));
    let address = loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).expect("read stderr") > 0, "no metrics address logged");
        if let Some((_, rest)) = line.split_once("metrics served at http://") {
            break rest.split('/').next().expect("an address").to_owned();
        }
    };
    let get = |path: &str| {
        let mut stream = TcpStream::connect(&address).expect("connect");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    };
    let metrics = get("/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    // No plugin, so no series yet: the Prometheus text format, empty.
    assert!(metrics.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{metrics}");
    assert!(get("/").starts_with("HTTP/1.1 404"));

    let killed = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("run kill");
    assert!(killed.success());
    let status = wait_for_exit(&mut server.0, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = folder.path().join("switchboard.toml");
    std::fs::write(&config, "[limits]\nsend_queu = 5\n").expect("write config");
    let output = Command::new(BINARY).arg("serve").arg("--config").arg(&config).output().expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid config file") && stderr.contains("send_queu"), "{stderr}");

    let missing = Command::new(BINARY).args(["serve", "--plugins", "/no/such/folder"]).output().expect("run");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/no/such/folder"), "{stderr}");
}
