//! Header hygiene between the client, Odock and the upstream MCP server.
//!
//! The caller's credentials for Odock (`Authorization`, `x-api-key`, `x-goog-api-key`, cookies) never
//! reach the upstream — upstream auth is injected separately, after governance. `Host`,
//! `Content-Length`, hop-by-hop headers and `Accept-Encoding` (Odock relays bodies as they are and
//! does not decompress) are connection-level and are set anew. The MCP headers (`Mcp-Session-Id`,
//! `MCP-Protocol-Version`, `Last-Event-ID`) and `Accept` / `Content-Type` pass both ways.

use http::header::{self, HeaderMap, HeaderName};

pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones that describe one connection's body.
const CONNECTION_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Credentials that belong to Odock (or to the client's browser), never to the upstream.
const CALLER_CREDENTIALS: &[&str] = &["authorization", "x-api-key", "x-goog-api-key", "cookie"];

/// The client's headers that may go upstream.
pub fn forward_request_headers(client: &HeaderMap) -> HeaderMap {
    filtered(client, |name| {
        !CALLER_CREDENTIALS.contains(&name) && name != "accept-encoding"
    })
}

/// The upstream's headers that may go back to the client. `WWW-Authenticate` is dropped: the
/// upstream's auth challenge is Odock's business, not the client's.
pub fn forward_response_headers(upstream: &HeaderMap) -> HeaderMap {
    filtered(upstream, |name| {
        name != "www-authenticate" && name != "set-cookie" && name != "content-encoding"
    })
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

fn filtered(source: &HeaderMap, keep: impl Fn(&str) -> bool) -> HeaderMap {
    // Headers named in `Connection` are hop-by-hop too.
    let listed: Vec<String> = source
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(source.len());
    for (name, value) in source {
        let lower = name.as_str();
        if CONNECTION_HEADERS.contains(&lower) || listed.iter().any(|l| l == lower) || !keep(lower)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
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
            ("x-custom", "kept"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn request_headers_never_carry_caller_credentials_or_hop_by_hop() {
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
                "x-custom"
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
        let out = forward_response_headers(&upstream);
        assert!(out.get("www-authenticate").is_none());
        assert!(out.get("content-length").is_none());
        assert!(out.get("content-encoding").is_none());
        assert_eq!(out.get(MCP_SESSION_ID).unwrap(), "s-1");
        assert_eq!(out.get(MCP_PROTOCOL_VERSION).unwrap(), "2025-06-18");
        assert!(!accepts_event_stream(&HeaderMap::new()));
    }
}
