//! # odock-mcp
//!
//! Odock's MCP (Model Context Protocol) support: JSON-RPC 2.0 framing and the
//! [`McpTransport`](odock_core::McpTransport) implementations for the three MCP server transports.
//! The governed `/v1/mcp/{server}` route (core's `GatewayBuilder::mcp` in front of [`McpCall`];
//! as an axum router in `axum_routes`, feature `axum`) authenticates, checks grants and tool
//! rules, meters — and hands the message to a transport from this crate.
//!
//! Clients always speak **streamable HTTP** to Odock (POST a message, GET the server stream, DELETE
//! the session, `Mcp-Session-Id` / `MCP-Protocol-Version` headers); the transport maps that onto the
//! upstream:
//!
//! - [`StreamableHttpTransport`] (`STREAMABLE_HTTP`): forwards each request to `endpointUrl` and relays
//!   the reply — JSON whole, an event stream event by event as it arrives — with the upstream's status
//!   (4xx/5xx included) and its session id. Connect failures and timeouts are
//!   [`McpError::Upstream`](odock_core::McpError::Upstream).
//! - [`SseTransport`] (`SSE`, the older HTTP+SSE transport): per client session, holds the upstream
//!   event stream, POSTs client messages to the endpoint it announced and answers each POST with the
//!   responses that arrive on the stream. Odock mints the session id.
//! - [`StdioTransport`] (`STDIO`): one child process per client session (spawned on `initialize`,
//!   killed and reaped on DELETE or after an idle timeout), newline-delimited JSON-RPC on its pipes
//!   with a `Content-Length:` framing fallback, stderr to `tracing`. A crashed process fails requests
//!   at once with [`McpError::Stdio`](odock_core::McpError::Stdio). Odock mints the session id.
//!
//! Every transport filters the client's headers itself ([`headers`]: an allow-list — only the MCP
//! headers, `Accept` and `Content-Type` go upstream) and injects the upstream's own credentials
//! ([`auth`]: none, bearer, basic, OAuth2 client credentials with a token cache). HTTP connections
//! go only where the egress policy allows ([`egress`]: no loopback, private or link-local address
//! by default, checked after DNS resolution), and stdio children are confined and capped
//! ([`stdio`]: cleared environment, own process group, scratch directory, process limits; the
//! pool starts only operator-approved or allow-listed commands). Stream replies ([`McpReply::Stream`](odock_core::McpReply::Stream)) yield
//! **one complete serialised SSE event per item**.
//!
//! [`framing`] gives the gateway what governance needs: [`Payload`](framing::Payload) (one message or
//! a batch; method, id, `tools/call` tool name and arguments), JSON-RPC error responses, and the
//! [`ToolsListFilter`](framing::ToolsListFilter) that hides tools a key may not call in JSON and
//! event-stream replies.
//!
//! ## How the gateway uses it
//!
//! ```no_run
//! # async fn demo(client_headers: http::HeaderMap, body: bytes::Bytes) -> Result<(), odock_core::McpError> {
//! use std::sync::Arc;
//! use odock_core::{McpAuthType, McpMessage, McpTransportKind};
//! use odock_mcp::framing::{Payload, ToolsListFilter};
//! use odock_mcp::{McpAuth, McpTransportOptions, McpTransports, McpUpstream};
//!
//! // Once, in the app state: one transport per MCP server, kept across requests.
//! let pool = McpTransports::new(McpTransportOptions::default());
//!
//! // Per request, after authentication and the grant check:
//! let payload = Payload::parse(&body).ok(); // tool rules look at payload.tool_calls()
//! let mut upstream = McpUpstream::http(McpTransportKind::StreamableHttp, "https://mcp.example/mcp");
//! upstream.auth = McpAuth::from_config(McpAuthType::Bearer, &serde_json::json!({"token": "…"}))?;
//! let transport = pool.transport("mcp-server-id", &upstream)?; // 400s for a broken config
//! let reply = transport
//!     .send(McpMessage { method: http::Method::POST, headers: client_headers, body })
//!     .await?;
//! // Hide tools the key may not call.
//! let ids = payload.map(|p| p.ids_with_method("tools/list")).unwrap_or_default();
//! let filter = ToolsListFilter::new(ids, Arc::new(|tool: &str| tool != "secret_tool"));
//! # let _ = (reply, filter);
//! # Ok(()) }
//! ```
//!
//! Test fixtures (feature `testing`): fake streamable-HTTP and legacy SSE MCP servers in
//! `odock_mcp::testing`, and the fake stdio server binary `odock-fake-mcp-stdio`.

#![deny(missing_docs)]

pub mod auth;
#[cfg(feature = "axum")]
pub mod axum_routes;
pub mod call;
pub mod egress;
pub mod framing;
pub mod headers;
mod session;
pub mod sse;
pub mod stdio;
pub mod streamable_http;
pub mod upstream;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use auth::{McpAuth, UpstreamAuth};
pub use call::McpCall;
pub use sse::{SseOptions, SseTransport};
pub use stdio::{
    ProcessLimits, StdioAllowList, StdioCommand, StdioFraming, StdioOptions, StdioTransport,
};
pub use streamable_http::{HttpOptions, StreamableHttpTransport};
pub use upstream::{McpTransportOptions, McpTransports, McpUpstream};
