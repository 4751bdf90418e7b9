//! OpenAI chat completions ⇄ Anthropic Messages, for `/v1/llm/chat`.
//!
//! **Request** (OpenAI `chat.completions` body → [`MessagesRequest`]):
//!
//! | OpenAI                                         | Anthropic                                         |
//! |------------------------------------------------|---------------------------------------------------|
//! | `system` / `developer` messages (anywhere)     | top-level `system` (a string, or text blocks)     |
//! | `user` / `assistant` text                      | turns with the same text                          |
//! | `image_url` part, `data:` URL                  | `image` block, `base64` source                    |
//! | `image_url` part, `http(s)` URL                | `image` block, `url` source                       |
//! | `file` part with `file_data` (a `data:` URL)   | `document` block, `base64` source                 |
//! | assistant `tool_calls`                         | `tool_use` blocks (`arguments` parsed as `input`) |
//! | consecutive `tool` messages                    | one `user` turn of `tool_result` blocks           |
//! | `tools` (function)                             | `{name, description, input_schema}`               |
//! | `tool_choice` auto / none / required / named   | auto / none / any / `{type: tool, name}`          |
//! | `parallel_tool_calls: false`                   | `tool_choice.disable_parallel_tool_use: true`     |
//! | `max_completion_tokens`, else `max_tokens`     | `max_tokens` (else the model's cap, else 4,096)   |
//! | `temperature`, `top_p`                         | the same (passed as sent)                         |
//! | `stop` (string or list)                        | `stop_sequences`                                  |
//! | `user`                                         | `metadata.user_id`                                |
//!
//! Content parts may also come in Odock's `content_blocks` member of a message; they follow the
//! message's `content`.
//!
//! Dropped, because the Messages API has no equivalent: `n`, `presence_penalty`,
//! `frequency_penalty`, `logit_bias`, `logprobs`, `top_logprobs`, `seed`, `response_format`,
//! `reasoning_effort`, `modalities`, `audio`, `prediction`, `service_tier`, `store`, `metadata`
//! (OpenAI's is a tag map, Anthropic's only takes `user_id`), `web_search_options`, and Odock's own
//! `provider`, `include_usage` and `stream_options` (streams always report usage). Audio input and
//! file ids cannot be expressed and are refused with a [`ConvertError`].
//!
//! **Response** ([`MessagesResponse`] → OpenAI `chat.completion`): text blocks joined into
//! `content` (`null` when the answer is only tool calls), `tool_use` blocks as `tool_calls` with
//! `arguments` as a JSON string, `stop_reason` mapped by [`finish_reason`], usage as OpenAI counts
//! ([`super::usage::openai_usage`]). Thinking blocks are not carried over.

use serde::Deserialize;
use serde_json::{json, Value};

use super::usage::{openai_usage, token_usage};
use super::wire::{
    ContentBlock, ErrorResponse, Message, MessageContent, MessagesRequest, MessagesResponse,
    Metadata, Role, Source, System, TextBlock, Tool, ToolChoice,
};

/// `max_tokens` when neither the request nor the model sets an output cap.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A chat request that cannot be expressed as a Messages request: the client's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

fn invalid(message: impl Into<String>) -> ConvertError {
    ConvertError(message.into())
}

/// The OpenAI request members the translation reads; everything else is dropped (see the module
/// documentation).
#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    tools: Option<Vec<ChatTool>>,
    #[serde(default)]
    tool_choice: Option<ChatToolChoice>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<ChatContent>,
    #[serde(default)]
    content_blocks: Option<Vec<ContentPart>>,
    #[serde(default)]
    tool_calls: Option<Vec<ChatToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChatContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    File {
        file: FilePart,
    },
    Refusal {
        refusal: String,
    },
    InputAudio {},
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ImageUrl {
    Object { url: String },
    Url(String),
}

#[derive(Deserialize)]
struct FilePart {
    #[serde(default)]
    file_data: Option<String>,
}

#[derive(Deserialize)]
struct ChatToolCall {
    id: String,
    function: ChatFunctionCall,
}

#[derive(Deserialize)]
struct ChatFunctionCall {
    name: String,
    /// A JSON string per the spec; some clients send the object itself.
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct ChatTool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    function: Option<ChatFunction>,
}

#[derive(Deserialize)]
struct ChatFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChatToolChoice {
    Mode(String),
    Named { function: NamedFunction },
}

#[derive(Deserialize)]
struct NamedFunction {
    name: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Translates an OpenAI chat request body into a Messages request for `slug`. `max_output_tokens`
/// is the model's configured cap, used when the request sets none.
pub fn to_messages_request(
    body: &[u8],
    slug: &str,
    max_output_tokens: Option<u64>,
    stream: bool,
) -> Result<MessagesRequest, ConvertError> {
    let chat: ChatRequest =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid chat request: {e}")))?;

    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::with_capacity(chat.messages.len());
    // Whether the last turn pushed holds only tool results, so the next one joins it.
    let mut last_is_tool_results = false;
    for message in chat.messages {
        let is_tool = message.role == "tool";
        match message.role.as_str() {
            "system" | "developer" => system.extend(system_texts(message)?),
            "user" => messages.push(Message {
                role: Role::User,
                content: user_content(message)?,
            }),
            "assistant" => messages.push(Message {
                role: Role::Assistant,
                content: assistant_content(message)?,
            }),
            "tool" => {
                let result = tool_result(message)?;
                match messages.last_mut() {
                    Some(Message {
                        content: MessageContent::Blocks(blocks),
                        ..
                    }) if last_is_tool_results => blocks.push(result),
                    _ => messages.push(Message {
                        role: Role::User,
                        content: MessageContent::Blocks(vec![result]),
                    }),
                }
            }
            other => return Err(invalid(format!("unsupported message role `{other}`"))),
        }
        last_is_tool_results = is_tool;
    }

    let system = match system.len() {
        0 => None,
        1 => system.pop().map(System::Text),
        _ => Some(System::Blocks(
            system.into_iter().map(TextBlock::new).collect(),
        )),
    };
    let tools = chat
        .tools
        .map(|tools| tools.into_iter().map(tool).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .filter(|tools| !tools.is_empty());
    let tool_choice = match &tools {
        Some(_) => tool_choice(chat.tool_choice, chat.parallel_tool_calls)?,
        // Without tools the Messages API refuses a `tool_choice`.
        None => None,
    };
    let stop_sequences = chat
        .stop
        .map(|stop| match stop {
            Stop::One(one) => vec![one],
            Stop::Many(many) => many,
        })
        .filter(|stops| !stops.is_empty());

    Ok(MessagesRequest {
        model: slug.to_owned(),
        messages,
        system,
        max_tokens: chat
            .max_completion_tokens
            .or(chat.max_tokens)
            .or(max_output_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences,
        tools,
        tool_choice,
        metadata: chat.user.map(|user_id| Metadata { user_id }),
        stream,
    })
}

/// A system or developer message: each text part becomes one system text.
fn system_texts(message: ChatMessage) -> Result<Vec<String>, ConvertError> {
    let mut texts = Vec::new();
    for part in parts(message.content, message.content_blocks) {
        match part {
            ContentPart::Text { text } => texts.push(text),
            _ => return Err(invalid("system messages may only contain text")),
        }
    }
    Ok(texts)
}

fn user_content(message: ChatMessage) -> Result<MessageContent, ConvertError> {
    if let (Some(ChatContent::Text(text)), None) = (&message.content, &message.content_blocks) {
        return Ok(MessageContent::Text(text.clone()));
    }
    let blocks = parts(message.content, message.content_blocks)
        .into_iter()
        .map(user_block)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MessageContent::Blocks(blocks))
}

fn assistant_content(message: ChatMessage) -> Result<MessageContent, ConvertError> {
    let calls = message.tool_calls.unwrap_or_default();
    if let (Some(ChatContent::Text(text)), None, true) =
        (&message.content, &message.content_blocks, calls.is_empty())
    {
        return Ok(MessageContent::Text(text.clone()));
    }
    let mut blocks = Vec::new();
    for part in parts(message.content, message.content_blocks) {
        let text = match part {
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => text,
            _ => {
                return Err(invalid(
                    "assistant messages may only contain text and tool calls",
                ))
            }
        };
        // The Messages API refuses empty text blocks (OpenAI clients send `""` beside tool calls).
        if !text.is_empty() {
            blocks.push(ContentBlock::Text { text });
        }
    }
    for call in calls {
        blocks.push(ContentBlock::ToolUse {
            input: tool_input(&call.function.name, call.function.arguments)?,
            id: call.id,
            name: call.function.name,
        });
    }
    Ok(MessageContent::Blocks(blocks))
}

/// A tool call's `arguments` (a JSON string) as the `input` object.
fn tool_input(name: &str, arguments: Value) -> Result<Value, ConvertError> {
    match arguments {
        Value::String(text) if text.trim().is_empty() => Ok(json!({})),
        Value::String(text) => serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "the arguments of the call to `{name}` are not valid JSON: {e}"
            ))
        }),
        Value::Null => Ok(json!({})),
        object @ Value::Object(_) => Ok(object),
        _ => Err(invalid(format!(
            "the arguments of the call to `{name}` must be a JSON string"
        ))),
    }
}

fn tool_result(message: ChatMessage) -> Result<ContentBlock, ConvertError> {
    let tool_use_id = message
        .tool_call_id
        .ok_or_else(|| invalid("tool messages need a `tool_call_id`"))?;
    let mut content = String::new();
    for part in parts(message.content, message.content_blocks) {
        match part {
            ContentPart::Text { text } => content.push_str(&text),
            _ => return Err(invalid("tool messages may only contain text")),
        }
    }
    Ok(ContentBlock::ToolResult {
        tool_use_id,
        content,
    })
}

/// A message's `content` then its `content_blocks`, as parts.
fn parts(content: Option<ChatContent>, blocks: Option<Vec<ContentPart>>) -> Vec<ContentPart> {
    let mut parts = match content {
        None => Vec::new(),
        Some(ChatContent::Text(text)) => vec![ContentPart::Text { text }],
        Some(ChatContent::Parts(parts)) => parts,
    };
    parts.extend(blocks.into_iter().flatten());
    parts
}

fn user_block(part: ContentPart) -> Result<ContentBlock, ConvertError> {
    match part {
        ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
            Ok(ContentBlock::Text { text })
        }
        ContentPart::ImageUrl { image_url } => {
            let url = match image_url {
                ImageUrl::Object { url } | ImageUrl::Url(url) => url,
            };
            Ok(ContentBlock::Image {
                source: source(url)?,
            })
        }
        ContentPart::File { file } => {
            let data = file.file_data.ok_or_else(|| {
                invalid("file ids cannot be sent to Anthropic models; send `file_data`")
            })?;
            Ok(ContentBlock::Document {
                source: data_url(&data)?,
            })
        }
        ContentPart::InputAudio {} => Err(invalid("Anthropic models do not take audio input")),
        ContentPart::Other => Err(invalid("unsupported content part type")),
    }
}

/// An image URL as a source: inline for `data:` URLs, by reference for `http(s)` ones.
fn source(url: String) -> Result<Source, ConvertError> {
    if url.starts_with("data:") {
        return data_url(&url);
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Source::Url { url });
    }
    Err(invalid("image URLs must be data: or http(s): URLs"))
}

/// `data:<media type>[;params];base64,<data>` as a base64 source.
fn data_url(url: &str) -> Result<Source, ConvertError> {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| {
            let mut params = meta.split(';');
            let media_type = params.next().filter(|m| !m.is_empty())?;
            params
                .any(|p| p.eq_ignore_ascii_case("base64"))
                .then_some((media_type, data))
        });
    match parsed {
        Some((media_type, data)) => Ok(Source::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        }),
        None => Err(invalid(
            "data URLs must look like data:<media type>;base64,<data>",
        )),
    }
}

fn tool(tool: ChatTool) -> Result<Tool, ConvertError> {
    match (tool.kind.as_deref(), tool.function) {
        (None | Some("function"), Some(function)) => Ok(Tool {
            name: function.name,
            description: function.description,
            input_schema: function
                .parameters
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        }),
        (Some(kind), _) if kind != "function" => Err(invalid(format!(
            "tools of type `{kind}` cannot be sent to Anthropic models"
        ))),
        _ => Err(invalid("function tools need a `function`")),
    }
}

fn tool_choice(
    choice: Option<ChatToolChoice>,
    parallel_tool_calls: Option<bool>,
) -> Result<Option<ToolChoice>, ConvertError> {
    let disable_parallel_tool_use = (parallel_tool_calls == Some(false)).then_some(true);
    Ok(match choice {
        None if disable_parallel_tool_use.is_some() => Some(ToolChoice::Auto {
            disable_parallel_tool_use,
        }),
        None => None,
        Some(ChatToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Some(ToolChoice::Auto {
                disable_parallel_tool_use,
            }),
            "required" => Some(ToolChoice::Any {
                disable_parallel_tool_use,
            }),
            "none" => Some(ToolChoice::None),
            other => return Err(invalid(format!("unsupported tool_choice `{other}`"))),
        },
        Some(ChatToolChoice::Named { function }) => Some(ToolChoice::Tool {
            name: function.name,
            disable_parallel_tool_use,
        }),
    })
}

/// Anthropic's `stop_reason` in OpenAI `finish_reason` words.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything new.
        _ => "stop",
    }
}

/// A unary Messages answer as an OpenAI `chat.completion` for the Odock model `model_name`.
pub fn to_chat_completion(response: &MessagesResponse, model_name: &str, created: u64) -> Value {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in &response.content {
        match block {
            ContentBlock::Text { text: part } => text.push_str(part),
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let tokens = token_usage(&response.usage).unwrap_or_default();
    json!({
        "id": response.id,
        "object": "chat.completion",
        "created": created,
        "model": model_name,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(response.stop_reason.as_deref()),
        }],
        "usage": openai_usage(&tokens),
    })
}

/// The message of an upstream error answer: the API's `error.message`, else the body's text.
pub fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(ErrorResponse { error }) = serde_json::from_slice::<ErrorResponse>(body) {
        if !error.message.is_empty() {
            return error.message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("HTTP {status}");
    }
    // Enough to diagnose; an HTML error page is not worth relaying whole.
    text.chars().take(512).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT_REQUEST: &str = include_str!("fixtures/chat_request.json");
    const MESSAGES_REQUEST: &str = include_str!("fixtures/messages_request.json");
    const MESSAGE: &str = include_str!("fixtures/message.json");
    const CHAT_COMPLETION: &str = include_str!("fixtures/chat_completion.json");

    fn convert(body: Value) -> Result<Value, ConvertError> {
        to_messages_request(body.to_string().as_bytes(), "claude-x", None, false)
            .map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn golden_openai_request_becomes_the_expected_messages_request() {
        let request =
            to_messages_request(CHAT_REQUEST.as_bytes(), "claude-sonnet-4-5", None, true).unwrap();
        let expected: Value = serde_json::from_str(MESSAGES_REQUEST).unwrap();
        assert_eq!(serde_json::to_value(&request).unwrap(), expected);
    }

    #[test]
    fn golden_message_becomes_the_expected_chat_completion() {
        let response: MessagesResponse = serde_json::from_str(MESSAGE).unwrap();
        let completion = to_chat_completion(&response, "claude", 1_760_000_000);
        let expected: Value = serde_json::from_str(CHAT_COMPLETION).unwrap();
        assert_eq!(completion, expected);
    }

    #[test]
    fn max_tokens_comes_from_the_request_then_the_model_then_the_default() {
        let body = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body.to_string()
        };
        let max = |body: String, cap: Option<u64>| {
            to_messages_request(body.as_bytes(), "s", cap, false)
                .unwrap()
                .max_tokens
        };
        assert_eq!(
            max(
                body(json!({"max_tokens": 10, "max_completion_tokens": 20})),
                Some(5)
            ),
            20
        );
        assert_eq!(max(body(json!({"max_tokens": 10})), Some(5)), 10);
        assert_eq!(max(body(json!({})), Some(5)), 5);
        assert_eq!(max(body(json!({"max_tokens": null})), None), 4096);
    }

    #[test]
    fn plain_text_turns_stay_strings_and_unary_requests_omit_stream() {
        let out = convert(json!({"messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ], "stop": "END"}))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "claude-x",
                "system": "Be terse.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"}
                ],
                "max_tokens": 4096,
                "stop_sequences": ["END"]
            })
        );
    }

    #[test]
    fn tool_choices_map_to_anthropic_modes() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let choice = |choice: Value, parallel: Value| {
            convert(json!({"messages": [], "tools": tools, "tool_choice": choice, "parallel_tool_calls": parallel}))
                .unwrap()["tool_choice"]
                .clone()
        };
        assert_eq!(choice(json!("auto"), Value::Null), json!({"type": "auto"}));
        assert_eq!(choice(json!("none"), Value::Null), json!({"type": "none"}));
        assert_eq!(
            choice(json!("required"), Value::Null),
            json!({"type": "any"})
        );
        assert_eq!(
            choice(
                json!({"type": "function", "function": {"name": "f"}}),
                json!(false)
            ),
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            choice(Value::Null, json!(false)),
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(choice(Value::Null, json!(true)), Value::Null);
        // A parameterless function still gets the object schema Anthropic requires.
        let out = convert(json!({"messages": [], "tools": tools})).unwrap();
        assert_eq!(
            out["tools"],
            json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
        );
        // No tools: no tool_choice either.
        assert!(convert(json!({"messages": [], "tool_choice": "auto"}))
            .unwrap()
            .get("tool_choice")
            .is_none());
    }

    #[test]
    fn what_anthropic_cannot_express_is_refused_as_a_client_error() {
        let refused = [
            json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}),
            json!({"messages": [{"role": "tool", "content": "orphan"}]}),
            json!({"messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            json!({"messages": "not a list"}),
        ];
        for body in refused {
            assert!(convert(body.clone()).is_err(), "{body}");
        }
    }

    #[test]
    fn finish_reasons_use_openai_words() {
        for (stop, finish) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (Some("pause_turn"), "stop"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(stop), finish, "{stop:?}");
        }
    }

    #[test]
    fn a_text_only_answer_has_no_tool_calls_member() {
        let response: MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 2}
        }))
        .unwrap();
        let out = to_chat_completion(&response, "m", 1);
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hi there"})
        );
        assert_eq!(out["usage"]["total_tokens"], 5);
    }

    #[test]
    fn error_messages_come_from_the_error_body() {
        assert_eq!(
            error_message(
                429,
                br#"{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}"#
            ),
            "Slow down"
        );
        assert_eq!(
            error_message(502, b" <html>bad</html> "),
            "<html>bad</html>"
        );
        assert_eq!(error_message(503, b""), "HTTP 503");
    }
}
