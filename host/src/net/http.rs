//! Plain HTTP: the plugin API, and the WebSocket upgrade on plugin routes.
//!
//! Before an upgrade the host checks, in order: a plugin serves the path
//! (404), it is a WebSocket handshake (426), the `Origin` is allowed (403),
//! and the connection limits (503 server or channel full, 429 too many from
//! one address). Tokens are checked after the upgrade, so that a browser
//! sees the reason in the close frame (1008).

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
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::api::auth::{Identity, identify};
use crate::channel::peer::Peer;
use crate::close::{Close, close_frame};
use crate::deflate::{self, Deflate};
use crate::loading::registry::Routed;
use crate::metrics::Refusal;
use crate::net::server::{Shared, Shutdown};
use crate::net::websocket::Rules;
use crate::runtime::ConnectRequest;

type Body = Full<Bytes>;

/// Answer one HTTP request.
pub(crate) async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    remote: SocketAddr,
    shutdown: Shutdown,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path();
    if path.starts_with("/api/") {
        return Ok(api(request, &shared).await);
    }
    let Some(routed) = shared.registry.route(path) else {
        let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
        return Ok(match crate::net::static_files::resolve(&shared.config.public, path).filter(|_| is_read) {
            Some(file) => {
                let max = shared.config.limits.max_static_file;
                crate::net::static_files::serve(&file, max, request.method(), request.headers()).await
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        });
    };
    Ok(upgrade(request, shared, routed, remote, shutdown))
}

/// `/api/*`, with CORS for the allowed origins.
async fn api(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let origin = request.headers().get(header::ORIGIN).cloned();
    if origin.is_some() && !shared.origin_allowed(request.headers()) {
        return text(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let mut response = match (request.method(), request.uri().path()) {
        (&Method::POST, "/api/publish") => {
            let response = publish(request, shared).await;
            shared.metrics.publish_answered(response.status().as_u16());
            response
        }
        (_, "/api/publish") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        (&Method::OPTIONS, _) => {
            let mut response = text(StatusCode::NO_CONTENT, "");
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
            headers
                .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            response
        }
        (&Method::GET, "/api/plugins") => json(StatusCode::OK, &shared.registry.describe()),
        (_, "/api/plugins") => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        _ => text(StatusCode::NOT_FOUND, "no such API\n"),
    };
    if let Some(origin) = origin {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// `POST /api/publish`: check the key, read and check the body, deliver.
async fn publish(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    use http_body_util::{BodyExt, Limited};
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    if !crate::api::publish::authorised(authorization, shared.api_key.as_deref()) {
        return error(StatusCode::UNAUTHORIZED, "a valid `Authorization: Bearer <api key>` header is required");
    }
    let max = shared.config.limits.max_publish_body;
    let body = match Limited::new(request.into_body(), max).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {max} bytes or was cut short"),
            );
        }
    };
    let outcome = match crate::api::publish::parse(&body) {
        Ok(publish) => crate::api::publish::deliver(&shared.registry, publish).await,
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(answer) => json(StatusCode::OK, &answer),
        Err(failure) => {
            tracing::info!(status = failure.status, "publish refused: {}", failure.error);
            let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, &failure.error)
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// Accept a WebSocket upgrade and start the connection's task.
fn upgrade(
    mut request: Request<Incoming>,
    shared: Arc<Shared>,
    routed: Routed,
    remote: SocketAddr,
    shutdown: Shutdown,
) -> Response<Body> {
    let Some(accept) = websocket_accept(request.method(), request.headers()) else {
        let mut response = text(StatusCode::UPGRADE_REQUIRED, "this path is a WebSocket channel\n");
        response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        return response;
    };
    if !shared.origin_allowed(request.headers()) {
        tracing::info!(%remote, origin = ?request.headers().get(header::ORIGIN), "origin refused");
        shared.metrics.refused(Refusal::Origin);
        return text(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let plugin = routed.plugin;
    let name = plugin.info.name.as_str();
    let limits = shared.config.limits_for(name);
    let admitted = match shared.admit(remote.ip(), &plugin.channel) {
        Ok(admitted) => admitted,
        Err((status, why)) => {
            tracing::warn!(%remote, plugin = name, "connection refused: {why}");
            return text(status, why);
        }
    };
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|query| form_urlencoded::parse(query.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let identity = identify(shared.verifier.as_ref(), &query, request.headers(), shared.config.auth_required(name));
    let connect = ConnectRequest {
        route: routed.pattern,
        path: request.uri().path().to_owned(),
        params: routed.params,
        query,
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        remote_addr: remote.to_string(),
        claims: match &identity {
            Identity::Verified(claims) => Some(claims.clone()),
            _ => None,
        },
    };
    let rules = Rules {
        messages_per_second: limits.messages_per_second,
        message_burst: limits.message_burst,
        ping_interval: shared.config.keepalive.ping_interval,
        ping_timeout: shared.config.keepalive.ping_timeout,
        close_timeout: shared.config.limits.close_timeout,
        deflate: Deflate::negotiate(&shared.config.compression, request.headers()),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let _admitted = admitted;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%remote, "upgrade failed: {error}");
                return;
            }
        };
        let config = shared
            .websocket_config(limits.max_message_size, limits.max_send_size)
            .permessage_deflate(rules.deflate.is_some());
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        if let Identity::Refused(reason) = identity {
            tracing::info!(%remote, plugin = plugin.info.name, "token refused: {reason}");
            shared.metrics.refused(Refusal::Token);
            let goodbye = Message::Close(Some(close_frame(Close::TokenRefused.code(), &reason)));
            let _ = tokio::time::timeout(rules.close_timeout, futures_util::SinkExt::send(&mut ws, goodbye)).await;
            return;
        }
        let id = shared.next_connection_id();
        let peer = Peer::new(id, &connect.route, &plugin.channel, limits.send_queue, limits.send_queue_bytes);
        let peer = Arc::new(peer);
        crate::net::websocket::run(ws, peer, plugin.handle.clone(), Box::new(connect), rules, shutdown).await;
    });
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if rules.deflate.is_some() {
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, deflate::ACCEPTED);
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
