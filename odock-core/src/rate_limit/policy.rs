//! The policy JSON attached to organisations, teams, API keys, models and MCP servers. Absent or 0
//! means "no limit". All scopes apply additively: a request must pass every scope's policy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Rate-limit and network policy of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, rename_all = "camelCase")]
pub struct Policy {
    /// IPs or CIDRs; when non-empty, only these clients may call.
    pub ip_allowlist: Vec<String>,
    /// IPs or CIDRs that may never call (wins over the allowlist).
    pub ip_blocklist: Vec<String>,
    /// Sustained requests per second (0: no limit).
    pub requests_per_second: u32,
    /// Requests per minute (0: no limit).
    pub requests_per_minute: u32,
    /// Extra requests allowed at once above the per-second rate.
    pub burst: u32,
    /// Input plus output tokens per minute (0: no limit).
    pub tokens_per_minute: u64,
    /// The largest token estimate one request may have (0: no limit).
    pub max_tokens_per_request: u64,
    /// The largest request body in bytes (0: no limit).
    pub max_request_bytes: u64,
    /// Requests in flight at once (0: no limit).
    pub max_concurrent_requests: u32,
    /// How long a concurrency slot is held if its request never reports back (default 30 s).
    pub concurrency_lease_ttl_ms: u64,
}

/// One scope's policy in force for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedPolicy {
    /// `organisation`, `team`, `api_key`, `model` (or `mcp_server`).
    pub scope: &'static str,
    /// The scope's id (organisation, team, key, model or MCP server id).
    pub id: String,
    /// The scope's policy.
    pub policy: Policy,
}

/// Every policy that applies to one request; all must pass.
pub type ScopedPolicies = Vec<ScopedPolicy>;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(pub String);

impl Policy {
    /// Checks every IP rule parses.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for rule in self.ip_allowlist.iter().chain(&self.ip_blocklist) {
            IpRule::parse(rule)
                .ok_or_else(|| PolicyError(format!("`{rule}` is not an IP address or CIDR")))?;
        }
        Ok(())
    }

    /// Whether `ip` may call under this policy's allow and block lists.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        let matches = |rules: &[String]| {
            rules
                .iter()
                .filter_map(|r| IpRule::parse(r))
                .any(|r| r.contains(ip))
        };
        if matches(&self.ip_blocklist) {
            return false;
        }
        self.ip_allowlist.is_empty() || matches(&self.ip_allowlist)
    }
}

/// One IP or CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRule {
    network: IpAddr,
    prefix: u8,
}

impl IpRule {
    /// Reads an IP (`10.0.0.1`) or a CIDR (`10.0.0.0/8`); `None` when it is neither.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { network, prefix })
    }

    /// Whether `ip` is this address or inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_json_and_defaults_to_no_limit() {
        let policy: Policy = serde_json::from_str(
            r#"{"ipAllowlist":["10.0.0.0/8"],"requestsPerMinute":600,"burst":50,"concurrencyLeaseTtlMs":30000}"#,
        )
        .unwrap();
        assert_eq!(policy.requests_per_minute, 600);
        assert_eq!(policy.tokens_per_minute, 0);
        assert!(policy.validate().is_ok());
        assert_eq!(
            serde_json::from_str::<Policy>("{}").unwrap(),
            Policy::default()
        );
    }

    #[test]
    fn ip_rules_match_addresses_and_cidrs_and_block_wins() {
        let policy = Policy {
            ip_allowlist: vec![
                "10.0.0.0/8".into(),
                "2001:db8::/32".into(),
                "192.168.1.7".into(),
            ],
            ip_blocklist: vec!["10.9.0.0/16".into()],
            ..Policy::default()
        };
        let ok = |ip: &str| policy.ip_allowed(ip.parse().unwrap());
        assert!(ok("10.1.2.3"));
        assert!(!ok("10.9.1.1"));
        assert!(ok("192.168.1.7"));
        assert!(!ok("192.168.1.8"));
        assert!(ok("2001:db8::1"));
        assert!(!ok("2001:db9::1"));
        assert!(Policy::default().ip_allowed("8.8.8.8".parse().unwrap()));
        let bad = Policy {
            ip_blocklist: vec!["not-an-ip".into()],
            ..Policy::default()
        };
        assert!(bad.validate().is_err());
        assert!(IpRule::parse("10.0.0.0/33").is_none());
        assert!(IpRule::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
    }
}
