//! A live WebSocket connection as the rest of the host sees it: a bounded
//! queue of outgoing frames, a way to drop it, and its metadata.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::channel::Channel;
use crate::channel::outbox::{Outbox, Outgoing, Refused};
use crate::close::{Close, close_frame};
use crate::metrics::PluginMetrics;

/// Host-wide connection id; plugins name connections by it.
pub(crate) type ConnId = u64;

/// The shared half of a connection. The socket itself stays with the
/// connection's task (`net/websocket.rs`); everyone else talks to it through this.
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
    /// The plugin it belongs to, for the logs (a slow client is dropped for
    /// what one plugin sent it).
    pub(crate) plugin: Arc<str>,
    /// The plugin's metrics: a slow client is counted where it is dropped.
    metrics: PluginMetrics,
    /// The outbox's byte budget, handed back each time the queue is taken.
    queue_bytes: usize,
    /// Set when the host drops the connection without waiting for the queue
    /// (it is full, or the server shuts down); the connection task watches it.
    abort: Mutex<Option<CloseFrame>>,
    /// Wakes the connection task when `abort` is set.
    aborted: Notify,
    /// Strings a plugin attached to the connection (`set-meta`); kept here,
    /// not in the plugin, so they survive a plugin reload.
    meta: Mutex<HashMap<String, String>>,
}

/// What became of a frame handed to [`Peer::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Queued for the client.
    Queued,
    /// Not queued: the client's outbox is full, so it is being dropped as
    /// too slow.
    Full,
    /// Not queued: the connection is closing or gone.
    Closed,
}

impl Peer {
    /// A peer of `channel`'s plugin whose queue holds up to `frames` frames
    /// and `bytes` payload bytes.
    pub(crate) fn new(id: ConnId, route: &str, channel: &Channel, frames: usize, bytes: usize) -> Peer {
        Peer {
            outbox: Outbox::new(frames, bytes),
            id,
            route: route.into(),
            plugin: Arc::clone(&channel.name),
            metrics: channel.metrics.clone(),
            queue_bytes: bytes,
            abort: Mutex::new(None),
            aborted: Notify::new(),
            meta: Mutex::new(HashMap::new()),
        }
    }

    /// Queue a frame. A full queue means the client does not keep up: it is
    /// dropped, and the frame too.
    pub(crate) fn send(&self, frame: impl Into<Outgoing>) -> Sent {
        match self.outbox.push(frame.into()) {
            Ok(()) => Sent::Queued,
            Err(Refused::Full) => {
                if self.abort(Close::TooSlow) {
                    tracing::warn!(conn = self.id, plugin = &*self.plugin, "send queue full, dropping slow client");
                    self.metrics.slow_client_dropped();
                }
                Sent::Full
            }
            Err(Refused::Closed) => Sent::Closed,
        }
    }

    /// The queue, for the connection's own task to read.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The outbox's byte budget, for [`Outbox::take`].
    pub(crate) fn queue_bytes(&self) -> usize {
        self.queue_bytes
    }

    /// Close after the frames already queued, with a plugin's code and reason.
    pub(crate) fn close_with(&self, code: u16, reason: &str) -> Sent {
        self.send(Message::Close(Some(close_frame(code, reason))))
    }

    /// Close after the frames already queued, for one of the host's reasons.
    pub(crate) fn close(&self, why: Close) -> Sent {
        self.send(Message::Close(Some(why.frame())))
    }

    /// Close now, dropping whatever is still queued. Returns false when the
    /// connection was already being dropped.
    pub(crate) fn abort(&self, why: Close) -> bool {
        let mut abort = self.abort.lock();
        if abort.is_some() {
            return false;
        }
        *abort = Some(why.frame());
        self.aborted.notify_one();
        true
    }

    /// Resolves once `abort` was called, with the close frame to send.
    pub(crate) async fn aborted(&self) -> CloseFrame {
        loop {
            if let Some(frame) = self.abort_frame() {
                return frame;
            }
            self.aborted.notified().await;
        }
    }

    /// The close frame `abort` was called with, if it was.
    pub(crate) fn abort_frame(&self) -> Option<CloseFrame> {
        self.abort.lock().clone()
    }

    /// Attach a value; a new key beyond `max_keys` is refused.
    pub(crate) fn set_meta(&self, key: String, value: String, max_keys: usize) -> Result<(), usize> {
        let mut meta = self.meta.lock();
        if meta.len() >= max_keys && !meta.contains_key(&key) {
            return Err(max_keys);
        }
        meta.insert(key, value);
        Ok(())
    }

    pub(crate) fn meta(&self, key: &str) -> Option<String> {
        self.meta.lock().get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A log writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_the_client_names_its_plugin_and_says_so_to_the_sender() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let channel = Channel::new("chat", crate::config::Limits::default(), None);
        let peer = Peer::new(7, "/chat/:room", &channel, 1, 1 << 20);
        let outcomes = tracing::subscriber::with_default(subscriber, || {
            [peer.send(Message::text("a")), peer.send(Message::text("b")), peer.send(Message::text("c"))]
        });
        assert_eq!(outcomes, [Sent::Queued, Sent::Full, Sent::Full]);
        let logs = String::from_utf8_lossy(&logs.0.lock()).into_owned();
        assert_eq!(logs.matches("dropping slow client").count(), 1, "logged once: {logs}");
        assert!(logs.contains("plugin=\"chat\"") && logs.contains("conn=7"), "{logs}");
    }
}
