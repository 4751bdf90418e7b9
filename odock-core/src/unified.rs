//! `/v1/llm/chat`: providers answer it in the OpenAI chat-completions format (translating from their
//! own when they must); this module turns a unary answer into Odock's normalised object:
//! `{provider, model, content, stop_reason, content_blocks, tool_calls, input_tokens, output_tokens}`.
//! Streams stay OpenAI `chat.completion.chunk` events ending in `[DONE]`, whatever the upstream.

use bytes::Bytes;
use serde_json::{json, Value};

/// The normalised unary object for an OpenAI `chat.completion` body, or `None` when the body is
/// not one (it is then relayed unchanged).
pub fn normalize_completion(provider_family: &str, model_name: &str, body: &[u8]) -> Option<Bytes> {
    let completion: Value = serde_json::from_slice(body).ok()?;
    let choice = completion.get("choices")?.get(0)?;
    let message = choice.get("message")?;
    let mut blocks = Vec::new();
    match message.get("content") {
        Some(Value::String(text)) if !text.is_empty() => {
            blocks.push(json!({"type": "text", "text": text}))
        }
        Some(Value::Array(parts)) => blocks.extend(parts.iter().cloned()),
        _ => {}
    }
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        blocks.push(json!({"type": "refusal", "refusal": refusal}));
    }
    let content: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let usage = completion.get("usage");
    let tokens = |name: &str| {
        usage
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let normalized = json!({
        "id": completion.get("id"),
        "provider": provider_family,
        "model": model_name,
        "content": content,
        "stop_reason": choice.get("finish_reason"),
        "content_blocks": blocks,
        "tool_calls": message.get("tool_calls").cloned().unwrap_or(Value::Array(Vec::new())),
        "input_tokens": tokens("prompt_tokens"),
        "output_tokens": tokens("completion_tokens"),
    });
    Some(Bytes::from(normalized.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_text_and_tool_calls() {
        let body = br#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"finish_reason":"tool_calls",
            "message":{"role":"assistant","content":"Checking.","tool_calls":[{"id":"t1","type":"function",
            "function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]}}],
            "usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#;
        let out: Value =
            serde_json::from_slice(&normalize_completion("anthropic", "claude", body).unwrap())
                .unwrap();
        assert_eq!(out["provider"], "anthropic");
        assert_eq!(out["model"], "claude");
        assert_eq!(out["content"], "Checking.");
        assert_eq!(out["stop_reason"], "tool_calls");
        assert_eq!(out["content_blocks"][0]["type"], "text");
        assert_eq!(out["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(out["input_tokens"], 12);
        assert_eq!(out["output_tokens"], 7);
        assert!(normalize_completion("x", "y", b"not json").is_none());
    }
}
