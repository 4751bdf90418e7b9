//! The `generateContent` wire format: the parts of `GenerateContentRequest` the translation writes
//! and the parts of `GenerateContentResponse` it reads. Field names are Gemini's (camelCase).
//!
//! Native routes never go through these types: their bodies are relayed as bytes. Responses are
//! read leniently (every member optional, unknown members ignored) so a new part kind or field
//! from the upstream never fails a request.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GenerateContentRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation, oldest turn first.
    pub contents: Vec<Content>,
    /// The system prompt, which Gemini takes outside the turns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Function declarations the model may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// How the model must use the functions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Sampling and output settings; omitted when all unset.
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig,
}

/// A turn: `role` is `user` or `model` (absent on `systemInstruction`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// `user` or `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The turn's content, in order.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One part of a turn. Exactly one of the data members is set; `thought` marks thinking text and
/// `thoughtSignature` must travel back with the part it came on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text (answer or, with `thought`, thinking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Inline bytes (an image or document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// Data the upstream fetches by URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    /// A function call the model made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// A function's result, sent back by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// `true` when `text` is thinking rather than answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// The upstream's opaque signature, to be sent back with the part in later turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl Part {
    /// A plain text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Thinking text (`thought: true`), as opposed to the answer.
    pub fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

/// Inline bytes, base64-encoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// The MIME type (`image/png`, `application/pdf`, …).
    pub mime_type: String,
    /// The bytes, base64-encoded.
    pub data: String,
}

/// Data the upstream fetches itself (a File API URI or a public URL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// The MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The File API URI or URL to fetch.
    pub file_uri: String,
}

/// A function call the model made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCall {
    /// Set by some Gemini surfaces; the translation generates OpenAI ids when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function called.
    pub name: String,
    /// A JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
}

/// A function's result, answering a [`FunctionCall`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionResponse {
    /// The function that produced it.
    pub name: String,
    /// A JSON object.
    pub response: Map<String, Value>,
}

/// A set of functions the model may call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The functions.
    pub function_declarations: Vec<FunctionDeclaration>,
}

/// One function the model may call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    /// The name the model calls it by.
    pub name: String,
    /// What the function does, for the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An OpenAPI-subset `Schema` (see `convert::gemini_schema`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `toolConfig`: how the model must use the functions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// The function-calling settings.
    pub function_calling_config: FunctionCallingConfig,
}

/// Whether, and which, functions the model must call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// Whether the model may, must or must not call a function.
    pub mode: FunctionCallingMode,
    /// With `ANY`: the only functions it may call (OpenAI's named `tool_choice`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<String>,
}

/// Gemini's function-calling modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FunctionCallingMode {
    /// The model decides.
    Auto,
    /// The model must call a function.
    Any,
    /// The model must not call a function.
    None,
}

/// `generationConfig`: sampling and output settings, each unset one omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// The output cap (OpenAI's `max_tokens` / `max_completion_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling cut-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Strings that end generation (OpenAI's `stop`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// How many candidates to generate (OpenAI's `n`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u64>,
    /// Seed for reproducible sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty on tokens already present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Penalty by how often tokens occurred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// `application/json` for JSON output (OpenAI's `response_format`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// The JSON schema the output must follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `GenerateContentResponse`, unary or one streamed chunk.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// The generated answers.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Why the prompt was refused, when it was.
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Kept raw: it is the usage record's provider usage (see `usage`).
    #[serde(default)]
    pub usage_metadata: Option<Value>,
    /// The model version that answered.
    #[serde(default)]
    pub model_version: Option<String>,
    /// The upstream's response id.
    #[serde(default)]
    pub response_id: Option<String>,
    /// Set instead of everything else when the upstream failed mid-stream.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// One generated answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The answer's parts.
    #[serde(default)]
    pub content: Option<Content>,
    /// Why generation stopped (`STOP`, `MAX_TOKENS`, `SAFETY`, …).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The candidate's position (for more than one).
    #[serde(default)]
    pub index: Option<u32>,
}

/// Present when the prompt itself was refused (`blockReason`); there are no candidates then.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// Why the prompt was blocked (`SAFETY`, `OTHER`, …).
    #[serde(default)]
    pub block_reason: Option<String>,
}

/// `{"error": {"code", "message", "status"}}`, Google's error envelope.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
}

/// The `error` member of Google's error envelope.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status code.
    #[serde(default)]
    pub code: Option<u16>,
    /// The upstream's human-readable explanation.
    #[serde(default)]
    pub message: Option<String>,
    /// The canonical status name (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …).
    #[serde(default)]
    pub status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_are_read_leniently() {
        let response: GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "a"},
                {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
                {"text": "thinking", "thought": true}
            ]}, "finishReason": "STOP", "safetyRatings": []}],
            "somethingNew": 1
        }))
        .unwrap();
        let parts = &response.candidates[0].content.as_ref().unwrap().parts;
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[1],
            Part::default(),
            "unknown part kinds read as empty"
        );
        assert!(parts[2].is_thought());
        assert!(response.usage_metadata.is_none());
    }

    #[test]
    fn empty_members_are_not_written() {
        let request = GenerateContentRequest {
            contents: vec![Content {
                role: Some("user".into()),
                parts: vec![Part::text("hi")],
            }],
            ..GenerateContentRequest::default()
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
        let mode = serde_json::to_value(FunctionCallingMode::Any).unwrap();
        assert_eq!(mode, json!("ANY"));
    }
}
