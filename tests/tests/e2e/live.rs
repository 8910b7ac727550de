use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use switchboard::Config;
use switchboard_sdk::live::Mirror;
use switchboard_tests::{Client, TestServer, all_optimised, plugin_in, plugins, variant};

/// A page's view of one component: its socket and what a browser would show.
struct Page {
    client: Client,
    mirror: Mirror,
    resume: Option<String>,
    next_ref: u64,
    /// How many `full` renders the page got.
    fulls: usize,
}

impl Page {
    /// Connect to `/live/<plugin>` and mount `component` as `c1`.
    async fn mount(server: &TestServer, plugin: &str, component: &str, props: Value) -> anyhow::Result<Page> {
        Page::mount_resuming(server, plugin, component, props, None).await
    }

    async fn mount_resuming(
        server: &TestServer,
        plugin: &str,
        component: &str,
        props: Value,
        resume: Option<&str>,
    ) -> anyhow::Result<Page> {
        Page::mount_at(server, &format!("/live/{plugin}"), component, props, resume).await
    }

    /// Connect to `path` and mount `component` as `c1`, with `resume` if given.
    async fn mount_at(
        server: &TestServer,
        path: &str,
        component: &str,
        props: Value,
        resume: Option<&str>,
    ) -> anyhow::Result<Page> {
        let mut page = Page {
            client: server.connect(path).await?,
            mirror: Mirror::default(),
            resume: None,
            next_ref: 1,
            fulls: 0,
        };
        page.client.send_json(&json!({"t": "join", "cid": "c1", "c": component, "p": props, "resume": resume})).await?;
        let full = page.recv("full").await?;
        assert!(
            full["p"].as_object().is_some_and(|templates| !templates.is_empty()),
            "a first render carries its templates"
        );
        Ok(page)
    }

    fn apply(&mut self, message: &Value) -> anyhow::Result<()> {
        self.fulls += usize::from(message["t"] == "full");
        Ok(self.mirror.apply(message)?)
    }

    /// The next message of type `t`, applied to the mirror (as all before it).
    async fn recv(&mut self, t: &str) -> anyhow::Result<Value> {
        loop {
            let message = self.client.recv_json().await?;
            self.apply(&message)?;
            if let Some(token) = message["resume"].as_str() {
                self.resume = Some(token.to_owned());
            }
            if message["t"] == t {
                return Ok(message);
            }
            anyhow::ensure!(message["t"] != "err", "unexpected error: {message}");
        }
    }

    /// Send event `name` as a click with `values`; its reply.
    async fn event(&mut self, cid: &str, name: &str, values: Value) -> anyhow::Result<Value> {
        let reference = self.next_ref;
        self.next_ref += 1;
        self.client
            .send_json(&json!({"t": "ev", "cid": cid, "ref": reference, "n": name, "k": "click", "v": values}))
            .await?;
        loop {
            let message = self.client.recv_json().await?;
            self.apply(&message)?;
            if message["ack"] == reference {
                return Ok(message);
            }
        }
    }

    /// The next message, applied to the mirror.
    async fn answer(&mut self) -> anyhow::Result<Value> {
        let message = self.client.recv_json().await?;
        self.apply(&message)?;
        Ok(message)
    }

    async fn click(&mut self, name: &str) -> anyhow::Result<Value> {
        self.event("c1", name, json!({})).await
    }

    fn shows(&self, text: &str) -> anyhow::Result<bool> {
        Ok(self.mirror.html()?.contains(text))
    }
}

#[tokio::test]
async fn a_click_is_answered_with_only_the_changed_slot() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::COUNTER]).await?;
    let mut page = Page::mount(&server, "counter", "counter", json!({"count": 10})).await?;
    assert!(page.shows("<output>10</output>")?);
    let reply = page.click("inc").await?;
    assert_eq!(reply, json!({"t": "diff", "cid": "c1", "ack": 1, "d": {"0": "11"}}));
    assert!(page.shows("<output>11</output>")?);
    // An event that changes nothing is still answered, without a diff.
    page.event("c1", "step", json!({"value": "1"})).await.map(|reply| assert_eq!(reply.get("d"), None))?;
    Ok(())
}

#[tokio::test]
async fn a_connection_reaches_only_its_own_components() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::COUNTER]).await?;
    let mut ann = Page::mount(&server, "counter", "counter", json!({"count": 0})).await?;
    let mut bob = Page::mount(&server, "counter", "counter", json!({"count": 100})).await?;
    // Both use cid c1: bob's event is bob's.
    bob.click("inc").await?;
    assert!(bob.shows("<output>101</output>")?);
    // A cid bob never mounted is unknown to him, whoever else has one.
    let refused = bob.event("c2", "inc", json!({})).await?;
    assert_eq!((refused["t"].as_str(), refused["code"].as_str()), (Some("err"), Some("unknown")));
    ann.click("inc").await?;
    assert!(ann.shows("<output>1</output>")?, "ann's count is hers: {}", ann.mirror.html()?);
    Ok(())
}

#[tokio::test]
async fn a_page_that_comes_back_with_its_token_resumes_its_component() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::COUNTER]).await?;
    let mut page = Page::mount(&server, "counter", "counter", json!({"count": 10})).await?;
    page.click("inc").await?;
    page.click("inc").await?;
    let token = page.resume.clone().expect("a full render carries a resume token");
    page.client.close().await?;

    let wrong = Page::mount_resuming(&server, "counter", "counter", json!({"count": 10}), Some("not-a-token")).await?;
    assert!(wrong.shows("<output>10</output>")?, "an unknown token mounts afresh");
    let mut back = Page::mount_resuming(&server, "counter", "counter", json!({"count": 10}), Some(&token)).await?;
    assert!(back.shows("<output>12</output>")?, "{}", back.mirror.html()?);
    back.click("inc").await?;
    assert!(back.shows("<output>13</output>")?);
    // A token resumes once.
    let again = Page::mount_resuming(&server, "counter", "counter", json!({"count": 10}), Some(&token)).await?;
    assert!(again.shows("<output>10</output>")?);
    Ok(())
}

#[tokio::test]
async fn a_hot_reload_re_renders_open_pages_with_their_state() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::COUNTER]).await?;
    // The optimised build takes over shortly after start: let it happen first.
    server.wait_for_api("the optimised build", all_optimised).await?;
    let mut page = Page::mount(&server, "counter", "counter", json!({"count": 5})).await?;
    page.click("inc").await?;
    let before = server.plugin_state("counter").await?.map(|plugin| plugin["sha256"].clone());
    std::fs::write(
        server.plugins.path().join("switchboard_plugin_counter.wasm"),
        variant(&std::fs::read(plugins::COUNTER)?, 1),
    )?;
    server
        .wait_for_api("the new version", |api| {
            plugin_in(api, "counter").is_some_and(|plugin| Some(&plugin["sha256"]) != before.as_ref())
        })
        .await?;
    server.wait_for_api("the new version's optimised build", all_optimised).await?;
    // The same socket, the count carried over, and nothing re-sent: the new
    // version renders what the page shows (so does the optimised build).
    let reply = page.click("inc").await?;
    assert_eq!(reply, json!({"t": "diff", "cid": "c1", "ack": 2, "d": {"0": "7"}}));
    assert_eq!(page.fulls, 1, "no full render after the first");
    assert!(page.shows("<output>7</output>")?);
    Ok(())
}

#[tokio::test]
async fn a_trap_closes_only_its_connection_and_the_others_remount() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::LIVE_PROBE]).await?;
    let mut crasher = Page::mount(&server, "live-probe", "live-probe", json!({})).await?;
    let mut other = Page::mount(&server, "live-probe", "live-probe", json!({"count": 40})).await?;
    other.click("inc").await?;
    crasher.client.send_json(&json!({"t": "ev", "cid": "c1", "ref": 9, "n": "crash", "k": "click"})).await?;
    assert_eq!(crasher.client.expect_close().await?.0, 1011);
    // The plugin restarted without its memory: the other page learns that
    // its component is gone when it next speaks, and mounts it again.
    let reply = other.click("inc").await?;
    assert_eq!((reply["t"].as_str(), reply["code"].as_str()), (Some("err"), Some("unknown")));
    let mut again = Page::mount(&server, "live-probe", "live-probe", json!({"count": 40})).await?;
    again.click("inc").await?;
    assert!(again.shows("<output>41</output>")?);
    Ok(())
}

#[tokio::test]
async fn server_ticks_are_batched_to_at_most_one_update_per_16_ms() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::COUNTER]).await?;
    let mut page = Page::mount(&server, "counter", "counter", json!({"count": 0, "tick_ms": 10})).await?;
    let started = Instant::now();
    page.event("c1", "run", json!({"ticks": "100"})).await?;
    let mut updates = 0;
    while !page.shows("<output>100</output>")? {
        let update = page.recv("diff").await?;
        assert_eq!(update.get("ack"), None);
        updates += 1;
    }
    let elapsed = started.elapsed();
    let most = elapsed.as_millis() / 16 + 2;
    assert!(updates <= most, "{updates} updates in {elapsed:?} (at most {most})");
    assert!(updates >= 10, "{updates} updates: the ticks were shown as they came");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_answered_and_the_page_keeps_working() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::COUNTER]).await?;
    let mut page = Page::mount(&server, "counter", "counter", json!({})).await?;
    for (sent, code) in [
        (json!("{oops").as_str().unwrap_or_default().to_owned(), "bad_request"),
        (json!({"t": "dance", "cid": "c1"}).to_string(), "bad_request"),
        (json!({"t": "join", "cid": "c2", "c": "no-such"}).to_string(), "bad_request"),
        (json!({"t": "join", "cid": "x".repeat(33), "c": "counter"}).to_string(), "bad_request"),
    ] {
        page.client.send_text(&sent).await?;
        let answer = page.answer().await?;
        assert_eq!((answer["t"].as_str(), answer["code"].as_str()), (Some("err"), Some(code)), "{sent}: {answer}");
    }
    // The step must be a number: the event fails, the count is untouched.
    let failed = page.event("c1", "step", json!({"value": "lots"})).await?;
    assert_eq!(failed["code"], "failed");
    page.click("inc").await?;
    assert!(page.shows("<output>1</output>")?);
    // A connection mounts at most 32 components.
    for index in 2..=32 {
        page.client.send_json(&json!({"t": "join", "cid": format!("c{index}"), "c": "counter"})).await?;
        while page.recv("full").await?["cid"] != format!("c{index}") {}
    }
    page.client.send_json(&json!({"t": "join", "cid": "c33", "c": "counter"})).await?;
    assert_eq!(page.answer().await?["code"], "bad_request");
    // Live components speak JSON text.
    page.client.send_binary(b"\x00").await?;
    assert_eq!(page.client.expect_close().await?.0, 1003);
    Ok(())
}

#[tokio::test]
async fn a_chat_room_shares_messages_and_presence_and_hears_the_backend() -> anyhow::Result<()> {
    const KEY: &str = "live-backend-key";
    let mut config = Config::default();
    config.api.key = Some(KEY.into());
    let server = TestServer::start_with(&[plugins::CHAT_ROOM], config).await?;
    let mut ann = Page::mount(&server, "chat-room", "chat-room", json!({"room": "lobby", "user": "ann"})).await?;
    let mut bob = Page::mount(&server, "chat-room", "chat-room", json!({"room": "lobby", "user": "bob"})).await?;
    assert!(bob.shows(r#"<span class="count">2</span>"#)?);
    while !ann.shows(r#"<span class="count">2</span>"#)? {
        ann.recv("diff").await?;
    }
    let reference = 1;
    ann.client
        .send_json(
            &json!({"t": "ev", "cid": "c1", "ref": reference, "n": "say", "k": "submit", "f": {"text": "hi <b>"}}),
        )
        .await?;
    ann.recv("diff").await?;
    while !bob.shows("hi &lt;b&gt;")? {
        bob.recv("diff").await?;
    }
    let body = json!({"plugin": "chat-room", "topic": "lobby", "payload": {"text": "from the backend"}}).to_string();
    let length = body.len().to_string();
    let authorization = format!("Bearer {KEY}");
    let headers =
        [("authorization", authorization.as_str()), ("content-type", "application/json"), ("content-length", &length)];
    let (status, _, _) = server.request_with_body("POST", "/api/publish", &headers, &body).await?;
    assert_eq!(status, 200);
    for page in [&mut ann, &mut bob] {
        while !page.shows("from the backend")? {
            page.recv("diff").await?;
        }
    }
    bob.client.close().await?;
    while !ann.shows(r#"<span class="count">1</span>"#)? {
        ann.recv("diff").await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_refused_mount_is_an_error_for_that_component_only() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::LIVE_PROBE]).await?;
    let mut page = Page::mount(&server, "live-probe", "live-probe", json!({})).await?;
    page.client.send_json(&json!({"t": "join", "cid": "c2", "c": "live-probe", "p": {"refuse": true}})).await?;
    let refused = page.answer().await?;
    assert_eq!(
        (refused["cid"].as_str(), refused["code"].as_str(), refused["msg"].as_str()),
        (Some("c2"), Some("refused"), Some("refused on request"))
    );
    tokio::time::timeout(Duration::from_secs(5), page.click("inc")).await??;
    assert!(page.shows("<output>1</output>")?);
    Ok(())
}

#[tokio::test]
async fn a_new_version_renders_open_pages_with_its_code_and_their_state() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::LIVE_PROBE]).await?;
    server.wait_for_api("the optimised build", all_optimised).await?;
    let mut page = Page::mount(&server, "live-probe", "live-probe", json!({"count": 1})).await?;
    page.click("inc").await?;
    assert!(page.shows(r#"data-build="v1""#)?);
    std::fs::write(
        server.plugins.path().join("switchboard_test_plugin_live_probe.wasm"),
        std::fs::read(plugins::LIVE_PROBE_V2)?,
    )?;
    // Only what the new code changed crosses the wire: the build marker.
    let change = page.recv("diff").await?;
    assert_eq!(change.get("p"), None, "no template is new to the page");
    assert!(page.shows(r#"data-build="v2""#)?, "{change}");
    assert_eq!(page.fulls, 1);
    assert!(page.shows("<output>2</output>")?, "the count came over: {}", page.mirror.html()?);
    page.click("inc").await?;
    assert!(page.shows("<output>3</output>")?);
    Ok(())
}

#[tokio::test]
async fn a_resume_token_brings_a_component_back_to_its_own_user_only() -> anyhow::Result<()> {
    const SECRET: &str = "live-test-secret";
    let token = |user: &str| {
        let claims = json!({"sub": user, "exp": 4_000_000_000_u64});
        encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes()))
    };
    let mut config = Config::default();
    config.auth.secret = Some(SECRET.into());
    let server = TestServer::start_with(&[plugins::COUNTER], config).await?;
    let (ann, bob) =
        (format!("/live/counter?token={}", token("ann")?), format!("/live/counter?token={}", token("bob")?));
    let mut page = Page::mount_at(&server, &ann, "counter", json!({"count": 10}), None).await?;
    page.click("inc").await?;
    let resume = page.resume.clone().expect("a full render carries a resume token");
    page.client.close().await?;

    let thief = Page::mount_at(&server, &bob, "counter", json!({"count": 10}), Some(&resume)).await?;
    assert!(thief.shows("<output>10</output>")?, "bob cannot take ann's component: {}", thief.mirror.html()?);
    let back = Page::mount_at(&server, &ann, "counter", json!({"count": 10}), Some(&resume)).await?;
    assert!(back.shows("<output>11</output>")?, "ann still can: {}", back.mirror.html()?);
    Ok(())
}
