//! The loads: fan-out in a chat room, echo round trips, idle connections,
//! and (Switchboard only) hot reloads. Each returns figures for the table.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use futures_util::stream;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::servers::Server;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The chat's loud-room limit: larger rooms tell only a newcomer their size.
const LOUD_ROOM_LIMIT: usize = 1000;
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
    stream::iter(0..count)
        .map(|_| connect(addr, path))
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
    pub(crate) setup: Duration,
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
    let started = Instant::now();
    let sockets = connect_many(&server.addr, "/chat/bench", subscribers).await?;
    // Joins announce the room's size to the room (up to the chat's loud-room
    // limit of 1000, then to the newcomer only): each reader says when it
    // has seen the last such count it will get, so that the measurement
    // starts in a quiet room.
    let last_broadcast = (subscribers + 1).min(LOUD_ROOM_LIMIT);
    let (quiet, mut settled) = tokio::sync::mpsc::channel(subscribers);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(receive(socket, messages, last_broadcast, quiet.clone())))
        .collect();
    let everyone = format!("\"count\":{}", subscribers + 1);
    drop(quiet);
    let mut publisher = connect(&server.addr, "/chat/bench").await?;
    tokio::time::timeout(PHASE_TIMEOUT, async {
        loop {
            let frame = publisher.next().await.context("publisher disconnected during setup")??;
            if frame.to_text().is_ok_and(|text| text.contains(&everyone)) {
                break;
            }
        }
        for _ in 0..subscribers {
            settled.recv().await.context("a subscriber failed during setup")?;
        }
        anyhow::Ok(())
    })
    .await
    .context("setup timed out")??;
    let setup = started.elapsed();
    eprintln!("fan-out: {subscribers} subscribers in the room after {setup:.1?}, publishing {messages}");
    let (mut sink, mut own) = publisher.split();
    tokio::spawn(async move { while let Some(Ok(_)) = own.next().await {} });

    let cpu = server.cpu_seconds()?;
    let start = Instant::now();
    for i in 0..messages {
        let content = format!("{i}:{}", now_ns());
        let message = serde_json::json!({"type": "message", "user": "bench", "content": content});
        sink.send(Message::text(message.to_string())).await?;
        if !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
    }
    let mut latencies = Vec::with_capacity(subscribers * messages);
    let received = tokio::time::timeout(PHASE_TIMEOUT, futures_util::future::join_all(readers))
        .await
        .context("delivery timed out")?;
    for reader in received {
        latencies.extend(reader??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds()? - cpu;
    let deliveries = (subscribers * messages) as f64;
    Ok(FanOut {
        deliveries_per_second: deliveries / elapsed,
        cpu_us_per_delivery: cpu * 1e6 / deliveries,
        latency: percentiles(latencies),
        setup,
    })
}

/// Say on `quiet` once a room size of at least `last_broadcast` came, then
/// read until `messages` chat messages arrived, checking their order;
/// returns their latencies in ns. Other frames are skipped without parsing.
async fn receive(
    mut socket: Socket,
    messages: usize,
    last_broadcast: usize,
    quiet: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<Vec<u64>> {
    loop {
        let frame = socket.next().await.context("subscriber disconnected during setup")??;
        let Ok(text) = frame.to_text() else { continue };
        if text.contains("\"type\":\"users\"") {
            let users: serde_json::Value = serde_json::from_str(text)?;
            if users["count"].as_u64().is_some_and(|count| count >= last_broadcast as u64) {
                quiet.send(()).await?;
                break;
            }
        }
    }
    let mut latencies = Vec::with_capacity(messages);
    while latencies.len() < messages {
        let frame = socket.next().await.context("subscriber disconnected")??;
        let Ok(text) = frame.to_text() else { continue };
        if !text.contains("\"type\":\"message\"") {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(text)?;
        let content = value["content"].as_str().context("no content")?;
        let (index, sent) = content.split_once(':').context("odd content")?;
        ensure!(index.parse::<usize>()? == latencies.len(), "out of order: got {index}, expected {}", latencies.len());
        latencies.push(u64::try_from(now_ns().saturating_sub(sent.parse()?)).unwrap_or(u64::MAX));
    }
    Ok(latencies)
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
