//! The echo plugin, tested with the kit (`switchboard::testing`).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use switchboard::testing::{Frame, TestChannel, build_plugin};

#[tokio::test]
async fn text_and_binary_come_back_unchanged_to_their_sender_only() {
    let echo = TestChannel::load(build_plugin(env!("CARGO_MANIFEST_DIR")).unwrap()).await.unwrap();
    let (ann, bob) = (echo.connect("/echo").await.unwrap(), echo.connect("/echo").await.unwrap());
    ann.send("héllo").await;
    ann.send_binary(&[0, 1, 255]).await;
    assert_eq!(ann.frames(), [Frame::Text("héllo".into()), Frame::Binary(vec![0, 1, 255])]);
    assert_eq!(bob.frames(), []);
}
