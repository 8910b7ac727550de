//! History rooms over several nodes: one numbering for all of them, kept in
//! Redis; a client recovers on any node; a node that missed messages fills
//! the gap from the stream; a Redis that lost the history makes clients
//! recover with `recovered:false`, never silently past a gap.

use serde_json::{Value, json};
use switchboard::Config;
use switchboard_tests::{Client, RedisServer, TestServer, plugins};

use super::history::{contents, frames_until, heard, offsets, position, recovering, say};

/// The Redis channel of the chat's room `lobby` (see `cluster/wire.rs`).
const LOBBY: &str = "sb:r:4:chatlobby";

fn config(redis: &RedisServer) -> Config {
    let mut config = Config::default();
    config.cluster.redis = Some(redis.url());
    config.plugin.entry("chat".into()).or_default().limits.history_size = Some(100);
    config
}

async fn node(redis: &RedisServer) -> anyhow::Result<TestServer> {
    TestServer::start_with(&[plugins::CHAT], config(redis)).await
}

/// A client of `path`, past its `position` frame (which it returns).
async fn joined(node: &TestServer, path: &str) -> anyhow::Result<(Client, Value)> {
    let mut client = node.connect(path).await?;
    let position = client.recv_type("position").await?;
    Ok((client, position))
}

/// The publications `client` gets up to and including the chat message `content`.
async fn publications_until(client: &mut Client, content: &str) -> anyhow::Result<Vec<Value>> {
    let mut frames = Vec::new();
    loop {
        let frame = client.recv_json().await?;
        if frame["type"] != "publication" {
            continue;
        }
        let done = frame["data"]["content"] == content;
        frames.push(frame);
        if done {
            return Ok(frames);
        }
    }
}

#[tokio::test]
async fn every_node_delivers_one_numbering_and_a_client_recovers_on_another_node() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = [node(&redis).await?, node(&redis).await?, node(&redis).await?];
    let (mut ann, start) = joined(&nodes[0], "/chat/lobby?user=ann").await?;
    let (mut bob, _) = joined(&nodes[1], "/chat/lobby?user=bob").await?;
    let (mut cid, _) = joined(&nodes[2], "/chat/lobby?user=cid").await?;
    redis.wait_for_subscribers(LOBBY, 3).await?;
    say(&mut bob, "bob", "one").await?;
    let one = heard(&mut ann, "one").await?;
    assert_eq!(one["epoch"], start["epoch"], "one stream for the room, whichever node");
    // Each member, the publisher's node too, sees the same offsets, in order, none twice.
    for content in ["two", "three"] {
        say(&mut bob, "bob", content).await?;
    }
    let seen_by_bob = publications_until(&mut bob, "three").await?;
    let seen_by_cid = publications_until(&mut cid, "three").await?;
    let tail = |frames: &[Value]| -> Vec<u64> {
        offsets(frames).into_iter().filter(|offset| *offset > one["offset"].as_u64().unwrap_or(0)).collect()
    };
    assert_eq!(tail(&seen_by_bob), tail(&seen_by_cid));
    let expected: Vec<u64> = (one["offset"].as_u64().unwrap_or(0) + 1..).take(tail(&seen_by_bob).len()).collect();
    assert_eq!(tail(&seen_by_bob), expected, "{seen_by_bob:?}");
    drop(ann);
    say(&mut bob, "bob", "four").await?;
    heard(&mut cid, "four").await?;

    // Ann comes back on node 2 from where she left node 0.
    let mut ann = nodes[2].connect(&recovering("/chat/lobby?user=ann", "lobby", &position(&one))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    let recovered = frames.last().cloned().unwrap_or_default();
    assert_eq!(recovered["recovered"], true, "{frames:?}");
    let (from, last) = (one["offset"].as_u64().unwrap_or(0), recovered["offset"].as_u64().unwrap_or(0));
    assert_eq!(offsets(&frames), (from + 1..=last).collect::<Vec<_>>(), "{frames:?}");
    assert_eq!(contents(&frames), ["two", "three", "four"]);
    say(&mut cid, "cid", "five").await?;
    let five = heard(&mut ann, "five").await?;
    assert!(five["offset"].as_u64() > Some(last), "live after the replay: {five}");
    Ok(())
}

#[tokio::test]
async fn a_node_that_missed_messages_fills_the_gap_from_the_stream_in_order() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let mut slow = config(&redis);
    slow.cluster.receive_queue_bytes = 4096;
    let publisher = node(&redis).await?;
    let behind = TestServer::start_with(&[plugins::CHAT], slow).await?;
    let (mut speaker, _) = joined(&publisher, "/chat/lobby?user=ann").await?;
    let (mut listener, _) = joined(&behind, "/chat/lobby?user=bob").await?;
    redis.wait_for_subscribers(LOBBY, 2).await?;
    // Each is more than the slow node's receive queue holds: dropped there, kept in the stream.
    let large: Vec<String> = (0..5).map(|n| format!("{n} {}", "x".repeat(5000))).collect();
    for content in &large {
        say(&mut speaker, "ann", content).await?;
    }
    say(&mut speaker, "ann", "small enough").await?;
    let frames = publications_until(&mut listener, "small enough").await?;
    let mut expected = large.clone();
    expected.push("small enough".into());
    assert_eq!(contents(&frames), expected, "the gap is filled, in order");
    let offsets = offsets(&frames);
    assert!(offsets.windows(2).all(|pair| pair[1] == pair[0] + 1), "{offsets:?}");
    Ok(())
}

#[tokio::test]
async fn after_redis_lost_the_history_clients_recover_with_recovered_false_not_past_a_gap() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let (first, second) = (node(&redis).await?, node(&redis).await?);
    let (mut ann, _) = joined(&first, "/chat/lobby?user=ann").await?;
    let (mut watcher, _) = joined(&first, "/chat/lobby?user=watcher").await?;
    let (mut bob, _) = joined(&second, "/chat/lobby?user=bob").await?;
    let (mut neighbour, _) = joined(&second, "/chat/lobby?user=dan").await?;
    redis.wait_for_subscribers(LOBBY, 2).await?;
    say(&mut bob, "bob", "before").await?;
    let before = heard(&mut ann, "before").await?;
    heard(&mut watcher, "before").await?;
    drop(ann);

    redis.kill()?;
    say(&mut bob, "bob", "during").await?;
    // The node serves its own members meanwhile, unnumbered.
    let during = loop {
        let frame = neighbour.recv_json().await?;
        if frame["content"] == "during" || frame["data"]["content"] == "during" {
            break frame;
        }
    };
    assert_eq!(during["type"], "message", "delivered as published, with no position: {during}");

    redis.restart().await?;
    redis.wait_for_subscribers(LOBBY, 2).await?;
    say(&mut bob, "bob", "after").await?;
    // A member of the other node, which never got "during", is told.
    let told = frames_until(&mut watcher, "recovered").await?;
    assert_eq!(told.last().map(|frame| frame["recovered"].clone()), Some(json!(false)), "{told:?}");
    let after = heard(&mut watcher, "after").await?;
    assert_ne!(after["epoch"], before["epoch"], "a new epoch");

    // Ann, coming back from before the outage, is not handed a partial history.
    let mut ann = second.connect(&recovering("/chat/lobby?user=ann", "lobby", &position(&before))).await?;
    let frames = frames_until(&mut ann, "recovered").await?;
    assert_eq!(frames.last().map(|frame| frame["recovered"].clone()), Some(json!(false)), "{frames:?}");
    assert!(offsets(&frames).is_empty(), "{frames:?}");
    Ok(())
}

#[tokio::test]
async fn a_member_joining_during_a_burst_gets_the_replay_then_the_live_messages_each_once_in_order()
-> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    // Room for all 300 (and the user counts), however many are published before Bob's read.
    let deep = || {
        let mut config = config(&redis);
        config.plugin.entry("chat".into()).or_default().limits.history_size = Some(500);
        TestServer::start_with(&[plugins::CHAT], config)
    };
    let (first, second) = (deep().await?, deep().await?);
    let (mut ann, _) = joined(&first, "/chat/lobby?user=ann").await?;
    let (bob, start) = joined(&second, "/chat/lobby?user=bob").await?;
    drop(bob);
    // Ann talks without pause; Bob comes back (on a node that must read the
    // stream) while her messages keep arriving there.
    for n in 0..100 {
        say(&mut ann, "ann", &n.to_string()).await?;
    }
    let mut bob = second.connect(&recovering("/chat/lobby?user=bob", "lobby", &position(&start))).await?;
    for n in 100..300 {
        say(&mut ann, "ann", &n.to_string()).await?;
    }
    let mut frames = Vec::new();
    loop {
        let frame = bob.recv_json().await?;
        let done = frame["data"]["content"] == "299";
        frames.push(frame);
        if done {
            break;
        }
    }
    let recovered = frames.iter().position(|frame| frame["type"] == "recovered");
    let recovered = recovered.ok_or_else(|| anyhow::anyhow!("no recovered frame: {frames:?}"))?;
    assert_eq!(frames[recovered]["recovered"], true);
    let (replay, live) = frames.split_at(recovered);
    let last = frames[recovered]["offset"].as_u64().unwrap_or(0);
    let from = start["offset"].as_u64().unwrap_or(0);
    assert_eq!(offsets(replay), (from + 1..=last).collect::<Vec<_>>(), "the replay");
    let live = offsets(live);
    assert_eq!(live, (last + 1..last + 1 + live.len() as u64).collect::<Vec<_>>(), "then live, none twice");
    let said: Vec<String> = (0..300).map(|n| n.to_string()).collect();
    assert_eq!(contents(&frames), said, "every message once, in order");
    Ok(())
}
