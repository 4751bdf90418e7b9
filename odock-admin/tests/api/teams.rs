//! Teams: create, read, update, delete, members, organisation boundaries.

use http::{Method, StatusCode};
use odock_core::CacheKind;
use serde_json::json;

use crate::common::{assert_error, assert_invalid, cmd, harness, insert_user};

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
