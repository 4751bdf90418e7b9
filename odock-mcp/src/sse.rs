//! The SSE transport (the older MCP "HTTP+SSE" transport), offered to clients as streamable HTTP.
//!
//! Upstream, a session is a long-lived `GET` event stream whose first `endpoint` event names the URL
//! (often relative, e.g. `/messages?sessionId=…`) where the client POSTs its messages; the server's
//! answers arrive on the event stream. Here a client session starts with an `initialize` POST without
//! `Mcp-Session-Id`: the transport opens the upstream stream, waits for its endpoint, mints the session
//! id and returns it in the reply's `Mcp-Session-Id` header. Each client POST is posted to the
//! endpoint and answered with the responses that arrive on the stream for its request ids (202 for
//! notifications). GET opens the stream of server-initiated messages; DELETE closes the upstream
//! stream. Idle sessions are reaped like stdio ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use odock_core::{Clock, McpError, McpMessage, McpReply, McpTransport, SystemClock};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::auth::{McpAuth, UpstreamAuth};
use crate::egress::{check_url, read_capped, upstream_failure};
use crate::framing::{error_codes, sse_events, Payload, SseEvent};
use crate::headers::{
    accepts_event_stream, forward_request_headers, forward_response_headers, session_id,
    MCP_SESSION_ID,
};
use crate::session::{self, ExchangeOptions, Inbox, Reapable, Sent, SessionTable};
use crate::streamable_http::{endpoint, HttpOptions};

/// Session settings for the SSE transport.
#[derive(Clone)]
pub struct SseOptions {
    /// HTTP client settings (timeouts, body caps, egress policy) for the event stream and the
    /// POSTs.
    pub http: HttpOptions,
    /// How long to wait for the upstream's `endpoint` event (default 10 s).
    pub endpoint_timeout: Duration,
    /// A session without traffic for this long is closed (default 5 minutes).
    pub idle_timeout: Duration,
    /// How often the background reaper looks for idle sessions (default: a tenth of the idle
    /// timeout, at least one second).
    pub reap_interval: Option<Duration>,
    /// The clock idle timeouts are measured on (a controllable one in tests).
    pub clock: Arc<dyn Clock>,
}

impl Default for SseOptions {
    fn default() -> Self {
        Self {
            http: HttpOptions::default(),
            endpoint_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            reap_interval: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for SseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseOptions")
            .field("http", &self.http)
            .field("endpoint_timeout", &self.endpoint_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

struct SseSession {
    inbox: Arc<Inbox>,
    post_url: reqwest::Url,
    reader: JoinHandle<()>,
}

impl Reapable for SseSession {
    fn busy(&self) -> bool {
        self.inbox.busy()
    }
}

impl Drop for SseSession {
    fn drop(&mut self) {
        // Dropping the reader drops the upstream response: the event stream closes.
        self.reader.abort();
        self.inbox.close("MCP session ended");
    }
}

struct SseInner {
    client: reqwest::Client,
    sse_url: reqwest::Url,
    auth: Arc<UpstreamAuth>,
    options: SseOptions,
    sessions: SessionTable<SseSession>,
    reaper_started: AtomicBool,
}

/// See the module docs. Cheap to clone; clones share sessions.
#[derive(Clone)]
pub struct SseTransport {
    inner: Arc<SseInner>,
}

impl std::fmt::Debug for SseTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseTransport")
            .field("sse_url", &self.inner.sse_url.as_str())
            .field("sessions", &self.inner.sessions.len())
            .finish()
    }
}

fn upstream_error(reason: String) -> McpError {
    McpError::Upstream(reason)
}

impl SseTransport {
    /// `sse_url` is the server's event-stream URL (its `endpointUrl`).
    pub fn new(sse_url: &str, auth: McpAuth, options: SseOptions) -> Result<Self, McpError> {
        let client = options.http.client()?;
        let auth = Arc::new(options.http.auth(auth, client.clone()));
        Self::with_client(sse_url, client, auth, options)
    }

    /// A transport sharing an HTTP client and an auth (token cache) built elsewhere.
    pub fn with_client(
        sse_url: &str,
        client: reqwest::Client,
        auth: Arc<UpstreamAuth>,
        options: SseOptions,
    ) -> Result<Self, McpError> {
        let sessions = SessionTable::new(options.clock.clone(), options.idle_timeout);
        Ok(Self {
            inner: Arc::new(SseInner {
                client,
                sse_url: endpoint(sse_url, &options.http)?,
                auth,
                options,
                sessions,
                reaper_started: AtomicBool::new(false),
            }),
        })
    }

    /// How many client sessions are open (each holds one upstream event stream).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// True when this transport holds the session (it minted it and it has not ended).
    pub fn has_session(&self, session_id: &str) -> bool {
        self.inner.sessions.contains(session_id)
    }

    /// Closes sessions idle past the idle timeout; returns how many.
    pub fn reap_idle(&self) -> usize {
        self.inner.sessions.take_idle().len()
    }

    /// Closes every session.
    pub fn shutdown(&self) {
        drop(self.inner.sessions.drain());
    }

    fn ensure_reaper(&self) {
        if self.inner.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let interval =
            self.inner.options.reap_interval.unwrap_or_else(|| {
                session::default_reap_interval(self.inner.sessions.idle_timeout())
            });
        session::spawn_reaper(Arc::downgrade(&self.inner), interval, |inner| async move {
            inner.sessions.take_idle();
        });
    }

    /// Headers for upstream requests: the client's forwardable ones, minus our session id (the
    /// upstream's session lives in its endpoint URL), plus upstream auth.
    async fn upstream_headers(&self, client: &HeaderMap) -> Result<HeaderMap, McpError> {
        let mut headers = forward_request_headers(client);
        headers.remove(MCP_SESSION_ID);
        if let Some(authorization) = self.inner.auth.authorization().await? {
            headers.insert(AUTHORIZATION, authorization);
        }
        Ok(headers)
    }

    /// Opens the upstream event stream and waits for its endpoint. An upstream refusal is relayed.
    async fn open(&self, client: &HeaderMap) -> Result<Result<SseSession, McpReply>, McpError> {
        let mut headers = self.upstream_headers(client).await?;
        headers.remove(CONTENT_TYPE);
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let timeout = self.inner.options.http.request_timeout;
        let request = self
            .inner
            .client
            .get(self.inner.sse_url.clone())
            .headers(headers);
        let response = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| McpError::Upstream("event stream did not open in time".into()))?
            .map_err(|error| upstream_failure(&error))?;
        let status = response.status();
        if !status.is_success() {
            if status == StatusCode::UNAUTHORIZED {
                self.inner.auth.invalidate().await;
            }
            let headers = forward_response_headers(response.headers());
            let body = read_capped(response, self.inner.options.http.max_response_bytes)
                .await
                .unwrap_or_default();
            return Ok(Err(McpReply::Json {
                status,
                headers,
                body,
            }));
        }
        let mut events = sse_events(response.bytes_stream());
        let endpoint_timeout = self.inner.options.endpoint_timeout;
        let announced = tokio::time::timeout(endpoint_timeout, async {
            while let Some(event) = events.next().await {
                let event = event?;
                if event.event_type() == "endpoint" {
                    return Ok(event.data);
                }
            }
            Err(McpError::Upstream(
                "event stream ended before announcing its endpoint".into(),
            ))
        })
        .await
        .map_err(|_| McpError::Upstream("the upstream announced no endpoint in time".into()))??;
        let post_url = self.announced_endpoint(announced.trim())?;
        let inbox = Arc::new(Inbox::default());
        let reader = tokio::spawn(read_events(events, inbox.clone()));
        Ok(Ok(SseSession {
            inbox,
            post_url,
            reader,
        }))
    }

    /// The endpoint the upstream announced, resolved against the event-stream URL. It must stay on
    /// the event stream's origin (as the MCP SDKs require): client messages and the server's
    /// credentials are posted there, and an upstream must not redirect them to another host.
    fn announced_endpoint(&self, announced: &str) -> Result<reqwest::Url, McpError> {
        let url =
            self.inner.sse_url.join(announced).map_err(|_| {
                McpError::Upstream("the upstream announced an invalid endpoint".into())
            })?;
        if url.origin() != self.inner.sse_url.origin() {
            return Err(McpError::Upstream(
                "the upstream announced an endpoint on another origin".into(),
            ));
        }
        check_url(
            url.as_str(),
            &self.inner.options.http.egress,
            "the announced endpoint",
        )
    }

    async fn post(&self, message: McpMessage) -> Result<McpReply, McpError> {
        let payload = match Payload::parse(&message.body) {
            Ok(payload) => payload,
            Err(error) => {
                return Ok(session::protocol_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    error.json_rpc_code(),
                    &error.to_string(),
                ))
            }
        };
        if let Some(id) = session_id(&message.headers) {
            let Some(session) = self.inner.sessions.get(id) else {
                return Ok(session::session_not_found());
            };
            let reply = self.deliver(&session, &payload, &message).await;
            self.inner.sessions.touch(id);
            return reply;
        }
        if !payload.is_initialize() {
            return Ok(session::session_required());
        }
        let session = match self.open(&message.headers).await? {
            Ok(session) => Arc::new(session),
            Err(refused) => return Ok(refused),
        };
        let id = self.inner.sessions.insert(session.clone());
        self.ensure_reaper();
        match self.deliver(&session, &payload, &message).await {
            Ok(reply) if status_of(&reply).is_success() => Ok(session::with_session_id(reply, &id)),
            other => {
                self.inner.sessions.remove(&id);
                other
            }
        }
    }

    /// POSTs the client's message to the session's endpoint and collects the answers.
    async fn deliver(
        &self,
        session: &Arc<SseSession>,
        payload: &Payload,
        message: &McpMessage,
    ) -> Result<McpReply, McpError> {
        let mut headers = self.upstream_headers(&message.headers).await?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let timeout = self.inner.options.http.request_timeout;
        let request = self
            .inner
            .client
            .post(session.post_url.clone())
            .headers(headers)
            .body(message.body.clone());
        let auth = self.inner.auth.clone();
        let max_body = self.inner.options.http.max_response_bytes;
        let send = async move {
            let response = tokio::time::timeout(timeout, request.send())
                .await
                .map_err(|_| McpError::Upstream("message POST timed out".into()))?
                .map_err(|error| upstream_failure(&error))?;
            let status = response.status();
            if status.is_success() {
                return Ok(Sent::Accepted);
            }
            if status == StatusCode::UNAUTHORIZED {
                auth.invalidate().await;
            }
            let headers = forward_response_headers(response.headers());
            let body = read_capped(response, max_body).await.unwrap_or_default();
            Ok(Sent::Rejected(McpReply::Json {
                status,
                headers,
                body,
            }))
        };
        let options = ExchangeOptions {
            accept_event_stream: accepts_event_stream(&message.headers),
            timeout,
        };
        session::exchange(&session.inbox, payload, options, send, upstream_error).await
    }

    fn delete(&self, headers: &HeaderMap) -> McpReply {
        let Some(id) = session_id(headers) else {
            return session::session_required();
        };
        match self.inner.sessions.remove(id) {
            Some(session) => {
                drop(session);
                McpReply::Json {
                    status: StatusCode::NO_CONTENT,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                }
            }
            None => session::session_not_found(),
        }
    }

    fn get(&self, headers: &HeaderMap) -> Result<McpReply, McpError> {
        let Some(id) = session_id(headers) else {
            return Ok(session::session_required());
        };
        let Some(session) = self.inner.sessions.get(id) else {
            return Ok(session::session_not_found());
        };
        session::listen(&session.inbox, upstream_error)
    }
}

fn status_of(reply: &McpReply) -> StatusCode {
    match reply {
        McpReply::Json { status, .. } | McpReply::Stream { status, .. } => *status,
    }
}

/// Delivers the upstream's `message` events to the session until the stream ends.
async fn read_events(
    mut events: futures::stream::BoxStream<'static, Result<SseEvent, McpError>>,
    inbox: Arc<Inbox>,
) {
    let reason = loop {
        match events.next().await {
            Some(Ok(event)) if event.event_type() == "message" => {
                match serde_json::from_str::<Value>(&event.data) {
                    Ok(Value::Array(batch)) => batch.into_iter().for_each(|m| inbox.deliver(m)),
                    Ok(message) => inbox.deliver(message),
                    Err(error) => tracing::warn!(%error, "SSE upstream sent a non-JSON message"),
                }
            }
            Some(Ok(_other)) => {}
            Some(Err(error)) => break error.to_string(),
            None => break "the upstream event stream ended".to_owned(),
        }
    };
    inbox.close(&reason);
}

#[async_trait]
impl McpTransport for SseTransport {
    async fn send(&self, message: McpMessage) -> Result<McpReply, McpError> {
        match message.method {
            Method::POST => self.post(message).await,
            Method::GET => self.get(&message.headers),
            Method::DELETE => Ok(self.delete(&message.headers)),
            _ => Ok(session::protocol_error(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                error_codes::INVALID_REQUEST,
                "method not allowed",
            )),
        }
    }
}
