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

#[tokio::test]
async fn the_public_folder_is_served_with_types_and_caching_and_nothing_outside_it() -> anyhow::Result<()> {
    let public = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../public");
    let config = switchboard::Config { public, ..Default::default() };
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    let (status, headers, body) = server.request("GET", "/", &[]).await?;
    assert_eq!(status, 200);
    assert!(body.contains("<title>Switchboard demo</title>"));
    let header = |headers: &[(String, String)], name: &str| {
        headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
    };
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let etag = header(&headers, "etag");
    assert_eq!(server.request("GET", "/", &[("if-none-match", &etag)]).await?.0, 304);

    let (status, headers, _) = server.request("GET", "/js/switchboard.js", &[]).await?;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "text/javascript; charset=utf-8");
    assert!(header(&headers, "cache-control").contains("max-age"));
    for escape in ["/../Cargo.toml", "/js/../../Cargo.toml", "/%2e%2e/Cargo.toml", "/.gitignore", "/missing.html"] {
        assert_eq!(server.get(escape).await?.0, 404, "{escape}");
    }
    // Channel routes still win over files.
    assert_eq!(server.get("/echo").await?.0, 426);
    Ok(())
}
