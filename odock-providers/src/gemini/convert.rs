//! OpenAI chat completions ⇄ Gemini `generateContent`, for `/v1/llm/chat`.
//!
//! **Request** ([`to_generate_content`]), OpenAI → Gemini:
//!
//! | OpenAI chat                                   | Gemini                                               |
//! |-----------------------------------------------|------------------------------------------------------|
//! | `system` / `developer` messages               | `systemInstruction.parts[].text`                     |
//! | `user` / `assistant` messages                 | `contents[]` with role `user` / `model`              |
//! | text parts                                    | `{text}` (empty text is dropped: Gemini rejects it)  |
//! | `image_url` / `file` / `input_audio` (data)   | `{inlineData: {mimeType, data}}`                     |
//! | `image_url` with any other URL, `file_id`     | `{fileData: {fileUri, mimeType?}}`                   |
//! | assistant `tool_calls`                        | `{functionCall: {name, args}}`                       |
//! | `tool` messages                               | `{functionResponse: {name, response}}` in a user turn|
//! | `tools` (function tools)                      | `tools: [{functionDeclarations}]`                    |
//! | `tool_choice`                                 | `toolConfig.functionCallingConfig`                   |
//! | `response_format`                             | `generationConfig.responseMimeType` / `responseSchema`|
//! | `max_completion_tokens` / `max_tokens`        | `generationConfig.maxOutputTokens`                   |
//! | `temperature`, `top_p`, `stop`, `n`, `seed`, penalties | the matching `generationConfig` members     |
//!
//! A tool result's `name` comes from the assistant tool call with the same id (the latest one, so
//! ids reused across turns resolve to the call they answer); its `response` is the content when it
//! parses as a JSON object, else `{"content": "<text>"}`. Consecutive turns of one role are merged
//! into one turn, so parallel tool results answer their calls together and Gemini surfaces that
//! insist on alternating roles accept the conversation. Gemini's thought signatures travel with
//! tool calls as `extra_content.google.thought_signature` (the convention of Google's own
//! OpenAI-compatible endpoint) and are sent back on the calls they came with.
//!
//! JSON schemas (tool parameters, `json_schema` response formats) are rewritten into Gemini's
//! OpenAPI-subset `Schema` by [`gemini_schema`].
//!
//! **Response** ([`to_chat_completion`]), Gemini → OpenAI: one choice per candidate; text parts
//! joined into `content`, thought parts into `reasoning_content`, function calls into `tool_calls`
//! (ids `call_<n>` unless Gemini gave one, arguments the JSON text of `args`); finish reasons by
//! [`finish_reason`]; usage from `usageMetadata` (see `super::usage`).

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::usage::usage_from_value;
use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionCallingMode,
    FunctionDeclaration, FunctionResponse, GenerateContentRequest, GenerateContentResponse,
    GenerationConfig, Part, Tool, ToolConfig,
};

/// The client's request cannot be expressed for Gemini (or is not a valid chat request). It is
/// answered with 400 `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest(pub String);

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn invalid(message: impl Into<String>) -> InvalidRequest {
    InvalidRequest(message.into())
}

/// The members of an OpenAI chat request the translation reads; the rest (`model`, `stream`,
/// `stream_options`, `metadata`, `provider`, …) is the gateway's business or has no Gemini
/// equivalent.
#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    tools: Option<Vec<ChatTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    response_format: Option<Value>,
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
    n: Option<u64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<MessageContent>,
    /// Odock's extra content carrier on `/v1/llm/chat`: parts in the OpenAI shape.
    #[serde(default)]
    content_blocks: Option<Vec<Value>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChatToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MessageContent {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Deserialize)]
struct ChatToolCall {
    #[serde(default)]
    id: Option<String>,
    function: ChatFunctionCall,
    #[serde(default)]
    extra_content: Option<Value>,
}

#[derive(Deserialize)]
struct ChatFunctionCall {
    name: String,
    /// A JSON string (OpenAI); an object is accepted too.
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct ChatTool {
    #[serde(rename = "type")]
    kind: String,
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

const USER: &str = "user";
const MODEL: &str = "model";

/// Translates an OpenAI chat-completions body into a `GenerateContentRequest`.
pub fn to_generate_content(body: &[u8]) -> Result<GenerateContentRequest, InvalidRequest> {
    let chat: ChatRequest =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid chat request: {e}")))?;

    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Tool call id → function name, as of the message being translated.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (index, message) in chat.messages.into_iter().enumerate() {
        let (role, parts) = match message.role.as_str() {
            "system" | "developer" => {
                for part in message_parts(&message)? {
                    match part.text {
                        Some(text) => system.push(Part::text(text)),
                        None => {
                            return Err(invalid(format!(
                                "messages[{index}]: system messages may only hold text"
                            )))
                        }
                    }
                }
                continue;
            }
            "user" => (USER, message_parts(&message)?),
            "assistant" => {
                let mut parts = message_parts(&message)?;
                for call in message.tool_calls.iter().flatten() {
                    if let Some(id) = &call.id {
                        call_names.insert(id.clone(), call.function.name.clone());
                    }
                    parts.push(function_call_part(call, index)?);
                }
                (MODEL, parts)
            }
            "tool" | "function" => {
                let name = message
                    .tool_call_id
                    .as_ref()
                    .and_then(|id| call_names.get(id).cloned())
                    .or_else(|| message.name.clone())
                    .ok_or_else(|| {
                        invalid(format!(
                            "messages[{index}]: no earlier assistant tool call has the id {:?}",
                            message.tool_call_id.as_deref().unwrap_or_default()
                        ))
                    })?;
                let text = message_text(&message, index)?;
                let part = Part {
                    function_response: Some(FunctionResponse {
                        name,
                        response: function_response(&text),
                    }),
                    ..Part::default()
                };
                (USER, vec![part])
            }
            other => {
                return Err(invalid(format!(
                    "messages[{index}]: unsupported role {other:?}"
                )))
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role.to_owned()),
                parts,
            }),
        }
    }
    if contents.is_empty() {
        return Err(invalid(
            "messages must hold at least one user or assistant message with content",
        ));
    }

    let tools = function_declarations(chat.tools.unwrap_or_default())?;
    let tool_config = chat.tool_choice.as_ref().map(tool_config).transpose()?;
    // Without declarations there is nothing to configure (and Gemini may refuse the config).
    let tool_config = tool_config.filter(|_| !tools.is_empty());
    let mut generation_config = GenerationConfig {
        max_output_tokens: chat.max_completion_tokens.or(chat.max_tokens),
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: match chat.stop {
            Some(Stop::One(stop)) => vec![stop],
            Some(Stop::Many(stops)) => stops,
            None => Vec::new(),
        },
        candidate_count: chat.n.filter(|&n| n != 1),
        seed: chat.seed,
        presence_penalty: chat.presence_penalty,
        frequency_penalty: chat.frequency_penalty,
        ..GenerationConfig::default()
    };
    if let Some(format) = &chat.response_format {
        apply_response_format(format, &mut generation_config)?;
    }
    Ok(GenerateContentRequest {
        contents,
        system_instruction: if system.is_empty() {
            None
        } else {
            Some(Content {
                role: None,
                parts: system,
            })
        },
        tools: if tools.is_empty() {
            Vec::new()
        } else {
            vec![Tool {
                function_declarations: tools,
            }]
        },
        tool_config,
        generation_config,
    })
}

/// The parts of a message's `content` and `content_blocks`, without empty text.
fn message_parts(message: &Message) -> Result<Vec<Part>, InvalidRequest> {
    let mut parts = Vec::new();
    match &message.content {
        Some(MessageContent::Text(text)) => parts.push(Part::text(text.clone())),
        Some(MessageContent::Parts(items)) => {
            for item in items {
                parts.extend(content_part(item)?);
            }
        }
        None => {}
    }
    for item in message.content_blocks.iter().flatten() {
        parts.extend(content_part(item)?);
    }
    parts.retain(|part| part.text.as_deref() != Some(""));
    Ok(parts)
}

/// One OpenAI content part. `None` for parts with nothing to send (a refusal echoed back).
fn content_part(item: &Value) -> Result<Option<Part>, InvalidRequest> {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
    let str_at = |pointer: &str| item.pointer(pointer).and_then(Value::as_str);
    match kind {
        "text" => {
            let text = str_at("/text").ok_or_else(|| invalid("a text part needs `text`"))?;
            Ok(Some(Part::text(text)))
        }
        "refusal" => Ok(None),
        "image_url" => {
            let url = str_at("/image_url/url")
                .or_else(|| str_at("/image_url"))
                .ok_or_else(|| invalid("an image_url part needs `image_url.url`"))?;
            media_part(url).map(Some)
        }
        "input_audio" => {
            let data = str_at("/input_audio/data")
                .ok_or_else(|| invalid("an input_audio part needs `input_audio.data`"))?;
            let format = str_at("/input_audio/format").unwrap_or("wav");
            Ok(Some(Part {
                inline_data: Some(Blob {
                    mime_type: format!("audio/{format}"),
                    data: data.to_owned(),
                }),
                ..Part::default()
            }))
        }
        "file" => {
            if let Some(data) = str_at("/file/file_data") {
                media_part(data).map(Some)
            } else if let Some(id) = str_at("/file/file_id") {
                Ok(Some(Part {
                    file_data: Some(FileData {
                        mime_type: None,
                        file_uri: id.to_owned(),
                    }),
                    ..Part::default()
                }))
            } else {
                Err(invalid(
                    "a file part needs `file.file_data` or `file.file_id`",
                ))
            }
        }
        other => Err(invalid(format!(
            "content parts of type {other:?} cannot be sent to Gemini models"
        ))),
    }
}

/// A `data:` URL as inline data; any other URL as file data the upstream fetches.
fn media_part(url: &str) -> Result<Part, InvalidRequest> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid("malformed data URL"))?;
        let mut params = meta.split(';');
        let mime_type = params.next().unwrap_or_default().trim();
        let base64 = params.any(|p| p.trim().eq_ignore_ascii_case("base64"));
        if mime_type.is_empty() || !base64 {
            return Err(invalid(
                "data URLs must name a MIME type and be base64-encoded (data:<type>;base64,…)",
            ));
        }
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: mime_type.to_owned(),
                data: data.to_owned(),
            }),
            ..Part::default()
        });
    }
    Ok(Part {
        file_data: Some(FileData {
            mime_type: mime_type_of(url).map(str::to_owned),
            file_uri: url.to_owned(),
        }),
        ..Part::default()
    })
}

/// The MIME type a URL's file extension names, for the common media Gemini reads.
fn mime_type_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        "txt" => "text/plain",
        _ => return None,
    })
}

/// The text of a tool result (a string, or text parts joined).
fn message_text(message: &Message, index: usize) -> Result<String, InvalidRequest> {
    match &message.content {
        Some(MessageContent::Text(text)) => Ok(text.clone()),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .map(|part| {
                part.get("text").and_then(Value::as_str).ok_or_else(|| {
                    invalid(format!(
                        "messages[{index}]: tool results may only hold text"
                    ))
                })
            })
            .collect(),
        None => Ok(String::new()),
    }
}

/// A tool result as Gemini's `functionResponse.response` object.
pub fn function_response(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        _ => {
            let mut object = Map::new();
            object.insert("content".to_owned(), Value::String(text.to_owned()));
            object
        }
    }
}

fn function_call_part(call: &ChatToolCall, index: usize) -> Result<Part, InvalidRequest> {
    let args = match &call.function.arguments {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(object)) => object.clone(),
        Some(Value::String(text)) if text.trim().is_empty() => Map::new(),
        Some(Value::String(text)) => match serde_json::from_str(text) {
            Ok(Value::Object(object)) => object,
            _ => {
                return Err(invalid(format!(
                    "messages[{index}]: tool call arguments must be a JSON object"
                )))
            }
        },
        Some(_) => {
            return Err(invalid(format!(
                "messages[{index}]: tool call arguments must be a JSON object"
            )))
        }
    };
    let thought_signature = call
        .extra_content
        .as_ref()
        .and_then(|extra| extra.pointer("/google/thought_signature"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Part {
        function_call: Some(FunctionCall {
            id: None,
            name: call.function.name.clone(),
            args: Some(Value::Object(args)),
        }),
        thought_signature,
        ..Part::default()
    })
}

fn function_declarations(tools: Vec<ChatTool>) -> Result<Vec<FunctionDeclaration>, InvalidRequest> {
    tools
        .into_iter()
        .map(|tool| {
            let function = match (tool.kind.as_str(), tool.function) {
                ("function", Some(function)) => function,
                (kind, _) => {
                    return Err(invalid(format!(
                        "only function tools can be sent to Gemini models, not {kind:?}"
                    )))
                }
            };
            Ok(FunctionDeclaration {
                name: function.name,
                description: function.description,
                parameters: function
                    .parameters
                    .as_ref()
                    .map(gemini_schema)
                    // Gemini rejects an OBJECT schema without properties: a function without
                    // parameters is declared without `parameters`.
                    .filter(|schema| {
                        schema
                            .get("properties")
                            .and_then(Value::as_object)
                            .is_some_and(|properties| !properties.is_empty())
                            || schema.get("type").and_then(Value::as_str) != Some("OBJECT")
                    }),
            })
        })
        .collect()
}

fn tool_config(choice: &Value) -> Result<ToolConfig, InvalidRequest> {
    let config = |mode, names: Vec<String>| ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: names,
        },
    };
    let function_names = |tools: Option<&Value>| -> Vec<String> {
        tools
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|tool| tool.pointer("/function/name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    };
    match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(config(FunctionCallingMode::Auto, Vec::new())),
            "none" => Ok(config(FunctionCallingMode::None, Vec::new())),
            "required" => Ok(config(FunctionCallingMode::Any, Vec::new())),
            other => Err(invalid(format!("unsupported tool_choice {other:?}"))),
        },
        Value::Object(object) => match object.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = choice
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("tool_choice.function.name is required"))?;
                Ok(config(FunctionCallingMode::Any, vec![name.to_owned()]))
            }
            Some("allowed_tools") => {
                let allowed = choice.get("allowed_tools");
                let mode = allowed.and_then(|a| a.get("mode")).and_then(Value::as_str);
                let names = function_names(allowed.and_then(|a| a.get("tools")));
                match mode {
                    Some("required") => Ok(config(FunctionCallingMode::Any, names)),
                    // Gemini restricts function names only when a call is required.
                    _ => Ok(config(FunctionCallingMode::Auto, Vec::new())),
                }
            }
            _ => Err(invalid("unsupported tool_choice")),
        },
        Value::Null => Ok(config(FunctionCallingMode::Auto, Vec::new())),
        _ => Err(invalid("unsupported tool_choice")),
    }
}

fn apply_response_format(
    format: &Value,
    config: &mut GenerationConfig,
) -> Result<(), InvalidRequest> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(()),
        Some("json_object") => {
            config.response_mime_type = Some("application/json".to_owned());
            Ok(())
        }
        Some("json_schema") => {
            config.response_mime_type = Some("application/json".to_owned());
            config.response_schema = format.pointer("/json_schema/schema").map(gemini_schema);
            Ok(())
        }
        _ => Err(invalid("unsupported response_format")),
    }
}

/// How deep `$ref`s are followed before a recursive schema is cut off.
const MAX_SCHEMA_DEPTH: usize = 16;

/// Schema members Gemini's `Schema` accepts as they are.
const KEPT_SCHEMA_MEMBERS: &[&str] = &[
    "title",
    "description",
    "nullable",
    "enum",
    "required",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "example",
    "default",
    "propertyOrdering",
];

/// `format` values Gemini accepts.
const KEPT_FORMATS: &[&str] = &["enum", "date-time", "int32", "int64", "float", "double"];

/// A JSON Schema rewritten into Gemini's OpenAPI-subset `Schema`: types upper-cased, `["T",
/// "null"]` and `anyOf` with a null branch become `nullable`, `oneOf` becomes `anyOf`, `const`
/// becomes a one-value `enum`, local `$ref`s (`#/$defs/…`, `#/definitions/…`) are inlined, and
/// members Gemini rejects (`additionalProperties`, `$schema`, `strict`, unsupported `format`s, …)
/// are dropped.
pub fn gemini_schema(schema: &Value) -> Value {
    convert_schema(schema, schema, 0)
}

fn convert_schema(schema: &Value, root: &Value, depth: usize) -> Value {
    let Some(object) = schema.as_object() else {
        return Value::Object(Map::new());
    };
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Object(Map::new());
    }
    if let Some(target) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| resolve_ref(reference, root))
    {
        let mut resolved = convert_schema(target, root, depth + 1);
        if let (Some(out), Some(description)) =
            (resolved.as_object_mut(), object.get("description"))
        {
            out.insert("description".to_owned(), description.clone());
        }
        return resolved;
    }

    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "type" => match value {
                Value::String(kind) => set_type(&mut out, kind),
                Value::Array(kinds) => {
                    let kinds: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
                    let concrete: Vec<&str> =
                        kinds.iter().copied().filter(|k| *k != "null").collect();
                    if concrete.len() < kinds.len() {
                        out.insert("nullable".to_owned(), Value::Bool(true));
                    }
                    match concrete.as_slice() {
                        [] => {}
                        [kind] => set_type(&mut out, kind),
                        many => {
                            let branches = many.iter().map(|k| json!({"type": upper(k)})).collect();
                            out.insert("anyOf".to_owned(), Value::Array(branches));
                        }
                    }
                }
                _ => {}
            },
            "properties" => {
                if let Some(properties) = value.as_object().filter(|p| !p.is_empty()) {
                    let converted = properties
                        .iter()
                        .map(|(name, property)| {
                            (name.clone(), convert_schema(property, root, depth + 1))
                        })
                        .collect();
                    out.insert(key.clone(), Value::Object(converted));
                }
            }
            "items" => {
                out.insert(key.clone(), convert_schema(value, root, depth + 1));
            }
            "anyOf" | "oneOf" => {
                let mut branches = Vec::new();
                for branch in value.as_array().into_iter().flatten() {
                    if branch.get("type").and_then(Value::as_str) == Some("null") {
                        out.insert("nullable".to_owned(), Value::Bool(true));
                    } else {
                        branches.push(convert_schema(branch, root, depth + 1));
                    }
                }
                match branches.len() {
                    0 => {}
                    1 => {
                        if let Some(Value::Object(only)) = branches.pop() {
                            for (k, v) in only {
                                out.entry(k).or_insert(v);
                            }
                        }
                    }
                    _ => {
                        out.insert("anyOf".to_owned(), Value::Array(branches));
                    }
                }
            }
            "const" => {
                out.insert("enum".to_owned(), Value::Array(vec![value.clone()]));
            }
            "format" if value.as_str().is_some_and(|f| KEPT_FORMATS.contains(&f)) => {
                out.insert(key.clone(), value.clone());
            }
            member if KEPT_SCHEMA_MEMBERS.contains(&member) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

fn set_type(out: &mut Map<String, Value>, kind: &str) {
    if kind == "null" {
        out.insert("nullable".to_owned(), Value::Bool(true));
    } else {
        out.insert("type".to_owned(), Value::String(upper(kind)));
    }
}

fn upper(kind: &str) -> String {
    kind.to_ascii_uppercase()
}

/// A local JSON pointer reference (`#/$defs/Name`) inside `root`.
fn resolve_ref<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    root.pointer(reference.strip_prefix('#')?)
}

/// The pieces of one candidate's parts, in OpenAI terms.
#[derive(Debug, Default, PartialEq)]
pub struct CandidateParts {
    /// The answer text, thinking parts left out.
    pub text: String,
    /// The thinking text (`thought: true` parts), for OpenAI's `reasoning_content`.
    pub reasoning: String,
    /// OpenAI `tool_calls` entries (without `index`).
    pub tool_calls: Vec<Value>,
}

/// Splits `parts` into answer text, thinking text and tool calls. Tool call ids are Gemini's when
/// it gave one, else `call_<n>` with `n` counting from `first_call`.
pub fn candidate_parts(parts: &[Part], first_call: usize) -> CandidateParts {
    let mut out = CandidateParts::default();
    for part in parts {
        if let Some(call) = &part.function_call {
            let n = first_call + out.tool_calls.len();
            out.tool_calls.push(openai_tool_call(call, part, n));
        } else if let Some(text) = &part.text {
            if part.is_thought() {
                out.reasoning.push_str(text);
            } else {
                out.text.push_str(text);
            }
        }
    }
    out
}

fn openai_tool_call(call: &FunctionCall, part: &Part, n: usize) -> Value {
    let arguments = call
        .args
        .as_ref()
        .map_or_else(|| "{}".to_owned(), Value::to_string);
    let mut tool_call = json!({
        "id": call.id.clone().unwrap_or_else(|| format!("call_{n}")),
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    });
    if let (Some(signature), Some(object)) = (&part.thought_signature, tool_call.as_object_mut()) {
        object.insert(
            "extra_content".to_owned(),
            json!({"google": {"thought_signature": signature}}),
        );
    }
    tool_call
}

/// A Gemini `finishReason` in OpenAI's words.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` as an OpenAI `usage` object.
pub fn openai_usage(usage_metadata: &Value) -> Option<Value> {
    let tokens = usage_from_value(usage_metadata.clone())?.tokens;
    Some(json!({
        "prompt_tokens": tokens.input,
        "completion_tokens": tokens.output,
        "total_tokens": tokens.total(),
        "prompt_tokens_details": {"cached_tokens": tokens.cached_input},
        "completion_tokens_details": {"reasoning_tokens": tokens.reasoning},
    }))
}

/// A unary `GenerateContentResponse` as an OpenAI `chat.completion` for `model` (the Odock model
/// name). `id` is used when the upstream gave no `responseId`.
pub fn to_chat_completion(
    response: &GenerateContentResponse,
    model: &str,
    id: &str,
    created: u64,
) -> Value {
    let mut choices: Vec<Value> = response
        .candidates
        .iter()
        .enumerate()
        .map(|(position, candidate)| {
            let parts = candidate
                .content
                .as_ref()
                .map_or(&[][..], |content| &content.parts[..]);
            let CandidateParts {
                text,
                reasoning,
                tool_calls,
            } = candidate_parts(parts, 0);
            let finish = finish_reason(
                candidate.finish_reason.as_deref().unwrap_or("STOP"),
                !tool_calls.is_empty(),
            );
            let mut message = Map::new();
            message.insert("role".to_owned(), json!("assistant"));
            let content =
                if text.is_empty() && (!tool_calls.is_empty() || finish == "content_filter") {
                    Value::Null
                } else {
                    Value::String(text)
                };
            message.insert("content".to_owned(), content);
            if !reasoning.is_empty() {
                message.insert("reasoning_content".to_owned(), Value::String(reasoning));
            }
            if !tool_calls.is_empty() {
                message.insert("tool_calls".to_owned(), Value::Array(tool_calls));
            }
            json!({
                "index": candidate.index.map_or(position as u64, u64::from),
                "message": message,
                "finish_reason": finish,
            })
        })
        .collect();
    if choices.is_empty() {
        // The prompt itself was blocked (`promptFeedback.blockReason`): no candidates at all.
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": null},
            "finish_reason": "content_filter",
        }));
    }
    let mut completion = json!({
        "id": response.response_id.as_deref().unwrap_or(id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    });
    if let (Some(usage), Some(object)) = (
        response.usage_metadata.as_ref().and_then(openai_usage),
        completion.as_object_mut(),
    ) {
        object.insert("usage".to_owned(), usage);
    }
    completion
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNARY: &str = include_str!("fixtures/generate_content.json");
    const CHAT_REQUEST: &str = include_str!("fixtures/chat_request.json");
    const CHAT_REQUEST_GEMINI: &str = include_str!("fixtures/chat_request.gemini.json");
    const UNARY_OPENAI: &str = include_str!("fixtures/generate_content.openai.json");

    fn translate(body: Value) -> Result<Value, InvalidRequest> {
        to_generate_content(body.to_string().as_bytes())
            .map(|request| serde_json::to_value(request).unwrap())
    }

    #[test]
    fn golden_chat_request_translates_to_generate_content() {
        let translated = to_generate_content(CHAT_REQUEST.as_bytes()).unwrap();
        let expected: Value = serde_json::from_str(CHAT_REQUEST_GEMINI).unwrap();
        assert_eq!(serde_json::to_value(translated).unwrap(), expected);
    }

    #[test]
    fn golden_generate_content_translates_to_a_chat_completion() {
        let response: GenerateContentResponse = serde_json::from_str(UNARY).unwrap();
        let completion = to_chat_completion(&response, "odock-gemini", "unused", 1_753_804_512);
        let expected: Value = serde_json::from_str(UNARY_OPENAI).unwrap();
        assert_eq!(completion, expected);
    }

    #[test]
    fn tool_results_become_function_responses_named_after_their_call() {
        let translated = translate(json!({"messages": [
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\": 21, \"sky\": \"clear\"}"},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "14:05"}]},
            {"role": "user", "content": "Thanks"},
            // The same id in a later turn names the later call.
            {"role": "assistant", "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_news", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "[1, 2]"}
        ]}))
        .unwrap();
        let contents = translated["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 5, "{translated:#}");
        assert_eq!(
            contents[1],
            json!({"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]})
        );
        assert_eq!(
            contents[2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21, "sky": "clear"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
                {"text": "Thanks"}
            ]}),
            "parallel results answer their calls in one turn"
        );
        assert_eq!(
            contents[4]["parts"][0],
            json!({"functionResponse": {"name": "get_news", "response": {"content": "[1, 2]"}}})
        );
    }

    #[test]
    fn a_tool_result_for_an_unknown_call_is_rejected() {
        let error = translate(json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "call_9", "content": "x"}
        ]}))
        .unwrap_err();
        assert!(error.0.contains("call_9"), "{error}");
    }

    #[test]
    fn thought_signatures_round_trip_through_tool_calls() {
        let response: GenerateContentResponse = serde_json::from_str(UNARY).unwrap();
        let completion = to_chat_completion(&response, "m", "id", 0);
        let message = completion["choices"][0]["message"].clone();
        let translated = translate(json!({"messages": [
            {"role": "user", "content": "Weather in Zürich?"},
            message,
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\": 18}"}
        ]}))
        .unwrap();
        let original: Value = serde_json::from_str(UNARY).unwrap();
        assert_eq!(
            translated["contents"][1]["parts"], original["candidates"][0]["content"]["parts"],
            "the model turn goes back exactly as Gemini sent it"
        );
    }

    #[test]
    fn media_parts_become_inline_or_file_data() {
        let translated = translate(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": ""},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=large"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
        ], "content_blocks": [{"type": "image_url", "image_url": {"url": "gs://bucket/clip"}}]}]}))
        .unwrap();
        assert_eq!(
            translated["contents"][0]["parts"],
            json!([
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=large"}},
                {"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                {"fileData": {"fileUri": "gs://bucket/clip"}}
            ])
        );
        let error = translate(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
        ]}]}))
        .unwrap_err();
        assert!(error.0.contains("base64"), "{error}");
    }

    #[test]
    fn tool_choice_maps_to_function_calling_modes() {
        let config = |choice: Value| {
            translate(
                json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
                       "tools": [{"type": "function", "function": {"name": "get_weather"}}]}),
            )
            .map(|t| t["toolConfig"]["functionCallingConfig"].clone())
        };
        assert_eq!(config(json!("auto")).unwrap(), json!({"mode": "AUTO"}));
        assert_eq!(config(json!("none")).unwrap(), json!({"mode": "NONE"}));
        assert_eq!(config(json!("required")).unwrap(), json!({"mode": "ANY"}));
        assert_eq!(
            config(json!({"type": "function", "function": {"name": "get_weather"}})).unwrap(),
            json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
        );
        assert_eq!(
            config(
                json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
                "tools": [{"type": "function", "function": {"name": "a"}}]}})
            )
            .unwrap(),
            json!({"mode": "ANY", "allowedFunctionNames": ["a"]})
        );
        assert!(config(json!("sometimes")).is_err());
        let without_tools = translate(
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none"}),
        )
        .unwrap();
        assert!(without_tools.get("toolConfig").is_none());
    }

    #[test]
    fn response_formats_set_the_mime_type_and_schema() {
        let config = |format: Value| {
            translate(
                json!({"messages": [{"role": "user", "content": "x"}], "response_format": format}),
            )
            .map(|t| t["generationConfig"].clone())
        };
        assert_eq!(config(json!({"type": "text"})).unwrap(), Value::Null);
        assert_eq!(
            config(json!({"type": "json_object"})).unwrap(),
            json!({"responseMimeType": "application/json"})
        );
        assert_eq!(
            config(
                json!({"type": "json_schema", "json_schema": {"name": "r", "strict": true,
                "schema": {"type": "object", "properties": {"n": {"type": "integer"}},
                           "required": ["n"], "additionalProperties": false}}})
            )
            .unwrap(),
            json!({"responseMimeType": "application/json", "responseSchema":
                {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]}})
        );
        assert!(config(json!({"type": "yaml"})).is_err());
    }

    #[test]
    fn json_schemas_are_rewritten_into_gemini_schemas() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": {"type": ["string", "null"], "format": "email", "description": "who"},
                "when": {"type": "string", "format": "date-time"},
                "kind": {"const": "event"},
                "size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
                "meta": {"type": "object", "properties": {}, "additionalProperties": true}
            },
            "required": ["name"],
            "$defs": {"Tag": {"type": "object", "properties": {"label": {"type": "string"}}}}
        });
        assert_eq!(
            gemini_schema(&schema),
            json!({
                "type": "OBJECT",
                "properties": {
                    "name": {"type": "STRING", "nullable": true, "description": "who"},
                    "when": {"type": "STRING", "format": "date-time"},
                    "kind": {"enum": ["event"]},
                    "size": {"type": "INTEGER", "nullable": true},
                    "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
                    "tags": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"label": {"type": "STRING"}}}},
                    "meta": {"type": "OBJECT"}
                },
                "required": ["name"]
            })
        );
        // A recursive schema is cut off instead of looping.
        let recursive = json!({"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
                               "$ref": "#/$defs/Node"});
        assert!(gemini_schema(&recursive).to_string().len() < 10_000);
    }

    #[test]
    fn functions_without_parameters_are_declared_without_them() {
        let translated = translate(json!({"messages": [{"role": "user", "content": "x"}], "tools": [
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {"name": "ping"}}
        ]}))
        .unwrap();
        assert_eq!(
            translated["tools"],
            json!([{"functionDeclarations": [{"name": "now"}, {"name": "ping"}]}])
        );
        let error = translate(json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search"}]}))
        .unwrap_err();
        assert!(error.0.contains("web_search"));
    }

    #[test]
    fn requests_without_turns_or_with_unknown_roles_are_rejected() {
        assert!(
            translate(json!({"messages": [{"role": "system", "content": "be brief"}]})).is_err()
        );
        assert!(translate(json!({"messages": [{"role": "robot", "content": "x"}]})).is_err());
        assert!(translate(json!({"messages": "hello"})).is_err());
    }

    #[test]
    fn finish_reasons_use_openai_words() {
        assert_eq!(finish_reason("STOP", false), "stop");
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", true), "length");
        for blocked in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
        ] {
            assert_eq!(finish_reason(blocked, false), "content_filter");
        }
        assert_eq!(finish_reason("OTHER", false), "stop");
    }

    #[test]
    fn a_blocked_prompt_is_a_content_filter_answer() {
        let response: GenerateContentResponse = serde_json::from_value(json!({
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}
        }))
        .unwrap();
        let completion = to_chat_completion(&response, "m", "chatcmpl-x", 1);
        assert_eq!(completion["id"], "chatcmpl-x");
        assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(completion["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(completion["usage"]["prompt_tokens"], 7);
    }

    #[test]
    fn thoughts_are_reasoning_content_and_candidates_are_choices() {
        let response: GenerateContentResponse = serde_json::from_value(json!({"candidates": [
            {"index": 0, "content": {"role": "model", "parts": [
                {"text": "Let me think.", "thought": true}, {"text": "Four."}]}, "finishReason": "STOP"},
            {"index": 1, "content": {"role": "model", "parts": [{"text": "4"}]}, "finishReason": "MAX_TOKENS"}
        ]}))
        .unwrap();
        let completion = to_chat_completion(&response, "m", "id", 1);
        let choices = completion["choices"].as_array().unwrap();
        assert_eq!(choices[0]["message"]["content"], "Four.");
        assert_eq!(choices[0]["message"]["reasoning_content"], "Let me think.");
        assert_eq!(choices[1]["index"], 1);
        assert_eq!(choices[1]["finish_reason"], "length");
        assert!(completion.get("usage").is_none());
    }
}
