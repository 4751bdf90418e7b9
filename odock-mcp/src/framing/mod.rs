//! Wire framing: JSON-RPC 2.0 messages and batches ([`Payload`]), Server-Sent Events
//! ([`SseEvent`], [`SseDecoder`]) and the `tools/list` filter ([`ToolsListFilter`]).
//!
//! Everything here is pure and total: malformed input is a [`FramingError`], never a panic.

mod event_stream;
mod jsonrpc;
mod tools_list;

pub use event_stream::{sse_events, SseDecoder, SseEvent};
pub use jsonrpc::{
    error_codes, error_response, FramingError, JsonRpcMessage, MessageKind, Payload, RequestId,
    ToolCall,
};
pub use tools_list::{ToolPredicate, ToolsListFilter};
