use switchboard::Config;
use switchboard_tests::{TestServer, echo_js, plugin_in};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_javascript_echo_answers_text_binary_and_ping() -> anyhow::Result<()> {
    // A compile cache kept across runs: its optimised build (≈15 s of CPU
    // for 12 MB) is made once, not in every run beside the other tests. The
    // quick (Winch) build serves until then; the test does not wait for it.
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-compile-cache");
    let config = Config { compile_cache: Some(cache), ..Config::default() };
    let server = TestServer::start_with(&[echo_js()?], config).await?;
    let api = server.plugins_api().await?;
    assert!(plugin_in(&api, "echo-js").is_some_and(|plugin| plugin["routes"][0] == "/echo-js"), "{api}");
    let mut client = server.connect("/echo-js").await?;
    client.send_text("héllo").await?;
    assert_eq!(client.recv_text().await?, "héllo");
    client.send_binary(&[0, 1, 255]).await?;
    assert_eq!(client.recv().await?, Message::binary(vec![0, 1, 255]));
    client.send_text("ping").await?;
    assert_eq!((client.recv_text().await?, client.recv_text().await?), ("ping".to_owned(), "pong".to_owned()));
    Ok(())
}
