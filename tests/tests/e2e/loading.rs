use switchboard_tests::{TestServer, plugin_in, plugins};

#[tokio::test]
async fn invalid_files_are_reported_and_skipped() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    drop(server);
    // Start again with junk beside a good plugin.
    let folder = tempfile::tempdir()?;
    switchboard_tests::copy_plugin(plugins::ECHO, folder.path())?;
    std::fs::write(folder.path().join("garbage.wasm"), b"this is not wasm")?;
    let echo = std::fs::read(plugins::ECHO)?;
    std::fs::write(folder.path().join("truncated.wasm"), &echo[..echo.len() / 2])?;
    std::fs::write(folder.path().join("notes.txt"), b"ignored: not a .wasm file")?;
    let server = start_in(folder.path()).await?;

    let api = server.plugins_api().await?;
    assert_eq!(api["plugins"].as_array().map(Vec::len), Some(1), "{api}");
    assert_eq!(api["plugins"][0]["name"], "echo");
    let errors = api["errors"].as_array().expect("errors is a list");
    assert_eq!(errors.len(), 2, "{api}");
    assert!(errors[0]["file"].as_str().is_some_and(|file| file.ends_with("garbage.wasm")));
    assert!(errors[0]["error"].as_str().is_some_and(|error| error.contains("not a valid WebAssembly component")));
    assert!(errors[1]["file"].as_str().is_some_and(|file| file.ends_with("truncated.wasm")));

    let mut client = server.connect("/echo").await?;
    client.send_text("served").await?;
    assert_eq!(client.recv_text().await?, "served");
    Ok(())
}

#[tokio::test]
async fn a_plugin_added_later_that_claims_a_served_route_is_refused() -> anyhow::Result<()> {
    // At start-up both would be refused (`lifecycle.rs`); later, the one serving keeps its route.
    let server = TestServer::start(&[plugins::ECHO]).await?;
    switchboard_tests::copy_plugin(plugins::RIVAL, server.plugins.path())?;
    let api = server.wait_for_api("the rival's refusal", |api| !api["errors"][0].is_null()).await?;
    let names: Vec<&str> = api["plugins"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["echo"]);
    let error = api["errors"][0]["error"].as_str().unwrap_or_default();
    assert_eq!(error, "route `/echo` is already served by plugin `echo`");
    let mut client = server.connect("/echo").await?;
    client.send_text("mine").await?;
    assert_eq!(client.recv_text().await?, "mine");
    Ok(())
}

#[tokio::test]
async fn the_api_lists_plugins_with_their_routes_and_connections() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT, plugins::ECHO]).await?;
    let mut client = server.connect("/echo").await?;
    // A round trip proves the plugin has registered the connection.
    client.send_text("registered?").await?;
    assert_eq!(client.recv_text().await?, "registered?");
    let api = server.plugins_api().await?;
    let chat = &api["plugins"][0];
    assert_eq!(chat["name"], "chat");
    assert_eq!(chat["routes"], serde_json::json!(["/chat", "/chat/:room_id"]));
    assert_eq!(chat["version"], "0.1.0");
    assert!(chat["file"].as_str().is_some_and(|file| file.ends_with("switchboard_plugin_chat.wasm")));
    assert_eq!(api["plugins"][1]["connections"], 1);
    Ok(())
}

async fn start_in(folder: &std::path::Path) -> anyhow::Result<TestServer> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        files.push(entry?.path().display().to_string());
    }
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    TestServer::start(&files).await
}

#[tokio::test]
async fn compiled_plugins_are_cached_outside_the_plugins_folder() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let config = switchboard::Config { compile_cache: Some(cache.path().to_owned()), ..Default::default() };
    let server = TestServer::start_with(&[plugins::ECHO], config.clone()).await?;
    // Not in the cache yet: a quick build serves until the optimised one is ready.
    server
        .wait_for_api("the optimised build", |api| plugin_in(api, "echo").is_some_and(|echo| echo["optimised"] == true))
        .await?;
    assert!(count_files(cache.path())? > 0, "the compiled echo plugin is in the cache");
    assert_eq!(count_files(server.plugins.path())?, 1, "and not in the plugins folder");
    drop(server);
    // A second server loads the optimised build from the cache straight away.
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    assert_eq!(server.plugin_state("echo").await?.map(|echo| echo["optimised"].clone()), Some(serde_json::json!(true)));
    let mut client = server.connect("/echo").await?;
    client.send_text("cached").await?;
    assert_eq!(client.recv_text().await?, "cached");
    Ok(())
}

fn count_files(folder: &std::path::Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        count += if path.is_dir() { count_files(&path)? } else { 1 };
    }
    Ok(count)
}
