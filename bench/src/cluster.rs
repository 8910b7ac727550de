//! The cluster scenario: Switchboard nodes sharing a chat room through one
//! Redis (`[cluster] redis`), against one node. Three layouts, each on fresh
//! processes and a fresh Redis: one node alone (no Redis), one node with
//! Redis (what clustering costs a node), two nodes sharing a Redis (the
//! room split between them; the publisher on the first). All of them run on
//! the servers' core, Redis too, so that every layout gets the same CPU.
//!
//! - Fan-out, flat out, to the same subscribers in each layout: deliveries/s,
//!   the CPU time of every node and of Redis per delivery, and the commands
//!   Redis ran per publish (from `INFO commandstats`).
//! - Latency at a steady [`LATENCY_PERIOD`] rate to a few receivers, on the
//!   second node in the two-node layout, so that every message crosses Redis.
//!   Then, because a p99 of a few milliseconds moves by as much from one
//!   run to the next on a shared machine, receivers on both nodes at once:
//!   the same messages in the same seconds, with and without the hop.

use std::time::{Duration, Instant};

use crate::redis_server::{Calls, RedisServer};
use crate::scenarios::{self, FanOut, Pace, Room};
use crate::servers::Server;
use crate::{Bench, Row, row};

/// One publish a millisecond: 1,000 publishes/s.
const LATENCY_PERIOD: Duration = Duration::from_millis(1);
/// Receivers of the latency run: few, so that it measures the hop between
/// nodes rather than a fan-out's queues (10,000 deliveries/s in all).
const LATENCY_RECEIVERS: usize = 10;
/// Longest a node may take to serve its optimised build after starting.
const OPTIMISED_TIMEOUT: Duration = Duration::from_secs(60);

/// How many nodes, and whether they share a Redis.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// One node, no Redis: what Switchboard was before clustering.
    Alone,
    /// One node with Redis: it publishes each message to Redis too.
    OneNode,
    /// Two nodes sharing a Redis.
    TwoNodes,
}

/// The table's cluster lines for fan-outs to each of `sizes` subscribers,
/// and for the latency across nodes.
pub(crate) async fn measure(bench: &Bench, sizes: &[usize], quick: bool) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &subscribers in sizes {
        // A million deliveries (about a second), as the fan-out's flat-out lines.
        let messages = if quick { 200 } else { (1_000_000 / subscribers).max(100) };
        let half = subscribers / 2;
        let alone = run(bench, Layout::Alone, &[subscribers], messages, Pace::FlatOut).await?;
        let one = run(bench, Layout::OneNode, &[subscribers], messages, Pace::FlatOut).await?;
        let two = run(bench, Layout::TwoNodes, &[half, subscribers - half], messages, Pace::FlatOut).await?;

        let scenario = format!("cluster {subscribers} subs, 1 node, Redis/none");
        fan_out_rows(&mut rows, &scenario, &one.fan_out, &alone.fan_out);
        let scenario = format!("cluster {subscribers} subs, 2 nodes / 1 node");
        fan_out_rows(&mut rows, &scenario, &two.fan_out, &one.fan_out);
        redis_rows(&mut rows, &scenario, &two, &one);
    }

    let publishes = if quick { 1000 } else { 5000 };
    let receivers = LATENCY_RECEIVERS;
    let paced = Pace::Every(LATENCY_PERIOD);
    let alone = run(bench, Layout::Alone, &[receivers], publishes, paced).await?;
    let one = run(bench, Layout::OneNode, &[receivers], publishes, paced).await?;
    let two = run(bench, Layout::TwoNodes, &[0, receivers], publishes, paced).await?;
    let both = run(bench, Layout::TwoNodes, &[receivers, receivers], publishes, paced).await?;
    let (on_a, on_b) = match both.fan_out.latency_by_node[..] {
        [on_a, on_b] => (on_a, on_b),
        _ => anyhow::bail!("two nodes, not {}", both.fan_out.latency_by_node.len()),
    };
    latency_rows(&mut rows, "cluster 1000 pub/s, 1 node, Redis/none", one.fan_out.latency, alone.fan_out.latency);
    let scenario = "cluster 1000 pub/s, A → B / 1 node";
    latency_rows(&mut rows, scenario, two.fan_out.latency, one.fan_out.latency);
    rows.push(hop(scenario, two.fan_out.latency, one.fan_out.latency));
    redis_rows(&mut rows, scenario, &two, &one);
    let scenario = "cluster 1000 pub/s, same run, B / A";
    latency_rows(&mut rows, scenario, on_b, on_a);
    rows.push(hop(scenario, on_b, on_a));
    Ok(rows)
}

/// Latency lines: p50, p99, max (µs).
fn latency_rows(rows: &mut Vec<Row>, scenario: &str, ours: (f64, f64, f64), base: (f64, f64, f64)) {
    rows.push(row(scenario, "latency p50 µs", ours.0, base.0));
    rows.push(row(scenario, "latency p99 µs", ours.1, base.1));
    rows.push(row(scenario, "latency max µs", ours.2, base.2));
}

/// What crossing Redis adds to the p99, in µs.
fn hop(scenario: &str, across: (f64, f64, f64), local: (f64, f64, f64)) -> Row {
    Row {
        scenario: scenario.into(),
        metric: "p99 added by the hop µs",
        switchboard: across.1 - local.1,
        baseline: None,
        uws: None,
    }
}

fn fan_out_rows(rows: &mut Vec<Row>, scenario: &str, ours: &FanOut, base: &FanOut) {
    rows.push(row(scenario, "deliveries/s", ours.deliveries_per_second, base.deliveries_per_second));
    rows.push(row(scenario, "nodes+Redis CPU µs/delivery", ours.cpu_us_per_delivery, base.cpu_us_per_delivery));
    rows.push(row(scenario, "latency p50 µs", ours.latency.0, base.latency.0));
    rows.push(row(scenario, "latency p99 µs", ours.latency.1, base.latency.1));
}

fn redis_rows(rows: &mut Vec<Row>, scenario: &str, ours: &Measured, base: &Measured) {
    let (Some(ours), Some(base)) = (ours.redis, base.redis) else { return };
    rows.push(row(scenario, "Redis commands/publish", ours.commands, base.commands));
    rows.push(row(scenario, "Redis PUBLISH/publish", ours.publishes, base.publishes));
}

/// What one layout measured.
#[derive(Debug)]
struct Measured {
    fan_out: FanOut,
    /// Without Redis, none.
    redis: Option<PerPublish>,
}

/// What Redis ran while the messages were published, per message.
#[derive(Debug, Clone, Copy)]
struct PerPublish {
    /// Every command (but the bench's own `INFO`s).
    commands: f64,
    publishes: f64,
}

/// Start `layout` on fresh processes, put `subscribers[i]` subscribers on
/// node `i`, publish `messages` at `pace` from the first node; stop it all.
async fn run(
    bench: &Bench,
    layout: Layout,
    subscribers: &[usize],
    messages: usize,
    pace: Pace,
) -> anyhow::Result<Measured> {
    let redis = match layout {
        Layout::Alone => None,
        Layout::OneNode | Layout::TwoNodes => Some(RedisServer::start().await?),
    };
    let count = if let Layout::TwoNodes = layout { 2 } else { 1 };
    let url = redis.as_ref().map(RedisServer::url);
    let nodes = (0..count).map(|_| bench.node(url.as_deref())).collect::<anyhow::Result<Vec<_>>>()?;
    // Started without a compile cache: the optimised build must be serving
    // (and the compilers idle) before anything is measured.
    for node in &nodes {
        scenarios::wait_until_optimised(&node.addr, Instant::now() + OPTIMISED_TIMEOUT).await?;
    }
    eprintln!("cluster: {layout:?}, {subscribers:?} subscribers");
    let addresses: Vec<&Server> = nodes.iter().collect();
    let mut room = Room::fill(&addresses, subscribers, messages).await?;
    let before = match &redis {
        Some(redis) => Some(settled_calls(redis).await?),
        None => None,
    };
    let cpu = || {
        let nodes: f64 = nodes.iter().map(Server::cpu_seconds).sum::<anyhow::Result<f64>>()?;
        Ok(nodes + redis.as_ref().map_or(Ok(0.0), RedisServer::cpu_seconds)?)
    };
    let fan_out = room.publish(messages, pace, &cpu).await?;
    let redis = match (&redis, before) {
        (Some(redis), Some(before)) => {
            let after = settled_calls(redis).await?;
            let per_publish = |calls: u64| calls as f64 / messages as f64;
            Some(PerPublish {
                commands: per_publish(after.all_since(&before)),
                publishes: per_publish(after.of_since("publish", &before)),
            })
        }
        _ => None,
    };
    // Only now, the figures read: everyone leaves, the servers stop.
    drop(room);
    Ok(Measured { fan_out, redis })
}

/// Redis's counts once they stop moving: a lone node delivers to its own
/// members before its `PUBLISH`es reach Redis, so the last may still be on
/// their way when every subscriber has its messages (or the room is quiet).
async fn settled_calls(redis: &RedisServer) -> anyhow::Result<Calls> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = redis.calls().await?;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = redis.calls().await?;
        if now.all_since(&last) == 0 || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}
