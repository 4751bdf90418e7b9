//! Routing over in-memory stores and a scripted provider: the layer as an embedder assembles it.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::*;

/// Answers by slug: `down…` 503, `bad…` 400, `refuse…` an Odock refusal, else 200.
#[derive(Default)]
struct Scripted {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Provider for Scripted {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let slug = request.model.slug.clone();
        self.calls.lock().push(slug.clone());
        if slug.starts_with("refuse") {
            return Err(ProviderError::InvalidRequest("cannot express this".into()));
        }
        let status = if slug.starts_with("down") {
            StatusCode::SERVICE_UNAVAILABLE
        } else if slug.starts_with("bad") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        let usage = status.is_success().then(|| ReportedUsage {
            tokens: TokenUsage {
                input: 1_000_000,
                ..TokenUsage::default()
            },
            raw: Value::Null,
        });
        Ok(ProviderResponse {
            status,
            headers: HeaderMap::new(),
            body: ProviderBody::Full {
                bytes: Bytes::from(json!({"answeredBy": slug}).to_string()),
                usage,
            },
            provider_request_id: None,
        })
    }
}

fn model(name: &str, price: i64) -> ResolvedModel {
    ResolvedModel::chat(
        "org1",
        format!("m-{name}"),
        name,
        name,
        ResolvedProvider::new(format!("p-{name}"), ProviderType::OpenAi, "http://unused"),
    )
    .with_key(format!("k-{name}"), "sk")
    .with_pricing(ModelPricing {
        input: TokenRates {
            text: price,
            ..TokenRates::default()
        },
        ..ModelPricing::default()
    })
}

struct Harness {
    gateway: GatewayBuilder,
    sink: InMemoryUsageSink,
    provider: Arc<Scripted>,
    policies: InMemoryRoutingPolicySource,
}

fn harness(names: &[(&str, i64)]) -> Harness {
    let store = InMemoryKeyStore::new();
    store.insert_key("sk_good", Principal::organisation_key("org1", "key1"));
    for (name, price) in names {
        store.insert_model(model(name, *price));
        store.grant("key1".into(), format!("m-{name}").into());
    }
    let sink = InMemoryUsageSink::new();
    let provider = Arc::new(Scripted::default());
    let providers = ProviderRegistry::new().with(ProviderType::OpenAi, provider.clone());
    let policies = InMemoryRoutingPolicySource::new();
    policies.set_enabled("org1", true);
    let routing = Routing::new(Arc::new(policies.clone()), Arc::default());
    let gateway = GatewayBuilder::new(Arc::new(store), providers, Arc::new(sink.clone()))
        .routing(Some(Arc::new(routing)));
    Harness {
        gateway,
        sink,
        provider,
        policies,
    }
}

impl Harness {
    fn route(&self, names: &[&str], triggers: Vec<Trigger>) {
        let candidates = names
            .iter()
            .map(|n| RoutingCandidate::new(format!("m-{n}"), *n))
            .collect();
        let mut policy = RoutingPolicy::new(ModelType::Chat, Strategy::Failover, candidates);
        policy.max_retries = names.len() as u32 - 1;
        policy.triggers = triggers;
        self.policies.set_document(
            "key1",
            RoutingDocument {
                policies: vec![policy],
            },
        );
    }

    async fn send(&self, model: &str) -> (StatusCode, Value) {
        let request = Request::post("/v1/chat/completions")
            .header("authorization", "Bearer sk_good")
            .body(Full::new(Bytes::from(
                json!({"model": model, "messages": []}).to_string(),
            )))
            .unwrap();
        let response = self
            .gateway
            .llm(Endpoint::ChatCompletions)
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.provider.calls.lock())
    }

    fn last_record(&self) -> UsageRecord {
        self.sink.records().pop().unwrap()
    }
}

#[tokio::test]
async fn failover_answers_from_the_next_candidate_and_records_the_attempts() {
    let h = harness(&[("down", 1_000), ("up", 2_000)]);
    h.route(&["down", "up"], DEFAULT_TRIGGERS.to_vec());
    let (status, body) = h.send("down").await;
    assert_eq!(status, 200);
    assert_eq!(body["answeredBy"], "up");
    assert_eq!(h.calls(), ["down", "up"]);
    let record = h.last_record();
    assert_eq!(record.model.as_deref(), Some("up"));
    assert_eq!(
        record.cost_nanos_usd, 2_000,
        "priced at the answering model"
    );
    let routing = record.routing.unwrap();
    assert_eq!(routing["rerouted"], true);
    assert_eq!(routing["attempts"][0]["status"], 503);
    assert_eq!(routing["attempts"][1]["outcome"], "success");
}

#[tokio::test]
async fn refusals_and_untriggered_failures_are_not_retried_and_the_switch_turns_routing_off() {
    let h = harness(&[("refuse", 0), ("bad", 0), ("down", 0), ("up", 0)]);
    h.route(&["refuse", "up"], vec![Trigger::Any]);
    let (status, _) = h.send("up").await;
    assert_eq!(status, 400, "Odock's own refusal ends the request");
    assert_eq!(h.calls(), ["refuse"]);

    h.route(&["bad", "up"], DEFAULT_TRIGGERS.to_vec());
    assert_eq!(h.send("up").await.0, 400);
    assert_eq!(h.calls(), ["bad"]);

    h.route(&["down", "up"], DEFAULT_TRIGGERS.to_vec());
    h.policies.set_enabled("org1", false);
    assert_eq!(h.send("down").await.0, 503);
    assert_eq!(h.calls(), ["down"]);
    assert!(h.last_record().routing.is_none());
}
