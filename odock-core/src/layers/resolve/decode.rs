//! Decoding the governance-relevant facts out of an LLM request body in one pass, without building
//! a JSON tree: the model name, streaming flags, the output cap and the prompt's text size.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::multipart;
use crate::endpoint::{BodyFormat, Endpoint, ModelSource};
use crate::error::RequestError;

/// What the gateway needs to know about an LLM request. Inserted into request extensions by the
/// resolution layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmRequest {
    /// The Odock model name the client asked for.
    pub model: String,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// The client asked for usage in its stream.
    pub client_wants_usage: bool,
    /// `max_tokens` / `max_completion_tokens` / `max_output_tokens`, when given.
    pub max_output_tokens: Option<u64>,
    /// UTF-8 bytes of the text content of the messages (for estimates).
    pub prompt_text_bytes: u64,
    /// `/v1/llm/chat`'s optional `provider`: the family the client expects to serve the model.
    pub provider: Option<String>,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    provider: Option<Cow<'a, str>>,
    /// Anthropic's system prompt, Gemini's contents, Responses' input, completions' prompt, FIM's
    /// suffix, Hugging Face's inputs: all count as prompt text.
    #[serde(default)]
    system: Option<TextBytes>,
    #[serde(default)]
    contents: Option<TextBytes>,
    #[serde(default, rename = "systemInstruction")]
    system_instruction: Option<TextBytes>,
    #[serde(default)]
    input: Option<TextBytes>,
    #[serde(default)]
    prompt: Option<TextBytes>,
    #[serde(default)]
    suffix: Option<TextBytes>,
    #[serde(default)]
    inputs: Option<TextBytes>,
    #[serde(default, rename = "generationConfig")]
    generation_config: Option<GenerationConfig>,
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
struct GenerationConfig {
    #[serde(default, rename = "maxOutputTokens")]
    max_output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

impl LlmRequest {
    /// Decodes a request for `endpoint`: `path` is the request path (Gemini names the model there),
    /// `content_type` tells multipart bodies apart.
    pub fn decode(
        endpoint: Endpoint,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, RequestError> {
        let mut request = match endpoint.body_format() {
            BodyFormat::Json => Self::decode_json(body)?,
            BodyFormat::Multipart => Self::decode_multipart(content_type, body)?,
        };
        if endpoint.model_source() == ModelSource::GeminiPath {
            request.model = gemini_model(path).ok_or(RequestError::Invalid {
                message: "the path must name a model: /v1beta/models/{model}:{method}".to_owned(),
                field: Some("model"),
            })?;
        }
        if endpoint.always_streams() {
            request.stream = true;
        }
        if request.model.trim().is_empty() {
            return Err(missing_model());
        }
        Ok(request)
    }

    fn decode_json(body: &[u8]) -> Result<Self, RequestError> {
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
        let client_wants_usage = probe.include_usage == Some(true)
            || probe.stream_options.and_then(|o| o.include_usage) == Some(true);
        let prompt_text_bytes = [
            probe.messages,
            probe.system,
            probe.contents,
            probe.system_instruction,
            probe.input,
            probe.prompt,
            probe.suffix,
            probe.inputs,
        ]
        .into_iter()
        .flatten()
        .fold(0u64, |sum, text| sum.saturating_add(text.0));
        Ok(Self {
            model: probe.model.map(Cow::into_owned).unwrap_or_default(),
            stream: probe.stream.unwrap_or(false),
            client_wants_usage,
            max_output_tokens: probe
                .max_completion_tokens
                .or(probe.max_tokens)
                .or(probe.max_output_tokens)
                .or(probe.generation_config.and_then(|c| c.max_output_tokens)),
            prompt_text_bytes,
            provider: probe.provider.map(Cow::into_owned),
        })
    }

    fn decode_multipart(content_type: Option<&str>, body: &[u8]) -> Result<Self, RequestError> {
        let boundary = content_type.and_then(multipart::boundary).ok_or_else(|| {
            RequestError::InvalidBody("expected a multipart/form-data body".to_owned())
        })?;
        let fields = multipart::text_fields(body, &boundary)
            .map_err(|e| RequestError::InvalidBody(format!("malformed multipart body: {e}")))?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        Ok(Self {
            model: field("model").unwrap_or_default(),
            stream: field("stream").is_some_and(|v| v == "true"),
            client_wants_usage: false,
            max_output_tokens: None,
            prompt_text_bytes: field("prompt").map_or(0, |p| p.len() as u64),
            provider: None,
        })
    }
}

fn missing_model() -> RequestError {
    RequestError::Invalid {
        message: "`model` is required".to_owned(),
        field: Some("model"),
    }
}

/// `{model}` from `.../models/{model}:{method}`.
fn gemini_model(path: &str) -> Option<String> {
    let rest = &path[path.rfind("/models/")? + "/models/".len()..];
    let model = rest.rsplit_once(':').map_or(rest, |(model, _)| model);
    (!model.is_empty()).then(|| model.to_owned())
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
            if matches!(key.as_ref(), "content" | "text" | "parts") {
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
        LlmRequest::decode(
            Endpoint::ChatCompletions,
            "/v1/chat/completions",
            None,
            body.as_bytes(),
        )
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
                provider: None,
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

    #[test]
    fn gemini_names_the_model_in_the_path_and_streams_by_route() {
        let body = br#"{"systemInstruction":{"parts":[{"text":"be kind"}]},"contents":[{"role":"user","parts":[{"text":"hello"}]}],"generationConfig":{"maxOutputTokens":7}}"#;
        let req = LlmRequest::decode(
            Endpoint::GeminiStreamGenerateContent,
            "/v1beta/models/gemini-pro:streamGenerateContent",
            None,
            body,
        )
        .unwrap();
        assert_eq!(req.model, "gemini-pro");
        assert!(req.stream);
        assert_eq!(req.max_output_tokens, Some(7));
        assert_eq!(req.prompt_text_bytes, 7 + 5);
        let err = LlmRequest::decode(
            Endpoint::GeminiGenerateContent,
            "/v1beta/models/:generateContent",
            None,
            body,
        );
        assert!(matches!(
            err,
            Err(RequestError::Invalid {
                field: Some("model"),
                ..
            })
        ));
    }

    #[test]
    fn anthropic_system_prompts_count_as_prompt_text() {
        let body = br#"{"model":"claude","system":"be brief","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":5}"#;
        let req =
            LlmRequest::decode(Endpoint::AnthropicMessages, "/v1/messages", None, body).unwrap();
        assert_eq!(req.prompt_text_bytes, 8 + 2);
        assert_eq!(req.max_output_tokens, Some(5));
    }

    #[test]
    fn multipart_bodies_name_their_model_in_a_field() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ndall-e-2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n--XyZ--\r\n";
        let req = LlmRequest::decode(
            Endpoint::ImageEdits,
            "/v1/images/edits",
            Some("multipart/form-data; boundary=XyZ"),
            body,
        )
        .unwrap();
        assert_eq!(req.model, "dall-e-2");
        assert_eq!(req.prompt_text_bytes, 5);
        assert!(matches!(
            LlmRequest::decode(
                Endpoint::ImageEdits,
                "/v1/images/edits",
                Some("application/json"),
                body
            ),
            Err(RequestError::InvalidBody(_))
        ));
    }
}
