//! The audit log: entries of real writes that never hold a secret.

use std::collections::HashMap;

use http::{Method, StatusCode};
use odock_admin::testing::{assert_error, harness, ADMIN_TOKEN};
use odock_core::Role;
use serde_json::{json, Value};

#[tokio::test]
async fn admin_writes_are_audited_without_secrets() {
    let h = harness().await;
    let org = h
        .create("/api/admin/organisations", json!({"name": "Audited"}))
        .await;
    let provider = h
        .create(
            &format!("/api/organisations/{org}/providers"),
            json!({"type": "OPENAI", "name": "OpenAI"}),
        )
        .await;
    let upstream_secret = "sk-proj-UPSTREAM-SECRET-0123456789abcdef";
    let provider_key = h
        .create(
            &format!("/api/organisations/{org}/providers/{provider}/keys"),
            json!({"name": "primary", "key": upstream_secret}),
        )
        .await;
    let created = h
        .admin(
            Method::POST,
            &format!("/api/organisations/{org}/apikeys"),
            Some(&json!({"name": "ci", "type": "ORGANISATION"})),
        )
        .await;
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    let first_secret = created.body["key"].as_str().unwrap().to_owned();
    let rotated = h
        .admin(
            Method::POST,
            &format!("/api/organisations/{org}/apikeys/{key_id}/rotate"),
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let second_secret = rotated.body["key"].as_str().unwrap().to_owned();
    let renamed = h
        .admin(
            Method::PATCH,
            &format!("/api/organisations/{org}/apikeys/{key_id}"),
            Some(&json!({"name": "ci-renamed"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    // A refused write leaves no entry.
    let refused = h
        .admin(
            Method::PATCH,
            &format!("/api/organisations/{org}/apikeys/{key_id}"),
            Some(&json!({"name": ""})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    // A signed-in ORG_ADMIN's write names the user.
    let admin = h
        .user(Some(&org), "admin@audited.test", Role::OrgAdmin)
        .await;
    let session = h.session(&admin).await;
    let reply = h
        .call(
            Method::POST,
            &format!("/api/organisations/{org}/providers/{provider}/keys/{provider_key}/revoke"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // A second key, deleted: the entry keeps what it was.
    let doomed = h
        .create(
            &format!("/api/organisations/{org}/apikeys"),
            json!({"name": "doomed", "type": "ORGANISATION"}),
        )
        .await;
    let deleted = h
        .admin(
            Method::DELETE,
            &format!("/api/organisations/{org}/apikeys/{doomed}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);

    // An invitation's token (also inside its `url`) is a secret too.
    let invitation = h
        .admin(
            Method::POST,
            &format!("/api/organisations/{org}/invitations"),
            Some(&json!({"email": "new@audited.test", "role": "USER"})),
        )
        .await;
    assert_eq!(
        invitation.status,
        StatusCode::CREATED,
        "{}",
        invitation.text
    );
    let invitation_token = invitation.body["token"].as_str().unwrap().to_owned();

    let log = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/audit-log"),
            None,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let entries = log.body["data"].as_array().unwrap();
    let by_action: HashMap<&str, &Value> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e))
        .collect();
    let mut actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "createApiKey",
            "createApiKey",
            "createInvitation",
            "createOrganisation",
            "createProvider",
            "createProviderKey",
            "deleteApiKey",
            "revokeProviderKey",
            "rotateApiKey",
            "updateApiKey"
        ]
    );
    assert_eq!(entries.len(), 10, "{}", log.text);
    let delete = by_action["deleteApiKey"];
    assert_eq!(delete["targetId"], doomed.as_str());
    assert_eq!(delete["summary"]["before"]["name"], "doomed");
    assert!(delete["summary"].get("after").is_none());
    let create_key = entries
        .iter()
        .find(|e| e["action"] == "createApiKey" && e["targetId"] == key_id.as_str())
        .unwrap();
    assert_eq!(create_key["actorKind"], "admin-token");
    assert_eq!(create_key["actorUserId"], Value::Null);
    assert_eq!(create_key["targetType"], "api_key");
    assert_eq!(create_key["targetId"], key_id.as_str());
    assert_eq!(create_key["summary"]["request"]["name"], "ci");
    let update = by_action["updateApiKey"];
    assert_eq!(update["summary"]["before"]["name"], "ci");
    assert_eq!(update["summary"]["after"]["name"], "ci-renamed");
    assert_eq!(update["summary"]["request"], json!({"name": "ci-renamed"}));
    let revoke = by_action["revokeProviderKey"];
    assert_eq!(revoke["actorKind"], "user");
    assert_eq!(revoke["actorUserId"], admin.as_str());
    assert_eq!(revoke["targetType"], "provider_key");
    assert_eq!(revoke["targetId"], provider_key.as_str());
    assert_eq!(revoke["summary"]["before"]["revoked"], false);
    assert_eq!(revoke["summary"]["after"]["revoked"], true);

    // No secret anywhere: not in the answer, not in the table.
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT id || ' ' || COALESCE(organisation_id, '') || ' ' || actor_kind || ' ' || action || ' ' || \
         target_type || ' ' || COALESCE(target_id, '') || ' ' || summary FROM audit_log",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 10, "{stored:?}");
    let everything = format!("{} {}", log.text, stored.join("\n"));
    assert_eq!(
        by_action["createInvitation"]["summary"]["after"]["email"],
        "new@audited.test"
    );
    for secret in [
        upstream_secret,
        &first_secret,
        &second_secret,
        ADMIN_TOKEN,
        &session,
        &invitation_token,
    ] {
        assert!(
            !everything.contains(secret),
            "a secret leaked into the audit log"
        );
    }

    // Organisation creation lands in the cross-organisation log, readable by SUPER_ADMIN only.
    let all = h
        .admin(Method::GET, "/api/admin/audit-log?limit=2", None)
        .await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 2);
    assert!(all.body["nextCursor"].is_string());
    let orgs = h
        .admin(
            Method::GET,
            &format!("/api/admin/audit-log?organisationId={org}&limit=500"),
            None,
        )
        .await;
    assert!(orgs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "createOrganisation" && e["targetId"] == org.as_str()));
    let reply = h
        .call(Method::GET, "/api/admin/audit-log", Some(&session), None)
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    let manager = h
        .user(Some(&org), "manager@audited.test", Role::Manager)
        .await;
    let manager = h.session(&manager).await;
    let reply = h
        .call(
            Method::GET,
            &format!("/api/organisations/{org}/audit-log"),
            Some(&manager),
            None,
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = h
        .call(
            Method::GET,
            &format!("/api/organisations/{org}/audit-log"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}
