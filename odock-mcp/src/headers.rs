//! Header hygiene between the client, Odock and the upstream MCP server: both directions are
//! **allow-lists**, so a header nobody thought of never crosses.
//!
//! Upstream, only what the MCP transport needs goes: `Mcp-Session-Id`, `MCP-Protocol-Version`,
//! `Last-Event-ID`, `Accept` and `Content-Type`, plus the W3C trace context (`traceparent`,
//! `tracestate`; the gateway replaces the client's with its own span's when tracing is on). The caller's credentials for Odock
//! (`Authorization`, `x-api-key`, cookies) never reach the upstream — upstream auth is injected
//! separately, after governance — and neither does anything a caller could use to steer an
//! upstream that trusts headers (`Metadata-Flavor`, `X-aws-ec2-metadata-token`, `X-Forwarded-*`,
//! `Host`). Connection-level headers are set anew by the HTTP client.
//!
//! Back to the client go `Content-Type`, `Cache-Control`, `Mcp-Session-Id`,
//! `MCP-Protocol-Version` and `Retry-After`; the upstream's auth challenges, cookies and
//! everything else stay behind.

use http::header::{self, HeaderMap, HeaderName};

/// `Mcp-Session-Id`: the session a message belongs to, minted by the upstream or by Odock.
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`: the protocol revision the client negotiated.
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// `Last-Event-ID`: where a client resumes a server event stream.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The client headers that may go upstream (lower-case).
const REQUEST_ALLOWED: &[&str] = &[
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "accept",
    "content-type",
    "traceparent",
    "tracestate",
];

/// The upstream headers that may go back to the client (lower-case).
const RESPONSE_ALLOWED: &[&str] = &[
    "content-type",
    "cache-control",
    "mcp-session-id",
    "mcp-protocol-version",
    "retry-after",
];

/// The client's headers that may go upstream (see the module docs).
pub fn forward_request_headers(client: &HeaderMap) -> HeaderMap {
    filtered(client, REQUEST_ALLOWED)
}

/// The upstream's headers that may go back to the client (see the module docs).
pub fn forward_response_headers(upstream: &HeaderMap) -> HeaderMap {
    filtered(upstream, RESPONSE_ALLOWED)
}

/// True when the client accepts an event-stream reply.
pub fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/event-stream"))
}

/// The client's `Mcp-Session-Id`, when present and printable.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(MCP_SESSION_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
}

fn filtered(source: &HeaderMap, allowed: &[&str]) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(allowed.len());
    for (name, value) in source {
        // `HeaderName`s are lower-case already.
        if allowed.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn client_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer sk_odock_key"),
            ("x-api-key", "sk_odock_key"),
            ("x-goog-api-key", "sk_odock_key"),
            ("cookie", "session=1"),
            ("host", "odock.local"),
            ("content-length", "12"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("accept-encoding", "gzip"),
            ("mcp-session-id", "s-1"),
            ("mcp-protocol-version", "2025-06-18"),
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("last-event-id", "9"),
            ("x-custom", "dropped"),
            ("metadata-flavor", "Google"),
            ("x-aws-ec2-metadata-token", "t"),
            ("x-forwarded-for", "10.0.0.1"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_allow_listed_request_headers_go_upstream() {
        let out = forward_request_headers(&client_headers());
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            vec![
                "mcp-session-id",
                "mcp-protocol-version",
                "accept",
                "content-type",
                "last-event-id",
            ]
        );
        assert!(accepts_event_stream(&out));
        assert_eq!(session_id(&out), Some("s-1"));
    }

    #[test]
    fn response_headers_pass_mcp_headers_and_drop_challenges() {
        let mut upstream = client_headers();
        upstream.insert("www-authenticate", HeaderValue::from_static("Bearer"));
        upstream.insert("content-encoding", HeaderValue::from_static("gzip"));
        upstream.insert("set-cookie", HeaderValue::from_static("a=b"));
        upstream.insert("retry-after", HeaderValue::from_static("3"));
        let out = forward_response_headers(&upstream);
        assert!(out.get("www-authenticate").is_none());
        assert!(out.get("set-cookie").is_none());
        assert!(out.get("x-custom").is_none());
        assert_eq!(out.get("retry-after").unwrap(), "3");
        assert!(out.get("content-length").is_none());
        assert!(out.get("content-encoding").is_none());
        assert_eq!(out.get(MCP_SESSION_ID).unwrap(), "s-1");
        assert_eq!(out.get(MCP_PROTOCOL_VERSION).unwrap(), "2025-06-18");
        assert!(!accepts_event_stream(&HeaderMap::new()));
    }
}
