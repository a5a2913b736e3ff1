//! The stylesheet and the script, embedded in the binary and served with a long cache
//! lifetime; pages link them with a content hash in the URL, so a new build is fetched anew.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/baton.css");
const JS: &str = include_str!("assets/baton.js");

/// The first 12 hex digits of the SHA-256 of both assets.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    h.update(CSS.as_bytes());
    h.update(JS.as_bytes());
    hex::encode(h.finalize())[..12].to_owned()
});

/// The version as an entity tag (quoted, as HTTP wants it).
static ETAG: LazyLock<String> = LazyLock::new(|| format!("\"{}\"", *VERSION));

/// The URL a page links `file` with.
pub(crate) fn url(file: &str) -> String {
    format!("/assets/{file}?v={}", *VERSION)
}

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "baton.css" => (CSS, "text/css; charset=utf-8"),
        "baton.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return super::error::UiError::not_found(format!("no asset `{file}`")).into_response(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::ETAG, ETAG.as_str()),
        ],
        body,
    )
        .into_response()
}
