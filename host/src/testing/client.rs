//! A fake client of the test kit: what it sends goes straight to the
//! plugin, what the plugin queued for it waits in its inbox.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Message;

use super::Inner;
use crate::channel::peer::Peer;

/// A data message a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Frame {
    /// The text of a text message.
    pub fn text(&self) -> Option<&str> {
        match self {
            Frame::Text(text) => Some(text),
            Frame::Binary(_) => None,
        }
    }

    /// A text message parsed as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.text()?).ok()
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code (the plugin's, the host's, or the client's own).
    pub code: u16,
    /// The close reason.
    pub reason: String,
}

/// The kit's side of one connection.
#[derive(Debug)]
pub(super) struct ClientState {
    pub(super) peer: Arc<Peer>,
    inbox: Mutex<VecDeque<Frame>>,
    closed: Mutex<Option<Closed>>,
}

impl ClientState {
    pub(super) fn new(peer: Arc<Peer>) -> ClientState {
        ClientState { peer, inbox: Mutex::new(VecDeque::new()), closed: Mutex::new(None) }
    }

    /// Move what was queued for the client into its inbox; returns how the
    /// connection ended, when this is the moment it did (a close frame was
    /// queued, or the host dropped the client).
    pub(super) fn collect(&self) -> Option<Closed> {
        if self.closed().is_some() {
            return None;
        }
        if let Some(frame) = self.peer.abort_frame() {
            return Some(self.end(Closed { code: frame.code.into(), reason: frame.reason.to_string() }));
        }
        let frames = self.peer.outbox().take_now(self.peer.queue_bytes());
        let mut inbox = self.inbox.lock();
        for frame in frames {
            match frame.into_message(None) {
                Message::Text(text) => inbox.push_back(Frame::Text(text.as_str().to_owned())),
                Message::Binary(bytes) => inbox.push_back(Frame::Binary(bytes.into())),
                Message::Close(frame) => {
                    drop(inbox);
                    let (code, reason) =
                        frame.map_or((1005, String::new()), |frame| (frame.code.into(), frame.reason.to_string()));
                    return Some(self.end(Closed { code, reason }));
                }
                _ => {}
            }
        }
        None
    }

    /// The connection ended: it takes no more frames.
    pub(super) fn end(&self, closed: Closed) -> Closed {
        drop(self.peer.outbox().close());
        *self.closed.lock() = Some(closed.clone());
        closed
    }

    pub(super) fn closed(&self) -> Option<Closed> {
        self.closed.lock().clone()
    }
}

/// One fake connection to a [`super::TestChannel`]'s plugin.
#[derive(Debug)]
pub struct TestClient {
    inner: Arc<Inner>,
    state: Arc<ClientState>,
}

impl TestClient {
    pub(super) fn new(inner: Arc<Inner>, state: Arc<ClientState>) -> TestClient {
        TestClient { inner, state }
    }

    /// The connection id the plugin knows this client by.
    pub fn id(&self) -> u64 {
        self.state.peer.id
    }

    /// Send a text message; returns once the plugin handled it.
    pub async fn send(&self, text: &str) {
        self.inner.message(&self.state, Message::text(text)).await;
    }

    /// Send a JSON value as a text message.
    pub async fn send_json(&self, value: &serde_json::Value) {
        self.send(&value.to_string()).await;
    }

    /// Send a binary message.
    pub async fn send_binary(&self, bytes: &[u8]) {
        self.inner.message(&self.state, Message::binary(bytes.to_vec())).await;
    }

    /// Everything received since the last look, oldest first.
    pub fn frames(&self) -> Vec<Frame> {
        self.state.inbox.lock().drain(..).collect()
    }

    /// The oldest message not looked at yet.
    pub fn next(&self) -> Option<Frame> {
        self.state.inbox.lock().pop_front()
    }

    /// Everything received since the last look, as JSON. Panics, naming
    /// it, on a message that is not JSON text: in a test, that is a failure.
    pub fn json_frames(&self) -> Vec<serde_json::Value> {
        let frames = self.frames();
        frames
            .iter()
            .map(|frame| {
                frame.json().unwrap_or_else(|| panic!("client {} got a non-JSON message: {frame:?}", self.id()))
            })
            .collect()
    }

    /// The oldest message not looked at yet, as JSON; `None` when there is
    /// none. Panics on a message that is not JSON text.
    pub fn next_json(&self) -> Option<serde_json::Value> {
        let frame = self.next()?;
        Some(frame.json().unwrap_or_else(|| panic!("client {} got a non-JSON message: {frame:?}", self.id())))
    }

    /// How the connection ended, once it has (closed by the plugin, by the
    /// host, or by [`TestClient::close`]).
    pub fn closed(&self) -> Option<Closed> {
        self.state.closed()
    }

    /// Close the connection normally (1000); `on-close` runs.
    pub async fn close(&self) {
        self.close_with(1000, "").await;
    }

    /// Close the connection with a code and reason; `on-close` runs.
    pub async fn close_with(&self, code: u16, reason: &str) {
        self.inner.close(&self.state, code, reason).await;
    }
}
