//! Messages for offline users over several nodes: kept in Redis when the
//! user is connected nowhere, handed once to their next connection on any
//! node, in order, also when events are published while they connect.

use serde_json::{Value, json};
use switchboard::Config;
use switchboard_tests::{Client, RedisServer, TestServer, plugins};

const KEY: &str = "offline-test-key";

async fn node(redis: &RedisServer) -> anyhow::Result<TestServer> {
    let mut config = Config::default();
    config.cluster.redis = Some(redis.url());
    config.api.key = Some(KEY.into());
    config.plugin.entry("notifications".into()).or_default().limits.mailbox_size = Some(1000);
    TestServer::start_with(&[plugins::NOTIFICATIONS], config).await
}

/// An event for `user`, numbered `n`, published on `node`: its `delivered`.
async fn notify(node: &TestServer, user: &str, n: u64) -> anyhow::Result<Value> {
    let body =
        json!({"plugin": "notifications", "topic": "reminder", "payload": {"user_id": user, "n": n}}).to_string();
    let length = body.len().to_string();
    let authorization = format!("Bearer {KEY}");
    let headers = [("authorization", authorization.as_str()), ("content-length", length.as_str())];
    let (status, _, answer) = node.request_with_body("POST", "/api/publish", &headers, &body).await?;
    anyhow::ensure!(status == 200, "publish answered {status}: {answer}");
    Ok(serde_json::from_str(&answer)?)
}

/// The numbers of the reminders `client` gets, until `last`.
async fn reminders_until(client: &mut Client, last: u64) -> anyhow::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    loop {
        let frame = client.recv_json().await?;
        if frame["type"] != "reminder" {
            continue;
        }
        let n = frame["n"].as_u64().unwrap_or(0);
        numbers.push(n);
        if n == last {
            return Ok(numbers);
        }
    }
}

/// `client` has nothing more: a ping is answered before anything else.
async fn nothing_more(client: &mut Client) -> anyhow::Result<()> {
    client.send_json(&json!({"type": "ping"})).await?;
    let next = client.recv_type("pong").await;
    anyhow::ensure!(next.is_ok(), "no pong: {next:?}");
    Ok(())
}

#[tokio::test]
async fn events_for_a_user_offline_everywhere_are_kept_and_handed_once_on_any_node() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = [node(&redis).await?, node(&redis).await?, node(&redis).await?];
    for n in 1..=3 {
        assert_eq!(notify(&nodes[0], "ann", n).await?, json!({"delivered": 0}));
    }
    let mut ann = nodes[2].connect("/notifications/ann").await?;
    assert_eq!(ann.recv_json().await?["type"], "connected");
    assert_eq!(reminders_until(&mut ann, 3).await?, [1, 2, 3], "kept, in order");
    nothing_more(&mut ann).await?;
    // Online on node 2: an event published on node 0 reaches her there.
    notify(&nodes[0], "ann", 4).await?;
    assert_eq!(reminders_until(&mut ann, 4).await?, [4]);
    ann.close().await?;
    // Delivered once: another node has nothing old for her.
    let mut again = nodes[1].connect("/notifications/ann").await?;
    assert_eq!(again.recv_json().await?["type"], "connected");
    nothing_more(&mut again).await?;
    Ok(())
}

#[tokio::test]
async fn events_published_while_the_user_connects_on_another_node_arrive_once_and_in_order() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let (publisher, other) = (node(&redis).await?, node(&redis).await?);
    for round in 0..5 {
        let user = format!("zoe{round}");
        // Events go out one after the other while zoe connects on the other node.
        let mut zoe = None;
        for n in 1..=40 {
            notify(&publisher, &user, n).await?;
            if n == 10 + round * 5 {
                zoe = Some(other.connect(&format!("/notifications/{user}")).await?);
            }
        }
        let mut zoe = zoe.ok_or_else(|| anyhow::anyhow!("never connected"))?;
        assert_eq!(reminders_until(&mut zoe, 40).await?, (1..=40).collect::<Vec<_>>(), "round {round}");
        nothing_more(&mut zoe).await?;
    }
    Ok(())
}

#[tokio::test]
async fn after_a_redis_restart_connected_users_register_again_and_get_their_events() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let (publisher, home) = (node(&redis).await?, node(&redis).await?);
    let mut ann = home.connect("/notifications/ann").await?;
    assert_eq!(ann.recv_json().await?["type"], "connected");
    notify(&publisher, "ann", 1).await?;
    assert_eq!(reminders_until(&mut ann, 1).await?, [1]);
    redis.restart().await?;
    // Redis forgot who is connected where; ann's node says so again, and
    // what was kept for her meanwhile is handed over.
    redis.wait_for_subscribers("sb:u:13:notificationsann", 1).await?;
    for n in 2..=4 {
        notify(&publisher, "ann", n).await?;
    }
    assert_eq!(reminders_until(&mut ann, 4).await?, [2, 3, 4]);
    Ok(())
}

#[tokio::test]
async fn a_killed_nodes_users_count_as_offline_after_the_node_ttl() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let survivor = node(&redis).await?;
    let settings = "[plugin.notifications.limits]\nmailbox_size = 1000\n";
    let mut killed = switchboard_tests::NodeProcess::start_with(&[plugins::NOTIFICATIONS], &redis.url(), settings)?;
    let (ws, _) = tokio_tungstenite::connect_async(killed.url("/notifications/ann")).await?;
    let mut ann = Client::from(ws);
    assert_eq!(ann.recv_json().await?["type"], "connected");
    notify(&survivor, "ann", 1).await?;
    assert_eq!(reminders_until(&mut ann, 1).await?, [1], "registered on the node about to die");

    let killed_at = std::time::Instant::now();
    killed.kill()?;
    // Events for her are published to nobody until the node's TTL runs
    // out; then they are kept.
    let kept_list = "sb:mb:13:notificationsann";
    let mut connection = redis.client()?.get_connection()?;
    let mut n = 1;
    let first_kept = loop {
        n += 1;
        notify(&survivor, "ann", n).await?;
        let kept: u64 = redis::cmd("LLEN").arg(kept_list).query(&mut connection)?;
        if kept > 0 {
            break n;
        }
        anyhow::ensure!(killed_at.elapsed() < std::time::Duration::from_secs(15), "never kept");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(killed_at.elapsed() <= std::time::Duration::from_secs(15), "after {:?}", killed_at.elapsed());
    let mut ann = survivor.connect("/notifications/ann").await?;
    assert_eq!(ann.recv_json().await?["type"], "connected");
    assert_eq!(reminders_until(&mut ann, first_kept).await?, [first_kept]);
    nothing_more(&mut ann).await?;
    Ok(())
}
