//! `switchboard-bench`: Switchboard against a plain tokio-tungstenite
//! baseline, in one run, on the same machine. Prints one table; the
//! Switchboard / baseline ratios are what we track (see BENCHMARKS.md).
//! The fan-out, echo and idle lines also measure a peer, uWebSockets (the
//! baseline's channels in `bench/uws/server.js`, on Node.js), in the same run.
//! Four comparisons inside Switchboard share the table: the JavaScript echo
//! plugin against the Rust one (`js`), the test kit's costs (`kit`),
//! cluster nodes sharing rooms through Redis against one node (`cluster`),
//! clients speaking permessage-deflate against plain ones (`deflate`), and a
//! live component's event round trip against an echo's (`live`).
//!
//! Run it through `bench/run [--quick]`, which builds everything, raises the
//! open-file limit and pins this client to core 1 (the servers get core 0).
#![allow(clippy::print_stdout, reason = "the table is this program's output")]
#![forbid(unsafe_code)]

mod cluster;
mod compression;
mod kit;
mod live;
mod plugin_cost;
mod redis_server;
mod scenarios;
mod servers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use servers::Server;

/// One line of the table.
struct Row {
    scenario: String,
    metric: &'static str,
    switchboard: f64,
    baseline: Option<f64>,
    /// The uWebSockets peer's figure, where it was measured.
    uws: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let only: Option<String> = std::env::args().skip_while(|arg| arg != "--only").nth(1);
    let wanted = |name: &str| only.as_deref().is_none_or(|only| only == name);
    let subscribers: Option<usize> =
        std::env::args().skip_while(|arg| arg != "--subscribers").nth(1).and_then(|n| n.parse().ok());
    let bench = Bench::locate()?;
    let mut rows = Vec::new();

    if wanted("fanout") {
        let sizes = match (subscribers, quick) {
            (Some(subscribers), _) => vec![(subscribers, 100)],
            (None, true) => vec![(1000, 50)],
            (None, false) => vec![(1000, 100), (10_000, 100)],
        };
        for (subscribers, paced) in sizes {
            // Flat out, a million deliveries: long enough (about a second)
            // for the servers' CPU time, counted in 10 ms ticks, to mean something.
            let flat = if quick { paced } else { (1_000_000 / subscribers).max(paced) };
            let runs = [("paced 100ms", Duration::from_millis(100), paced), ("flat out", Duration::ZERO, flat)];
            for (label, interval, messages) in runs {
                let ours = scenarios::fan_out(&bench.switchboard()?, subscribers, messages, interval).await?;
                let base = scenarios::fan_out(&bench.baseline()?, subscribers, messages, interval).await?;
                let peer =
                    bench.on_uws(async |uws| scenarios::fan_out(uws, subscribers, messages, interval).await).await?;
                let scenario = format!("fan-out {subscribers} subs × {messages}, {label}");
                let metrics: [Metric<scenarios::FanOut>; 6] = [
                    ("deliveries/s", |run| run.deliveries_per_second),
                    ("server CPU µs/delivery", |run| run.cpu_us_per_delivery),
                    ("latency p50 µs", |run| run.latency.0),
                    ("latency p99 µs", |run| run.latency.1),
                    ("latency max µs", |run| run.latency.2),
                    ("setup s", |run| run.setup.as_secs_f64()),
                ];
                three_way(&mut rows, &scenario, &metrics, &ours, &base, peer.as_ref());
            }
        }
    }
    if wanted("echo") {
        let duration = Duration::from_secs(if quick { 1 } else { 3 });
        for clients in [1, 100] {
            let ours = scenarios::echo(&bench.switchboard()?, "/echo", clients, duration).await?;
            let base = scenarios::echo(&bench.baseline()?, "/echo", clients, duration).await?;
            let peer = bench.on_uws(async |uws| scenarios::echo(uws, "/echo", clients, duration).await).await?;
            let scenario = format!("echo, {clients} client(s)");
            let metrics: [Metric<scenarios::Echo>; 4] = [
                ("round trips/s", |run| run.round_trips_per_second),
                ("server CPU µs/message", |run| run.cpu_us_per_message),
                ("latency p50 µs", |run| run.latency.0),
                ("latency p99 µs", |run| run.latency.1),
            ];
            three_way(&mut rows, &scenario, &metrics, &ours, &base, peer.as_ref());
        }
    }
    if wanted("idle") {
        let counts: &[usize] = if quick { &[5000] } else { &[5000, 10_000, 19_000] };
        for &count in counts {
            let ours = scenarios::idle(&bench.switchboard()?, count).await?;
            let base = scenarios::idle(&bench.baseline()?, count).await?;
            let peer = bench.on_uws(async |uws| scenarios::idle(uws, count).await).await?;
            let scenario = format!("idle, {count} connections");
            let metrics: [Metric<(f64, Duration)>; 2] =
                [("server RSS KiB/connection", |(rss, _)| *rss), ("time to open s", |(_, time)| time.as_secs_f64())];
            three_way(&mut rows, &scenario, &metrics, &ours, &base, peer.as_ref());
        }
    }
    if wanted("reload") {
        let server = bench.switchboard()?;
        let reloads = scenarios::reloads(&server, &std::fs::read(&bench.chat)?, 20).await?;
        let series = [
            (reloads.first_reply, "write → new version ms, median", "write → new version ms, max"),
            (reloads.optimised, "write → optimised ms, median", "write → optimised ms, max"),
        ];
        for (mut samples, median, max) in series {
            samples.sort_by(f64::total_cmp);
            for (metric, value) in [(median, samples[samples.len() / 2]), (max, samples[samples.len() - 1])] {
                rows.push(Row {
                    scenario: "reload chat ×20".into(),
                    metric,
                    switchboard: value,
                    baseline: None,
                    uws: None,
                });
            }
        }
        let (cold, warm) = bench.start_up().await?;
        rows.push(Row {
            scenario: "start-up, echo + chat".into(),
            metric: "ms, empty compile cache",
            switchboard: cold,
            baseline: None,
            uws: None,
        });
        rows.push(Row {
            scenario: "start-up, echo + chat".into(),
            metric: "ms, cached",
            switchboard: warm,
            baseline: None,
            uws: None,
        });
    }
    if wanted("js") {
        // The Rust echo is the JavaScript echo's baseline: same server, same load.
        let duration = Duration::from_secs(if quick { 1 } else { 3 });
        let empty = plugin_cost::rss_without_plugins(&bench).await?;
        let rust = plugin_cost::measure(&bench, &bench.echo, "/echo", empty, JS_ECHO_CLIENTS, duration).await?;
        let js = plugin_cost::measure(&bench, bench.echo_js()?, "/echo-js", empty, JS_ECHO_CLIENTS, duration).await?;
        let scenario = "echo-js vs echo (Rust)";
        rows.push(row(scenario, ".wasm KiB", js.size_kib, rust.size_kib));
        rows.push(row(scenario, "compile cold, Winch ms", js.quick_ms, rust.quick_ms));
        rows.push(row(scenario, "cold, Cranelift → serving ms", js.optimised_ms, rust.optimised_ms));
        rows.push(row(scenario, "compile cached ms", js.cached_ms, rust.cached_ms));
        rows.push(row(scenario, "RSS growth MiB, cached start", js.rss_cached_mib, rust.rss_cached_mib));
        rows.push(row(scenario, "RSS growth MiB, after the echo", js.rss_after_echo_mib, rust.rss_after_echo_mib));
        rows.push(row(scenario, "RSS growth MiB, cold start", js.rss_cold_mib, rust.rss_cold_mib));
        let scenario = format!("echo-js vs echo (Rust), {JS_ECHO_CLIENTS} clients");
        let (ours, base) = (js.echo, rust.echo);
        rows.push(row(&scenario, "round trips/s", ours.round_trips_per_second, base.round_trips_per_second));
        rows.push(row(&scenario, "server CPU µs/message", ours.cpu_us_per_message, base.cpu_us_per_message));
        rows.push(row(&scenario, "latency p50 µs", ours.latency.0, base.latency.0));
        rows.push(row(&scenario, "latency p99 µs", ours.latency.1, base.latency.1));
    }
    if wanted("kit") {
        let (loads, steps) = if quick { (3, 2000) } else { (5, 20_000) };
        let rust = kit::measure(&bench.echo, "/echo", loads, steps).await?;
        let js = kit::measure(bench.echo_js()?, "/echo-js", loads, steps).await?;
        let scenario = "kit: echo-js vs echo (Rust)";
        rows.push(row(scenario, "TestChannel::load ms, median", js.load_ms, rust.load_ms));
        rows.push(row(scenario, "step µs, median", js.step_us.0, rust.step_us.0));
        rows.push(row(scenario, "step µs, p99", js.step_us.1, rust.step_us.1));
    }
    if wanted("cluster") {
        let sizes = match (subscribers, quick) {
            (Some(subscribers), _) => vec![subscribers],
            (None, true) => vec![1000],
            (None, false) => vec![1000, 10_000],
        };
        rows.extend(cluster::measure(&bench, &sizes, quick).await?);
    }
    if wanted("deflate") {
        let (subscribers, messages, seconds) = if quick { (1000, 100, 1) } else { (1000, 1000, 3) };
        let duration = Duration::from_secs(seconds);
        let contents = [("chat line", compression::LINE.to_owned()), ("presence list", compression::presence_list())];
        for (what, content) in contents {
            let scenario = format!("deflate vs plain: {what}, {subscribers} subs");
            let deflated = compression::fan_out(&bench.switchboard()?, subscribers, messages, &content, true).await?;
            let plain = compression::fan_out(&bench.switchboard()?, subscribers, messages, &content, false).await?;
            deflate_rows(&mut rows, &scenario, PER_DELIVERY, &deflated, &plain);
            let scenario = format!("deflate vs plain: {what}, echo ×100");
            let deflated = compression::echo(&bench.switchboard()?, 100, duration, &content, true).await?;
            let plain = compression::echo(&bench.switchboard()?, 100, duration, &content, false).await?;
            deflate_rows(&mut rows, &scenario, PER_MESSAGE, &deflated, &plain);
        }
    }
    if wanted("live") {
        let events = if quick { 500 } else { 5000 };
        let server = bench.switchboard_with(&[(&bench.echo, "echo.wasm"), (bench.todo()?, "todo.wasm")], None, None)?;
        scenarios::wait_until_optimised(&server.addr, Instant::now() + Duration::from_secs(60)).await?;
        for list in [300, 10] {
            let run = live::measure(&server, list, events).await?;
            let scenario = format!("live todo, {list} rows (vs whole HTML)");
            rows.push(row(&scenario, "bytes: one-row change frame", run.one_row_frame_bytes, run.html_bytes));
            rows.push(row(&scenario, "bytes: first render (full) frame", run.full_bytes, run.html_bytes));
            let scenario = format!("live event, {list} rows (vs echo)");
            rows.push(row(&scenario, "server CPU µs/round trip", run.event_cpu_us, run.echo_cpu_us));
            rows.push(row(&scenario, "round trips/s, one at a time", run.events_per_second, run.echoes_per_second));
        }
    }
    print_table(&rows);
    Ok(())
}

/// The `deflate` lines, one per metric name (wire bytes, server CPU, rate):
/// compressing clients in the *switchboard* column, plain ones in *baseline*.
fn deflate_rows(
    rows: &mut Vec<Row>,
    scenario: &str,
    [wire, cpu, rate]: [&'static str; 3],
    deflated: &compression::Compressed,
    plain: &compression::Compressed,
) {
    rows.push(row(scenario, wire, deflated.wire_bytes_per_delivery, plain.wire_bytes_per_delivery));
    rows.push(row(scenario, cpu, deflated.cpu_us_per_delivery, plain.cpu_us_per_delivery));
    rows.push(row(scenario, rate, deflated.deliveries_per_second, plain.deliveries_per_second));
}

const PER_DELIVERY: [&str; 3] = ["wire bytes/delivery", "server CPU µs/delivery", "deliveries/s"];
const PER_MESSAGE: [&str; 3] = ["wire bytes/message", "server CPU µs/message", "round trips/s"];

/// Echo clients in the JavaScript / Rust comparison: the busier of the echo
/// scenario's two sizes.
const JS_ECHO_CLIENTS: usize = 100;

fn row(scenario: &str, metric: &'static str, switchboard: f64, baseline: f64) -> Row {
    Row { scenario: scenario.to_owned(), metric, switchboard, baseline: Some(baseline), uws: None }
}

/// A line's metric: its name, and how to read it from a run's figures.
type Metric<T> = (&'static str, fn(&T) -> f64);

/// One line per metric (a name, and how to read it from a run) of a
/// scenario measured on Switchboard, the baseline and, if it ran, the uWS peer.
fn three_way<T>(rows: &mut Vec<Row>, scenario: &str, metrics: &[Metric<T>], ours: &T, base: &T, peer: Option<&T>) {
    for (metric, value) in metrics {
        rows.push(Row { uws: peer.map(value), ..row(scenario, metric, value(ours), value(base)) });
    }
}

fn print_table(rows: &[Row]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    // Counted from /proc: this process is pinned to one core.
    let cores = std::fs::read_to_string("/proc/cpuinfo").map(|info| info.matches("processor\t").count()).unwrap_or(0);
    let pinned = if servers::pinning() { "server on core 0, client on core 1" } else { "not pinned (no taskset)" };
    println!("machine: {cores} cores, {cpu}; {pinned}");
    println!(
        "{:<38} {:<32} {:>12} {:>12} {:>7} {:>12} {:>7}",
        "scenario", "metric", "switchboard", "baseline", "ratio", "uws", "sb/uws"
    );
    // The figure and Switchboard's ratio to it, or dashes.
    let against = |other: Option<f64>, ours: f64| match other {
        Some(other) => (format!("{other:.2}"), format!("{:.2}", ours / other)),
        None => ("-".to_owned(), "-".to_owned()),
    };
    for row in rows {
        let (baseline, ratio) = against(row.baseline, row.switchboard);
        let (uws, uws_ratio) = against(row.uws, row.switchboard);
        println!(
            "{:<38} {:<32} {:>12.2} {:>12} {:>7} {:>12} {:>7}",
            row.scenario, row.metric, row.switchboard, baseline, ratio, uws, uws_ratio
        );
    }
}

/// Where the programs and plugins are.
struct Bench {
    server: PathBuf,
    baseline: PathBuf,
    echo: PathBuf,
    chat: PathBuf,
    /// Built by `scripts/build-js-plugins`; needed only by `js` and `kit`.
    echo_js: PathBuf,
    /// The live todo list; needed only by `live`.
    todo: PathBuf,
    /// The uWebSockets peer, `bench/uws/server.js`, or why it cannot run
    /// (no Node.js, or its package not installed: `npm ci --prefix bench/uws`).
    uws: Result<PathBuf, String>,
}

impl Bench {
    fn locate() -> anyhow::Result<Bench> {
        let bin = std::env::current_exe()?.parent().context("no folder")?.to_owned();
        let root = bin.parent().and_then(Path::parent).context("not in target/release")?.to_owned();
        let plugins = root.join("target/wasm32-wasip2/plugin");
        let bench = Bench {
            server: bin.join("switchboard"),
            baseline: bin.join("baseline"),
            echo: plugins.join("switchboard_plugin_echo.wasm"),
            chat: plugins.join("switchboard_plugin_chat.wasm"),
            echo_js: root.join("plugins/echo-js/dist/echo_js.wasm"),
            todo: plugins.join("switchboard_plugin_todo.wasm"),
            uws: uws_peer(&root.join("bench/uws")),
        };
        for file in [&bench.server, &bench.baseline, &bench.echo, &bench.chat] {
            anyhow::ensure!(file.is_file(), "{} is missing: run bench/run", file.display());
        }
        Ok(bench)
    }

    fn todo(&self) -> anyhow::Result<&Path> {
        anyhow::ensure!(self.todo.is_file(), "{} is missing: run bench/run", self.todo.display());
        Ok(&self.todo)
    }

    fn echo_js(&self) -> anyhow::Result<&Path> {
        let file = &self.echo_js;
        anyhow::ensure!(file.is_file(), "{} is missing: run bench/run (or scripts/build-js-plugins)", file.display());
        Ok(file)
    }

    /// A fresh Switchboard with echo and chat and limits that stay out of the way.
    fn switchboard(&self) -> anyhow::Result<Server> {
        self.switchboard_with(&self.echo_and_chat(), None, None)
    }

    fn echo_and_chat(&self) -> [(&Path, &str); 2] {
        [(&self.echo, "echo.wasm"), (&self.chat, "chat.wasm")]
    }

    /// A fresh Switchboard serving `plugins` (a file, and the name of its
    /// copy in the plugins folder), with limits that stay out of the way;
    /// with a compile cache if given, and a log at level `log` (`RUST_LOG`)
    /// if given, in its folder.
    fn switchboard_with(
        &self,
        plugins: &[(&Path, &str)],
        cache: Option<&Path>,
        log: Option<&str>,
    ) -> anyhow::Result<Server> {
        self.switchboard_in_cluster(plugins, cache, log, None)
    }

    /// A fresh Switchboard with echo and chat, a node of the cluster that
    /// shares the Redis at `redis` (a URL) if given.
    fn node(&self, redis: Option<&str>) -> anyhow::Result<Server> {
        self.switchboard_in_cluster(&self.echo_and_chat(), None, None, redis)
    }

    /// [`Bench::switchboard_with`], sharing the Redis at `redis` if given.
    fn switchboard_in_cluster(
        &self,
        plugins: &[(&Path, &str)],
        cache: Option<&Path>,
        log: Option<&str>,
        redis: Option<&str>,
    ) -> anyhow::Result<Server> {
        let folder = self.scratch("server");
        let folder_of_plugins = folder.join("plugins");
        std::fs::create_dir_all(&folder_of_plugins)?;
        for (file, name) in plugins {
            std::fs::copy(file, folder_of_plugins.join(name))
                .with_context(|| format!("cannot copy {} into {}", file.display(), folder_of_plugins.display()))?;
        }
        let cache = cache.map(|cache| format!("compile_cache = \"{}\"\n", cache.display())).unwrap_or_default();
        let cluster = redis.map(|url| format!("[cluster]\nredis = \"{url}\"\n")).unwrap_or_default();
        let config = format!(
            "listen = \"127.0.0.1:0\"\nplugins = \"{}\"\n{cache}[limits]\nmessages_per_second = 10000000\nmessage_burst = 10000000\nsend_queue = 4096\n{cluster}",
            folder_of_plugins.display()
        );
        std::fs::write(folder.join("switchboard.toml"), config)?;
        let config = folder.join("switchboard.toml").display().to_string();
        let args = ["serve", "--config", &config];
        match log {
            Some(filter) => Server::start_logging(&self.server, &args, folder, filter),
            None => Server::start(&self.server, &args, Some(folder)),
        }
    }

    /// A path for this run's `what` that no other run or call uses.
    fn scratch(&self, what: &str) -> PathBuf {
        std::env::temp_dir().join(format!("switchboard-bench-{what}-{}-{}", std::process::id(), next()))
    }

    fn baseline(&self) -> anyhow::Result<Server> {
        Server::start(&self.baseline, &["127.0.0.1:0"], None)
    }

    /// `run` on a fresh uWebSockets peer (`node bench/uws/server.js`, pinned
    /// like the other servers); `None` if it cannot run here, said once on stderr.
    async fn on_uws<T>(&self, run: impl AsyncFnOnce(&Server) -> anyhow::Result<T>) -> anyhow::Result<Option<T>> {
        let script = match &self.uws {
            Ok(script) => script.display().to_string(),
            Err(why) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| eprintln!("uws: {why}; its column is left out"));
                return Ok(None);
            }
        };
        let server = Server::start(Path::new("node"), &[&script, "127.0.0.1:0"], None)?;
        Ok(Some(run(&server).await?))
    }

    /// Milliseconds from spawning the server to its `listening` line: with an
    /// empty compile cache, then with the cache it filled.
    /// Start-up with an empty compile cache, then again once the first
    /// server has built its optimised code (and so filled the cache).
    async fn start_up(&self) -> anyhow::Result<(f64, f64)> {
        let cache = std::env::temp_dir().join(format!("switchboard-bench-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let mut times = Vec::new();
        for _ in 0..2 {
            let start = Instant::now();
            let server = self.switchboard_with(&self.echo_and_chat(), Some(&cache), None)?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            scenarios::wait_until_optimised(&server.addr, Instant::now() + Duration::from_secs(30)).await?;
            drop(server);
        }
        let _ = std::fs::remove_dir_all(&cache);
        Ok((times[0], times[1]))
    }
}

/// `server.js` in `folder`, if Node.js is on the `PATH` and loads the
/// uWebSockets package installed there (its binaries exist for Node.js 16,
/// 18 and 20 only); else why not.
fn uws_peer(folder: &Path) -> Result<PathBuf, String> {
    let package = folder.join("node_modules/@rjweb/uws");
    if !package.is_dir() {
        return Err(format!("{} is missing (`npm ci --prefix bench/uws`, as bench/run does)", package.display()));
    }
    let output = std::process::Command::new("node")
        .args(["-e", "require(process.argv[1])"])
        .arg(&package)
        .output()
        .map_err(|error| format!("cannot run `node` ({error})"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The error's own line (Node.js prints the source line above it), else the first.
        let mut lines = stderr.lines().map(str::trim).filter(|line| !line.is_empty());
        let why =
            lines.clone().find(|line| line.contains("Error")).or_else(|| lines.next()).unwrap_or("no reason given");
        return Err(format!("`node` cannot load {}: {why}", package.display()));
    }
    Ok(folder.join("server.js"))
}

fn next() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
