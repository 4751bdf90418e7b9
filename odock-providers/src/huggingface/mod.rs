//! The provider for Hugging Face's Inference Providers router.
//!
//! - **Chat:** `{base}/v1/chat/completions` (the base URL is the router root,
//!   `https://router.huggingface.co`; a trailing `/v1` is tolerated), OpenAI-shaped: the body is
//!   forwarded as bytes with `model` set to the slug — passed as is, so the router's `:fastest`,
//!   `:cheapest`, `:preferred` and `:<provider>` suffixes keep working — and streams ask for
//!   `stream_options.include_usage` like OpenAI. `/v1/llm/chat` goes here too.
//! - **Tasks** (`feature-extraction`, `text-to-image`, `text-to-video`, `speech-to-text`): the
//!   client's `{model, inputs, parameters?}` is sent without `model` (the URL names it) to
//!   [`task_url`]: `{base}/hf-inference/models/{slug}` for a plain slug,
//!   `{base}/{provider}/models/{model}` for `model:provider`. The original gateway looks up the
//!   provider's own model id in the Hub's `inferenceProviderMapping`, normalises input keys per
//!   provider, polls asynchronous jobs and fetches media URLs; none of that is implemented here —
//!   the answer (JSON, or binary media with its content type) is relayed unchanged.
//! - **Usage:** chat reports OpenAI usage. Tasks report none, so the gateway counts units from
//!   the request ([`task_units`]): feature-extraction 1 per string input or the length of a list
//!   (`inputs`); text-to-image `parameters.num_images_per_prompt` / `n` / `num_images`, default 1
//!   (`images`); text-to-video `n` / `num_outputs`, default 1 (`videos`); speech-to-text 1 per
//!   request (`transcriptions`). Units are only reported for a successful answer, and the
//!   record's provider usage stays empty.
//! - **Auth:** `Authorization: Bearer <HF token>`. **Errors:** non-2xx answers are relayed.

use async_trait::async_trait;
use bytes::Bytes;
use odock_core::{
    Endpoint, HuggingFaceRoute, Provider, ProviderError, ProviderRequest, ProviderResponse,
    ReportedUsage, StreamChunk, TokenUsage,
};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{path_segment, path_segments};
use crate::openai_compat::forward::{
    forward, json_body, not_a_json_object, server_root, Outgoing, ReadAnswer,
};
use crate::openai_compat::rewrite::{Rewrite, StreamOptions};
use crate::openai_compat::stream::ChatAnswer;
use crate::sse::{encode_event, Event};
use crate::UpstreamClient;

/// The router's provider for Hugging Face's own serverless inference.
const HF_INFERENCE: &str = "hf-inference";

/// Slug suffixes that pick a provider by policy rather than by name. Task routes have no policy
/// to apply, so these are served by [`HF_INFERENCE`].
const POLICIES: &[&str] = &["fastest", "cheapest", "preferred"];

/// Calls the Hugging Face router. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct HuggingFaceProvider {
    client: UpstreamClient,
}

impl HuggingFaceProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Provider for HuggingFaceProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let route = match request.endpoint {
            Endpoint::HuggingFace(route) => route,
            Endpoint::UnifiedChat => HuggingFaceRoute::ChatCompletions,
            _ => return Err(ProviderError::UnsupportedEndpoint),
        };
        let model = &request.model;
        let root = server_root(&model.provider.base_url);

        if route == HuggingFaceRoute::ChatCompletions {
            let stream_options = StreamOptions::include_usage_if(request.stream);
            let body = json_body(&request, stream_options)?;
            let url = format!("{root}/v1/chat/completions");
            let answer = ChatAnswer {
                keep_usage_chunk: request.client_wants_usage || !request.stream,
            };
            let outgoing = Outgoing::json(url, body, request.stream);
            return forward(&self.client, &request, outgoing, answer).await;
        }

        let usage = task_units(route, &request.body).map(|(units, kind)| ReportedUsage {
            tokens: TokenUsage {
                units,
                unit_kind: Some(kind.to_owned()),
                ..TokenUsage::default()
            },
            // The upstream reported nothing; the record's provider usage says so.
            raw: Value::Null,
        });
        // The URL names the model; Odock's `include_usage` is always dropped.
        let body = Rewrite {
            slug: &model.slug,
            drop: &["model"],
            ..Rewrite::default()
        }
        .apply(&request.body)
        .map_err(not_a_json_object)?;
        let outgoing = Outgoing {
            // Media tasks answer with image, video or JSON bodies.
            accept: "*/*",
            ..Outgoing::json(task_url(root, &model.slug), body, false)
        };
        forward(&self.client, &request, outgoing, TaskAnswer(usage)).await
    }
}

/// Where a task request for `slug` goes below the router root `root`. The provider is one
/// percent-encoded path segment and the model id (`org/name`) percent-encoded segment by segment,
/// so a slug can never add a query or a fragment, or climb out of `models/`.
pub fn task_url(root: &str, slug: &str) -> String {
    let (provider, model) = match slug.rsplit_once(':') {
        Some((model, provider))
            if !provider.is_empty()
                && provider != HF_INFERENCE
                && !POLICIES.contains(&provider) =>
        {
            (provider, model)
        }
        Some((model, _)) => (HF_INFERENCE, model),
        None => (HF_INFERENCE, slug),
    };
    format!(
        "{root}/{}/models/{}",
        path_segment(provider),
        path_segments(model)
    )
}

/// Task answers: relayed as they come, billed with the units counted from the request.
struct TaskAnswer(Option<ReportedUsage>);

impl ReadAnswer for TaskAnswer {
    fn unary(&self, _body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        (None, self.0.clone())
    }

    fn event(&mut self, event: &Event) -> StreamChunk {
        // Tasks are never requested as streams; should one arrive, it is relayed unchanged.
        StreamChunk {
            bytes: encode_event(event),
            ..StreamChunk::default()
        }
    }
}

/// The output count fields a task request may carry, at the top level or in `parameters`.
#[derive(Debug, Default, Deserialize)]
struct Counts {
    #[serde(default)]
    n: Option<Value>,
    #[serde(default)]
    num_images: Option<Value>,
    #[serde(default)]
    num_images_per_prompt: Option<Value>,
    #[serde(default)]
    num_outputs: Option<Value>,
}

#[derive(Deserialize)]
struct TaskProbe {
    #[serde(default)]
    inputs: Option<InputCount>,
    #[serde(default)]
    parameters: Option<Counts>,
    #[serde(flatten)]
    top: Counts,
}

/// The units a task request is billed in, and their kind; `None` for chat (billed in tokens).
///
/// A body that cannot be read counts as one unit: a request that reached the upstream is never
/// free.
pub fn task_units(route: HuggingFaceRoute, body: &[u8]) -> Option<(u64, &'static str)> {
    let probe = || serde_json::from_slice::<TaskProbe>(body).ok();
    let first = |probe: &TaskProbe, names: &[&str]| -> Option<u64> {
        let places = [probe.parameters.as_ref(), Some(&probe.top)];
        places.into_iter().flatten().find_map(|counts| {
            names
                .iter()
                .find_map(|name| counts.get(name).and_then(Value::as_u64))
        })
    };
    match route {
        HuggingFaceRoute::ChatCompletions => None,
        HuggingFaceRoute::FeatureExtraction => Some((
            probe().and_then(|p| p.inputs).map_or(1, |InputCount(n)| n),
            "inputs",
        )),
        HuggingFaceRoute::TextToImage => Some((
            probe()
                .and_then(|p| first(&p, &["num_images_per_prompt", "n", "num_images"]))
                .unwrap_or(1),
            "images",
        )),
        HuggingFaceRoute::TextToVideo => Some((
            probe()
                .and_then(|p| first(&p, &["n", "num_outputs"]))
                .unwrap_or(1),
            "videos",
        )),
        HuggingFaceRoute::SpeechToText => Some((1, "transcriptions")),
    }
}

impl Counts {
    fn get(&self, name: &str) -> Option<&Value> {
        match name {
            "n" => self.n.as_ref(),
            "num_images" => self.num_images.as_ref(),
            "num_images_per_prompt" => self.num_images_per_prompt.as_ref(),
            "num_outputs" => self.num_outputs.as_ref(),
            _ => None,
        }
    }
}

/// How many inputs `inputs` holds: a list counts its elements (without keeping them), anything
/// else is one input.
struct InputCount(u64);

impl<'de> Deserialize<'de> for InputCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(InputCountVisitor)
            .map(InputCount)
    }
}

struct InputCountVisitor;

impl<'de> Visitor<'de> for InputCountVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inputs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut count = 0u64;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
        }
        Ok(count)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(1)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<u64, E> {
        Ok(1)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
        Ok(1)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<u64, E> {
        Ok(1)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<u64, E> {
        Ok(1)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u64, E> {
        Ok(1)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_urls_follow_the_slug_suffix() {
        let root = "https://router.huggingface.co";
        assert_eq!(
            task_url(root, "BAAI/bge-small-en-v1.5"),
            "https://router.huggingface.co/hf-inference/models/BAAI/bge-small-en-v1.5"
        );
        assert_eq!(
            task_url(root, "black-forest-labs/FLUX.1-dev:fal-ai"),
            "https://router.huggingface.co/fal-ai/models/black-forest-labs/FLUX.1-dev"
        );
        for slug in [
            "org/m:fastest",
            "org/m:cheapest",
            "org/m:hf-inference",
            "org/m:",
        ] {
            assert_eq!(
                task_url(root, slug),
                "https://router.huggingface.co/hf-inference/models/org/m",
                "{slug}"
            );
        }
    }

    #[test]
    fn units_are_counted_per_task() {
        let units = |route, body: &str| task_units(route, body.as_bytes());
        use HuggingFaceRoute::*;
        assert_eq!(
            units(FeatureExtraction, r#"{"model":"m","inputs":"one"}"#),
            Some((1, "inputs"))
        );
        assert_eq!(
            units(
                FeatureExtraction,
                r#"{"model":"m","inputs":["a","b",{"x":[1]}]}"#
            ),
            Some((3, "inputs"))
        );
        assert_eq!(
            units(FeatureExtraction, r#"{"model":"m"}"#),
            Some((1, "inputs"))
        );
        assert_eq!(
            units(TextToImage, r#"{"model":"m","inputs":"a cat"}"#),
            Some((1, "images"))
        );
        assert_eq!(
            units(
                TextToImage,
                r#"{"inputs":"a cat","parameters":{"num_images_per_prompt":2,"n":5}}"#
            ),
            Some((2, "images"))
        );
        assert_eq!(
            units(TextToImage, r#"{"inputs":"a cat","n":4}"#),
            Some((4, "images"))
        );
        assert_eq!(
            units(
                TextToImage,
                r#"{"inputs":"a cat","parameters":{"num_images":3}}"#
            ),
            Some((3, "images"))
        );
        assert_eq!(
            units(TextToVideo, r#"{"inputs":"waves"}"#),
            Some((1, "videos"))
        );
        assert_eq!(
            units(
                TextToVideo,
                r#"{"inputs":"waves","parameters":{"num_outputs":2}}"#
            ),
            Some((2, "videos"))
        );
        assert_eq!(
            units(SpeechToText, r#"{"inputs":"AAAA"}"#),
            Some((1, "transcriptions"))
        );
        assert_eq!(units(TextToImage, "not json"), Some((1, "images")));
        assert_eq!(units(ChatCompletions, "{}"), None);
    }
}
