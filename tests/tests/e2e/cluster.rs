//! Several nodes sharing one Redis (`[cluster] redis`): rooms, users,
//! broadcasts and the publish API span the nodes; a message crosses Redis
//! once per publish; a node subscribes to a room only while it has members
//! there; a Redis outage costs the other nodes' messages, not the node.
//! Each test starts its own `redis-server` on a free port.

use serde_json::{Value, json};
use switchboard::Config;
use switchboard_tests::{Client, RedisServer, TestServer, plugins};

const KEY: &str = "cluster-test-key";
/// The Redis channel of the chat's room `lobby` (see `cluster/wire.rs`).
const LOBBY: &str = "sb:r:4:chatlobby";

fn config(redis: &RedisServer) -> Config {
    let mut config = Config::default();
    config.cluster.redis = Some(redis.url());
    config.api.key = Some(KEY.into());
    config
}

async fn nodes(redis: &RedisServer, count: usize, plugins: &[&str]) -> anyhow::Result<Vec<TestServer>> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(TestServer::start_with(plugins, config(redis)).await?);
    }
    Ok(nodes)
}

/// A client of `node` on `path`, past its `connected` frame; with its id.
async fn connect(node: &TestServer, path: &str) -> anyhow::Result<(Client, u64)> {
    let mut client = node.connect(path).await?;
    let connected = client.recv_type("connected").await?;
    let id = connected["connection_id"].as_u64().unwrap_or_default();
    Ok((client, id))
}

async fn say(client: &mut Client, content: &str) -> anyhow::Result<()> {
    client.send_json(&json!({"type": "message", "user": "u", "content": content})).await
}

async fn next_message(client: &mut Client) -> anyhow::Result<String> {
    let message = client.recv_type("message").await?;
    Ok(message["content"].as_str().unwrap_or_default().to_owned())
}

async fn publish(node: &TestServer, body: &Value) -> anyhow::Result<(u16, Value)> {
    let body = body.to_string();
    let length = body.len().to_string();
    let authorization = format!("Bearer {KEY}");
    let headers =
        [("authorization", authorization.as_str()), ("content-type", "application/json"), ("content-length", &length)];
    let (status, _, answer) = node.request_with_body("POST", "/api/publish", &headers, &body).await?;
    Ok((status, serde_json::from_str(&answer)?))
}

#[tokio::test]
async fn a_room_spans_the_nodes_each_message_arriving_once_and_in_order() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 3, &[plugins::CHAT]).await?;
    let mut members = Vec::new();
    for node in &nodes {
        members.push(connect(node, "/chat/lobby").await?.0);
    }
    let (mut elsewhere, _) = connect(&nodes[1], "/chat/other").await?;
    redis.wait_for_subscribers(LOBBY, 3).await?;
    redis.wait_for_subscribers("sb:r:4:chatother", 1).await?;
    for n in 0..20 {
        say(&mut members[0], &n.to_string()).await?;
    }
    for (index, member) in members.iter_mut().enumerate() {
        for n in 0..20 {
            assert_eq!(next_message(member).await?, n.to_string(), "member on node {index}");
        }
    }
    // None twice: the next message each member gets is a new one, from another node.
    say(&mut members[2], "from node 2").await?;
    for member in &mut members {
        assert_eq!(next_message(member).await?, "from node 2");
    }
    // Another room heard none of it.
    say(&mut elsewhere, "other room").await?;
    assert_eq!(next_message(&mut elsewhere).await?, "other room");
    Ok(())
}

#[tokio::test]
async fn connection_ids_are_unique_across_the_nodes_and_exact_in_javascript() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 3, &[plugins::CHAT]).await?;
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for node in &nodes {
        for _ in 0..3 {
            let (client, id) = connect(node, "/chat").await?;
            clients.push(client);
            ids.push(id);
        }
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids: {ids:?}");
    assert!(ids.iter().all(|&id| id > 0 && id < 1 << 53), "ids: {ids:?}");
    Ok(())
}

#[tokio::test]
async fn a_backend_publish_on_any_node_reaches_users_rooms_and_everyone_on_every_node() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 3, &[plugins::CHAT, plugins::NOTIFICATIONS]).await?;
    let (mut bystander, _) = connect(&nodes[0], "/notifications").await?;
    let (mut ann_tab1, _) = connect(&nodes[1], "/notifications/ann").await?;
    let (mut ann_tab2, _) = connect(&nodes[2], "/notifications/ann").await?;
    let (mut lobby, _) = connect(&nodes[1], "/chat/lobby").await?;
    redis.wait_for_subscribers("sb:u:13:notificationsann", 2).await?;
    redis.wait_for_subscribers(LOBBY, 1).await?;

    // To a user, through the plugin's on-publish on a node where she is not.
    let event = json!({"plugin": "notifications", "topic": "invoice", "payload": {"user_id": "ann", "n": 1}});
    assert_eq!(publish(&nodes[0], &event).await?.0, 200);
    for tab in [&mut ann_tab1, &mut ann_tab2] {
        let received = tab.recv_type("invoice").await?;
        assert_eq!(received["n"], 1);
    }
    // To everyone (the plugin broadcasts), from a node with no subscriber.
    let event = json!({"plugin": "notifications", "topic": "release", "payload": {"version": "2.0"}});
    assert_eq!(publish(&nodes[2], &event).await?.0, 200);
    for client in [&mut bystander, &mut ann_tab1, &mut ann_tab2] {
        assert_eq!(client.recv_type("release").await?["version"], "2.0");
    }
    // Straight to a room whose only member is on another node: `delivered`
    // counts this node's recipients.
    let message = json!({"plugin": "chat", "room": "lobby", "message": {"type": "message", "content": "hi"}});
    assert_eq!(publish(&nodes[0], &message).await?, (200, json!({"delivered": 0})));
    assert_eq!(next_message(&mut lobby).await?, "hi");
    Ok(())
}

#[tokio::test]
async fn a_node_subscribes_to_a_room_or_user_only_while_it_has_them() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 2, &[plugins::CHAT]).await?;
    assert_eq!(redis.subscribers(LOBBY)?, 0);
    let (first, _) = connect(&nodes[0], "/chat/lobby?user=zoe").await?;
    redis.wait_for_subscribers(LOBBY, 1).await?;
    redis.wait_for_subscribers("sb:u:4:chatzoe", 1).await?;
    let (second, _) = connect(&nodes[0], "/chat/lobby?user=zoe").await?;
    let (third, _) = connect(&nodes[1], "/chat/lobby").await?;
    redis.wait_for_subscribers(LOBBY, 2).await?;
    assert_eq!(redis.subscribers("sb:u:4:chatzoe")?, 1, "one subscription per node, not per connection");
    third.close().await?;
    redis.wait_for_subscribers(LOBBY, 1).await?;
    first.close().await?;
    second.close().await?;
    redis.wait_for_subscribers(LOBBY, 0).await?;
    redis.wait_for_subscribers("sb:u:4:chatzoe", 0).await?;
    // Broadcasts: every node with the plugin loaded, whether or not it has connections.
    assert_eq!(redis.subscribers("sb:a:4:chat")?, 2);
    Ok(())
}

#[tokio::test]
async fn one_publish_is_one_redis_command_whatever_the_audience() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 3, &[plugins::CHAT]).await?;
    let mut members = Vec::new();
    for node in &nodes {
        for _ in 0..3 {
            members.push(connect(node, "/chat/lobby").await?.0);
        }
    }
    redis.wait_for_subscribers(LOBBY, 3).await?;
    // Each node's queue to Redis is in order: once everyone has heard a
    // marker from every node, what the joins published has gone through.
    for (node, member) in [0, 3, 6].into_iter().enumerate() {
        say(&mut members[member], &format!("ready {node}")).await?;
    }
    for member in &mut members {
        let mut heard: Vec<String> = Vec::new();
        for _ in 0..3 {
            heard.push(next_message(member).await?);
        }
        heard.sort();
        assert_eq!(heard, ["ready 0", "ready 1", "ready 2"]);
    }
    let before = redis.calls("publish")?;
    for n in 0..10 {
        say(&mut members[0], &n.to_string()).await?;
    }
    for member in &mut members {
        for n in 0..10 {
            assert_eq!(next_message(member).await?, n.to_string());
        }
    }
    assert_eq!(redis.calls("publish")? - before, 10, "9 recipients on 3 nodes, 10 publishes");
    Ok(())
}

#[tokio::test]
async fn nodes_serve_their_own_members_through_a_redis_outage_and_rejoin_after_it() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let mut config = config(&redis);
    config.metrics.listen = Some("127.0.0.1:0".parse()?);
    let watched = TestServer::start_with(&[plugins::CHAT], config).await?;
    let other = TestServer::start_with(&[plugins::CHAT], self::config(&redis)).await?;
    let (mut speaker, _) = connect(&watched, "/chat/lobby").await?;
    let (mut neighbour, _) = connect(&watched, "/chat/lobby").await?;
    let (mut remote, _) = connect(&other, "/chat/lobby").await?;
    redis.wait_for_subscribers(LOBBY, 2).await?;
    assert_eq!(redis_up(&watched).await?, 1.0);

    redis.kill()?;
    say(&mut speaker, "during the outage").await?;
    assert_eq!(next_message(&mut neighbour).await?, "during the outage", "local members are still served");
    wait_until(&watched, |up| up == 0.0).await?;

    redis.restart().await?;
    // Both nodes subscribe again by themselves.
    redis.wait_for_subscribers(LOBBY, 2).await?;
    say(&mut speaker, "after").await?;
    say(&mut speaker, "after, 2").await?;
    // What was said during the outage may or may not reach the other node;
    // what is said after it does, in order.
    let mut heard = next_message(&mut remote).await?;
    if heard == "during the outage" {
        heard = next_message(&mut remote).await?;
    }
    assert_eq!(heard, "after");
    assert_eq!(next_message(&mut remote).await?, "after, 2");
    say(&mut remote, "back").await?;
    assert_eq!(next_message(&mut neighbour).await?, "after");
    assert_eq!(next_message(&mut neighbour).await?, "after, 2");
    assert_eq!(next_message(&mut neighbour).await?, "back");
    wait_until(&watched, |up| up == 1.0).await?;
    Ok(())
}

async fn redis_up(node: &TestServer) -> anyhow::Result<f64> {
    let samples = node.scrape().await?;
    let up = samples.iter().find(|(name, _)| name == "switchboard_cluster_redis_up").map(|(_, value)| *value);
    up.ok_or_else(|| anyhow::anyhow!("no switchboard_cluster_redis_up in {samples:?}"))
}

async fn wait_until(node: &TestServer, done: impl Fn(f64) -> bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    while !done(redis_up(node).await?) {
        anyhow::ensure!(started.elapsed() < switchboard_tests::TIMEOUT, "switchboard_cluster_redis_up never changed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Who a client sees in its room: its `presence_state`, then each
/// `presence_diff`; and every departure it was told of.
#[derive(Debug, Default)]
struct View {
    users: std::collections::BTreeSet<String>,
    departures: Vec<String>,
}

impl View {
    /// Read `client`'s frames into the view until `done` holds.
    async fn until(&mut self, client: &mut Client, done: impl Fn(&View) -> bool) -> anyhow::Result<()> {
        while !done(self) {
            // Longer than the tests' usual wait: a killed node's users leave after up to 12 s.
            let frame = client
                .recv_json_within(std::time::Duration::from_secs(20))
                .await
                .map_err(|error| anyhow::anyhow!("{error}; the view: {self:?}"))?;
            let names = |value: &Value| -> Vec<String> {
                value.as_object().into_iter().flatten().map(|(user, _)| user.clone()).collect()
            };
            match frame["type"].as_str() {
                Some("presence_state") => self.users = names(&frame["users"]).into_iter().collect(),
                Some("presence_diff") => {
                    self.users.extend(names(&frame["joins"]));
                    for user in names(&frame["leaves"]) {
                        self.users.remove(&user);
                        self.departures.push(user);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn has(&self, user: &str) -> bool {
        self.users.contains(user)
    }
}

#[tokio::test]
async fn presence_spans_the_nodes_and_a_user_with_tabs_on_two_nodes_leaves_once() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 3, &[plugins::CHAT]).await?;
    let (mut bob, _) = connect(&nodes[1], "/chat/lobby?user=bob").await?;
    let mut bobs_view = View::default();
    let (mut ann_first_tab, _) = connect(&nodes[0], "/chat/lobby?user=ann").await?;
    let (ann_second_tab, _) = connect(&nodes[2], "/chat/lobby?user=ann").await?;
    bobs_view.until(&mut bob, |view| view.has("ann") && view.has("bob")).await?;
    // And ann, on another node, sees bob (read from Redis when her node
    // started receiving the room, or told as he came).
    View::default().until(&mut ann_first_tab, |view| view.has("ann") && view.has("bob")).await?;

    ann_first_tab.close().await?;
    // Her other tab keeps her in: carol's arrival is the next change bob sees.
    let (_carol, _) = connect(&nodes[0], "/chat/lobby?user=carol").await?;
    bobs_view.until(&mut bob, |view| view.has("carol")).await?;
    assert!(bobs_view.has("ann") && bobs_view.departures.is_empty(), "{bobs_view:?}");

    ann_second_tab.close().await?;
    bobs_view.until(&mut bob, |view| !view.has("ann")).await?;
    assert_eq!(bobs_view.departures, ["ann"]);
    Ok(())
}

#[tokio::test]
async fn the_plugin_hears_of_presence_changes_on_other_nodes() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 2, &[plugins::PROBE]).await?;
    let mut watcher = nodes[1].connect("/probe/echo").await?;
    for command in ["user:watcher", "track:r", "join:r"] {
        watcher.send_text(command).await?;
    }
    redis.wait_for_subscribers("sb:r:5:prober", 1).await?;
    let mut ann = nodes[0].connect("/probe/echo").await?;
    for command in ["user:ann", "track:r", "join:r"] {
        ann.send_text(command).await?;
    }
    // Each node's plugin hears of ann and publishes it to the room: the
    // watcher gets node 0's (ann's own node) and node 1's (told by Redis).
    for _ in 0..2 {
        let told = loop {
            let frame = watcher.recv_text().await?;
            if let Ok(told) = serde_json::from_str::<Value>(&frame)
                && told["type"] == "probe_presence"
                && told["joins"] == json!(["ann"])
            {
                break told;
            }
        };
        assert_eq!(told["room"], "r");
    }
    Ok(())
}

#[tokio::test]
async fn a_killed_node_leaves_everyones_presence_within_the_ttl_and_a_stopped_one_at_once() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let survivor = TestServer::start_with(&[plugins::CHAT], config(&redis)).await?;
    let stopped = TestServer::start_with(&[plugins::CHAT], config(&redis)).await?;
    let mut killed = switchboard_tests::NodeProcess::start(&[plugins::CHAT], &redis.url())?;
    let (mut bob, _) = connect(&survivor, "/chat/lobby?user=bob").await?;
    let mut view = View::default();
    let (ws, _) = tokio_tungstenite::connect_async(killed.url("/chat/lobby?user=ann")).await?;
    let mut ann = Client::from(ws);
    ann.recv_type("connected").await?;
    let (_zoe, _) = connect(&stopped, "/chat/lobby?user=zoe").await?;
    view.until(&mut bob, |view| view.has("ann") && view.has("zoe")).await?;

    let started = std::time::Instant::now();
    // Zoe's client never answers the server's goodbye: the stop takes
    // `close_timeout`, her departure must not.
    let stopping = tokio::spawn(stopped.stop());
    view.until(&mut bob, |view| !view.has("zoe")).await?;
    let graceful = started.elapsed();
    stopping.await??;
    assert!(graceful < std::time::Duration::from_secs(3), "a stopped node's users left after {graceful:?}");

    let started = std::time::Instant::now();
    killed.kill()?;
    view.until(&mut bob, |view| !view.has("ann")).await?;
    let killed_after = started.elapsed();
    assert!(killed_after <= std::time::Duration::from_secs(15), "a killed node's users left after {killed_after:?}");
    assert!(view.has("bob"));

    // The dead node's entry stays in the room's hash until a node reads it.
    let fields = || -> anyhow::Result<Vec<String>> {
        let mut connection = redis.client()?.get_connection()?;
        Ok(redis::cmd("HKEYS").arg("sb:p:4:chatlobby").query(&mut connection)?)
    };
    assert!(fields()?.iter().any(|field| field.ends_with(":ann")), "{:?}", fields()?);
    // The survivor (connected for longer than the node TTL) reads it again
    // when it starts receiving the room anew.
    bob.close().await?;
    redis.wait_for_subscribers(LOBBY, 0).await?;
    let (mut carol, _) = connect(&survivor, "/chat/lobby?user=carol").await?;
    View::default().until(&mut carol, |view| view.has("carol")).await?;
    let started = std::time::Instant::now();
    while fields()?.iter().any(|field| field.ends_with(":ann")) {
        anyhow::ensure!(started.elapsed() < switchboard_tests::TIMEOUT, "ann's entry stayed: {:?}", fields()?);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut connection = redis.client()?.get_connection()?;
    let ttl: i64 = redis::cmd("TTL").arg("sb:p:4:chatlobby").query(&mut connection)?;
    assert!(ttl > 23 * 3600 && ttl <= 24 * 3600, "the hash expires a day after its last change, not in {ttl} s");
    Ok(())
}

#[tokio::test]
async fn a_node_refuses_to_start_when_redis_does_not_answer() -> anyhow::Result<()> {
    let unused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = Config::default();
    config.cluster.redis = Some(format!("redis://{unused}"));
    let error = TestServer::start_with(&[plugins::CHAT], config).await.expect_err("no Redis there");
    assert!(format!("{error:#}").contains("cannot reach Redis"), "{error:#}");
    let mut config = Config::default();
    config.cluster.redis = Some("http://not-redis".into());
    let error = TestServer::start_with(&[plugins::CHAT], config).await.expect_err("not a Redis URL");
    assert!(format!("{error:#}").contains("invalid Redis URL"), "{error:#}");
    Ok(())
}

#[tokio::test]
async fn a_node_that_falls_behind_drops_and_counts_what_it_cannot_take_and_keeps_serving() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let mut slow = config(&redis);
    slow.cluster.receive_queue_bytes = 4096;
    slow.metrics.listen = Some("127.0.0.1:0".parse()?);
    let publisher = TestServer::start_with(&[plugins::CHAT], config(&redis)).await?;
    let behind = TestServer::start_with(&[plugins::CHAT], slow).await?;
    let (mut speaker, _) = connect(&publisher, "/chat/lobby").await?;
    let (mut listener, _) = connect(&behind, "/chat/lobby").await?;
    let (mut neighbour, _) = connect(&behind, "/chat/lobby").await?;
    redis.wait_for_subscribers(LOBBY, 2).await?;
    // Each of these is more than the slow node's queue can hold.
    for n in 0..10 {
        say(&mut speaker, &format!("{n} {}", "x".repeat(5000))).await?;
    }
    say(&mut speaker, "small enough").await?;
    assert_eq!(next_message(&mut listener).await?, "small enough", "the large ones are dropped, not queued");
    let samples = behind.scrape().await?;
    let dropped = samples
        .iter()
        .find(|(name, _)| name == r#"switchboard_cluster_dropped_total{reason="receive_queue_full"}"#)
        .map(|(_, value)| *value);
    assert_eq!(dropped, Some(10.0), "{samples:?}");
    // The node serves its own members all along.
    say(&mut neighbour, "local").await?;
    assert_eq!(next_message(&mut listener).await?, "local");
    assert_eq!(next_message(&mut speaker).await?.len(), 5002, "the publisher's own node got them all");
    Ok(())
}

async fn enter_game(node: &TestServer) -> anyhow::Result<Client> {
    let mut client = node.connect("/game/shared").await?;
    assert_eq!(client.recv_json().await?["type"], "connected");
    Ok(client)
}

async fn join_game(client: &mut Client, player: &str) -> anyhow::Result<()> {
    client.send_json(&json!({"action": "join", "player": player})).await
}

#[tokio::test]
async fn two_players_on_two_nodes_play_one_game_from_the_shared_store() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 2, &[plugins::GAME]).await?;
    let mut ann = enter_game(&nodes[0]).await?;
    let mut bob = enter_game(&nodes[1]).await?;
    // Both join at once, on two nodes: one atomic step each, so one is X and the other O.
    join_game(&mut ann, "ann").await?;
    join_game(&mut bob, "bob").await?;
    let anns = ann.recv_type("joined").await?["symbol"].clone();
    let bobs = bob.recv_type("joined").await?["symbol"].clone();
    let (mut x, mut o) = match (anns.as_str(), bobs.as_str()) {
        (Some("X"), Some("O")) => (ann, bob),
        (Some("O"), Some("X")) => (bob, ann),
        other => panic!("two players, one game: {other:?}"),
    };
    let mut watcher = enter_game(&nodes[1]).await?;
    join_game(&mut watcher, "cy").await?;
    assert_eq!(watcher.recv_type("joined").await?["role"], "spectator");
    redis.wait_for_subscribers("sb:r:4:gamegame:shared", 2).await?;
    for (mover, position) in [("X", 0), ("O", 1), ("X", 4), ("O", 2)] {
        let (player, other) = if mover == "X" { (&mut x, &mut o) } else { (&mut o, &mut x) };
        player.send_json(&json!({"action": "move", "position": position})).await?;
        let seen = other.recv_type("move").await?;
        assert_eq!((seen["symbol"].as_str(), seen["position"].as_u64()), (Some(mover), Some(position)));
        assert_eq!(watcher.recv_type("move").await?["position"], position);
    }
    x.send_json(&json!({"action": "move", "position": 8})).await?;
    for client in [&mut x, &mut o, &mut watcher] {
        let over = client.recv_type("game_over").await?;
        assert_eq!((over["result"].as_str(), over["line"].clone()), (Some("X"), json!([0, 4, 8])));
    }
    Ok(())
}

#[tokio::test]
async fn the_shared_store_refuses_writes_while_redis_is_down_and_serves_again_after() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let node = TestServer::start_with(&[plugins::PROBE], config(&redis)).await?;
    let mut client = node.connect("/probe/echo").await?;
    client.recv_text().await?; // hello
    client.send_text("kvfill:1:3").await?;
    assert_eq!(client.recv_text().await?, "stored 1");
    redis.kill()?;
    client.send_text("kvfill:1:3").await?;
    let refused = client.recv_text().await?;
    assert!(
        refused.starts_with("stored 0; refused: HostError::InvalidArgument")
            && refused.contains("shared store is unavailable"),
        "{refused}"
    );
    client.send_text("echo while down").await?;
    assert_eq!(client.recv_text().await?, "echo while down", "the connection is still served");
    redis.restart().await?;
    let started = std::time::Instant::now();
    loop {
        client.send_text("kvfill:1:3").await?;
        if client.recv_text().await? == "stored 1" {
            break;
        }
        anyhow::ensure!(started.elapsed() < switchboard_tests::TIMEOUT, "the store never came back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn presence_survives_a_redis_restart_without_false_departures() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let nodes = nodes(&redis, 2, &[plugins::CHAT]).await?;
    let (mut ann, _) = connect(&nodes[0], "/chat/lobby?user=ann").await?;
    let (_bob, _) = connect(&nodes[1], "/chat/lobby?user=bob").await?;
    let mut anns_view = View::default();
    anns_view.until(&mut ann, |view| view.has("ann") && view.has("bob")).await?;
    redis.restart().await?;
    // Both nodes come back to Redis and report their users again: a node
    // that starts receiving the room afterwards reads both from the hash.
    redis.wait_for_subscribers(LOBBY, 2).await?;
    let late = TestServer::start_with(&[plugins::CHAT], config(&redis)).await?;
    let (mut carol, _) = connect(&late, "/chat/lobby?user=carol").await?;
    View::default().until(&mut carol, |view| view.has("ann") && view.has("bob") && view.has("carol")).await?;
    // Past the node TTL and a few heartbeats: nobody was taken for dead
    // while Redis had forgotten the live nodes.
    anns_view.until(&mut ann, |view| view.has("carol")).await?;
    ann.send_json(&json!({"type": "ping"})).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(14);
    while std::time::Instant::now() < deadline {
        let wait = deadline - std::time::Instant::now();
        // Nothing more to read before the deadline ends the watch.
        let Ok(frame) = ann.recv_json_within(wait).await else { break };
        assert_ne!(frame["type"], "presence_diff", "a false departure after the restart: {frame}");
    }
    assert!(anns_view.departures.is_empty(), "{anns_view:?}");
    Ok(())
}

#[tokio::test]
async fn messages_that_do_not_fit_the_queue_to_redis_reach_local_members_only_and_are_counted() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let mut small = config(&redis);
    small.cluster.publish_queue = 1;
    small.metrics.listen = Some("127.0.0.1:0".parse()?);
    let node = TestServer::start_with(&[plugins::CHAT], small).await?;
    let (mut speaker, _) = connect(&node, "/chat/lobby").await?;
    let (mut neighbour, _) = connect(&node, "/chat/lobby").await?;
    redis.wait_for_subscribers(LOBBY, 1).await?;
    redis.kill()?;
    // The publisher is stuck on the dead connection: one message waits, the rest do not fit.
    for n in 0..10 {
        say(&mut speaker, &n.to_string()).await?;
    }
    for n in 0..10 {
        assert_eq!(next_message(&mut neighbour).await?, n.to_string(), "local members get everything");
    }
    let samples = node.scrape().await?;
    let dropped = samples
        .iter()
        .find(|(name, _)| name == r#"switchboard_cluster_dropped_total{reason="publish_queue_full"}"#)
        .map_or(0.0, |(_, value)| *value);
    assert!(dropped >= 8.0, "{samples:?}");
    Ok(())
}
