//! Model grants, managed from the key's side and from the model's.

use http::{Method, StatusCode};
use odock_core::CacheKind;
use serde_json::json;

use crate::common::{assert_error, assert_invalid, cmd, harness};

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
