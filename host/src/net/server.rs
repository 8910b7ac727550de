//! The server: load the plugins, accept TCP connections, shut down cleanly.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use hyper::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::api::auth::TokenVerifier;
use crate::channel::Channel;
use crate::close::Close;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::loading::registry::Registry;
use crate::loading::watcher::PluginWatcher;
use crate::metrics::{Metrics, Refusal};
use crate::net::metrics::Endpoint;
use crate::runtime::Runtime;
use crate::storage::Durable;

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
    /// Admitted WebSocket connections (upgrading or open), for `max_connections`.
    open_connections: AtomicUsize,
    /// Admitted connections per client address, for `max_connections_per_ip`.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// What the server counts (nothing unless `[metrics] listen` is set).
    pub(crate) metrics: Arc<Metrics>,
}

/// What every connection's task holds, from accept to its end (mini-redis's
/// pattern): the signal to shut down, and, by being alive, the proof that
/// the task is not done. The server waits until every copy is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    signal: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves once the server shuts down.
    pub(crate) async fn requested(&mut self) {
        // An error means the server is gone: that is a shutdown too.
        let _ = self.signal.wait_for(|stop| *stop).await;
    }

    /// Drive an HTTP connection to its end; on shutdown, `graceful` asks it
    /// to finish the request in progress, if any, and close.
    pub(crate) async fn serve<C: Future>(&mut self, connection: C, graceful: impl FnOnce(Pin<&mut C>)) -> C::Output {
        tokio::pin!(connection);
        tokio::select! {
            output = &mut connection => output,
            () = self.requested() => {
                graceful(connection.as_mut());
                connection.await
            }
        }
    }
}

impl Shared {
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn websocket_config(&self, max_message_size: usize, max_send_size: usize) -> WebSocketConfig {
        let limits = &self.config.limits;
        WebSocketConfig::default()
            .read_buffer_size(limits.read_buffer_size)
            .write_buffer_size(limits.write_buffer_size)
            // One message of the largest size a plugin may send fits beside what is buffered.
            .max_write_buffer_size(limits.write_buffer_size + max_send_size + 64)
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

    /// Count a new connection from `ip` to `channel`'s plugin, unless a
    /// limit says no (the status and reason to answer). The slots are
    /// reserved here, before the upgrade, so that concurrent upgrades cannot
    /// overshoot a cap; they are given back when the returned value drops.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        channel: &Arc<Channel>,
    ) -> Result<Admitted, (StatusCode, &'static str)> {
        let mut per_ip = self.per_ip.lock();
        if self.open_connections.load(Ordering::SeqCst) >= self.config.limits.max_connections {
            self.metrics.refused(Refusal::ServerFull);
            return Err((StatusCode::SERVICE_UNAVAILABLE, "the server is full\n"));
        }
        let from_ip = per_ip.entry(ip).or_default();
        if *from_ip >= self.config.limits.max_connections_per_ip {
            self.metrics.refused(Refusal::PerIp);
            return Err((StatusCode::TOO_MANY_REQUESTS, "too many connections from your address\n"));
        }
        if !channel.admit() {
            self.metrics.refused(Refusal::ChannelFull);
            return Err((StatusCode::SERVICE_UNAVAILABLE, "this channel is full\n"));
        }
        *from_ip += 1;
        self.open_connections.fetch_add(1, Ordering::SeqCst);
        Ok(Admitted { shared: Arc::clone(self), channel: Arc::clone(channel), ip })
    }
}

/// One admitted connection, counted until dropped; see [`Shared::admit`].
#[derive(Debug)]
pub(crate) struct Admitted {
    shared: Arc<Shared>,
    channel: Arc<Channel>,
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
        self.channel.release();
    }
}

/// A Switchboard server, bound and with its plugins loaded.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Keeps the plugins folder watched while the server lives.
    watcher: Option<PluginWatcher>,
    /// `GET /metrics`, when `[metrics] listen` is set.
    metrics: Option<Endpoint>,
    /// The link to the other nodes, when clustered; stopped with the server.
    cluster: Option<Arc<Cluster>>,
}

impl Server {
    /// Load the plugins of `config.plugins` and bind `config.listen` (and
    /// `config.metrics.listen`, when set). Files that are not valid plugins
    /// are logged and skipped.
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
        let durable = match &config.store.path {
            Some(path) => {
                let durable = Durable::open(path)?;
                tracing::info!(file = %path.display(), "key-value stores kept in a file");
                Some(Arc::new(durable))
            }
            None => None,
        };
        let metrics = Arc::new(Metrics::new(config.metrics.listen.is_some()));
        let cluster = match &config.cluster.redis {
            Some(url) => Some(Cluster::join(&config.cluster, url, metrics.cluster.clone()).await?),
            None => None,
        };
        if cluster.is_some() && config.store.path.is_some() {
            tracing::warn!("[store] path is not used: clustered nodes keep the key-value stores in Redis");
        }
        let first_connection = cluster.as_ref().map_or(1, |cluster| cluster.first_connection_id());
        let registry = Registry::new(runtime, config.clone(), durable)
            .with_metrics(Arc::clone(&metrics))
            .with_cluster(cluster.clone());
        let registry = Arc::new(registry);
        // Watch before the first scan, so that no change falls between the two.
        let watcher = match config.watch {
            true => Some(PluginWatcher::start(&config.plugins, Arc::clone(&registry))?),
            false => None,
        };
        let loaded = registry.sync_dir(&config.plugins, started).await?;
        tracing::info!(loaded, elapsed = ?started.elapsed(), folder = %config.plugins.display(), "plugins loaded");
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let endpoint = match config.metrics.listen {
            Some(listen) => Some(Endpoint::bind(listen, Arc::clone(&metrics), Arc::clone(&registry)).await?),
            None => None,
        };
        if let Some(address) = endpoint.as_ref().and_then(|endpoint| endpoint.local_addr().ok()) {
            tracing::info!("metrics served at http://{address}/metrics");
        }
        let shared = Arc::new(Shared {
            config,
            registry,
            verifier,
            api_key,
            next_connection: AtomicU64::new(first_connection),
            open_connections: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            metrics,
        });
        Ok(Server { listener, shared, watcher, metrics: endpoint, cluster })
    }

    /// The address the server listens on (with the real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `GET /metrics` is served on, when `[metrics] listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|endpoint| endpoint.local_addr().ok())
    }

    /// Serve until `shutdown` resolves, then shut down: stop accepting, ask
    /// every connection to close (WebSocket connections get 1001 after what
    /// is queued for them, idle HTTP connections are closed), wait up to
    /// `shutdown_grace`, then drop whoever is left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server { listener, shared, watcher, metrics, cluster } = self;
        let (stop, signal) = watch::channel(false);
        let (alive, mut all_done) = mpsc::channel::<()>(1);
        let guard = Shutdown { signal, _alive: alive };
        if let Some(metrics) = metrics {
            metrics.serve(guard.clone());
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, remote)) => serve_http(stream, remote, Arc::clone(&shared), guard.clone()),
                    // Out of file descriptors and the like: keep serving the
                    // connections we have, try again shortly.
                    Err(error) => {
                        tracing::warn!("accept failed: {error}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop((listener, watcher, guard));
        let _ = stop.send(true);
        if let Some(cluster) = &cluster {
            // The other nodes drop this node's users from presence now,
            // without waiting for each client's goodbye.
            cluster.leave().await;
        }
        let limits = &shared.config.limits;
        if tokio::time::timeout(limits.shutdown_grace, all_done.recv()).await.is_err() {
            let open = shared.open_connections.load(Ordering::SeqCst);
            tracing::warn!(open, "shutdown: connections still open after the grace period, dropping them");
            for plugin in shared.registry.plugins() {
                for peer in plugin.channel.peers() {
                    peer.abort(Close::Shutdown);
                }
            }
            let _ = tokio::time::timeout(limits.close_timeout, all_done.recv()).await;
        }
        // Every callback has ended: what the plugins stored goes to disk, and
        // the file is free for whoever opens it next.
        let registry = Arc::clone(&shared.registry);
        if tokio::task::spawn_blocking(move || registry.close_storage()).await.is_err() {
            tracing::error!("shutdown: the key-value store could not be closed");
        }
        if let Some(cluster) = cluster {
            cluster.stop();
        }
        Ok(())
    }
}

/// Serve one TCP connection's HTTP requests (and upgrades) on a task of its
/// own. On shutdown hyper finishes the request in progress, if any, and
/// closes the connection.
fn serve_http(stream: tokio::net::TcpStream, remote: SocketAddr, shared: Arc<Shared>, shutdown: Shutdown) {
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let mut signal = shutdown.clone();
        let service =
            service_fn(move |request| crate::net::http::handle(request, Arc::clone(&shared), remote, shutdown.clone()));
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
        if let Err(error) = signal.serve(connection, |connection| connection.graceful_shutdown()).await {
            tracing::debug!(%remote, "http connection ended: {error}");
        }
    });
}
