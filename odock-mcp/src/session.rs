//! Client sessions over upstreams that are not request/response HTTP (stdio processes, legacy SSE
//! streams): the gateway mints the `Mcp-Session-Id`, routes what the server sends back to the POST
//! waiting for it (by JSON-RPC id) or to the session's GET stream, and reaps idle sessions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream;
use futures::StreamExt;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use odock_core::{Clock, McpError, McpReply};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::framing::{
    error_codes, error_response, JsonRpcMessage, MessageKind, Payload, RequestId, SseEvent,
};
use crate::headers::MCP_SESSION_ID;

/// Something the server sent, or the end of the session.
#[derive(Debug, Clone)]
pub(crate) enum Inbound {
    Message(Value),
    Closed(String),
}

type Waiter = mpsc::UnboundedSender<Inbound>;

#[derive(Default)]
struct InboxState {
    /// Request id → the POST waiting for its response.
    pending: HashMap<RequestId, (u64, Waiter)>,
    /// Progress token → the POST whose request carried it.
    progress: HashMap<String, (u64, Waiter)>,
    /// The client's GET stream, for messages no POST waits for.
    listener: Option<Waiter>,
    closed: Option<String>,
    next_exchange: u64,
}

/// Routes server messages to their waiters. Shared by the session and its reader task.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
}

impl Inbox {
    /// Routes one message: a response to the POST that sent its id (else dropped); a progress
    /// notification to the POST that asked for it; anything else to the open GET stream, else the
    /// newest in-flight POST, else it is dropped (logged).
    pub(crate) fn deliver(&self, value: Value) {
        let message = match JsonRpcMessage::from_value(value.clone()) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, "dropping an unusable message from the MCP server");
                return;
            }
        };
        let mut state = self.state.lock();
        if message.kind() == MessageKind::Response {
            // A response belongs to the request with its id; one nobody waits for (a late or
            // duplicate answer, an error about an unparsable line) concerns no client.
            match message.id().and_then(|id| state.pending.remove(id)) {
                Some((_, waiter)) => {
                    let _ = waiter.send(Inbound::Message(value));
                }
                None => tracing::debug!("dropping an MCP response no request waits for"),
            }
            return;
        }
        // Progress goes to the POST that asked for it; other server messages (logging, list
        // changes, server requests) to the GET stream when one is open, else to the newest POST.
        let by_progress = message
            .progress_token()
            .and_then(|token| state.progress.get(&token.to_string()))
            .map(|(_, waiter)| waiter.clone());
        let target = by_progress
            .or_else(|| state.listener.clone().filter(|l| !l.is_closed()))
            .or_else(|| {
                state
                    .pending
                    .values()
                    .max_by_key(|(exchange, _)| *exchange)
                    .map(|(_, waiter)| waiter.clone())
            });
        match target {
            Some(waiter) => {
                if waiter.send(Inbound::Message(value)).is_err() {
                    tracing::debug!("MCP server message arrived after its client left");
                }
            }
            None => tracing::debug!(
                method = message.method().unwrap_or(""),
                "no client waits for this MCP server message; dropped"
            ),
        }
    }

    /// Ends the session: every waiter hears why, later registrations fail at once.
    pub(crate) fn close(&self, reason: &str) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.closed = Some(reason.to_owned());
        }
        let closed = Inbound::Closed(reason.to_owned());
        for (_, waiter) in state.pending.drain().map(|(_, w)| w) {
            let _ = waiter.send(closed.clone());
        }
        for (_, waiter) in state.progress.drain().map(|(_, w)| w) {
            let _ = waiter.send(closed.clone());
        }
        if let Some(listener) = state.listener.take() {
            let _ = listener.send(closed);
        }
    }

    pub(crate) fn closed_reason(&self) -> Option<String> {
        self.state.lock().closed.clone()
    }

    /// True while a POST waits or a GET stream is open (such a session is not idle).
    pub(crate) fn busy(&self) -> bool {
        let state = self.state.lock();
        !state.pending.is_empty() || state.listener.as_ref().is_some_and(|l| !l.is_closed())
    }

    fn register(
        &self,
        ids: &[RequestId],
        progress_tokens: &[String],
    ) -> Result<(u64, mpsc::UnboundedReceiver<Inbound>), String> {
        let mut state = self.state.lock();
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
        }
        state.next_exchange += 1;
        let exchange = state.next_exchange;
        let (tx, rx) = mpsc::unbounded_channel();
        for id in ids {
            state.pending.insert(id.clone(), (exchange, tx.clone()));
        }
        for token in progress_tokens {
            state.progress.insert(token.clone(), (exchange, tx.clone()));
        }
        Ok((exchange, rx))
    }

    fn unregister(&self, exchange: u64) {
        let mut state = self.state.lock();
        state.pending.retain(|_, (owner, _)| *owner != exchange);
        state.progress.retain(|_, (owner, _)| *owner != exchange);
    }

    /// Opens the session's GET stream (replacing an older one).
    pub(crate) fn listen(&self) -> Result<mpsc::UnboundedReceiver<Inbound>, String> {
        let mut state = self.state.lock();
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        state.listener = Some(tx);
        Ok(rx)
    }
}

/// Unregisters an exchange's waiters when its reply is done or the client went away.
struct ExchangeGuard {
    inbox: Arc<Inbox>,
    exchange: u64,
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        self.inbox.unregister(self.exchange);
    }
}

/// How a message was handed to the server.
pub(crate) enum Sent {
    /// Accepted; answers will arrive through the inbox.
    Accepted,
    /// The upstream refused it; relay this reply as is.
    Rejected(McpReply),
}

/// How one client POST is answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExchangeOptions {
    pub(crate) accept_event_stream: bool,
    pub(crate) timeout: Duration,
}

/// Sends a client's POST through `send` and answers it: 202 when it holds no request; otherwise
/// the responses to its requests, as JSON, or as an event stream when the client accepts one and
/// the server sends something (progress, its own requests) before the last response.
/// `fail` turns a session failure into the transport's error.
pub(crate) async fn exchange<F>(
    inbox: &Arc<Inbox>,
    payload: &Payload,
    options: ExchangeOptions,
    send: F,
    fail: fn(String) -> McpError,
) -> Result<McpReply, McpError>
where
    F: std::future::Future<Output = Result<Sent, McpError>>,
{
    if !payload.has_requests() {
        return match send.await? {
            Sent::Accepted => Ok(accepted()),
            Sent::Rejected(reply) => Ok(reply),
        };
    }
    let ids: Vec<RequestId> = payload.requests().filter_map(|m| m.id().cloned()).collect();
    let tokens: Vec<String> = payload
        .requests()
        .filter_map(|m| m.progress_token().map(Value::to_string))
        .collect();
    let (exchange, mut rx) = inbox.register(&ids, &tokens).map_err(fail)?;
    let guard = ExchangeGuard {
        inbox: inbox.clone(),
        exchange,
    };
    match send.await? {
        Sent::Accepted => {}
        Sent::Rejected(reply) => return Ok(reply),
    }
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut waiting: HashSet<RequestId> = ids.into_iter().collect();
    // In arrival order. JSON until the server says something other than a response before the
    // last response and the client takes SSE; then the rest is streamed.
    let mut arrived = Vec::new();
    while !waiting.is_empty() {
        let message = next(&mut rx, deadline, options.timeout, fail).await?;
        if let Some(id) = response_id(&message) {
            if waiting.remove(&id) {
                arrived.push(message);
                continue;
            }
        }
        if options.accept_event_stream {
            arrived.push(message);
            break;
        }
    }
    if waiting.is_empty() {
        return Ok(json_reply(payload.is_batch(), arrived));
    }
    let already = arrived;
    let state = Some((rx, waiting, guard));
    let rest = stream::unfold(state, move |state| async move {
        let (mut rx, mut waiting, guard) = state?;
        if waiting.is_empty() {
            return None;
        }
        match next(&mut rx, deadline, options.timeout, fail).await {
            Ok(message) => {
                if let Some(id) = response_id(&message) {
                    waiting.remove(&id);
                }
                Some((Ok(event(&message)), Some((rx, waiting, guard))))
            }
            Err(error) => Some((Err(error), None)),
        }
    });
    let events = stream::iter(already.into_iter().map(|m| Ok(event(&m))))
        .chain(rest)
        .boxed();
    Ok(McpReply::Stream {
        status: StatusCode::OK,
        headers: event_stream_headers(),
        events,
    })
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<Inbound>,
    deadline: tokio::time::Instant,
    timeout: Duration,
    fail: fn(String) -> McpError,
) -> Result<Value, McpError> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Ok(Some(Inbound::Message(value))) => Ok(value),
        Ok(Some(Inbound::Closed(reason))) => Err(fail(reason)),
        Ok(None) => Err(fail("session ended".into())),
        Err(_) => Err(fail(format!("no response within {}s", timeout.as_secs()))),
    }
}

fn response_id(message: &Value) -> Option<RequestId> {
    if message.get("method").is_some() {
        return None;
    }
    serde_json::from_value(message.get("id")?.clone()).ok()
}

fn event(message: &Value) -> Bytes {
    SseEvent::message(message.to_string()).to_bytes()
}

/// Opens the session's GET stream: server messages no POST waits for, as events.
pub(crate) fn listen(inbox: &Inbox, fail: fn(String) -> McpError) -> Result<McpReply, McpError> {
    let rx = inbox.listen().map_err(fail)?;
    let events = stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        match rx.recv().await? {
            Inbound::Message(value) => Some((Ok(event(&value)), Some(rx))),
            Inbound::Closed(_) => None,
        }
    })
    .boxed();
    Ok(McpReply::Stream {
        status: StatusCode::OK,
        headers: event_stream_headers(),
        events,
    })
}

fn json_reply(batch: bool, mut responses: Vec<Value>) -> McpReply {
    let body = if batch || responses.len() != 1 {
        Value::Array(responses).to_string()
    } else {
        responses.swap_remove(0).to_string()
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    McpReply::Json {
        status: StatusCode::OK,
        headers,
        body: Bytes::from(body),
    }
}

fn event_stream_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers
}

/// 202 Accepted with no body: the answer to notifications and responses.
pub(crate) fn accepted() -> McpReply {
    McpReply::Json {
        status: StatusCode::ACCEPTED,
        headers: HeaderMap::new(),
        body: Bytes::new(),
    }
}

/// A JSON-RPC error on an HTTP status, as an MCP server answers protocol mistakes.
pub(crate) fn protocol_error(
    status: StatusCode,
    id: Option<&RequestId>,
    code: i64,
    message: &str,
) -> McpReply {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    McpReply::Json {
        status,
        headers,
        body: error_response(id, code, message, None),
    }
}

/// The answer to a session id the transport does not know (ended, reaped or never minted): the
/// MCP spec's 404, which tells the client to initialise a new session.
pub(crate) fn session_not_found() -> McpReply {
    protocol_error(
        StatusCode::NOT_FOUND,
        None,
        error_codes::INVALID_REQUEST,
        "session not found; initialize a new session",
    )
}

/// The answer to a non-initialize POST without a session id.
pub(crate) fn session_required() -> McpReply {
    protocol_error(
        StatusCode::BAD_REQUEST,
        None,
        error_codes::INVALID_REQUEST,
        "missing Mcp-Session-Id; send initialize first",
    )
}

/// Adds the session id to a reply's headers.
pub(crate) fn with_session_id(mut reply: McpReply, session_id: &str) -> McpReply {
    if let Ok(value) = HeaderValue::from_str(session_id) {
        match &mut reply {
            McpReply::Json { headers, .. } | McpReply::Stream { headers, .. } => {
                headers.insert(MCP_SESSION_ID, value);
            }
        }
    }
    reply
}

/// Runs `reap` every `interval` for as long as the owner (held weakly) lives.
pub(crate) fn spawn_reaper<T, F, Fut>(owner: std::sync::Weak<T>, interval: Duration, reap: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(owner) = owner.upgrade() else { break };
            reap(owner).await;
        }
    });
}

/// The reaper's period when none is configured: a tenth of the idle timeout, at least a second.
pub(crate) fn default_reap_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).max(Duration::from_secs(1))
}

/// A session the table can reap.
pub(crate) trait Reapable: Send + Sync + 'static {
    /// True while the session serves a client (a POST in flight, a GET stream open).
    fn busy(&self) -> bool;
}

struct Entry<S> {
    session: Arc<S>,
    last_used: DateTime<Utc>,
}

/// The live sessions of one transport, by minted id, with idle tracking on an injectable clock.
pub(crate) struct SessionTable<S> {
    sessions: Mutex<HashMap<String, Entry<S>>>,
    clock: Arc<dyn Clock>,
    idle_timeout: Duration,
}

impl<S: Reapable> SessionTable<S> {
    pub(crate) fn new(clock: Arc<dyn Clock>, idle_timeout: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            clock,
            idle_timeout,
        }
    }

    /// Stores a session under a fresh random id and returns the id.
    pub(crate) fn insert(&self, session: Arc<S>) -> String {
        let id = odock_core::ids::random_hex(16);
        let entry = Entry {
            session,
            last_used: self.clock.now(),
        };
        self.sessions.lock().insert(id.clone(), entry);
        id
    }

    /// The session, marking it used now.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<S>> {
        let now = self.clock.now();
        let mut sessions = self.sessions.lock();
        let entry = sessions.get_mut(id)?;
        entry.last_used = now;
        Some(entry.session.clone())
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.sessions.lock().contains_key(id)
    }

    /// Marks the session used now (if it still exists).
    pub(crate) fn touch(&self, id: &str) {
        let now = self.clock.now();
        if let Some(entry) = self.sessions.lock().get_mut(id) {
            entry.last_used = now;
        }
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<S>> {
        self.sessions.lock().remove(id).map(|entry| entry.session)
    }

    /// Removes and returns the sessions idle for longer than the timeout (busy ones are kept and
    /// count as used now).
    pub(crate) fn take_idle(&self) -> Vec<Arc<S>> {
        let now = self.clock.now();
        let idle = chrono::Duration::from_std(self.idle_timeout).unwrap_or(chrono::Duration::MAX);
        let mut sessions = self.sessions.lock();
        let mut expired = Vec::new();
        sessions.retain(|_, entry| {
            if entry.session.busy() {
                entry.last_used = now;
                return true;
            }
            if now - entry.last_used > idle {
                expired.push(entry.session.clone());
                return false;
            }
            true
        });
        expired
    }

    /// Removes and returns every session (transport shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<S>> {
        self.sessions
            .lock()
            .drain()
            .map(|(_, entry)| entry.session)
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use odock_core::ManualClock;
    use serde_json::json;

    use super::*;

    struct Idle(bool);
    impl Reapable for Idle {
        fn busy(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn idle_sessions_are_taken_after_the_timeout_busy_ones_kept() {
        let clock = ManualClock::new(Utc::now());
        let table = SessionTable::new(Arc::new(clock.clone()), Duration::from_secs(300));
        let idle = table.insert(Arc::new(Idle(false)));
        let busy = table.insert(Arc::new(Idle(true)));
        clock.advance(chrono::Duration::seconds(299));
        assert!(table.take_idle().is_empty());
        clock.advance(chrono::Duration::seconds(2));
        assert_eq!(table.take_idle().len(), 1);
        assert!(table.get(&idle).is_none());
        assert!(table.get(&busy).is_some());
        assert_eq!(table.len(), 1);
    }

    #[tokio::test]
    async fn responses_reach_their_post_and_the_rest_the_listener() {
        let inbox = Arc::new(Inbox::default());
        let mut listener = inbox.listen().unwrap();
        let (_, mut rx) = inbox.register(&[RequestId::from(1)], &[]).unwrap();
        inbox.deliver(json!({"jsonrpc":"2.0","id":1,"result":{}}));
        assert!(matches!(rx.recv().await, Some(Inbound::Message(v)) if v["id"] == 1));
        // No POST waits any more: a notification goes to the GET stream.
        inbox.deliver(json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}));
        assert!(
            matches!(listener.recv().await, Some(Inbound::Message(v)) if v["method"] == "notifications/tools/list_changed")
        );
        inbox.deliver(json!("garbage"));
        inbox.close("gone");
        assert!(matches!(listener.recv().await, Some(Inbound::Closed(r)) if r == "gone"));
        assert!(inbox.register(&[RequestId::from(2)], &[]).is_err());
    }
}
