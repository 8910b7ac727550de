//! The server: load the plugins, accept TCP connections, shut down cleanly.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::TokenVerifier;
use crate::config::{Config, Limits};
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::watcher::PluginWatcher;

/// How long shutdown waits for connections to finish their closing handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Each connection's read buffer, allocated up front. tungstenite's default
/// (128 KiB) would cost over a gigabyte for 10k idle connections; 4 KiB cost
/// 10.9 KiB of RSS per idle connection in the bench, 1 KiB costs 8.0 KiB.
/// Larger messages are assembled elsewhere, so this only sets the read size.
const READ_BUFFER: usize = 1024;
/// Queued outgoing bytes before a write goes to the socket; `feed` fills it,
/// `flush` empties it.
const WRITE_BUFFER: usize = 64 * 1024;

/// State shared by every connection's task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) registry: Arc<Registry>,
    /// Checks tokens; `None` when no secret is configured.
    pub(crate) verifier: Option<TokenVerifier>,
    /// The key `POST /api/publish` demands; `None` refuses every request.
    pub(crate) api_key: Option<String>,
    /// The next connection id; ids are never reused while the server runs.
    next_connection: AtomicU64,
    /// Open WebSocket connections, for `max_connections` and so that
    /// shutdown knows when all are closed.
    open_connections: AtomicUsize,
    /// Open connections per client address, for `max_connections_per_ip`.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Signalled whenever a connection ends.
    connection_ended: Notify,
}

impl Shared {
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn websocket_config(&self, max_message_size: usize) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            // Plugins may send up to 16 MiB in one message (host_api.rs).
            .max_write_buffer_size(WRITE_BUFFER + (16 << 20))
            .max_message_size(Some(max_message_size))
            .max_frame_size(Some(max_message_size))
    }

    /// Whether a request's `Origin` may open a connection: any when the
    /// allow-list is empty, and requests without one (non-browser clients).
    pub(crate) fn origin_allowed(&self, headers: &hyper::HeaderMap) -> bool {
        let allowed = &self.config.allowed_origins;
        match headers.get(hyper::header::ORIGIN).map(|origin| origin.to_str()) {
            _ if allowed.is_empty() => true,
            None => true,
            Some(Ok(origin)) => allowed.iter().any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin)),
            Some(Err(_)) => false,
        }
    }

    /// Count a new connection from `ip` to a plugin that has `channel_open`
    /// connections, unless a limit says no (the status and reason to answer).
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &Limits,
        channel_open: usize,
    ) -> Result<Admitted, (StatusCode, &'static str)> {
        if channel_open >= limits.max_connections {
            return Err((StatusCode::SERVICE_UNAVAILABLE, "this channel is full\n"));
        }
        let mut per_ip = self.per_ip.lock();
        if self.open_connections.load(Ordering::SeqCst) >= self.config.limits.max_connections {
            return Err((StatusCode::SERVICE_UNAVAILABLE, "the server is full\n"));
        }
        let from_ip = per_ip.entry(ip).or_default();
        if *from_ip >= self.config.limits.max_connections_per_ip {
            return Err((StatusCode::TOO_MANY_REQUESTS, "too many connections from your address\n"));
        }
        *from_ip += 1;
        self.open_connections.fetch_add(1, Ordering::SeqCst);
        Ok(Admitted { shared: Arc::clone(self), ip })
    }
}

/// One admitted connection, counted until dropped; see [`Shared::admit`].
#[derive(Debug)]
pub(crate) struct Admitted {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_ip = self.shared.per_ip.lock();
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.shared.open_connections.fetch_sub(1, Ordering::SeqCst);
        self.shared.connection_ended.notify_waiters();
    }
}

/// A Switchboard server, bound and with its plugins loaded.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Keeps the plugins folder watched while the server lives.
    watcher: Option<PluginWatcher>,
}

impl Server {
    /// Load the plugins of `config.plugins` and bind `config.listen`. Files
    /// that are not valid plugins are logged and skipped.
    pub async fn bind(mut config: Config) -> anyhow::Result<Server> {
        config.validate()?;
        let started = Instant::now();
        // One spelling for every plugin file: the watcher reports absolute
        // paths, so a relative folder would make a changed file look like a
        // second plugin of the same name.
        config.plugins = std::fs::canonicalize(&config.plugins)
            .with_context(|| format!("cannot read plugins folder {}", config.plugins.display()))?;
        let verifier = config.auth.resolve_secret()?.map(|secret| TokenVerifier::new(&secret));
        let api_key = config.api.resolve_key()?;
        let runtime = Runtime::new(config.compile_cache_dir().as_deref())?;
        let registry = Arc::new(Registry::new(runtime, config.clone()));
        // Watch before the first scan, so that no change falls between the two.
        let watcher = match config.watch {
            true => Some(PluginWatcher::start(&config.plugins, Arc::clone(&registry))?),
            false => None,
        };
        let loaded = registry.sync_dir(&config.plugins, started).await?;
        tracing::info!(loaded, elapsed = ?started.elapsed(), folder = %config.plugins.display(), "plugins loaded");
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let shared = Arc::new(Shared {
            config,
            registry,
            verifier,
            api_key,
            next_connection: AtomicU64::new(1),
            open_connections: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            connection_ended: Notify::new(),
        });
        Ok(Server { listener, shared, watcher })
    }

    /// The address the server listens on (with the real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` resolves, then close every connection with
    /// 1001 and wait (a bounded time) for them to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server { listener, shared, watcher } = self;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, remote)) => serve_http(stream, remote, Arc::clone(&shared)),
                    // Out of file descriptors and the like: keep serving the
                    // connections we have, try again shortly.
                    Err(error) => {
                        tracing::warn!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop((listener, watcher));
        close_all(&shared).await;
        Ok(())
    }
}

fn serve_http(stream: tokio::net::TcpStream, remote: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let service = service_fn(move |request| crate::http::handle(request, Arc::clone(&shared), remote));
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
        if let Err(error) = connection.await {
            tracing::debug!(%remote, "http connection ended: {error}");
        }
    });
}

/// Close every WebSocket connection with 1001, after what is already
/// queued for it, and wait (a bounded time) until they are gone.
async fn close_all(shared: &Shared) {
    for plugin in shared.registry.plugins() {
        for peer in plugin.channel.peers() {
            peer.close(1001, "server shutting down");
        }
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    loop {
        let ended = shared.connection_ended.notified();
        let open = shared.open_connections.load(Ordering::SeqCst);
        if open == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, ended).await.is_err() {
            tracing::warn!(open, "shutdown: connections still open after the grace period");
            break;
        }
    }
}
