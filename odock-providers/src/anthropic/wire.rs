//! Serde types of the Anthropic Messages API (`POST /v1/messages`), as far as the gateway reads or
//! writes them.
//!
//! Requests are only *built* here when translating from the OpenAI format (native requests are
//! forwarded as bytes), so the request types serialise and skip what is unset. Responses and
//! stream events are only *read*: unknown fields are ignored and unknown block, delta and event
//! types land in an `Other` variant, so a new upstream feature never breaks a relay.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessagesRequest {
    /// The upstream model slug.
    pub model: String,
    /// The conversation, alternating user and assistant turns.
    pub messages: Vec<Message>,
    /// The system prompt, which Anthropic takes outside the messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// The output cap; required by the API, so translation always sets one.
    pub max_tokens: u64,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling cut-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Strings that end generation (OpenAI's `stop`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Client tools the model may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model must use the tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The end user, for the upstream's abuse detection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Omitted for unary requests (the API's default).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// The top-level system prompt: a plain string, or text blocks when there were several.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum System {
    /// One plain-text system prompt.
    Text(String),
    /// Several system texts, kept apart.
    Blocks(Vec<TextBlock>),
}

/// `{"type":"text","text":…}`, the only block type a system prompt takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextBlock {
    /// Always `"text"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The block's text.
    pub text: String,
}

impl TextBlock {
    /// A `text` block holding `text`.
    pub fn new(text: String) -> Self {
        Self { kind: "text", text }
    }
}

/// Who speaks a turn; the system prompt is not a turn in this API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The client's side of the conversation (tool results included).
    User,
    /// The model's side of the conversation.
    Assistant,
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What was said.
    pub content: MessageContent,
}

/// A turn's content: a plain string, or blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Text, images, documents, tool calls and results as blocks.
    Blocks(Vec<ContentBlock>),
}

/// A content block, in requests and responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text itself.
        text: String,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: Source,
    },
    /// A PDF (from an OpenAI `file` part carrying `file_data`).
    Document {
        /// Where the document comes from.
        source: Source,
    },
    /// A tool call the model made.
    ToolUse {
        /// The call's id, which the matching `tool_result` names.
        id: String,
        /// The tool called.
        name: String,
        /// The call's arguments as a JSON object.
        input: Value,
    },
    /// A tool's result, sent back by the client.
    ToolResult {
        /// The `tool_use` this answers.
        tool_use_id: String,
        /// The result as text.
        content: String,
    },
    /// The model's extended thinking.
    Thinking {
        /// The thinking text.
        thinking: String,
        /// The upstream's signature over the thinking, needed to send it back in a later turn.
        #[serde(default)]
        signature: String,
    },
    /// Thinking the upstream encrypted instead of showing.
    RedactedThinking {
        /// The encrypted thinking, to be sent back as is.
        data: String,
    },
    /// Server tools, search results, … : relayed natively, skipped by the translation.
    #[serde(other)]
    Other,
}

/// Where an image or document comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Inline data.
    Base64 {
        /// The MIME type (`image/png`, `application/pdf`, …).
        media_type: String,
        /// The content, base64-encoded.
        data: String,
    },
    /// A URL the upstream fetches itself.
    Url {
        /// Where the content is.
        url: String,
    },
}

/// A client tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    /// The name the model calls it by.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the tool's input.
    pub input_schema: Value,
}

/// How the model must use tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides whether to call a tool.
    Auto {
        /// At most one tool call per turn when `true`.
        #[serde(skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        /// At most one tool call per turn when `true`.
        #[serde(skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call the named tool.
    Tool {
        /// The tool to call.
        name: String,
        /// At most one tool call per turn when `true`.
        #[serde(skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must not call tools.
    None,
}

/// Request metadata; `user_id` is the only field the API takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    /// An opaque id of the end user, for the upstream's abuse detection.
    pub user_id: String,
}

/// A unary `message` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesResponse {
    /// The upstream's message id.
    #[serde(default)]
    pub id: String,
    /// The answer's blocks.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Why generation stopped (`end_turn`, `max_tokens`, `tool_use`, …).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Kept raw for the usage record; normalised by [`super::usage`].
    #[serde(default)]
    pub usage: Value,
}

/// One event of a streamed answer (the `data` of an SSE event; its `type` names it).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The first event: the message shell.
    MessageStart {
        /// The message's id and input-side usage.
        message: StartedMessage,
    },
    /// A content block opens.
    ContentBlockStart {
        /// The block's position in the message.
        index: usize,
        /// The block as it starts (a tool call's name and id, empty text).
        content_block: ContentBlock,
    },
    /// A piece of an open content block.
    ContentBlockDelta {
        /// The block the piece belongs to.
        index: usize,
        /// The piece.
        delta: Delta,
    },
    /// A content block closes.
    ContentBlockStop {
        /// The block that closed.
        #[serde(default)]
        index: usize,
    },
    /// The message's end: stop reason and output-side usage.
    MessageDelta {
        /// Why generation stopped.
        delta: MessageDeltaBody,
        /// Cumulative usage, kept raw for the usage record.
        #[serde(default)]
        usage: Value,
    },
    /// The last event.
    MessageStop,
    /// A keep-alive.
    Ping,
    /// An error mid-stream (the stream's status is already 200).
    Error {
        /// What went wrong.
        error: ErrorBody,
    },
    /// An event type this gateway does not know: skipped.
    #[serde(other)]
    Other,
}

/// The message shell `message_start` carries: its id and the input-side usage.
#[derive(Debug, Clone, Deserialize)]
pub struct StartedMessage {
    /// The upstream's message id.
    #[serde(default)]
    pub id: String,
    /// Input-side usage, kept raw for the usage record.
    #[serde(default)]
    pub usage: Value,
}

/// A piece of a content block.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    /// Generated text.
    TextDelta {
        /// The text added.
        text: String,
    },
    /// Part of a tool call's arguments.
    InputJsonDelta {
        /// JSON text to append; complete only when the block stops.
        partial_json: String,
    },
    /// Extended thinking.
    ThinkingDelta {
        /// The thinking text added.
        thinking: String,
    },
    /// The signature closing a thinking block.
    SignatureDelta {
        /// The signature over the block's thinking.
        #[serde(default)]
        signature: String,
    },
    /// A delta type this gateway does not know: skipped.
    #[serde(other)]
    Other,
}

impl Delta {
    /// UTF-8 bytes of generated text (text, tool input, thinking), for billing a stream cut short.
    pub fn generated_bytes(&self) -> u64 {
        match self {
            Delta::TextDelta { text } => text.len() as u64,
            Delta::InputJsonDelta { partial_json } => partial_json.len() as u64,
            Delta::ThinkingDelta { thinking } => thinking.len() as u64,
            Delta::SignatureDelta { .. } | Delta::Other => 0,
        }
    }
}

/// What `message_delta` says about the end of the message.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageDeltaBody {
    /// Why generation stopped (`end_turn`, `max_tokens`, `tool_use`, …).
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// `{"type":"error","error":{"type":…,"message":…}}`: an error answer or stream event.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: ErrorBody,
}

/// The `error` member of an Anthropic error: its type and message.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    /// The error type (`invalid_request_error`, `rate_limit_error`, `overloaded_error`, …).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The upstream's human-readable explanation.
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    /// The HTTP status the API uses for this error type (for errors that arrive mid-stream, where
    /// the stream's own status is 200).
    pub fn status(&self) -> u16 {
        match self.kind.as_str() {
            "invalid_request_error" => 400,
            "authentication_error" => 401,
            "billing_error" => 402,
            "permission_error" => 403,
            "not_found_error" => 404,
            "request_too_large" => 413,
            "rate_limit_error" => 429,
            "timeout_error" => 504,
            "overloaded_error" => 529,
            _ => 500,
        }
    }
}
