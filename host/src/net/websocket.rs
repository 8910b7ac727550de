//! One WebSocket connection: frames in, to the plugin; frames out, from the
//! connection's queue, batched into as few writes as possible. Also where
//! the per-connection rules live: rate limit, keep-alive, slow clients.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::channel::outbox::Outgoing;
use crate::channel::peer::{Peer, Sent};
use crate::close::{Close, close_frame};
use crate::deflate::Deflate;
use crate::net::server::Shutdown;
use crate::rate_limit::{TokenBucket, Verdict};
use crate::runtime::{Callback, ConnectRequest, PluginHandle};

/// The rules one connection is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) messages_per_second: u32,
    pub(crate) message_burst: u32,
    pub(crate) ping_interval: Duration,
    /// How long a ping may go unanswered, and a write may stay blocked.
    pub(crate) ping_timeout: Duration,
    /// How long a closing handshake may take.
    pub(crate) close_timeout: Duration,
    /// permessage-deflate, when the client and the server agreed on it.
    pub(crate) deflate: Option<Deflate>,
}

/// Serve one upgraded connection until it closes, then tell the plugin.
///
/// This future is the largest thing an idle connection holds (2.4 KB of
/// its ≈6 KiB, BENCHMARKS.md): the request comes boxed (it is dead once
/// on-connect has it), and the socket stays where it is, borrowed by the
/// `Connection`, not moved into it (a moved argument keeps its first slot
/// too).
pub(crate) async fn run<S>(
    mut ws: WebSocketStream<S>,
    peer: Arc<Peer>,
    plugin: PluginHandle,
    request: Box<ConnectRequest>,
    rules: Rules,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(rejection) = plugin.connect(Arc::clone(&peer), *request).await {
        tracing::debug!(conn = peer.id, code = rejection.code, reason = rejection.reason, "connection refused");
        // What on-connect queued (an explanation, say) goes out before the close.
        let mut frames: Vec<Message> =
            peer.outbox().close().into_iter().map(|frame| frame.into_message(rules.deflate)).collect();
        frames.push(Message::Close(Some(close_frame(rejection.code, &rejection.reason))));
        let _ = tokio::time::timeout(rules.close_timeout, finish(&mut ws, frames)).await;
        return;
    }
    let mut connection = Connection {
        ws: &mut ws,
        peer: &peer,
        batch: VecDeque::new(),
        plugin: &plugin,
        in_flight: None,
        bucket: TokenBucket::new(rules.messages_per_second, rules.message_burst),
        rules,
        expelled: false,
    };
    let (code, reason) = connection.pump(shutdown).await;
    // Frames sent from now on are refused: the plugin learns it reached no one.
    drop(peer.outbox().close());
    tracing::debug!(conn = peer.id, code, reason, "connection closed");
    // The socket ends now, whatever the plugin is doing: its last message
    // and on-close may have to wait for a busy plugin, the client need not.
    let Connection { in_flight, .. } = connection;
    drop(ws);
    if let Some(message) = in_flight {
        message.await;
    }
    plugin.closed(peer.id, code, reason).await;
}

struct Connection<'a, 'w, S> {
    ws: &'w mut WebSocketStream<S>,
    peer: &'a Peer,
    /// Frames taken from the peer's queue, being written; kept empty
    /// between batches, so that its allocation goes back to the queue.
    batch: VecDeque<Outgoing>,
    plugin: &'a PluginHandle,
    /// The client's message being handled by the plugin: at most one at a
    /// time, so its messages are handled in order and a client cannot queue
    /// work in the plugin. The connection keeps writing meanwhile (it may
    /// wait for a busy plugin), and reads its next frame once this is done.
    in_flight: Option<Callback<'a>>,
    bucket: TokenBucket,
    rules: Rules,
    /// Set once the client is being dropped for flooding: later messages
    /// are ignored while the close frame goes out.
    expelled: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, '_, S> {
    /// Move frames both ways until the connection ends; returns the close
    /// code and reason to report to the plugin.
    async fn pump(&mut self, mut shutdown: Shutdown) -> (u16, String) {
        // Set once our close frame went out: what to report, and when to stop
        // waiting for the peer's answer.
        let mut closing: Option<((u16, String), Instant)> = None;
        // The peer's close frame, if it sent one.
        let mut peer_close: Option<(u16, String)> = None;
        // When the peer must have said something (anything) by, after a ping.
        let mut answer_due: Option<Instant> = None;
        // Set once the server's shutdown was seen: the goodbye is queued.
        let mut shutting_down = false;
        let mut ping = tokio::time::interval_at(Instant::now() + self.rules.ping_interval, self.rules.ping_interval);
        // One wait for an abort for the whole connection, not one per turn
        // of the loop: each costs a lock and a waiter list entry.
        let peer = self.peer;
        let aborted = peer.aborted();
        tokio::pin!(aborted);
        // Likewise one wait for the server's shutdown.
        let shutdown = shutdown.requested();
        tokio::pin!(shutdown);
        let ended = |peer_close: Option<(u16, String)>, closing: Option<((u16, String), Instant)>| {
            peer_close.or(closing.map(|(sent, _)| sent)).unwrap_or_else(|| Close::Abnormal.parts())
        };
        loop {
            let deadline = closing.as_ref().map(|(_, deadline)| *deadline);
            tokio::select! {
                () = peer.outbox().take(&mut self.batch, peer.queue_bytes()), if closing.is_none() => {
                    let (ws, batch, blocked_for) = (&mut *self.ws, &mut self.batch, self.rules.ping_timeout);
                    let deflate = self.rules.deflate;
                    let write = std::pin::pin!(async {
                        tokio::select! {
                            // The write first: when it completes at once (the
                            // usual case), the timer below is never armed.
                            biased;
                            written = write_batch(ws, batch, deflate) => Write::Done(written),
                            // A blocked socket cannot take a goodbye either: drop it.
                            frame = &mut aborted => Write::Aborted(frame),
                            () = tokio::time::sleep(blocked_for) => Write::Blocked,
                        }
                    });
                    match while_in_flight(&mut self.in_flight, write).await {
                        Write::Done(Ok(Some(sent))) => {
                            closing = Some((close_parts(&sent), Instant::now() + self.rules.close_timeout));
                        }
                        Write::Done(Ok(None)) => {}
                        Write::Done(Err(_)) => return ended(peer_close, closing),
                        Write::Aborted(frame) => return close_parts(&frame),
                        Write::Blocked => {
                            tracing::warn!(
                                conn = peer.id, plugin = &*peer.plugin, "write blocked too long, dropping slow client"
                            );
                            self.plugin.metrics().slow_client_dropped();
                            return Close::TooSlow.parts();
                        }
                    }
                }
                () = finish_in_flight(&mut self.in_flight), if self.in_flight.is_some() => self.in_flight = None,
                incoming = self.ws.next(), if self.in_flight.is_none() => {
                    answer_due = None;
                    match incoming {
                        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                            self.plugin.metrics().received(message.len());
                            if closing.is_none() {
                                self.deliver(message).await;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            // tungstenite answers the close frame itself; the stream ends next.
                            peer_close = Some(frame.as_ref().map_or_else(|| Close::NoStatus.parts(), close_parts));
                        }
                        Some(Ok(_)) => {} // ping and pong: tungstenite answers pings itself.
                        Some(Err(error)) => {
                            tracing::debug!(conn = peer.id, "websocket error: {error}");
                            // After our close frame, any end is the end of the handshake.
                            let why = error_close(&error).filter(|_| closing.is_none());
                            let Some(why) = why else { return ended(peer_close, closing) };
                            let goodbye = Message::Close(Some(why.frame()));
                            let _ = tokio::time::timeout(self.rules.close_timeout, self.ws.send(goodbye)).await;
                            return why.parts();
                        }
                        None => return ended(peer_close, closing),
                    }
                }
                _ = ping.tick(), if closing.is_none() => {
                    answer_due.get_or_insert(Instant::now() + self.rules.ping_timeout);
                    let ping =
                        std::pin::pin!(tokio::time::timeout(self.rules.ping_timeout, self.ws.send(Message::Ping(Bytes::new()))));
                    if !matches!(while_in_flight(&mut self.in_flight, ping).await, Ok(Ok(()))) {
                        return ended(peer_close, closing);
                    }
                }
                () = sleep_until(answer_due) => {
                    tracing::info!(conn = peer.id, "no answer to ping, dropping connection");
                    return Close::PingTimeout.parts();
                }
                () = &mut shutdown, if !shutting_down => {
                    // After what is already queued, like any close.
                    shutting_down = true;
                    peer.close(Close::Shutdown);
                }
                frame = &mut aborted => {
                    let parts = close_parts(&frame);
                    let goodbye = finish(self.ws, vec![Message::Close(Some(frame))]);
                    let goodbye = std::pin::pin!(tokio::time::timeout(self.rules.close_timeout, goodbye));
                    let _ = while_in_flight(&mut self.in_flight, goodbye).await;
                    return parts;
                }
                () = sleep_until(deadline) => return ended(peer_close, closing),
            }
        }
    }

    /// Hand a client's message to the plugin, within the rate limit. The
    /// callback gets one poll at once: when the plugin is free (the usual
    /// case) it runs to its end here, as if awaited, and only a callback
    /// that has to wait stays in flight.
    async fn deliver(&mut self, message: Message) {
        if self.expelled {
            return;
        }
        match self.bucket.take(std::time::Instant::now()) {
            Verdict::Allow => {
                // A reply queued by the callback would wake this very task
                // for a second poll; the loop takes the queue right after.
                self.peer.outbox().forget_reader();
                let mut callback = self.plugin.message(self.peer.id, message);
                let done = std::future::poll_fn(|cx| Poll::Ready(callback.as_mut().poll(cx).is_ready())).await;
                if !done {
                    self.in_flight = Some(callback);
                }
            }
            Verdict::Refuse { first } => {
                if first {
                    tracing::warn!(conn = self.peer.id, "rate limit exceeded, dropping messages");
                    let notice = Message::text(r#"{"type":"error","message":"Rate limit exceeded"}"#);
                    let bytes = notice.len();
                    if self.peer.send(notice) == Sent::Queued {
                        self.plugin.metrics().sent(1, bytes);
                    }
                }
            }
            Verdict::Disconnect => {
                tracing::warn!(conn = self.peer.id, "rate limit exceeded for too long, disconnecting");
                self.expelled = true;
                self.peer.close(Close::RateLimited);
            }
        }
    }
}

/// How a batch's write ended.
enum Write {
    /// Written (or failed); a close frame if one was written.
    Done(Result<Option<CloseFrame>, WsError>),
    /// The host dropped the connection meanwhile.
    Aborted(CloseFrame),
    /// The socket took nothing for `ping_timeout`.
    Blocked,
}

/// Do `work` on the socket while the message in flight, if any, goes on.
/// A connection's callback must never wait for its socket: once the plugin's
/// fair lock is handed to it, every other connection of the plugin waits
/// until it runs, and a blocked client would stall them all. `work` comes
/// pinned where the caller made it: moved in, it would take its space twice
/// in the connection's future.
async fn while_in_flight<F: Future>(in_flight: &mut Option<Callback<'_>>, mut work: Pin<&mut F>) -> F::Output {
    loop {
        tokio::select! {
            biased;
            output = work.as_mut() => return output,
            () = finish_in_flight(in_flight), if in_flight.is_some() => *in_flight = None,
        }
    }
}

/// Run the message in flight to its end (never called without one).
async fn finish_in_flight(in_flight: &mut Option<Callback<'_>>) {
    match in_flight {
        Some(callback) => callback.await,
        None => std::future::pending().await,
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
    batch: &mut VecDeque<Outgoing>,
    deflate: Option<Deflate>,
) -> Result<Option<CloseFrame>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(frame) = batch.pop_front() {
        let frame = frame.into_message(deflate);
        if let Message::Close(close) = &frame {
            let close = close.clone().unwrap_or_else(|| Close::NoStatus.frame());
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

/// The close a read error calls for, if the socket can still take one.
fn error_close(error: &WsError) -> Option<Close> {
    match error {
        WsError::Capacity(_) => Some(Close::MessageTooBig),
        WsError::Utf8(_) => Some(Close::InvalidUtf8),
        WsError::Protocol(_) => Some(Close::Protocol),
        _ => None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
