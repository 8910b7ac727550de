//! `{{name}}`'s tests, with the Switchboard test kit: the real runtime and
//! channel logic, fake clients, no sockets. `cargo test` builds the plugin
//! for wasm32-wasip2 first.

use switchboard::testing::{Frame, TestChannel, build_plugin};

async fn plugin() -> TestChannel {
    let wasm = build_plugin(env!("CARGO_MANIFEST_DIR")).expect("the plugin builds");
    TestChannel::load(wasm).await.expect("the plugin loads")
}

#[tokio::test]
async fn a_message_comes_back_to_its_sender() {
    let plugin = plugin().await;
    let client = plugin.connect("/{{name}}").await.expect("connects");
    client.send("hello").await;
    assert_eq!(client.frames(), [Frame::Text("hello".into())]);
}
