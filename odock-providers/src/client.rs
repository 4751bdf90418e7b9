//! The HTTP client every provider sends through: one `reqwest::Client` plus the egress policy it
//! enforces and the largest unary answer it buffers. A provider with its own connect timeout
//! (`config.connectTimeoutMs`) is sent through a client built with it, one per distinct timeout
//! (a connect timeout is a property of the client's connector, not of a request).
//!
//! Provider base URLs are tenant configuration, so the client must never become a way into the
//! gateway's own network. Every connection is checked against an [`EgressPolicy`]:
//!
//! - host names are resolved by [`GuardedResolver`], which hands the connector only the addresses
//!   the policy allows — the check happens after resolution, at connect time, so a name that
//!   (re-)resolves to a private address is refused too;
//! - IP-literal hosts never reach a resolver, so [`UpstreamClient::post`] checks them before a
//!   request exists; it also refuses URLs with a fragment (a `#` in a base URL would cut off the
//!   path the gateway appends) or credentials;
//! - redirects are not followed and system proxies (`HTTPS_PROXY`, …) are ignored: a proxy would
//!   resolve and connect to the upstream where the policy cannot see.
//!
//! A refused connection is [`ProviderError::Forbidden`] (502 `upstream_forbidden`).

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use foldhash::HashMap;
use odock_core::egress::{EgressDenied, EgressPolicy, ResolveFailure};
use odock_core::ProviderError;
use parking_lot::RwLock;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::{CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT, POOL_MAX_IDLE_PER_HOST, USER_AGENT};

/// The default for the largest unary upstream answer buffered (64 MiB): image generations with
/// several base64 images and audio answers run to megabytes, never near this.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// See the module docs. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    /// `Err` only when the TLS backend could not initialise: every request then fails, rather
    /// than going out through a client without the guarded resolver.
    http: Result<reqwest::Client, String>,
    egress: Arc<EgressPolicy>,
    max_response_bytes: usize,
    /// URLs already parsed and checked: parsing (with IDNA) was the largest single cost of an
    /// upstream call. Bounded by configuration (base URLs × routes × slugs); emptied when full.
    checked: Arc<RwLock<HashMap<String, Url>>>,
    /// Clients of providers' own connect timeouts (one per step), built on first use.
    by_connect_timeout: Arc<RwLock<HashMap<Duration, reqwest::Client>>>,
}

/// How many checked URLs are kept before the cache starts over.
const CHECKED_URLS: usize = 4_096;

/// The connect timeouts a provider can get, in ms: its setting is rounded up to the next step.
/// Every provider of every tenant shares these few clients, so a tenant that sets many distinct
/// values cannot make the gateway build clients per request or evict other tenants' connection
/// pools. Beyond the last step: the last step.
const CONNECT_TIMEOUT_STEPS_MS: [u64; 10] = [
    250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 15_000, 30_000, 60_000,
];

/// The provider setting naming its connect timeout in milliseconds.
pub const CONNECT_TIMEOUT_SETTING: &str = "connectTimeoutMs";

/// The provider's `config.connectTimeoutMs`, rounded up to one of `CONNECT_TIMEOUT_STEPS_MS`:
/// how long connecting (TCP and TLS) may take.
pub fn connect_timeout(provider: &odock_core::ResolvedProvider) -> Option<Duration> {
    let ms = provider
        .config
        .get(CONNECT_TIMEOUT_SETTING)
        .and_then(serde_json::Value::as_u64)
        .filter(|ms| *ms > 0)?;
    let last = CONNECT_TIMEOUT_STEPS_MS[CONNECT_TIMEOUT_STEPS_MS.len() - 1];
    let step = CONNECT_TIMEOUT_STEPS_MS
        .into_iter()
        .find(|step| *step >= ms)
        .unwrap_or(last);
    Some(Duration::from_millis(step))
}

impl Default for UpstreamClient {
    /// The safe default: no private upstream, [`DEFAULT_MAX_RESPONSE_BYTES`].
    fn default() -> Self {
        Self::new(EgressPolicy::default())
    }
}

impl UpstreamClient {
    /// A client that connects only where `egress` allows.
    pub fn new(egress: EgressPolicy) -> Self {
        let egress = Arc::new(egress);
        Self {
            http: build(&egress, CONNECT_TIMEOUT),
            egress,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            checked: Arc::default(),
            by_connect_timeout: Arc::default(),
        }
    }

    /// The largest unary answer buffered; a larger one is [`ProviderError::ResponseTooLarge`].
    pub fn with_max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit.max(1);
        self
    }

    /// The policy every upstream address is checked against.
    pub fn egress(&self) -> &EgressPolicy {
        &self.egress
    }

    /// The largest unary answer buffered.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// A POST to `url`, once the URL passed [`UpstreamClient::check_url`].
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, ProviderError> {
        let url = self.check_url(url)?;
        let http = self
            .http
            .as_ref()
            .map_err(|reason| ProviderError::Unreachable(reason.clone()))?;
        Ok(http.post(url))
    }

    /// A POST to `url` for `provider`: connecting within its `config.connectTimeoutMs` when it
    /// has one (else [`CONNECT_TIMEOUT`]).
    pub fn post_for(
        &self,
        provider: &odock_core::ResolvedProvider,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let Some(timeout) = connect_timeout(provider).filter(|t| *t != CONNECT_TIMEOUT) else {
            return self.post(url);
        };
        let url = self.check_url(url)?;
        if let Some(http) = self.by_connect_timeout.read().get(&timeout) {
            return Ok(http.post(url));
        }
        let http = build(&self.egress, timeout).map_err(ProviderError::Unreachable)?;
        // At most one client per step: the map never grows past the steps.
        let mut clients = self.by_connect_timeout.write();
        Ok(clients.entry(timeout).or_insert(http).post(url))
    }

    /// Parses an upstream URL and refuses what must never be sent: a scheme other than http(s),
    /// a fragment, credentials, or an IP-literal host outside the egress policy. Messages never
    /// repeat the URL (it is tenant configuration and may hold credentials).
    pub fn check_url(&self, url: &str) -> Result<Url, ProviderError> {
        if let Some(parsed) = self.checked.read().get(url) {
            return Ok(parsed.clone());
        }
        let parsed = upstream_url(url).map_err(ProviderError::Unreachable)?;
        if let Some(host) = parsed.host_str() {
            self.egress
                .check_host(host)
                .map_err(ProviderError::Forbidden)?;
        }
        let mut checked = self.checked.write();
        if checked.len() >= CHECKED_URLS {
            checked.clear();
        }
        checked.insert(url.to_owned(), parsed.clone());
        Ok(parsed)
    }
}

/// The upstream client: egress-guarded resolution, no proxy, no redirects, `connect_timeout`.
/// `Err` (logged) only when the TLS backend could not initialise.
fn build(egress: &Arc<EgressPolicy>, connect_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(egress.clone())))
        .build()
        .map_err(|error| {
            tracing::error!(%error, "could not build the upstream HTTP client");
            "the gateway's upstream HTTP client could not be built".to_owned()
        })
}

/// `url` parsed, when it is usable as an upstream URL: http(s), a host, no fragment, no
/// credentials. The error says what is wrong without quoting the URL.
pub fn upstream_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|_| "the upstream URL is not a valid URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the upstream URL must be http:// or https://".to_owned());
    }
    if parsed.host_str().is_none() {
        return Err("the upstream URL has no host".to_owned());
    }
    if parsed.fragment().is_some() {
        return Err("the upstream URL must not contain a fragment (`#`)".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the upstream URL must not contain credentials (`user:pass@`)".to_owned());
    }
    Ok(parsed)
}

/// The egress refusal somewhere in `error`'s source chain (put there by [`GuardedResolver`]).
pub fn egress_refusal(error: &(dyn std::error::Error + 'static)) -> Option<EgressDenied> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(denied) = cause.downcast_ref::<EgressDenied>() {
            return Some(denied.clone());
        }
        current = cause.source();
    }
    None
}

/// Resolves host names through [`EgressPolicy::resolve`]: the connector only ever sees addresses
/// the policy allows. A refusal travels as an [`EgressDenied`] in the error's source chain.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    /// A resolver admitting only the addresses `policy` allows.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            match policy.resolve(name.as_str()).await {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as Addrs),
                Err(ResolveFailure::Denied(denied)) => Err(Box::new(denied) as _),
                Err(ResolveFailure::Lookup(error)) => Err(Box::new(error) as _),
            }
        })
    }
}

/// True when `error` (a `reqwest` failure) came from the egress policy.
pub(crate) fn forbidden(error: &reqwest::Error) -> Option<EgressDenied> {
    error.source().and_then(egress_refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tenants choose connect timeouts freely; the gateway builds at most one client per step.
    #[test]
    fn connect_timeouts_round_up_to_a_few_shared_steps() {
        let with = |config: serde_json::Value| odock_core::ResolvedProvider {
            id: odock_core::ProviderId::new("p"),
            name: "p".into(),
            provider_type: odock_core::ProviderType::OpenAi,
            base_url: "https://api.example.test".into(),
            timeout: None,
            enabled: true,
            config,
        };
        let ms = |config| connect_timeout(&with(config)).map(|d| d.as_millis());
        assert_eq!(ms(serde_json::json!({})), None);
        assert_eq!(ms(serde_json::json!({"connectTimeoutMs": 0})), None);
        assert_eq!(ms(serde_json::json!({"connectTimeoutMs": 1})), Some(250));
        assert_eq!(ms(serde_json::json!({"connectTimeoutMs": 300})), Some(500));
        assert_eq!(
            ms(serde_json::json!({"connectTimeoutMs": 1_000})),
            Some(1_000)
        );
        assert_eq!(
            ms(serde_json::json!({"connectTimeoutMs": 999_999})),
            Some(60_000)
        );
        let steps: std::collections::HashSet<_> = (1..200_000)
            .step_by(97)
            .filter_map(|n| ms(serde_json::json!({ "connectTimeoutMs": n })))
            .collect();
        assert!(steps.len() <= CONNECT_TIMEOUT_STEPS_MS.len());
    }

    #[test]
    fn upstream_urls_without_fragments_or_credentials() {
        assert!(upstream_url("https://api.openai.com/v1").is_ok());
        for bad in [
            "https://api.openai.com/#",
            "https://evil.example/x#/v1",
            "https://user:pw@api.openai.com/v1",
            "https://user@api.openai.com/v1",
            "ftp://api.openai.com",
            "not a url",
        ] {
            let error = upstream_url(bad).unwrap_err();
            assert!(!error.contains("pw"), "{error}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_before_sending() {
        let client = UpstreamClient::default();
        for url in [
            "http://127.0.0.1:8080/v1",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            assert!(
                matches!(client.check_url(url), Err(ProviderError::Forbidden(_))),
                "{url}"
            );
        }
        assert!(client.check_url("https://api.openai.com/v1").is_ok());
        let open = UpstreamClient::new(EgressPolicy::parse("127.0.0.0/8").unwrap());
        assert!(open.check_url("http://127.0.0.1:8080/v1").is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_fail_at_connect_time() {
        let client = UpstreamClient::default();
        let error = client
            .post("http://localhost:9/v1/chat/completions")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let denied = forbidden(&error).expect("an egress refusal");
        assert_eq!(denied.host, "localhost");
    }
}
