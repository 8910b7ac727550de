use serde_json::{Value, json};
use switchboard::{Config, StoreSettings};
use switchboard_tests::{TestServer, plugins};

const KEY: &str = "restart-test-key";

/// A server whose key-value stores live in `store`.
async fn server_on(store: &std::path::Path) -> anyhow::Result<TestServer> {
    let mut config = Config::default();
    config.api.key = Some(KEY.into());
    config.store = StoreSettings { path: Some(store.to_owned()) };
    config.plugin.entry("notifications".into()).or_default().limits.mailbox_size = Some(1000);
    TestServer::start_with(&[plugins::NOTIFICATIONS, plugins::GAME], config).await
}

async fn publish(server: &TestServer, body: &Value) -> anyhow::Result<Value> {
    let body = body.to_string();
    let length = body.len().to_string();
    let headers = [("authorization", &*format!("Bearer {KEY}")), ("content-length", &*length)];
    let (status, _, answer) = server.request_with_body("POST", "/api/publish", &headers, &body).await?;
    anyhow::ensure!(status == 200, "publish answered {status}: {answer}");
    Ok(serde_json::from_str(&answer)?)
}

#[tokio::test]
async fn notifications_kept_for_an_offline_user_survive_a_restart() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("switchboard.redb");
    let server = server_on(&store).await?;
    for n in 1..=3 {
        let event = json!({"plugin": "notifications", "topic": "reminder", "payload": {"user_id": "zoe", "n": n}});
        assert_eq!(publish(&server, &event).await?, json!({"delivered": 0}), "zoe is offline: kept");
    }
    server.stop().await?;

    let server = server_on(&store).await?;
    let mut zoe = server.connect("/notifications/zoe").await?;
    assert_eq!(zoe.recv_json().await?["type"], "connected");
    for n in 1..=3 {
        assert_eq!(zoe.recv_json().await?["n"], n, "kept events arrive in order");
    }
    zoe.close().await?;
    server.stop().await?;

    // Delivered once: a third start has nothing left for zoe.
    let server = server_on(&store).await?;
    let mut zoe = server.connect("/notifications/zoe").await?;
    assert_eq!(zoe.recv_json().await?["type"], "connected");
    zoe.send_json(&json!({"type": "ping"})).await?;
    assert_eq!(zoe.recv_json().await?["type"], "pong", "nothing was delivered twice");
    Ok(())
}

#[tokio::test]
async fn a_game_resumes_after_a_restart() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("games.redb");
    let server = server_on(&store).await?;
    let mut x = server.connect("/game/final").await?;
    let mut o = server.connect("/game/final").await?;
    x.recv_type("connected").await?;
    o.recv_type("connected").await?;
    x.send_json(&json!({"action": "join", "player": "xena"})).await?;
    x.recv_type("joined").await?;
    o.send_json(&json!({"action": "join", "player": "otto"})).await?;
    o.recv_type("joined").await?;
    x.send_json(&json!({"action": "move", "position": 4})).await?;
    x.recv_type("move_accepted").await?;
    server.stop().await?;

    let server = server_on(&store).await?;
    let mut watcher = server.connect("/game/final").await?;
    let state = watcher.recv_type("connected").await?["state"].clone();
    assert_eq!(state["board"][4], "X", "{state}");
    assert_eq!(state["players"], json!(["xena", "otto"]));
    assert_eq!(state["turn"], "O");
    Ok(())
}

#[tokio::test]
async fn without_a_store_path_nothing_survives() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.api.key = Some(KEY.into());
    config.plugin.entry("notifications".into()).or_default().limits.mailbox_size = Some(1000);
    let server = TestServer::start_with(&[plugins::NOTIFICATIONS], config.clone()).await?;
    let event = json!({"plugin": "notifications", "topic": "reminder", "payload": {"user_id": "zoe"}});
    assert_eq!(publish(&server, &event).await?, json!({"delivered": 0}));
    server.stop().await?;
    let server = TestServer::start_with(&[plugins::NOTIFICATIONS], config).await?;
    let mut zoe = server.connect("/notifications/zoe").await?;
    assert_eq!(zoe.recv_json().await?["type"], "connected");
    zoe.send_json(&json!({"type": "ping"})).await?;
    assert_eq!(zoe.recv_json().await?["type"], "pong", "the default store is in memory");
    Ok(())
}
