//! The client address the gateway's IP allow/block lists and sign-in throttling see.
//!
//! Without trusted proxies it is the TCP peer. Behind load balancers, list them in
//! `ODOCK_TRUSTED_PROXIES` (IPs or CIDRs): when the peer is one of them, `X-Forwarded-For` is read
//! from the right, skipping trusted hops, and the first address not trusted is the client. A
//! client cannot spoof its address by sending its own header: entries left of the first untrusted
//! hop are never believed, and a header from an untrusted peer is ignored entirely.
//!
//! The same rule holds for `X-Forwarded-Proto` and `X-Forwarded-Host` ([`ForwardedBy`]): they are
//! believed only from a trusted proxy. They decide the session cookie's `Secure` flag and the
//! origin the admin API's CSRF check compares against.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use odock_core::layers::ClientIp;
use odock_core::rate_limit::IpRule;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpRule]>);

impl TrustedProxies {
    /// Parses IPs and CIDRs; `Err` names the first entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| IpRule::parse(entry.as_ref()).ok_or_else(|| entry.as_ref().to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(|rules| Self(rules.into()))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|rule| rule.contains(ip))
    }

    /// The client behind `peer` given the request's headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Every X-Forwarded-For line, in order, as one list; walk it from the nearest hop.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // A hop we cannot read ends what we can vouch for.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an IP, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

pub use odock_admin::api::forwarded::{over_https, ForwardedBy};

/// Middleware: inserts [`ClientIp`] (and, behind a trusted proxy, [`ForwardedBy`]) for the layers
/// and handlers behind it.
pub async fn client_ip(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let client = trusted.client(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientIp(client));
        if trusted.trusts(peer.ip()) {
            let forwarded = ForwardedBy::from_headers(request.headers());
            request.extensions_mut().insert(forwarded);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["1.1.1.1"]);
        assert_eq!(none.client(ip("203.0.113.9"), &headers), ip("203.0.113.9"));
        let lb = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(lb.client(ip("203.0.113.9"), &headers), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // spoofed, real client, inner proxy — seen from the outer proxy 10.0.0.1.
        let headers = forwarded(&["6.6.6.6, 198.51.100.7", "192.168.1.1"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("198.51.100.7"));
        // With ports and IPv6.
        let headers = forwarded(&["[2001:db8::5]:4711, 10.1.2.3:80"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("2001:db8::5"));
        // Only trusted hops: the leftmost one is the best we know.
        let headers = forwarded(&["10.9.9.9, 10.8.8.8"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn garbage_stops_the_walk() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let headers = forwarded(&["198.51.100.7, not-an-ip, 10.2.2.2"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("10.2.2.2"));
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/8", "nope"]).unwrap_err(),
            "nope"
        );
    }
}
