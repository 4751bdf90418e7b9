//! Rate-limit and access policies: invalid ones are refused on every object that holds one.

use http::{Method, StatusCode};
use serde_json::json;

use crate::common::{assert_invalid, harness};

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
