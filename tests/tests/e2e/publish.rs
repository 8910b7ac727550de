use serde_json::{Value, json};
use switchboard::Config;
use switchboard_tests::{Client, TestServer, plugins};

const KEY: &str = "backend-key-for-tests";

async fn server() -> anyhow::Result<TestServer> {
    let mut config = Config::default();
    config.api.key = Some(KEY.into());
    config.plugin.entry("notifications".into()).or_default().limits.mailbox_size = Some(1000);
    TestServer::start_with(&[plugins::NOTIFICATIONS, plugins::CHAT], config).await
}

/// `POST /api/publish` with the right key: status and JSON answer.
async fn publish(server: &TestServer, body: &Value) -> anyhow::Result<(u16, Value)> {
    post(server, &format!("Bearer {KEY}"), &body.to_string()).await
}

async fn post(server: &TestServer, authorization: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let length = body.len().to_string();
    let headers = [("authorization", authorization), ("content-type", "application/json"), ("content-length", &length)];
    let (status, _, answer) = server.request_with_body("POST", "/api/publish", &headers, body).await?;
    Ok((status, serde_json::from_str(&answer)?))
}

async fn subscribe(server: &TestServer, path: &str) -> anyhow::Result<Client> {
    let mut client = server.connect(path).await?;
    assert_eq!(client.recv_json().await?["type"], "connected");
    Ok(client)
}

#[tokio::test]
async fn a_backend_event_reaches_every_subscriber() -> anyhow::Result<()> {
    let server = server().await?;
    let mut everyone = subscribe(&server, "/notifications").await?;
    let mut ann = subscribe(&server, "/notifications/ann").await?;
    let event =
        json!({"plugin": "notifications", "topic": "user_created", "payload": {"user": {"id": 7, "name": "Zoe"}}});
    assert_eq!(publish(&server, &event).await?, (200, json!({"delivered": 2})));
    for client in [&mut everyone, &mut ann] {
        let received = client.recv_json().await?;
        assert_eq!(received["type"], "user_created");
        assert_eq!(received["user"], json!({"id": 7, "name": "Zoe"}));
        assert!(received["timestamp"].is_string());
    }
    everyone.send_json(&json!({"type": "subscribe"})).await?;
    assert_eq!(everyone.recv_json().await?["type"], "subscribed");
    Ok(())
}

#[tokio::test]
async fn events_for_an_offline_user_wait_and_arrive_in_order_once() -> anyhow::Result<()> {
    let server = server().await?;
    let mut bystander = subscribe(&server, "/notifications/bob").await?;
    for n in 1..=3 {
        let event = json!({"plugin": "notifications", "topic": "invoice", "payload": {"user_id": "ann", "n": n}});
        assert_eq!(publish(&server, &event).await?, (200, json!({"delivered": 0})));
    }
    let kept = server.plugin_state("notifications").await?.unwrap_or_default();
    assert_eq!(kept["mailbox_users"], 1, "{kept}");
    let mut ann = subscribe(&server, "/notifications/ann").await?;
    for n in 1..=3 {
        let received = ann.recv_json().await?;
        assert_eq!((received["type"].as_str(), received["n"].as_i64()), (Some("invoice"), Some(n)));
    }
    // Online now: the next one arrives at once, on each of ann's tabs.
    let mut second_tab = subscribe(&server, "/notifications/ann").await?;
    let live = json!({"plugin": "notifications", "topic": "invoice", "payload": {"user_id": "ann", "n": 4}});
    assert_eq!(publish(&server, &live).await?, (200, json!({"delivered": 2})));
    assert_eq!(ann.recv_json().await?["n"], 4);
    assert_eq!(second_tab.recv_json().await?["n"], 4, "the kept events went to the first tab only");
    let kept = server.plugin_state("notifications").await?.unwrap_or_default();
    assert_eq!((&kept["mailbox_users"], &kept["mailbox_bytes"]), (&json!(0), &json!(0)), "{kept}");
    // Never twice: a reconnect gets nothing old.
    drop(ann);
    let mut again = subscribe(&server, "/notifications/ann").await?;
    again.send_json(&json!({"type": "ping"})).await?;
    assert_eq!(again.recv_json().await?["type"], "pong");
    bystander.send_json(&json!({"type": "ping"})).await?;
    assert_eq!(bystander.recv_json().await?["type"], "pong", "bob got none of ann's events");
    Ok(())
}

#[tokio::test]
async fn direct_delivery_to_a_room_skips_the_plugin() -> anyhow::Result<()> {
    let server = server().await?;
    let mut member = server.connect("/chat/news").await?;
    // `users` comes after the join (`connected` may come before it).
    member.recv_type("users").await?;
    let body = json!({"plugin": "chat", "room": "news", "message": {"type": "announcement", "text": "hello"}});
    assert_eq!(publish(&server, &body).await?, (200, json!({"delivered": 1})));
    assert_eq!(member.recv_type("announcement").await?["text"], "hello");
    let nobody = json!({"plugin": "chat", "room": "empty", "message": "hi"});
    assert_eq!(publish(&server, &nobody).await?, (200, json!({"delivered": 0})));
    Ok(())
}

#[tokio::test]
async fn the_publish_api_refuses_bad_keys_and_bodies_clearly() -> anyhow::Result<()> {
    let server = server().await?;
    let body = json!({"plugin": "notifications", "topic": "t"}).to_string();
    assert_eq!(post(&server, "Bearer wrong", &body).await?.0, 401);
    assert_eq!(post(&server, "", &body).await?.0, 401);
    let (status, answer) = post(&server, &format!("Bearer {KEY}"), "{not json").await?;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().is_some_and(|error| error.starts_with("invalid request body")), "{answer}");
    let (status, answer) = publish(&server, &json!({"plugin": "notifications"})).await?;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = publish(&server, &json!({"plugin": "nope", "topic": "t"})).await?;
    assert_eq!((status, answer), (404, json!({"error": "no plugin named `nope` is loaded"})));
    Ok(())
}

#[tokio::test]
async fn an_event_for_a_numeric_user_id_reaches_that_user_only() -> anyhow::Result<()> {
    let server = server().await?;
    let mut everyone = subscribe(&server, "/notifications").await?;
    let mut user = subscribe(&server, "/notifications/42").await?;
    let private = json!({
        "plugin": "notifications",
        "topic": "password_reset",
        "payload": {"user_id": 42, "link": "secret"},
    });
    assert_eq!(publish(&server, &private).await?, (200, json!({"delivered": 1})));
    let received = user.recv_json().await?;
    assert_eq!((received["type"].as_str(), received["link"].as_str()), (Some("password_reset"), Some("secret")));
    // Had the private event been broadcast, it would come before this one.
    let public = json!({"plugin": "notifications", "topic": "maintenance", "payload": {"at": "noon"}});
    assert_eq!(publish(&server, &public).await?, (200, json!({"delivered": 2})));
    assert_eq!(everyone.recv_json().await?["type"], "maintenance", "the plain subscriber got the private event");
    assert_eq!(user.recv_json().await?["type"], "maintenance");
    Ok(())
}

#[tokio::test]
async fn an_event_whose_user_id_is_neither_string_nor_integer_is_dropped() -> anyhow::Result<()> {
    let server = server().await?;
    let mut everyone = subscribe(&server, "/notifications").await?;
    for user_id in [json!(true), json!(null), json!(4.2), json!({"id": 42}), json!([42])] {
        let event =
            json!({"plugin": "notifications", "topic": "leak", "payload": {"user_id": user_id, "link": "secret"}});
        assert_eq!(publish(&server, &event).await?, (200, json!({"delivered": 0})), "user_id {user_id}");
    }
    let public = json!({"plugin": "notifications", "topic": "maintenance", "payload": {}});
    assert_eq!(publish(&server, &public).await?, (200, json!({"delivered": 1})));
    assert_eq!(everyone.recv_json().await?["type"], "maintenance", "an event with a bad user_id was broadcast");
    Ok(())
}
