//! Live components (`--only live`): the todo example with a 300-row list,
//! on a Switchboard with the Rust echo beside it. Bytes on the wire for a
//! one-row change against the whole render's HTML, and server CPU per event
//! round trip (a click, its diff back) against an echo round trip of the
//! same size on the same server: the echo is the cost of the socket and
//! one plugin call, the rest is rendering and diffing.

use std::time::Instant;

use anyhow::{Context as _, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_sdk::live::Mirror;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::servers::Server;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Live {
    /// The first render's HTML, as the browser builds it.
    pub(crate) html_bytes: f64,
    /// The `full` message that carried it (templates and dynamics).
    pub(crate) full_bytes: f64,
    /// The reply to toggling one row, as a WebSocket frame.
    pub(crate) one_row_frame_bytes: f64,
    pub(crate) event_cpu_us: f64,
    pub(crate) echo_cpu_us: f64,
    pub(crate) events_per_second: f64,
    pub(crate) echoes_per_second: f64,
}

/// A frame's bytes: 2 header bytes, and 2 more from 126 bytes on, 8 from 64 KiB.
fn frame_bytes(payload: usize) -> f64 {
    (payload
        + 2
        + if payload >= 1 << 16 {
            8
        } else if payload >= 126 {
            2
        } else {
            0
        }) as f64
}

async fn next_text(socket: &mut Socket) -> anyhow::Result<String> {
    loop {
        match socket.next().await.context("the server closed")?? {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Close(frame) => anyhow::bail!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Whether `text` is the reply to event `reference`.
fn acks(text: &str, reference: usize) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|message| message["ack"] == reference)
}

/// The todo list with `rows` rows; `events` toggles, one at a time, and as
/// many echo round trips.
pub(crate) async fn measure(server: &Server, rows: usize, events: usize) -> anyhow::Result<Live> {
    let (mut todo, _) = tokio_tungstenite::connect_async(format!("ws://{}/live/todo", server.addr)).await?;
    let todos: Vec<String> = (0..rows).map(|i| format!("Todo number {i}: water the plants on the balcony")).collect();
    todo.send(Message::text(json!({"t": "join", "cid": "c1", "c": "todo", "p": {"todos": todos}}).to_string())).await?;
    let mut mirror = Mirror::default();
    let full = loop {
        let text = next_text(&mut todo).await?;
        let message: Value = serde_json::from_str(&text)?;
        mirror.apply(&message)?;
        if message["t"] == "full" {
            break text;
        }
    };
    let html_bytes = mirror.html()?.len() as f64;

    let toggle = |reference: usize| {
        let id = reference % rows + 1;
        Message::text(json!({"t": "ev", "cid": "c1", "ref": reference, "n": "toggle", "k": "change", "v": {"id": id.to_string(), "value": "on"}}).to_string())
    };
    // One row toggled, then another: the second reply's size is a one-row
    // change (the first also brings the "Clear completed" button, and its
    // template, once).
    let mut reply = String::new();
    for reference in [0, rows / 2] {
        todo.send(toggle(reference)).await?;
        reply = loop {
            let text = next_text(&mut todo).await?;
            if acks(&text, reference) {
                break text;
            }
        };
        let before = mirror.html()?;
        mirror.apply(&serde_json::from_str(&reply)?)?;
        ensure!(mirror.html()? != before, "the toggle changed nothing: {reply}");
    }
    ensure!(mirror.html()?.matches("class=\"completed\"").count() == 2, "two rows toggled");

    let event_size = toggle(1).len();
    let first = rows + 1;
    let (events_per_second, event_cpu_us) = timed(server, events, async |i| {
        todo.send(toggle(first + i)).await?;
        while !acks(&next_text(&mut todo).await?, first + i) {}
        Ok(())
    })
    .await?;

    let (mut echo, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", server.addr)).await?;
    let payload = "x".repeat(event_size);
    let (echoes_per_second, echo_cpu_us) = timed(server, events, async |_| {
        echo.send(Message::text(payload.clone())).await?;
        next_text(&mut echo).await?;
        Ok(())
    })
    .await?;
    Ok(Live {
        html_bytes,
        full_bytes: frame_bytes(full.len()),
        one_row_frame_bytes: frame_bytes(reply.len()),
        event_cpu_us,
        echo_cpu_us,
        events_per_second,
        echoes_per_second,
    })
}

/// Run `step` `count` times in a row: per second, and server CPU µs each.
async fn timed(
    server: &Server,
    count: usize,
    mut step: impl AsyncFnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    let cpu = server.cpu_seconds()?;
    let started = Instant::now();
    for i in 0..count {
        step(i).await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((count as f64 / elapsed, (server.cpu_seconds()? - cpu) * 1e6 / count as f64))
}
