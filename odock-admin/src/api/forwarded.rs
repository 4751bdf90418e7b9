//! What a trusted proxy said about the original request (`X-Forwarded-Proto`, `X-Forwarded-Host`).
//!
//! The server's client-IP middleware inserts [`ForwardedBy`] only when the TCP peer is one of
//! `ODOCK_TRUSTED_PROXIES`; the session cookie's `Secure` flag and the CSRF origin check read it.

use http::HeaderMap;

/// What a trusted proxy said about the original request: its scheme (`X-Forwarded-Proto`) and
/// host (`X-Forwarded-Host`), first value of each. Inserted only when the TCP peer is one of
/// `ODOCK_TRUSTED_PROXIES`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedBy {
    /// The original scheme (`X-Forwarded-Proto`), e.g. `https`.
    pub proto: Option<String>,
    /// The original host (`X-Forwarded-Host`).
    pub host: Option<String>,
}

impl ForwardedBy {
    /// What the trusted proxy's headers say.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let first = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            proto: first("x-forwarded-proto"),
            host: first("x-forwarded-host"),
        }
    }

    /// Whether the client reached the proxy over HTTPS.
    pub fn https(&self) -> bool {
        self.proto
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }
}

/// Whether the client reached Odock over HTTPS: the request URI says so (TLS terminated here), or
/// a trusted proxy does.
pub fn over_https(uri: &http::Uri, forwarded: Option<&ForwardedBy>) -> bool {
    uri.scheme_str() == Some("https") || forwarded.is_some_and(ForwardedBy::https)
}
