//! permessage-deflate: the chat's JSON to a room of subscribers that offer
//! it, against subscribers that do not, on one Switchboard server (fresh
//! for each): bytes on the wire per delivery, counted by each subscriber's
//! socket, and server CPU per delivery; and the same for echo round trips,
//! where every message is compressed for its one recipient.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::servers::Server;

/// What Chromium offers.
const OFFER: &str = "permessage-deflate; client_max_window_bits";
/// A chat line of a usual length.
pub(crate) const LINE: &str = "Sounds good to me: let's meet at the station at half past six, then walk to \
                               the restaurant together. I'll bring the tickets for the concert; tell Sam to \
                               bring an umbrella.";

/// A longer message: who is in a room of 30, as a presence list would say it.
pub(crate) fn presence_list() -> String {
    const NAMES: [&str; 8] = ["Ann", "Bob", "Carla", "Dmitri", "Eve", "Farid", "Grace", "Hiroshi"];
    let users: Vec<_> = (0..30)
        .map(|i| {
            serde_json::json!({"user": format!("user-{:04}", i * 37 % 1000), "name": NAMES[i % 8],
                "joined_at": 1_764_680_000 + i * 37, "status": if i % 3 == 0 { "away" } else { "online" }})
        })
        .collect();
    serde_json::Value::from(users).to_string()
}

/// A socket that counts the bytes it reads.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Socket = WebSocketStream<Counted>;

/// Connect to `path`, offering deflate if `deflate`; all sockets share `read`.
async fn connect(server: &Server, path: &str, deflate: bool, read: &Arc<AtomicU64>) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{}{path}", server.addr).into_client_request()?;
    if deflate {
        request.headers_mut().insert("sec-websocket-extensions", OFFER.parse()?);
    }
    let socket = Counted { inner: TcpStream::connect(&server.addr).await?, read: Arc::clone(read) };
    let config = WebSocketConfig::default().permessage_deflate(true);
    let (ws, response) = tokio_tungstenite::client_async_with_config(request, socket, Some(config)).await?;
    ensure!(response.headers().contains_key("sec-websocket-extensions") == deflate, "deflate was not {deflate}");
    Ok(ws)
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Compressed {
    pub(crate) wire_bytes_per_delivery: f64,
    pub(crate) cpu_us_per_delivery: f64,
    pub(crate) deliveries_per_second: f64,
}

/// The chat message of index `i`, saying `content`.
fn chat_message(i: usize, content: &str) -> Message {
    let value = serde_json::json!({"type": "message", "user": "bench", "content": format!("{i}: {content}")});
    Message::text(value.to_string())
}

/// `subscribers` in a chat room, `messages` chat messages saying `content`
/// published flat out.
pub(crate) async fn fan_out(
    server: &Server,
    subscribers: usize,
    messages: usize,
    content: &str,
    deflate: bool,
) -> anyhow::Result<Compressed> {
    let read = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        sockets.push(connect(server, "/chat/deflate", deflate, &read).await?);
    }
    let publisher = connect(server, "/chat/deflate", deflate, &read).await?;
    let (mut publisher, mut own) = publisher.split();
    tokio::spawn(async move { while let Some(Ok(_)) = own.next().await {} });
    // Quiet: every subscriber has the publisher's `quiet` line, which comes
    // after every announcement of the room's size.
    publisher.send(Message::text(r#"{"type":"message","user":"bench","content":"quiet"}"#)).await?;
    let (quiet, mut all_quiet) = tokio::sync::mpsc::channel(subscribers.max(1));
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let quiet = quiet.clone();
            tokio::spawn(async move {
                while !next_text(&mut socket).await?.contains(r#""content":"quiet""#) {}
                quiet.send(()).await?;
                for i in 0..messages {
                    let text = next_text(&mut socket).await?;
                    ensure!(text.contains(&format!(r#""content":"{i}: "#)), "message {i} out of order: {text}");
                }
                anyhow::Ok(socket)
            })
        })
        .collect();
    drop(quiet);
    for _ in 0..subscribers {
        all_quiet.recv().await.context("a subscriber failed during setup")?;
    }
    let (read_before, cpu_before, start) = (read.load(Ordering::Relaxed), server.cpu_seconds()?, Instant::now());
    for i in 0..messages {
        publisher.feed(chat_message(i, content)).await?;
    }
    publisher.flush().await?;
    let mut sockets = Vec::with_capacity(subscribers);
    for reader in readers {
        sockets.push(tokio::time::timeout(Duration::from_secs(120), reader).await.context("delivery timed out")???);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let deliveries = (subscribers * messages) as f64;
    Ok(Compressed {
        wire_bytes_per_delivery: (read.load(Ordering::Relaxed) - read_before) as f64 / deliveries,
        cpu_us_per_delivery: (server.cpu_seconds()? - cpu_before) * 1e6 / deliveries,
        deliveries_per_second: deliveries / elapsed,
    })
}

/// `clients` sending chat messages saying `content` to the echo and waiting for each reply, for `duration`.
pub(crate) async fn echo(
    server: &Server,
    clients: usize,
    duration: Duration,
    content: &str,
    deflate: bool,
) -> anyhow::Result<Compressed> {
    let read = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        sockets.push(connect(server, "/echo", deflate, &read).await?);
    }
    let (read_before, cpu_before, start) = (read.load(Ordering::Relaxed), server.cpu_seconds()?, Instant::now());
    let deadline = start + duration;
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let message = chat_message(0, content);
            tokio::spawn(async move {
                let mut round_trips = 0_u64;
                while Instant::now() < deadline {
                    socket.send(message.clone()).await?;
                    next_text(&mut socket).await?;
                    round_trips += 1;
                }
                anyhow::Ok(round_trips)
            })
        })
        .collect();
    let mut round_trips = 0;
    for task in tasks {
        round_trips += task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let count = round_trips as f64;
    Ok(Compressed {
        wire_bytes_per_delivery: (read.load(Ordering::Relaxed) - read_before) as f64 / count,
        cpu_us_per_delivery: (server.cpu_seconds()? - cpu_before) * 1e6 / count,
        deliveries_per_second: count / elapsed,
    })
}

async fn next_text(socket: &mut Socket) -> anyhow::Result<String> {
    loop {
        match socket.next().await.context("disconnected")?? {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Close(_) => anyhow::bail!("closed"),
            _ => {}
        }
    }
}
