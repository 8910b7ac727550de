use std::time::Duration;

use switchboard::Config;
use switchboard_tests::{Client, TestServer, plugin_in, plugins, variant};

/// Send `command` to the probe and return its one-line answer.
async fn ask(client: &mut Client, command: &str) -> anyhow::Result<String> {
    client.send_text(command).await?;
    client.recv_text().await
}

async fn timers_of(server: &TestServer) -> anyhow::Result<Option<u64>> {
    let api = server.plugins_api().await?;
    Ok(plugin_in(&api, "probe").and_then(|probe| probe["timers"].as_u64()))
}

#[tokio::test]
async fn a_one_shot_timer_fires_once_and_a_repeating_one_until_cancelled() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut client = server.connect("/probe/timers").await?;
    client.recv_json().await?;
    assert_eq!(ask(&mut client, "after:20").await?, "timer set");
    assert_eq!(client.recv_text().await?, "fired once");
    assert_eq!(timers_of(&server).await?, Some(0), "a one-shot timer is gone once it fired");

    assert_eq!(ask(&mut client, "every:20").await?, "timer set");
    for fire in 1..=3 {
        assert_eq!(client.recv_text().await?, format!("fired every {fire}"));
    }
    client.send_text("cancel").await?;
    // Fires that were due before the cancel may arrive first; none after it.
    let mut answer = client.recv_text().await?;
    while answer.starts_with("fired every") {
        answer = client.recv_text().await?;
    }
    assert_eq!(answer, "cancelled true");
    assert_eq!(timers_of(&server).await?, Some(0));
    assert_eq!(ask(&mut client, "count").await?, "4", "the next message is the answer: no fire after the cancel");
    Ok(())
}

#[tokio::test]
async fn a_timer_survives_a_hot_reload_and_fires_in_the_new_version() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut client = server.connect("/probe/timers").await?;
    client.recv_json().await?;
    assert_eq!(ask(&mut client, "every:50").await?, "timer set");
    assert_eq!(client.recv_text().await?, "fired every 1");
    let before = server.plugin_state("probe").await?.map(|probe| probe["sha256"].clone());
    let file = server.plugins.path().join("switchboard_test_plugin_probe.wasm");
    std::fs::write(&file, variant(&std::fs::read(plugins::PROBE)?, 7))?;
    server
        .wait_for_api("the new version", |api| {
            plugin_in(api, "probe").is_some_and(|probe| Some(&probe["sha256"]) != before.as_ref())
        })
        .await?;
    // The new instance counts its fires from 1 again: the timer outlived
    // the instance that set it.
    let mut answer = client.recv_text().await?;
    while answer != "fired every 1" {
        anyhow::ensure!(answer.starts_with("fired every"), "unexpected {answer}");
        answer = client.recv_text().await?;
    }
    Ok(())
}

#[tokio::test]
async fn timers_are_bounded_per_plugin_and_a_repeating_timer_has_a_minimum_period() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.limits.max_timers = 5;
    config.limits.min_timer_interval = Duration::from_millis(100);
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut client = server.connect("/probe/timers").await?;
    client.recv_json().await?;
    let answer = ask(&mut client, "timers:6").await?;
    assert!(answer.starts_with("set 5; refused: ") && answer.contains("too many timers (the limit is 5)"), "{answer}");
    assert_eq!(timers_of(&server).await?, Some(5));
    let answer = ask(&mut client, "every:99").await?;
    assert!(answer.contains("at least 100 ms"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_timer_callback_that_never_returns_is_stopped_at_the_deadline() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.limits.callback_timeout = Duration::from_millis(200);
    let server = TestServer::start_with(&[plugins::PROBE], config).await?;
    let mut client = server.connect("/probe/timers").await?;
    client.recv_json().await?;
    assert_eq!(ask(&mut client, "count").await?, "1");
    assert_eq!(ask(&mut client, "spintimer:10").await?, "timer set");
    assert_eq!(client.recv_text().await?, "spinning");
    // The spinning callback holds the plugin until its deadline traps it;
    // then a fresh instance (its count starts again) answers.
    assert_eq!(ask(&mut client, "count").await?, "1");
    assert_eq!(ask(&mut client, "panic-free").await?, "panic-free");
    Ok(())
}

#[tokio::test]
async fn an_unloaded_plugins_timers_are_dropped() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut client = server.connect("/probe/timers").await?;
    client.recv_json().await?;
    assert_eq!(ask(&mut client, "timers:3").await?, "set 3");
    let file = server.plugins.path().join("switchboard_test_plugin_probe.wasm");
    std::fs::remove_file(&file)?;
    server.wait_for_api("the unload", |api| plugin_in(api, "probe").is_none()).await?;
    // Back under the same name, with the same channel (its store survives),
    // but not the timers of the plugin that set them.
    std::fs::copy(plugins::PROBE, &file)?;
    server.wait_for_api("the probe again", |api| plugin_in(api, "probe").is_some()).await?;
    assert_eq!(timers_of(&server).await?, Some(0));
    Ok(())
}
