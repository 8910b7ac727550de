//! Files from the public folder (the demo page, a client's assets): GET
//! and HEAD, with content types, validators and caching headers. Paths
//! that try to leave the folder get 404.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

/// The file under `root` that `path` names, or `None` when it names none
/// or tries to leave `root` (`..`, hidden files, backslashes, NUL).
pub(crate) fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let mut file = root.to_owned();
    for segment in decoded.split('/').filter(|segment| !segment.is_empty()) {
        let unsafe_segment = segment.starts_with('.') || segment.contains(['\\', '\0']) || segment.contains(':');
        if unsafe_segment {
            return None;
        }
        file.push(segment);
    }
    if file.is_dir() {
        file.push("index.html");
    }
    file.is_file().then_some(file)
}

/// Serve `file` (up to `max_size` bytes: this is for pages and their
/// assets), or answer 304 when the client's copy is current.
pub(crate) async fn serve(
    file: &Path,
    max_size: u64,
    method: &Method,
    request_headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    let too_big = tokio::fs::metadata(file).await.map(|meta| meta.len() > max_size).unwrap_or(true);
    let bytes = match tokio::fs::read(file).await {
        Ok(bytes) if !too_big => Bytes::from(bytes),
        _ => return plain(StatusCode::NOT_FOUND),
    };
    let etag = format!("\"{}\"", hex_prefix(&Sha256::digest(&bytes)));
    let fresh = request_headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        plain(StatusCode::NOT_MODIFIED)
    } else if method == Method::HEAD {
        Response::new(Full::default())
    } else {
        Response::new(Full::new(bytes))
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(file)));
    // Pages are revalidated on every load, so a new deploy shows at once;
    // assets may be reused for a few minutes.
    let cache = if content_type(file).starts_with("text/html") { "no-cache" } else { "public, max-age=300" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|ext| ext.to_str()).unwrap_or_default() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_root_resolve() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("js")).unwrap();
        std::fs::write(root.path().join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(root.path().join("js/app.js"), "1").unwrap();
        std::fs::write(root.path().join(".secret"), "no").unwrap();
        assert_eq!(resolve(root.path(), "/"), Some(root.path().join("index.html")));
        assert_eq!(resolve(root.path(), "/js/app.js"), Some(root.path().join("js/app.js")));
        assert_eq!(resolve(root.path(), "/js%2Fapp.js"), Some(root.path().join("js/app.js")));
        for bad in ["/../etc/passwd", "/js/../index.html", "/%2e%2e/x", "/.secret", "/js\\app.js", "/nope.js", "/%ff"] {
            assert_eq!(resolve(root.path(), bad), None, "{bad}");
        }
    }
}
