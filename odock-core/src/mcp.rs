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
    /// POST (a message), GET (the server stream) or DELETE (the session).
    pub method: Method,
    /// The client's headers; each transport forwards only its allow-list.
    pub headers: HeaderMap,
    /// The JSON-RPC body, as the client sent it (empty for GET and DELETE).
    pub body: Bytes,
}

/// The upstream's reply: a single JSON body, or an event stream relayed as it comes.
pub enum McpReply {
    /// A whole JSON body.
    Json {
        /// The status to answer with (the upstream's, 4xx/5xx included).
        status: StatusCode,
        /// Headers to pass on (session id, content type).
        headers: HeaderMap,
        /// The body.
        body: Bytes,
    },
    /// An event stream, relayed as events arrive.
    Stream {
        /// The status to answer with.
        status: StatusCode,
        /// Headers to pass on (session id, content type).
        headers: HeaderMap,
        /// One complete serialised SSE event per item.
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

/// One way of reaching an MCP server (streamable HTTP, SSE or stdio).
#[async_trait]
pub trait McpTransport: Send + Sync + 'static {
    /// Forwards one client message and returns the upstream's reply.
    async fn send(&self, message: McpMessage) -> Result<McpReply, McpError>;
}
