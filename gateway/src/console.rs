//! The web console (`/console`): plain HTML, CSS and JavaScript files compiled into the binary
//! (`gateway/console/`), served with a strict Content-Security-Policy. No build step, no CDN:
//! the page works offline and calls only this gateway's own API, with the API key the user
//! enters (kept in the tab's `sessionStorage`). gateway/README.md gives the reasons.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiPath;
use crate::server::AppState;

/// The console's files: name, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../console/index.html")),
    ("console.css", "text/css; charset=utf-8", include_str!("../console/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("../console/console.js")),
    ("core.js", "text/javascript; charset=utf-8", include_str!("../console/core.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../console/charts.js")),
    ("pages.js", "text/javascript; charset=utf-8", include_str!("../console/pages.js")),
];

/// Scripts, styles and calls only from this origin; no inline script, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes: `/console` (redirects to `/console/`), `/console/` and its files.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { file("index.html") }))
        .route("/console/{file}", get(|ApiPath(name): ApiPath<String>| async move { file(&name) }))
}

fn file(name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::not_found(ErrorCode::NotFound, format!("the console has no file {name:?}")).into_response();
    };
    let mut r = (StatusCode::OK, *body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A new gateway serves new files: revalidate instead of caching stale ones.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
