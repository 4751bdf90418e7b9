//! The fake MCP server's behaviour, shared by the in-process HTTP fakes and the stdio fake binary
//! (which includes this file by path, so it uses nothing from the crate).
//!
//! Tools: `echo {text, log?}` (`log: true` sends a `notifications/message` first), `add {a, b}`, `secret_tool`, `slow_progress {steps?}` (sends
//! `notifications/progress` before its result) and `crash` (the stdio binary exits).

use serde_json::{json, Value};

/// What the server sends back for one client message.
#[derive(Debug, Default)]
pub struct FakeReply {
    /// Progress notifications first, then the response (if the message was a request).
    pub messages: Vec<Value>,
    /// The `crash` tool was called.
    pub crash: bool,
}

/// The `serverInfo.name` the fake answers `initialize` with.
pub const FAKE_SERVER_NAME: &str = "odock-fake-mcp";

/// The tools `tools/list` announces.
pub fn tool_list() -> Value {
    let schema = |properties: Value| json!({"type": "object", "properties": properties});
    json!([
        {"name": "echo", "description": "Echoes `text`.", "inputSchema": schema(json!({"text": {"type": "string"}}))},
        {"name": "add", "description": "Adds `a` and `b`.", "inputSchema": schema(json!({"a": {"type": "number"}, "b": {"type": "number"}}))},
        {"name": "secret_tool", "description": "A tool a key may be denied.", "inputSchema": schema(json!({}))},
        {"name": "slow_progress", "description": "Reports progress, then answers.", "inputSchema": schema(json!({"steps": {"type": "integer"}}))},
        {"name": "crash", "description": "Exits the server process (stdio only).", "inputSchema": schema(json!({}))},
    ])
}

/// Handles one client message (requests, notifications and responses alike).
pub fn handle(message: &Value) -> FakeReply {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return FakeReply::default(); // a response to something the server asked: nothing to say
    };
    let Some(id) = message.get("id").cloned() else {
        return FakeReply::default(); // a notification
    };
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let mut reply = FakeReply::default();
    let result = match method {
        "initialize" => Ok(json!({
            "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": FAKE_SERVER_NAME, "version": "1.0.0"},
        })),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tool_list()})),
        "tools/call" => call_tool(&params, &mut reply),
        _ => Err((-32601, format!("method not found: {method}"))),
    };
    let response = match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, text)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": text}})
        }
    };
    if !reply.crash {
        reply.messages.push(response);
    }
    reply
}

fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": false})
}

fn call_tool(params: &Value, reply: &mut FakeReply) -> Result<Value, (i64, String)> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
    match name {
        "echo" => {
            // `{"log": true}`: a log notification first, unrelated to any progress token.
            if arguments.get("log") == Some(&json!(true)) {
                reply.messages.push(json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/message",
                    "params": {"level": "info", "data": "echo called"},
                }));
            }
            Ok(text_result(
                arguments.get("text").and_then(Value::as_str).unwrap_or(""),
            ))
        }
        "add" => {
            let number = |key: &str| arguments.get(key).and_then(Value::as_f64).unwrap_or(0.0);
            let sum = number("a") + number("b");
            Ok(text_result(sum.to_string()))
        }
        "secret_tool" => Ok(text_result("the secret")),
        "slow_progress" => {
            let steps = arguments.get("steps").and_then(Value::as_u64).unwrap_or(2);
            let token = params
                .get("_meta")
                .and_then(|meta| meta.get("progressToken"))
                .cloned()
                .unwrap_or(json!("progress"));
            for step in 1..=steps {
                reply.messages.push(json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": step, "total": steps},
                }));
            }
            Ok(text_result(format!("done after {steps} steps")))
        }
        "crash" => {
            reply.crash = true;
            Ok(Value::Null)
        }
        other => Err((-32602, format!("unknown tool: {other}"))),
    }
}
