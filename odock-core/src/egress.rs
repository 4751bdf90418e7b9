//! Where the gateway may connect: the egress policy every upstream connection (LLM providers, MCP
//! HTTP/SSE servers, OAuth2 token endpoints) is checked against.
//!
//! Tenants configure upstream URLs. Without this policy an ORG_ADMIN could point a provider's base
//! URL or an MCP endpoint at the gateway's own network — loopback admin ports, the cloud metadata
//! service at `169.254.169.254`, databases on the LAN — and read the answers through the gateway.
//! So addresses that are not publicly routable (loopback, private, link-local, CGNAT, ULA,
//! unspecified, multicast, reserved, and the IPv4-mapped/NAT64/6to4 forms of those) are refused
//! unless the operator allows them by CIDR or host name (`ODOCK_EGRESS_ALLOW`).
//!
//! The decision is made on the **resolved** address: HTTP clients resolve names through
//! [`EgressPolicy::resolve`] (plugged into their DNS resolver), which hands the connector only the
//! addresses that passed, so a name that resolves — or re-resolves later (DNS rebinding) — to a
//! private address is refused too. HTTP clients skip DNS for IP-literal hosts, so callers also
//! check the URL's host with [`EgressPolicy::check_host`] before sending.
//!
//! The default policy is the safe one (nothing private allowed); [`EgressPolicy::allow_all`] is the
//! explicit way out for embedders whose upstreams are trusted.
//!
//! ```
//! use odock_core::egress::EgressPolicy;
//!
//! let policy = EgressPolicy::default();
//! assert!(policy.check_host("169.254.169.254").is_err());
//! assert!(policy.check_host("[::ffff:127.0.0.1]").is_err());
//! assert!(policy.check_host("8.8.8.8").is_ok());
//!
//! let lan = EgressPolicy::parse("10.1.2.3/32, vllm.internal").unwrap();
//! assert!(lan.check_host("10.1.2.3").is_ok());
//! assert!(lan.allows_host_name("VLLM.internal."));
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::rate_limit::IpRule;

/// The setting operators use to allow private upstreams; named in every refusal.
pub const EGRESS_ALLOW_SETTING: &str = "ODOCK_EGRESS_ALLOW";

/// Which upstream addresses the gateway may connect to. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Every address is allowed (no check at all).
    allow_all: bool,
    /// Non-public networks allowed anyway.
    networks: Vec<IpRule>,
    /// Host names whose addresses are not checked: exact names, or `*.suffix` wildcards stored as
    /// `.suffix`. Lower-case, without a trailing dot.
    hosts: Vec<String>,
}

/// An entry of the allow-list that is neither an IP, a CIDR, a host name nor `*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address, a CIDR, a host name or `*`")]
pub struct EgressConfigError(pub String);

/// A connection the policy refused. The message names the setting that would allow it and never
/// the address a host name resolved to (that would map the gateway's internal DNS for a tenant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "upstream host `{host}` is not publicly routable ({reason}); connecting to it is refused \
     unless the operator allows it with {EGRESS_ALLOW_SETTING}"
)]
pub struct EgressDenied {
    /// The host as the URL named it.
    pub host: String,
    /// What kind of address it is, or that a name resolved only to refused addresses.
    pub reason: &'static str,
}

impl EgressPolicy {
    /// The default: only publicly routable addresses.
    pub fn deny_private() -> Self {
        Self::default()
    }

    /// No check at all: for embedders whose upstreams are all trusted, and for development.
    pub fn allow_all() -> Self {
        Self {
            allow_all: true,
            ..Self::default()
        }
    }

    /// Parses a comma-separated allow-list (`ODOCK_EGRESS_ALLOW`): IPs, CIDRs (`10.0.0.0/8`,
    /// `fd00::/8`), host names (`vllm.internal`), `*.suffix` wildcards, or `*` for everything.
    /// Empty entries are ignored; an empty list is the default policy.
    pub fn parse(list: &str) -> Result<Self, EgressConfigError> {
        Self::from_entries(list.split(','))
    }

    /// [`EgressPolicy::parse`] over entries already split.
    pub fn from_entries<I, S>(entries: I) -> Result<Self, EgressConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut policy = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                policy.allow_all = true;
            } else if let Some(rule) = IpRule::parse(entry.trim_matches(['[', ']'])) {
                policy.networks.push(rule);
            } else if let Some(host) = host_pattern(entry) {
                policy.hosts.push(host);
            } else {
                return Err(EgressConfigError(entry.to_owned()));
            }
        }
        Ok(policy)
    }

    /// True when every address is allowed.
    pub fn allows_everything(&self) -> bool {
        self.allow_all
    }

    /// True when `host` (a name, case-insensitive, trailing dot ignored) is allowed by name, so
    /// its addresses are not checked.
    pub fn allows_host_name(&self, host: &str) -> bool {
        if self.allow_all {
            return true;
        }
        let host = normalise_host(host);
        self.hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix('.') {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
                None => *pattern == host,
            })
    }

    /// Whether the gateway may connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.allow_all {
            return Ok(());
        }
        let ip = ip.to_canonical();
        match not_public(ip) {
            None => Ok(()),
            Some(_) if self.networks.iter().any(|net| net.contains(ip)) => Ok(()),
            Some(reason) => Err(reason),
        }
    }

    /// Checks a URL's host (as `url::Url::host_str` gives it: IPv6 in brackets) before sending:
    /// an IP literal is checked now — HTTP clients do not resolve those, so the resolver never sees
    /// them — and a name is left to [`EgressPolicy::resolve`] at connect time.
    pub fn check_host(&self, host: &str) -> Result<(), EgressDenied> {
        let Some(ip) = ip_literal(host) else {
            return Ok(());
        };
        self.check_ip(ip).map_err(|reason| EgressDenied {
            host: host.to_owned(),
            reason,
        })
    }

    /// Resolves `host` and keeps only the addresses the policy allows (all of them when the name
    /// itself is allowed). Refused when none is left. Ports are 0: the connector sets the URL's.
    pub async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveFailure> {
        if let Some(ip) = ip_literal(host) {
            self.check_host(host)?;
            return Ok(vec![SocketAddr::new(ip, 0)]);
        }
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(ResolveFailure::Lookup)?
            .collect();
        if self.allows_host_name(host) {
            return Ok(resolved);
        }
        let allowed: Vec<SocketAddr> = resolved
            .iter()
            .copied()
            .filter(|address| self.check_ip(address.ip()).is_ok())
            .collect();
        if allowed.is_empty() && !resolved.is_empty() {
            return Err(ResolveFailure::Denied(EgressDenied {
                host: host.to_owned(),
                reason: "it resolves only to refused addresses",
            }));
        }
        Ok(allowed)
    }
}

/// Why [`EgressPolicy::resolve`] gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveFailure {
    /// The name resolved only to addresses the policy refuses.
    #[error(transparent)]
    Denied(#[from] EgressDenied),
    /// The name could not be resolved at all.
    #[error(transparent)]
    Lookup(std::io::Error),
}

/// `host` as an IP address, when it is one (IPv6 with or without brackets).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A host name or `*.suffix` wildcard of the allow-list, normalised; `None` when it is not one.
fn host_pattern(entry: &str) -> Option<String> {
    let (wildcard, name) = match entry.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let name = normalise_host(name);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let valid = !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok);
    valid.then(|| if wildcard { format!(".{name}") } else { name })
}

/// Why `ip` is not publicly routable, or `None` when it is. `ip` is canonical (IPv4-mapped IPv6
/// already turned into IPv4).
fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_not_public(v4),
        IpAddr::V6(v6) => v6_not_public(v6),
    }
}

fn v4_not_public(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified address",
        (127, _, _) => "loopback address",
        (10, _, _) | (192, 168, _) => "private address",
        (172, 16..=31, _) => "private address",
        (100, 64..=127, _) => "shared (CGNAT) address",
        (169, 254, _) => "link-local address",
        // IETF protocol assignments (Oracle Cloud's metadata service is 192.0.0.192).
        (192, 0, 0) => "reserved address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation address",
        (198, 18..=19, _) => "benchmarking address",
        (224..=239, _, _) => "multicast address",
        (240..=255, _, _) => "reserved address",
        _ => return None,
    })
}

fn v6_not_public(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if ip.is_unspecified() {
        return Some("unspecified address");
    }
    if ip.is_loopback() {
        return Some("loopback address");
    }
    match segments {
        // IPv4-compatible (deprecated) addresses carry an IPv4 address in the low 32 bits.
        [0, 0, 0, 0, 0, 0, high, low] => {
            v4_not_public(embedded_v4(high, low)).or(Some("reserved address"))
        }
        // NAT64 (well-known prefix): reaches the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => v4_not_public(embedded_v4(high, low)),
        // Local-use NAT64.
        [0x64, 0xff9b, 1, ..] => Some("reserved address"),
        // 6to4: reaches the IPv4 address in bits 16..48.
        [0x2002, high, low, ..] => v4_not_public(embedded_v4(high, low)),
        // Teredo hides an IPv4 address (obfuscated); documentation.
        [0x2001, 0, ..] => Some("reserved address"),
        [0x2001, 0xdb8, ..] => Some("documentation address"),
        [0x100, 0, 0, 0, ..] => Some("reserved address"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique local address"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local address"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("site-local address"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &EgressPolicy, host: &str) -> bool {
        policy.check_host(host).is_err()
    }

    #[test]
    fn the_default_refuses_every_non_public_address() {
        let policy = EgressPolicy::default();
        for host in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "169.254.169.254",
            "192.0.0.192",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "[::1]",
            "[::]",
            "[fe80::1]",
            "[fd00:ec2::254]",
            "[fc00::1]",
            "[ff02::1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:169.254.169.254]",
            "[::ffff:a9fe:a9fe]",
            "[::127.0.0.1]",
            "[64:ff9b::a9fe:a9fe]",
            "[2002:7f00:1::]",
            "[2001::1]",
            "::1",
        ] {
            assert!(refused(&policy, host), "{host} should be refused");
        }
        for host in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "[2606:4700:4700::1111]",
            "[64:ff9b::808:808]",
            "api.openai.com",
            "localhost",
        ] {
            assert!(
                !refused(&policy, host),
                "{host} should pass the literal check"
            );
        }
    }

    #[test]
    fn refusals_name_the_setting_and_the_kind_of_address() {
        let error = EgressPolicy::default()
            .check_host("169.254.169.254")
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("ODOCK_EGRESS_ALLOW"), "{message}");
        assert!(message.contains("link-local"), "{message}");
    }

    #[test]
    fn cidrs_and_host_names_open_exactly_what_they_name() {
        let policy = EgressPolicy::parse(
            "127.0.0.0/8, 10.1.2.3/32,[fd00::1], vllm.internal, *.corp.example",
        )
        .unwrap();
        assert!(!refused(&policy, "127.0.0.1"));
        assert!(!refused(&policy, "[::ffff:127.0.0.1]"));
        assert!(!refused(&policy, "10.1.2.3"));
        assert!(refused(&policy, "10.1.2.4"));
        assert!(!refused(&policy, "[fd00::1]"));
        assert!(refused(&policy, "[fd00::2]"));
        assert!(refused(&policy, "169.254.169.254"));
        assert!(policy.allows_host_name("vllm.internal"));
        assert!(policy.allows_host_name("VLLM.Internal."));
        assert!(!policy.allows_host_name("evil-vllm.internal"));
        assert!(!policy.allows_host_name("vllm.internal.evil.com"));
        assert!(policy.allows_host_name("a.corp.example"));
        assert!(policy.allows_host_name("a.b.corp.example"));
        assert!(!policy.allows_host_name("corp.example"));
        assert!(!policy.allows_host_name("xcorp.example"));
    }

    #[test]
    fn star_allows_everything_and_bad_entries_are_errors() {
        let all = EgressPolicy::parse("*").unwrap();
        assert!(all.allows_everything());
        assert!(!refused(&all, "169.254.169.254"));
        assert_eq!(EgressPolicy::parse(" , ").unwrap(), EgressPolicy::default());
        for bad in [
            "10.0.0.0/33",
            "http://x",
            "a b",
            "-",
            "10.0.0.0/8/1",
            "x..y",
        ] {
            assert!(EgressPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn resolution_keeps_only_allowed_addresses() {
        let policy = EgressPolicy::default();
        let error = policy.resolve("localhost").await.unwrap_err();
        let ResolveFailure::Denied(denied) = error else {
            panic!("expected a refusal, got {error:?}");
        };
        assert_eq!(denied.host, "localhost");
        // The refusal of a name never reveals what it resolved to.
        assert!(!denied.to_string().contains("127.0.0.1"));

        let by_name = EgressPolicy::parse("localhost").unwrap();
        let addresses = by_name.resolve("localhost").await.unwrap();
        assert!(addresses.iter().any(|a| a.ip().is_loopback()));

        let by_net = EgressPolicy::parse("127.0.0.0/8").unwrap();
        let addresses = by_net.resolve("localhost").await.unwrap();
        assert!(addresses
            .iter()
            .all(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(!addresses.is_empty());

        assert!(matches!(
            policy.resolve("169.254.169.254").await,
            Err(ResolveFailure::Denied(_))
        ));
    }
}
