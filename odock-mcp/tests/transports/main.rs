//! odock-mcp integration tests: every transport against real fake MCP servers on loopback or as
//! child processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod auth;
mod pool;
mod python_sdk;
mod sse;
mod stdio;
mod streamable_http;
