use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use switchboard::Config;
use switchboard_tests::{TIMEOUT, TestServer, plugins, variant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Echo and probe, metrics on a free port, an origin allow-list (to refuse
/// one), an API key, and a short deadline for the probe (to hit it).
fn config() -> Config {
    Config::from_toml(
        r#"
        allowed_origins = ["https://good.example"]
        [metrics]
        listen = "127.0.0.1:0"
        [api]
        key = "k3y"
        [plugin.probe.limits]
        callback_timeout = "200ms"
        send_queue_bytes = 1048576
        max_send_size = 1048576
        "#,
    )
    .expect("a valid configuration")
}

/// The value of `sample` (`name{labels}` as the scrape writes it), if present.
fn value(scrape: &[(String, f64)], sample: &str) -> Option<f64> {
    scrape.iter().find(|(name, _)| name == sample).map(|(_, value)| *value)
}

/// Scrape until every sample has its expected value (the last steps of a
/// close, `on-close` and its count, run after the client saw the close);
/// fails after [`TIMEOUT`] with the samples that differ.
async fn expect(server: &TestServer, expected: &[(&str, f64)]) -> anyhow::Result<Vec<(String, f64)>> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let scrape = server.scrape().await?;
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(sample, want)| value(&scrape, sample) != Some(*want))
            .map(|(sample, want)| format!("{sample}: want {want}, got {:?}", value(&scrape, sample)))
            .collect();
        if wrong.is_empty() {
            return Ok(scrape);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "metrics never matched: {wrong:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /api/publish` of "hi" to probe's room `lobby` with this
/// `Authorization`; the status.
async fn publish(server: &TestServer, authorization: &str) -> anyhow::Result<u16> {
    let body = json!({"plugin": "probe", "room": "lobby", "message": "hi"}).to_string();
    let length = body.len().to_string();
    let headers =
        [("Authorization", authorization), ("Content-Type", "application/json"), ("Content-Length", length.as_str())];
    Ok(server.request_with_body("POST", "/api/publish", &headers, &body).await?.0)
}

/// Write `bytes` as `file` of the server's plugins folder in one step (a
/// rename), so that the watcher sees one change, not a half-written file.
fn put(server: &TestServer, file: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let hidden = server.plugins.path().join(format!(".{file}.tmp"));
    std::fs::write(&hidden, bytes)?;
    std::fs::rename(hidden, server.plugins.path().join(file))?;
    Ok(())
}

#[tokio::test]
async fn a_scrape_during_real_traffic_counts_what_happened() -> anyhow::Result<()> {
    let server = TestServer::start_with(&[plugins::ECHO, plugins::PROBE], config()).await?;
    // Each plugin's series are there from the start, at zero.
    expect(
        &server,
        &[
            (r#"switchboard_connections{plugin="echo"}"#, 0.0),
            (r#"switchboard_messages_received_total{plugin="probe"}"#, 0.0),
            (r#"switchboard_plugin_callback_duration_seconds_count{plugin="echo",callback="on-message"}"#, 0.0),
        ],
    )
    .await?;

    // Twenty 10-byte messages through echo, and back.
    let mut echo = server.connect("/echo").await?;
    for i in 0..20 {
        echo.send_text(&format!("message-{i:02}")).await?;
    }
    for i in 0..20 {
        assert_eq!(echo.recv_text().await?, format!("message-{i:02}"));
    }
    expect(
        &server,
        &[
            (r#"switchboard_connections{plugin="echo"}"#, 1.0),
            (r#"switchboard_connections_accepted_total{plugin="echo"}"#, 1.0),
            (r#"switchboard_messages_received_total{plugin="echo"}"#, 20.0),
            (r#"switchboard_messages_received_bytes_total{plugin="echo"}"#, 200.0),
            (r#"switchboard_messages_sent_total{plugin="echo"}"#, 20.0),
            (r#"switchboard_messages_sent_bytes_total{plugin="echo"}"#, 200.0),
            (r#"switchboard_plugin_callback_duration_seconds_count{plugin="echo",callback="on-connect"}"#, 1.0),
            (r#"switchboard_plugin_callback_duration_seconds_count{plugin="echo",callback="on-message"}"#, 20.0),
            (
                r#"switchboard_plugin_callback_duration_seconds_bucket{plugin="echo",callback="on-message",le="+Inf"}"#,
                20.0,
            ),
        ],
    )
    .await?;

    // A refused upgrade (a foreign origin); a 404 is no refusal.
    assert_eq!(server.refused_status("/echo", &[("Origin", "https://evil.example")]).await?, 403);
    assert_eq!(server.get("/nowhere").await?.0, 404);
    // An upgrade the plugin refuses in on-connect (after its explanation).
    let mut rejected = server.connect("/probe/no?reject=4001").await?;
    assert_eq!(rejected.expect_close().await?.0, 4001);

    // A trap, and a deadline hit: each closes its connection with 1011.
    let mut victim = server.connect("/probe/victim").await?;
    victim.recv_type("hello").await?;
    victim.send_text("panic").await?;
    assert_eq!(victim.expect_close().await?.0, 1011);
    let mut spinner = server.connect("/probe/spinner").await?;
    spinner.recv_type("hello").await?;
    spinner.send_text("spin").await?;
    assert_eq!(spinner.expect_close().await?.0, 1011);

    // A room, and the publish API: one refused call, one delivered.
    let mut member = server.connect("/probe/member").await?;
    member.recv_type("hello").await?;
    member.send_text("join:lobby").await?;
    assert_eq!(member.recv_text().await?, "joined");
    assert_eq!(publish(&server, "Bearer wrong").await?, 401);
    assert_eq!(publish(&server, "Bearer k3y").await?, 200);
    assert_eq!(member.recv_text().await?, "hi");

    // A connection the client closes, with 1000.
    let mut echo = echo.into_inner();
    echo.close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() })).await?;
    while let Some(Ok(_)) = tokio::time::timeout(TIMEOUT, echo.next()).await? {}

    let scrape = expect(
        &server,
        &[
            (r#"switchboard_connections{plugin="echo"}"#, 0.0),
            (r#"switchboard_disconnects_total{plugin="echo",code="1000"}"#, 1.0),
            (r#"switchboard_upgrades_refused_total{reason="origin"}"#, 1.0),
            (r#"switchboard_upgrades_refused_total{reason="plugin"}"#, 1.0),
            (r#"switchboard_plugin_traps_total{plugin="probe"}"#, 1.0),
            (r#"switchboard_plugin_timeouts_total{plugin="probe"}"#, 1.0),
            (r#"switchboard_disconnects_total{plugin="probe",code="1011"}"#, 2.0),
            (r#"switchboard_connections{plugin="probe"}"#, 1.0),
            (r#"switchboard_connections_accepted_total{plugin="probe"}"#, 3.0),
            (r#"switchboard_rooms{plugin="probe"}"#, 1.0),
            (r#"switchboard_rooms{plugin="echo"}"#, 0.0),
            (r#"switchboard_api_publish_requests_total{status="401"}"#, 1.0),
            (r#"switchboard_api_publish_requests_total{status="200"}"#, 1.0),
            // panic, spin, join:lobby.
            (r#"switchboard_messages_received_total{plugin="probe"}"#, 3.0),
            // Three hellos, the rejection's explanation, "joined", the published "hi".
            (r#"switchboard_messages_sent_total{plugin="probe"}"#, 6.0),
            (r#"switchboard_slow_client_drops_total{plugin="echo"}"#, 0.0),
        ],
    )
    .await?;
    let refused: f64 = scrape
        .iter()
        .filter(|(sample, _)| sample.starts_with("switchboard_upgrades_refused_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(refused, 2.0, "no other refusal counted (the 404 is none)");
    // Nothing names a connection, a room or a user.
    let unbounded = ["lobby", "member", "victim", "room=", "user=", "connection="];
    assert!(scrape.iter().all(|(sample, _)| unbounded.iter().all(|word| !sample.contains(word))), "{scrape:?}");

    // A reload that takes, then one that does not (the old version serves on).
    let file = Path::new(plugins::PROBE).file_name().and_then(|name| name.to_str()).expect("a file name");
    put(&server, file, &variant(&std::fs::read(plugins::PROBE)?, 1))?;
    expect(&server, &[(r#"switchboard_plugin_reloads_total{plugin="probe",result="ok"}"#, 1.0)]).await?;
    put(&server, file, b"not a component")?;
    expect(
        &server,
        &[
            (r#"switchboard_plugin_reloads_total{plugin="probe",result="failed"}"#, 1.0),
            (r#"switchboard_plugin_reloads_total{plugin="probe",result="ok"}"#, 1.0),
        ],
    )
    .await?;
    member.send_text("still here").await?;
    assert_eq!(member.recv_text().await?, "still here");
    Ok(())
}

#[tokio::test]
async fn a_slow_client_is_counted_once_and_its_close_code_too() -> anyhow::Result<()> {
    let server = TestServer::start_with(&[plugins::PROBE], config()).await?;
    let mut flooder = server.connect("/probe/flooder").await?;
    flooder.recv_type("hello").await?;
    let mut stalled = server.connect("/probe/stalled").await?;
    let victim = stalled.recv_type("hello").await?["connection_id"].as_u64().expect("an id");
    // 64 MB cannot fit in a 1 MiB queue, whatever the socket buffers took.
    flooder.send_text(&format!("flood:{victim}:640:100000")).await?;
    let answer = flooder.recv_text().await?;
    assert!(answer.contains("QueueFull"), "the dedicated error of contract 0.2.0: {answer}");
    expect(
        &server,
        &[
            (r#"switchboard_slow_client_drops_total{plugin="probe"}"#, 1.0),
            (r#"switchboard_disconnects_total{plugin="probe",code="1008"}"#, 1.0),
            (r#"switchboard_connections{plugin="probe"}"#, 1.0),
        ],
    )
    .await?;
    drop(stalled);
    Ok(())
}

#[tokio::test]
async fn only_get_metrics_is_served_and_nothing_when_not_configured() -> anyhow::Result<()> {
    let server = TestServer::start_with(&[plugins::ECHO], config()).await?;
    let (status, body) = server.get_metrics("/metrics").await?;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE switchboard_messages_sent_total counter"), "{body}");
    assert!(body.contains("# TYPE switchboard_plugin_callback_duration_seconds histogram"), "{body}");
    assert_eq!(server.get_metrics("/").await?.0, 404);
    assert_eq!(server.get_metrics("/metrics/x").await?.0, 404);
    // The main port does not serve them.
    assert_eq!(server.get("/metrics").await?.0, 404);

    let plain = TestServer::start(&[plugins::ECHO]).await?;
    assert_eq!(plain.metrics_addr, None);
    Ok(())
}
