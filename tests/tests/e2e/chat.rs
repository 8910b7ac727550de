use serde_json::json;
use switchboard_tests::{Client, TestServer, plugins};

/// Connect to a chat room and read the `connected` greeting.
async fn join(server: &TestServer, room: &str) -> anyhow::Result<Client> {
    let mut client = server.connect(&format!("/chat/{room}")).await?;
    let connected = client.recv_type("connected").await?;
    assert_eq!(connected["room"], room);
    Ok(client)
}

/// Wait for the room's user count to reach `count`.
async fn wait_for_count(client: &mut Client, count: u64) -> anyhow::Result<()> {
    loop {
        let users = client.recv_type("users").await?;
        if users["count"] == count {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn connect_greets_and_counts_users_on_join_and_leave() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut alice = server.connect("/chat/lobby").await?;
    let connected = alice.recv_json().await?;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["room"], "lobby");
    assert!(connected["timestamp"].is_string());
    assert_eq!(alice.recv_json().await?, json!({"type": "presence_state", "room": "lobby", "users": {}}));
    assert_eq!(alice.recv_json().await?, json!({"type": "users", "room": "lobby", "count": 1}));

    let mut bob = join(&server, "lobby").await?;
    wait_for_count(&mut bob, 2).await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "users", "room": "lobby", "count": 2}));

    bob.close().await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "users", "room": "lobby", "count": 1}));
    Ok(())
}

#[tokio::test]
async fn messages_reach_the_whole_room_and_no_other() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut alice = join(&server, "a").await?;
    let mut bob = join(&server, "a").await?;
    let mut carol = join(&server, "b").await?;
    wait_for_count(&mut alice, 2).await?;

    alice.send_json(&json!({"type": "message", "user": "alice", "content": "hi room a"})).await?;
    let received = bob.recv_type("message").await?;
    assert_eq!((received["user"].as_str(), received["content"].as_str()), (Some("alice"), Some("hi room a")));
    assert!(received["timestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')));
    // The sender gets its own message too.
    assert_eq!(alice.recv_type("message").await?["content"], "hi room a");

    // Room a's message was handled before carol's own, so had it leaked to
    // room b it would arrive first.
    carol.send_json(&json!({"type": "message", "user": "carol", "content": "hi room b"})).await?;
    assert_eq!(carol.recv_type("message").await?["content"], "hi room b");
    Ok(())
}

#[tokio::test]
async fn typing_reaches_the_others_but_not_the_sender() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut alice = join(&server, "t").await?;
    let mut bob = join(&server, "t").await?;
    wait_for_count(&mut alice, 2).await?;

    alice.send_json(&json!({"type": "typing", "user": "alice", "is_typing": true})).await?;
    assert_eq!(bob.recv_type("typing").await?, json!({"type": "typing", "user": "alice", "is_typing": true}));
    // Had alice received her own typing event, it would come before the pong.
    alice.send_json(&json!({"type": "ping"})).await?;
    let next = alice.recv_json().await?;
    assert_eq!(next["type"], "pong", "the sender got {next}");
    Ok(())
}

#[tokio::test]
async fn a_typing_indicator_ends_by_itself_on_the_servers_clock() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut alice = join(&server, "t").await?;
    let mut bob = join(&server, "t").await?;
    wait_for_count(&mut alice, 2).await?;
    let started = std::time::Instant::now();
    alice.send_json(&json!({"type": "typing", "user": "alice", "is_typing": true})).await?;
    assert_eq!(bob.recv_type("typing").await?["is_typing"], true);
    // No news from alice: the plugin's 3 s timer ends it.
    assert_eq!(bob.recv_type("typing").await?, json!({"type": "typing", "user": "alice", "is_typing": false}));
    assert!(started.elapsed() >= std::time::Duration::from_secs(3), "not before its time: {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn bad_messages_get_error_replies_and_the_plugin_carries_on() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut client = join(&server, "errors").await?;
    let cases = [
        ("not json", "Invalid JSON"),
        ("[1,2]", "Invalid JSON"),
        (r#"{"type":"dance"}"#, "Unknown message type"),
        (r#"{"user":"x"}"#, "Unknown message type"),
        (r#"{"type":"message","user":"x"}"#, "Missing field: content"),
        (r#"{"type":"message","content":"x"}"#, "Missing field: user"),
        (r#"{"type":"message","user":7,"content":"x"}"#, "Invalid field: user must be a string"),
        (r#"{"type":"typing","user":"x","is_typing":"yes"}"#, "Invalid field: is_typing must be a boolean"),
    ];
    for (sent, expected) in cases {
        client.send_text(sent).await?;
        assert_eq!(client.recv_type("error").await?, json!({"type": "error", "message": expected}), "reply to {sent}");
    }
    client.send_binary(&[0xff, 0x00]).await?;
    assert_eq!(client.recv_type("error").await?["message"], "Invalid JSON");
    client.send_json(&json!({"type": "ping"})).await?;
    assert_eq!(client.recv_json().await?["type"], "pong");
    Ok(())
}

#[tokio::test]
async fn two_hundred_clients_each_receive_every_message_in_order() -> anyhow::Result<()> {
    const CLIENTS: usize = 200;
    const MESSAGES: usize = 50;
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(join(&server, "crowd").await?);
    }
    // Everyone has seen the room complete before the messages start.
    for client in &mut clients {
        wait_for_count(client, CLIENTS as u64).await?;
    }
    let mut sender = clients.remove(0);
    for i in 0..MESSAGES {
        sender.send_json(&json!({"type": "message", "user": "sender", "content": i.to_string()})).await?;
    }
    clients.push(sender);
    let readers = clients.into_iter().map(|mut client| {
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                let message = client.recv_type("message").await?;
                anyhow::ensure!(
                    message["content"].as_str() == Some(i.to_string().as_str()),
                    "expected {i}, got {message}"
                );
            }
            anyhow::Ok(())
        })
    });
    for reader in futures_util::future::join_all(readers).await {
        reader??;
    }
    Ok(())
}

#[tokio::test]
async fn on_plain_chat_clients_join_and_switch_rooms_by_message() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut ann = server.connect("/chat").await?;
    assert_eq!(ann.recv_json().await?["room"], serde_json::Value::Null);
    ann.send_json(&json!({"type": "message", "user": "ann", "content": "anyone?"})).await?;
    assert_eq!(ann.recv_json().await?, json!({"type": "error", "message": "Not in a room"}));
    ann.send_json(&json!({"type": "join"})).await?;
    assert_eq!(ann.recv_json().await?, json!({"type": "error", "message": "room_id required"}));

    ann.send_json(&json!({"type": "join", "room_id": "red"})).await?;
    // The room's presence_state comes with the join, then the acknowledgement.
    assert_eq!(ann.recv_type("joined").await?, json!({"type": "joined", "room": "red"}));
    assert_eq!(ann.recv_type("users").await?, json!({"type": "users", "room": "red", "count": 1}));
    let mut bob = join(&server, "red").await?;
    wait_for_count(&mut ann, 2).await?;

    // Switching leaves the old room (its members see the count drop).
    ann.send_json(&json!({"type": "join", "room_id": "blue"})).await?;
    assert_eq!(ann.recv_json().await?, json!({"type": "left", "room": "red"}));
    assert_eq!(ann.recv_type("joined").await?, json!({"type": "joined", "room": "blue"}));
    wait_for_count(&mut bob, 1).await?;
    ann.send_json(&json!({"type": "message", "user": "ann", "content": "blue now"})).await?;
    assert_eq!(ann.recv_type("message").await?["content"], "blue now");
    bob.send_json(&json!({"type": "message", "user": "bob", "content": "still red"})).await?;
    assert_eq!(bob.recv_type("message").await?["content"], "still red");
    Ok(())
}

#[tokio::test]
async fn presence_counts_a_user_once_across_tabs() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut first_tab = server.connect("/chat/p?user=ann").await?;
    first_tab.recv_type("presence_state").await?;
    let mut bob = server.connect("/chat/p?user=bob").await?;
    let state = bob.recv_type("presence_state").await?;
    assert_eq!(state["users"], json!({"ann": {"connections": 1}, "bob": {"connections": 1}}), "{state}");
    let diff = first_tab.recv_type("presence_diff").await?;
    assert_eq!((diff["joins"].clone(), diff["leaves"].clone()), (json!({"bob": {"connections": 1}}), json!({})));

    // A second tab of ann: no news for the room.
    let mut second_tab = server.connect("/chat/p?user=ann").await?;
    assert_eq!(second_tab.recv_type("presence_state").await?["users"]["ann"]["connections"], 2);
    second_tab.close().await?;
    // Only when ann's last tab goes does the room hear she left.
    first_tab.close().await?;
    loop {
        let message = bob.recv_json().await?;
        if message["type"] == "presence_diff" {
            assert_eq!(message["leaves"], json!({"ann": {"connections": 0}}), "{message}");
            assert_eq!(message["joins"], json!({}));
            break;
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_room_the_host_refuses_is_an_error_for_the_client_and_not_announced() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut ann = server.connect("/chat").await?;
    assert_eq!(ann.recv_json().await?["type"], "connected");
    let too_long = "x".repeat(100_000);
    ann.send_json(&json!({"type": "join", "room_id": too_long})).await?;
    // No `joined`, no `presence_state`: the refusal is the answer.
    let refused = ann.recv_json().await?;
    assert_eq!(refused["type"], "error");
    let message = refused["message"].as_str().unwrap_or_default();
    let reason = message.strip_prefix("cannot join room: ").unwrap_or_default();
    assert!(!reason.is_empty() && !reason.contains("InvalidArgument"), "a reason in words: {refused}");
    // No `users` for a room it is not in, and it is in none.
    ann.send_json(&json!({"type": "message", "user": "ann", "content": "anyone?"})).await?;
    assert_eq!(ann.recv_json().await?, json!({"type": "error", "message": "Not in a room"}));
    Ok(())
}
