//! The plugin test kit (`switchboard::testing`) against the test plugins:
//! what a plugin author relies on — reloads, traps, rejections, closes,
//! timers on the kit's clock, old contract versions.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use switchboard::Limits;
use switchboard::testing::{Closed, ConnectError, Frame, TestChannel};
use switchboard_tests::{echo_js, fixtures, plugins};

fn text(frames: Vec<Frame>) -> Vec<String> {
    frames.iter().map(|frame| frame.text().unwrap_or("<binary>").to_owned()).collect()
}

#[tokio::test]
async fn a_reload_keeps_the_connection_and_carries_the_state_over() {
    let prefix = TestChannel::load(plugins::PREFIX_V1).await.unwrap();
    let client = prefix.connect("/prefix").await.unwrap();
    let leaving = prefix.connect("/prefix/v1-only").await.unwrap();
    client.send("a").await;
    prefix.reload(plugins::PREFIX_V2).await.unwrap();
    assert_eq!(leaving.closed(), Some(Closed { code: 1001, reason: "route removed".into() }));
    client.send("b").await;
    assert_eq!(text(client.frames()), ["v1:1:a", "v2:2:b"]);
    assert_eq!(client.closed(), None);
    assert!(matches!(prefix.connect("/prefix/v1-only").await, Err(ConnectError::NoRoute(_))), "v2 dropped it");
}

#[tokio::test]
async fn a_trap_closes_only_its_sender_with_1011_and_the_plugin_serves_on() {
    let probe = TestChannel::load(plugins::PROBE).await.unwrap();
    let (victim, bystander) = (probe.connect("/probe/a").await.unwrap(), probe.connect("/probe/b").await.unwrap());
    victim.send("panic").await;
    assert_eq!(victim.closed(), Some(Closed { code: 1011, reason: "plugin error".into() }));
    bystander.frames();
    bystander.send("count").await;
    assert_eq!(text(bystander.frames()), ["1"], "a fresh instance answers");
    assert_eq!(probe.connections(), 1);
}

#[tokio::test]
async fn rejections_and_plugin_closes_are_values_and_on_close_runs() {
    let probe = TestChannel::load(plugins::PROBE).await.unwrap();
    let refused = probe.connect("/probe/x?reject=4403").await.unwrap_err();
    assert_eq!(refused, ConnectError::Rejected { code: 4403, reason: "rejected by probe".into() });
    assert_eq!(probe.connections(), 0);
    let client = probe.connect("/probe/x").await.unwrap();
    client.send("close").await;
    assert_eq!(client.closed(), Some(Closed { code: 4000, reason: "closed by probe".into() }));
    assert_eq!(probe.connections(), 0, "on-close ran and the connection is gone");
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009_before_the_plugin_sees_it() {
    let limits = Limits { max_message_size: 8, ..Limits::default() };
    let probe = TestChannel::load_with(plugins::PROBE, limits).await.unwrap();
    let client = probe.connect("/probe/x").await.unwrap();
    client.send("123456789").await;
    assert_eq!(client.closed().map(|closed| closed.code), Some(1009));
}

#[tokio::test]
async fn timers_fire_on_the_kits_clock_each_at_its_time() {
    let probe = TestChannel::load(plugins::PROBE).await.unwrap();
    let client = probe.connect("/probe/x").await.unwrap();
    client.frames();
    client.send("after:1000").await;
    client.send("every:100").await;
    assert_eq!(text(client.frames()), ["timer set", "timer set"]);
    assert_eq!(probe.advance(Duration::from_millis(999)).await, 9);
    assert_eq!(client.frames().len(), 9);
    assert_eq!(probe.advance(Duration::from_millis(1)).await, 2, "the one-shot and the tenth tick, both at 1 s");
    let last = text(client.frames());
    assert!(last.contains(&"fired once".to_owned()) && last.contains(&"fired every 10".to_owned()), "{last:?}");
    assert_eq!(probe.timers(), 1);
}

#[tokio::test]
async fn a_plugin_built_for_contract_0_1_0_runs_in_the_kit() {
    let chat = TestChannel::load(fixtures::CHAT_0_1_0).await.unwrap();
    let client = chat.connect("/chat/lobby?user=ann").await.unwrap();
    let kinds: Vec<serde_json::Value> =
        client.json_frames().into_iter().map(|message| message["type"].clone()).collect();
    assert_eq!(kinds, ["connected", "presence_state", "users"]);
    assert_eq!(chat.presence("lobby"), [("ann".to_owned(), 1)]);
}

#[tokio::test]
async fn a_javascript_plugin_runs_in_the_kit() {
    let echo = TestChannel::load(echo_js().unwrap()).await.unwrap();
    assert_eq!(echo.name(), "echo-js");
    let client = echo.connect("/echo-js").await.unwrap();
    client.send("ping").await;
    client.send_binary(&[7]).await;
    assert_eq!(client.frames(), [Frame::Text("ping".into()), Frame::Text("pong".into()), Frame::Binary(vec![7])]);
}
