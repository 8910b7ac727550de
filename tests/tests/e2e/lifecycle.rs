use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::{Config, PluginSettings};
use switchboard_tests::{Client, TIMEOUT, TestServer, copy_plugin, plugin_in, plugins, variant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a client that raced a change of its plugin ended up.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// The upgrade was refused (the route was gone).
    Refused,
    /// Accepted, then closed with this code.
    Closed(u16),
    /// Accepted and still served after the change: an orphan.
    Served(String),
}

/// Send `hello` and see what becomes of the connection: its replies, then
/// the close frame. A reply that `orphan` recognises, or no close frame at
/// all, means it is served by a version that should not serve it.
async fn fate(client: anyhow::Result<Client>, orphan: impl Fn(&str) -> bool) -> Fate {
    let Ok(mut client) = client else { return Fate::Refused };
    // A client closed before it could send gets its close frame all the same.
    let _ = client.send_text("hello").await;
    match client.recv_until_close().await {
        Ok((messages, _)) if messages.iter().any(|message| message.to_text().is_ok_and(&orphan)) => {
            Fate::Served(format!("{messages:?}"))
        }
        Ok((_, (code, _))) => Fate::Closed(code),
        Err(error) => Fate::Served(format!("never closed: {error}")),
    }
}

#[tokio::test]
async fn no_connection_outlives_an_unload_it_raced() -> anyhow::Result<()> {
    for _round in 0..5 {
        let server = TestServer::start(&[plugins::ECHO]).await?;
        let file = server.plugins.path().join("switchboard_plugin_echo.wasm");
        let clients: Vec<_> = (0..60)
            .map(|_| {
                let url = server.url("/echo");
                tokio::spawn(async move {
                    let connected = tokio_tungstenite::connect_async(url).await;
                    let client = connected.map(|(ws, _)| Client::from(ws)).map_err(anyhow::Error::from);
                    // Echo answers with what it got; after the unload nobody may.
                    fate(client, |_| false).await
                })
            })
            .collect();
        std::fs::remove_file(&file)?;
        for client in clients {
            let fate = tokio::time::timeout(TIMEOUT, client).await??;
            assert!(matches!(fate, Fate::Refused | Fate::Closed(1001)), "a connection survived the unload: {fate:?}");
        }
        server.wait_for_api("echo to be unloaded", |api| plugin_in(api, "echo").is_none()).await?;
    }
    Ok(())
}

#[tokio::test]
async fn no_connection_on_a_removed_route_is_served_by_the_new_version() -> anyhow::Result<()> {
    let v1 = std::fs::read(plugins::PREFIX_V1)?;
    let v2 = std::fs::read(plugins::PREFIX_V2)?;
    let server = TestServer::start(&[plugins::PREFIX_V1]).await?;
    let file = server.plugins.path().join("switchboard_test_plugin_prefix_v1.wasm");
    for round in 0..4u32 {
        // v1 serves /prefix/v1-only, v2 does not.
        let clients: Vec<_> = (0..40)
            .map(|_| {
                let url = server.url("/prefix/v1-only");
                tokio::spawn(async move {
                    let connected = tokio_tungstenite::connect_async(url).await;
                    let client = connected.map(|(ws, _)| Client::from(ws)).map_err(anyhow::Error::from);
                    fate(client, |reply| reply.starts_with("v2:")).await
                })
            })
            .collect();
        std::fs::write(&file, variant(&v2, round))?;
        for client in clients {
            let fate = tokio::time::timeout(TIMEOUT, client).await??;
            assert!(matches!(fate, Fate::Refused | Fate::Closed(1001)), "v2 served a route it lacks: {fate:?}");
        }
        server
            .wait_for_api("v2", |api| plugin_in(api, "prefix").is_some_and(|p| p["routes"][1] == "/prefix/v2-only"))
            .await?;
        std::fs::write(&file, variant(&v1, round))?;
        server
            .wait_for_api("v1", |api| plugin_in(api, "prefix").is_some_and(|p| p["routes"][1] == "/prefix/v1-only"))
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_upgrades_do_not_overshoot_a_plugins_connection_cap() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.plugin.entry("echo".into()).or_default().limits.max_connections = Some(5);
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    let attempts: Vec<_> =
        (0..50).map(|_| tokio::spawn(tokio_tungstenite::connect_async(server.url("/echo")))).collect();
    let mut open = Vec::new();
    for attempt in attempts {
        if let Ok((ws, _)) = tokio::time::timeout(TIMEOUT, attempt).await?? {
            open.push(Client::from(ws));
        }
    }
    assert_eq!(open.len(), 5, "exactly the cap was admitted");
    let api = server.plugins_api().await?;
    assert_eq!(plugin_in(&api, "echo").map(|echo| echo["connections"].clone()), Some(json!(5)));
    Ok(())
}

#[tokio::test]
async fn a_connection_keeps_writing_while_its_message_waits_for_a_busy_plugin() -> anyhow::Result<()> {
    const PUBLISHED: usize = 100;
    let mut config = Config::default();
    config.limits.send_queue = 16;
    // The hog holds the plugin for this long: far longer than the publishes take.
    config.limits.callback_timeout = Duration::from_secs(5);
    config.api.key = Some("k".into());
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut watcher = probe_in_lobby(&server, "watcher").await?;
    let _hog = hold_the_plugin(&server, "hog", &mut watcher).await?;
    // The watcher's own message now waits for the plugin, while the backend
    // publishes to its room far more than its queue holds.
    watcher.send_text("count").await?;
    let publish = json!({"plugin": "probe", "room": "lobby", "message": "news"}).to_string();
    for _ in 0..PUBLISHED {
        let (status, _, body) = server
            .request_with_body(
                "POST",
                "/api/publish",
                &[("Authorization", "Bearer k"), ("Content-Length", &publish.len().to_string())],
                &publish,
            )
            .await?;
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..PUBLISHED {
        assert_eq!(watcher.recv_text().await?, "news");
    }
    // Its message was handled after the hog let go: it waited all along.
    assert!(watcher.recv_text().await?.parse::<u64>().is_ok());
    Ok(())
}

#[tokio::test]
async fn a_client_whose_socket_is_blocked_never_stalls_its_plugin() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.api.key = Some("k".into());
    config.limits.send_queue_bytes = 64 << 20;
    // Were its blocked write allowed to hold up its message, the plugin would
    // be stuck for this long: longer than the test waits.
    config.keepalive.ping_timeout = Duration::from_secs(60);
    config.keepalive.ping_interval = Duration::from_secs(60);
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut watcher = probe_in_lobby(&server, "watcher").await?;
    let mut stalled = server.connect("/probe/stalled").await?;
    stalled.recv_type("hello").await?;
    stalled.send_text("join:alone").await?;
    assert_eq!(stalled.recv_text().await?, "joined");
    let _hog = hold_the_plugin(&server, "hog", &mut watcher).await?;
    // In the plugin's queue behind the hog: the stalled client's message...
    stalled.send_text("count").await?;
    // ...whose socket then fills up: it never reads again.
    let publish = json!({"plugin": "probe", "room": "alone", "message": "x".repeat(900_000)}).to_string();
    let headers = [("Authorization", "Bearer k"), ("Content-Length", &*publish.len().to_string())];
    for _ in 0..30 {
        let (status, _, body) = server.request_with_body("POST", "/api/publish", &headers, &publish).await?;
        assert_eq!(status, 200, "{body}");
    }
    // Once the hog is stopped, the stalled client's message runs, and the
    // plugin goes on serving everyone else.
    watcher.send_text("count").await?;
    assert!(watcher.recv_text().await?.parse::<u64>().is_ok());
    drop(stalled);
    Ok(())
}

#[tokio::test]
async fn a_file_that_now_holds_another_plugin_keeps_the_old_one_until_the_new_one_is_up() -> anyhow::Result<()> {
    let mut config = Config::default();
    // Too little memory for the chat plugin to start, though enough to describe itself.
    config.plugin.entry("chat".into()).or_default().limits.plugin_memory = Some(1 << 20);
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    let mut client = server.connect("/echo").await?;
    std::fs::write(server.plugins.path().join("switchboard_plugin_echo.wasm"), std::fs::read(plugins::CHAT)?)?;
    let api = server.wait_for_api("the failed load", |api| !api["errors"][0]["error"].is_null()).await?;
    assert!(api["errors"][0]["error"].as_str().is_some_and(|error| error.contains("cannot start")), "{api}");
    assert!(plugin_in(&api, "echo").is_some(), "echo still serves: {api}");
    client.send_text("still here").await?;
    assert_eq!(client.recv_text().await?, "still here");
    Ok(())
}

#[tokio::test]
async fn shutdown_reaches_upgrading_connections_and_idle_http_ones() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut watcher = probe_in_lobby(&server, "watcher").await?;
    let hog = hold_the_plugin(&server, "hog", &mut watcher).await?;
    // Upgraded, but its on-connect waits for the busy plugin.
    let upgrading = tokio::spawn(tokio_tungstenite::connect_async(server.url("/probe/late")));
    // An HTTP client that keeps its connection open between requests.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await?;
    idle.write_all(b"GET /api/plugins HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut response = [0u8; 4096];
    let read = idle.read(&mut response).await?;
    assert!(response[..read].starts_with(b"HTTP/1.1 200"));

    // The clients answer the server's close frames, as live ones do.
    let answering: Vec<_> = [watcher, hog]
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let closed = client.recv_until_close().await?;
                client.ended().await?;
                anyhow::Ok(closed)
            })
        })
        .collect();
    let stopping = Instant::now();
    let stop = tokio::spawn(server.stop());
    let (ws, _) = tokio::time::timeout(TIMEOUT, upgrading).await???;
    let mut late = Client::from(ws);
    let (messages, close) = late.recv_until_close().await?;
    assert_eq!(close.0, 1001, "the connection that was upgrading is told too (after {messages:?})");
    late.ended().await?;
    let closed = tokio::time::timeout(TIMEOUT, idle.read(&mut response)).await??;
    assert_eq!(closed, 0, "the idle HTTP connection is closed");
    tokio::time::timeout(TIMEOUT, stop).await???;
    assert!(stopping.elapsed() < Config::default().limits.shutdown_grace, "nobody had to be dropped");
    for client in answering {
        let (_, (code, _)) = tokio::time::timeout(TIMEOUT, client).await???;
        assert!(code == 1001 || code == 1011, "closed with {code}");
    }
    Ok(())
}

#[tokio::test]
async fn shutdown_drops_a_blocked_writer_after_the_grace_period() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.limits.shutdown_grace = Duration::from_millis(300);
    config.limits.max_send_size = 4 << 20;
    config.limits.send_queue_bytes = 64 << 20;
    config.keepalive.ping_timeout = Duration::from_secs(60);
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut flooder = server.connect("/probe/flooder").await?;
    flooder.recv_type("hello").await?;
    let mut blocked = server.connect("/probe/blocked").await?;
    let id = blocked.recv_type("hello").await?["connection_id"].as_u64().expect("an id");
    // 48 MB for a client that never reads: its writer blocks.
    let answer = {
        flooder.send_text(&format!("flood:{id}:12:4000000")).await?;
        flooder.recv_text().await?
    };
    assert_eq!(answer, "sent 12");
    let stopping = Instant::now();
    tokio::time::timeout(TIMEOUT, server.stop()).await??;
    assert!(stopping.elapsed() < Duration::from_millis(2300), "stopped after {:?}", stopping.elapsed());
    drop(blocked);
    Ok(())
}

#[tokio::test]
async fn at_start_up_a_contested_route_or_name_is_refused_to_every_party_unless_pinned() -> anyhow::Result<()> {
    // A squatter that sorts first claims echo's route, another echo's name.
    let folder = tempfile::tempdir()?;
    copy_plugin(plugins::ECHO, folder.path())?;
    std::fs::copy(plugins::RIVAL, folder.path().join("0-squatter.wasm"))?;
    std::fs::copy(plugins::ECHO, folder.path().join("0-echo.wasm"))?;
    let server = start_in(folder.path(), Config::default()).await?;
    let api = server.plugins_api().await?;
    assert!(api["plugins"].as_array().is_some_and(Vec::is_empty), "nobody serves a contested route: {api}");
    let errors = api["errors"].to_string();
    assert!(errors.contains("the route `/echo`") && errors.contains("the name `echo`"), "{errors}");
    assert_eq!(server.get("/echo").await?.0, 404);
    drop(server);

    // Pinned, the real echo wins; the others are refused with the reason.
    let mut config = Config::default();
    config.plugin.insert(
        "echo".into(),
        PluginSettings { file: Some("switchboard_plugin_echo.wasm".into()), ..PluginSettings::default() },
    );
    let server = start_in(folder.path(), config).await?;
    let api = server.plugins_api().await?;
    let echo = plugin_in(&api, "echo").expect("the pinned echo serves");
    assert!(echo["file"].as_str().is_some_and(|file| file.ends_with("switchboard_plugin_echo.wasm")), "{echo}");
    assert_eq!(api["plugins"].as_array().map(Vec::len), Some(1), "{api}");
    assert_eq!(api["errors"].as_array().map(Vec::len), Some(2), "the others are refused: {api}");
    let mut client = server.connect("/echo").await?;
    client.send_text("the real one").await?;
    assert_eq!(client.recv_text().await?, "the real one");
    Ok(())
}

#[tokio::test]
async fn files_load_in_parallel_each_under_its_own_deadline() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    for copy in 0..5 {
        std::fs::copy(plugins::SLOW_DESCRIBE, folder.path().join(format!("slow-{copy}.wasm")))?;
    }
    copy_plugin(plugins::ECHO, folder.path())?;
    // A cache of the test's own, so that the server does not wait for echo's optimised build.
    let cache = tempfile::tempdir()?;
    let config = Config { compile_cache: Some(cache.path().to_owned()), ..Config::default() };
    let started = Instant::now();
    let server = start_in(folder.path(), config).await?;
    let took = started.elapsed();
    // One after another they would take five deadlines (5 s).
    assert!(took < Duration::from_millis(3500), "listening after {took:?}");
    let api = server.plugins_api().await?;
    assert_eq!(api["errors"].as_array().map(Vec::len), Some(5), "{api}");
    assert!(plugin_in(&api, "echo").is_some());
    Ok(())
}

#[tokio::test]
async fn after_a_1011_the_socket_ends_although_the_plugin_is_busy() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut watcher = probe_in_lobby(&server, "watcher").await?;
    let mut hogs = Vec::new();
    for name in ["a", "b", "c"] {
        let mut hog = server.connect(&format!("/probe/hog-{name}")).await?;
        hog.recv_type("hello").await?;
        hogs.push(hog);
    }
    let mut victim = server.connect("/probe/victim").await?;
    victim.recv_type("hello").await?;
    hogs[0].send_text("busy:lobby").await?;
    assert_eq!(watcher.recv_text().await?, "busy");
    // In the plugin's queue: the victim's trap, then two more hogs.
    victim.send_text("panic").await?;
    hogs[1].send_text("busy:lobby").await?;
    hogs[2].send_text("busy:lobby").await?;
    assert_eq!(victim.expect_close().await?.0, 1011);
    // The victim's socket ends at once, not when the plugin gets round to
    // its on-close (after the two hogs queued behind it).
    let victim_ended = tokio::spawn(async move {
        victim.ended().await?;
        anyhow::Ok(Instant::now())
    });
    let mut last_hog = hogs.pop().expect("three hogs");
    let last_hog_stopped = tokio::spawn(async move {
        last_hog.expect_close().await?;
        anyhow::Ok(Instant::now())
    });
    let victim_ended = tokio::time::timeout(TIMEOUT, victim_ended).await???;
    let last_hog_stopped = tokio::time::timeout(TIMEOUT, last_hog_stopped).await???;
    assert!(victim_ended < last_hog_stopped, "the victim's socket stayed open while the plugin was busy");
    Ok(())
}

/// A probe client in the room `lobby`, which hears when the plugin is busy.
async fn probe_in_lobby(server: &TestServer, name: &str) -> anyhow::Result<Client> {
    let mut client = server.connect(&format!("/probe/{name}")).await?;
    client.recv_type("hello").await?;
    client.send_text("join:lobby").await?;
    anyhow::ensure!(client.recv_text().await? == "joined", "the probe did not join the lobby");
    Ok(client)
}

/// A probe client that holds the plugin (until its deadline stops it),
/// returned once `watcher` (in the lobby) heard that it does.
async fn hold_the_plugin(server: &TestServer, name: &str, watcher: &mut Client) -> anyhow::Result<Client> {
    let mut hog = server.connect(&format!("/probe/{name}")).await?;
    hog.recv_type("hello").await?;
    hog.send_text("busy:lobby").await?;
    anyhow::ensure!(watcher.recv_text().await? == "busy", "the watcher did not hear the hog");
    Ok(hog)
}

/// A server on the plugins of `folder` (not copied).
async fn start_in(folder: &std::path::Path, config: Config) -> anyhow::Result<TestServer> {
    let files: Vec<String> = std::fs::read_dir(folder)?
        .map(|entry| Ok(entry?.path().display().to_string()))
        .collect::<anyhow::Result<_>>()?;
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    TestServer::start_with(&files, config).await
}
