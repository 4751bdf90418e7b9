//! Models: pricing validation and organisation boundaries.

use http::{Method, StatusCode};
use odock_core::CacheKind;
use serde_json::{json, Value};

use crate::common::{assert_error, assert_invalid, cmd, harness};

#[tokio::test]
async fn models_validate_pricing_and_organisation_boundaries() {
    let h = harness().await;
    let a = h.org("A").await;
    let b = h.org("B").await;
    let provider_a = h.provider(&a).await;
    let provider_b = h.provider(&b).await;
    let key_b = h
        .create(
            &format!("/api/organisations/{b}/providers/{provider_b}/keys"),
            json!({ "name": "k", "key": "sk-b-0123456789abcdef" }),
        )
        .await;
    h.invalidated();

    let models = format!("/api/organisations/{a}/models");
    let pricing = json!({
        "input": { "text": 2_000_000_000u64 },
        "output": { "text": 8_000_000_000u64, "reasoning": 8_000_000_000u64 },
        "cachedInputDiscountPercent": 50,
    });
    let created = h
        .post(
            &models,
            json!({
                "name": "fast", "slug": "gpt-4o-mini", "type": "chat", "providerId": provider_a,
                "capabilities": ["vision", "tool_use"], "pricing": pricing, "config": { "maxOutputTokens": 1024 },
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let model = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["organisationId"], a.as_str());
    assert_eq!(created.body["type"], "chat");
    assert_eq!(created.body["enabled"], true);
    assert_eq!(created.body["providerKeyId"], Value::Null);
    assert_eq!(created.body["capabilities"], json!(["vision", "tool_use"]));
    assert_eq!(created.body["pricing"]["input"]["text"], 2_000_000_000u64);
    assert_eq!(created.body["pricing"]["input"]["image"], 0);
    assert_eq!(created.body["pricing"]["cachedInputDiscountPercent"], 50);
    assert_eq!(created.body["pricing"]["unitRate"], 0);
    assert_eq!(created.body["config"]["maxOutputTokens"], 1024);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Model, &model)]);

    let dup = h
        .post(
            &models,
            json!({ "name": "fast", "slug": "x", "type": "chat", "providerId": provider_a }),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");

    let negative = h
        .post(
            &models,
            json!({ "name": "neg", "slug": "x", "type": "chat", "providerId": provider_a,
                    "pricing": { "output": { "text": -1 } } }),
        )
        .await;
    assert_invalid(&negative, "pricing");
    let discount = h
        .post(
            &models,
            json!({ "name": "disc", "slug": "x", "type": "chat", "providerId": provider_a,
                    "pricing": { "cachedInputDiscountPercent": 150 } }),
        )
        .await;
    assert_invalid(&discount, "pricing");
    let unknown_rate = h
        .post(
            &models,
            json!({ "name": "typo", "slug": "x", "type": "chat", "providerId": provider_a,
                    "pricing": { "inputText": 5 } }),
        )
        .await;
    assert_invalid(&unknown_rate, "pricing");

    let cross_provider = h
        .post(
            &models,
            json!({ "name": "cross", "slug": "x", "type": "chat", "providerId": provider_b }),
        )
        .await;
    assert_invalid(&cross_provider, "providerId");
    let cross_key = h
        .post(
            &models,
            json!({ "name": "cross", "slug": "x", "type": "chat", "providerId": provider_a, "providerKeyId": key_b }),
        )
        .await;
    assert_invalid(&cross_key, "providerKeyId");
    let bad_type = h
        .post(
            &models,
            json!({ "name": "t", "slug": "x", "type": "CHAT", "providerId": provider_a }),
        )
        .await;
    assert_invalid(&bad_type, "type");
    assert!(h.invalidated().is_empty());

    // B's objects under A's path, and A's model under B's path: not found.
    for path in [
        format!("/api/organisations/{a}/providers/{provider_b}"),
        format!("/api/organisations/{a}/providers/{provider_b}/keys"),
        format!("/api/organisations/{a}/providers/{provider_b}/keys/{key_b}"),
        format!("/api/organisations/{b}/models/{model}"),
        format!("/api/organisations/{b}/models/{model}/api-key-access"),
        "/api/organisations/missing/models".to_owned(),
    ] {
        assert_error(&h.get(&path).await, StatusCode::NOT_FOUND, "not_found");
    }
    let foreign_patch = h
        .call(
            Method::PATCH,
            &format!("/api/organisations/{b}/models/{model}"),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_error(&foreign_patch, StatusCode::NOT_FOUND, "not_found");
    let foreign_delete = h
        .call(
            Method::DELETE,
            &format!("/api/organisations/{b}/models/{model}"),
            None,
        )
        .await;
    assert_error(&foreign_delete, StatusCode::NOT_FOUND, "not_found");
    assert!(h.invalidated().is_empty());

    let patched = h
        .call(
            Method::PATCH,
            &format!("{models}/{model}"),
            Some(json!({ "pricing": null, "enabled": false, "slug": "gpt-4o" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["pricing"], Value::Null);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["slug"], "gpt-4o");
    assert_eq!(patched.body["name"], "fast");
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Model, &model)]);

    let all = h
        .get(&format!("/api/admin/models?organisationId={b}"))
        .await;
    assert_eq!(all.body["data"], json!([]));
    let all = h.get("/api/admin/models").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1);

    let deleted = h
        .call(Method::DELETE, &format!("{models}/{model}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Model, &model)]);
}
