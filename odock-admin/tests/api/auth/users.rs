//! The user lifecycle: revoke, approve, decline and delete.

use http::{Method, StatusCode};
use odock_admin::testing::{assert_error, harness};
use odock_core::{CacheKind, InvalidationCommand};
use serde_json::json;

use super::{acme, login, me, token_of};

#[tokio::test]
async fn user_lifecycle_revoke_approve_decline_and_delete() {
    let h = harness().await;
    let (org, _) = acme(&h).await;
    let base = format!("/api/organisations/{org}");
    let bob = h
        .create(
            &format!("{base}/users"),
            json!({"email": "bob@acme.test", "role": "USER", "password": "bob's passphrase"}),
        )
        .await;
    let key = h
        .create(
            &format!("{base}/apikeys"),
            json!({"name": "bob", "type": "USER", "userId": bob}),
        )
        .await;
    let session = token_of(&login(&h, "bob@acme.test", "bob's passphrase").await);

    // Revoking ends the sessions and refuses sign-in; the keys are untouched.
    let revoked = h
        .admin(
            Method::PATCH,
            &format!("{base}/users/{bob}"),
            Some(&json!({"status": "REVOKED"})),
        )
        .await;
    assert_eq!(revoked.body["status"], "REVOKED", "{}", revoked.text);
    assert_error(
        &me(&h, &session).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &login(&h, "bob@acme.test", "bob's passphrase").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let still = h
        .admin(Method::GET, &format!("{base}/apikeys/{key}"), None)
        .await;
    assert_eq!(still.body["revoked"], false, "{}", still.text);

    // Pending users are approved or declined, once.
    let pending = h
        .create(
            &format!("{base}/users"),
            json!({"email": "carol@acme.test", "role": "MANAGER"}),
        )
        .await;
    let listed = h
        .admin(Method::GET, &format!("{base}/users/{pending}"), None)
        .await;
    assert_eq!(listed.body["status"], "PENDING");
    let approved = h
        .admin(
            Method::POST,
            &format!("{base}/users/{pending}/approve"),
            None,
        )
        .await;
    assert_eq!(approved.body["status"], "ACTIVE", "{}", approved.text);
    let again = h
        .admin(
            Method::POST,
            &format!("{base}/users/{pending}/approve"),
            None,
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    let dave = h
        .create(
            &format!("{base}/users"),
            json!({"email": "dave@acme.test", "role": "USER"}),
        )
        .await;
    let declined = h
        .admin(Method::POST, &format!("{base}/users/{dave}/decline"), None)
        .await;
    assert_eq!(declined.body["status"], "REVOKED", "{}", declined.text);

    // Emails are unique, and SUPER_ADMIN is not an organisation role.
    let duplicate = h
        .admin(
            Method::POST,
            &format!("{base}/users"),
            Some(&json!({"email": "BOB@acme.test", "role": "USER"})),
        )
        .await;
    assert_error(&duplicate, StatusCode::CONFLICT, "conflict");
    let super_admin = h
        .admin(
            Method::POST,
            &format!("{base}/users"),
            Some(&json!({"email": "eve@acme.test", "role": "SUPER_ADMIN"})),
        )
        .await;
    assert_eq!(
        super_admin.body["error"]["field"], "role",
        "{}",
        super_admin.text
    );

    // Deleting a user deletes their USER keys, which are invalidated at once.
    h.invalidations.0.lock().clear();
    let deleted = h
        .admin(Method::DELETE, &format!("{base}/users/{bob}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let gone = h
        .admin(Method::GET, &format!("{base}/apikeys/{key}"), None)
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    assert!(h
        .invalidations
        .0
        .lock()
        .contains(&InvalidationCommand::new(CacheKind::ApiKey, &key)));
    let listed = h.admin(Method::GET, &format!("{base}/users"), None).await;
    let emails: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "{emails:?}");
    assert!(!emails.contains(&"bob@acme.test"));
}
