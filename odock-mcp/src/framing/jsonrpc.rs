//! JSON-RPC 2.0 as MCP uses it: one message or a batch, classified as request, notification or
//! response, with the method, id and (for `tools/call`) the tool name and arguments extracted.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Number, Value};

/// Standard JSON-RPC error codes, plus the one Odock uses for a guardrail block.
pub mod error_codes {
    /// The body is not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a valid JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method's parameters are invalid.
    pub const INVALID_PARAMS: i64 = -32602;
    /// An internal error of the JSON-RPC server.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A `tools/call` stopped by tool rules or blocked keywords (`data.code = "mcp_guardrail_block"`).
    pub const GUARDRAIL_BLOCK: i64 = -32001;
}

/// Why a body is not usable JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The body did not parse as JSON (the parser's message).
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// A batch array with no messages, which JSON-RPC forbids.
    #[error("empty JSON-RPC batch")]
    EmptyBatch,
    /// JSON that is not a JSON-RPC message (what is wrong with it).
    #[error("invalid JSON-RPC message: {0}")]
    InvalidMessage(String),
}

impl FramingError {
    /// The JSON-RPC error code an MCP server answers this with.
    pub fn json_rpc_code(&self) -> i64 {
        match self {
            FramingError::NotJson(_) => error_codes::PARSE_ERROR,
            FramingError::EmptyBatch | FramingError::InvalidMessage(_) => {
                error_codes::INVALID_REQUEST
            }
        }
    }
}

/// A JSON-RPC id: a string or a number (never null on a request).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id, kept as the exact JSON number sent.
    Number(Number),
    /// A string id.
    String(String),
}

impl RequestId {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => Some(RequestId::Number(n.clone())),
            Value::String(s) => Some(RequestId::String(s.clone())),
            _ => None,
        }
    }

    /// The id as JSON, for echoing it in a response.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(n) => Value::Number(n.clone()),
            RequestId::String(s) => Value::String(s.clone()),
        }
    }
}

impl From<i64> for RequestId {
    fn from(n: i64) -> Self {
        RequestId::Number(n.into())
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::String(s.to_owned())
    }
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Has a `method` and an `id`: expects a response.
    Request,
    /// Has a `method` and no `id`.
    Notification,
    /// Has a `result` or an `error` (its `id` may be null for errors).
    Response,
}

/// The tool a `tools/call` request names.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool's name (`params.name`), which tool rules match on.
    pub name: String,
    /// The tool's arguments (`params.arguments`), which keyword guardrails scan.
    pub arguments: Option<Value>,
}

/// One classified JSON-RPC message; the JSON object is kept as sent so it can be forwarded as is.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRpcMessage {
    value: Value,
    kind: MessageKind,
    id: Option<RequestId>,
}

impl JsonRpcMessage {
    /// Classifies `value`; anything that is not a JSON-RPC 2.0 object is an error.
    pub fn from_value(value: Value) -> Result<Self, FramingError> {
        let object = value
            .as_object()
            .ok_or_else(|| FramingError::InvalidMessage("message is not an object".into()))?;
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(FramingError::InvalidMessage(
                "`jsonrpc` must be \"2.0\"".into(),
            ));
        }
        let raw_id = object.get("id");
        let id = match raw_id {
            None | Some(Value::Null) => None,
            Some(other) => Some(RequestId::from_value(other).ok_or_else(|| {
                FramingError::InvalidMessage("`id` must be a string or a number".into())
            })?),
        };
        let kind = match object.get("method") {
            Some(Value::String(_)) if id.is_some() => MessageKind::Request,
            Some(Value::String(_)) if raw_id.is_none() => MessageKind::Notification,
            Some(Value::String(_)) => {
                return Err(FramingError::InvalidMessage(
                    "a request id must not be null".into(),
                ))
            }
            Some(_) => {
                return Err(FramingError::InvalidMessage(
                    "`method` must be a string".into(),
                ))
            }
            None if object.contains_key("result") || object.contains_key("error") => {
                MessageKind::Response
            }
            None => {
                return Err(FramingError::InvalidMessage(
                    "neither a request, a notification nor a response".into(),
                ))
            }
        };
        Ok(Self { value, kind, id })
    }

    /// Parses one message (not a batch) from bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, FramingError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| FramingError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// Whether this is a request, a notification or a response.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Whether the message expects a response.
    pub fn is_request(&self) -> bool {
        self.kind == MessageKind::Request
    }

    /// The message's id (absent on notifications; a response may have a null one).
    pub fn id(&self) -> Option<&RequestId> {
        self.id.as_ref()
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        self.value.get("method").and_then(Value::as_str)
    }

    /// The `params` member, as sent.
    pub fn params(&self) -> Option<&Value> {
        self.value.get("params")
    }

    /// The tool name and arguments of a `tools/call` request (`params.name`, `params.arguments`).
    pub fn tool_call(&self) -> Option<ToolCall> {
        if self.kind != MessageKind::Request || self.method() != Some("tools/call") {
            return None;
        }
        let params = self.params()?;
        let name = params.get("name")?.as_str()?.to_owned();
        Some(ToolCall {
            name,
            arguments: params.get("arguments").cloned(),
        })
    }

    /// The progress token a request asked for (`params._meta.progressToken`) or a
    /// `notifications/progress` carries (`params.progressToken`).
    pub fn progress_token(&self) -> Option<&Value> {
        let params = self.params()?;
        match self.kind {
            MessageKind::Request => params.get("_meta")?.get("progressToken"),
            MessageKind::Notification => params.get("progressToken"),
            MessageKind::Response => None,
        }
    }

    /// The JSON object as sent.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The JSON object as sent, without copying it.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// The message serialised compactly (one line, as stdio needs).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.value.to_string())
    }
}

/// A request body: one message or a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    messages: Vec<JsonRpcMessage>,
    batch: bool,
}

impl Payload {
    /// Parses a body: a JSON object (one message) or a non-empty array of them (a batch).
    pub fn parse(bytes: &[u8]) -> Result<Self, FramingError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| FramingError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// Classifies an already parsed body: an object (one message) or a non-empty array (a batch).
    pub fn from_value(value: Value) -> Result<Self, FramingError> {
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(FramingError::EmptyBatch);
                }
                let messages = items
                    .into_iter()
                    .map(JsonRpcMessage::from_value)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Self {
                    messages,
                    batch: true,
                })
            }
            other => Ok(Self {
                messages: vec![JsonRpcMessage::from_value(other)?],
                batch: false,
            }),
        }
    }

    /// Every message, in the order sent.
    pub fn messages(&self) -> &[JsonRpcMessage] {
        &self.messages
    }

    /// Every message, in the order sent, without copying them.
    pub fn into_messages(self) -> Vec<JsonRpcMessage> {
        self.messages
    }

    /// Whether the body was an array (the answer must then be one too).
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The requests (messages that expect a response).
    pub fn requests(&self) -> impl Iterator<Item = &JsonRpcMessage> {
        self.messages.iter().filter(|m| m.is_request())
    }

    /// True when nothing in the body expects a response (notifications and responses only).
    pub fn has_requests(&self) -> bool {
        self.requests().next().is_some()
    }

    /// The first request's method (the batch's "RPC method" for records), else the first method.
    pub fn primary_method(&self) -> Option<&str> {
        self.requests()
            .chain(self.messages.iter())
            .find_map(JsonRpcMessage::method)
    }

    /// Every `tools/call` in the body.
    pub fn tool_calls(&self) -> Vec<ToolCall> {
        self.messages
            .iter()
            .filter_map(JsonRpcMessage::tool_call)
            .collect()
    }

    /// Ids of the requests with this method (e.g. the `tools/list` requests whose replies to filter).
    pub fn ids_with_method(&self, method: &str) -> Vec<RequestId> {
        self.requests()
            .filter(|m| m.method() == Some(method))
            .filter_map(|m| m.id().cloned())
            .collect()
    }

    /// True when the body holds an `initialize` request.
    pub fn is_initialize(&self) -> bool {
        self.requests().any(|m| m.method() == Some("initialize"))
    }
}

/// A JSON-RPC error response: `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…,"data":…}}`
/// (`id` null when the request's id is unknown; `data` omitted when `None`).
pub fn error_response(
    id: Option<&RequestId>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Bytes {
    Bytes::from(error_value(id, code, message, data).to_string())
}

/// [`error_response`] as a JSON value, for building batches.
pub fn error_value(id: Option<&RequestId>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), json!(code));
    error.insert("message".into(), json!(message));
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    json!({
        "jsonrpc": "2.0",
        "id": id.map_or(Value::Null, RequestId::to_value),
        "error": Value::Object(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let request = JsonRpcMessage::parse(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
        )
        .unwrap();
        assert_eq!(request.kind(), MessageKind::Request);
        assert_eq!(request.id(), Some(&RequestId::from(7)));
        assert_eq!(request.method(), Some("tools/call"));
        let call = request.tool_call().unwrap();
        assert_eq!(call.name, "echo");
        assert_eq!(call.arguments, Some(json!({"text": "hi"})));

        let note =
            JsonRpcMessage::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                .unwrap();
        assert_eq!(note.kind(), MessageKind::Notification);
        assert_eq!(note.id(), None);
        assert!(note.tool_call().is_none());

        let response = JsonRpcMessage::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(response.kind(), MessageKind::Response);
        assert_eq!(response.id(), Some(&RequestId::from("a")));

        let error_without_id = JsonRpcMessage::parse(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#,
        )
        .unwrap();
        assert_eq!(error_without_id.kind(), MessageKind::Response);
        assert_eq!(error_without_id.id(), None);
    }

    #[test]
    fn parses_batches_and_summarises_them() {
        let payload = Payload::parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
                 {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add"}},
                 {"jsonrpc":"2.0","method":"notifications/cancelled"}]"#,
        )
        .unwrap();
        assert!(payload.is_batch());
        assert_eq!(payload.messages().len(), 3);
        assert_eq!(
            payload.ids_with_method("tools/list"),
            vec![RequestId::from(1)]
        );
        assert_eq!(payload.tool_calls()[0].name, "add");
        assert_eq!(payload.primary_method(), Some("tools/list"));
        assert!(payload.has_requests());
        assert!(!payload.is_initialize());
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        let cases: Vec<(&[u8], i64)> = vec![
            (b"", error_codes::PARSE_ERROR),
            (b"{not json", error_codes::PARSE_ERROR),
            (b"[]", error_codes::INVALID_REQUEST),
            (b"42", error_codes::INVALID_REQUEST),
            (br#"{"id":1,"method":"x"}"#, error_codes::INVALID_REQUEST),
            (br#"{"jsonrpc":"2.0","id":1}"#, error_codes::INVALID_REQUEST),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#,
                error_codes::INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                error_codes::INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                error_codes::INVALID_REQUEST,
            ),
            (
                br#"[{"jsonrpc":"2.0","method":"a"}, 1]"#,
                error_codes::INVALID_REQUEST,
            ),
            (&[0xff, 0xfe, 0x00], error_codes::PARSE_ERROR),
        ];
        for (body, code) in cases {
            let error = Payload::parse(body).unwrap_err();
            assert_eq!(
                error.json_rpc_code(),
                code,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn tool_call_needs_a_string_name() {
        let message = JsonRpcMessage::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#,
        )
        .unwrap();
        assert!(message.tool_call().is_none());
    }

    #[test]
    fn builds_error_responses() {
        let body = error_response(
            Some(&RequestId::from(3)),
            error_codes::GUARDRAIL_BLOCK,
            "tool blocked",
            Some(json!({"code": "mcp_guardrail_block"})),
        );
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32001,"message":"tool blocked","data":{"code":"mcp_guardrail_block"}}})
        );
        let anonymous: Value =
            serde_json::from_slice(&error_response(None, -32700, "bad", None)).unwrap();
        assert_eq!(anonymous["id"], Value::Null);
        assert!(anonymous["error"].get("data").is_none());
    }
}
