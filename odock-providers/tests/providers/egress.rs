//! What the providers' client refuses to reach or to buffer, and what it relays: the egress policy
//! (loopback upstreams refused by default, by literal address or by name), base URLs with a
//! fragment, model slugs that try to escape their URL segment, unary bodies above the cap, and
//! the upstream's `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use odock_core::egress::EgressPolicy;
use odock_core::{
    Endpoint, HuggingFaceRoute, ModelId, ModelPricing, ModelType, OrganisationId, Provider,
    ProviderBody, ProviderError, ProviderId, ProviderKeyId, ProviderRequest, ProviderType,
    RequestId, ResolvedModel, ResolvedProvider, ResolvedProviderKey, Secret,
};
use odock_providers::gemini::GeminiProvider;
use odock_providers::{HuggingFaceProvider, OpenAiCompatProvider, UpstreamClient};
use serde_json::json;

use crate::fake_upstream::{http_client, FakeUpstream, Reply};

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

fn model(provider_type: ProviderType, base_url: &str, slug: &str) -> Arc<ResolvedModel> {
    Arc::new(ResolvedModel {
        id: ModelId::new("mdl_1"),
        organisation_id: OrganisationId::new("org_1"),
        name: "m".into(),
        slug: slug.into(),
        model_type: ModelType::Chat,
        capabilities: Vec::new(),
        enabled: true,
        provider: ResolvedProvider {
            id: ProviderId::new("prv_1"),
            name: "upstream".into(),
            provider_type,
            base_url: base_url.into(),
            timeout: Some(Duration::from_secs(10)),
            enabled: true,
            config: json!({}),
        },
        provider_key: Some(ResolvedProviderKey {
            id: ProviderKeyId::new("pk_1"),
            secret: Secret::new("sk-upstream"),
            revoked: false,
        }),
        key_pool: Default::default(),
        pricing: Arc::new(ModelPricing::default()),
        max_output_tokens: None,
        config: json!({}),
    })
}

fn request(endpoint: Endpoint, model: Arc<ResolvedModel>, body: &str) -> ProviderRequest {
    ProviderRequest {
        endpoint,
        model,
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type: None,
        query: None,
        stream: false,
        client_wants_usage: false,
        request_id: RequestId::generate(),
        traceparent: None,
    }
}

fn chat(base_url: &str) -> ProviderRequest {
    request(
        Endpoint::ChatCompletions,
        model(ProviderType::OpenAi, base_url, "gpt-4o"),
        CHAT,
    )
}

#[tokio::test]
async fn the_default_client_refuses_loopback_upstreams_by_address_and_by_name() {
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, "{}")).await;
    let provider = OpenAiCompatProvider::new(UpstreamClient::default());
    let by_name = upstream.base_url.replace("127.0.0.1", "localhost");
    for base_url in [upstream.base_url.clone(), by_name] {
        let error = provider.call(chat(&base_url)).await.unwrap_err();
        let ProviderError::Forbidden(denied) = &error else {
            panic!("{base_url}: expected a refusal, got {error:?}");
        };
        assert!(error.to_string().contains("ODOCK_EGRESS_ALLOW"), "{error}");
        assert!(base_url.contains(&denied.host), "{denied:?}");
    }
    assert!(
        upstream.received().is_empty(),
        "nothing reached the upstream"
    );

    // Allowed by name: the same upstream answers.
    let allowed = OpenAiCompatProvider::new(UpstreamClient::new(
        EgressPolicy::parse("localhost").unwrap(),
    ));
    let by_name = upstream.base_url.replace("127.0.0.1", "localhost");
    let response = allowed.call(chat(&by_name)).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn base_urls_with_a_fragment_or_credentials_are_never_called() {
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, "{}")).await;
    let provider = OpenAiCompatProvider::new(http_client());
    for base_url in [
        format!("{}#", upstream.base_url),
        upstream.base_url.replace("http://", "http://user:pw@"),
    ] {
        let error = provider.call(chat(&base_url)).await.unwrap_err();
        assert!(
            matches!(error, ProviderError::Unreachable(_)),
            "{base_url}: {error:?}"
        );
        assert!(!error.to_string().contains("pw"), "{error}");
    }
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn model_slugs_are_percent_encoded_in_every_url_built_from_them() {
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, "{}")).await;
    let root = upstream.base_url.trim_end_matches("/v1").to_owned();

    let gemini = GeminiProvider::new(http_client());
    gemini
        .call(request(
            Endpoint::GeminiGenerateContent,
            model(ProviderType::Google, &root, "../../x#"),
            "{}",
        ))
        .await
        .unwrap();
    let hf = HuggingFaceProvider::new(http_client());
    hf.call(request(
        Endpoint::HuggingFace(HuggingFaceRoute::FeatureExtraction),
        model(ProviderType::HuggingFace, &root, "org/x?y=1#z:my provider"),
        r#"{"model":"m","inputs":"hi"}"#,
    ))
    .await
    .unwrap();

    let paths: Vec<String> = upstream.received().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec![
            "/v1beta/models/..%2F..%2Fx%23:generateContent".to_owned(),
            "/my%20provider/models/org/x%3Fy%3D1%23z".to_owned(),
        ]
    );
}

#[tokio::test]
async fn unary_answers_above_the_cap_are_refused() {
    let upstream = FakeUpstream::start(Reply::Chunked { size: 64 * 1024 }).await;
    let provider = OpenAiCompatProvider::new(http_client().with_max_response_bytes(4 * 1024));
    let error = provider.call(chat(&upstream.base_url)).await.unwrap_err();
    assert_eq!(error, ProviderError::ResponseTooLarge { limit: 4 * 1024 });

    // A declared Content-Length above the cap is refused before reading.
    let big: &'static str = Box::leak("x".repeat(8 * 1024).into_boxed_str());
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, big)).await;
    let error = provider.call(chat(&upstream.base_url)).await.unwrap_err();
    assert_eq!(error, ProviderError::ResponseTooLarge { limit: 4 * 1024 });

    // Under the cap: relayed whole.
    let upstream = FakeUpstream::start(Reply::Chunked { size: 3 * 1024 }).await;
    let response = provider.call(chat(&upstream.base_url)).await.unwrap();
    let ProviderBody::Full { bytes, .. } = response.body else {
        panic!("expected a full body");
    };
    assert_eq!(bytes.len(), 3 * 1024);
}

#[tokio::test]
async fn the_upstreams_retry_after_is_relayed_natively_and_on_translated_429s() {
    let upstream = FakeUpstream::start(Reply::WithHeaders {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: r#"{"error":{"message":"slow down"}}"#,
        headers: &[("retry-after", "17")],
    })
    .await;
    let provider = OpenAiCompatProvider::new(http_client());

    let native = provider.call(chat(&upstream.base_url)).await.unwrap();
    assert_eq!(native.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(native.headers["retry-after"], "17");

    let unified = request(
        Endpoint::UnifiedChat,
        model(ProviderType::OpenAi, &upstream.base_url, "gpt-4o"),
        CHAT,
    );
    let error = provider.call(unified).await.unwrap_err();
    assert_eq!(
        error,
        ProviderError::Upstream {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(17)),
        }
    );
}
