//! What one plugin costs the server, measured the same way for any plugin
//! (the JavaScript echo against the Rust one): its file's size, compiling it
//! cold (the quick Winch build, then the optimised Cranelift one) and from
//! a warm compile cache, the memory it adds to the server, and echo round
//! trips through it. Each plugin gets servers of its own that serve nothing
//! else.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::Bench;
use crate::scenarios::{self, Echo};
use crate::servers::{Server, elapsed_ms};

/// The server's log: warnings, and the registry's lines about compiling.
const LOG_FILTER: &str = "warn,switchboard::loading::registry=debug";
/// The JavaScript echo (12 MB) takes about 25 s to build optimised on one core.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the server may take to write a line about what it just did.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);
/// Let the server's tasks settle before reading its memory, as `idle` does.
const SETTLE: Duration = Duration::from_millis(500);

/// What one plugin cost.
#[derive(Debug)]
pub(crate) struct PluginCost {
    pub(crate) size_kib: f64,
    /// Cold: the quick (Winch) build, read and hashed, in ms.
    pub(crate) quick_ms: f64,
    /// Cold: from starting the optimised (Cranelift) build to it serving, in ms.
    pub(crate) optimised_ms: f64,
    /// Second start: the optimised build loaded from the compile cache, in ms.
    pub(crate) cached_ms: f64,
    /// Server RSS beyond a server with no plugin, in MiB: after a start
    /// from the cache and one echo, after the echo runs (the plugin's
    /// heap grown), and after the cold start and one echo (with what the
    /// allocator kept of the compilers' memory).
    pub(crate) rss_cached_mib: f64,
    pub(crate) rss_after_echo_mib: f64,
    pub(crate) rss_cold_mib: f64,
    /// `clients` echo clients on the server started from the cache.
    pub(crate) echo: Echo,
}

/// Measure the plugin at `file` (serving `route`, an echo); `empty_kib`
/// is the RSS of a server without plugins ([`rss_without_plugins`]).
pub(crate) async fn measure(
    bench: &Bench,
    file: &Path,
    route: &str,
    empty_kib: u64,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<PluginCost> {
    let size = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    let cache = bench.scratch("cache");
    let plugins = [(file, "plugin.wasm")];

    let cold = bench.switchboard_with(&plugins, Some(&cache), Some(LOG_FILTER))?;
    let quick_ms = elapsed_ms(&cold.wait_for_log(&["plugin compiled", "tier=Quick"], LOG_TIMEOUT).await?)?;
    scenarios::wait_until_optimised(&cold.addr, Instant::now() + COMPILE_TIMEOUT).await?;
    let optimised_ms = elapsed_ms(&cold.wait_for_log(&["optimised build serving"], LOG_TIMEOUT).await?)?;
    let rss_cold_kib = rss_after_one_round_trip(&cold, route).await?;
    drop(cold);
    eprintln!("plugin cost: {route} compiled cold, Winch {quick_ms:.0} ms, Cranelift {optimised_ms:.0} ms");

    let warm = bench.switchboard_with(&plugins, Some(&cache), Some(LOG_FILTER))?;
    let cached_ms = elapsed_ms(&warm.wait_for_log(&["plugin compiled", "tier=Optimised"], LOG_TIMEOUT).await?)?;
    let rss_cached_kib = rss_after_one_round_trip(&warm, route).await?;
    let echo = scenarios::echo(&warm, route, clients, duration).await?;
    tokio::time::sleep(SETTLE).await;
    let rss_after_echo_kib = warm.rss_kib()?;
    drop(warm);
    let _ = std::fs::remove_dir_all(&cache);

    let growth_mib = |kib: u64| kib.saturating_sub(empty_kib) as f64 / 1024.0;
    Ok(PluginCost {
        size_kib: size as f64 / 1024.0,
        quick_ms,
        optimised_ms,
        cached_ms,
        rss_cached_mib: growth_mib(rss_cached_kib),
        rss_after_echo_mib: growth_mib(rss_after_echo_kib),
        rss_cold_mib: growth_mib(rss_cold_kib),
        echo,
    })
}

/// The RSS, in KiB, of a server with an empty plugins folder (and a
/// compile cache, as the servers of [`measure`] have), once settled.
pub(crate) async fn rss_without_plugins(bench: &Bench) -> anyhow::Result<u64> {
    let cache = bench.scratch("cache");
    let server = bench.switchboard_with(&[], Some(&cache), None)?;
    tokio::time::sleep(SETTLE).await;
    let rss = server.rss_kib();
    drop(server);
    let _ = std::fs::remove_dir_all(&cache);
    rss
}

/// The server's RSS in KiB once a client has had one echo on `route` and
/// left: the plugin's instance (one per plugin, made at load) has run.
async fn rss_after_one_round_trip(server: &Server, route: &str) -> anyhow::Result<u64> {
    let mut socket = scenarios::connect(&server.addr, route).await?;
    // Not "ping": the JavaScript echo answers that with a second message.
    let payload = "x".repeat(64);
    socket.send(Message::text(payload.clone())).await?;
    loop {
        match socket.next().await.context("echo connection closed")?? {
            Message::Text(text) => {
                ensure!(text.as_str() == payload, "{route} answered {text:?}");
                break;
            }
            _ => continue,
        }
    }
    socket.close(None).await?;
    tokio::time::sleep(SETTLE).await;
    server.rss_kib()
}
