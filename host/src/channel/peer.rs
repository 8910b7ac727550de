//! A live WebSocket connection as the rest of the host sees it: a bounded
//! queue of outgoing frames, a way to drop it, and its metadata.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::outbox::{Outbox, Refused};

/// Host-wide connection id; plugins name connections by it.
pub(crate) type ConnId = u64;

/// Close code for a client whose send queue overflowed.
pub(crate) const CLOSE_TOO_SLOW: u16 = 1008;

/// The shared half of a connection. The socket itself stays with the
/// connection's task (`websocket.rs`); everyone else talks to it through this.
/// Rooms and users hold it as it is: its queue is inline and takes one
/// aligned cache line, so a fan-out reads that line per recipient and
/// nothing else.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Frames for the client. Bounded, so that a client that does not read
    /// cannot make the server's memory grow: when it is full the client is
    /// dropped instead.
    outbox: Outbox,
    /// What plugins call this connection.
    pub(crate) id: ConnId,
    /// The route pattern it connected on: when a new version of its plugin
    /// drops the route, the connection is closed.
    pub(crate) route: Arc<str>,
    /// Set when the host drops the connection without waiting for the queue
    /// (it is full, or the server shuts down); the connection task watches it.
    abort: Mutex<Option<CloseFrame>>,
    /// Wakes the connection task when `abort` is set.
    aborted: Notify,
    /// Strings a plugin attached to the connection (`set-meta`); kept here,
    /// not in the plugin, so they survive a plugin reload.
    meta: Mutex<HashMap<String, String>>,
}

impl Peer {
    /// A peer whose queue holds up to `queue` frames.
    pub(crate) fn new(id: ConnId, route: &str, queue: usize) -> Peer {
        Peer {
            outbox: Outbox::new(queue),
            id,
            route: route.into(),
            abort: Mutex::new(None),
            aborted: Notify::new(),
            meta: Mutex::new(HashMap::new()),
        }
    }

    /// Queue a frame. Returns false when the connection is gone. A full queue
    /// means the client does not keep up: it is dropped, and the frame too.
    pub(crate) fn send(&self, frame: Message) -> bool {
        match self.outbox.push(frame) {
            Ok(()) => true,
            Err(Refused::Full) => {
                if self.abort(CLOSE_TOO_SLOW, "client too slow") {
                    tracing::warn!(conn = self.id, "send queue full, dropping slow client");
                }
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// The queue, for the connection's own task to read.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Close after the frames already queued.
    pub(crate) fn close(&self, code: u16, reason: &str) -> bool {
        self.send(Message::Close(Some(close_frame(code, reason))))
    }

    /// Close now, dropping whatever is still queued. Returns false when the
    /// connection was already being dropped.
    pub(crate) fn abort(&self, code: u16, reason: &str) -> bool {
        let mut abort = self.abort.lock();
        if abort.is_some() {
            return false;
        }
        *abort = Some(close_frame(code, reason));
        self.aborted.notify_one();
        true
    }

    /// Resolves once `abort` was called, with the close frame to send.
    pub(crate) async fn aborted(&self) -> CloseFrame {
        loop {
            if let Some(frame) = self.abort.lock().clone() {
                return frame;
            }
            self.aborted.notified().await;
        }
    }

    pub(crate) fn set_meta(&self, key: String, value: String) {
        self.meta.lock().insert(key, value);
    }

    pub(crate) fn meta(&self, key: &str) -> Option<String> {
        self.meta.lock().get(key).cloned()
    }
}

/// A close frame; the reason is cut to the 123 bytes a control frame allows,
/// on a character boundary.
pub(crate) fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: reason[..end].to_owned().into() }
}
