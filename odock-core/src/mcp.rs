//! `McpTransport`: sends MCP messages to an upstream MCP server over its transport. The governed MCP
//! route and the transports (streamable HTTP, SSE, stdio) live in `odock-mcp`.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use http::{HeaderMap, Method, StatusCode};

use crate::error::McpError;

/// One client message to forward: the HTTP method (POST a message, GET the server stream, DELETE
/// the session), the forwardable headers (session id, protocol version) and the JSON-RPC body.
#[derive(Debug, Clone)]
pub struct McpMessage {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The upstream's reply: a single JSON body, or an event stream relayed as it comes.
pub enum McpReply {
    Json {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Stream {
        status: StatusCode,
        headers: HeaderMap,
        events: BoxStream<'static, Result<Bytes, McpError>>,
    },
}

impl std::fmt::Debug for McpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpReply::Json { status, .. } => write!(f, "McpReply::Json({status})"),
            McpReply::Stream { status, .. } => write!(f, "McpReply::Stream({status})"),
        }
    }
}

#[async_trait]
pub trait McpTransport: Send + Sync + 'static {
    async fn send(&self, message: McpMessage) -> Result<McpReply, McpError>;
}
