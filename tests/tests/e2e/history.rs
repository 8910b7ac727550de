use std::time::Duration;

use serde_json::{Value, json};
use switchboard::{Config, LimitOverrides};
use switchboard_tests::{Client, TestServer, plugins};

/// A server whose chat keeps `change`d history.
async fn server(change: impl FnOnce(&mut LimitOverrides)) -> anyhow::Result<TestServer> {
    let mut config = Config::default();
    let limits = &mut config.plugin.entry("chat".into()).or_default().limits;
    limits.history_size = Some(100);
    change(limits);
    TestServer::start_with(&[plugins::CHAT], config).await
}

/// `path`, asking to recover `room` from `position` (`{"epoch":…,"offset":…}`).
pub(crate) fn recovering(path: &str, room: &str, position: &Value) -> String {
    let recover = json!({ room: position }).to_string();
    let query: String = recover
        .bytes()
        .map(|byte| if byte.is_ascii_alphanumeric() { char::from(byte).to_string() } else { format!("%{byte:02X}") })
        .collect();
    format!("{path}&recover={query}")
}

/// Every frame up to and including the first of type `kind`.
pub(crate) async fn frames_until(client: &mut Client, kind: &str) -> anyhow::Result<Vec<Value>> {
    let mut frames = Vec::new();
    loop {
        let frame = client.recv_json().await?;
        let done = frame["type"] == kind;
        frames.push(frame);
        if done {
            return Ok(frames);
        }
    }
}

/// The chat messages among `frames`: (offset, content).
pub(crate) fn chat_messages(frames: &[Value]) -> Vec<(u64, String)> {
    frames
        .iter()
        .filter(|frame| frame["type"] == "publication" && frame["data"]["type"] == "message")
        .map(|frame| {
            (frame["offset"].as_u64().unwrap_or(0), frame["data"]["content"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// The offsets of the publications among `frames`.
pub(crate) fn offsets(frames: &[Value]) -> Vec<u64> {
    frames.iter().filter(|frame| frame["type"] == "publication").filter_map(|frame| frame["offset"].as_u64()).collect()
}

pub(crate) fn contents(frames: &[Value]) -> Vec<String> {
    chat_messages(frames).into_iter().map(|(_, content)| content).collect()
}

pub(crate) async fn say(client: &mut Client, user: &str, content: &str) -> anyhow::Result<()> {
    client.send_json(&json!({ "type": "message", "user": user, "content": content })).await
}

/// Wait for the chat message `content` (a publication); return its frame.
pub(crate) async fn heard(client: &mut Client, content: &str) -> anyhow::Result<Value> {
    loop {
        let frame = client.recv_type("publication").await?;
        if frame["data"]["content"] == content {
            return Ok(frame);
        }
    }
}

/// The room's last offset once things are quiet: a watcher joins (the chat
/// then publishes the user count) and stays, so that nothing else is
/// published until the caller does.
async fn quiet_last(server: &TestServer, room: &str) -> anyhow::Result<(Client, u64)> {
    let mut watcher = server.connect(&format!("/chat/{room}?user=watcher")).await?;
    watcher.recv_type("position").await?;
    loop {
        let frame = watcher.recv_type("publication").await?;
        if frame["data"]["type"] == "users" {
            return Ok((watcher, frame["offset"].as_u64().unwrap_or(0)));
        }
    }
}

pub(crate) fn position(frame: &Value) -> Value {
    json!({ "epoch": frame["epoch"], "offset": frame["offset"] })
}

#[tokio::test]
async fn a_client_that_comes_back_gets_exactly_what_it_missed_then_live_messages() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    let mut ann = server.connect("/chat/lobby?user=ann").await?;
    let start = ann.recv_type("position").await?;
    assert_eq!(start["offset"], 0, "{start}");
    let mut bob = server.connect("/chat/lobby?user=bob").await?;
    bob.recv_type("position").await?;
    say(&mut bob, "bob", "one").await?;
    let one = heard(&mut ann, "one").await?;
    assert_eq!(one["epoch"], start["epoch"]);
    drop(ann);
    for content in ["two", "three", "four"] {
        say(&mut bob, "bob", content).await?;
    }
    let four = heard(&mut bob, "four").await?;

    let mut ann = server.connect(&recovering("/chat/lobby?user=ann", "lobby", &position(&one))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    let recovered = frames.last().cloned().unwrap_or_default();
    assert_eq!(recovered["recovered"], true, "{frames:?}");
    let (from, last) = (one["offset"].as_u64().unwrap_or(0), recovered["offset"].as_u64().unwrap_or(0));
    assert!(last >= four["offset"].as_u64().unwrap_or(u64::MAX), "{recovered}");
    assert_eq!(offsets(&frames), (from + 1..=last).collect::<Vec<_>>(), "every missed message, in order, once");
    assert_eq!(contents(&frames), ["two", "three", "four"]);
    // Then live messages, none twice: the offsets go on from there.
    say(&mut bob, "bob", "five").await?;
    let mut live = Vec::new();
    loop {
        let frame = ann.recv_type("publication").await?;
        live.push(frame["offset"].as_u64().unwrap_or(0));
        if frame["data"]["content"] == "five" {
            break;
        }
    }
    assert_eq!(live, (last + 1..last + 1 + live.len() as u64).collect::<Vec<_>>(), "{live:?}");
    // Bob, who never left, got "five" at the same offset.
    assert_eq!(heard(&mut bob, "five").await?["offset"], json!(live[live.len() - 1]));
    Ok(())
}

#[tokio::test]
async fn a_gap_the_history_no_longer_covers_gives_recovered_false_and_nothing_partial() -> anyhow::Result<()> {
    let server = server(|limits| limits.history_size = Some(3)).await?;
    let mut ann = server.connect("/chat/lobby?user=ann").await?;
    let start = ann.recv_type("position").await?;
    let mut bob = server.connect("/chat/lobby?user=bob").await?;
    for content in ["1", "2", "3", "4", "5"] {
        say(&mut bob, "bob", content).await?;
    }
    heard(&mut ann, "5").await?;
    drop(ann);

    // The last three messages are kept; from the start more are missing.
    let mut ann = server.connect(&recovering("/chat/lobby?user=ann", "lobby", &position(&start))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    let last = frames.last().and_then(|frame| frame["offset"].as_u64()).unwrap_or(0);
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)), "{frames:?}");
    assert!(offsets(&frames).is_empty(), "nothing partial: {frames:?}");
    assert!(last >= 5, "where to go on from: {frames:?}");

    // From three before the last, the ring holds all that was missed.
    let (_watcher, last) = quiet_last(&server, "lobby").await?;
    let covered = json!({ "epoch": start["epoch"], "offset": last - 3 });
    let mut cid = server.connect(&recovering("/chat/lobby?user=cid", "lobby", &covered)).await?;
    let frames = frames_until(&mut cid, "recovered").await?;
    assert_eq!(offsets(&frames), [last - 2, last - 1, last], "{frames:?}");
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(true)));
    // One further back is one too many (cid's arrival was announced: one more).
    let trimmed = json!({ "epoch": start["epoch"], "offset": last - 3 });
    let mut cid = server.connect(&recovering("/chat/lobby?user=cid", "lobby", &trimmed)).await?;
    let frames = frames_until(&mut cid, "recovered").await?;
    assert!(offsets(&frames).is_empty(), "{frames:?}");
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)));

    // Another epoch (a restarted server, an evicted history): not recovered.
    let other = json!({ "epoch": "0000000000000000", "offset": 4 });
    let mut dan = server.connect(&recovering("/chat/lobby?user=dan", "lobby", &other)).await?;
    let frames = frames_until(&mut dan, "recovered").await?;
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)), "{frames:?}");
    assert!(chat_messages(&frames).is_empty(), "{frames:?}");

    // A parameter that does not parse: told, not recovered.
    let mut eve = server.connect("/chat/lobby?user=eve&recover=%7Bnot%20json").await?;
    let frames = frames_until(&mut eve, "recovered").await?;
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)));
    Ok(())
}

#[tokio::test]
async fn kept_messages_expire_after_the_ttl() -> anyhow::Result<()> {
    let server = server(|limits| limits.history_ttl = Some(Duration::from_millis(300))).await?;
    let mut ann = server.connect("/chat/lobby?user=ann").await?;
    let start = ann.recv_type("position").await?;
    let mut bob = server.connect("/chat/lobby?user=bob").await?;
    say(&mut bob, "bob", "soon gone").await?;
    heard(&mut ann, "soon gone").await?;
    drop(ann);
    // The behaviour under test is the passing of time itself.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut ann = server.connect(&recovering("/chat/lobby?user=ann", "lobby", &position(&start))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)), "{frames:?}");
    assert!(chat_messages(&frames).is_empty());
    Ok(())
}

#[tokio::test]
async fn a_publisher_left_out_of_its_message_is_told_its_position() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    let mut ann = server.connect("/chat/lobby?user=ann").await?;
    ann.recv_type("position").await?;
    let mut bob = server.connect("/chat/lobby?user=bob").await?;
    bob.recv_type("position").await?;
    // Typing goes to everyone but the typist.
    bob.send_json(&json!({ "type": "typing", "user": "bob", "is_typing": true })).await?;
    let typing = loop {
        let frame = ann.recv_type("publication").await?;
        if frame["data"]["type"] == "typing" {
            break frame;
        }
    };
    let own = bob.recv_type("position").await?;
    assert_eq!(position(&own), position(&typing));
    // Coming back from there, Bob gets what followed (his typing ending,
    // the user count), not his own message.
    drop(bob);
    let mut bob = server.connect(&recovering("/chat/lobby?user=bob", "lobby", &position(&own))).await?;
    let frames = frames_until(&mut bob, "recovered").await?;
    let recovered = frames.last().cloned().unwrap_or_default();
    assert_eq!(recovered["recovered"], true);
    let from = own["offset"].as_u64().unwrap_or(0);
    let to = recovered["offset"].as_u64().unwrap_or(0);
    assert_eq!(offsets(&frames), (from + 1..=to).collect::<Vec<_>>(), "{frames:?}");
    Ok(())
}

/// Six messages of 1000 bytes in each of `rooms`; the first position of each.
async fn fill(server: &TestServer, rooms: &[&str]) -> anyhow::Result<Vec<Value>> {
    let big = "x".repeat(1000);
    let mut positions = Vec::new();
    for room in rooms {
        let mut client = server.connect(&format!("/chat/{room}?user=ann")).await?;
        positions.push(client.recv_type("position").await?);
        for n in 0..6 {
            say(&mut client, "ann", &format!("{n}{big}")).await?;
        }
        heard(&mut client, &format!("5{big}")).await?;
    }
    Ok(positions)
}

/// The chat's (history rooms, history bytes), from `/api/plugins`.
async fn kept(server: &TestServer) -> anyhow::Result<(u64, u64)> {
    let api = server.plugins_api().await?;
    let chat = switchboard_tests::plugin_in(&api, "chat").cloned().unwrap_or_default();
    Ok((chat["history_rooms"].as_u64().unwrap_or(u64::MAX), chat["history_bytes"].as_u64().unwrap_or(u64::MAX)))
}

#[tokio::test]
async fn history_is_bounded_in_rooms_and_in_bytes() -> anyhow::Result<()> {
    // Two rooms at most, 2500 bytes each (two of the six messages).
    let server = server(|limits| {
        limits.history_rooms = Some(2);
        limits.history_room_bytes = Some(2500);
    })
    .await?;
    let positions = fill(&server, &["r1", "r2", "r3"]).await?;
    let (rooms, bytes) = kept(&server).await?;
    assert_eq!(rooms, 2);
    assert!((2000..=5000).contains(&bytes), "{bytes} bytes");
    // r1's history went first: its clients are told so.
    let mut ann = server.connect(&recovering("/chat/r1?user=ann", "r1", &position(&positions[0]))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)), "{frames:?}");
    // r3 keeps its last messages, not six of 1000 bytes.
    let (_watcher, now) = quiet_last(&server, "r3").await?;
    for (back, recovered) in [(1, true), (6, false)] {
        let from = json!({ "epoch": positions[2]["epoch"], "offset": now - back });
        let mut cid = server.connect(&recovering("/chat/r3?user=cid", "r3", &from)).await?;
        let frames = frames_until(&mut cid, "recovered").await?;
        assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(recovered)), "{frames:?}");
    }

    // 4000 bytes in all: one room's two messages fit, two rooms' do not.
    let server = server_with_total(4000).await?;
    let positions = fill(&server, &["r1", "r2", "r3"]).await?;
    let (rooms, bytes) = kept(&server).await?;
    assert!(rooms <= 2 && bytes <= 4000, "{rooms} rooms, {bytes} bytes");
    let mut ann = server.connect(&recovering("/chat/r1?user=ann", "r1", &position(&positions[0]))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)), "{frames:?}");
    Ok(())
}

async fn server_with_total(bytes: usize) -> anyhow::Result<TestServer> {
    server(|limits| {
        limits.history_room_bytes = Some(2500);
        limits.history_bytes = Some(bytes);
    })
    .await
}

#[tokio::test]
async fn history_survives_a_graceful_restart_with_a_durable_store() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    let on_disk = |limits: &mut LimitOverrides| limits.history_size = Some(100);
    let start = |store: std::path::PathBuf| async move {
        let mut config = Config { store: switchboard::StoreSettings { path: Some(store) }, ..Config::default() };
        on_disk(&mut config.plugin.entry("chat".into()).or_default().limits);
        TestServer::start_with(&[plugins::CHAT], config).await
    };
    let store = folder.path().join("switchboard.redb");
    let server = start(store.clone()).await?;
    let mut ann = server.connect("/chat/lobby?user=ann").await?;
    ann.recv_type("position").await?;
    let mut bob = server.connect("/chat/lobby?user=bob").await?;
    say(&mut bob, "bob", "before").await?;
    let before = heard(&mut ann, "before").await?;
    drop(ann);
    say(&mut bob, "bob", "missed").await?;
    heard(&mut bob, "missed").await?;
    drop(bob);
    server.stop().await?;

    let server = start(store.clone()).await?;
    let mut ann = server.connect(&recovering("/chat/lobby?user=ann", "lobby", &position(&before))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    assert_eq!(contents(&frames), ["missed"], "{frames:?}");
    let recovered = frames.last().cloned().unwrap_or_default();
    assert_eq!(recovered["recovered"], true, "{frames:?}");
    let from = before["offset"].as_u64().unwrap_or(0);
    assert_eq!(offsets(&frames), (from + 1..=recovered["offset"].as_u64().unwrap_or(0)).collect::<Vec<_>>());
    let mut bob = server.connect("/chat/lobby?user=bob").await?;
    say(&mut bob, "bob", "after").await?;
    let after = heard(&mut ann, "after").await?;
    assert_eq!(after["epoch"], before["epoch"], "the same stream goes on");
    assert!(after["offset"].as_u64() > recovered["offset"].as_u64(), "{after}");
    Ok(())
}
