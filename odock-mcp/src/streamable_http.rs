//! The STREAMABLE_HTTP transport: each client message is one HTTP request to the server's
//! `endpointUrl` (POST a message, GET the server stream, DELETE the session). JSON replies are
//! relayed whole; event-stream replies are relayed event by event as they arrive. The upstream's
//! status is relayed as is (4xx/5xx included); only a failure to get a response at all is an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use odock_core::{McpError, McpMessage, McpReply, McpTransport};

use crate::auth::{reqwest_failure, McpAuth, UpstreamAuth};
use crate::framing::sse_events;
use crate::headers::{forward_request_headers, forward_response_headers};

/// Timeouts for HTTP upstreams.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// Establishing the TCP/TLS connection (default 10 s).
    pub connect_timeout: Duration,
    /// Until the response headers arrive, and for a JSON body until it is read (default 5 min).
    /// Event streams are not bounded once they have started.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
        }
    }
}

impl HttpOptions {
    /// A client with these timeouts; share one across transports.
    pub fn client(&self) -> Result<reqwest::Client, McpError> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|_| McpError::Upstream("could not build the HTTP client".into()))
    }
}

/// Parses an endpoint URL; empty is [`McpError::MissingEndpoint`].
pub(crate) fn endpoint(url: &str) -> Result<reqwest::Url, McpError> {
    if url.trim().is_empty() {
        return Err(McpError::MissingEndpoint);
    }
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| {
        McpError::Upstream("the MCP server's endpoint URL is not a valid URL".into())
    })?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        _ => Err(McpError::Upstream(
            "the MCP server's endpoint URL must be http or https".into(),
        )),
    }
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
        let auth = Arc::new(UpstreamAuth::new(auth, client.clone()));
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
            endpoint: endpoint(endpoint_url)?,
            auth,
            options,
        })
    }

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
        send_and_relay(request, &self.auth, self.options.request_timeout).await
    }
}

/// Sends `request` and turns the upstream response into a reply (shared with the SSE transport).
pub(crate) async fn send_and_relay(
    request: reqwest::RequestBuilder,
    auth: &UpstreamAuth,
    timeout: Duration,
) -> Result<McpReply, McpError> {
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| McpError::Upstream(format!("no response within {}s", timeout.as_secs())))?
        .map_err(|error| McpError::Upstream(reqwest_failure(&error).into()))?;
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
    let body = tokio::time::timeout(timeout, response.bytes())
        .await
        .map_err(|_| McpError::Upstream("response body timed out".into()))?
        .map_err(|error| McpError::Upstream(reqwest_failure(&error).into()))?;
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
        assert_eq!(endpoint("  ").unwrap_err(), McpError::MissingEndpoint);
        assert!(matches!(endpoint("not a url"), Err(McpError::Upstream(_))));
        assert!(matches!(
            endpoint("file:///etc/passwd"),
            Err(McpError::Upstream(_))
        ));
        assert_eq!(endpoint("http://127.0.0.1:1/mcp").unwrap().path(), "/mcp");
    }
}
