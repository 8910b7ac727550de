//! The chat plugin, tested with the kit (`switchboard::testing`): the real
//! plugin and channel logic, fake clients, the kit's own clock.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::testing::{Closed, TestChannel, TestClient, build_plugin};

async fn chat() -> TestChannel {
    TestChannel::load(build_plugin(env!("CARGO_MANIFEST_DIR")).unwrap()).await.unwrap()
}

/// The types of the messages `client` got since the last look.
fn kinds(client: &TestClient) -> Vec<String> {
    client.json_frames().iter().map(|message| message["type"].as_str().unwrap_or("?").to_owned()).collect()
}

// The seed's `ChatChannel` spec ("Testing WebSockets"), nearly line for line.

#[tokio::test]
async fn handles_connection() {
    let channel = chat().await;
    let _client = channel.connect("/chat").await.unwrap();
    assert_eq!(channel.connections(), 1);
}

#[tokio::test]
async fn handles_messages() {
    let channel = chat().await;
    let client = channel.connect("/chat").await.unwrap();
    client.send(r#"{"type": "ping"}"#).await;
    assert_eq!(kinds(&client), ["connected", "pong"]);
}

#[tokio::test]
async fn handles_disconnection() {
    let channel = chat().await;
    let client = channel.connect("/chat").await.unwrap();
    client.close_with(1000, "Normal closure").await;
    assert_eq!(channel.connections(), 0);
}

// Beyond the seed.

#[tokio::test]
async fn a_message_reaches_everyone_in_the_room_and_no_one_outside_it() {
    let channel = chat().await;
    let ann = channel.connect("/chat/lobby?user=ann").await.unwrap();
    let bob = channel.connect("/chat/lobby?user=bob").await.unwrap();
    let eve = channel.connect("/chat/elsewhere?user=eve").await.unwrap();
    assert_eq!(channel.room_members("lobby"), [ann.id(), bob.id()]);
    assert_eq!(channel.presence("lobby"), [("ann".to_owned(), 1), ("bob".to_owned(), 1)]);
    for client in [&ann, &bob, &eve] {
        client.frames();
    }
    ann.send_json(&json!({"type": "message", "user": "ann", "content": "hi"})).await;
    for client in [&ann, &bob] {
        let message = client.next_json().unwrap();
        assert_eq!((&message["type"], &message["content"]), (&json!("message"), &json!("hi")));
    }
    assert_eq!(eve.frames(), []);
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_stays() {
    let channel = chat().await;
    let client = channel.connect("/chat").await.unwrap();
    client.frames();
    client.send("not json").await;
    client.send_json(&json!({"type": "message", "user": "ann", "content": "hi"})).await;
    let errors: Vec<Value> = client.json_frames();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|error| error["type"] == "error"), "{errors:?}");
    assert_eq!(errors[1]["message"], "Not in a room");
    assert_eq!(client.closed(), None);
}

#[tokio::test]
async fn a_typing_indicator_ends_by_itself_after_three_seconds() {
    let channel = chat().await;
    let ann = channel.connect("/chat/lobby?user=ann").await.unwrap();
    let bob = channel.connect("/chat/lobby?user=bob").await.unwrap();
    bob.frames();
    ann.send_json(&json!({"type": "typing", "user": "ann", "is_typing": true})).await;
    assert_eq!(bob.next_json().unwrap()["is_typing"], true);
    assert_eq!(channel.timers(), 1);
    assert_eq!(channel.advance(Duration::from_millis(2900)).await, 0);
    assert_eq!(bob.frames(), []);
    // Typing again renews the indicator: its timer is replaced, not added.
    ann.send_json(&json!({"type": "typing", "user": "ann", "is_typing": true})).await;
    assert_eq!(channel.advance(Duration::from_millis(2900)).await, 0);
    assert_eq!(bob.json_frames().len(), 1, "the renewal");
    assert_eq!(channel.advance(Duration::from_millis(200)).await, 1);
    assert_eq!(bob.next_json().unwrap(), json!({"type": "typing", "user": "ann", "is_typing": false}));
    assert_eq!(channel.timers(), 0);
    assert_eq!(ann.frames().iter().filter(|frame| frame.text().is_some_and(|t| t.contains("typing"))).count(), 0);
}

#[tokio::test]
async fn sending_a_message_or_leaving_ends_the_typing_indicator_once() {
    let channel = chat().await;
    let ann = channel.connect("/chat/lobby?user=ann").await.unwrap();
    let bob = channel.connect("/chat/lobby?user=bob").await.unwrap();
    ann.send_json(&json!({"type": "typing", "user": "ann", "is_typing": true})).await;
    bob.frames();
    ann.send_json(&json!({"type": "message", "user": "ann", "content": "done"})).await;
    assert_eq!(kinds(&bob), ["typing", "message"]);
    assert_eq!(channel.advance(Duration::from_secs(5)).await, 0, "the timer was cancelled");
    ann.send_json(&json!({"type": "typing", "user": "ann", "is_typing": true})).await;
    bob.frames();
    ann.close().await;
    let typing: Vec<Value> = bob.json_frames().into_iter().filter(|message| message["type"] == "typing").collect();
    assert_eq!(typing, [json!({"type": "typing", "user": "ann", "is_typing": false})]);
    assert_eq!(channel.timers(), 0);
}

#[tokio::test]
async fn a_closed_client_sees_how_it_ended() {
    let channel = chat().await;
    let client = channel.connect("/chat").await.unwrap();
    client.close_with(4000, "bye").await;
    assert_eq!(client.closed(), Some(Closed { code: 4000, reason: "bye".into() }));
    client.send(r#"{"type":"ping"}"#).await;
    assert!(!kinds(&client).contains(&"pong".to_owned()), "a closed client reaches no one");
}
