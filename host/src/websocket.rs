//! One WebSocket connection: frames in, to the plugin; frames out, from the
//! connection's queue, batched into as few writes as possible.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::peer::{Peer, close_frame};
use crate::runtime::{ConnectRequest, PluginHandle};

/// How long the closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most frames written before one flush: a broadcast burst becomes one
/// syscall per connection instead of one per frame.
const MAX_BATCH: usize = 64;

/// The code reported to `on-close` when the socket ended without a close frame.
const CLOSE_ABNORMAL: u16 = 1006;

/// Serve one upgraded connection until it closes, then tell the plugin.
pub(crate) async fn run<S>(
    mut ws: WebSocketStream<S>,
    peer: Arc<Peer>,
    mut outbox: mpsc::Receiver<Message>,
    plugin: PluginHandle,
    request: ConnectRequest,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(rejection) = plugin.connect(Arc::clone(&peer), request).await {
        tracing::debug!(conn = peer.id, code = rejection.code, reason = rejection.reason, "connection refused");
        // What on-connect queued (an explanation, say) goes out before the close.
        outbox.close();
        let mut frames = Vec::new();
        while let Ok(frame) = outbox.try_recv() {
            frames.push(frame);
        }
        frames.push(Message::Close(Some(close_frame(rejection.code, &rejection.reason))));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, finish(&mut ws, frames)).await;
        return;
    }
    let (code, reason) = pump(&mut ws, &peer, &mut outbox, &plugin).await;
    tracing::debug!(conn = peer.id, code, reason, "connection closed");
    plugin.closed(peer.id, code, reason).await;
}

/// Write `frames` and wait for the peer to end the connection.
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, frames: Vec<Message>) {
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

/// Move frames both ways until the connection ends; returns the close code
/// and reason to report.
async fn pump<S>(
    ws: &mut WebSocketStream<S>,
    peer: &Peer,
    outbox: &mut mpsc::Receiver<Message>,
    plugin: &PluginHandle,
) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Set once a close frame went out: the code to report, and when to give
    // up waiting for the peer's answer.
    let mut closing: Option<((u16, String), tokio::time::Instant)> = None;
    let mut peer_close: Option<(u16, String)> = None;
    loop {
        let deadline = closing.as_ref().map(|(_, deadline)| *deadline);
        tokio::select! {
            Some(first) = outbox.recv(), if closing.is_none() => {
                match write_batch(ws, first, outbox).await {
                    Ok(Some(sent)) => {
                        closing = Some((close_parts(&sent), tokio::time::Instant::now() + CLOSE_TIMEOUT));
                    }
                    Ok(None) => {}
                    Err(_) => return peer_close.unwrap_or((CLOSE_ABNORMAL, String::new())),
                }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if closing.is_none() && plugin.message(peer.id, message).await.is_err() {
                        peer.abort(1001, "channel unloaded");
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite answers the close frame itself; the stream ends next.
                    peer_close = Some(frame.as_ref().map_or((1005, String::new()), close_parts));
                }
                Some(Ok(_)) => {} // ping and pong: tungstenite answers pings itself.
                Some(Err(error)) => {
                    let (code, reason) = error_close(&error);
                    tracing::debug!(conn = peer.id, "websocket error: {error}");
                    if let Some(code) = code {
                        let frame = close_frame(code, reason);
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Close(Some(frame)))).await;
                        return (code, reason.to_owned());
                    }
                    return peer_close.or(closing.map(|(sent, _)| sent)).unwrap_or((CLOSE_ABNORMAL, String::new()));
                }
                None => {
                    return peer_close.or(closing.map(|(sent, _)| sent)).unwrap_or((CLOSE_ABNORMAL, String::new()));
                }
            },
            frame = peer.aborted() => {
                let parts = close_parts(&frame);
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, finish(ws, vec![Message::Close(Some(frame))])).await;
                return parts;
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                return closing.map(|(sent, _)| sent).unwrap_or((CLOSE_ABNORMAL, String::new()));
            }
        }
    }
}

/// Write `first` and whatever else is queued (up to a batch), then flush
/// once. Returns the close frame if one was written: nothing may follow it.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    first: Message,
    outbox: &mut mpsc::Receiver<Message>,
) -> Result<Option<CloseFrame>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut next = Some(first);
    let mut written = 0;
    while let Some(frame) = next.take() {
        let close = match &frame {
            Message::Close(close) => Some(close.clone().unwrap_or_else(|| close_frame(1000, ""))),
            _ => None,
        };
        ws.feed(frame).await?;
        written += 1;
        if close.is_some() {
            ws.flush().await?;
            return Ok(close);
        }
        if written < MAX_BATCH {
            next = outbox.try_recv().ok();
        }
    }
    ws.flush().await?;
    Ok(None)
}

fn close_parts(frame: &CloseFrame) -> (u16, String) {
    (u16::from(frame.code), frame.reason.as_str().to_owned())
}

/// The close code a read error calls for, if the socket can still take one.
fn error_close(error: &WsError) -> (Option<u16>, &'static str) {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => (Some(1009), "message too big"),
        WsError::Capacity(_) => (Some(1009), "frame too big"),
        WsError::Utf8(_) => (Some(1007), "invalid UTF-8"),
        WsError::Protocol(_) => (Some(1002), "protocol error"),
        _ => (None, ""),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
