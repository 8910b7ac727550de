use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;

use switchboard::{Config, KeepAlive, Limits};
use switchboard_tests::{TestServer, plugin_in, plugins};
use tokio_tungstenite::tungstenite::Message;

fn limits(change: impl FnOnce(&mut Limits)) -> Config {
    let mut config = Config::default();
    change(&mut config.limits);
    config
}

/// Send `command` to the probe and return its one-line answer.
async fn ask(client: &mut switchboard_tests::Client, command: &str) -> anyhow::Result<String> {
    client.send_text(command).await?;
    client.recv_text().await
}

#[tokio::test]
async fn a_client_walking_through_100000_rooms_leaves_nothing_behind() -> anyhow::Result<()> {
    const ROOMS: usize = 100_000;
    let config = limits(|limits| {
        limits.messages_per_second = 1_000_000;
        limits.message_burst = 1_000_000;
        limits.send_queue = 1_000_000;
        limits.send_queue_bytes = 1 << 30;
    });
    let server = TestServer::start_with(&[plugins::CHAT], config).await?;
    let mut walker = server.connect("/chat?user=walker").await?;
    walker.recv_type("connected").await?;
    let (mut sink, mut stream) = walker.into_inner().split();
    let reading = tokio::spawn(async move {
        let mut joined = 0;
        while joined < ROOMS {
            let next = tokio::time::timeout(switchboard_tests::TIMEOUT, stream.next()).await?;
            let Some(Ok(Message::Text(text))) = next else { anyhow::bail!("the walker lost its connection: {next:?}") };
            let message: serde_json::Value = serde_json::from_str(&text)?;
            anyhow::ensure!(message["type"] != "error", "refused: {message}");
            joined += usize::from(message["type"] == "joined");
        }
        anyhow::Ok(())
    });
    for room in 0..ROOMS {
        sink.feed(Message::text(json!({"type": "join", "room_id": format!("room-{room}")}).to_string())).await?;
    }
    sink.flush().await?;
    reading.await??;
    let api = server.plugins_api().await?;
    let chat = plugin_in(&api, "chat").expect("chat is loaded");
    assert_eq!((chat["rooms"].as_u64(), chat["tracked_rooms"].as_u64()), (Some(1), Some(1)), "{chat}");
    Ok(())
}

#[tokio::test]
async fn rooms_tracked_rooms_metadata_and_the_store_have_limits_the_plugin_is_told_of() -> anyhow::Result<()> {
    let config = limits(|limits| {
        limits.max_rooms = 10;
        limits.max_tracked_rooms = 3;
        limits.max_meta_keys = 5;
        limits.kv_max_bytes = 10 << 20;
    });
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut probe = server.connect("/probe/limits").await?;
    probe.recv_type("hello").await?;
    for room in ["t1", "t2", "t3"] {
        assert_eq!(ask(&mut probe, &format!("track:{room}")).await?, "tracked");
        // The join hands the newcomer the room's presence, then the probe answers.
        let state = ask(&mut probe, &format!("join:{room}")).await?;
        assert!(state.contains("presence_state"), "{state}");
        assert_eq!(probe.recv_text().await?, "joined");
    }
    let answer = ask(&mut probe, "track:t4").await?;
    assert!(answer.contains("too many tracked rooms"), "{answer}");
    // Three rooms are taken: seven more make ten.
    let answer = ask(&mut probe, "joinmany:20").await?;
    assert!(answer.starts_with("joined 7; refused:") && answer.contains("too many rooms"), "{answer}");
    let answer = ask(&mut probe, "meta:10").await?;
    assert!(answer.starts_with("set 5; refused:") && answer.contains("too many metadata keys"), "{answer}");
    // 1 MiB values: the tenth would pass 10 MiB of keys and values.
    let answer = ask(&mut probe, "kvfill:20:1048576").await?;
    assert!(answer.starts_with("stored 9; refused:") && answer.contains("bytes of keys and values"), "{answer}");
    let stats = server.plugin_state("probe").await?.expect("probe is loaded");
    assert!(stats["kv_bytes"].as_u64().is_some_and(|bytes| bytes <= 10 << 20), "{stats}");
    // What was refused can be had again once room is made.
    assert_eq!(ask(&mut probe, "kvclear:9").await?, "cleared");
    assert!(ask(&mut probe, "kvfill:9:1048576").await?.starts_with("stored 9"));
    Ok(())
}

#[tokio::test]
async fn a_plugin_that_floods_the_log_is_cut_off_and_counted() -> anyhow::Result<()> {
    let config = limits(|limits| {
        limits.log_records_per_second = 10;
        limits.log_burst = 100;
    });
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut probe = server.connect("/probe/logs").await?;
    probe.recv_type("hello").await?;
    assert_eq!(ask(&mut probe, "log:100000").await?, "logged 100000");
    let stats = server.plugin_state("probe").await?.expect("probe is loaded");
    let dropped = stats["log_dropped"].as_u64().unwrap_or_default();
    assert!(dropped >= 99_800, "at most the burst and a few refills were written: {stats}");
    Ok(())
}

#[tokio::test]
async fn a_member_that_stops_reading_is_dropped_by_bytes_long_before_the_frame_limit() -> anyhow::Result<()> {
    const MESSAGES: usize = 300;
    let config = limits(|limits| {
        limits.send_queue = 100_000;
        limits.send_queue_bytes = 1 << 20;
        limits.max_send_size = 1 << 20;
        limits.messages_per_second = 10_000;
        limits.message_burst = 10_000;
    });
    // Not dropped for a write blocked too long, nor for not answering pings:
    // the queue's bytes alone must do it.
    let keepalive = KeepAlive { ping_interval: Duration::from_secs(60), ping_timeout: Duration::from_secs(60) };
    let config = Config { keepalive, ..config };
    let server = TestServer::start_with(&[plugins::CHAT], config).await?;
    let mut sender = server.connect("/chat/bytes").await?;
    let stalled = server.connect("/chat/bytes").await?;
    while sender.recv_type("users").await?["count"] != 2 {}
    // 300 × 100 kB is 30 MB: far more than the kernel's socket buffers hold,
    // and far fewer messages than the frame limit.
    let content = "b".repeat(100_000);
    for i in 0..MESSAGES {
        sender.send_json(&json!({"type": "message", "user": i.to_string(), "content": content})).await?;
        let message = sender.recv_type("message").await?;
        assert_eq!(message["user"], i.to_string());
    }
    server.wait_for_api("the stalled member to be dropped", |api| api["plugins"][0]["connections"] == 1).await?;
    drop(stalled);
    Ok(())
}

#[tokio::test]
async fn a_send_to_a_full_queue_is_refused_and_the_plugin_is_told() -> anyhow::Result<()> {
    let config = limits(|limits| {
        limits.send_queue_bytes = 1 << 20;
        limits.max_send_size = 1 << 20;
    });
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut flooder = server.connect("/probe/flooder").await?;
    flooder.recv_type("hello").await?;
    let mut stalled = server.connect("/probe/stalled").await?;
    let victim = stalled.recv_type("hello").await?["connection_id"].as_u64().expect("an id");
    // Whatever the socket buffers took, 64 MB more cannot fit in a 1 MiB queue.
    let answer = ask(&mut flooder, &format!("flood:{victim}:640:100000")).await?;
    assert!(answer.starts_with("sent ") && answer.contains("refused:"), "{answer}");
    assert!(answer.contains("QueueFull"), "the dedicated error of contract 0.2.0: {answer}");
    server.wait_for_api("the stalled client to be dropped", |api| api["plugins"][0]["connections"] == 1).await?;
    drop(stalled);
    Ok(())
}
