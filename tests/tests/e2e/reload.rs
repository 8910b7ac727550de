use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_tests::{TestServer, plugin_in, plugins, variant};
use tokio_tungstenite::tungstenite::Message;

/// Replace `file` in the server's plugins folder with `bytes` (a plain
/// truncate-and-write, as editors and `cp` do) and wait until `name` runs
/// them (its sha256 changed and no error is recorded).
async fn replace(server: &TestServer, file: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let before = server.plugin_state(name).await?.map(|plugin| plugin["sha256"].clone());
    std::fs::write(server.plugins.path().join(file), bytes)?;
    server
        .wait_for_api("the new version", |api| {
            plugin_in(api, name)
                .is_some_and(|plugin| Some(&plugin["sha256"]) != before.as_ref() && plugin["last_error"].is_null())
        })
        .await?;
    Ok(())
}

const PREFIX_FILE: &str = "switchboard_test_plugin_prefix_v1.wasm";

#[tokio::test]
async fn a_new_version_serves_the_same_connection_and_keeps_its_state() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PREFIX_V1]).await?;
    let mut client = server.connect("/prefix").await?;
    let mut leaving = server.connect("/prefix/v1-only").await?;
    for (sent, expected) in [("a", "v1:1:a"), ("b", "v1:2:b")] {
        client.send_text(sent).await?;
        assert_eq!(client.recv_text().await?, expected);
    }

    replace(&server, PREFIX_FILE, "prefix", &std::fs::read(plugins::PREFIX_V2)?).await?;
    assert_eq!(server.plugin_state("prefix").await?.map(|plugin| plugin["version"].clone()), Some(json!("2.0.0")));
    // Same connection, no close frame in between (recv fails on one), the
    // new prefix, and the counter carried over by snapshot/restore.
    client.send_text("c").await?;
    assert_eq!(client.recv_text().await?, "v2:3:c");
    // A route the new version dropped: its connections are told to go.
    assert_eq!(leaving.expect_close().await?, (1001, "route removed".to_owned()));
    let mut newcomer = server.connect("/prefix/v2-only").await?;
    newcomer.send_text("d").await?;
    assert_eq!(newcomer.recv_text().await?, "v2:4:d");

    // The change first serves a quick build; the optimised build of the
    // same bytes takes over later, again with the state and connections.
    server
        .wait_for_api("the optimised build", |api| plugin_in(api, "prefix").is_some_and(|p| p["optimised"] == true))
        .await?;
    client.send_text("e").await?;
    assert_eq!(client.recv_text().await?, "v2:5:e");
    Ok(())
}

#[tokio::test]
async fn broken_files_keep_the_old_version_serving_until_a_good_one_arrives() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PREFIX_V1]).await?;
    let mut client = server.connect("/prefix").await?;
    let good = std::fs::read(plugins::PREFIX_V2)?;
    let path = server.plugins.path().join(PREFIX_FILE);

    let mut last_error = serde_json::Value::Null;
    for broken in [b"garbage, not wasm".to_vec(), good[..good.len() / 2].to_vec()] {
        std::fs::write(&path, &broken)?;
        let previous = last_error.clone();
        let api = server
            .wait_for_api("the load error", |api| {
                plugin_in(api, "prefix")
                    .is_some_and(|plugin| !plugin["last_error"].is_null() && plugin["last_error"] != previous)
            })
            .await?;
        last_error = plugin_in(&api, "prefix").map(|plugin| plugin["last_error"].clone()).unwrap_or_default();
        assert!(last_error.as_str().is_some_and(|error| error.contains("not a valid WebAssembly component")), "{api}");
        assert_eq!(plugin_in(&api, "prefix").map(|plugin| plugin["version"].clone()), Some(json!("1.0.0")));
        client.send_text("still v1?").await?;
        assert!(client.recv_text().await?.starts_with("v1:"));
    }

    replace(&server, PREFIX_FILE, "prefix", &good).await?;
    client.send_text("now?").await?;
    assert!(client.recv_text().await?.starts_with("v2:"));
    Ok(())
}

#[tokio::test]
async fn removing_the_file_unloads_the_plugin() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO, plugins::CHAT]).await?;
    let mut client = server.connect("/echo").await?;
    std::fs::remove_file(server.plugins.path().join("switchboard_plugin_echo.wasm"))?;
    assert_eq!(client.expect_close().await?, (1001, "plugin removed".to_owned()));
    server.wait_for_api("echo to go", |api| plugin_in(api, "echo").is_none()).await?;
    assert_eq!(server.get("/echo").await?.0, 404);
    // The other plugin serves on.
    let mut chat = server.connect("/chat/still").await?;
    assert_eq!(chat.recv_json().await?["type"], "connected");
    Ok(())
}

#[tokio::test]
async fn fifty_chatting_clients_survive_twenty_reloads_without_losing_a_message() -> anyhow::Result<()> {
    const CLIENTS: usize = 50;
    const RELOADS: u32 = 20;
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let chat = std::fs::read(plugins::CHAT)?;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = server.connect("/chat/reload").await?;
        client.recv_type("connected").await?;
        clients.push(client);
    }
    for client in &mut clients {
        while client.recv_type("users").await?["count"] != CLIENTS {}
    }

    let chatting = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for (id, client) in clients.into_iter().enumerate() {
        let (mut sink, mut stream) = client.into_inner().split();
        let chatting = Arc::clone(&chatting);
        let sender = tokio::spawn(async move {
            let mut sent = 0u64;
            while chatting.load(Ordering::Relaxed) {
                let message = json!({"type": "message", "user": id.to_string(), "content": sent.to_string()});
                sink.send(Message::text(message.to_string())).await?;
                sent += 1;
                // Pace the chat so that it spans the reloads.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let done = json!({"type": "message", "user": id.to_string(), "content": "done"});
            sink.send(Message::text(done.to_string())).await?;
            anyhow::Ok((sink, sent))
        });
        // Every client must see, from every sender, 0, 1, 2, ... then "done".
        let receiver = tokio::spawn(async move {
            let mut next: HashMap<String, u64> = HashMap::new();
            let mut finished = 0;
            while finished < CLIENTS {
                let frame = tokio::time::timeout(switchboard_tests::TIMEOUT, stream.next()).await?;
                let Some(Ok(Message::Text(text))) = frame else {
                    anyhow::bail!("client {id} lost its connection: {frame:?}")
                };
                let message: serde_json::Value = serde_json::from_str(&text)?;
                if message["type"] != "message" {
                    continue;
                }
                let user = message["user"].as_str().unwrap_or_default().to_owned();
                let expected = next.entry(user.clone()).or_insert(0);
                match message["content"].as_str() {
                    Some("done") => finished += 1,
                    content => {
                        anyhow::ensure!(
                            content == Some(expected.to_string().as_str()),
                            "client {id}: from {user} expected {expected}, got {content:?}"
                        );
                        *expected += 1;
                    }
                }
            }
            anyhow::Ok((stream, next))
        });
        tasks.push((sender, receiver));
    }

    for marker in 0..RELOADS {
        replace(&server, "switchboard_plugin_chat.wasm", "chat", &variant(&chat, marker)).await?;
    }
    chatting.store(false, Ordering::Relaxed);

    let mut sent_by = HashMap::new();
    let mut connections = Vec::new();
    for (id, (sender, _)) in tasks.iter_mut().enumerate() {
        let (sink, sent) = sender.await??;
        sent_by.insert(id.to_string(), sent);
        connections.push(sink);
    }
    for (id, (_, receiver)) in tasks.into_iter().enumerate() {
        let (_stream, received) = receiver.await??;
        assert_eq!(received, sent_by, "client {id} got a different set of messages than was sent");
    }
    assert!(sent_by.values().all(|sent| *sent > 0));
    // The room kept its 50 members through the reloads.
    let mut newcomer = server.connect("/chat/reload").await?;
    assert_eq!(newcomer.recv_type("users").await?["count"], CLIENTS + 1);
    Ok(())
}
