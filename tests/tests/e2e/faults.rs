use switchboard_tests::{TestServer, plugins};

#[tokio::test]
async fn a_trap_closes_that_connection_with_1011_and_nothing_else() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE, plugins::ECHO]).await?;
    let mut victim = server.connect("/probe/victim").await?;
    let mut bystander = server.connect("/probe/bystander").await?;
    let mut echo = server.connect("/echo").await?;
    victim.recv_type("hello").await?;
    bystander.recv_type("hello").await?;

    bystander.send_text("count").await?;
    assert_eq!(bystander.recv_text().await?, "1");
    victim.send_text("panic").await?;
    let (code, _) = victim.expect_close().await?;
    assert_eq!(code, 1011);

    // The same plugin serves on, from a fresh instance (its count restarted),
    // on the connection it already had and on new ones.
    bystander.send_text("count").await?;
    assert_eq!(bystander.recv_text().await?, "1");
    let mut newcomer = server.connect("/probe/new").await?;
    newcomer.recv_type("hello").await?;
    newcomer.send_text("still here?").await?;
    assert_eq!(newcomer.recv_text().await?, "still here?");
    // Other plugins never noticed.
    echo.send_text("fine").await?;
    assert_eq!(echo.recv_text().await?, "fine");
    Ok(())
}

#[tokio::test]
async fn a_plugin_stuck_in_a_loop_is_interrupted_and_restarted() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE, plugins::ECHO]).await?;
    let mut stuck = server.connect("/probe/stuck").await?;
    let mut echo = server.connect("/echo").await?;
    stuck.recv_type("hello").await?;
    stuck.send_text("spin").await?;
    // While the probe spins, other plugins answer.
    echo.send_text("meanwhile").await?;
    assert_eq!(echo.recv_text().await?, "meanwhile");
    assert_eq!(stuck.expect_close().await?.0, 1011);
    let mut after = server.connect("/probe/after").await?;
    after.recv_type("hello").await?;
    after.send_text("ok").await?;
    assert_eq!(after.recv_text().await?, "ok");
    Ok(())
}

#[tokio::test]
async fn the_quick_build_is_interrupted_too() -> anyhow::Result<()> {
    // An empty compile cache: the plugins serve from their quick (Winch)
    // builds until the optimised ones take over.
    let cache = tempfile::tempdir()?;
    let config = switchboard::Config { compile_cache: Some(cache.path().to_owned()), ..Default::default() };
    let server = TestServer::start_with(&[plugins::PROBE, plugins::ECHO], config).await?;
    let mut stuck = server.connect("/probe/stuck").await?;
    stuck.recv_type("hello").await?;
    stuck.send_text("spin").await?;
    // The optimised build can only take over between callbacks, so a quick
    // build now means the spinning instance is a quick one.
    let mut echo = server.connect("/echo").await?;
    echo.send_text("meanwhile").await?;
    assert_eq!(echo.recv_text().await?, "meanwhile");
    let probe = server.plugin_state("probe").await?;
    assert_eq!(probe.map(|probe| probe["optimised"].clone()), Some(serde_json::json!(false)));
    assert_eq!(stuck.expect_close().await?.0, 1011);
    Ok(())
}

#[tokio::test]
async fn a_plugin_that_allocates_without_end_is_stopped_at_its_limit() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE, plugins::ECHO]).await?;
    let mut greedy = server.connect("/probe/greedy").await?;
    let mut echo = server.connect("/echo").await?;
    greedy.recv_type("hello").await?;
    greedy.send_text("alloc").await?;
    assert_eq!(greedy.expect_close().await?.0, 1011);
    echo.send_text("unaffected").await?;
    assert_eq!(echo.recv_text().await?, "unaffected");
    let mut after = server.connect("/probe/after").await?;
    after.recv_type("hello").await?;
    after.send_text("count").await?;
    assert_eq!(after.recv_text().await?, "1", "a fresh instance serves");
    Ok(())
}

#[tokio::test]
async fn bad_host_calls_get_errors_not_crashes() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE, plugins::CHAT]).await?;
    let mut client = server.connect("/probe/calls").await?;
    client.recv_type("hello").await?;
    client.send_text("huge").await?;
    let refused = client.recv_text().await?;
    assert!(refused.contains("InvalidArgument(\"message longer than"), "{refused}");
    // Another plugin's open connection, by its real id, is out of reach.
    let mut stranger = server.connect("/chat/x").await?;
    let connected = stranger.recv_type("connected").await?;
    let id = connected["connection_id"].as_u64().ok_or_else(|| anyhow::anyhow!("no connection_id: {connected}"))?;
    client.send_text(&format!("foreign:{id}")).await?;
    let refused = client.recv_text().await?;
    assert!(refused.contains("UnknownConnection"), "{refused}");
    stranger.send_json(&serde_json::json!({"type": "ping"})).await?;
    // Everything the chat client got up to its pong: none of it is the probe's.
    loop {
        let text = stranger.recv_text().await?;
        assert_ne!(text, "hello, stranger");
        if serde_json::from_str::<serde_json::Value>(&text)?["type"] == "pong" {
            break;
        }
    }
    client.send_text("count").await?;
    assert_eq!(client.recv_text().await?, "3", "the same instance is still serving");
    Ok(())
}

#[tokio::test]
async fn the_hosts_answers_to_calls_reach_the_plugin() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut client = server.connect("/probe/answers").await?;
    let id = client.recv_type("hello").await?["connection_id"].as_u64().expect("an id");
    for (command, answer) in [
        ("user:", "refused: HostError::InvalidArgument("),
        ("user:ann", "user set"),
        ("join:", "refused: HostError::InvalidArgument("),
        ("join:ok", "joined"),
        ("track:", "refused: HostError::InvalidArgument("),
        // Not a room it is in: presence news would come between the answers.
        ("track:elsewhere", "tracked"),
        ("joinmany:5", "joined 5"),
        ("meta:3", "set 3"),
        ("kvfill:3:10", "stored 3"),
        ("kvclear:3", "cleared"),
        ("log:3", "logged 3"),
    ] {
        client.send_text(command).await?;
        let got = client.recv_text().await?;
        assert!(got.starts_with(answer), "{command}: {got}");
    }
    client.send_text(&format!("flood:{id}:3:10")).await?;
    for _ in 0..3 {
        assert_eq!(client.recv().await?.into_data().len(), 10);
    }
    assert_eq!(client.recv_text().await?, "sent 3");
    Ok(())
}
