//! Plain HTTP: the plugin API, and the WebSocket upgrade on plugin routes.
//!
//! A path no plugin serves gets 404 before any upgrade; a plain GET on a
//! channel route gets 426 (Upgrade Required).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::peer::Peer;
use crate::registry::Routed;
use crate::runtime::ConnectRequest;
use crate::server::Shared;

type Body = Full<Bytes>;

/// Answer one HTTP request.
pub(crate) async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    remote: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path();
    if path == "/api/plugins" {
        return Ok(match *request.method() {
            Method::GET => json(StatusCode::OK, &shared.registry.describe()),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        });
    }
    let Some(routed) = shared.registry.route(path) else {
        return Ok(text(StatusCode::NOT_FOUND, "no channel serves this path\n"));
    };
    Ok(upgrade(request, shared, routed, remote))
}

/// Accept a WebSocket upgrade and start the connection's task.
fn upgrade(mut request: Request<Incoming>, shared: Arc<Shared>, routed: Routed, remote: SocketAddr) -> Response<Body> {
    let Some(accept) = websocket_accept(request.method(), request.headers()) else {
        let mut response = text(StatusCode::UPGRADE_REQUIRED, "this path is a WebSocket channel\n");
        response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        return response;
    };
    let connect = ConnectRequest {
        route: routed.pattern,
        path: request.uri().path().to_owned(),
        params: routed.params,
        query: request
            .uri()
            .query()
            .map(|query| form_urlencoded::parse(query.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        remote_addr: remote.to_string(),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let plugin = routed.plugin;
    let route = connect.route.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%remote, "upgrade failed: {error}");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(shared.websocket_config()))
                .await;
        let (peer, outbox) = Peer::new(shared.next_connection_id(), &route, shared.config.send_queue);
        let _tracked = shared.track_connection();
        crate::websocket::run(ws, Arc::new(peer), outbox, plugin.handle.clone(), connect).await;
    });
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The `Sec-WebSocket-Accept` value for a valid upgrade request, or `None`
/// when the request is not a WebSocket upgrade.
fn websocket_accept(method: &Method, headers: &HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| value.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
        })
    };
    let upgrade = method == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|version| version == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    upgrade.then(|| derive_accept_key(key.as_bytes()))
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
