//! The governed MCP route's own layers. The MCP stack reuses the shared ones — request id, error
//! response, authentication, metering, policy gate, reservation — and adds:
//!
//! - [`McpRefLayer`] (before authentication): `/v1/mcp/{ref}[/{path}]` → [`McpRef`], else 400
//!   `invalid_mcp_ref`;
//! - [`McpResolveLayer`] (after metering): server, grant, scope and tool rules; leaves
//!   `Arc<ResolvedMcpServer>`, [`McpRequest`] and [`AdmissionFacts`](super::AdmissionFacts) for the layers after
//!   it and for the MCP call, which the embedder supplies (the transports live in `odock-mcp`).

mod reference;
mod request;
mod resolve;

pub use reference::{McpRef, McpRefLayer, McpRefService, MCP_PREFIX};
pub use request::{McpRequest, RpcMessage};
pub use resolve::{McpResolveLayer, McpResolveService, GUARDRAIL_CODE, GUARDRAIL_RPC_CODE};
