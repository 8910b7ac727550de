use switchboard_tests::{TestServer, plugins};
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn unknown_path_is_404_before_any_upgrade() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    match tokio_tungstenite::connect_async(server.url("/nowhere")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    assert_eq!(server.get("/echo/extra").await?.0, 404);
    Ok(())
}

#[tokio::test]
async fn plain_get_on_a_channel_route_is_426() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    let (status, body) = server.get("/echo").await?;
    assert_eq!(status, 426, "{body}");
    Ok(())
}
