//! Decoding the governance-relevant facts out of an LLM request body in one pass, without building
//! a JSON tree: the model name, streaming flags, the output cap and the prompt's text size.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::endpoint::Endpoint;
use crate::error::RequestError;

/// What the gateway needs to know about an LLM request. Inserted into request extensions by the
/// resolution layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmRequest {
    /// The Odock model name the client asked for.
    pub model: String,
    pub stream: bool,
    /// The client asked for usage in its stream.
    pub client_wants_usage: bool,
    /// `max_tokens` / `max_completion_tokens` / `max_output_tokens`, when given.
    pub max_output_tokens: Option<u64>,
    /// UTF-8 bytes of the text content of the messages (for estimates).
    pub prompt_text_bytes: u64,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    include_usage: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    messages: Option<TextBytes>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

impl LlmRequest {
    /// Decodes a JSON request body for `endpoint`.
    pub fn decode(_endpoint: Endpoint, body: &[u8]) -> Result<Self, RequestError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(RequestError::InvalidBody(
                "request body must be a JSON object".to_owned(),
            ));
        }
        let probe: Probe<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => RequestError::Invalid {
                message: format!("invalid request: {e}"),
                field: None,
            },
            _ => RequestError::InvalidBody(format!("malformed JSON body: {e}")),
        })?;
        let model = probe
            .model
            .filter(|m| !m.trim().is_empty())
            .ok_or(RequestError::Invalid {
                message: "`model` is required".to_owned(),
                field: Some("model"),
            })?;
        let client_wants_usage = probe.include_usage == Some(true)
            || probe.stream_options.and_then(|o| o.include_usage) == Some(true);
        Ok(Self {
            model: model.into_owned(),
            stream: probe.stream.unwrap_or(false),
            client_wants_usage,
            max_output_tokens: probe
                .max_completion_tokens
                .or(probe.max_tokens)
                .or(probe.max_output_tokens),
            prompt_text_bytes: probe.messages.map_or(0, |t| t.0),
        })
    }
}

/// Sums the UTF-8 length of text found in a messages-like value: strings count whole; in objects
/// only `content` and `text` are followed; arrays are summed. Everything else is skipped.
struct TextBytes(u64);

impl<'de> Deserialize<'de> for TextBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(TextBytesVisitor)
            .map(TextBytes)
    }
}

struct TextBytesVisitor;

impl<'de> Visitor<'de> for TextBytesVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message content")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(v.len() as u64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut total = 0u64;
        while let Some(TextBytes(n)) = seq.next_element()? {
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut total = 0u64;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "content" || key == "text" {
                total = total.saturating_add(map.next_value::<TextBytes>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(total)
    }

    fn visit_bool<E>(self, _: bool) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_none<E>(self) -> Result<u64, E> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<LlmRequest, RequestError> {
        LlmRequest::decode(Endpoint::ChatCompletions, body.as_bytes())
    }

    #[test]
    fn reads_model_stream_flags_and_caps() {
        let req = decode(
            r#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true},"max_tokens":9,
               "messages":[{"role":"user","content":"héllo"},
                           {"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url","image_url":{"url":"x"}}]}],
               "unknown":{"nested":[1,2,3]}}"#,
        );
        assert_eq!(
            req,
            Ok(LlmRequest {
                model: "gpt".into(),
                stream: true,
                client_wants_usage: true,
                max_output_tokens: Some(9),
                prompt_text_bytes: 6 + 3,
            })
        );
        assert_eq!(
            decode(r#"{"model":"m","include_usage":true}"#).map(|r| r.client_wants_usage),
            Ok(true)
        );
        assert_eq!(
            decode(r#"{"model":"m","stream":null}"#).map(|r| r.stream),
            Ok(false)
        );
    }

    #[test]
    fn malformed_bodies_and_missing_models_are_distinct_errors() {
        assert!(matches!(
            decode("{\"model\":"),
            Err(RequestError::InvalidBody(_))
        ));
        assert!(matches!(
            decode("not json"),
            Err(RequestError::InvalidBody(_))
        ));
        assert!(matches!(decode("[1,2]"), Err(RequestError::InvalidBody(_))));
        assert!(matches!(decode(""), Err(RequestError::InvalidBody(_))));
        assert!(matches!(
            decode(r#"{"messages":[]}"#),
            Err(RequestError::Invalid {
                field: Some("model"),
                ..
            })
        ));
        assert!(matches!(
            decode(r#"{"model":5}"#),
            Err(RequestError::Invalid { .. })
        ));
        assert!(matches!(
            decode(r#"{"model":"m","stream":"yes"}"#),
            Err(RequestError::Invalid { .. })
        ));
    }
}
