//! The console's static assets, embedded in the binary: one stylesheet and one small script,
//! written for the console (no framework, no CDN), so the console works offline and the CSP can
//! forbid everything but this origin.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;

/// The stylesheet.
pub const CSS: &str = include_str!("static/console.css");
/// Copy buttons, confirmations, chart tooltips and the playground's streaming call.
pub const JS: &str = include_str!("static/console.js");

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (CONTENT_TYPE, content_type),
            // Short: the names carry no version, and an upgrade should show at once.
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}
