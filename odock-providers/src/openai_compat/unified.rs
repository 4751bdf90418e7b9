//! `/v1/llm/chat` served by an OpenAI-compatible upstream.
//!
//! The unified request is OpenAI chat plus two Odock additions, folded away before forwarding:
//!
//! - the top-level `provider` (the family the client expects; core has already checked it against
//!   the model) is removed, as OpenAI rejects unknown parameters;
//! - a message's `content_blocks` (OpenAI content parts: `text`, `image_url`, `input_audio`, …)
//!   are appended to its `content`, a string content becoming a leading `text` part.
//!
//! Everything else is forwarded as on `/v1/chat/completions` (slug, and `stream_options` as the
//! family wants it). The answer is a chat completion or chunk stream, which the gateway
//! normalises; an upstream error is not relayed but becomes [`ProviderError::Upstream`] with the
//! upstream's own message ([`upstream_error`]), as on every translated route. OpenAI, Azure,
//! Custom, vLLM, Mistral and Hugging Face all serve `/v1/llm/chat` through this module.

use bytes::Bytes;
use http::StatusCode;
use odock_core::ProviderError;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::rewrite::{Rewrite, StreamOptions};

/// Odock's top-level member naming the expected provider family.
const PROVIDER: &str = "provider";

/// The longest upstream error text carried into a [`ProviderError::Upstream`] message, in bytes.
const MESSAGE_LIMIT: usize = 512;

/// Marks a message cut at [`MESSAGE_LIMIT`].
const ELLIPSIS: char = '…';

/// The unified request as the upstream's chat-completions body, `stream_options` handled as the
/// family wants it.
pub(crate) fn request_body(
    body: &Bytes,
    slug: &str,
    stream_options: StreamOptions,
) -> Result<Bytes, serde_json::Error> {
    Rewrite {
        slug,
        stream_options,
        drop: &[PROVIDER],
        messages: Some(fold_content_blocks),
    }
    .apply(body)
}

/// `messages` with every `content_blocks` folded into `content`; `None` when there is none.
fn fold_content_blocks(messages: &RawValue) -> Option<String> {
    if !messages.get().contains("\"content_blocks\"") {
        return None;
    }
    let mut messages: Vec<Value> = serde_json::from_str(messages.get()).ok()?;
    let mut changed = false;
    for message in &mut messages {
        let Some(message) = message.as_object_mut() else {
            continue;
        };
        let Some(blocks) = message.remove("content_blocks") else {
            continue;
        };
        changed = true;
        let blocks = match blocks {
            Value::Array(blocks) => blocks,
            Value::Null => continue,
            block => vec![block],
        };
        let mut content = match message.remove("content") {
            Some(Value::String(text)) if !text.is_empty() => {
                vec![json!({"type": "text", "text": text})]
            }
            Some(Value::Array(parts)) => parts,
            _ => Vec::new(),
        };
        content.extend(blocks);
        message.insert("content".to_owned(), Value::Array(content));
    }
    changed.then(|| Value::Array(messages).to_string())
}

/// An upstream error answer as a [`ProviderError::Upstream`], with the upstream's message:
/// OpenAI's `error.message`, Hugging Face's `error` string, Mistral's and vLLM's `message`,
/// FastAPI's `detail`; else the body's text; else the status' reason. At most [`MESSAGE_LIMIT`]
/// bytes, ending in `…` when cut. `retry_after` is the upstream's `Retry-After`, relayed.
pub(crate) fn upstream_error(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<std::time::Duration>,
) -> ProviderError {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        v.pointer("/error/message")
            .and_then(text)
            .or_else(|| v.get("error").and_then(text))
            .or_else(|| v.get("message").and_then(text))
            .or_else(|| {
                v.get("detail")
                    .map(|d| text(d).unwrap_or_else(|| d.to_string()))
            })
    });
    let message = from_json
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
        .trim()
        .to_owned();
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("upstream error")
            .to_owned()
    } else {
        truncate(message, MESSAGE_LIMIT)
    };
    ProviderError::Upstream {
        status: status.as_u16(),
        message,
        retry_after,
    }
}

/// `text` cut to at most `limit` bytes (the ellipsis included) at a character boundary.
fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit - ELLIPSIS.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push(ELLIPSIS);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str, stream: bool) -> String {
        let out = request_body(
            &Bytes::copy_from_slice(body.as_bytes()),
            "gpt-up",
            StreamOptions::include_usage_if(stream),
        )
        .unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn the_provider_member_is_removed_and_the_rest_forwarded_as_chat() {
        assert_eq!(
            rewrite(
                r#"{"model":"odock","provider":"openai","messages":[{"role":"user","content":"hi"}],"temperature":0.50}"#,
                false
            ),
            r#"{"model":"gpt-up","messages":[{"role":"user","content":"hi"}],"temperature":0.50}"#
        );
        assert_eq!(
            rewrite(
                r#"{"model":"odock","stream":true,"include_usage":true,"messages":[]}"#,
                true
            ),
            r#"{"model":"gpt-up","stream":true,"messages":[],"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn content_blocks_become_content_parts() {
        let out: Value = serde_json::from_str(&rewrite(
            r#"{"model":"m","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"user","content":"What is this?","content_blocks":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
                {"role":"user","content_blocks":[{"type":"text","text":"and this"}]}
            ]}"#,
            false,
        ))
        .unwrap();
        let messages = &out["messages"];
        assert_eq!(
            messages[0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            messages[1],
            json!({"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]})
        );
        assert_eq!(
            messages[2],
            json!({"role": "user", "content": [{"type": "text", "text": "and this"}]})
        );
    }

    #[test]
    fn messages_without_blocks_keep_their_bytes() {
        let body = r#"{"model":"gpt-up","messages":[ {"role":"user", "content":"say \"content_blocks\""} ]}"#;
        assert_eq!(rewrite(body, false), body);
    }

    #[test]
    fn upstream_errors_carry_the_upstream_message() {
        let error = upstream_error(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded"}}"#,
            Some(std::time::Duration::from_secs(3)),
        );
        assert_eq!(
            error,
            ProviderError::Upstream {
                status: 429,
                message: "Rate limit reached for gpt-4o".into(),
                retry_after: Some(std::time::Duration::from_secs(3)),
            }
        );
        let error = upstream_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", None);
        assert_eq!(
            error,
            ProviderError::Upstream {
                status: 502,
                message: "<html>bad gateway</html>".into(),
                retry_after: None,
            }
        );
        let error = upstream_error(StatusCode::SERVICE_UNAVAILABLE, b"", None);
        assert_eq!(
            error,
            ProviderError::Upstream {
                status: 503,
                message: "Service Unavailable".into(),
                retry_after: None,
            }
        );
        let long = "é".repeat(400);
        let ProviderError::Upstream { message, .. } =
            upstream_error(StatusCode::INTERNAL_SERVER_ERROR, long.as_bytes(), None)
        else {
            unreachable!()
        };
        assert!(message.len() <= MESSAGE_LIMIT && message.starts_with('é'));
        assert!(message.ends_with(ELLIPSIS));
    }

    #[test]
    fn error_messages_are_found_in_every_upstream_shape() {
        let message = |body: &[u8]| match upstream_error(StatusCode::BAD_REQUEST, body, None) {
            ProviderError::Upstream { message, .. } => message,
            other => unreachable!("{other:?}"),
        };
        assert_eq!(
            message(br#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(
            message(br#"{"object":"error","message":"too long","code":400}"#),
            "too long"
        );
        assert_eq!(
            message(br#"{"error":"Model is loading"}"#),
            "Model is loading"
        );
        assert_eq!(
            message(br#"{"detail":[{"msg":"field required"}]}"#),
            r#"[{"msg":"field required"}]"#
        );
        assert_eq!(message(b"  upstream down \n"), "upstream down");
    }
}
