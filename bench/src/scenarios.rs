//! The loads: fan-out in a chat room (on one server or spread over cluster
//! nodes), echo round trips, idle connections, and (Switchboard only) hot
//! reloads. Each returns figures for the table.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use futures_util::stream::{self, SplitSink};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::servers::Server;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 200;
/// Longest any phase may take before the bench gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

pub(crate) async fn connect(addr: &str, path: &str) -> anyhow::Result<Socket> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await?;
    Ok(socket)
}

/// Open `count` connections to `path`, [`CONNECT_CONCURRENCY`] at a time.
async fn connect_many(addr: &str, path: &str, count: usize) -> anyhow::Result<Vec<Socket>> {
    let sockets = connect_all(vec![(0, addr); count], path).await?;
    Ok(sockets.into_iter().map(|(_, socket)| socket).collect())
}

/// Open one connection to `path` for each (tag, address) of `targets`,
/// [`CONNECT_CONCURRENCY`] at a time; in any order, each with its tag.
async fn connect_all(targets: Vec<(usize, &str)>, path: &str) -> anyhow::Result<Vec<(usize, Socket)>> {
    stream::iter(targets)
        .map(|(tag, addr)| async move { anyhow::Ok((tag, connect(addr, path).await?)) })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Latency figures in microseconds: p50, p99, max.
pub(crate) fn percentiles(mut samples: Vec<u64>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

/// What one fan-out run measured.
#[derive(Debug)]
pub(crate) struct FanOut {
    pub(crate) deliveries_per_second: f64,
    pub(crate) cpu_us_per_delivery: f64,
    /// publish → receive, µs.
    pub(crate) latency: (f64, f64, f64),
    /// The same, of the subscribers of each node (zeros for a node without).
    pub(crate) latency_by_node: Vec<(f64, f64, f64)>,
    pub(crate) setup: Duration,
}

/// How the publisher spaces its messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// As fast as it can.
    FlatOut,
    /// A pause after each message: how the paced fan-out lines have always
    /// been measured (the period is the pause plus the time to send).
    Pause(Duration),
    /// One message every period, on a fixed schedule: the rate holds
    /// whatever sending costs (a 1 ms pause would send far fewer than 1000/s).
    Every(Duration),
}

/// `subscribers` in one chat room, one publisher sending `messages`, one
/// every `interval` (zero: as fast as it can). Every subscriber must get
/// every message, in order.
pub(crate) async fn fan_out(
    server: &Server,
    subscribers: usize,
    messages: usize,
    interval: Duration,
) -> anyhow::Result<FanOut> {
    let pace = if interval.is_zero() { Pace::FlatOut } else { Pace::Pause(interval) };
    let mut room = Room::fill(&[server], &[subscribers], messages).await?;
    room.publish(messages, pace, &|| server.cpu_seconds()).await
}

/// The room every fan-out uses.
const ROOM_PATH: &str = "/chat/bench";
/// The content of the message that node `N`'s helper sends once every
/// subscriber has joined: `quiet:N`.
const QUIET: &str = "quiet:";
/// How long to wait for every subscriber to hear every helper before they
/// all speak again.
const QUIET_RESEND: Duration = Duration::from_secs(1);

/// One subscriber's task: its messages' latencies, in ns, and its socket,
/// kept open.
type Reader = tokio::task::JoinHandle<anyhow::Result<(Vec<u64>, Socket)>>;

/// A chat room spread over one or more server processes (cluster nodes
/// sharing it through Redis, or one server), filled and quiet: ready for
/// its publisher.
///
/// Joins announce the room's size to the room (up to the chat's loud-room
/// limit of 1000 members of a node, then to the newcomer only), and in a
/// cluster each node's announcements reach every node. So that measuring
/// starts in a quiet room, every node has a helper in the room, which, once
/// every subscriber has joined, sends a `quiet:N` message; it reaches each
/// member after everything its node published before (a node's callbacks
/// run one at a time, its messages cross Redis in order on one connection).
/// When every subscriber has heard every helper, the room is quiet.
///
/// Everyone stays connected until the room is dropped: a subscriber leaving
/// as soon as it has its messages would have the servers handle its close
/// (and announce the room's new size) while the others are still measured.
pub(crate) struct Room {
    /// Each subscriber's node, and its task.
    readers: Vec<(usize, Reader)>,
    /// The subscribers' sockets once they are done reading.
    finished: Vec<Socket>,
    /// The first node's helper, which publishes; each helper's frames are drained.
    publisher: SplitSink<Socket, Message>,
    /// The other nodes' helpers, kept open: a helper leaving would announce
    /// the room's size during the measurement.
    _heralds: Vec<SplitSink<Socket, Message>>,
    nodes: usize,
    subscribers: usize,
    setup: Duration,
}

impl Room {
    /// Open `subscribers[i]` subscribers on `nodes[i]`, which will read
    /// `messages` messages each, and one helper per node; wait until the
    /// room is quiet.
    pub(crate) async fn fill(nodes: &[&Server], subscribers: &[usize], messages: usize) -> anyhow::Result<Room> {
        let started = Instant::now();
        // Round robin over the nodes, so that every node's part of the room
        // grows at the same pace (and each announcement reaches fewer members).
        let most = subscribers.iter().copied().max().unwrap_or(0);
        let targets: Vec<(usize, &str)> = (0..most)
            .flat_map(|round| nodes.iter().zip(subscribers).enumerate().filter(move |(_, (_, count))| round < **count))
            .map(|(index, (node, _))| (index, node.addr.as_str()))
            .collect();
        let total = targets.len();
        let sockets = connect_all(targets, ROOM_PATH).await?;
        let (joined, mut all_joined) = tokio::sync::mpsc::channel(total.max(1));
        let (quiet, mut all_quiet) = tokio::sync::mpsc::channel(total.max(1));
        let readers: Vec<_> = sockets
            .into_iter()
            .map(|(node, socket)| {
                (node, tokio::spawn(receive(socket, messages, nodes.len(), joined.clone(), quiet.clone())))
            })
            .collect();
        drop((joined, quiet));
        let helpers = tokio::time::timeout(PHASE_TIMEOUT, async {
            let mut helpers = Vec::new();
            for node in nodes {
                let mut helper = connect(&node.addr, ROOM_PATH).await?;
                // Its own join announced (to itself at least): it is in.
                while !helper.next().await.context("a helper disconnected")??.to_text().is_ok_and(is_users) {}
                let (sink, mut own) = helper.split();
                tokio::spawn(async move { while let Some(Ok(_)) = own.next().await {} });
                helpers.push(sink);
            }
            for _ in 0..total {
                all_joined.recv().await.context("a subscriber failed during setup")?;
            }
            // A node subscribes to the room on Redis just after its first
            // member joins, so a first `quiet` may be lost to it: said again
            // until everyone has heard them all.
            let mut heard = 0;
            while heard < total {
                for (node, helper) in helpers.iter_mut().enumerate() {
                    helper.send(chat_message(&format!("{QUIET}{node}"))).await?;
                }
                let resend = Instant::now() + QUIET_RESEND;
                while heard < total {
                    match tokio::time::timeout_at(resend.into(), all_quiet.recv()).await {
                        Ok(Some(())) => heard += 1,
                        Ok(None) => anyhow::bail!("a subscriber failed during setup"),
                        Err(_) => break,
                    }
                }
            }
            anyhow::Ok(helpers)
        })
        .await
        .context("setup timed out")??;
        let setup = started.elapsed();
        eprintln!("fan-out: {total} subscribers on {} node(s) after {setup:.1?}, publishing {messages}", nodes.len());
        let mut helpers = helpers.into_iter();
        let publisher = helpers.next().context("no node")?;
        let heralds = helpers.collect();
        Ok(Room {
            readers,
            finished: Vec::new(),
            publisher,
            _heralds: heralds,
            nodes: nodes.len(),
            subscribers: total,
            setup,
        })
    }

    /// Publish `messages` from the first node at `pace` and wait until
    /// every subscriber got every one; `cpu` is the servers' CPU time so far
    /// (every process that serves the room), in seconds. Once per room.
    pub(crate) async fn publish(
        &mut self,
        messages: usize,
        pace: Pace,
        cpu: &dyn Fn() -> anyhow::Result<f64>,
    ) -> anyhow::Result<FanOut> {
        let cpu_before = cpu()?;
        let start = Instant::now();
        for i in 0..messages {
            if let Pace::Every(period) = pace {
                let due = start + period.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                tokio::time::sleep_until(due.into()).await;
            }
            self.publisher.send(chat_message(&format!("{i}:{}", now_ns()))).await?;
            if let Pace::Pause(pause) = pace {
                tokio::time::sleep(pause).await;
            }
        }
        let mut by_node = vec![Vec::new(); self.nodes];
        let (nodes, readers): (Vec<usize>, Vec<Reader>) = std::mem::take(&mut self.readers).into_iter().unzip();
        let received = tokio::time::timeout(PHASE_TIMEOUT, futures_util::future::join_all(readers))
            .await
            .context("delivery timed out")?;
        for (node, reader) in nodes.into_iter().zip(received) {
            let (latencies, socket) = reader??;
            by_node[node].extend(latencies);
            self.finished.push(socket);
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu()? - cpu_before;
        let deliveries = (self.subscribers * messages) as f64;
        Ok(FanOut {
            deliveries_per_second: deliveries / elapsed,
            cpu_us_per_delivery: cpu * 1e6 / deliveries,
            latency: percentiles(by_node.concat()),
            latency_by_node: by_node.into_iter().map(percentiles).collect(),
            setup: self.setup,
        })
    }
}

fn chat_message(content: &str) -> Message {
    Message::text(serde_json::json!({"type": "message", "user": "bench", "content": content}).to_string())
}

fn is_users(text: &str) -> bool {
    text.contains("\"type\":\"users\"")
}

/// The node of a `quiet:N` chat message.
fn quiet_from(text: &str) -> Option<usize> {
    if !text.contains(QUIET) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value["content"].as_str()?.strip_prefix(QUIET)?.parse().ok()
}

/// Say on `joined` once in the room (a room size came), and on `quiet`
/// once each of the `nodes` helpers was heard; then read until `messages`
/// chat messages arrived, checking their order; returns their latencies in
/// ns, and the socket (still open). Other frames are skipped without parsing.
async fn receive(
    mut socket: Socket,
    messages: usize,
    nodes: usize,
    joined: tokio::sync::mpsc::Sender<()>,
    quiet: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<(Vec<u64>, Socket)> {
    let mut member = false;
    let mut heard = vec![false; nodes];
    while heard.contains(&false) {
        let frame = socket.next().await.context("subscriber disconnected during setup")??;
        let Ok(text) = frame.to_text() else { continue };
        if !member && is_users(text) {
            member = true;
            joined.send(()).await?;
        } else if let Some(node) = quiet_from(text) {
            *heard.get_mut(node).context("a quiet message from no node")? = true;
        }
    }
    quiet.send(()).await?;
    let mut latencies = Vec::with_capacity(messages);
    while latencies.len() < messages {
        let frame = socket.next().await.context("subscriber disconnected")??;
        let Ok(text) = frame.to_text() else { continue };
        if !text.contains("\"type\":\"message\"") {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(text)?;
        let content = value["content"].as_str().context("no content")?;
        if content.starts_with(QUIET) {
            continue; // said again while others had not heard it yet
        }
        let (index, sent) = content.split_once(':').context("odd content")?;
        ensure!(index.parse::<usize>()? == latencies.len(), "out of order: got {index}, expected {}", latencies.len());
        latencies.push(u64::try_from(now_ns().saturating_sub(sent.parse()?)).unwrap_or(u64::MAX));
    }
    Ok((latencies, socket))
}

/// What one echo run measured.
#[derive(Debug)]
pub(crate) struct Echo {
    pub(crate) round_trips_per_second: f64,
    pub(crate) cpu_us_per_message: f64,
    pub(crate) latency: (f64, f64, f64),
}

/// `clients` doing request/response round trips on `route` (an echo) for `duration`.
pub(crate) async fn echo(server: &Server, route: &str, clients: usize, duration: Duration) -> anyhow::Result<Echo> {
    let mut sockets = Vec::new();
    for _ in 0..clients {
        sockets.push(connect(&server.addr, route).await?);
    }
    eprintln!("echo: {clients} client(s) on {route}, round trips for {duration:?}");
    let cpu = server.cpu_seconds()?;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut rtts = Vec::new();
                let payload = Message::text("x".repeat(64));
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    socket.send(payload.clone()).await?;
                    loop {
                        match socket.next().await.context("echo connection closed")?? {
                            Message::Text(_) => break,
                            _ => continue,
                        }
                    }
                    rtts.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
                }
                anyhow::Ok(rtts)
            })
        })
        .collect();
    let mut rtts = Vec::new();
    for task in tasks {
        rtts.extend(task.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds()? - cpu;
    let count = rtts.len() as f64;
    Ok(Echo {
        round_trips_per_second: count / elapsed,
        cpu_us_per_message: cpu * 1e6 / count,
        latency: percentiles(rtts),
    })
}

/// Open `count` idle connections to `/echo`: KiB of server RSS per
/// connection, and how long opening them took.
pub(crate) async fn idle(server: &Server, count: usize) -> anyhow::Result<(f64, Duration)> {
    let before = server.rss_kib()?;
    let start = Instant::now();
    let sockets = connect_many(&server.addr, "/echo", count).await?;
    let opened = start.elapsed();
    // Let the server's tasks settle before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib()?;
    drop(sockets);
    Ok((after.saturating_sub(before) as f64 / count as f64, opened))
}

/// Reload the chat plugin `times` times (same behaviour, new bytes): the
/// times from writing the file to a reply from the new version and to its
/// optimised build serving.
pub(crate) async fn reloads(server: &Server, chat: &[u8], times: u32) -> anyhow::Result<Reloads> {
    let folder = server.folder.as_ref().context("no plugins folder")?;
    let mut client = connect(&server.addr, "/chat/reload").await?;
    let mut samples = Reloads::default();
    // Bytes never seen before (by any run's compile cache), as after a rebuild.
    let seed = std::process::id().wrapping_mul(1000);
    for marker in 0..times {
        let bytes = variant(chat, seed.wrapping_add(marker));
        let sha = sha256_hex(&bytes);
        let start = Instant::now();
        std::fs::write(folder.join("plugins").join("chat.wasm"), &bytes)?;
        let deadline = start + Duration::from_secs(10);
        loop {
            let api = plugins_api(&server.addr).await?;
            if api.contains(&sha) {
                break;
            }
            ensure!(Instant::now() < deadline, "reload {marker} did not happen: {api}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        client.send(Message::text(r#"{"type":"ping"}"#)).await?;
        while !client.next().await.context("closed during reload")??.to_text().is_ok_and(|text| text.contains("pong")) {
        }
        samples.first_reply.push(start.elapsed().as_secs_f64() * 1000.0);
        // The quick build serves first; wait for the optimised one, so that
        // the next reload starts on an idle server.
        wait_until_optimised(&server.addr, deadline).await?;
        samples.optimised.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(samples)
}

/// What the reloads measured, in ms from the file's write.
#[derive(Debug, Default)]
pub(crate) struct Reloads {
    /// To the first reply from the new version.
    pub(crate) first_reply: Vec<f64>,
    /// To its optimised build serving.
    pub(crate) optimised: Vec<f64>,
}

/// Wait until every plugin of the server at `addr` runs its optimised build.
pub(crate) async fn wait_until_optimised(addr: &str, deadline: Instant) -> anyhow::Result<()> {
    while plugins_api(addr).await?.contains("\"optimised\":false") {
        ensure!(Instant::now() < deadline, "the optimised builds did not arrive");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

async fn plugins_api(addr: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"GET /api/plugins HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The component with a custom section appended: same behaviour, new hash.
fn variant(wasm: &[u8], marker: u32) -> Vec<u8> {
    let name = b"bench";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&marker.to_le_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(section.len() as u8); // < 128: one LEB128 byte
    out.extend_from_slice(&section);
    out
}
