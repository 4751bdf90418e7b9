//! MCP session affinity: an MCP session opened on one replica keeps working when its next request
//! lands on another.
//!
//! STDIO and legacy-SSE sessions live in the memory of the replica that minted their
//! `Mcp-Session-Id` (a child process or an upstream event stream per session), so that replica —
//! the owner — must serve every request of the session. This middleware sits on the MCP routes,
//! outside authentication and governance:
//!
//! - a request without a session id is served here; when the answer mints one, this replica claims
//!   it in the [`McpSessionDirectory`] under its advertised URL (before the answer leaves, so the
//!   client's next request finds the owner wherever it lands);
//! - a request whose session another replica owns is forwarded to it unchanged (method, path,
//!   query, headers — the client's own credentials included —, body) and the answer is streamed
//!   back, SSE included. The owner authenticates and governs it, so rate limits, quotas, budgets and
//!   usage records happen once, there. The forwarded request carries [`FORWARDED_FROM`], so the
//!   owner serves it itself and never forwards again; it also carries this replica's request id
//!   (the client sees the id the owner records) and the TCP peer appended to `X-Forwarded-For`
//!   (list the replicas in `ODOCK_TRUSTED_PROXIES` for IP rules to see the client's address);
//! - every session request this replica serves successfully re-claims the session (refreshing its
//!   expiry, and restoring an entry Redis lost); a successful `DELETE` forgets it;
//! - when the owner cannot be reached (connection refused or timed out), its entry is forgotten and
//!   the request is served here — the transport answers 404 for the session it does not know, and
//!   the client re-initialises, as the MCP spec prescribes.
//!
//! Responses marked [`UpstreamHeldSession`] (a session held by the upstream server, which any
//! replica can reach) are not recorded; no transport sets the mark yet, so streamable-HTTP sessions
//! are recorded too and cost one extra hop when they land elsewhere. Without an advertised URL (embedded mode listening on
//! `0.0.0.0` without `ODOCK_ADVERTISE_URL`) nothing is recorded or forwarded.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;
use odock_core::http_headers::without_hop_by_hop;
use odock_core::layers::error_response::error_response;
use odock_core::mcp_sessions::{is_valid_session_id, McpSessionDirectory, UpstreamHeldSession};
use odock_core::{ErrorStyle, GatewayError, McpError, RequestError, RequestId};

/// Marks a request one replica forwarded to the session's owner: served where it arrives.
pub const FORWARDED_FROM: &str = "x-odock-forwarded-from";

const MCP_SESSION_ID: &str = "mcp-session-id";

/// How long forwarding waits to connect to the owner before treating it as gone.
const OWNER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How much longer than a session's idle timeout its ownership entry lives, so the entry never
/// expires before the session does (a stale entry only costs the owner answering 404).
const OWNERSHIP_SLACK: Duration = Duration::from_secs(60);

/// The lifetime of an ownership entry after the session's last use: the longest idle timeout of
/// the transports that hold sessions (stdio, SSE), plus some slack.
pub fn ownership_ttl(options: &odock_mcp::McpTransportOptions) -> Duration {
    options
        .stdio
        .idle_timeout
        .max(options.sse.idle_timeout)
        .saturating_add(OWNERSHIP_SLACK)
}

/// The affinity state shared by the MCP routes (cheap to clone).
#[derive(Clone)]
pub struct McpAffinity {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Arc<dyn McpSessionDirectory>,
    /// How other replicas reach this one; fixed once known (configured, or the bound address).
    advertise_url: OnceLock<String>,
    /// How long an ownership entry lives after the session's last use.
    ttl: Duration,
    max_body_bytes: usize,
    client: reqwest::Client,
}

impl std::fmt::Debug for McpAffinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpAffinity")
            .field("advertise_url", &self.advertise_url())
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

impl McpAffinity {
    /// `ttl` should outlive the transports' idle timeout, so an entry never expires before its
    /// session does; `max_body_bytes` bounds what is buffered for forwarding.
    pub fn new(
        directory: Arc<dyn McpSessionDirectory>,
        advertise_url: Option<String>,
        ttl: Duration,
        max_body_bytes: usize,
    ) -> Self {
        let slot = OnceLock::new();
        if let Some(url) = advertise_url {
            let _ = slot.set(normalise(&url));
        }
        Self {
            inner: Arc::new(Inner {
                directory,
                advertise_url: slot,
                ttl,
                max_body_bytes,
                client: forwarding_client(),
            }),
        }
    }

    /// The URL other replicas reach this one at, once known.
    pub fn advertise_url(&self) -> Option<&str> {
        self.inner.advertise_url.get().map(String::as_str)
    }

    /// Without a configured URL, advertises the address the server is bound to — unless it is a
    /// wildcard (`0.0.0.0`, `::`), which other machines cannot use.
    pub fn advertise_bound_address(&self, bound: SocketAddr) {
        if bound.ip().is_unspecified() {
            if self.advertise_url().is_none() {
                tracing::debug!("listening on a wildcard address without ODOCK_ADVERTISE_URL: MCP sessions are not shared with other replicas");
            }
            return;
        }
        let _ = self.inner.advertise_url.set(format!("http://{bound}"));
    }
}

/// The providers' client settings, with a short connect timeout: a replica that does not accept
/// within it is treated as gone. No overall timeout — event streams last as long as the session.
fn forwarding_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(OWNER_CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|error| {
            tracing::error!(%error, "could not build the replica forwarding client; using defaults");
            reqwest::Client::new()
        })
}

fn normalise(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn affinity(
    State(affinity): State<McpAffinity>,
    request: Request,
    next: Next,
) -> Response {
    let Some(me) = affinity.advertise_url().map(str::to_owned) else {
        return next.run(request).await;
    };
    let session = request
        .headers()
        .get(MCP_SESSION_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_session_id(id))
        .map(str::to_owned);
    let mut request = request;
    // The marker is between replicas: it never reaches the governed stack or an upstream.
    let forwarded = request.headers_mut().remove(FORWARDED_FROM).is_some();
    if let (Some(session), false) = (&session, forwarded) {
        match affinity.inner.directory.owner(session).await {
            Ok(Some(owner)) if normalise(&owner) != me => {
                match forward(&affinity, &me, &owner, request).await {
                    Forwarding::Answered(response) => return response,
                    Forwarding::OwnerGone(unsent) => {
                        tracing::warn!(owner = %owner, "the replica owning an MCP session is unreachable; serving the session here");
                        if let Err(error) = affinity.inner.directory.forget(session).await {
                            tracing::warn!(%error, "could not forget an MCP session");
                        }
                        request = *unsent;
                    }
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "MCP session owner lookup failed; serving the session here");
            }
        }
    }

    let method = request.method().clone();
    let response = next.run(request).await;
    // The session this answer is about, when it is ours to record (the body is not `Sync`, so
    // nothing of the response is held across the directory call).
    let recordable = response.status().is_success()
        && response.extensions().get::<UpstreamHeldSession>().is_none();
    let minted = response
        .headers()
        .get(MCP_SESSION_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_session_id(id))
        .map(str::to_owned);
    if recordable {
        record(
            &affinity,
            &me,
            &method,
            session.as_deref(),
            minted.as_deref(),
        )
        .await;
    }
    response
}

/// Keeps the directory in step with a session request this replica just served successfully.
async fn record(
    affinity: &McpAffinity,
    me: &str,
    method: &Method,
    session: Option<&str>,
    minted: Option<&str>,
) {
    let directory = &affinity.inner.directory;
    let ttl = affinity.inner.ttl;
    let result = match (session, minted) {
        (Some(session), _) if method == Method::DELETE => directory.forget(session).await,
        // Refreshing a live session is not urgent, so it happens off the response path.
        // Re-claiming (rather than touching) also restores an entry the directory lost.
        (Some(session), _) => {
            let (directory, session, me) = (directory.clone(), session.to_owned(), me.to_owned());
            tokio::spawn(async move {
                if let Err(error) = directory.claim(&session, &me, ttl).await {
                    tracing::warn!(%error, "could not refresh MCP session ownership");
                }
            });
            Ok(())
        }
        // A new session is claimed before its answer leaves, so the client's next request finds
        // its owner wherever it lands.
        (None, Some(minted)) => directory.claim(minted, me, ttl).await,
        (None, None) => Ok(()),
    };
    if let Err(error) = result {
        tracing::warn!(%error, "could not record MCP session ownership");
    }
}

enum Forwarding {
    /// The owner answered (or failed after connecting): relay this.
    Answered(Response),
    /// The owner could not be reached; the request, untouched, to serve here.
    OwnerGone(Box<Request>),
}

/// Sends `request` to `owner` and streams its answer back.
async fn forward(affinity: &McpAffinity, me: &str, owner: &str, request: Request) -> Forwarding {
    let (parts, body) = request.into_parts();
    // Buffered (bounded like the gateway's own reads) so it can still be served here when the owner
    // turns out to be gone. MCP messages are small; GET and DELETE have no body.
    let limit = affinity.inner.max_body_bytes;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => {
            let error = GatewayError::Request(RequestError::PayloadTooLarge {
                limit: u64::try_from(limit).unwrap_or(u64::MAX),
            });
            return Forwarding::Answered(
                error_response(&error, ErrorStyle::OpenAi).into_response(),
            );
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    let url = format!("{owner}{path}");
    let mut headers = forwarded_headers(&parts.headers);
    if let Ok(value) = HeaderValue::from_str(me) {
        headers.insert(HeaderName::from_static(FORWARDED_FROM), value);
    }
    if let Some(id) = parts.extensions.get::<RequestId>() {
        if let Ok(value) = HeaderValue::from_str(id.as_str()) {
            headers.insert(odock_core::layers::request_id::X_REQUEST_ID, value);
        }
    }
    if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        append_forwarded_for(&mut headers, peer);
    }

    let sent = affinity
        .inner
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body.clone())
        .send()
        .await;
    match sent {
        Ok(answer) => Forwarding::Answered(relay(answer)),
        Err(error) if error.is_connect() => {
            Forwarding::OwnerGone(Box::new(Request::from_parts(parts, Body::from(body))))
        }
        Err(error) => {
            tracing::warn!(owner = %owner, error = %error.without_url(), "forwarding an MCP request to its owner failed");
            let error = GatewayError::Mcp(McpError::Upstream(
                "the replica holding this MCP session did not answer".to_owned(),
            ));
            Forwarding::Answered(error_response(&error, ErrorStyle::OpenAi).into_response())
        }
    }
}

/// The owner's answer, streamed as it comes (event streams included).
fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = without_hop_by_hop(answer.headers());
    let body = Body::from_stream(answer.bytes_stream().map_err(|error| {
        let error = error.without_url();
        tracing::warn!(%error, "the owner's MCP answer broke off");
        error
    }));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The client's headers as the owner should see them: everything but hop-by-hop headers, `Host`
/// and `Content-Length` (set for the new connection and the buffered body).
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = without_hop_by_hop(headers);
    out.remove(header::HOST);
    out
}

/// Appends the TCP peer to `X-Forwarded-For`, as any proxy does.
fn append_forwarded_for(headers: &mut HeaderMap, peer: &SocketAddr) {
    let earlier: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let chain = if earlier.is_empty() {
        peer.ip().to_string()
    } else {
        format!("{}, {}", earlier.join(", "), peer.ip())
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", value);
    }
}

#[cfg(test)]
mod tests {
    //! Two replicas on loopback sharing one directory (in memory here, as Redis would be), each
    //! with a fake MCP transport behind the middleware that mints sessions and keeps them in its
    //! own memory, as the stdio transport does.

    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::any;
    use axum::Router;
    use futures::StreamExt;
    use odock_core::mcp_sessions::{InMemoryMcpSessionDirectory, SessionDirectoryError};
    use parking_lot::Mutex;
    use tokio::sync::Notify;

    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    /// What one replica's fake transport holds and saw.
    #[derive(Default)]
    struct Fake {
        name: &'static str,
        sessions: Mutex<HashSet<String>>,
        seen: Mutex<Vec<HeaderMap>>,
        calls: AtomicUsize,
        /// Holds the second event of a stream until released.
        gate: Notify,
    }

    async fn fake_transport(State(fake): State<Arc<Fake>>, request: Request) -> Response {
        fake.calls.fetch_add(1, Ordering::SeqCst);
        fake.seen.lock().push(request.headers().clone());
        let session = request
            .headers()
            .get(MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(session) = session else {
            let minted = format!("{}-{}", fake.name, odock_core::ids::random_hex(8));
            fake.sessions.lock().insert(minted.clone());
            return (
                [(MCP_SESSION_ID, minted)],
                format!("initialized by {}", fake.name),
            )
                .into_response();
        };
        if !fake.sessions.lock().contains(&session) {
            return (http::StatusCode::NOT_FOUND, "unknown session").into_response();
        }
        match *request.method() {
            Method::DELETE => {
                fake.sessions.lock().remove(&session);
                http::StatusCode::NO_CONTENT.into_response()
            }
            Method::GET => {
                let fake = fake.clone();
                let events = futures::stream::unfold(0, move |step| {
                    let fake = fake.clone();
                    async move {
                        match step {
                            0 => Some((Ok::<_, std::io::Error>("data: first\n\n".to_owned()), 1)),
                            1 => {
                                fake.gate.notified().await;
                                Some((Ok("data: second\n\n".to_owned()), 2))
                            }
                            _ => None,
                        }
                    }
                });
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    Body::from_stream(events),
                )
                    .into_response()
            }
            _ => {
                let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                    .await
                    .unwrap();
                format!(
                    "served by {}: {}",
                    fake.name,
                    String::from_utf8_lossy(&body)
                )
                .into_response()
            }
        }
    }

    struct Replica {
        url: String,
        fake: Arc<Fake>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn replica(name: &'static str, directory: Arc<dyn McpSessionDirectory>) -> Replica {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bound = listener.local_addr().unwrap();
        let affinity = McpAffinity::new(directory, None, TTL, 1024);
        affinity.advertise_bound_address(bound);
        let fake = Arc::new(Fake {
            name,
            ..Fake::default()
        });
        let router = Router::new()
            .route("/v1/mcp/{server}", any(fake_transport))
            .with_state(fake.clone())
            .layer(axum::middleware::from_fn_with_state(
                affinity,
                super::affinity,
            ));
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Replica {
            url: format!("http://{bound}"),
            fake,
            task,
        }
    }

    async fn pair() -> (Arc<InMemoryMcpSessionDirectory>, Replica, Replica) {
        let directory = Arc::new(InMemoryMcpSessionDirectory::default());
        let a = replica("a", directory.clone()).await;
        let b = replica("b", directory.clone()).await;
        (directory, a, b)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    async fn initialize(on: &Replica) -> String {
        let answer = client()
            .post(format!("{}/v1/mcp/files", on.url))
            .body("initialize")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        answer.headers()[MCP_SESSION_ID]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_session_minted_on_a_is_claimed_for_a_and_served_by_a_when_its_request_lands_on_b() {
        let (directory, a, b) = pair().await;
        let session = initialize(&a).await;
        assert_eq!(
            directory.owner(&session).await.unwrap(),
            Some(a.url.clone())
        );

        let answer = client()
            .post(format!("{}/v1/mcp/files?x=1", b.url))
            .header(MCP_SESSION_ID, &session)
            .header(header::AUTHORIZATION, "Bearer sk_client_key")
            .header("x-request-id", "req-123")
            .body("tools/list")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "served by a: tools/list");
        assert_eq!(
            b.fake.calls.load(Ordering::SeqCst),
            0,
            "B never serves A's session"
        );
        let seen = a.fake.seen.lock().last().cloned().unwrap();
        assert_eq!(seen[header::AUTHORIZATION], "Bearer sk_client_key");
        // The owner's middleware took the marker off before serving.
        assert!(!seen.contains_key(FORWARDED_FROM));
        assert_eq!(seen["x-request-id"], "req-123");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen[MCP_SESSION_ID], session.as_str());
    }

    #[tokio::test]
    async fn an_event_stream_from_the_owner_is_relayed_as_it_comes() {
        let (_, a, b) = pair().await;
        let session = initialize(&a).await;
        let answer = client()
            .get(format!("{}/v1/mcp/files", b.url))
            .header(MCP_SESSION_ID, &session)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = answer.bytes_stream();
        // The first event arrives while the owner still holds the second one back.
        let first = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("first event relayed before the stream ends")
            .unwrap()
            .unwrap();
        assert_eq!(first, "data: first\n\n");
        a.fake.gate.notify_one();
        let mut rest = Vec::new();
        while let Some(chunk) = body.next().await {
            rest.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(rest, b"data: second\n\n");
    }

    #[tokio::test]
    async fn deleting_a_session_through_another_replica_ends_it_on_the_owner_and_forgets_it() {
        let (directory, a, b) = pair().await;
        let session = initialize(&a).await;
        let answer = client()
            .delete(format!("{}/v1/mcp/files", b.url))
            .header(MCP_SESSION_ID, &session)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
        assert!(a.fake.sessions.lock().is_empty());
        assert_eq!(directory.owner(&session).await.unwrap(), None);
    }

    #[tokio::test]
    async fn when_the_owner_is_gone_the_session_is_forgotten_and_answered_here() {
        let (directory, a, b) = pair().await;
        let session = initialize(&a).await;
        a.task.abort();
        let _ = a.task.await;
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client()
                .post(format!("{}/v1/mcp/files", b.url))
                .header(MCP_SESSION_ID, &session)
                .body("tools/list")
                .send(),
        )
        .await
        .expect("no hang when the owner is gone")
        .unwrap();
        // B's transport does not know the session: the client re-initialises.
        assert_eq!(answer.status(), 404);
        assert_eq!(b.fake.calls.load(Ordering::SeqCst), 1);
        assert_eq!(directory.owner(&session).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_forwarded_request_is_served_where_it_arrives_and_never_forwarded_again() {
        let (directory, a, b) = pair().await;
        // The directory (wrongly) names A, but the request says a replica already forwarded it.
        directory.claim("s-1", &a.url, TTL).await.unwrap();
        let answer = client()
            .post(format!("{}/v1/mcp/files", b.url))
            .header(MCP_SESSION_ID, "s-1")
            .header(FORWARDED_FROM, "http://elsewhere")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404);
        assert_eq!(a.fake.calls.load(Ordering::SeqCst), 0);
        assert_eq!(b.fake.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn serving_a_session_refreshes_its_entry_and_restores_a_lost_one() {
        let (directory, a, _b) = pair().await;
        let session = initialize(&a).await;
        directory.forget(&session).await.unwrap(); // e.g. Redis restarted empty
        let answer = client()
            .post(format!("{}/v1/mcp/files", a.url))
            .header(MCP_SESSION_ID, &session)
            .body("ping")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        // The refresh happens just after the answer.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while directory.owner(&session).await.unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the entry was not restored"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            directory.owner(&session).await.unwrap(),
            Some(a.url.clone())
        );
    }

    #[tokio::test]
    async fn a_body_too_large_to_forward_is_refused_with_413() {
        let (_, a, b) = pair().await;
        let session = initialize(&a).await;
        let answer = client()
            .post(format!("{}/v1/mcp/files", b.url))
            .header(MCP_SESSION_ID, &session)
            .body("x".repeat(4096))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 413);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large");
        assert_eq!(
            a.fake.calls.load(Ordering::SeqCst),
            1,
            "only the initialize"
        );
    }

    #[tokio::test]
    async fn without_an_advertised_url_nothing_is_recorded() {
        let directory = Arc::new(InMemoryMcpSessionDirectory::default());
        let affinity = McpAffinity::new(directory.clone(), None, TTL, 1024);
        affinity.advertise_bound_address("0.0.0.0:8080".parse().unwrap());
        assert_eq!(affinity.advertise_url(), None);
        let configured = McpAffinity::new(
            directory.clone(),
            Some("http://10.0.0.5:8080/".to_owned()),
            TTL,
            1024,
        );
        configured.advertise_bound_address("127.0.0.1:9000".parse().unwrap());
        assert_eq!(configured.advertise_url(), Some("http://10.0.0.5:8080"));

        let router = Router::new()
            .route("/v1/mcp/{server}", any(fake_transport))
            .with_state(Arc::new(Fake {
                name: "solo",
                ..Fake::default()
            }))
            .layer(axum::middleware::from_fn_with_state(
                affinity,
                super::affinity,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let answer = client()
            .post(format!("{url}/v1/mcp/files"))
            .body("initialize")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(answer.headers().contains_key(MCP_SESSION_ID));
        assert!(directory.is_empty());
    }

    /// A directory whose backend is down.
    struct Unreachable;

    #[async_trait::async_trait]
    impl McpSessionDirectory for Unreachable {
        async fn claim(&self, _: &str, _: &str, _: Duration) -> Result<(), SessionDirectoryError> {
            Err(SessionDirectoryError::Unavailable("down".into()))
        }
        async fn owner(&self, _: &str) -> Result<Option<String>, SessionDirectoryError> {
            Err(SessionDirectoryError::Unavailable("down".into()))
        }
        async fn touch(&self, _: &str, _: Duration) -> Result<(), SessionDirectoryError> {
            Err(SessionDirectoryError::Unavailable("down".into()))
        }
        async fn forget(&self, _: &str) -> Result<(), SessionDirectoryError> {
            Err(SessionDirectoryError::Unavailable("down".into()))
        }
    }

    #[tokio::test]
    async fn while_the_directory_is_unreachable_sessions_are_served_where_they_land() {
        let a = replica("a", Arc::new(Unreachable)).await;
        let session = initialize(&a).await;
        let answer = client()
            .post(format!("{}/v1/mcp/files", a.url))
            .header(MCP_SESSION_ID, &session)
            .body("tools/list")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "served by a: tools/list");
    }

    #[test]
    fn hop_by_hop_headers_host_and_length_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("gateway"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        headers.append(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-06-18"),
        );
        let out = forwarded_headers(&headers);
        let mut names: Vec<&str> = out.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["authorization", "mcp-protocol-version"]);

        let mut chain = HeaderMap::new();
        chain.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        append_forwarded_for(&mut chain, &"10.0.0.7:5000".parse().unwrap());
        assert_eq!(chain["x-forwarded-for"], "203.0.113.9, 10.0.0.7");
    }
}
