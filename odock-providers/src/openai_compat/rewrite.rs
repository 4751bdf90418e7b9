//! Same-protocol request forwarding: the client's body is rewritten at the top level only.
//!
//! The body is split into its top-level members, each value kept as the exact bytes the client
//! sent ([`RawValue`]), so unknown fields, number formatting and key order all survive. Only a few
//! things change:
//!
//! - `model` becomes the model's upstream slug;
//! - `stream_options` is handled per family ([`StreamOptions`]): OpenAI, vLLM and Hugging Face chat
//!   streams get `"include_usage": true` (other options the client set are kept) so the upstream
//!   reports usage and the request can be billed exactly; Mistral, which rejects the member, never
//!   receives it;
//! - the Odock-only top-level `include_usage` member is removed (upstreams reject it).
//!
//! [`Rewrite`] can also drop further members (a Hugging Face task names its model in the URL) and
//! rewrite `messages` (the `/v1/llm/chat` request carries Odock's `provider` and
//! `content_blocks`, see `unified`). Every OpenAI-compatible family — and Anthropic's native route —
//! rewrites its bodies here.
//!
//! When none of that changes anything, the original buffer is forwarded without a copy.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

const MODEL: &str = "model";
const STREAM_OPTIONS: &str = "stream_options";
const MESSAGES: &str = "messages";
const INCLUDE_USAGE: &str = "include_usage";
const INCLUDE_USAGE_MEMBER: &str = r#""include_usage":true"#;
const TRUE: &str = "true";

/// The client's body, rewritten for the upstream. Fails only when `body` is not a JSON object.
///
/// `stream` asks the upstream for usage in its stream (`stream_options.include_usage`); pass
/// `false` for APIs that have no `stream_options` (Responses, images).
pub fn rewrite_body(body: &Bytes, slug: &str, stream: bool) -> Result<Bytes, serde_json::Error> {
    Rewrite {
        slug,
        stream_options: StreamOptions::include_usage_if(stream),
        ..Rewrite::default()
    }
    .apply(body)
}

/// What happens to the top-level `stream_options` member: the per-family switch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum StreamOptions {
    /// Forwarded as the client sent it (or not at all): unary requests, task routes.
    #[default]
    AsSent,
    /// Made sure `include_usage` is `true`, adding the member when absent: streamed chat.
    IncludeUsage,
    /// Removed: the upstream rejects it (Mistral).
    Never,
}

impl StreamOptions {
    /// [`Self::IncludeUsage`] when `stream`, else [`Self::AsSent`].
    pub(crate) const fn include_usage_if(stream: bool) -> Self {
        if stream {
            Self::IncludeUsage
        } else {
            Self::AsSent
        }
    }
}

/// What to change in a body, beyond the slug. [`rewrite_body`] is the common case.
#[derive(Default)]
pub(crate) struct Rewrite<'a> {
    /// The upstream's model id, written into `model`.
    pub slug: &'a str,
    /// What happens to `stream_options`.
    pub stream_options: StreamOptions,
    /// Further top-level members to remove (Odock's `include_usage` always is). Dropping `model`
    /// wins over setting it.
    pub drop: &'a [&'a str],
    /// Rewrites the `messages` value; `None` from it keeps the value as sent.
    pub messages: Option<fn(&RawValue) -> Option<String>>,
}

impl Rewrite<'_> {
    /// The rewritten body. Fails only when `body` is not a JSON object.
    pub fn apply(&self, body: &Bytes) -> Result<Bytes, serde_json::Error> {
        let Members(members) = serde_json::from_slice(body)?;
        let slug = self.slug;
        let stream = self.stream_options == StreamOptions::IncludeUsage;
        let slug_json = serde_json::to_string(slug)?;

        let mut changed = false;
        let mut saw_stream_options = false;
        let mut out: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(members.len() + 1);
        for (key, value) in members {
            let name = json_str(key);
            let value = match name.as_deref() {
                Some(INCLUDE_USAGE) => {
                    changed = true;
                    continue;
                }
                Some(name) if self.drop.contains(&name) => {
                    changed = true;
                    continue;
                }
                Some(STREAM_OPTIONS) if self.stream_options == StreamOptions::Never => {
                    changed = true;
                    continue;
                }
                Some(MODEL) => {
                    if json_str(value).as_deref() != Some(slug) {
                        changed = true;
                        Cow::Borrowed(slug_json.as_str())
                    } else {
                        Cow::Borrowed(value.get())
                    }
                }
                Some(STREAM_OPTIONS) if stream => {
                    saw_stream_options = true;
                    match with_include_usage(value) {
                        Some(merged) => {
                            changed = true;
                            Cow::Owned(merged)
                        }
                        None => Cow::Borrowed(value.get()),
                    }
                }
                Some(MESSAGES) => match self.messages.and_then(|rewrite| rewrite(value)) {
                    Some(rewritten) => {
                        changed = true;
                        Cow::Owned(rewritten)
                    }
                    None => Cow::Borrowed(value.get()),
                },
                _ => Cow::Borrowed(value.get()),
            };
            out.push((key.get(), value));
        }
        if stream && !saw_stream_options {
            changed = true;
            out.push((
                r#""stream_options""#,
                Cow::Owned(format!("{{{INCLUDE_USAGE_MEMBER}}}")),
            ));
        }

        if !changed {
            return Ok(body.clone());
        }
        let capacity = body.len() + slug_json.len() + INCLUDE_USAGE_MEMBER.len() + 24;
        Ok(Bytes::from(write_object(&out, capacity)))
    }
}

/// `stream_options` with `include_usage` set to `true`, or `None` when it already is. Other
/// options keep their place and bytes; a value that is not an object is replaced.
fn with_include_usage(options: &RawValue) -> Option<String> {
    let Ok(Members(members)) = serde_json::from_str::<Members<'_>>(options.get()) else {
        return Some(format!("{{{INCLUDE_USAGE_MEMBER}}}"));
    };
    let mut include_usage = members
        .iter()
        .filter(|(key, _)| json_str(key).as_deref() == Some(INCLUDE_USAGE));
    let already_true = matches!(
        (include_usage.next(), include_usage.next()),
        (Some((_, value)), None) if value.get() == TRUE
    );
    if already_true {
        return None;
    }

    let mut out: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(members.len() + 1);
    let mut set = false;
    for (key, value) in &members {
        if json_str(key).as_deref() == Some(INCLUDE_USAGE) {
            // Duplicates would leave the upstream to pick one; keep only the first, set to true.
            if !set {
                set = true;
                out.push((key.get(), Cow::Borrowed(TRUE)));
            }
        } else {
            out.push((key.get(), Cow::Borrowed(value.get())));
        }
    }
    if !set {
        out.push((r#""include_usage""#, Cow::Borrowed(TRUE)));
    }
    Some(write_object(
        &out,
        options.get().len() + INCLUDE_USAGE_MEMBER.len() + 2,
    ))
}

/// `{"k":v,...}` from raw keys (with their quotes) and raw values.
pub(crate) fn write_object(members: &[(&str, Cow<'_, str>)], capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    out.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// The string a raw JSON value holds, when it is a string; borrowed unless it has escapes.
pub(crate) fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON object's members in document order, keys and values as raw JSON (keys with quotes).
/// Duplicates are kept, so a rewrite never silently drops what the client sent.
pub(crate) struct Members<'a>(pub Vec<(&'a RawValue, &'a RawValue)>);

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

    fn rewrite(body: &str, slug: &str, stream: bool) -> String {
        let out = rewrite_body(&Bytes::copy_from_slice(body.as_bytes()), slug, stream).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn only_the_model_changes_and_everything_else_survives_byte_for_byte() {
        let body = r#"{"messages": [ {"role":"user",  "content":"h\u00e9llo"} ],
            "model" : "odock-gpt",
            "temperature": 0.70,
            "x_vendor_flag": {"deep": [1, 2.50e3, null, 123456789012345678901234567890]},
            "seed":42}"#;
        assert_eq!(
            rewrite(body, "gpt-4o-2024-08-06", false),
            r#"{"messages":[ {"role":"user",  "content":"h\u00e9llo"} ],"model":"gpt-4o-2024-08-06","temperature":0.70,"x_vendor_flag":{"deep": [1, 2.50e3, null, 123456789012345678901234567890]},"seed":42}"#
        );
    }

    #[test]
    fn the_slug_is_escaped_as_json() {
        assert_eq!(
            rewrite(r#"{"model":"m"}"#, "a\"b", false),
            r#"{"model":"a\"b"}"#
        );
    }

    #[test]
    fn the_odock_include_usage_member_is_removed() {
        assert_eq!(
            rewrite(r#"{"model":"m","include_usage":true,"n":1}"#, "m", false),
            r#"{"model":"m","n":1}"#
        );
        assert_eq!(
            rewrite(
                r#"{"model":"m","include_usage":true,"stream":true}"#,
                "m",
                true
            ),
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn streaming_adds_include_usage_to_stream_options() {
        // Absent: appended at the end.
        assert_eq!(
            rewrite(r#"{"model":"m","stream":true}"#, "up", true),
            r#"{"model":"up","stream":true,"stream_options":{"include_usage":true}}"#
        );
        // Present without include_usage: other options kept, in place.
        assert_eq!(
            rewrite(
                r#"{"stream_options": {"continuous_usage_stats": true},"model":"m","stream":true}"#,
                "m",
                true
            ),
            r#"{"stream_options":{"continuous_usage_stats":true,"include_usage":true},"model":"m","stream":true}"#
        );
        // include_usage false: turned on where it was.
        assert_eq!(
            rewrite(
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":[1, 2]}}"#,
                "m",
                true
            ),
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":[1, 2]}}"#
        );
        // Not an object: replaced.
        assert_eq!(
            rewrite(
                r#"{"model":"m","stream":true,"stream_options":null}"#,
                "m",
                true
            ),
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn stream_options_are_left_alone_when_not_streaming() {
        assert_eq!(
            rewrite(
                r#"{"model":"m","stream_options":{"include_usage":false}}"#,
                "up",
                false
            ),
            r#"{"model":"up","stream_options":{"include_usage":false}}"#
        );
    }

    #[test]
    fn unchanged_bodies_are_forwarded_without_a_copy() {
        let body = Bytes::from_static(br#"{ "model": "gpt-4o",  "messages": [] }"#);
        let out = rewrite_body(&body, "gpt-4o", false).unwrap();
        assert_eq!(out, body);
        assert_eq!(out.as_ptr(), body.as_ptr(), "the original buffer is reused");

        let body = Bytes::from_static(
            br#"{"model":"gpt-4o","stream":true,"stream_options":{ "include_usage" : true }}"#,
        );
        let out = rewrite_body(&body, "gpt-4o", true).unwrap();
        assert_eq!(out.as_ptr(), body.as_ptr());
    }

    #[test]
    fn members_can_be_dropped_and_stream_options_never_sent() {
        let apply = |rewrite: Rewrite<'_>, body: &str| {
            let out = rewrite
                .apply(&Bytes::copy_from_slice(body.as_bytes()))
                .unwrap();
            String::from_utf8(out.to_vec()).unwrap()
        };
        assert_eq!(
            apply(
                Rewrite {
                    slug: "mistral-large-2411",
                    stream_options: StreamOptions::Never,
                    ..Rewrite::default()
                },
                r#"{"stream_options": {"include_usage":true}, "model" : "odock", "x": [1, 2.50],"include_usage":true,"stream":true}"#
            ),
            r#"{"model":"mistral-large-2411","x":[1, 2.50],"stream":true}"#
        );
        assert_eq!(
            apply(
                Rewrite {
                    slug: "m",
                    drop: &["model"],
                    ..Rewrite::default()
                },
                r#"{"model":"m","inputs":"hi"}"#
            ),
            r#"{"inputs":"hi"}"#
        );
        let body = Bytes::from_static(br#"{ "model": "up", "prompt": "x" }"#);
        let out = Rewrite {
            slug: "up",
            stream_options: StreamOptions::Never,
            ..Rewrite::default()
        }
        .apply(&body)
        .unwrap();
        assert_eq!(
            out.as_ptr(),
            body.as_ptr(),
            "nothing to drop, nothing copied"
        );
    }

    #[test]
    fn escaped_keys_are_recognised_and_kept_as_sent() {
        assert_eq!(
            rewrite(r#"{"mod\u0065l":"m","x\"y":1}"#, "up", false),
            r#"{"mod\u0065l":"up","x\"y":1}"#
        );
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused() {
        for body in ["[1]", "\"model\"", "{\"model\":", "{} trailing"] {
            assert!(
                rewrite_body(&Bytes::from(body), "m", false).is_err(),
                "{body}"
            );
        }
    }
}
