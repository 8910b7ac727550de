//! `switchboard connect URL`: a minimal command-line WebSocket client.
//! Lines typed on stdin are sent as text messages; what arrives is printed.

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

#[allow(clippy::print_stdout, reason = "printing what arrives is this command's job")]
pub(crate) async fn run(url: &str) -> anyhow::Result<()> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("cannot connect to {url}"))?;
    let (mut sink, mut stream) = ws.split();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line? {
                Some(line) => sink.send(Message::text(line)).await?,
                None => {
                    stdin_open = false;
                    sink.send(Message::Close(None)).await?;
                }
            },
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => println!("{text}"),
                Some(Ok(Message::Binary(bytes))) => println!("<{} bytes of binary>", bytes.len()),
                Some(Ok(Message::Close(frame))) => {
                    match frame {
                        Some(frame) => println!("<closed: {} {}>", u16::from(frame.code), frame.reason),
                        None => println!("<closed>"),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => return Ok(()),
            },
        }
    }
}
