//! odock-mcp integration tests: every transport against real fake MCP servers on loopback or as
//! child processes.

mod support;

mod stdio;
