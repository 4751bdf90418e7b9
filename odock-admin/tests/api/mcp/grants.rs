//! MCP grants, managed from the key's side and from the server's, invalidating the keys.

use http::{Method, StatusCode};
use odock_core::{CacheKind, InvalidationCommand};
use serde_json::json;

use super::harness;

#[tokio::test]
async fn mcp_grants_are_managed_from_both_sides_and_invalidate_the_keys() {
    let h = harness().await;
    let org = h.org("Acme").await;
    let servers = format!("/api/organisations/{org}/mcp-servers");
    let server = |slug: &'static str| json!({"name": slug, "slug": slug, "transport": "STDIO", "stdioCommand": "mcp-tools"});
    let tools = h.ok(Method::POST, &servers, Some(server("tools"))).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let search = h.ok(Method::POST, &servers, Some(server("search"))).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = h.api_key(&org).await;
    let other_key = h.api_key(&org).await;
    h.invalidated();

    let access = format!("/api/organisations/{org}/apikeys/{key}/mcp-access");
    let granted = h
        .ok(
            Method::POST,
            &access,
            Some(json!({"mcpServerIds": [tools, tools]})),
        )
        .await;
    assert_eq!(granted["data"].as_array().unwrap().len(), 1);
    assert_eq!(granted["data"][0]["mcpServerSlug"], "tools");
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::Grant, key.as_str())]
    );

    let from_server = h
        .ok(
            Method::POST,
            &format!("{servers}/{search}/api-key-access"),
            Some(json!({"apiKeyIds": [key, other_key]})),
        )
        .await;
    assert_eq!(from_server["data"].as_array().unwrap().len(), 2);
    let touched: Vec<String> = h.invalidated().into_iter().map(|c| c.id).collect();
    assert_eq!(touched.len(), 2);
    assert!(touched.contains(&key) && touched.contains(&other_key));

    let listed = h.ok(Method::GET, &access, None).await;
    let slugs: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["mcpServerSlug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["search", "tools"]);
    let (status, body, _) = h
        .call(
            Method::POST,
            &access,
            Some(json!({"mcpServerIds": ["nope"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "mcpServerIds");

    let (status, _, _) = h
        .call(Method::DELETE, &format!("{access}/{tools}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::Grant, key.as_str())]
    );
    let (status, _, _) = h
        .call(Method::DELETE, &format!("{access}/{tools}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let keys = h
        .ok(
            Method::GET,
            &format!("{servers}/{search}/api-key-access"),
            None,
        )
        .await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
}
