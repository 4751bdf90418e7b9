//! # odock-mcp
//!
//! Odock's MCP (Model Context Protocol) support: JSON-RPC 2.0 framing and the
//! [`McpTransport`](odock_core::McpTransport) implementations for streamable HTTP, the older
//! HTTP+SSE transport and stdio child processes. The governed `/v1/mcp/{server}` route builds on them.

pub mod auth;
pub mod framing;
pub mod headers;
mod session;
pub mod stdio;
pub mod streamable_http;

pub use stdio::{StdioCommand, StdioFraming, StdioOptions, StdioTransport};
pub use streamable_http::{HttpOptions, StreamableHttpTransport};
