//! `{{name}}`'s tests, with the Switchboard test kit: the real runtime and
//! channel logic, fake clients, no sockets. `cargo test` builds the plugin
//! for wasm32-wasip2 first.

use switchboard::testing::{Frame, TestChannel, build_plugin};

async fn plugin() -> TestChannel {
    let wasm = build_plugin(env!("CARGO_MANIFEST_DIR")).expect("the plugin builds");
    TestChannel::load(wasm).await.expect("the plugin loads")
}

#[tokio::test]
async fn a_message_reaches_the_room_and_presence_counts_each_user_once() {
    let plugin = plugin().await;
    let ann = plugin.connect("/{{name}}/lobby?user=ann").await.expect("connects");
    let bob = plugin.connect("/{{name}}/lobby?user=bob").await.expect("connects");
    let elsewhere = plugin.connect("/{{name}}/kitchen?user=eve").await.expect("connects");
    for client in [&ann, &bob, &elsewhere] {
        client.frames();
    }
    ann.send("hi").await;
    assert_eq!(bob.frames(), [Frame::Text("hi".into())]);
    assert_eq!(ann.frames(), [Frame::Text("hi".into())]);
    assert_eq!(elsewhere.frames(), []);
    assert_eq!(plugin.presence("lobby"), [("ann".to_owned(), 1), ("bob".to_owned(), 1)]);
}
