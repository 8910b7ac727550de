//! The notifications plugin, tested with the kit (`switchboard::testing`).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use serde_json::json;
use switchboard::Limits;
use switchboard::testing::{ConnectError, Request, TestChannel, build_plugin};

/// The plugin, with the host keeping events for offline users.
async fn notifications() -> TestChannel {
    let limits = Limits { mailbox_size: 1000, ..Limits::default() };
    TestChannel::load_with(build_plugin(env!("CARGO_MANIFEST_DIR")).unwrap(), limits).await.unwrap()
}

#[tokio::test]
async fn an_event_for_a_user_reaches_only_that_user_and_one_for_everyone_everyone() {
    let feed = notifications().await;
    let (ann, bob) =
        (feed.connect("/notifications/ann").await.unwrap(), feed.connect("/notifications/bob").await.unwrap());
    ann.frames();
    bob.frames();
    assert_eq!(feed.publish("invoice_paid", &json!({"user_id": "ann", "amount": 5})).await.unwrap(), 1);
    assert_eq!(feed.publish("maintenance", &json!({"at": "noon"})).await.unwrap(), 2);
    let ann_got = ann.json_frames();
    assert_eq!((ann_got.len(), &ann_got[0]["type"], &ann_got[0]["amount"]), (2, &json!("invoice_paid"), &json!(5)));
    assert_eq!(bob.json_frames().iter().map(|m| m["type"].clone()).collect::<Vec<_>>(), ["maintenance"]);
}

#[tokio::test]
async fn events_for_an_offline_user_wait_and_arrive_in_order_on_connect() {
    let feed = notifications().await;
    for n in 1..=3 {
        assert_eq!(feed.publish("ping", &json!({"user_id": 42, "n": n})).await.unwrap(), 0);
    }
    let user = feed.connect("/notifications/42").await.unwrap();
    let kept: Vec<_> = user.json_frames().into_iter().filter(|m| m["type"] == "ping").map(|m| m["n"].clone()).collect();
    assert_eq!(kept, [1, 2, 3]);
    user.close().await;
    let again = feed.connect("/notifications/42").await.unwrap();
    assert!(again.json_frames().iter().all(|m| m["type"] != "ping"), "delivered once");
}

#[tokio::test]
async fn without_a_mailbox_events_for_an_offline_user_are_dropped() {
    let feed = TestChannel::load(build_plugin(env!("CARGO_MANIFEST_DIR")).unwrap()).await.unwrap();
    assert_eq!(feed.publish("ping", &json!({"user_id": "ann"})).await.unwrap(), 0);
    let ann = feed.connect("/notifications/ann").await.unwrap();
    assert!(ann.json_frames().iter().all(|m| m["type"] != "ping"));
}

#[tokio::test]
async fn a_token_may_open_only_its_own_feed() {
    let feed = notifications().await;
    let own = Request::new("/notifications/ann").claims(json!({"sub": "ann"}));
    assert!(feed.connect_with(own).await.is_ok());
    let other = Request::new("/notifications/bob").claims(json!({"sub": "ann"}));
    assert!(matches!(feed.connect_with(other).await, Err(ConnectError::Rejected { code: 1008, .. })));
}
