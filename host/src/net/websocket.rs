//! One WebSocket connection: frames in, to the plugin; frames out, from the
//! connection's queue, batched into as few writes as possible. Also where
//! the per-connection rules live: rate limit, keep-alive, slow clients.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::peer::{CLOSE_TOO_SLOW, Peer, close_frame};
use crate::rate_limit::{TokenBucket, Verdict};
use crate::runtime::{ConnectRequest, PluginHandle};

/// How long the closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The code reported to `on-close` when the socket ended without a close frame.
const CLOSE_ABNORMAL: u16 = 1006;
/// Close code for a client that keeps sending over its rate limit.
const CLOSE_POLICY: u16 = 1008;

/// The rules one connection is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) messages_per_second: u32,
    pub(crate) message_burst: u32,
    pub(crate) ping_interval: Duration,
    /// How long a ping may go unanswered, and a write may stay blocked.
    pub(crate) ping_timeout: Duration,
}

/// Serve one upgraded connection until it closes, then tell the plugin.
pub(crate) async fn run<S>(
    mut ws: WebSocketStream<S>,
    peer: Arc<Peer>,
    plugin: PluginHandle,
    request: ConnectRequest,
    rules: Rules,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(rejection) = plugin.connect(Arc::clone(&peer), request).await {
        tracing::debug!(conn = peer.id, code = rejection.code, reason = rejection.reason, "connection refused");
        // What on-connect queued (an explanation, say) goes out before the close.
        let mut frames = peer.outbox().close();
        frames.push_back(Message::Close(Some(close_frame(rejection.code, &rejection.reason))));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, finish(&mut ws, frames)).await;
        return;
    }
    let mut connection = Connection {
        ws,
        peer: &peer,
        batch: VecDeque::new(),
        plugin: &plugin,
        bucket: TokenBucket::new(rules.messages_per_second, rules.message_burst),
        rules,
        expelled: false,
    };
    let (code, reason) = connection.pump().await;
    // Frames sent from now on are refused: the plugin learns it reached no one.
    drop(peer.outbox().close());
    tracing::debug!(conn = peer.id, code, reason, "connection closed");
    plugin.closed(peer.id, code, reason).await;
}

struct Connection<'a, S> {
    ws: WebSocketStream<S>,
    peer: &'a Peer,
    /// Frames taken from the peer's queue, being written; kept empty
    /// between batches, so that its allocation goes back to the queue.
    batch: VecDeque<Message>,
    plugin: &'a PluginHandle,
    bucket: TokenBucket,
    rules: Rules,
    /// Set once the client is being dropped for flooding: later messages
    /// are ignored while the close frame goes out.
    expelled: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Move frames both ways until the connection ends; returns the close
    /// code and reason to report to the plugin.
    async fn pump(&mut self) -> (u16, String) {
        // Set once our close frame went out: what to report, and when to stop
        // waiting for the peer's answer.
        let mut closing: Option<((u16, String), Instant)> = None;
        // The peer's close frame, if it sent one.
        let mut peer_close: Option<(u16, String)> = None;
        // When the peer must have said something (anything) by, after a ping.
        let mut answer_due: Option<Instant> = None;
        let mut ping = tokio::time::interval_at(Instant::now() + self.rules.ping_interval, self.rules.ping_interval);
        // One wait for an abort for the whole connection, not one per turn
        // of the loop: each costs a lock and a waiter list entry.
        let peer = self.peer;
        let aborted = peer.aborted();
        tokio::pin!(aborted);
        let ended = |peer_close: Option<(u16, String)>, closing: Option<((u16, String), Instant)>| {
            peer_close.or(closing.map(|(sent, _)| sent)).unwrap_or((CLOSE_ABNORMAL, String::new()))
        };
        loop {
            let deadline = closing.as_ref().map(|(_, deadline)| *deadline);
            tokio::select! {
                () = peer.outbox().take(&mut self.batch), if closing.is_none() => {
                    let written = tokio::select! {
                        // The write first: when it completes at once (the
                        // usual case), the timer below is never armed.
                        biased;
                        written = write_batch(&mut self.ws, &mut self.batch) => written,
                        // A blocked socket cannot take a goodbye either: drop it.
                        frame = &mut aborted => return close_parts(&frame),
                        () = tokio::time::sleep(self.rules.ping_timeout) => {
                            tracing::warn!(conn = self.peer.id, "write blocked too long, dropping slow client");
                            return (CLOSE_TOO_SLOW, "client too slow".to_owned());
                        }
                    };
                    match written {
                        Ok(Some(sent)) => closing = Some((close_parts(&sent), Instant::now() + CLOSE_TIMEOUT)),
                        Ok(None) => {}
                        Err(_) => return ended(peer_close, closing),
                    }
                }
                incoming = self.ws.next() => {
                    answer_due = None;
                    match incoming {
                        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                            if closing.is_none() {
                                self.deliver(message).await;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            // tungstenite answers the close frame itself; the stream ends next.
                            peer_close = Some(frame.as_ref().map_or((1005, String::new()), close_parts));
                        }
                        Some(Ok(_)) => {} // ping and pong: tungstenite answers pings itself.
                        Some(Err(error)) => {
                            tracing::debug!(conn = self.peer.id, "websocket error: {error}");
                            let Some((code, reason)) = error_close(&error) else { return ended(peer_close, closing) };
                            let goodbye = Message::Close(Some(close_frame(code, reason)));
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.ws.send(goodbye)).await;
                            return (code, reason.to_owned());
                        }
                        None => return ended(peer_close, closing),
                    }
                }
                _ = ping.tick(), if closing.is_none() => {
                    answer_due.get_or_insert(Instant::now() + self.rules.ping_timeout);
                    let ping = self.ws.send(Message::Ping(Bytes::new()));
                    if !matches!(tokio::time::timeout(self.rules.ping_timeout, ping).await, Ok(Ok(()))) {
                        return ended(peer_close, closing);
                    }
                }
                () = sleep_until(answer_due) => {
                    tracing::info!(conn = self.peer.id, "no answer to ping, dropping connection");
                    return (CLOSE_ABNORMAL, "ping timeout".to_owned());
                }
                frame = &mut aborted => {
                    let parts = close_parts(&frame);
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, finish(&mut self.ws, vec![Message::Close(Some(frame))])).await;
                    return parts;
                }
                () = sleep_until(deadline) => return ended(peer_close, closing),
            }
        }
    }

    /// Hand a client's message to the plugin, within the rate limit.
    async fn deliver(&mut self, message: Message) {
        if self.expelled {
            return;
        }
        match self.bucket.take(std::time::Instant::now()) {
            Verdict::Allow => {
                // A reply queued by the callback would wake this very task
                // for a second poll; the loop takes the queue right after.
                self.peer.outbox().forget_reader();
                self.plugin.message(self.peer.id, message).await;
            }
            Verdict::Refuse { first } => {
                if first {
                    tracing::warn!(conn = self.peer.id, "rate limit exceeded, dropping messages");
                    self.peer.send(Message::text(r#"{"type":"error","message":"Rate limit exceeded"}"#));
                }
            }
            Verdict::Disconnect => {
                tracing::warn!(conn = self.peer.id, "rate limit exceeded for too long, disconnecting");
                self.expelled = true;
                self.peer.close(CLOSE_POLICY, "rate limit exceeded");
            }
        }
    }
}

/// Write `frames` and wait for the peer to end the connection.
async fn finish<S>(ws: &mut WebSocketStream<S>, frames: impl IntoIterator<Item = Message>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for frame in frames {
        if ws.feed(frame).await.is_err() {
            return;
        }
    }
    if ws.flush().await.is_err() {
        return;
    }
    while let Some(Ok(_)) = ws.next().await {}
}

/// Write the batch, then flush once: a broadcast burst becomes one syscall
/// per connection instead of one per frame (tungstenite writes on its own
/// whenever its write buffer fills). Returns the close frame if one was
/// written: what follows it is dropped.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut VecDeque<Message>,
) -> Result<Option<CloseFrame>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(frame) = batch.pop_front() {
        if let Message::Close(close) = &frame {
            let close = close.clone().unwrap_or_else(|| close_frame(1000, ""));
            batch.clear();
            ws.feed(frame).await?;
            ws.flush().await?;
            return Ok(Some(close));
        }
        ws.feed(frame).await?;
    }
    ws.flush().await?;
    Ok(None)
}

fn close_parts(frame: &CloseFrame) -> (u16, String) {
    (u16::from(frame.code), frame.reason.as_str().to_owned())
}

/// The close frame a read error calls for, if the socket can still take one.
fn error_close(error: &WsError) -> Option<(u16, &'static str)> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some((1009, "message too big")),
        WsError::Capacity(_) => Some((1009, "frame too big")),
        WsError::Utf8(_) => Some((1007, "invalid UTF-8")),
        WsError::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
