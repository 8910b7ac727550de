use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::{Config, KeepAlive, Limits};
use switchboard_tests::{TestServer, plugins};

fn limits(change: impl FnOnce(&mut Limits)) -> Config {
    let mut config = Config::default();
    change(&mut config.limits);
    config
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009() -> anyhow::Result<()> {
    let server = TestServer::start_with(&[plugins::ECHO], limits(|limits| limits.max_message_size = 1024)).await?;
    let mut big = server.connect("/echo").await?;
    let mut small = server.connect("/echo").await?;
    big.send_text(&"x".repeat(1024)).await?;
    assert_eq!(big.recv_text().await?.len(), 1024, "exactly the limit is fine");
    big.send_text(&"x".repeat(1025)).await?;
    assert_eq!(big.expect_close().await?, (1009, "message too big".to_owned()));
    small.send_text("fine").await?;
    assert_eq!(small.recv_text().await?, "fine");
    Ok(())
}

#[tokio::test]
async fn a_flooding_client_is_warned_then_closed_with_1008() -> anyhow::Result<()> {
    let config = limits(|limits| {
        limits.messages_per_second = 1;
        limits.message_burst = 5;
    });
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    let mut flooder = server.connect("/echo").await?;
    let mut polite = server.connect("/echo").await?;
    // A burst within the limit goes through.
    for i in 0..5 {
        flooder.send_text(&i.to_string()).await?;
    }
    for i in 0..5 {
        assert_eq!(flooder.recv_text().await?, i.to_string());
    }
    // A flood does not: a warning, then the door.
    for i in 0..20 {
        flooder.send_text(&i.to_string()).await?;
    }
    let (messages, close) = flooder.recv_until_close().await?;
    let warning = tokio_tungstenite::tungstenite::Message::text(r#"{"type":"error","message":"Rate limit exceeded"}"#);
    assert!(messages.contains(&warning), "the client was told before being dropped: {messages:?}");
    assert!(messages.len() <= 3, "only what the bucket refilled got through: {messages:?}");
    assert_eq!(close, (1008, "rate limit exceeded".to_owned()));
    polite.send_text("hello").await?;
    assert_eq!(polite.recv_text().await?, "hello");
    Ok(())
}

#[tokio::test]
async fn connection_limits_answer_429_and_503() -> anyhow::Result<()> {
    let mut config = limits(|limits| limits.max_connections_per_ip = 2);
    config.plugin.entry("chat".into()).or_default().limits.max_connections = Some(1);
    let server = TestServer::start_with(&[plugins::ECHO, plugins::CHAT], config).await?;
    let first = server.connect("/echo").await?;
    let _second = server.connect("/echo").await?;
    assert_eq!(server.refused_status("/echo", &[]).await?, 429);
    drop(first);
    // The slot frees once the server has seen the first client go.
    let deadline = Instant::now() + switchboard_tests::TIMEOUT;
    let third = loop {
        match server.connect("/echo").await {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => return Err(error),
        }
    };
    drop((third, _second));

    let mut config = limits(|_| {});
    config.plugin.entry("chat".into()).or_default().limits.max_connections = Some(1);
    let server = TestServer::start_with(&[plugins::CHAT], config).await?;
    let mut member = server.connect("/chat/full").await?;
    member.recv_type("connected").await?;
    assert_eq!(server.refused_status("/chat/full", &[]).await?, 503);
    Ok(())
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped_and_leaves_its_rooms() -> anyhow::Result<()> {
    let keepalive = KeepAlive { ping_interval: Duration::from_millis(300), ping_timeout: Duration::from_millis(300) };
    let config = Config { keepalive, ..Config::default() };
    let server = TestServer::start_with(&[plugins::CHAT], config).await?;
    let mut alive = server.connect("/chat/keepalive").await?;
    alive.recv_type("connected").await?;
    // A client that never reads never answers a ping.
    let silent = server.connect("/chat/keepalive").await?;
    while alive.recv_type("users").await?["count"] != 2 {}
    let since = Instant::now();
    // `alive` reads, so it answers pings; `silent` is dropped and leaves.
    assert_eq!(alive.recv_type("users").await?["count"], 1);
    let took = since.elapsed();
    assert!(took < Duration::from_secs(3), "dropped after {took:?}, expected about 0.6 s");
    assert!(took >= Duration::from_millis(300), "dropped after {took:?}, before any ping was due");
    drop(silent);
    Ok(())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_the_others_get_everything() -> anyhow::Result<()> {
    const MESSAGES: usize = 400;
    let config = limits(|limits| {
        limits.send_queue = 16;
        limits.messages_per_second = 10_000;
        limits.message_burst = 10_000;
    });
    let server = TestServer::start_with(&[plugins::CHAT], config).await?;
    let mut sender = server.connect("/chat/pressure").await?;
    let mut reader = server.connect("/chat/pressure").await?;
    let stalled = server.connect("/chat/pressure").await?;
    while sender.recv_type("users").await?["count"] != 3 {}
    while reader.recv_type("users").await?["count"] != 3 {}

    let payload = "p".repeat(60_000);
    let reading = tokio::spawn(async move {
        let (mut received, mut stalled_left) = (0, false);
        while received < MESSAGES || !stalled_left {
            let message = reader.recv_json().await?;
            match message["type"].as_str() {
                Some("message") => {
                    anyhow::ensure!(
                        message["user"].as_str() == Some(received.to_string().as_str()),
                        "expected {received}, got {}",
                        message["user"]
                    );
                    received += 1;
                }
                // The stalled client's departure is announced to the room.
                Some("users") => stalled_left |= message["count"] == 2,
                _ => {}
            }
        }
        anyhow::Ok(reader)
    });
    for i in 0..MESSAGES {
        sender.send_json(&json!({"type": "message", "user": i.to_string(), "content": payload})).await?;
        sender.recv_type("message").await?;
    }
    let _reader = reading.await??;
    // The host forgets the stalled connection right after its on-close.
    server.wait_for_api("the stalled client to be gone", |api| api["plugins"][0]["connections"] == 2).await?;
    drop(stalled);
    Ok(())
}
