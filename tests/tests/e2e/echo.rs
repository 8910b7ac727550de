use switchboard_tests::{TestServer, plugins};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn echoes_text_and_binary_unchanged() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    let mut client = server.connect("/echo").await?;
    client.send_text("hello, switchboard ✓").await?;
    assert_eq!(client.recv().await?, Message::text("hello, switchboard ✓"));
    let bytes: Vec<u8> = (0..=255).collect();
    client.send_binary(&bytes).await?;
    assert_eq!(client.recv().await?, Message::binary(bytes));
    client.send_text("").await?;
    assert_eq!(client.recv().await?, Message::text(""));
    client.close().await?;
    Ok(())
}

#[tokio::test]
async fn echoes_many_messages_in_order() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    let mut client = server.connect("/echo").await?;
    for i in 0..500 {
        client.send_text(&i.to_string()).await?;
    }
    for i in 0..500 {
        assert_eq!(client.recv_text().await?, i.to_string());
    }
    Ok(())
}
