//! # odock-mcp
//!
//! Odock's MCP (Model Context Protocol) support: JSON-RPC 2.0 framing and the
//! [`McpTransport`](odock_core::McpTransport) implementations for streamable HTTP, the older
//! HTTP+SSE transport and stdio child processes. The governed `/v1/mcp/{server}` route builds on them.
//!
//! Only the contract exists so far (`odock_core::mcp`); the transports and the route are the next
//! piece of work (see the project's issues).
