//! In-process tests of the admin API: the router over an in-memory database, called with `oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use chrono::{Duration, Utc};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use odock_core::{
    ApiKeyId, CacheInvalidator, CacheKind, InvalidationCommand, OrganisationId, RequestId, Secret,
    TokenUsage, UsageRecord, UsageRecordId,
};
use odock_store::db::Db;
use odock_store::keys::hash_virtual_key;
use odock_store::MasterKey;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::routes::{operations, Reply};
use super::{openapi, router, AdminState};

const TOKEN: &str = "test-admin-token";

/// Remembers every invalidation it is sent.
#[derive(Default)]
struct RecordingInvalidator(Mutex<Vec<InvalidationCommand>>);

impl CacheInvalidator for RecordingInvalidator {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.0.lock().push(command.clone());
    }
}

struct Harness {
    app: Router,
    pool: Db,
    master_key: Arc<MasterKey>,
    invalidations: Arc<RecordingInvalidator>,
}

struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
}

async fn harness() -> Harness {
    let pool = odock_store::testing::database().await;
    let (master_key, _) = MasterKey::generate();
    let master_key = Arc::new(master_key);
    let invalidations = Arc::new(RecordingInvalidator::default());
    let app = router(AdminState {
        pool: pool.clone(),
        host: super::host_policy::HostPolicy::default(),
        master_key: master_key.clone(),
        invalidator: invalidations.clone(),
        admin_token: Secret::new(TOKEN),
        live_windows: std::sync::Arc::new(odock_core::StoredWindowsOnly),
    });
    Harness {
        app,
        pool,
        master_key,
        invalidations,
    }
}

impl Harness {
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Answer { status, body, text }
    }

    async fn raw(&self, method: Method, path: &str, body: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, &body).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates and returns the id, asserting 201.
    async fn create(&self, path: &str, body: Value) -> String {
        let reply = self.post(path, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    async fn org(&self, name: &str) -> String {
        self.create("/api/admin/organisations", json!({ "name": name }))
            .await
    }

    async fn provider(&self, org: &str) -> String {
        self.create(
            &format!("/api/organisations/{org}/providers"),
            json!({ "type": "OPENAI", "name": "OpenAI" }),
        )
        .await
    }

    async fn model(&self, org: &str, provider: &str, name: &str) -> String {
        self.create(
            &format!("/api/organisations/{org}/models"),
            json!({ "name": name, "slug": "gpt-4o-mini", "type": "chat", "providerId": provider }),
        )
        .await
    }

    async fn api_key(&self, org: &str) -> (String, String) {
        let reply = self
            .post(
                &format!("/api/organisations/{org}/apikeys"),
                json!({ "name": "ci", "type": "ORGANISATION" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let id = reply.body["id"].as_str().unwrap().to_owned();
        let key = reply.body["key"].as_str().unwrap().to_owned();
        (id, key)
    }

    /// The commands sent since the last call.
    fn invalidated(&self) -> Vec<InvalidationCommand> {
        std::mem::take(&mut *self.invalidations.0.lock())
    }
}

fn cmd(kind: CacheKind, id: &str) -> InvalidationCommand {
    InvalidationCommand::new(kind, id)
}

fn assert_error(reply: &Answer, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.text);
    assert!(reply.body["error"]["message"].is_string());
    assert!(reply.body["error"]["type"].is_string());
}

fn assert_invalid(reply: &Answer, field: &str) {
    assert_error(reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(reply.body["error"]["type"], "invalid_request_error");
    assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
}

#[tokio::test]
async fn every_route_but_the_document_needs_the_admin_token() {
    let h = harness().await;
    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdA=="),
        Some(TOKEN),
    ] {
        let mut request = Request::builder().uri("/api/admin/organisations");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let reply = h.send(request.body(Body::empty()).unwrap()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(reply.body["error"]["type"], "authentication_error");
    }
    // Refused before the body is looked at, and before the organisation is looked up.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/organisations/nope/apikeys")
        .body(Body::from("{not json"))
        .unwrap();
    assert_error(
        &h.send(request).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let reply = h.get("/api/admin/organisations").await;
    assert_eq!(reply.status, StatusCode::OK);
    let request = Request::builder()
        .uri("/api/openapi.json")
        .body(Body::empty())
        .unwrap();
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["openapi"], "3.1.0");
}

#[tokio::test]
async fn organisations_crud_and_conflicts() {
    let h = harness().await;
    let reply = h
        .post(
            "/api/admin/organisations",
            json!({ "name": "Acme Corp", "contact": "ops@acme.test" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let org = &reply.body;
    let id = org["id"].as_str().unwrap().to_owned();
    assert_eq!(org["slug"], "acme-corp");
    assert_eq!(org["status"], "active");
    assert_eq!(org["routingEnabled"], false);
    assert_eq!(org["contact"], "ops@acme.test");
    assert!(org["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Organisation, &id)]);

    let dup = h
        .post(
            "/api/admin/organisations",
            json!({ "name": "Other", "slug": "acme-corp" }),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    assert_eq!(dup.body["error"]["type"], "invalid_request_error");

    let path = format!("/api/admin/organisations/{id}");
    let got = h.get(&path).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["name"], "Acme Corp");

    let patched = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "status": "disabled", "routingEnabled": true, "contact": null })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["status"], "disabled");
    assert_eq!(patched.body["routingEnabled"], true);
    assert_eq!(patched.body["contact"], Value::Null);
    assert_eq!(patched.body["name"], "Acme Corp");
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Organisation, &id)]);

    let typo = h
        .call(Method::PATCH, &path, Some(json!({ "stauts": "disabled" })))
        .await;
    assert_invalid(&typo, "stauts");
    let bad_status = h
        .call(Method::PATCH, &path, Some(json!({ "status": "paused" })))
        .await;
    assert_invalid(&bad_status, "status");

    let other = h.org("Other").await;
    let clash = h
        .call(
            Method::PATCH,
            &format!("/api/admin/organisations/{other}"),
            Some(json!({ "slug": "acme-corp" })),
        )
        .await;
    assert_error(&clash, StatusCode::CONFLICT, "conflict");
    h.invalidated();

    let deleted = h.call(Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Organisation, &id)]);
    assert_error(&h.get(&path).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &h.call(Method::DELETE, &path, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(
        h.invalidated().is_empty(),
        "failed writes invalidate nothing"
    );
}

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

#[tokio::test]
async fn api_keys_show_their_secret_once_and_rotate_in_place() {
    let h = harness().await;
    let org = h.org("Acme").await;
    h.invalidated();
    let keys = format!("/api/organisations/{org}/apikeys");
    let expires = (Utc::now() + Duration::days(30)).to_rfc3339();
    let created = h
        .post(
            &keys,
            json!({ "name": "ci", "type": "ORGANISATION", "expiresAt": expires, "policies": { "requestsPerMinute": 60 } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_"));
    assert_eq!(created.body["preview"], odock_core::secret::preview(&key));
    assert_eq!(created.body["timezone"], "UTC");
    assert_eq!(created.body["revoked"], false);
    assert_eq!(created.body["revealed"], true);
    assert_eq!(created.body["rotations"], 0);
    assert_eq!(created.body["type"], "ORGANISATION");
    assert_eq!(created.body["teamId"], Value::Null);
    assert_eq!(created.body["policies"]["requestsPerMinute"], 60);
    assert!(created.body["expiresAt"].is_string());
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::ApiKey, &id)]);

    let (stored_hash, stored_preview): (String, String) =
        sqlx::query_as("SELECT key_hash, preview FROM api_keys WHERE id = $1")
            .bind(&id)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(stored_hash, hash_virtual_key(&key));
    assert!(!stored_preview.contains(&key));
    let leaks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys WHERE key_hash = $1 OR preview = $1 OR name = $1 OR policies LIKE '%' || $1 || '%'",
    )
    .bind(&key)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(leaks, 0);

    let path = format!("{keys}/{id}");
    for reply in [
        h.get(&path).await,
        h.get(&keys).await,
        h.get("/api/admin/apikeys").await,
    ] {
        assert_eq!(reply.status, StatusCode::OK);
        assert!(!reply.text.contains(&key), "key leaked: {}", reply.text);
        assert!(!reply.text.contains("\"key\""), "{}", reply.text);
    }

    let past = (Utc::now() - Duration::hours(1)).to_rfc3339();
    assert_invalid(
        &h.post(
            &keys,
            json!({ "name": "old", "type": "ORGANISATION", "expiresAt": past }),
        )
        .await,
        "expiresAt",
    );
    assert_invalid(
        &h.post(&format!("{path}/rotate"), json!({ "expiresAt": past }))
            .await,
        "expiresAt",
    );
    assert_invalid(
        &h.post(&keys, json!({ "name": "t", "type": "TEAM" })).await,
        "teamId",
    );
    assert_invalid(
        &h.post(
            &keys,
            json!({ "name": "u", "type": "USER", "userId": "nobody" }),
        )
        .await,
        "userId",
    );
    assert!(h.invalidated().is_empty());

    let rotated = h.call(Method::POST, &format!("{path}/rotate"), None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_key = rotated.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(rotated.body["id"], id.as_str());
    assert_eq!(rotated.body["rotations"], 1);
    assert_eq!(rotated.body["expiresAt"], created.body["expiresAt"]);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::ApiKey, &id)]);
    let stored_hash: String = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1")
        .bind(&id)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(stored_hash, hash_virtual_key(&new_key));
    let (previous, rotated_by): (String, String) = sqlx::query_as(
        "SELECT previous_preview, rotated_by FROM api_key_rotations WHERE api_key_id = $1",
    )
    .bind(&id)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(previous, odock_core::secret::preview(&key));
    assert_eq!(rotated_by, "admin-token");

    let later = (Utc::now() + Duration::days(90)).to_rfc3339();
    let rotated_again = h
        .post(&format!("{path}/rotate"), json!({ "expiresAt": later }))
        .await;
    assert_eq!(
        rotated_again.status,
        StatusCode::OK,
        "{}",
        rotated_again.text
    );
    assert_eq!(rotated_again.body["rotations"], 2);
    assert_ne!(rotated_again.body["expiresAt"], created.body["expiresAt"]);
    h.invalidated();

    let revoked = h.post(&format!("{path}/revoke"), json!({})).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.body["revoked"], true);
    assert!(revoked.body.get("key").is_none());
    assert_invalid_without_field(&h.post(&format!("{path}/rotate"), json!({})).await);
    let unrevoked = h.post(&format!("{path}/unrevoke"), json!({})).await;
    assert_eq!(unrevoked.body["revoked"], false);
    assert_eq!(
        h.invalidated(),
        vec![cmd(CacheKind::ApiKey, &id), cmd(CacheKind::ApiKey, &id)]
    );

    let patched = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "name": "renamed", "expiresAt": null, "timezone": "Europe/Paris" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["name"], "renamed");
    assert_eq!(patched.body["expiresAt"], Value::Null);
    assert_eq!(patched.body["timezone"], "Europe/Paris");
    assert!(patched.body.get("key").is_none());
    assert_invalid(
        &h.call(Method::PATCH, &path, Some(json!({ "type": "TEAM" })))
            .await,
        "type",
    );
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::ApiKey, &id)]);

    let other = h.org("Other").await;
    let foreign = h
        .get(&format!("/api/organisations/{other}/apikeys/{id}"))
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    let foreign = h
        .post(
            &format!("/api/organisations/{other}/apikeys/{id}/rotate"),
            json!({}),
        )
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    h.invalidated();

    let deleted = h.call(Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.invalidated(),
        vec![cmd(CacheKind::ApiKey, &id), cmd(CacheKind::Grant, &id)]
    );
}

fn assert_invalid_without_field(reply: &Answer) {
    assert_error(reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(reply.body["error"].get("field").is_none(), "{}", reply.text);
}

#[tokio::test]
async fn model_grants_from_both_sides() {
    let h = harness().await;
    let a = h.org("A").await;
    let b = h.org("B").await;
    let provider = h.provider(&a).await;
    let fast = h.model(&a, &provider, "fast").await;
    let smart = h.model(&a, &provider, "smart").await;
    let foreign_model = h.model(&b, &h.provider(&b).await, "theirs").await;
    let (key, _) = h.api_key(&a).await;
    let (key2, _) = h.api_key(&a).await;
    let (foreign_key, _) = h.api_key(&b).await;
    h.invalidated();

    let access = format!("/api/organisations/{a}/apikeys/{key}/model-access");
    let empty = h.get(&access).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body, json!({ "data": [], "nextCursor": null }));

    let granted = h.post(&access, json!({ "modelIds": [fast, fast] })).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    let data = granted.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["apiKeyId"], key.as_str());
    assert_eq!(data[0]["modelId"], fast.as_str());
    assert_eq!(data[0]["modelName"], "fast");
    assert!(data[0]["createdAt"].is_string());
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Grant, &key)]);
    let again = h.post(&access, json!({ "modelIds": [fast] })).await;
    assert_eq!(
        again.body["data"].as_array().unwrap().len(),
        1,
        "granting is idempotent"
    );
    h.invalidated();

    assert_invalid(
        &h.post(&access, json!({ "modelIds": [foreign_model] }))
            .await,
        "modelIds",
    );
    assert_invalid(
        &h.post(&access, json!({ "modelIds": "fast" })).await,
        "modelIds",
    );
    assert_invalid(&h.post(&access, json!({})).await, "modelIds");
    assert!(h.invalidated().is_empty());

    let from_model = format!("/api/organisations/{a}/models/{smart}/api-key-access");
    let granted = h
        .post(&from_model, json!({ "apiKeyIds": [key, key2] }))
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    assert_eq!(granted.body["data"].as_array().unwrap().len(), 2);
    let mut expected = vec![cmd(CacheKind::Grant, &key), cmd(CacheKind::Grant, &key2)];
    let mut sent = h.invalidated();
    expected.sort_by(|x, y| x.id.cmp(&y.id));
    sent.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(sent, expected);
    assert_invalid(
        &h.post(&from_model, json!({ "apiKeyIds": [foreign_key] }))
            .await,
        "apiKeyIds",
    );

    let listed = h.get(&access).await;
    let names: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["modelName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast", "smart"]);
    assert_eq!(
        h.get(&from_model).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let removed = h
        .call(Method::DELETE, &format!("{access}/{fast}"), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Grant, &key)]);
    let gone = h
        .call(Method::DELETE, &format!("{access}/{fast}"), None)
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let foreign = h
        .get(&format!(
            "/api/organisations/{b}/apikeys/{key}/model-access"
        ))
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn malformed_bodies_and_queries_get_json_errors() {
    let h = harness().await;
    let orgs = "/api/admin/organisations";
    let syntax = h.raw(Method::POST, orgs, "{\"name\": ").await;
    assert_invalid_without_field(&syntax);
    let not_object = h.raw(Method::POST, orgs, "[1, 2]").await;
    assert_error(&not_object, StatusCode::BAD_REQUEST, "invalid_request");
    let wrong_type = h.post(orgs, json!({ "name": 42 })).await;
    assert_invalid(&wrong_type, "name");
    let missing = h.call(Method::POST, orgs, None).await;
    assert_invalid(&missing, "name");
    let unknown = h.post(orgs, json!({ "name": "x", "nmae": "y" })).await;
    assert_invalid(&unknown, "nmae");
    let blank = h.post(orgs, json!({ "name": "   " })).await;
    assert_invalid(&blank, "name");
    let bad_limit = h.get("/api/admin/organisations?limit=many").await;
    assert_invalid(&bad_limit, "limit");

    // Without a JSON content type the body is still parsed (automation often forgets the header).
    let request = Request::builder()
        .method(Method::POST)
        .uri(orgs)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(r#"{"name":"Plain"}"#))
        .unwrap();
    assert_eq!(h.send(request).await.status, StatusCode::CREATED);

    let wrong_method = h.call(Method::PUT, orgs, None).await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn pagination_with_limit_one_walks_every_item_once() {
    let h = harness().await;
    let mut created = Vec::new();
    for i in 0..4 {
        created.push(h.org(&format!("Org {i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/admin/organisations?limit=1&cursor={c}"),
            None => "/api/admin/organisations?limit=1".to_owned(),
        };
        let page = h.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 1);
        seen.extend(data.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    created.sort();
    assert_eq!(seen, created, "every organisation once, in id order");

    let org = &created[0];
    let provider = h.provider(org).await;
    for name in ["a", "b", "c"] {
        h.model(org, &provider, name).await;
    }
    let first = h
        .get(&format!("/api/organisations/{org}/models?limit=2"))
        .await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let second = h
        .get(&format!(
            "/api/organisations/{org}/models?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["nextCursor"], Value::Null);
}

fn usage_record(org: &str, api_key: &str, status: u16, minutes_ago: i64) -> UsageRecord {
    UsageRecord {
        id: UsageRecordId::generate(),
        request_id: RequestId::generate(),
        organisation_id: OrganisationId::new(org),
        team_id: None,
        user_id: None,
        api_key_id: ApiKeyId::new(api_key),
        provider: "openai".into(),
        model: Some("fast".into()),
        model_id: None,
        endpoint: "/v1/chat/completions".into(),
        http_status: status,
        error_code: None,
        latency_ms: 120,
        gateway_overhead_us: 300,
        stream: false,
        tokens: TokenUsage {
            input: 10,
            output: 20,
            ..TokenUsage::default()
        },
        billable_tokens: 30,
        cost_nanos_usd: 1_000,
        billing: None,
        provider_usage: None,
        routing: None,
        metadata: odock_core::UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: odock_core::RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: None,
            received_at: Utc::now(),
            provider_type: None,
            denied_by: None,
        },
        provider_request_id: None,
        trace_id: None,
        created_at: Utc::now() - Duration::minutes(minutes_ago),
        ledger_charges: Vec::new(),
    }
}

#[tokio::test]
async fn usage_records_are_listed_filtered_and_scoped() {
    let h = harness().await;
    let a = h.org("A").await;
    let b = h.org("B").await;
    let records = [
        usage_record(&a, "key-1", 200, 30),
        usage_record(&a, "key-2", 429, 20),
        usage_record(&a, "key-1", 200, 10),
        usage_record(&b, "key-3", 200, 5),
    ];
    {
        let mut conn = h.pool.acquire().await.unwrap();
        odock_store::usage_records::insert_batch(&mut conn, &records, &[])
            .await
            .unwrap();
    }

    let base = format!("/api/organisations/{a}/usage-records");
    let all = h.get(&base).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let data = all.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["id"], records[2].id.as_str(), "newest first");
    assert_eq!(data[0]["apiKeyId"], "key-1");
    assert_eq!(data[0]["costNanosUsd"], 1_000);

    let by_key = h.get(&format!("{base}?apiKeyId=key-1")).await;
    assert_eq!(by_key.body["data"].as_array().unwrap().len(), 2);
    let by_status = h.get(&format!("{base}?status=429")).await;
    assert_eq!(by_status.body["data"][0]["id"], records[1].id.as_str());
    let from =
        (Utc::now() - Duration::minutes(15)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let recent = h.get(&format!("{base}?from={from}")).await;
    assert_eq!(
        recent.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        recent.text
    );

    let mut seen = 0;
    let mut path = format!("{base}?limit=1");
    loop {
        let page = h.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        seen += page.body["data"].as_array().unwrap().len();
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("{base}?limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen <= 3);
    }
    assert_eq!(seen, 3);

    assert_invalid(&h.get(&format!("{base}?from=yesterday")).await, "from");
    assert_invalid(&h.get(&format!("{base}?status=abc")).await, "status");
    assert_invalid(&h.get(&format!("{base}?cursor=garbage")).await, "cursor");

    let one = h.get(&format!("{base}/{}", records[0].id)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["requestId"], records[0].request_id.as_str());
    let foreign = h
        .get(&format!(
            "/api/organisations/{b}/usage-records/{}",
            records[0].id
        ))
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &h.get("/api/organisations/missing/usage-records").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let everyone = h.get("/api/admin/usage-records").await;
    assert_eq!(everyone.body["data"].as_array().unwrap().len(), 4);
    let only_b = h
        .get(&format!("/api/admin/usage-records?organisationId={b}"))
        .await;
    assert_eq!(only_b.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(only_b.body["data"][0]["organisationId"], b.as_str());
}

#[tokio::test]
async fn openapi_documents_every_registered_route() {
    let h = harness().await;
    let operations = operations();
    let document = openapi::document(&operations);
    let schemas = document["components"]["schemas"].as_object().unwrap();

    // Every route of the table is in the document, with its parameters and schemas.
    for operation in &operations {
        let item = &document["paths"][operation.path][operation.verb.as_str()];
        assert!(item.is_object(), "{operation:?} is not documented");
        assert_eq!(item["operationId"], operation.operation_id);
        let params: Vec<&str> = item["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            params,
            openapi::path_parameters(operation.path),
            "{operation:?}"
        );
        if let Some(request) = operation.request {
            assert!(schemas.contains_key(request), "{request}");
        }
        match operation.reply {
            Reply::Created(s) | Reply::Ok(s) | Reply::List(s) => {
                assert!(schemas.contains_key(s), "{s}")
            }
            Reply::NoContent => {}
        }
    }
    // And nothing else.
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, operations.len());

    // Every $ref resolves.
    let text = document.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }

    // Every route of the table is registered: a request reaches a handler (which answers JSON), not
    // the router's empty "no such route" 404 or its 405.
    for operation in &operations {
        let path = operation
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let reply = h.call(operation.verb.method(), &path, None).await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{operation:?}"
        );
        assert!(
            reply.body.is_object() || reply.status == StatusCode::NO_CONTENT,
            "{operation:?} answered {} {}",
            reply.status,
            reply.text
        );
    }

    // The served document is the same one.
    let served = h.get("/api/openapi.json").await;
    assert_eq!(served.body, document);
}

/// Inserts a user of `org` with plain SQL (users have no admin routes yet).
async fn insert_user(pool: &Db, org: &str, email: &str) -> String {
    let id = odock_core::new_object_id();
    let now = Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO users (id, organisation_id, email, name, role, status, created_at, updated_at) \
         VALUES ($1, $2, $3, 'Test', 'USER', 'ACTIVE', $4, $5)",
    )
    .bind(&id)
    .bind(org)
    .bind(email)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn teams_crud_members_and_organisation_boundaries() {
    let h = harness().await;
    let a = h.org("Acme").await;
    let b = h.org("Beta").await;
    let teams = format!("/api/organisations/{a}/teams");
    let reply = h
        .post(
            &teams,
            json!({ "name": "core", "policies": { "requestsPerMinute": 60 } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["organisationId"], a.as_str());
    assert_eq!(reply.body["policies"]["requestsPerMinute"], 60);
    let team = reply.body["id"].as_str().unwrap().to_owned();
    let duplicate = h.post(&teams, json!({ "name": "core" })).await;
    assert_error(&duplicate, StatusCode::CONFLICT, "conflict");
    assert_invalid(&h.post(&teams, json!({ "name": " " })).await, "name");

    // Another organisation's team is not found through `b`.
    let foreign = format!("/api/organisations/{b}/teams/{team}");
    assert_error(&h.get(&foreign).await, StatusCode::NOT_FOUND, "not_found");
    let reply = h
        .call(Method::PATCH, &foreign, Some(json!({ "name": "x" })))
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    let reply = h.call(Method::DELETE, &foreign, None).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        h.get(&format!("/api/organisations/{b}/teams")).await.body["data"],
        json!([])
    );

    let path = format!("{teams}/{team}");
    h.invalidated();
    let reply = h
        .call(Method::PATCH, &path, Some(json!({ "name": "platform" })))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["name"], "platform");
    assert_eq!(reply.body["policies"]["requestsPerMinute"], 60);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Team, &team)]);
    h.create(&teams, json!({ "name": "core" })).await;
    let reply = h
        .call(Method::PATCH, &path, Some(json!({ "name": "core" })))
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "conflict");

    // Members must be users of the organisation.
    let members = format!("{path}/members");
    let alice = insert_user(&h.pool, &a, "alice@acme.test").await;
    let bob = insert_user(&h.pool, &b, "bob@beta.test").await;
    assert_invalid(
        &h.post(&members, json!({ "userId": "nobody", "role": "MEMBER" }))
            .await,
        "userId",
    );
    assert_invalid(
        &h.post(&members, json!({ "userId": bob, "role": "MEMBER" }))
            .await,
        "userId",
    );
    assert_invalid(
        &h.post(&members, json!({ "userId": alice, "role": "OWNER" }))
            .await,
        "role",
    );
    let reply = h
        .post(&members, json!({ "userId": alice, "role": "MEMBER" }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["email"], "alice@acme.test");
    let again = h
        .post(&members, json!({ "userId": alice, "role": "MEMBER" }))
        .await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    let member = format!("{members}/{alice}");
    let reply = h
        .call(Method::PATCH, &member, Some(json!({ "role": "MANAGER" })))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["role"], "MANAGER");
    let listed = h.get(&members).await;
    assert_eq!(listed.body["data"][0]["userId"], alice.as_str());
    assert_eq!(listed.body["data"][0]["role"], "MANAGER");
    let foreign_members = format!("/api/organisations/{b}/teams/{team}/members");
    assert_error(
        &h.get(&foreign_members).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        h.call(Method::DELETE, &member, None).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = h.call(Method::DELETE, &member, None).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");

    // The cross-organisation list and its filter.
    assert_eq!(
        h.get("/api/admin/teams").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let filtered = h.get(&format!("/api/admin/teams?organisationId={b}")).await;
    assert_eq!(filtered.body["data"], json!([]));

    h.invalidated();
    assert_eq!(
        h.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.invalidated(),
        vec![
            cmd(CacheKind::Team, &team),
            cmd(CacheKind::Budget, &a),
            cmd(CacheKind::Quota, &a)
        ]
    );
    assert_error(&h.get(&path).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn budgets_validate_owners_schedules_and_list_windows() {
    let h = harness().await;
    let a = h.org("Acme").await;
    let b = h.org("Beta").await;
    let budgets = format!("/api/organisations/{a}/budgets");
    let base = json!({ "name": "monthly", "ownerType": "ORG", "amountNanos": 5_000_000_000_i64, "period": "MONTHLY" });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };

    let reply = h.post(&budgets, base.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let budget = reply.body.clone();
    assert_eq!(budget["ownerType"], "ORG");
    assert_eq!(budget["ownerId"], Value::Null);
    assert_eq!(budget["currency"], "USD");
    assert_eq!(budget["timezone"], "UTC");
    assert_eq!(budget["thresholds"], json!([]));
    assert_eq!(budget["active"], true);
    assert_eq!(budget["rollover"], false);
    for key in [
        "id",
        "organisationId",
        "name",
        "amountNanos",
        "period",
        "startAt",
        "endAt",
        "createdAt",
        "updatedAt",
    ] {
        assert!(budget.get(key).is_some(), "{key} missing");
    }

    // Owners.
    assert_invalid(
        &h.post(&budgets, with(json!({ "ownerId": "x" }))).await,
        "ownerId",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "ownerType": "TEAM" }))).await,
        "ownerId",
    );
    assert_invalid(
        &h.post(
            &budgets,
            with(json!({ "ownerType": "APIKEY", "ownerId": "nope" })),
        )
        .await,
        "ownerId",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "ownerType": "GROUP" })))
            .await,
        "ownerType",
    );
    let foreign_team = h
        .create(
            &format!("/api/organisations/{b}/teams"),
            json!({ "name": "core" }),
        )
        .await;
    assert_invalid(
        &h.post(
            &budgets,
            with(json!({ "ownerType": "TEAM", "ownerId": foreign_team })),
        )
        .await,
        "ownerId",
    );
    let team = h
        .create(
            &format!("/api/organisations/{a}/teams"),
            json!({ "name": "core" }),
        )
        .await;
    let reply = h
        .post(&budgets, with(json!({ "ownerType": "TEAM", "ownerId": team, "thresholds": [90, 50, 90], "currency": "EUR" })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["ownerId"], team.as_str());
    assert_eq!(reply.body["thresholds"], json!([50, 90]));
    assert_eq!(reply.body["currency"], "EUR");
    let user = insert_user(&h.pool, &a, "u@acme.test").await;
    h.create(
        &budgets,
        with(json!({ "ownerType": "USER", "ownerId": user })),
    )
    .await;

    // Amount, timezone, thresholds, span, currency.
    assert_invalid(
        &h.post(&budgets, with(json!({ "amountNanos": 0 }))).await,
        "amountNanos",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "timezone": "Europe/Atlantis" })))
            .await,
        "timezone",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "thresholds": [50, 75] })))
            .await,
        "thresholds",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "currency": "JPY" }))).await,
        "currency",
    );
    assert_invalid(
        &h.post(&budgets, with(json!({ "period": "YEARLY" }))).await,
        "period",
    );
    assert_invalid(
        &h.post(
            &budgets,
            with(json!({ "startAt": "2025-02-01T00:00:00Z", "endAt": "2025-01-01T00:00:00Z" })),
        )
        .await,
        "endAt",
    );
    let reply = h
        .post(
            &budgets,
            with(json!({ "timezone": "Europe/Paris", "startAt": "2025-01-31T10:00:00Z" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["startAt"], "2025-01-31T10:00:00Z");

    // Filters and the cross-organisation list.
    let teams_only = h.get(&format!("{budgets}?ownerType=TEAM")).await;
    assert_eq!(teams_only.body["data"].as_array().unwrap().len(), 1);
    let id = budget["id"].as_str().unwrap();
    let path = format!("{budgets}/{id}");
    h.invalidated();
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "active": false, "amountNanos": 7 })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["amountNanos"], 7);
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Budget, &a)]);
    let inactive = h.get(&format!("{budgets}?active=false")).await;
    assert_eq!(inactive.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(inactive.body["data"][0]["id"], id);
    let reply = h
        .call(Method::PATCH, &path, Some(json!({ "ownerType": "TEAM" })))
        .await;
    assert_invalid(&reply, "ownerType");
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "endAt": "2000-01-01T00:00:00Z" })),
        )
        .await;
    assert_invalid(&reply, "endAt");
    assert_eq!(
        h.get("/api/admin/budgets").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let only_b = h
        .get(&format!("/api/admin/budgets?organisationId={b}"))
        .await;
    assert_eq!(only_b.body["data"], json!([]));

    // Another organisation cannot see it.
    let foreign = format!("/api/organisations/{b}/budgets/{id}");
    assert_error(&h.get(&foreign).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &h.get(&format!("{foreign}/windows")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // A fresh budget has one window: the one running now, computed from its schedule.
    let reply = h
        .post(&budgets, with(json!({ "name": "daily", "period": "DAILY", "timezone": "America/New_York", "startAt": "2025-03-01T05:00:00Z" })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let fresh = reply.body["id"].as_str().unwrap().to_owned();
    let windows = h.get(&format!("{budgets}/{fresh}/windows")).await;
    assert_eq!(windows.status, StatusCode::OK, "{}", windows.text);
    let schedule = odock_core::windows::Schedule {
        start_at: "2025-03-01T05:00:00Z".parse().unwrap(),
        timezone: "America/New_York".parse().unwrap(),
        period: odock_core::BudgetPeriod::Daily,
        end_at: None,
    };
    let expected = schedule.window_at(Utc::now()).unwrap();
    let data = windows.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", windows.text);
    assert_eq!(data[0]["id"], Value::Null);
    assert_eq!(data[0]["usedNanos"], 0);
    assert_eq!(data[0]["reservedNanos"], 0);
    let at = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
    };
    assert_eq!(at(&data[0]["startAt"]), expected.start);
    assert_eq!(at(&data[0]["endAt"]), expected.end);

    // A ledger row for an older window comes after the current one.
    let now = Utc::now().timestamp_millis();
    let day = 86_400_000;
    sqlx::query(
        "INSERT INTO budget_windows (id, budget_id, start_at, end_at, used_nanos, reserved_nanos, created_at, updated_at) \
         VALUES ('old', $1, $2, $3, 42, 0, $4, $5)",
    )
    .bind(&fresh)
    .bind(expected.start.timestamp_millis() - day)
    .bind(expected.start.timestamp_millis())
    .bind(now)
    .bind(now)
    .execute(&h.pool)
    .await
    .unwrap();
    let windows = h.get(&format!("{budgets}/{fresh}/windows")).await;
    assert_eq!(windows.body["data"][0]["id"], Value::Null);
    assert_eq!(windows.body["data"][1]["id"], "old");
    assert_eq!(windows.body["data"][1]["usedNanos"], 42);

    assert_eq!(
        h.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(&h.get(&path).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn quotas_validate_metrics_limits_and_list_windows() {
    let h = harness().await;
    let a = h.org("Acme").await;
    let b = h.org("Beta").await;
    let quotas = format!("/api/organisations/{a}/quotas");
    let (key, _) = h.api_key(&a).await;
    let base = json!({ "name": "rpd", "ownerType": "APIKEY", "ownerId": key, "metric": "REQUESTS", "limit": 1000, "period": "DAILY" });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for metric in [
        "REQUESTS",
        "TOKENS",
        "TOKENS_IN",
        "TOKENS_OUT",
        "ERRORS",
        "COST",
        "LATENCY_MS",
    ] {
        let reply = h.post(&quotas, with(json!({ "metric": metric }))).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{metric}: {}",
            reply.text
        );
        assert_eq!(reply.body["metric"], metric);
        assert_eq!(reply.body["ownerType"], "APIKEY");
        assert_eq!(reply.body["ownerId"], key.as_str());
        assert_eq!(reply.body["limit"], 1000);
    }
    assert_invalid(
        &h.post(&quotas, with(json!({ "metric": "BYTES" }))).await,
        "metric",
    );
    assert_invalid(&h.post(&quotas, with(json!({ "limit": 0 }))).await, "limit");
    assert_invalid(
        &h.post(&quotas, with(json!({ "limit": -5 }))).await,
        "limit",
    );
    assert_invalid(
        &h.post(&quotas, with(json!({ "amountNanos": 5 }))).await,
        "amountNanos",
    );
    assert_invalid(
        &h.post(&quotas, with(json!({ "timezone": "Nowhere" })))
            .await,
        "timezone",
    );
    let (foreign_key, _) = h.api_key(&b).await;
    assert_invalid(
        &h.post(&quotas, with(json!({ "ownerId": foreign_key })))
            .await,
        "ownerId",
    );

    let reply = h
        .post(
            &quotas,
            with(json!({ "ownerType": "ORG", "ownerId": null, "metric": "TOKENS" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let start = reply.body["startAt"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<Utc>>()
        .unwrap();
    let windows = h.get(&format!("{quotas}/{id}/windows")).await;
    assert_eq!(windows.status, StatusCode::OK, "{}", windows.text);
    let window = &windows.body["data"][0];
    assert_eq!(window["id"], Value::Null);
    assert_eq!(window["used"], 0);
    assert_eq!(window["reserved"], 0);
    assert_eq!(
        window["startAt"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        start
    );
    assert_eq!(
        window["endAt"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        start + Duration::days(1)
    );

    let path = format!("{quotas}/{id}");
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({ "limit": 5, "active": false })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["limit"], 5);
    assert_invalid(
        &h.call(Method::PATCH, &path, Some(json!({ "metric": "COST" })))
            .await,
        "metric",
    );
    let filtered = h.get(&format!("{quotas}?ownerType=ORG&active=false")).await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.get("/api/admin/quotas").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(
        h.get(&format!("/api/admin/quotas?organisationId={b}"))
            .await
            .body["data"],
        json!([])
    );
    assert_error(
        &h.get(&format!("/api/organisations/{b}/quotas/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        h.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(&h.get(&path).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn invalid_policies_are_refused_on_every_object() {
    let h = harness().await;
    let a = h.org("Acme").await;
    let provider = h.provider(&a).await;
    let model = h.model(&a, &provider, "gpt").await;
    let (key, _) = h.api_key(&a).await;
    let team = h
        .create(
            &format!("/api/organisations/{a}/teams"),
            json!({ "name": "core" }),
        )
        .await;
    let bad = [
        json!({ "requestPerMinute": 10 }),
        json!({ "ipAllowlist": ["10.0.0.0/33"] }),
        json!({ "burst": "lots" }),
    ];
    for policies in &bad {
        let org = format!("/api/organisations/{a}");
        let creates = [
            (
                format!("{org}/teams"),
                json!({ "name": "t2", "policies": policies }),
            ),
            (
                format!("{org}/apikeys"),
                json!({ "name": "k", "type": "ORGANISATION", "policies": policies }),
            ),
            (
                format!("{org}/models"),
                json!({ "name": "m2", "slug": "s", "type": "chat", "providerId": provider, "policies": policies }),
            ),
        ];
        for (path, body) in creates {
            assert_invalid(&h.post(&path, body).await, "policies");
        }
        let patches = [
            format!("{org}/teams/{team}"),
            format!("{org}/apikeys/{key}"),
            format!("{org}/models/{model}"),
            format!("{org}/settings"),
            format!("/api/admin/organisations/{a}"),
        ];
        for path in patches {
            let reply = h
                .call(Method::PATCH, &path, Some(json!({ "policies": policies })))
                .await;
            assert_invalid(&reply, "policies");
        }
    }
    // Valid ones are stored as given.
    let good = json!({ "ipBlocklist": ["192.0.2.0/24"], "tokensPerMinute": 1000 });
    let reply = h
        .call(
            Method::PATCH,
            &format!("/api/organisations/{a}/apikeys/{key}"),
            Some(json!({ "policies": good })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["policies"], good);
}

#[tokio::test]
async fn organisation_settings_read_and_patch() {
    let h = harness().await;
    let a = h.org("Acme").await;
    let settings = format!("/api/organisations/{a}/settings");
    let reply = h.get(&settings).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({ "name": "Acme", "contact": null, "routingEnabled": false, "policies": {} })
    );
    h.invalidated();
    let policies = json!({ "requestsPerSecond": 5, "ipAllowlist": ["10.0.0.0/8"] });
    let reply = h
        .call(
            Method::PATCH,
            &settings,
            Some(
                json!({ "contact": "ops@acme.test", "routingEnabled": true, "policies": policies }),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({ "name": "Acme", "contact": "ops@acme.test", "routingEnabled": true, "policies": policies })
    );
    assert_eq!(h.invalidated(), vec![cmd(CacheKind::Organisation, &a)]);
    // A name-only patch keeps the policies.
    let reply = h
        .call(
            Method::PATCH,
            &settings,
            Some(json!({ "name": "Acme Inc" })),
        )
        .await;
    assert_eq!(reply.body["policies"], policies);
    assert_eq!(
        h.get(&format!("/api/admin/organisations/{a}")).await.body["name"],
        "Acme Inc"
    );
    assert_invalid(
        &h.call(Method::PATCH, &settings, Some(json!({ "slug": "x" })))
            .await,
        "slug",
    );
    assert_invalid(
        &h.call(Method::PATCH, &settings, Some(json!({ "name": "" })))
            .await,
        "name",
    );
    assert_error(
        &h.get("/api/organisations/nope/settings").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
