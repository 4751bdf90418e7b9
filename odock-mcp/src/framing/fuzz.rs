//! Property tests standing in for a fuzzer (cargo-fuzz needs nightly): JSON-RPC payloads, the
//! event-stream decoder and the `tools/list` filter take arbitrary bytes and hostile JSON without
//! panicking, and the decoder finds the same events however the bytes are split. Case counts are
//! bounded to keep each property to about a second.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::*;

const FIELDS: &[&str] = &[
    "jsonrpc",
    "id",
    "method",
    "params",
    "result",
    "error",
    "code",
    "message",
    "data",
    "name",
    "arguments",
    "tools",
    "_meta",
    "progressToken",
    "cursor",
    "nextCursor",
    "",
];

fn hostile_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("\"2.0\"".to_owned()),
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| if n.is_finite() {
            n.to_string()
        } else {
            "2".into()
        }),
        any::<String>().prop_map(|s| Value::String(s).to_string()),
        prop::sample::select(
            &[
                "tools/call",
                "tools/list",
                "initialize",
                "notifications/progress",
                "ping"
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned()).to_string()),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
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

/// JSON-RPC messages shaped like real ones, with hostile ids, methods and params.
fn message() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(Value::Null),
        Just(serde_json::json!(1.5)),
        Just(serde_json::json!({"a": 1})),
    ];
    let method = prop_oneof![
        prop::sample::select(
            &[
                "tools/call",
                "tools/list",
                "initialize",
                "notifications/progress"
            ][..]
        )
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(Value::from(7)),
    ];
    let params =
        hostile_json().prop_map(|j| serde_json::from_str::<Value>(&j).unwrap_or(Value::Null));
    (proptest::option::of(id), proptest::option::of(method), params, any::<bool>(), any::<bool>()).prop_map(
        |(id, method, params, call_shape, is_result)| {
            let mut m = serde_json::json!({"jsonrpc": "2.0"});
            if let Some(id) = id {
                m["id"] = id;
            }
            if is_result {
                m["result"] = serde_json::json!({"tools": [{"name": "a"}, {"name": "b"}, 3, {"name": null}]});
            } else if let Some(method) = method {
                m["method"] = method;
            }
            m["params"] = if call_shape {
                serde_json::json!({"name": params.clone(), "arguments": params, "_meta": {"progressToken": 1}})
            } else {
                params
            };
            m
        },
    )
}

fn exercise(payload: &Payload) {
    let _ = payload.is_batch();
    let _ = payload.has_requests();
    let _ = payload.primary_method();
    let _ = payload.tool_calls();
    let _ = payload.ids_with_method("tools/list");
    let _ = payload.is_initialize();
    for message in payload.messages() {
        let _ = (
            message.kind(),
            message.id(),
            message.method(),
            message.params(),
        );
        let _ = (message.tool_call(), message.progress_token());
        let again = JsonRpcMessage::parse(&message.to_bytes());
        assert!(again.is_ok(), "a parsed message re-parses from its bytes");
        let _ = error_response(message.id(), error_codes::INTERNAL_ERROR, "x", None);
    }
}

fn filter(ids: Vec<RequestId>) -> ToolsListFilter {
    let allow: ToolPredicate = Arc::new(|name: &str| name.len().is_multiple_of(2));
    ToolsListFilter::new(ids, allow)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn payloads_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024), json in hostile_json()) {
        for body in [&bytes[..], json.as_bytes()] {
            if let Ok(payload) = Payload::parse(body) {
                exercise(&payload);
            }
            let _ = JsonRpcMessage::parse(body);
        }
    }

    #[test]
    fn structured_messages_and_batches_never_panic(messages in prop::collection::vec(message(), 1..6)) {
        for value in [messages[0].clone(), Value::from(messages.clone())] {
            let bytes = value.to_string();
            if let Ok(payload) = Payload::parse(bytes.as_bytes()) {
                exercise(&payload);
                let ids = payload.ids_with_method("tools/list");
                let filter = filter(ids);
                let _ = filter.apply_json(&Bytes::from(bytes.clone()));
            }
        }
        // Responses to a `tools/list` the filter knows, in JSON and as events.
        let ids: Vec<RequestId> = messages
            .iter()
            .filter_map(|m| JsonRpcMessage::parse(m.to_string().as_bytes()).ok())
            .filter_map(|m| m.id().cloned())
            .collect();
        let filter = filter(ids);
        let batch = Bytes::from(Value::from(messages.clone()).to_string());
        let filtered = filter.apply_json(&batch);
        prop_assert!(serde_json::from_slice::<Value>(&filtered).is_ok());
        for message in &messages {
            let event = SseEvent::message(message.to_string()).to_bytes();
            let _ = filter.apply_event(&event);
        }
    }

    #[test]
    fn the_event_stream_decoder_is_total_and_split_invariant(
        bytes in prop::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                1 => Just(b'\n'),
                1 => Just(b':'),
                1 => Just(b'\r'),
            ],
            0..1024,
        ),
        cuts in prop::collection::vec(0usize..1024, 0..10),
    ) {
        let mut whole = SseDecoder::new();
        let expected = whole.push(&bytes).and_then(|mut events| {
            events.extend(whole.finish()?);
            Ok(events)
        });
        let mut split = SseDecoder::new();
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c < bytes.len()).collect();
        cuts.sort_unstable();
        let mut events = Vec::new();
        let mut start = 0;
        let mut failed = false;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            match split.push(&bytes[start..cut]) {
                Ok(more) => events.extend(more),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
            start = cut;
        }
        if let (Ok(expected), false) = (expected, failed) {
            // Whole input decoded cleanly, so the split one must end cleanly too.
            let tail = split.finish();
            prop_assert!(tail.is_ok(), "split decode failed at the end: {:?}", tail);
            events.extend(tail.unwrap_or_default());
            prop_assert_eq!(events, expected);
        }
        let _ = SseEvent::parse(&bytes);
    }

    #[test]
    fn filters_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), json in hostile_json()) {
        let filter = filter(vec![RequestId::Number(1.into()), RequestId::String("a".into())]);
        for body in [Bytes::from(bytes.clone()), Bytes::from(json.clone())] {
            let _ = filter.apply_json(&body);
            let _ = filter.apply_event(&body);
        }
        let event = SseEvent::message(json).to_bytes();
        let _ = filter.apply_event(&event);
    }
}
