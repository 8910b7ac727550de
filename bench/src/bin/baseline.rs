//! The baseline: the chat and echo channels hard-coded in Rust on plain
//! tokio-tungstenite, no WebAssembly. Built the way a careful engineer
//! would build it (frames encoded once and shared, a bounded queue per
//! connection, queued frames fed and flushed once), so that the ratio to
//! it measures what the plugin layer costs.
//!
//! `baseline [ADDR]` prints `listening on http://ADDR` like the server.
#![allow(clippy::print_stdout, reason = "the listening line is this program's interface")]
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Outbox = mpsc::Sender<Message>;

/// As in the chat plugin: larger rooms tell only a newcomer their size.
const LOUD_ROOM_LIMIT: usize = 1000;

/// Room name → (connection id → its queue).
#[derive(Default)]
struct Rooms(Mutex<HashMap<String, HashMap<u64, Outbox>>>);

impl Rooms {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, HashMap<u64, Outbox>>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Encode once, queue for every member.
    fn publish(&self, room: &str, value: &Value) {
        let frame = Message::text(value.to_string());
        self.with(|rooms| {
            for outbox in rooms.get(room).into_iter().flat_map(|members| members.values()) {
                let _ = outbox.try_send(frame.clone());
            }
        });
    }

    /// Tell the room its size, or only `newcomer` once the room is large.
    fn announce_user_count(&self, room: &str, newcomer: Option<&Outbox>) {
        let count = self.with(|rooms| rooms.get(room).map_or(0, HashMap::len));
        let users = json!({"type": "users", "room": room, "count": count});
        match newcomer {
            _ if count <= LOUD_ROOM_LIMIT => self.publish(room, &users),
            Some(outbox) => {
                let _ = outbox.try_send(Message::text(users.to_string()));
            }
            None => {}
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&address).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    let mut next_id = 0;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(serve(stream, next_id, Arc::clone(&rooms)));
    }
}

async fn serve(stream: TcpStream, id: u64, rooms: Arc<Rooms>) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(64 * 1024);
    // The signature is tungstenite's; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else {
        return;
    };
    let (outbox, mut inbox) = mpsc::channel::<Message>(1024);
    let room = path.strip_prefix("/chat/").map(str::to_owned);
    if let Some(room) = &room {
        rooms.with(|rooms| rooms.entry(room.clone()).or_default().insert(id, outbox.clone()));
        let _ = outbox.try_send(Message::text(json!({"type": "connected", "room": room}).to_string()));
        rooms.announce_user_count(room, Some(&outbox));
    }
    loop {
        tokio::select! {
            Some(first) = inbox.recv() => {
                let mut next = Some(first);
                let mut written = 0;
                while let Some(frame) = next.take() {
                    if ws.feed(frame).await.is_err() { break; }
                    written += 1;
                    if written < 64 { next = inbox.try_recv().ok(); }
                }
                if ws.flush().await.is_err() { break; }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => match &room {
                    None => { let _ = outbox.try_send(message); }
                    Some(room) => chat(&rooms, room, &message, &outbox),
                },
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    if let Some(room) = &room {
        rooms.with(|rooms| rooms.get_mut(room).map(|members| members.remove(&id)));
        rooms.announce_user_count(room, None);
    }
}

fn chat(rooms: &Rooms, room: &str, message: &Message, outbox: &Outbox) {
    let Ok(text) = message.to_text() else { return };
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        let _ = outbox.try_send(Message::text(r#"{"type":"error","message":"Invalid JSON"}"#));
        return;
    };
    match value["type"].as_str() {
        Some("message") => {
            // As the chat plugin stamps it (the SDK's `now_rfc3339`).
            let timestamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            let reply =
                json!({"type": "message", "user": value["user"], "content": value["content"], "timestamp": timestamp});
            rooms.publish(room, &reply);
        }
        Some("ping") => {
            let _ = outbox.try_send(Message::text(r#"{"type":"pong"}"#));
        }
        _ => {
            let _ = outbox.try_send(Message::text(r#"{"type":"error","message":"Unknown message type"}"#));
        }
    }
}
