//! What the plugin test kit (`switchboard::testing`) costs a plugin's
//! tests: loading a plugin, and one step, a text message sent to an echo
//! and its echo read back. In this process: the kit has no server.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use switchboard::testing::{Frame, TestChannel};

use crate::scenarios::percentiles;

/// Steps run before measuring, so that the first calls' page faults and
/// allocations are not counted.
const WARM_UP: usize = 200;

/// What the kit cost.
#[derive(Debug)]
pub(crate) struct KitCost {
    /// `TestChannel::load`, median over the loads, in ms. Each is cold:
    /// the kit has no compile cache, every load compiles (with Winch).
    pub(crate) load_ms: f64,
    /// One step, in µs: p50, p99.
    pub(crate) step_us: (f64, f64),
}

/// Load the echo plugin at `file` `loads` times, then time `steps` steps
/// of one client on `route`.
pub(crate) async fn measure(file: &Path, route: &str, loads: usize, steps: usize) -> anyhow::Result<KitCost> {
    let mut load_times = Vec::with_capacity(loads);
    let mut channel = None;
    for _ in 0..loads.max(1) {
        let start = Instant::now();
        let loaded =
            TestChannel::load(file).await.with_context(|| format!("the kit cannot load {}", file.display()))?;
        load_times.push(duration_ns(start.elapsed()));
        // The last one serves the steps.
        channel = Some(loaded);
    }
    let channel = channel.context("no load")?;
    let client = channel.connect(route).await.with_context(|| format!("the kit cannot connect to {route}"))?;
    // Not "ping": the JavaScript echo answers that with a second message.
    let payload = "x".repeat(64);
    let mut step_times = Vec::with_capacity(steps);
    for step in 0..WARM_UP + steps {
        let start = Instant::now();
        client.send(&payload).await;
        let frames = client.frames();
        let took = start.elapsed();
        ensure!(
            frames == [Frame::Text(payload.clone())],
            "step {step}: {route} answered {frames:?}, connection closed: {:?}",
            client.closed()
        );
        if step >= WARM_UP {
            step_times.push(duration_ns(took));
        }
    }
    let loads_ms: Vec<String> = load_times.iter().map(|ns| format!("{:.1}", *ns as f64 / 1e6)).collect();
    eprintln!("kit: {route} loaded in {} ms, then {steps} steps", loads_ms.join(", "));
    // `percentiles` works in ns and answers µs.
    let (load_us, _, _) = percentiles(load_times);
    let (p50, p99, _) = percentiles(step_times);
    Ok(KitCost { load_ms: load_us / 1000.0, step_us: (p50, p99) })
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
