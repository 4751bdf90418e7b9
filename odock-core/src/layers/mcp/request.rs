//! The governance facts of an MCP request, decoded once from its JSON-RPC body: which methods it
//! carries, which tools it calls and how big it is. The body itself is forwarded untouched.

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::error::RequestError;

/// One JSON-RPC message of the body.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcMessage {
    /// `None` for a notification (and for responses the client sends to server requests).
    pub id: Option<Value>,
    /// `None` for a response (`result` / `error`).
    pub method: Option<String>,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
}

impl RpcMessage {
    /// Whether this is a `tools/call` request.
    pub fn is_tool_call(&self) -> bool {
        self.method.as_deref() == Some("tools/call")
    }
}

/// Request extension left by the MCP resolution layer.
#[derive(Debug, Clone, PartialEq)]
pub struct McpRequest {
    /// POST (messages), GET (server stream) or DELETE (session end).
    pub http_method: Method,
    /// The body's JSON-RPC messages in order (empty for GET and DELETE).
    pub messages: Vec<RpcMessage>,
    /// Whether the body was a JSON-RPC batch (an array).
    pub batch: bool,
    /// The body's size, for byte pricing and the usage record.
    pub body_bytes: u64,
}

impl McpRequest {
    /// Reads the facts of `body`. A POST must carry a JSON-RPC message or a non-empty batch of them;
    /// GET (server stream) and DELETE (session end) carry none.
    pub fn decode(http_method: Method, body: &Bytes) -> Result<Self, RequestError> {
        let body_bytes = body.len() as u64;
        if http_method != Method::POST && body.is_empty() {
            return Ok(Self {
                http_method,
                messages: Vec::new(),
                batch: false,
                body_bytes,
            });
        }
        let invalid = |message: &str| RequestError::InvalidBody(message.to_owned());
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| invalid("the body is not a JSON-RPC message"))?;
        let (items, batch) = match value {
            Value::Array(items) if !items.is_empty() => (items, true),
            Value::Array(_) => return Err(invalid("an empty JSON-RPC batch")),
            object @ Value::Object(_) => (vec![object], false),
            _ => return Err(invalid("the body is not a JSON-RPC message")),
        };
        let messages = items
            .iter()
            .map(|item| {
                let object = item
                    .as_object()
                    .ok_or_else(|| invalid("a JSON-RPC message must be an object"))?;
                let method = object.get("method").and_then(Value::as_str);
                let tool = (method == Some("tools/call"))
                    .then(|| object.get("params")?.get("name")?.as_str())
                    .flatten();
                Ok(RpcMessage {
                    id: object.get("id").cloned(),
                    method: method.map(str::to_owned),
                    tool: tool.map(str::to_owned),
                })
            })
            .collect::<Result<_, RequestError>>()?;
        Ok(Self {
            http_method,
            messages,
            batch,
            body_bytes,
        })
    }

    /// The method recorded on usage: the first JSON-RPC method, else the HTTP method (`GET`,
    /// `DELETE`), else `response` for a body of responses only.
    pub fn rpc_method(&self) -> String {
        match self.messages.iter().find_map(|m| m.method.as_deref()) {
            Some(method) => method.to_owned(),
            None if self.messages.is_empty() => self.http_method.as_str().to_owned(),
            None => "response".to_owned(),
        }
    }

    /// The first tool called.
    pub fn tool_name(&self) -> Option<&str> {
        self.messages.iter().find_map(|m| m.tool.as_deref())
    }

    /// How many `tools/call` requests the body carries.
    pub fn tool_call_count(&self) -> u64 {
        self.messages.iter().filter(|m| m.is_tool_call()).count() as u64
    }

    /// Whether the body asks for the tool list (its answer is filtered to callable tools).
    pub fn lists_tools(&self) -> bool {
        self.messages
            .iter()
            .any(|m| m.method.as_deref() == Some("tools/list"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_messages_batches_and_bodiless_requests() {
        let call = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        );
        let request = McpRequest::decode(Method::POST, &call).unwrap();
        assert_eq!(request.rpc_method(), "tools/call");
        assert_eq!(request.tool_name(), Some("echo"));
        assert_eq!(request.tool_call_count(), 1);
        assert_eq!(request.body_bytes, call.len() as u64);
        assert!(!request.batch);

        let batch = Bytes::from_static(
            br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},
                 {"jsonrpc":"2.0","id":1,"method":"tools/list"},
                 {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add"}},
                 {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}]"#,
        );
        let request = McpRequest::decode(Method::POST, &batch).unwrap();
        assert!(request.batch);
        assert!(request.lists_tools());
        assert_eq!(request.rpc_method(), "notifications/initialized");
        assert_eq!(request.tool_name(), Some("add"));
        assert_eq!(request.tool_call_count(), 2);

        let get = McpRequest::decode(Method::GET, &Bytes::new()).unwrap();
        assert_eq!(get.rpc_method(), "GET");
        assert_eq!(get.tool_call_count(), 0);

        let response = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#);
        let answer = McpRequest::decode(Method::POST, &response).unwrap();
        assert_eq!(answer.rpc_method(), "response");

        for bad in [&b"not json"[..], b"[]", b"42", b"[1]", b""] {
            assert!(
                McpRequest::decode(Method::POST, &Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
