//! Notification channels: a refused PATCH changes nothing, and channels need their organisation.

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::{assert_error, assert_invalid, harness};

#[tokio::test]
async fn a_refused_channel_patch_leaves_the_channel_as_it_was() {
    let h = harness().await;
    let org = h.org("Acme").await;
    let channels = format!("/api/organisations/{org}/notification-channels");
    let created = h
        .post(
            &channels,
            json!({"name": "ops", "type": "WEBHOOK", "url": "https://hooks.example.com/odock",
                   "secret": "whsec-0123456789abcdef", "events": ["budget.threshold"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let path = format!("{channels}/{}", created.body["id"].as_str().unwrap());

    // A secret too short is refused, and the name and URL sent with it are not applied either.
    let refused = h
        .call(
            Method::PATCH,
            &path,
            Some(
                json!({"name": "renamed", "url": "https://other.example.com/x", "secret": "short"}),
            ),
        )
        .await;
    assert_invalid(&refused, "secret");
    let unchanged = h.get(&path).await;
    assert_eq!(unchanged.body["name"], "ops", "{}", unchanged.text);
    assert_eq!(unchanged.body["url"], "https://hooks.example.com/odock");
    assert_eq!(unchanged.body["hasSecret"], true);

    // A good one is applied with the rest, in one write; null removes it.
    let patched = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "renamed", "secret": "whsec-fedcba9876543210"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["name"], "renamed");
    assert_eq!(patched.body["hasSecret"], true);
    assert!(
        patched.body.get("secret").is_none(),
        "the secret is write-only"
    );
    let cleared = h
        .call(Method::PATCH, &path, Some(json!({"secret": null})))
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(cleared.body["hasSecret"], false);
    assert_eq!(cleared.body["name"], "renamed");
}

#[tokio::test]
async fn a_channel_of_an_unknown_organisation_is_not_found() {
    let h = harness().await;
    let reply = h
        .post(
            "/api/organisations/org_missing/notification-channels",
            json!({"name": "ops", "type": "EMAIL", "emails": ["ops@example.com"]}),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
}
