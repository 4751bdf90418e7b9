//! Providers and their keys: secrets sealed at rest and only previewed.

use http::{Method, StatusCode};
use odock_core::CacheKind;
use serde_json::json;

use crate::common::{assert_error, assert_invalid, cmd, harness};

#[tokio::test]
async fn provider_keys_are_sealed_and_only_previewed() {
    let h = harness().await;
    let org = h.org("Acme").await;
    h.invalidated();
    let reply = h
        .post(
            &format!("/api/organisations/{org}/providers"),
            json!({ "type": "ANTHROPIC", "name": "Claude", "config": { "region": "eu" } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["baseUrl"], "https://api.anthropic.com");
    assert_eq!(reply.body["enabled"], true);
    assert_eq!(reply.body["config"]["region"], "eu");
    assert_eq!(reply.body["organisationId"], org.as_str());
    let provider = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Provider, &provider)]);

    let bad_url = h
        .post(
            &format!("/api/organisations/{org}/providers"),
            json!({ "type": "CUSTOM", "name": "x", "baseUrl": "ftp://files.example.com" }),
        )
        .await;
    assert_invalid(&bad_url, "baseUrl");
    let bad_type = h
        .post(
            &format!("/api/organisations/{org}/providers"),
            json!({ "type": "OPENAI_X", "name": "x" }),
        )
        .await;
    assert_invalid(&bad_type, "type");

    let secret = "sk-ant-api03-SUPERSECRETVALUE-9876";
    let keys = format!("/api/organisations/{org}/providers/{provider}/keys");
    let created = h
        .post(&keys, json!({ "name": "main", "key": secret }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["preview"], "sk-…9876");
    assert_eq!(created.body["revoked"], false);
    assert_eq!(created.body["providerId"], provider.as_str());
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::ProviderKey, &key_id)]);

    let key_path = format!("{keys}/{key_id}");
    let revoked = h.post(&format!("{key_path}/revoke"), json!({})).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.body["revoked"], true);
    let unrevoked = h
        .call(Method::POST, &format!("{key_path}/unrevoke"), None)
        .await;
    assert_eq!(unrevoked.body["revoked"], false);
    assert_eq!(
        h.invalidated(),
        vec![
            cmd(CacheKind::ProviderKey, &key_id),
            cmd(CacheKind::ProviderKey, &key_id)
        ]
    );

    let reads = [
        created,
        revoked,
        unrevoked,
        h.get(&keys).await,
        h.get(&key_path).await,
        h.get(&format!("/api/organisations/{org}/providers/{provider}"))
            .await,
        h.get(&format!("/api/organisations/{org}/providers")).await,
        h.get("/api/admin/providers").await,
    ];
    for reply in &reads {
        assert!(reply.status.is_success(), "{}", reply.text);
        assert!(
            !reply.text.contains(secret),
            "secret leaked: {}",
            reply.text
        );
        assert!(
            !reply.text.contains("SUPERSECRET"),
            "secret leaked: {}",
            reply.text
        );
        assert!(!reply.text.contains("envelope"), "{}", reply.text);
    }
    assert_eq!(reads[3].body["data"][0]["preview"], "sk-…9876");
    assert_eq!(reads[4].body["preview"], "sk-…9876");

    let envelope: String =
        sqlx::query_scalar("SELECT envelope FROM provider_api_keys WHERE id = $1")
            .bind(&key_id)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert!(!envelope.contains(secret));
    assert_eq!(h.master_key.open(&envelope).unwrap().expose(), secret);

    let deleted = h.call(Method::DELETE, &key_path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::ProviderKey, &key_id)]);
    assert_error(&h.get(&key_path).await, StatusCode::NOT_FOUND, "not_found");

    let patched = h
        .call(
            Method::PATCH,
            &format!("/api/organisations/{org}/providers/{provider}"),
            Some(json!({ "enabled": false, "timeoutMs": 30000, "baseUrl": "https://proxy.example.com/" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["timeoutMs"], 30000);
    assert_eq!(patched.body["baseUrl"], "https://proxy.example.com");
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Provider, &provider)]);
    let deleted = h
        .call(
            Method::DELETE,
            &format!("/api/organisations/{org}/providers/{provider}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Provider, &provider)]);
}
