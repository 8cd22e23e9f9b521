//! The page's stylesheet, script and icon, compiled into the binary: nothing is fetched from
//! elsewhere, so the page works on an intranet with no way out.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::WebState;

/// Part of every asset URL, so a new version is fetched at once after an upgrade.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
];

pub fn router() -> Router<WebState> {
    Router::new().route("/assets/{version}/{file}", get(asset))
}

async fn asset(Path((_version, file)): Path<(String, String)>) -> Response {
    let Some((_, mime, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    // The version is in the path, so an asset never changes under its URL.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}
