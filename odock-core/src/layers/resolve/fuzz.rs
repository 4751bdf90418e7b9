//! Property tests standing in for a fuzzer (cargo-fuzz needs nightly): whatever a client sends,
//! decoding an LLM request answers `Ok` or a [`RequestError`](crate::RequestError) — it never
//! panics. Case counts are bounded so the whole module runs in about a second.

use bytes::Bytes;
use proptest::prelude::*;

use super::decode::LlmRequest;
use super::multipart;
use crate::endpoint::Endpoint;

/// Field names the decoder looks at, so generated objects hit its paths with the wrong types.
const FIELDS: &[&str] = &[
    "model",
    "provider",
    "messages",
    "content",
    "role",
    "text",
    "type",
    "parts",
    "system",
    "contents",
    "systemInstruction",
    "input",
    "prompt",
    "suffix",
    "inputs",
    "generationConfig",
    "maxOutputTokens",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "tools",
    "tool_calls",
    "image_url",
    "",
];

/// JSON text built to be awkward: known field names with any type, duplicate keys, huge and
/// negative numbers, exponents beyond `f64`, escapes (lone surrogates included), deep-ish nesting.
pub(crate) fn hostile_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("-0".to_owned()),
        Just("1e400".to_owned()),
        Just("-1e-400".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| if n.is_finite() {
            n.to_string()
        } else {
            "0".into()
        }),
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(
                |members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.to_owned())))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }
            ),
        ]
    })
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop::sample::select(Endpoint::ALL)
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/v1beta/models/gemini-pro:generateContent".to_owned()),
        Just("/v1beta/models/:".to_owned()),
        Just("/v1beta/models/".to_owned()),
        any::<String>(),
    ]
}

fn decode_all(endpoint: Endpoint, path: &str, body: &[u8]) {
    for content_type in [
        None,
        Some("application/json"),
        Some("multipart/form-data; boundary=XyZ"),
        Some("multipart/form-data; boundary=\"\""),
    ] {
        let _ = LlmRequest::decode(endpoint, path, content_type, body);
    }
}

/// A multipart body from generated parts, sometimes truncated or with a wrong boundary.
fn multipart_body() -> impl Strategy<Value = (String, Vec<u8>)> {
    let part = (
        prop::sample::select(&["model", "prompt", "file", ""][..]),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    );
    (
        "[A-Za-z0-9'()+_,./:=?-]{1,20}",
        prop::collection::vec(part, 0..5),
        any::<bool>(),
        0usize..400,
    )
        .prop_map(|(boundary, parts, close, cut)| {
            let mut body = Vec::new();
            for (name, is_file, value, disposition) in parts {
                body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                if disposition {
                    let file = if is_file { "; filename=\"a.png\"" } else { "" };
                    body.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n")
                            .as_bytes(),
                    );
                }
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(&value);
                body.extend_from_slice(b"\r\n");
            }
            if close {
                body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            }
            if cut < body.len() && cut % 3 == 0 {
                body.truncate(cut);
            }
            (boundary, body)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(
        endpoint in endpoint(),
        path in path(),
        body in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        decode_all(endpoint, &path, &body);
    }

    #[test]
    fn hostile_json_never_panics(endpoint in endpoint(), path in path(), json in hostile_json()) {
        decode_all(endpoint, &path, json.as_bytes());
        // The same inside a plausible envelope, so the decoder gets past `model`.
        let wrapped = format!("{{\"model\":\"m\",\"messages\":{json},\"input\":{json},\"contents\":{json}}}");
        decode_all(endpoint, &path, wrapped.as_bytes());
    }

    #[test]
    fn multipart_never_panics((boundary, body) in multipart_body(), value in any::<String>()) {
        let content_type = format!("multipart/form-data; boundary={boundary}");
        prop_assert_eq!(multipart::boundary(&content_type), Some(boundary.clone()));
        let _ = multipart::text_fields(&body, &boundary);
        let body = Bytes::from(body);
        if let Some(replaced) = multipart::replace_text_field(&body, &boundary, "model", &value) {
            // Swapping the field keeps the body parseable, with the new value in place.
            let fields = multipart::text_fields(&replaced, &boundary);
            prop_assert!(fields.is_ok());
        }
        for endpoint in Endpoint::ALL {
            let _ = LlmRequest::decode(*endpoint, "/", Some(&content_type), &body);
        }
    }

    #[test]
    fn content_types_never_panic(content_type in any::<String>()) {
        let _ = multipart::boundary(&content_type);
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let depth = 100_000;
    for nested in [
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
    ] {
        let body = format!("{{\"model\":\"m\",\"messages\":{nested},\"stream\":{nested}}}");
        for endpoint in Endpoint::ALL {
            assert!(LlmRequest::decode(*endpoint, "/", None, body.as_bytes()).is_err());
        }
    }
}
