//! Organisations: create, read, update, delete, conflicts, and their settings.

use http::{Method, StatusCode};
use odock_core::CacheKind;
use serde_json::{json, Value};

use crate::common::{assert_error, assert_invalid, cmd, harness};

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
