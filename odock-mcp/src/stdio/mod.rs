//! The STDIO transport: one child process per client MCP session.
//!
//! A session starts with an `initialize` POST that carries no `Mcp-Session-Id`: the transport spawns
//! the server, mints the session id and returns it in the reply's `Mcp-Session-Id` header. Later POSTs
//! name the session; each request is answered with the server's response of the same id (JSON, or an
//! event stream when the client accepts one and the server reports progress first). GET opens the
//! session's stream of server-initiated messages; DELETE ends the session. A session idle for longer
//! than [`StdioOptions::idle_timeout`] is reaped. Ending a session kills the process and waits for it,
//! so no zombie is left. A process that exits makes in-flight and later requests fail at once with
//! [`McpError::Stdio`].

pub mod policy;
mod process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use odock_core::{Clock, McpError, McpMessage, McpReply, McpTransport, SystemClock};

pub use policy::{ProcessLimits, StdioAllowList};
use process::StdioProcess;
pub use process::{ProcessCounter, StdioCommand, StdioFraming, CHILD_PATH};

use crate::framing::Payload;
use crate::headers::{accepts_event_stream, session_id};
use crate::session::{self, ExchangeOptions, Reapable, Sent, SessionTable};

/// Session and process settings.
#[derive(Clone)]
pub struct StdioOptions {
    /// A session without traffic for this long is ended (default 5 minutes).
    pub idle_timeout: Duration,
    /// How long one request may wait for its response (default 5 minutes).
    pub request_timeout: Duration,
    /// How often the background reaper looks for idle sessions (default: a tenth of the idle
    /// timeout, at least one second).
    pub reap_interval: Option<Duration>,
    /// How messages are framed on the child's pipes (default: detected).
    pub framing: StdioFraming,
    /// With [`StdioFraming::Auto`]: when a new server has said nothing this long after its first
    /// messages, they are resent `Content-Length:` framed (for servers that only read that). `None`
    /// disables the probe. Default 10 s.
    pub content_length_probe: Option<Duration>,
    /// When a session ends, how long the server may take to exit after its stdin is closed before
    /// it is killed (default 1 s).
    pub shutdown_grace: Duration,
    /// The clock idle time is measured on (inject a `ManualClock` in tests).
    pub clock: Arc<dyn Clock>,
    /// Where live processes are counted (share one across transports for a global count).
    pub processes: ProcessCounter,
    /// Caps on live processes, in total and per organisation, checked against `processes`
    /// before a process starts.
    pub limits: ProcessLimits,
}

impl Default for StdioOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(300),
            reap_interval: None,
            framing: StdioFraming::Auto,
            content_length_probe: Some(Duration::from_secs(10)),
            shutdown_grace: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            processes: ProcessCounter::default(),
            limits: ProcessLimits::default(),
        }
    }
}

impl std::fmt::Debug for StdioOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioOptions")
            .field("idle_timeout", &self.idle_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("reap_interval", &self.reap_interval)
            .field("framing", &self.framing)
            .field("content_length_probe", &self.content_length_probe)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Reapable for StdioProcess {
    fn busy(&self) -> bool {
        self.inbox.busy()
    }
}

struct StdioInner {
    command: StdioCommand,
    options: StdioOptions,
    sessions: SessionTable<StdioProcess>,
    reaper_started: AtomicBool,
}

/// See the module docs. Cheap to clone; clones share sessions.
#[derive(Clone)]
pub struct StdioTransport {
    inner: Arc<StdioInner>,
}

impl std::fmt::Debug for StdioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioTransport")
            .field("command", &self.inner.command)
            .field("sessions", &self.inner.sessions.len())
            .finish()
    }
}

fn stdio_error(reason: String) -> McpError {
    McpError::Stdio(reason)
}

impl StdioTransport {
    /// Errors with [`McpError::MissingStdioCommand`] when the command is empty.
    pub fn new(command: StdioCommand, options: StdioOptions) -> Result<Self, McpError> {
        if command.command.trim().is_empty() {
            return Err(McpError::MissingStdioCommand);
        }
        let sessions = SessionTable::new(options.clock.clone(), options.idle_timeout);
        Ok(Self {
            inner: Arc::new(StdioInner {
                command,
                options,
                sessions,
                reaper_started: AtomicBool::new(false),
            }),
        })
    }

    /// Live child processes of this transport's counter.
    pub fn process_count(&self) -> usize {
        self.inner.options.processes.get()
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// True when this transport holds the session (it minted it and it has not ended).
    pub fn has_session(&self, session_id: &str) -> bool {
        self.inner.sessions.contains(session_id)
    }

    /// Ends every session idle for longer than the idle timeout (as measured on the options' clock)
    /// and returns how many. The background reaper calls this periodically.
    pub async fn reap_idle(&self) -> usize {
        self.inner.reap_idle().await
    }

    /// Ends every session (kills and reaps every process).
    pub async fn shutdown(&self) {
        let sessions = self.inner.sessions.drain();
        futures::future::join_all(
            sessions
                .iter()
                .map(|process| process.shutdown("MCP transport shut down")),
        )
        .await;
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
            inner.reap_idle().await;
        });
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
        let options = ExchangeOptions {
            accept_event_stream: accepts_event_stream(&message.headers),
            timeout: self.inner.options.request_timeout,
        };
        if let Some(id) = session_id(&message.headers) {
            let Some(process) = self.inner.sessions.get(id) else {
                return Ok(session::session_not_found());
            };
            let reply = send_to(&process, &payload, options).await;
            // Idle time counts from the answer, not from the request (a long call is not idleness).
            self.inner.sessions.touch(id);
            return reply;
        }
        if !payload.is_initialize() {
            return Ok(session::session_required());
        }
        let process = Arc::new(StdioProcess::spawn(
            &self.inner.command,
            &self.inner.options,
        )?);
        let id = self.inner.sessions.insert(process.clone());
        self.ensure_reaper();
        match send_to(&process, &payload, options).await {
            Ok(reply) => Ok(session::with_session_id(reply, &id)),
            Err(error) => {
                self.inner.sessions.remove(&id);
                process.shutdown("initialize failed").await;
                Err(error)
            }
        }
    }

    async fn delete(&self, headers: &HeaderMap) -> Result<McpReply, McpError> {
        let Some(id) = session_id(headers) else {
            return Ok(session::session_required());
        };
        let Some(process) = self.inner.sessions.remove(id) else {
            return Ok(session::session_not_found());
        };
        process.shutdown("MCP session deleted").await;
        Ok(McpReply::Json {
            status: StatusCode::NO_CONTENT,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        })
    }

    fn get(&self, headers: &HeaderMap) -> Result<McpReply, McpError> {
        let Some(id) = session_id(headers) else {
            return Ok(session::session_required());
        };
        let Some(process) = self.inner.sessions.get(id) else {
            return Ok(session::session_not_found());
        };
        session::listen(&process.inbox, stdio_error)
    }
}

impl StdioInner {
    async fn reap_idle(&self) -> usize {
        let idle = self.sessions.take_idle();
        let count = idle.len();
        // Concurrently: each may take its shutdown grace.
        futures::future::join_all(
            idle.iter()
                .map(|process| process.shutdown("MCP session idle timeout")),
        )
        .await;
        if count > 0 {
            tracing::debug!(count, "reaped idle MCP stdio sessions");
        }
        count
    }
}

async fn send_to(
    process: &Arc<StdioProcess>,
    payload: &Payload,
    options: ExchangeOptions,
) -> Result<McpReply, McpError> {
    let write = async {
        // Batches are written message by message: stdio servers need not support batches.
        for message in payload.messages() {
            process.write(message.value()).await?;
        }
        Ok(Sent::Accepted)
    };
    session::exchange(&process.inbox, payload, options, write, stdio_error).await
}

#[async_trait]
impl McpTransport for StdioTransport {
    async fn send(&self, message: McpMessage) -> Result<McpReply, McpError> {
        match message.method {
            Method::POST => self.post(message).await,
            Method::GET => self.get(&message.headers),
            Method::DELETE => self.delete(&message.headers).await,
            _ => Ok(session::protocol_error(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                crate::framing::error_codes::INVALID_REQUEST,
                "method not allowed",
            )),
        }
    }
}
