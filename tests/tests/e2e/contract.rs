use serde_json::json;
use switchboard_tests::{TestServer, fixtures, plugin_in};

#[tokio::test]
async fn a_chat_plugin_built_for_contract_0_1_0_loads_and_serves_rooms_presence_and_messages() -> anyhow::Result<()> {
    let server = TestServer::start(&[fixtures::CHAT_0_1_0]).await?;
    let api = server.plugins_api().await?;
    assert!(plugin_in(&api, "chat").is_some_and(|chat| chat["last_error"].is_null()), "{api}");

    let mut ann = server.connect("/chat/lobby?user=ann").await?;
    ann.recv_type("connected").await?;
    let state = ann.recv_type("presence_state").await?;
    assert_eq!(state["users"], json!({"ann": {"connections": 1}}));
    let mut bob = server.connect("/chat/lobby?user=bob").await?;
    bob.recv_type("connected").await?;
    let diff = ann.recv_type("presence_diff").await?;
    assert_eq!(diff["joins"], json!({"bob": {"connections": 1}}));
    bob.send_json(&json!({"type": "message", "user": "bob", "content": "hello from 0.1.0"})).await?;
    for client in [&mut ann, &mut bob] {
        assert_eq!(client.recv_type("message").await?["content"], "hello from 0.1.0");
    }
    // An error reply goes through the 0.1.0 `send` too.
    ann.send_text("not json").await?;
    assert_eq!(ann.recv_type("error").await?["type"], "error");
    Ok(())
}
