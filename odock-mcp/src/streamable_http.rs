//! The STREAMABLE_HTTP transport: each client message is one HTTP request to the server's
//! `endpointUrl` (POST a message, GET the server stream, DELETE the session). JSON replies are
//! relayed whole (up to [`HttpOptions::max_response_bytes`]); event-stream replies are relayed event
//! by event as they arrive. The upstream's status is relayed as is (4xx/5xx included); only a
//! failure to get a response at all is an error. Connections go only where the egress policy
//! allows ([`crate::egress`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use odock_core::egress::EgressPolicy;
use odock_core::{McpError, McpMessage, McpReply, McpTransport};

use crate::auth::{McpAuth, UpstreamAuth};
use crate::egress::{check_url, guarded_client, read_capped, upstream_failure};
use crate::framing::sse_events;
use crate::headers::{forward_request_headers, forward_response_headers};

/// Timeouts, egress policy and body cap for HTTP upstreams.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Establishing the TCP/TLS connection (default 10 s).
    pub connect_timeout: Duration,
    /// Until the response headers arrive, and for a JSON body until it is read (default 5 min).
    /// Event streams are not bounded once they have started.
    pub request_timeout: Duration,
    /// Where connections may go (default: no loopback, private or link-local address).
    pub egress: Arc<EgressPolicy>,
    /// The largest JSON reply read (default 64 MiB); larger is an upstream error.
    pub max_response_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            egress: Arc::new(EgressPolicy::default()),
            max_response_bytes: crate::egress::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl HttpOptions {
    /// A client with these timeouts whose connections the egress policy guards; share one across
    /// transports.
    pub fn client(&self) -> Result<reqwest::Client, McpError> {
        guarded_client(self.connect_timeout, self.egress.clone())
    }

    /// An [`UpstreamAuth`] for `auth` that fetches OAuth2 tokens through `client` under this
    /// egress policy.
    pub fn auth(&self, auth: McpAuth, client: reqwest::Client) -> UpstreamAuth {
        UpstreamAuth::new(auth, client).with_egress(self.egress.clone())
    }
}

/// Parses an endpoint URL (see [`check_url`]); empty is [`McpError::MissingEndpoint`].
pub(crate) fn endpoint(url: &str, options: &HttpOptions) -> Result<reqwest::Url, McpError> {
    if url.trim().is_empty() {
        return Err(McpError::MissingEndpoint);
    }
    check_url(url, &options.egress, "the MCP server's endpoint URL")
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct StreamableHttpTransport {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    auth: Arc<UpstreamAuth>,
    options: HttpOptions,
}

impl StreamableHttpTransport {
    /// A transport with its own HTTP client.
    pub fn new(endpoint_url: &str, auth: McpAuth, options: HttpOptions) -> Result<Self, McpError> {
        let client = options.client()?;
        let auth = Arc::new(options.auth(auth, client.clone()));
        Self::with_client(endpoint_url, client, auth, options)
    }

    /// A transport sharing an HTTP client and an auth (token cache) built elsewhere.
    pub fn with_client(
        endpoint_url: &str,
        client: reqwest::Client,
        auth: Arc<UpstreamAuth>,
        options: HttpOptions,
    ) -> Result<Self, McpError> {
        Ok(Self {
            client,
            endpoint: endpoint(endpoint_url, &options)?,
            auth,
            options,
        })
    }

    /// The upstream auth, shared with whoever else uses its token cache.
    pub fn auth(&self) -> &Arc<UpstreamAuth> {
        &self.auth
    }
}

#[async_trait]
impl McpTransport for StreamableHttpTransport {
    async fn send(&self, message: McpMessage) -> Result<McpReply, McpError> {
        let method = message.method.clone();
        if method != Method::POST && method != Method::GET && method != Method::DELETE {
            return Ok(McpReply::Json {
                status: StatusCode::METHOD_NOT_ALLOWED,
                headers: HeaderMap::new(),
                body: bytes::Bytes::new(),
            });
        }
        let mut headers = forward_request_headers(&message.headers);
        if method == Method::POST {
            headers
                .entry(CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            headers.entry(ACCEPT).or_insert(HeaderValue::from_static(
                "application/json, text/event-stream",
            ));
        } else if method == Method::GET {
            headers
                .entry(ACCEPT)
                .or_insert(HeaderValue::from_static("text/event-stream"));
        }
        if let Some(authorization) = self.auth.authorization().await? {
            headers.insert(AUTHORIZATION, authorization);
        }
        let mut request = self
            .client
            .request(method.clone(), self.endpoint.clone())
            .headers(headers);
        if method == Method::POST {
            request = request.body(message.body);
        }
        send_and_relay(request, &self.auth, &self.options).await
    }
}

/// Sends `request` and turns the upstream response into a reply (shared with the SSE transport).
pub(crate) async fn send_and_relay(
    request: reqwest::RequestBuilder,
    auth: &UpstreamAuth,
    options: &HttpOptions,
) -> Result<McpReply, McpError> {
    let timeout = options.request_timeout;
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| McpError::Upstream(format!("no response within {}s", timeout.as_secs())))?
        .map_err(|error| upstream_failure(&error))?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        // A rejected OAuth2 token is refetched next time rather than reused until it expires.
        auth.invalidate().await;
    }
    let headers = forward_response_headers(response.headers());
    if is_event_stream(response.headers()) && status.is_success() {
        let events = sse_events(response.bytes_stream())
            .map(|event| event.map(|event| event.to_bytes()))
            .boxed();
        return Ok(McpReply::Stream {
            status,
            headers,
            events,
        });
    }
    let body = tokio::time::timeout(timeout, read_capped(response, options.max_response_bytes))
        .await
        .map_err(|_| McpError::Upstream("response body timed out".into()))??;
    Ok(McpReply::Json {
        status,
        headers,
        body,
    })
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_checked() {
        let options = HttpOptions::default();
        assert_eq!(
            endpoint("  ", &options).unwrap_err(),
            McpError::MissingEndpoint
        );
        assert!(matches!(
            endpoint("not a url", &options),
            Err(McpError::Upstream(_))
        ));
        assert!(matches!(
            endpoint("file:///etc/passwd", &options),
            Err(McpError::Upstream(_))
        ));
        assert!(matches!(
            endpoint("http://127.0.0.1:1/mcp", &options),
            Err(McpError::Forbidden(_))
        ));
        let loopback = HttpOptions {
            egress: Arc::new(EgressPolicy::parse("127.0.0.0/8").unwrap()),
            ..HttpOptions::default()
        };
        assert_eq!(
            endpoint("http://127.0.0.1:1/mcp", &loopback)
                .unwrap()
                .path(),
            "/mcp"
        );
    }
}
