//! Security headers of every console response: no script or style from anywhere but this origin
//! (and no inline script), no framing, no referrer (page URLs carry ids), no MIME sniffing, and no
//! caching of pages (they show account data and, once, new secrets).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::HeaderValue;

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; \
                       base-uri 'none'; form-action 'self'; object-src 'none'";

/// Middleware adding [`CSP`] and the other security headers; `no-store` except on assets.
pub async fn headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_asset {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
