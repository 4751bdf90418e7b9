//! [`ClientIpLayer`]: inserts the [`ClientIp`] the admission layer's IP allow/block lists check.
//!
//! Without trusted proxies the client is the TCP peer. Behind load balancers, list them in
//! [`TrustedProxies`]: when the peer is one of them, `X-Forwarded-For` is read from the right,
//! skipping trusted hops, and the first address not trusted is the client. A client cannot spoof
//! its address by sending its own header: entries left of the first untrusted hop are never
//! believed, and a header from an untrusted peer is ignored entirely.
//!
//! The peer address comes from wherever the embedder's server puts it — axum's
//! `ConnectInfo<SocketAddr>`, a hyper service's own extension — through the function given to
//! [`ClientIpLayer::new`]. A request whose peer is unknown gets no `ClientIp`, and the admission
//! layer then refuses any key or organisation that has IP rules (it fails closed).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, HeaderMap, Request};
use tower::{Layer, Service};

use super::admission::ClientIp;
use crate::rate_limit::IpRule;

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

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
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

/// How the layer finds the TCP peer of a request in its extensions.
pub type PeerOf = fn(&Extensions) -> Option<SocketAddr>;

/// Inserts [`ClientIp`] from the peer address and the trusted proxies' `X-Forwarded-For`.
#[derive(Debug, Clone)]
pub struct ClientIpLayer {
    trusted: TrustedProxies,
    peer_of: PeerOf,
}

impl ClientIpLayer {
    /// `peer_of` reads the peer from the request's extensions, e.g. for axum:
    /// `|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)`.
    pub fn new(trusted: TrustedProxies, peer_of: PeerOf) -> Self {
        Self { trusted, peer_of }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIpService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ClientIpLayer`].
#[derive(Debug, Clone)]
pub struct ClientIpService<S> {
    inner: S,
    layer: ClientIpLayer,
}

impl<S, B> Service<Request<B>> for ClientIpService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(peer) = (self.layer.peer_of)(req.extensions()) {
            let client = self.layer.trusted.client(peer.ip(), req.headers());
            req.extensions_mut().insert(ClientIp(client));
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use http::HeaderValue;
    use tower::ServiceExt;

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

    /// The peer as a test server would record it.
    #[derive(Clone, Copy)]
    struct Peer(SocketAddr);

    async fn seen(layer: &ClientIpLayer, req: Request<()>) -> Option<ClientIp> {
        let echo = tower::service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(req.extensions().get::<ClientIp>().copied())
        });
        layer.layer(echo).oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn the_layer_inserts_the_client_behind_trusted_proxies_and_nothing_without_a_peer() {
        let layer = ClientIpLayer::new(TrustedProxies::parse(&["10.0.0.0/8"]).unwrap(), |ext| {
            ext.get::<Peer>().map(|peer| peer.0)
        });
        let request = |peer: Option<&str>| {
            let mut req = Request::builder()
                .header("x-forwarded-for", "198.51.100.7")
                .body(())
                .unwrap();
            if let Some(peer) = peer {
                req.extensions_mut().insert(Peer(peer.parse().unwrap()));
            }
            req
        };
        assert_eq!(
            seen(&layer, request(Some("10.0.0.1:443"))).await,
            Some(ClientIp(ip("198.51.100.7")))
        );
        assert_eq!(
            seen(&layer, request(Some("203.0.113.9:5000"))).await,
            Some(ClientIp(ip("203.0.113.9"))),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(seen(&layer, request(None)).await, None);
    }
}
