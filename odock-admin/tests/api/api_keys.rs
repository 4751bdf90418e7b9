//! Virtual API keys: the secret shown once, rotation in place.

use chrono::{Duration, Utc};
use http::{Method, StatusCode};
use odock_core::CacheKind;
use odock_store::keys::hash_virtual_key;
use serde_json::{json, Value};

use crate::common::{assert_error, assert_invalid, assert_invalid_without_field, cmd, harness};

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
