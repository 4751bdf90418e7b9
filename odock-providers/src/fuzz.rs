//! Property tests standing in for a fuzzer (cargo-fuzz needs nightly): the SSE parser and the
//! Anthropic and Gemini translations (requests, unary answers, streams) take arbitrary bytes and
//! structured-but-hostile JSON without panicking. Case counts are bounded to keep each property
//! to about a second.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;
use serde_json::Value;

use crate::sse::{self, Event};
use crate::{anthropic, gemini};

/// Field names of the OpenAI, Anthropic and Gemini wire formats, so generated objects reach the
/// translators' paths with the wrong types.
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "text",
    "type",
    "name",
    "tool_calls",
    "tool_call_id",
    "function",
    "arguments",
    "tools",
    "tool_choice",
    "parameters",
    "image_url",
    "url",
    "stop",
    "max_tokens",
    "temperature",
    "stream",
    "response_format",
    "json_schema",
    "schema",
    "id",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "finishReason",
    "usageMetadata",
    "promptTokenCount",
    "index",
    "delta",
    "stop_reason",
    "usage",
    "input_tokens",
    "message",
    "content_block",
    "partial_json",
    "error",
    "system",
    "properties",
    "items",
    "anyOf",
    "$ref",
    "",
];

fn hostile_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("false".to_owned()),
        Just("-0".to_owned()),
        Just("1e400".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("\"\\udfff\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| if n.is_finite() {
            n.to_string()
        } else {
            "1".into()
        }),
        any::<String>().prop_map(|s| Value::String(s).to_string()),
        prop::sample::select(
            &[
                "user",
                "assistant",
                "system",
                "tool",
                "function",
                "text",
                "image_url",
                "tool_use",
                "tool_result",
                "message_start",
                "content_block_delta",
                "input_json_delta",
                "STOP",
                "MAX_TOKENS",
                "SAFETY"
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned()).to_string()),
    ];
    leaf.prop_recursive(6, 80, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(
                |members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", Value::String(k.to_owned())))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }
            ),
        ]
    })
}

/// A value that is usually what the field expects and sometimes anything at all.
fn or_hostile(usual: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        12 => usual,
        1 => hostile_json().prop_map(|j| serde_json::from_str(&j).unwrap_or(Value::Null)),
    ]
    .boxed()
}

fn small_text() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("{\"a\":1}".to_owned())
    ]
    .prop_map(Value::String)
    .boxed()
}

fn index() -> BoxedStrategy<Value> {
    prop_oneof![0u64..4, Just(u64::MAX), Just(1u64 << 53)]
        .prop_map(Value::from)
        .boxed()
}

/// OpenAI chat requests with every feature the translators handle, values sometimes hostile.
fn chat_request() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        small_text().prop_map(|t| serde_json::json!({"type": "text", "text": t})),
        small_text()
            .prop_map(|u| serde_json::json!({"type": "image_url", "image_url": {"url": u}})),
        Just(
            serde_json::json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
        ),
        Just(
            serde_json::json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})
        ),
    ];
    let content = or_hostile(
        prop_oneof![
            small_text(),
            prop::collection::vec(part, 0..3).prop_map(Value::from),
            Just(Value::Null),
        ]
        .boxed(),
    );
    // Tool-call ids from a small pool, so tool results often answer an earlier call.
    let call_id = || prop::sample::select(&["c1", "c2", "c3"][..]).prop_map(Value::from);
    let arguments = or_hostile(
        prop_oneof![
            Just(Value::from("{}")),
            Just(Value::from("{\"q\":\"x\",\"n\":[1,2]}")),
            small_text()
        ]
        .boxed(),
    );
    let tool_call = (call_id(), small_text(), arguments).prop_map(|(id, name, args)| {
        serde_json::json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
    });
    let message = prop_oneof![
        4 => small_text().prop_map(|t| serde_json::json!({"role": "system", "content": t})),
        4 => content.clone().prop_map(|c| serde_json::json!({"role": "user", "content": c})),
        4 => (content, proptest::option::of(prop::collection::vec(tool_call, 1..3))).prop_map(
            |(c, calls)| {
                let mut m = serde_json::json!({"role": "assistant", "content": c});
                if let Some(calls) = calls {
                    m["tool_calls"] = Value::from(calls);
                }
                m
            }
        ),
        4 => (call_id(), small_text()).prop_map(
            |(id, c)| serde_json::json!({"role": "tool", "tool_call_id": id, "content": c})
        ),
        1 => or_hostile(Just(serde_json::json!({"role": "x"})).boxed()),
    ];
    let tool = (small_text(), or_hostile(Just(serde_json::json!({"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]}, "b": {"anyOf": [{"type": "integer"}, {"$ref": "#/x"}]}}, "required": ["a"], "additionalProperties": false})).boxed()))
        .prop_map(|(name, parameters)| serde_json::json!({"type": "function", "function": {"name": name, "parameters": parameters}}));
    (
        prop::collection::vec(message, 0..6).prop_map(|mut messages| {
            messages.insert(0, serde_json::json!({"role": "user", "content": "hello"}));
            messages
        }),
        proptest::option::of(prop::collection::vec(tool, 0..3)),
        or_hostile(prop_oneof![Just(Value::Null), Just(Value::from("auto")), Just(Value::from("required")), Just(serde_json::json!({"type": "function", "function": {"name": "f"}}))].boxed()),
        or_hostile(prop_oneof![Just(Value::Null), small_text(), Just(serde_json::json!(["a", "b"]))].boxed()),
        or_hostile(prop_oneof![Just(Value::Null), (0u64..100_000).prop_map(Value::from).boxed()].boxed()),
        or_hostile(prop_oneof![Just(Value::Null), Just(serde_json::json!({"type": "json_object"})), Just(serde_json::json!({"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}))].boxed()),
    )
        .prop_map(|(messages, tools, choice, stop, max_tokens, format)| {
            let mut request = serde_json::json!({
                "model": "m", "messages": messages, "tool_choice": choice, "stop": stop,
                "max_tokens": max_tokens, "response_format": format, "temperature": 0.5,
            });
            if let Some(tools) = tools {
                request["tools"] = Value::from(tools);
            }
            serde_json::to_vec(&request).unwrap_or_default()
        })
}

/// Anthropic stream events shaped like the real ones, indexes and values sometimes hostile.
fn anthropic_events() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let event = prop_oneof![
        (small_text(), index()).prop_map(|(id, n)| ("message_start", serde_json::json!({"type": "message_start", "message": {"id": id, "usage": {"input_tokens": n, "output_tokens": 1}}}))),
        (index(), prop::sample::select(&["text", "tool_use", "thinking", "x"][..]), small_text()).prop_map(|(i, kind, name)| ("content_block_start", serde_json::json!({"type": "content_block_start", "index": i, "content_block": {"type": kind, "id": "t1", "name": name, "text": ""}}))),
        (index(), prop::sample::select(&["text_delta", "input_json_delta", "thinking_delta"][..]), small_text()).prop_map(|(i, kind, t)| ("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": i, "delta": {"type": kind, "text": t, "partial_json": t, "thinking": t}}))),
        index().prop_map(|i| ("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": i}))),
        (or_hostile(small_text()), index()).prop_map(|(reason, n)| ("message_delta", serde_json::json!({"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": n}}))),
        Just(("message_stop", serde_json::json!({"type": "message_stop"}))),
        Just(("error", serde_json::json!({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}))),
    ];
    prop::collection::vec(event, 0..12).prop_map(|events| {
        events
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    })
}

/// Gemini stream events shaped like the real ones.
fn gemini_events() -> impl Strategy<Value = Vec<String>> {
    let part = prop_oneof![
        small_text().prop_map(|t| serde_json::json!({"text": t})),
        (
            small_text(),
            or_hostile(Just(serde_json::json!({"a": 1})).boxed())
        )
            .prop_map(|(n, a)| serde_json::json!({"functionCall": {"name": n, "args": a}})),
        Just(serde_json::json!({"thought": true, "text": "hm"})),
    ];
    let candidate = (index(), prop::collection::vec(part, 0..3), proptest::option::of(prop::sample::select(&["STOP", "MAX_TOKENS", "SAFETY", "OTHER"][..])))
        .prop_map(|(i, parts, finish)| serde_json::json!({"index": i, "content": {"role": "model", "parts": parts}, "finishReason": finish}));
    let event = (prop::collection::vec(candidate, 0..3), or_hostile(Just(serde_json::json!({"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7, "thoughtsTokenCount": 1})).boxed()), proptest::option::of(small_text()))
        .prop_map(|(candidates, usage, id)| serde_json::json!({"candidates": candidates, "usageMetadata": usage, "responseId": id}).to_string());
    prop::collection::vec(event, 0..8)
}

fn event(kind: &str, data: String) -> Event {
    Event {
        event: Some(kind.to_owned()),
        data,
        id: None,
        retry: None,
    }
}

const ANTHROPIC_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "message",
    "",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_sse_parser_takes_any_bytes_in_any_chunks(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(0usize..2048, 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c < bytes.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            chunks.push(Ok::<_, reqwest::Error>(Bytes::copy_from_slice(&bytes[start..cut])));
            start = cut;
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let events: Vec<_> = runtime.block_on(
            sse::events(futures::stream::iter(chunks), Duration::from_secs(5)).collect(),
        );
        // At most one error, and it is the last item.
        let errors = events.iter().filter(|e| e.is_err()).count();
        prop_assert!(errors <= 1);
        if errors == 1 {
            prop_assert!(events.last().is_some_and(Result::is_err));
        }
        for event in events.into_iter().flatten() {
            let _ = sse::encode_event(&event);
        }
    }

    #[test]
    fn anthropic_translation_takes_any_request(
        json in hostile_json(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        cap in proptest::option::of(any::<u64>()),
        stream in any::<bool>(),
    ) {
        let wrapped = format!("{{\"model\":\"m\",\"messages\":{json},\"tools\":{json},\"stop\":{json}}}");
        for body in [json.as_bytes(), wrapped.as_bytes(), &bytes[..]] {
            if let Ok(request) = anthropic::convert::to_messages_request(body, "claude", cap, stream) {
                let _ = serde_json::to_vec(&request);
            }
        }
    }

    #[test]
    fn anthropic_answers_and_streams_never_panic(
        json in hostile_json(),
        events in prop::collection::vec((prop::sample::select(ANTHROPIC_EVENTS), hostile_json()), 0..8),
        status in any::<u16>(),
    ) {
        let _ = anthropic::convert::error_message(status, json.as_bytes());
        if let Ok(response) = serde_json::from_str::<anthropic::wire::MessagesResponse>(&json) {
            let _ = anthropic::convert::to_chat_completion(&response, "m", 0);
        }
        let mut translator = anthropic::stream::ChunkTranslator::new("m", 0, true);
        let mut relay = anthropic::stream::NativeRelay::new();
        for (kind, data) in events {
            let event = event(kind, data);
            let _ = relay.chunk(&event);
            if translator.translate(&event).is_err() {
                break;
            }
        }
        let _ = translator.finish();
    }

    #[test]
    fn gemini_translation_takes_any_request(
        json in hostile_json(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        text in any::<String>(),
    ) {
        let wrapped = format!("{{\"model\":\"m\",\"messages\":{json},\"tools\":{json},\"response_format\":{json}}}");
        for body in [json.as_bytes(), wrapped.as_bytes(), &bytes[..]] {
            if let Ok(request) = gemini::convert::to_generate_content(body) {
                let _ = serde_json::to_vec(&request);
            }
        }
        let _ = gemini::convert::function_response(&text);
        let _ = gemini::convert::function_response(&json);
        if let Ok(value) = serde_json::from_str::<Value>(&json) {
            let _ = gemini::convert::gemini_schema(&value);
            let _ = gemini::convert::openai_usage(&value);
        }
    }

    #[test]
    fn structured_chat_requests_translate_without_panics(body in chat_request(), cap in proptest::option::of(0u64..1_000_000)) {
        if let Ok(request) = anthropic::convert::to_messages_request(&body, "claude", cap, true) {
            prop_assert!(serde_json::to_vec(&request).is_ok());
        }
        if let Ok(request) = gemini::convert::to_generate_content(&body) {
            prop_assert!(serde_json::to_vec(&request).is_ok());
        }
    }

    #[test]
    fn structured_streams_translate_without_panics(anthropic_stream in anthropic_events(), gemini_stream in gemini_events()) {
        let mut translator = anthropic::stream::ChunkTranslator::new("m", 0, true);
        for (kind, data) in anthropic_stream {
            if translator.translate(&event(kind, data)).is_err() {
                break;
            }
        }
        let _ = translator.finish();
        let mut translator = gemini::stream::ChunkTranslator::new("id".into(), "m".into(), 0, false);
        for data in &gemini_stream {
            if translator.event(data).is_err() {
                break;
            }
            if let Ok(response) = serde_json::from_str::<gemini::wire::GenerateContentResponse>(data) {
                let _ = gemini::convert::to_chat_completion(&response, "m", "id", 0);
            }
        }
        let _ = translator.finish();
    }

    #[test]
    fn gemini_answers_and_streams_never_panic(
        json in hostile_json(),
        events in prop::collection::vec(hostile_json(), 0..8),
    ) {
        if let Ok(response) = serde_json::from_str::<gemini::wire::GenerateContentResponse>(&json) {
            let _ = gemini::convert::to_chat_completion(&response, "m", "id", 0);
        }
        let mut translator =
            gemini::stream::ChunkTranslator::new("id".into(), "m".into(), 0, true);
        for data in events {
            let _ = gemini::stream::native_chunk(&event("message", data.clone()));
            if translator.event(&data).is_err() {
                break;
            }
        }
        let _ = translator.finish();
    }
}

/// The structured generators must reach the translators' success paths, not only their refusals:
/// a fair share of generated requests translates.
#[test]
fn structured_requests_mostly_reach_the_translators() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = chat_request();
    let (mut anthropic_ok, mut gemini_ok) = (0, 0);
    for _ in 0..200 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        anthropic_ok += usize::from(
            anthropic::convert::to_messages_request(&body, "claude", None, false).is_ok(),
        );
        gemini_ok += usize::from(gemini::convert::to_generate_content(&body).is_ok());
    }
    assert!(
        anthropic_ok >= 20,
        "only {anthropic_ok} of 200 translated for Anthropic"
    );
    assert!(
        gemini_ok >= 20,
        "only {gemini_ok} of 200 translated for Gemini"
    );
}
