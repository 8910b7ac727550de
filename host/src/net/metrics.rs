//! `GET /metrics` on an address of its own (`[metrics] listen`): the
//! server's [`Metrics`] in the Prometheus text format (0.0.4), or in
//! OpenMetrics when the scraper asks for it. Everything else is 404. No
//! authentication: the address must stay private (SECURITY.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use prometheus_client::registry::Registry as Prometheus;
use tokio::net::TcpListener;

use crate::loading::registry::Registry;
use crate::metrics::Metrics;
use crate::net::server::Shutdown;

/// The OpenMetrics text format's content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics listener, bound, with what it serves.
#[derive(Debug)]
pub(crate) struct Endpoint {
    listener: TcpListener,
    scraper: Arc<Scraper>,
}

/// What a scrape reads: the registry the server's metrics are registered in
/// (this server's own: there is no global one), and the plugins, whose
/// rooms are counted at scrape time.
#[derive(Debug)]
struct Scraper {
    prometheus: Prometheus,
    metrics: Arc<Metrics>,
    plugins: Arc<Registry>,
    /// One scrape at a time: each refreshes the sampled gauges first.
    scraping: Mutex<()>,
}

impl Endpoint {
    /// Bind `listen` and register `metrics` in a registry of their own.
    pub(crate) async fn bind(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
        plugins: Arc<Registry>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot serve metrics on {listen}"))?;
        let mut prometheus = Prometheus::with_prefix("switchboard");
        metrics.register(&mut prometheus);
        let scraper = Scraper { prometheus, metrics, plugins, scraping: Mutex::new(()) };
        Ok(Endpoint { listener, scraper: Arc::new(scraper) })
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve scrapes on a task of their own until the server shuts down.
    /// Like every connection, each holds a [`Shutdown`]: an idle one closes
    /// at once on shutdown, one in the middle of a scrape finishes it.
    pub(crate) fn serve(self, shutdown: Shutdown) {
        let Endpoint { listener, scraper } = self;
        tokio::spawn(async move {
            let mut signal = shutdown.clone();
            loop {
                tokio::select! {
                    () = signal.requested() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => serve_connection(stream, Arc::clone(&scraper), shutdown.clone()),
                        Err(error) => {
                            tracing::warn!("metrics: accept failed: {error}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    },
                }
            }
        });
    }
}

fn serve_connection(stream: tokio::net::TcpStream, scraper: Arc<Scraper>, mut shutdown: Shutdown) {
    tokio::spawn(async move {
        let service = service_fn(move |request| {
            let answer = answer(&request, &scraper);
            async move { Ok::<_, Infallible>(answer) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        if let Err(error) = shutdown.serve(connection, |connection| connection.graceful_shutdown()).await {
            tracing::debug!("metrics connection ended: {error}");
        }
    });
}

/// `GET /metrics`, or 404 / 405.
fn answer<B>(request: &Request<B>, scraper: &Scraper) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n");
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let accept = request.headers().get(header::ACCEPT).and_then(|accept| accept.to_str().ok()).unwrap_or("");
    let openmetrics = accept.contains("application/openmetrics-text");
    match scraper.scrape(openmetrics) {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            let content_type =
                if openmetrics { OPENMETRICS } else { prometheus_client::encoding::prometheus_text::CONTENT_TYPE };
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Err(error) => {
            tracing::error!("metrics: cannot encode: {error}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n")
        }
    }
}

impl Scraper {
    /// Every metric, in OpenMetrics or Prometheus text.
    fn scrape(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let _one_at_a_time = self.scraping.lock();
        let plugins = self.plugins.plugins();
        self.metrics.sample_rooms(plugins.iter().map(|plugin| (&plugin.channel.name, plugin.channel.stats().rooms)));
        let mut text = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.prometheus)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.prometheus)?;
        }
        Ok(text)
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
