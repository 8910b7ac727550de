//! Test support: a real Switchboard server on `127.0.0.1:0` with real
//! compiled plugins, and a WebSocket client that waits for events with a
//! timeout instead of sleeping.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard::{Config, Server};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod node_process;
mod redis_server;
pub use crate::node_process::NodeProcess;
pub use crate::redis_server::RedisServer;

/// Where the plugins built by `build.rs` are.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// Plugin binaries kept as they were built (see `fixtures/README.md`).
pub mod fixtures {
    /// The chat plugin built for the 0.1.0 contract.
    pub const CHAT_0_1_0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/chat-0.1.0.wasm");
}

/// The JavaScript example plugin, as `scripts/build-js-plugins` builds it
/// (`scripts/test` runs that first).
pub const ECHO_JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/echo-js/dist/echo_js.wasm");

/// [`ECHO_JS`], or an error that says how to build it.
pub fn echo_js() -> anyhow::Result<&'static str> {
    anyhow::ensure!(Path::new(ECHO_JS).is_file(), "{ECHO_JS} is missing: run scripts/build-js-plugins (Node.js 18+)");
    Ok(ECHO_JS)
}

/// How long a test waits for an expected event before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Send test logs to the test's output (shown for failing tests).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// A server running in this process on a free port, with its own plugins folder.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its plugins folder (deleted when the server is dropped).
    pub plugins: tempfile::TempDir,
    /// Where it serves `GET /metrics`, when the config set `[metrics] listen`.
    pub metrics_addr: Option<SocketAddr>,
    /// Its own compile cache, unless the test chose one: a server that
    /// shared the user's cache would start some plugins optimised and some
    /// quick, depending on what ran before it on the machine.
    compile_cache: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Start a server whose plugins folder holds copies of `plugins`
    /// (paths from [`plugins`]).
    pub async fn start(plugins: &[&str]) -> anyhow::Result<TestServer> {
        TestServer::start_with(plugins, Config::default()).await
    }

    /// Like [`TestServer::start`], with settings; `listen` and `plugins` are
    /// replaced. Unless `config` names a compile cache, the server gets an
    /// empty one of its own and this returns once every plugin serves its
    /// optimised build: a quick build taking over mid-test would reset the
    /// plugins' in-memory state (tier-up is tested on its own, with an
    /// explicit cache).
    pub async fn start_with(plugins: &[&str], mut config: Config) -> anyhow::Result<TestServer> {
        init_logs();
        let own_cache = match config.compile_cache {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        if let Some(cache) = &own_cache {
            config.compile_cache = Some(cache.path().to_owned());
        }
        let folder = tempfile::tempdir()?;
        for plugin in plugins {
            copy_plugin(plugin, folder.path())?;
        }
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        // Relative, as in switchboard.toml: the watcher reports absolute
        // paths, and a changed file must still be the same plugin.
        config.plugins = relative_to_cwd(folder.path())?;
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?;
        let metrics_addr = server.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let server = TestServer {
            addr,
            plugins: folder,
            metrics_addr,
            compile_cache: own_cache,
            stop: Some(stop),
            task: Some(task),
        };
        if server.compile_cache.is_some() {
            server.wait_for_api("every plugin's optimised build", all_optimised).await?;
        }
        Ok(server)
    }

    /// `ws://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Open a WebSocket connection to `path`.
    pub async fn connect(&self, path: &str) -> anyhow::Result<Client> {
        self.connect_with(path, &[]).await
    }

    /// Open a WebSocket connection to `path` with extra request headers.
    pub async fn connect_with(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Client> {
        Ok(Client { ws: self.handshake(path, headers).await? })
    }

    /// Try to open a connection and return the HTTP status of a refusal.
    pub async fn refused_status(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<u16> {
        match self.handshake(path, headers).await {
            Ok(_) => bail!("the connection to {path} was accepted"),
            Err(error) => match error.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
                Some(tokio_tungstenite::tungstenite::Error::Http(response)) => Ok(response.status().as_u16()),
                _ => Err(error),
            },
        }
    }

    async fn handshake(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<WebSocketStream<MaybeTlsStream<TcpStream>>> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self.url(path).into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())?, value.parse()?);
        }
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .context("timed out connecting")??;
        Ok(ws)
    }

    /// A plain HTTP/1.1 GET: the status code and the body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let (status, _, body) = self.request("GET", path, &[]).await?;
        Ok((status, body))
    }

    /// A plain HTTP/1.1 request: status, headers (lower-case names), body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Vec<(String, String)>, String)> {
        self.request_with_body(method, path, headers, "").await
    }

    /// Like [`TestServer::request`], with a body (give its content-length).
    pub async fn request_with_body(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, Vec<(String, String)>, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(self.addr).await?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response)).await??;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").context("no end of headers")?;
        let mut lines = head.lines();
        let status = lines.next().and_then(|line| line.split(' ').nth(1)).context("no status")?.parse()?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Ok((status, headers, body.to_owned()))
    }

    /// `GET PATH` on the metrics address: the status and the body.
    pub async fn get_metrics(&self, path: &str) -> anyhow::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.metrics_addr.context("the server serves no metrics: set [metrics] listen")?;
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response)).await??;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").context("no end of headers")?;
        let status = head.split(' ').nth(1).context("no status")?.parse()?;
        Ok((status, body.to_owned()))
    }

    /// A scrape of `GET /metrics`: each sample (`name{labels}`, exactly as
    /// written) and its value.
    pub async fn scrape(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let (status, body) = self.get_metrics("/metrics").await?;
        anyhow::ensure!(status == 200, "GET /metrics answered {status}: {body}");
        body.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (sample, value) = line.rsplit_once(' ').with_context(|| format!("not a sample: {line}"))?;
                Ok((sample.to_owned(), value.parse()?))
            })
            .collect()
    }

    /// `GET /api/plugins`, parsed.
    pub async fn plugins_api(&self) -> anyhow::Result<Value> {
        let (status, body) = self.get("/api/plugins").await?;
        anyhow::ensure!(status == 200, "GET /api/plugins answered {status}: {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// Poll `GET /api/plugins` until `done` holds for it; fails after [`TIMEOUT`].
    pub async fn wait_for_api(&self, what: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let api = self.plugins_api().await?;
            if done(&api) {
                return Ok(api);
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last: {api}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The plugin called `name` in `GET /api/plugins`, if loaded.
    pub async fn plugin_state(&self, name: &str) -> anyhow::Result<Option<Value>> {
        Ok(plugin_in(&self.plugins_api().await?, name).cloned())
    }

    /// Stop the server (closing every connection with 1001) and wait for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => tokio::time::timeout(TIMEOUT, task).await.context("server did not stop")??,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Whether every plugin of a `GET /api/plugins` answer serves its optimised build.
pub fn all_optimised(api: &Value) -> bool {
    api["plugins"].as_array().is_some_and(|plugins| plugins.iter().all(|plugin| plugin["optimised"] == true))
}

/// The entry of plugin `name` in a `GET /api/plugins` answer.
pub fn plugin_in<'a>(api: &'a Value, name: &str) -> Option<&'a Value> {
    api["plugins"].as_array()?.iter().find(|plugin| plugin["name"] == name)
}

/// A copy of a component that behaves the same but has other bytes (a
/// custom section holding `marker` is appended), so the server sees a new
/// version.
pub fn variant(wasm: &[u8], marker: u32) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"switchboard-test-variant";
    let mut section = Vec::new();
    leb128(name.len(), &mut section);
    section.extend_from_slice(name);
    section.extend_from_slice(&marker.to_le_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb128(section.len(), &mut out);
    out.extend_from_slice(&section);
    out
}

/// Copy a built plugin into a plugins folder, keeping its file name.
pub fn copy_plugin(plugin: &str, folder: &Path) -> anyhow::Result<()> {
    let source = Path::new(plugin);
    let name = source.file_name().context("plugin path has no file name")?;
    std::fs::copy(source, folder.join(name)).with_context(|| format!("copying {plugin}"))?;
    Ok(())
}

/// A WebSocket client whose every wait has a timeout.
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl From<WebSocketStream<MaybeTlsStream<TcpStream>>> for Client {
    fn from(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Client { ws }
    }
}

impl Client {
    /// Wait until the server ends the connection (after its close frame,
    /// which tungstenite answers): what is still read is skipped.
    pub async fn ended(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while let Some(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await.context("still open")? {
            if frame.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Send a text frame.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::text(text)).await?)
    }

    /// Send `value` as a JSON text frame.
    pub async fn send_json(&mut self, value: &Value) -> anyhow::Result<()> {
        self.send_text(&value.to_string()).await
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::binary(bytes.to_vec())).await?)
    }

    /// The next text or binary message (control frames are skipped).
    pub async fn recv(&mut self) -> anyhow::Result<Message> {
        self.recv_within(TIMEOUT).await
    }

    /// The next JSON text, waiting up to `wait` (for events that are due
    /// later than [`TIMEOUT`]).
    pub async fn recv_json_within(&mut self, wait: Duration) -> anyhow::Result<Value> {
        match self.recv_within(wait).await? {
            Message::Text(text) => serde_json::from_str(&text).with_context(|| format!("not JSON: {text}")),
            other => bail!("expected a text message, got {other:?}"),
        }
    }

    async fn recv_within(&mut self, wait: Duration) -> anyhow::Result<Message> {
        loop {
            let next = tokio::time::timeout(wait, self.ws.next()).await.context("timed out waiting for a message")?;
            match next {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => return Ok(message),
                Some(Ok(Message::Close(frame))) => bail!("connection closed while waiting for a message: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(error)) => bail!("websocket error while waiting for a message: {error}"),
                None => bail!("connection ended while waiting for a message"),
            }
        }
    }

    /// The next message, which must be text.
    pub async fn recv_text(&mut self) -> anyhow::Result<String> {
        match self.recv().await? {
            Message::Text(text) => Ok(text.as_str().to_owned()),
            other => bail!("expected a text message, got {other:?}"),
        }
    }

    /// The next message, which must be a JSON text.
    pub async fn recv_json(&mut self) -> anyhow::Result<Value> {
        let text = self.recv_text().await?;
        serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
    }

    /// Skip messages until one whose `type` is `kind`; return it.
    pub async fn recv_type(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let message = self.recv_json().await?;
            if message["type"] == kind {
                return Ok(message);
            }
        }
    }

    /// Wait for the server's close frame (skipping messages before it);
    /// returns its code and reason.
    pub async fn expect_close(&mut self) -> anyhow::Result<(u16, String)> {
        loop {
            let next = tokio::time::timeout(TIMEOUT, self.ws.next()).await.context("timed out waiting for close")?;
            match next {
                Some(Ok(Message::Close(Some(frame)))) => return Ok((u16::from(frame.code), frame.reason.to_string())),
                Some(Ok(Message::Close(None))) => return Ok((u16::from(CloseCode::Status), String::new())),
                Some(Ok(_)) => {}
                Some(Err(error)) => bail!("websocket error instead of a close frame: {error}"),
                None => bail!("connection ended without a close frame"),
            }
        }
    }

    /// The raw WebSocket, to split into a sender and a receiver.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    /// Every message until the server's close frame, and the frame's code
    /// and reason.
    pub async fn recv_until_close(&mut self) -> anyhow::Result<(Vec<Message>, (u16, String))> {
        let mut messages = Vec::new();
        loop {
            let next = tokio::time::timeout(TIMEOUT, self.ws.next()).await.context("timed out waiting for close")?;
            match next {
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.map_or((u16::from(CloseCode::Status), String::new()), |frame| {
                        (u16::from(frame.code), frame.reason.to_string())
                    });
                    return Ok((messages, frame));
                }
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => messages.push(message),
                Some(Ok(_)) => {}
                Some(Err(error)) => bail!("websocket error instead of a close frame: {error}"),
                None => bail!("connection ended without a close frame"),
            }
        }
    }

    /// Close from the client side with 1000 and wait for the server's answer.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.ws.close(None).await?;
        while let Some(Ok(_)) = tokio::time::timeout(TIMEOUT, self.ws.next()).await.context("close timed out")? {}
        Ok(())
    }
}

/// `path` (absolute) spelled relative to the current directory.
fn relative_to_cwd(path: &Path) -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    let mut relative: PathBuf = cwd.components().skip(1).map(|_| "..").collect();
    relative.push(path.strip_prefix("/").context("the temporary folder is not absolute")?);
    Ok(relative)
}
