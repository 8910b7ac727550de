use serde_json::json;
use switchboard_tests::{TestServer, plugins};

#[tokio::test]
async fn path_params_query_and_headers_reach_on_connect() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut client = server.connect("/probe/some%20thing?user=ann&lang=en&tag=a%26b").await?;
    let hello = client.recv_json().await?;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["route"], "/probe/:mode");
    assert_eq!(hello["path"], "/probe/some%20thing");
    assert_eq!(hello["params"], json!([["mode", "some thing"]]));
    assert_eq!(hello["query"], json!([["user", "ann"], ["lang", "en"], ["tag", "a&b"]]));
    let headers = hello["headers"].as_array().expect("headers is a list");
    assert!(headers.contains(&json!(["upgrade", "websocket"])), "{headers:?}");
    assert!(headers.iter().any(|pair| pair[0] == "sec-websocket-key"), "{headers:?}");
    assert!(hello["remote_addr"].as_str().is_some_and(|addr| addr.starts_with("127.0.0.1:")));
    Ok(())
}

#[tokio::test]
async fn a_plugin_can_reject_a_connection_with_a_close_code() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut client = server.connect("/probe/x?reject=4403").await?;
    // What on-connect sent before refusing arrives before the close frame.
    assert_eq!(client.recv_text().await?, "you will be rejected");
    assert_eq!(client.expect_close().await?, (4403, "rejected by probe".to_owned()));
    assert_eq!(server.plugins_api().await?["plugins"][0]["connections"], 0);
    Ok(())
}

#[tokio::test]
async fn a_plugin_can_close_a_connection_after_what_it_queued() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut client = server.connect("/probe/x").await?;
    client.recv_type("hello").await?;
    client.send_text("before").await?;
    client.send_text("close").await?;
    assert_eq!(client.recv_text().await?, "before");
    assert_eq!(client.expect_close().await?, (4000, "closed by probe".to_owned()));
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_connections_with_1001() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    let mut client = server.connect("/echo").await?;
    client.send_text("up").await?;
    assert_eq!(client.recv_text().await?, "up");
    let stopping = tokio::spawn(server.stop());
    assert_eq!(client.expect_close().await?.0, 1001);
    stopping.await?
}

#[tokio::test]
async fn a_plugin_is_told_when_a_user_arrives_and_leaves() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::PROBE]).await?;
    let mut ann = server.connect("/probe/p?user=ann").await?;
    let told = ann.recv_type("probe_presence").await?;
    assert_eq!(told, json!({"type": "probe_presence", "room": "lobby", "joins": ["ann"], "leaves": []}));
    let bob = server.connect("/probe/p?user=bob").await?;
    assert_eq!(ann.recv_type("probe_presence").await?["joins"], json!(["bob"]));
    // A second tab of ann changes nothing; bob going does.
    let mut second_tab = server.connect("/probe/p?user=ann").await?;
    second_tab.recv_type("hello").await?;
    bob.close().await?;
    let told = ann.recv_type("probe_presence").await?;
    assert_eq!((told["joins"].clone(), told["leaves"].clone()), (json!([]), json!(["bob"])));
    Ok(())
}
