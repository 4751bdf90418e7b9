//! Top-level edits of a JSON request body that keep every other member's exact bytes, for the
//! edits [`crate::openai_compat::rewrite`] does not make: dropping members an upstream must not
//! see (Mistral rejects `stream_options`; a Hugging Face task names its model in the URL;
//! `/v1/llm/chat` carries Odock's `provider`), and turning a `/v1/llm/chat` request into a plain
//! OpenAI chat-completions body.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Value};

const MODEL: &str = "model";

/// `body` with `model` set to `slug` and the members named in `drop` removed (dropping `model`
/// wins over setting it). Other members keep their bytes and order; when nothing changes, the
/// original buffer is returned. Fails only when `body` is not a JSON object.
pub(crate) fn rewrite_members(
    body: &Bytes,
    slug: &str,
    drop: &[&str],
) -> Result<Bytes, serde_json::Error> {
    let Members(members) = serde_json::from_slice(body)?;
    let slug_json = serde_json::to_string(slug)?;
    let mut changed = false;
    let mut out = String::with_capacity(body.len() + slug_json.len());
    out.push('{');
    for (key, value) in members {
        let name = json_str(key);
        let name = name.as_deref();
        if name.is_some_and(|name| drop.contains(&name)) {
            changed = true;
            continue;
        }
        let value = if name == Some(MODEL) && json_str(value).as_deref() != Some(slug) {
            changed = true;
            slug_json.as_str()
        } else {
            value.get()
        };
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(key.get());
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    Ok(if changed {
        Bytes::from(out)
    } else {
        body.clone()
    })
}

/// A `/v1/llm/chat` request as an OpenAI chat-completions body for `slug`: Odock's `provider`
/// member is dropped and a message's `content_blocks` (text, image and audio parts in OpenAI's
/// shape) become its `content` parts, after any text content it already had.
pub(crate) fn unified_chat_body(body: &Bytes, slug: &str) -> Result<Bytes, serde_json::Error> {
    let body = rewrite_members(body, slug, &["provider"])?;
    if !body.windows(16).any(|w| w == b"\"content_blocks\"") {
        return Ok(body);
    }
    let mut request: Value = serde_json::from_slice(&body)?;
    if let Some(messages) = request.get_mut("messages").and_then(Value::as_array_mut) {
        messages.iter_mut().for_each(merge_content_blocks);
    }
    Ok(Bytes::from(serde_json::to_vec(&request)?))
}

fn merge_content_blocks(message: &mut Value) {
    let Some(message) = message.as_object_mut() else {
        return;
    };
    let Some(blocks) = message.remove("content_blocks") else {
        return;
    };
    let mut parts = match message.remove("content") {
        Some(Value::String(text)) if !text.is_empty() => {
            vec![json!({"type": "text", "text": text})]
        }
        Some(Value::Array(parts)) => parts,
        _ => Vec::new(),
    };
    match blocks {
        Value::Array(blocks) => parts.extend(blocks),
        Value::Null => {}
        block => parts.push(block),
    }
    message.insert("content".to_owned(), Value::Array(parts));
}

/// The string a raw JSON value holds, when it is a string; borrowed unless it has escapes.
fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON object's members in document order, keys (with quotes) and values as raw JSON.
struct Members<'a>(Vec<(&'a RawValue, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(member) = map.next_entry::<&'de RawValue, &'de RawValue>()? {
            members.push(member);
        }
        Ok(Members(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str, slug: &str, drop: &[&str]) -> String {
        let out = rewrite_members(&Bytes::copy_from_slice(body.as_bytes()), slug, drop).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn drops_members_and_swaps_the_model_keeping_other_bytes() {
        assert_eq!(
            rewrite(
                r#"{"stream_options": {"include_usage":true}, "model" : "odock", "x": [1, 2.50],"include_usage":true}"#,
                "mistral-large-2411",
                &["stream_options", "include_usage"]
            ),
            r#"{"model":"mistral-large-2411","x":[1, 2.50]}"#
        );
        assert_eq!(
            rewrite(r#"{"model":"m","inputs":"hi"}"#, "m", &["model"]),
            r#"{"inputs":"hi"}"#
        );
        assert_eq!(
            rewrite(r#"{"mod\u0065l":"m"}"#, "a\"b", &[]),
            r#"{"mod\u0065l":"a\"b"}"#
        );
    }

    #[test]
    fn unchanged_bodies_are_not_copied() {
        let body = Bytes::from_static(br#"{ "model": "up", "prompt": "x" }"#);
        let out = rewrite_members(&body, "up", &["stream_options"]).unwrap();
        assert_eq!(out.as_ptr(), body.as_ptr());
        assert!(rewrite_members(&Bytes::from_static(b"[1]"), "m", &[]).is_err());
    }

    #[test]
    fn unified_requests_become_openai_chat_bodies() {
        let body = Bytes::from_static(
            br#"{"model":"odock","provider":"vllm","messages":[{"role":"user","content":"Hi"}]}"#,
        );
        assert_eq!(
            unified_chat_body(&body, "up").unwrap(),
            Bytes::from_static(br#"{"model":"up","messages":[{"role":"user","content":"Hi"}]}"#)
        );

        let body = Bytes::from_static(
            br#"{"model":"odock","messages":[{"role":"user","content":"Describe","content_blocks":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},{"role":"user","content_blocks":[{"type":"text","text":"x"}]}]}"#,
        );
        let out: Value = serde_json::from_slice(&unified_chat_body(&body, "up").unwrap()).unwrap();
        assert_eq!(out["model"], "up");
        assert_eq!(
            out["messages"][0]["content"],
            json!([{"type": "text", "text": "Describe"},
                   {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}])
        );
        assert!(out["messages"][0].get("content_blocks").is_none());
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type": "text", "text": "x"}])
        );
    }
}
