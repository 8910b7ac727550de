use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use switchboard::Config;
use switchboard_tests::{TestServer, plugins};

const SECRET: &str = "test-secret-not-for-production";

fn token(claims: Value) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("encodable claims")
}

fn in_a_minute() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|now| now.as_secs() + 60).unwrap_or(0)
}

/// Tokens required by the probe plugin, optional elsewhere.
async fn server() -> anyhow::Result<TestServer> {
    let mut config = Config::default();
    config.auth.secret = Some(SECRET.into());
    config.plugin.entry("probe".into()).or_default().auth_required = Some(true);
    TestServer::start_with(&[plugins::PROBE, plugins::ECHO], config).await
}

#[tokio::test]
async fn verified_claims_reach_the_plugin_by_query_or_header() -> anyhow::Result<()> {
    let server = server().await?;
    let good = token(json!({"sub": "ann", "exp": in_a_minute()}));
    let mut by_query = server.connect(&format!("/probe/q?token={good}")).await?;
    assert_eq!(by_query.recv_type("hello").await?["claims"], json!({"sub": "ann", "exp": in_a_minute()}));
    let bearer = format!("Bearer {good}");
    let mut by_header = server.connect_with("/probe/h", &[("authorization", &bearer)]).await?;
    assert_eq!(by_header.recv_type("hello").await?["claims"]["sub"], "ann");
    Ok(())
}

#[tokio::test]
async fn missing_and_bad_tokens_are_refused_with_1008() -> anyhow::Result<()> {
    let server = server().await?;
    let expired = token(json!({"sub": "ann", "exp": 1_000_000}));
    let forged = encode(&Header::default(), &json!({"sub": "eve"}), &EncodingKey::from_secret(b"guess"))?;
    for (path, reason) in [
        ("/probe/none".to_owned(), "missing token"),
        (format!("/probe/old?token={expired}"), "token expired"),
        (format!("/probe/forged?token={forged}"), "invalid token signature"),
        ("/probe/junk?token=junk".to_owned(), "malformed token"),
        // A bad token is refused even where tokens are optional.
        (format!("/echo?token={forged}"), "invalid token signature"),
    ] {
        let mut client = server.connect(&path).await?;
        assert_eq!(client.expect_close().await?, (1008, reason.to_owned()), "{path}");
    }
    let mut anonymous = server.connect("/echo").await?;
    anonymous.send_text("no token needed here").await?;
    assert_eq!(anonymous.recv_text().await?, "no token needed here");
    Ok(())
}

#[tokio::test]
async fn only_allowed_origins_may_connect_and_read_the_api() -> anyhow::Result<()> {
    let config = Config { allowed_origins: vec!["https://good.example".into()], ..Config::default() };
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    assert_eq!(server.refused_status("/echo", &[("origin", "https://evil.example")]).await?, 403);
    let mut good = server.connect_with("/echo", &[("origin", "https://good.example")]).await?;
    good.send_text("hi").await?;
    assert_eq!(good.recv_text().await?, "hi");
    // Non-browser clients send no Origin.
    server.connect("/echo").await?;

    let (status, headers, _) = server.request("GET", "/api/plugins", &[("origin", "https://good.example")]).await?;
    assert_eq!(status, 200);
    assert!(headers.contains(&("access-control-allow-origin".into(), "https://good.example".into())), "{headers:?}");
    let (status, headers, _) = server.request("OPTIONS", "/api/plugins", &[("origin", "https://good.example")]).await?;
    assert_eq!(status, 204);
    assert!(headers.iter().any(|(name, _)| name == "access-control-allow-methods"), "{headers:?}");
    assert_eq!(server.request("GET", "/api/plugins", &[("origin", "https://evil.example")]).await?.0, 403);
    Ok(())
}

#[tokio::test]
async fn a_token_opens_only_its_own_subjects_notifications() -> anyhow::Result<()> {
    const API_KEY: &str = "backend-key-for-tests";
    let mut config = Config::default();
    config.auth.secret = Some(SECRET.into());
    config.api.key = Some(API_KEY.into());
    config.plugin.entry("notifications".into()).or_default().limits.mailbox_size = Some(1000);
    let server = TestServer::start_with(&[plugins::NOTIFICATIONS], config).await?;
    let event = json!({"plugin": "notifications", "topic": "invoice", "payload": {"user_id": "victim", "n": 1}});
    let body = event.to_string();
    let (length, authorization) = (body.len().to_string(), format!("Bearer {API_KEY}"));
    let headers =
        [("authorization", authorization.as_str()), ("content-type", "application/json"), ("content-length", &length)];
    let (status, _, answer) = server.request_with_body("POST", "/api/publish", &headers, &body).await?;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&answer)?),
        (200, json!({"delivered": 0})),
        "kept for the victim"
    );

    let intruder = token(json!({"sub": "someone-else", "exp": in_a_minute()}));
    let mut intruder = server.connect(&format!("/notifications/victim?token={intruder}")).await?;
    let (seen, close) = intruder.recv_until_close().await?;
    assert_eq!(close, (1008, "token subject does not match user_id".to_owned()));
    assert!(seen.is_empty(), "the intruder was told something: {seen:?}");

    let victim = token(json!({"sub": "victim", "exp": in_a_minute()}));
    let mut victim = server.connect(&format!("/notifications/victim?token={victim}")).await?;
    assert_eq!(victim.recv_json().await?["type"], "connected");
    let kept = victim.recv_json().await?;
    assert_eq!((kept["type"].as_str(), kept["n"].as_i64()), (Some("invoice"), Some(1)));
    Ok(())
}
