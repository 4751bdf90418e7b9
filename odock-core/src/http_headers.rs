//! Header hygiene shared by every hop Odock forwards over: the hop-by-hop filter.

use http::header::{self, HeaderMap};

/// The headers that belong to one connection (RFC 9110 §7.6.1), plus `Content-Length`, which the
/// next hop sets for the body it actually sends.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// `headers` without the hop-by-hop ones: the fixed list and every header `Connection` names.
pub fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // `HeaderName`s are lower-case already.
        let name_str = name.as_str();
        let hop = HOP_BY_HOP.contains(&name_str) || named.iter().any(|n| n == name_str);
        if !hop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("content-length", "12"),
            ("content-type", "application/json"),
            ("mcp-session-id", "s-1"),
            ("accept", "a"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers.append("accept", HeaderValue::from_static("b"));
        let out = without_hop_by_hop(&headers);
        let names: Vec<&str> = out.keys().map(|name| name.as_str()).collect();
        assert_eq!(names, vec!["content-type", "mcp-session-id", "accept"]);
        // Repeated headers stay repeated.
        assert_eq!(out.get_all("accept").iter().count(), 2);
    }
}
