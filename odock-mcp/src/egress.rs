//! Keeping MCP HTTP traffic off the gateway's own network, and bounded.
//!
//! MCP endpoint URLs, the endpoints SSE servers announce and OAuth2 token URLs are tenant
//! configuration (or chosen by the upstream). Every connection is checked against the
//! [`EgressPolicy`] of [`HttpOptions`](crate::HttpOptions):
//!
//! - host names are resolved by `GuardedResolver`, which hands the connector only the addresses
//!   the policy allows (checked after resolution, at connect time, so DNS rebinding cannot slip a
//!   private address in);
//! - IP-literal hosts never reach a resolver, so [`check_url`] checks them before any request;
//!   it also refuses URLs with a fragment or credentials;
//! - redirects are not followed and system proxies are ignored (a proxy would connect where the
//!   policy cannot see).
//!
//! A refusal is [`McpError::Forbidden`] (502 `upstream_forbidden`). Unary upstream bodies are read
//! up to [`HttpOptions::max_response_bytes`](crate::HttpOptions::max_response_bytes).

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use odock_core::egress::{EgressDenied, EgressPolicy, ResolveFailure};
use odock_core::McpError;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// The default for the largest JSON reply read from an HTTP MCP server (64 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Parses an upstream URL and refuses what must never be called: not http(s), no host, a fragment,
/// credentials (`user:pass@` — use the server's auth config), or an IP-literal host outside the
/// policy. Messages never quote the URL. `what` names the URL in messages.
pub fn check_url(url: &str, policy: &EgressPolicy, what: &str) -> Result<Url, McpError> {
    let invalid = |problem: &str| McpError::Upstream(format!("{what} {problem}"));
    let parsed = Url::parse(url.trim()).map_err(|_| invalid("is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("must be http or https"));
    }
    let Some(host) = parsed.host_str() else {
        return Err(invalid("has no host"));
    };
    if parsed.fragment().is_some() {
        return Err(invalid("must not contain a fragment (`#`)"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not contain credentials (`user:pass@`)"));
    }
    policy.check_host(host).map_err(McpError::Forbidden)?;
    Ok(parsed)
}

/// An HTTP client whose connections the policy guards (see the module docs).
pub(crate) fn guarded_client(
    connect_timeout: Duration,
    policy: Arc<EgressPolicy>,
) -> Result<reqwest::Client, McpError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver(policy)))
        .build()
        .map_err(|_| McpError::Upstream("could not build the HTTP client".into()))
}

/// Resolves host names through [`EgressPolicy::resolve`]; a refusal travels as an
/// [`EgressDenied`] in the error's source chain.
#[derive(Debug, Clone)]
struct GuardedResolver(Arc<EgressPolicy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            match policy.resolve(name.as_str()).await {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as Addrs),
                Err(ResolveFailure::Denied(denied)) => Err(Box::new(denied) as _),
                Err(ResolveFailure::Lookup(error)) => Err(Box::new(error) as _),
            }
        })
    }
}

/// The egress refusal in `error`'s source chain, if that is why it failed.
pub(crate) fn refusal(error: &reqwest::Error) -> Option<EgressDenied> {
    let mut current = error.source();
    while let Some(cause) = current {
        if let Some(denied) = cause.downcast_ref::<EgressDenied>() {
            return Some(denied.clone());
        }
        current = cause.source();
    }
    None
}

/// A reqwest failure as an [`McpError`]: [`McpError::Forbidden`] when the policy refused the
/// connection, else [`McpError::Upstream`] with a short description (never the URL).
pub(crate) fn upstream_failure(error: &reqwest::Error) -> McpError {
    match refusal(error) {
        Some(denied) => McpError::Forbidden(denied),
        None => McpError::Upstream(reqwest_failure(error).into()),
    }
}

/// A short description of a reqwest failure without its URL (which may embed credentials).
pub(crate) fn reqwest_failure(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "broken response body"
    } else if error.is_request() {
        "request failed"
    } else {
        "transport error"
    }
}

/// The whole body when it is at most `limit` bytes; beyond that the read stops and the reply is an
/// error, so a runaway upstream cannot make the gateway buffer without end.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, McpError> {
    let too_large = || McpError::Upstream(format!("the MCP server's reply exceeds {limit} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| upstream_failure(&error))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_any_request() {
        let policy = EgressPolicy::default();
        let check = |url: &str| check_url(url, &policy, "the endpoint URL");
        assert!(check("https://mcp.example/mcp").is_ok());
        for url in [
            "http://127.0.0.1:8080/mcp",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(matches!(check(url), Err(McpError::Forbidden(_))), "{url}");
        }
        for url in [
            "https://mcp.example/mcp#x",
            "https://user:secret@mcp.example/mcp",
            "file:///etc/passwd",
            "not a url",
        ] {
            let error = check(url).unwrap_err();
            assert!(matches!(error, McpError::Upstream(_)), "{url}");
            assert!(!error.to_string().contains("secret"), "{error}");
        }
        let open = EgressPolicy::parse("127.0.0.1").unwrap();
        assert!(check_url("http://127.0.0.1:8080/mcp", &open, "x").is_ok());
    }
}
