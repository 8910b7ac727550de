use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use flate2::{Compress, FlushCompress};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard::{Compression, Config};
use switchboard_tests::{TIMEOUT, TestServer, plugins};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// What Chromium offers.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A socket that counts the bytes it reads: what crossed the wire.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read.fetch_add(buf.filled().len() - before, Ordering::Relaxed);
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

/// A client that may offer permessage-deflate; it inflates what the
/// server compresses (the patched tungstenite), and counts the wire bytes.
struct Wire {
    ws: WebSocketStream<Counted>,
    read: Arc<AtomicUsize>,
    /// The server's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
}

impl Wire {
    async fn connect(server: &TestServer, path: &str, offer: Option<&str>) -> anyhow::Result<Wire> {
        let mut request = server.url(path).into_client_request()?;
        if let Some(offer) = offer {
            request.headers_mut().insert("sec-websocket-extensions", offer.parse()?);
        }
        let read = Arc::new(AtomicUsize::new(0));
        let socket = Counted { inner: TcpStream::connect(server.addr).await?, read: Arc::clone(&read) };
        let config = WebSocketConfig::default().permessage_deflate(true);
        let (ws, response) =
            tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async_with_config(request, socket, Some(config)))
                .await
                .context("timed out connecting")??;
        let extensions = response
            .headers()
            .get("sec-websocket-extensions")
            .map(|value| value.to_str().map(str::to_owned))
            .transpose()?;
        Ok(Wire { ws, read, extensions })
    }

    /// The next text or binary message, and the bytes read since the last call.
    async fn recv(&mut self) -> anyhow::Result<(Message, usize)> {
        loop {
            match tokio::time::timeout(TIMEOUT, self.ws.next()).await.context("timed out waiting for a message")? {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    return Ok((message, self.read.swap(0, Ordering::Relaxed)));
                }
                Some(Ok(Message::Close(frame))) => bail!("closed while waiting for a message: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(error)) => bail!("websocket error while waiting for a message: {error}"),
                None => bail!("connection ended while waiting for a message"),
            }
        }
    }

    /// The next message of JSON `type` `kind`.
    async fn recv_type(&mut self, kind: &str) -> anyhow::Result<(Value, usize)> {
        let mut read = 0;
        loop {
            let (message, bytes) = self.recv().await?;
            read += bytes;
            let value: Value = serde_json::from_str(message.to_text()?)?;
            if value["type"] == kind {
                return Ok((value, read));
            }
        }
    }

    /// Send `text` compressed, in frames of at most `fragment` compressed bytes.
    async fn send_compressed(&mut self, text: &str, fragment: usize) -> anyhow::Result<()> {
        let compressed = deflate(text.as_bytes());
        let pieces: Vec<&[u8]> = compressed.chunks(fragment).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            let mut frame = Frame::message(piece.to_vec(), opcode, i + 1 == pieces.len());
            frame.header_mut().rsv1 = i == 0;
            self.ws.feed(Message::Frame(frame)).await?;
        }
        Ok(self.ws.flush().await?)
    }

    /// The server's close frame: its code.
    async fn expect_close(&mut self) -> anyhow::Result<u16> {
        loop {
            match tokio::time::timeout(TIMEOUT, self.ws.next()).await.context("timed out waiting for close")? {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map_or(1005, |frame| frame.code.into())),
                Some(Ok(_)) => {}
                other => bail!("no close frame: {other:?}"),
            }
        }
    }
}

/// Raw DEFLATE, sync-flushed, without the flush's tail (RFC 7692).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    compress.compress_vec(data, &mut out, FlushCompress::Sync).expect("compresses");
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "one call compressed everything");
    out.truncate(out.len() - 4);
    out
}

/// A chat-like JSON text of about `size` bytes.
fn chatty(size: usize) -> String {
    json!({"type": "message", "user": "alice", "content": "the same few words again and again, ".repeat(size / 36)})
        .to_string()
}

#[tokio::test]
async fn a_client_that_offers_deflate_gets_compressed_messages_and_may_send_them() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    let mut client = Wire::connect(&server, "/echo", Some(BROWSER_OFFER)).await?;
    assert_eq!(client.extensions.as_deref(), Some(ACCEPTED));
    let long = chatty(20_000);

    client.send_compressed(&long, usize::MAX).await?;
    let (echo, read) = client.recv().await?;
    assert_eq!(echo, Message::text(long.clone()), "a compressed message is inflated for the plugin");
    assert!(read < long.len() / 10, "the echo crossed the wire compressed: {read} bytes for {}", long.len());

    client.ws.send(Message::text(long.clone())).await?;
    let (echo, read) = client.recv().await?;
    assert_eq!(echo, Message::text(long.clone()), "plain messages are taken too");
    assert!(read < long.len() / 10, "{read} bytes");

    // A message split over frames, only the first one marked compressed.
    client.send_compressed(&long, 100).await?;
    assert_eq!(client.recv().await?.0, Message::text(long.clone()));

    // Short messages are not worth compressing (min_size, 128 bytes).
    let short = "x".repeat(100);
    client.ws.send(Message::text(short.clone())).await?;
    let (echo, read) = client.recv().await?;
    assert_eq!(echo, Message::text(short.clone()));
    assert!(read >= short.len(), "{read} bytes for a {}-byte message", short.len());

    // Without the offer: no extension, every byte on the wire.
    let mut plain = Wire::connect(&server, "/echo", None).await?;
    assert_eq!(plain.extensions, None);
    plain.ws.send(Message::text(long.clone())).await?;
    let (echo, read) = plain.recv().await?;
    assert_eq!(echo, Message::text(long.clone()));
    assert!(read > long.len(), "{read} bytes");
    Ok(())
}

#[tokio::test]
async fn a_broadcast_reaches_compressing_and_plain_members_alike() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::CHAT]).await?;
    let mut members = Vec::new();
    for (user, offer) in [("ann", Some(BROWSER_OFFER)), ("bob", None), ("cat", Some("permessage-deflate"))] {
        let mut member = Wire::connect(&server, &format!("/chat/lobby?user={user}"), offer).await?;
        member.recv_type("connected").await?;
        members.push(member);
    }
    let content = "the same few words again and again, ".repeat(200);
    let message = json!({"type": "message", "user": "dan", "content": content});
    let mut sender = Wire::connect(&server, "/chat/lobby?user=dan", Some(BROWSER_OFFER)).await?;
    sender.ws.send(Message::text(message.to_string())).await?;
    let mut read = Vec::new();
    for member in &mut members {
        let (received, bytes) = member.recv_type("message").await?;
        assert_eq!(received["content"], content.as_str());
        read.push(bytes);
    }
    let [ann, bob, cat] = read[..] else { unreachable!() };
    assert!(bob > content.len(), "the plain member read {bob} bytes");
    assert!(ann < bob / 5 && cat < bob / 5, "compressing members read {ann} and {cat} bytes, the plain one {bob}");
    Ok(())
}

#[tokio::test]
async fn a_message_that_inflates_past_the_limit_closes_with_1009_and_others_go_on() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.limits.max_message_size = 64 * 1024;
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    let mut bystander = Wire::connect(&server, "/echo", Some(BROWSER_OFFER)).await?;
    let mut bomber = Wire::connect(&server, "/echo", Some(BROWSER_OFFER)).await?;
    // 16 MiB of zeros in about 16 KiB: small on the wire, far over the limit inflated.
    let bomb = "\0".repeat(16 << 20);
    bomber.send_compressed(&bomb, usize::MAX).await?;
    assert_eq!(bomber.expect_close().await?, 1009);
    // Just under the limit inflated is fine.
    let fits = "y".repeat(64 * 1024 - 16);
    bystander.send_compressed(&fits, usize::MAX).await?;
    assert_eq!(bystander.recv().await?.0, Message::text(fits));
    Ok(())
}

#[tokio::test]
async fn a_compressed_frame_without_agreement_or_garbage_is_a_protocol_error() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::ECHO]).await?;
    let mut unasked = Wire::connect(&server, "/echo", None).await?;
    unasked.send_compressed(&chatty(1000), usize::MAX).await?;
    assert_eq!(unasked.expect_close().await?, 1002, "RSV1 without the extension");

    let mut garbled = Wire::connect(&server, "/echo", Some(BROWSER_OFFER)).await?;
    let mut frame = Frame::message(vec![0xff; 64], OpCode::Data(Data::Text), true);
    frame.header_mut().rsv1 = true;
    garbled.ws.send(Message::Frame(frame)).await?;
    assert_eq!(garbled.expect_close().await?, 1002, "data that does not inflate");

    let mut marked_continuation = Wire::connect(&server, "/echo", Some(BROWSER_OFFER)).await?;
    let compressed = deflate(chatty(1000).as_bytes());
    let (first, rest) = compressed.split_at(compressed.len() / 2);
    let mut frame = Frame::message(first.to_vec(), OpCode::Data(Data::Text), false);
    frame.header_mut().rsv1 = true;
    marked_continuation.ws.feed(Message::Frame(frame)).await?;
    let mut frame = Frame::message(rest.to_vec(), OpCode::Data(Data::Continue), true);
    frame.header_mut().rsv1 = true;
    marked_continuation.ws.send(Message::Frame(frame)).await?;
    assert_eq!(marked_continuation.expect_close().await?, 1002, "RSV1 on a continuation frame");

    let mut marked_ping = Wire::connect(&server, "/echo", Some(BROWSER_OFFER)).await?;
    let mut frame = Frame::ping(Vec::new());
    frame.header_mut().rsv1 = true;
    marked_ping.ws.send(Message::Frame(frame)).await?;
    assert_eq!(marked_ping.expect_close().await?, 1002, "RSV1 on a control frame");
    Ok(())
}

#[tokio::test]
async fn compression_can_be_turned_off() -> anyhow::Result<()> {
    let config = Config { compression: Compression { enabled: false, ..Compression::default() }, ..Config::default() };
    let server = TestServer::start_with(&[plugins::ECHO], config).await?;
    let mut client = Wire::connect(&server, "/echo", Some(BROWSER_OFFER)).await?;
    assert_eq!(client.extensions, None);
    let long = chatty(5000);
    client.ws.send(Message::text(long.clone())).await?;
    let (echo, read) = client.recv().await?;
    assert_eq!(echo, Message::text(long.clone()));
    assert!(read > long.len(), "{read} bytes");
    Ok(())
}
