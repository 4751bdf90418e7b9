//! MCP servers: secrets sealed at rest, previews only.

use http::{Method, StatusCode};
use odock_core::{CacheKind, InvalidationCommand};
use serde_json::json;

use super::harness;

#[tokio::test]
async fn mcp_servers_keep_their_secrets_sealed_and_show_previews() {
    let h = harness().await;
    let org = h.org("Acme").await;
    let other = h.org("Other").await;
    let servers = format!("/api/organisations/{org}/mcp-servers");
    let client_secret = "oauth-client-secret-value-42";
    let env_secret = "stdio-env-secret-value-77";
    h.invalidated();
    let (status, created, text) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({
                "name": "Search", "slug": "search", "transport": "STREAMABLE_HTTP",
                "endpointUrl": "https://mcp.example.com/mcp", "authType": "OAUTH2",
                "authConfig": {"tokenUrl": "https://auth.example.com/token", "clientId": "odock",
                               "clientSecret": client_secret, "scope": "tools"},
                "stdioEnv": {"API_KEY": env_secret},
                "allowedTools": ["search", "fetch"], "blockedTools": ["delete"],
                "semanticFilter": {"blockedKeywords": ["password"]},
                "pricing": {"callNanosUsd": 2000, "inputNanosUsdPerMillionBytes": 500000000},
                "policies": {"requestsPerMinute": 60},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert!(
        !text.contains(client_secret) && !text.contains(env_secret),
        "{text}"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["authType"], "OAUTH2");
    assert_eq!(created["authConfigPreview"]["clientId"], "odock");
    assert_eq!(created["authConfigPreview"]["clientSecret"], "oau…e-42");
    assert_eq!(created["stdioEnvPreview"]["API_KEY"], "std…e-77");
    assert_eq!(created["pricing"]["callNanosUsd"], 2000);
    assert_eq!(created["pricing"]["outputNanosUsdPerMillionBytes"], 0);
    assert_eq!(created["enabled"], true);
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::McpServer, id.as_str())]
    );

    // At rest: envelopes, not the secrets.
    let (auth, env): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT auth_config, stdio_env FROM mcp_servers WHERE id = $1")
            .bind(&id)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    let (auth, env) = (auth.unwrap(), env.unwrap());
    assert!(!auth.contains(client_secret) && !env.contains(env_secret));
    assert!(h
        .master_key
        .open(&auth)
        .unwrap()
        .expose()
        .contains(client_secret));

    let got = h.ok(Method::GET, &format!("{servers}/{id}"), None).await;
    assert_eq!(got, created);
    let listed = h.ok(Method::GET, &servers, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let all = h
        .ok(
            Method::GET,
            &format!("/api/admin/mcp-servers?organisationId={org}"),
            None,
        )
        .await;
    assert_eq!(all["data"][0]["id"], id.as_str());

    let (status, _, _) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({"name": "x", "slug": "search", "transport": "STDIO"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body, _) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({"name": "x", "slug": "y", "transport": "STDIO", "authType": "BEARER"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "authConfig");
    let (status, _, _) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({"name": "x", "slug": "y", "transport": "CARRIER_PIGEON"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = h
        .call(
            Method::GET,
            &format!("/api/organisations/{other}/mcp-servers/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let patched = h
        .ok(
            Method::PATCH,
            &format!("{servers}/{id}"),
            Some(json!({"enabled": false, "authType": "BEARER", "authConfig": {"token": "new-bearer-token-999"}})),
        )
        .await;
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["authConfigPreview"], json!({"token": "new…-999"}));
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::McpServer, id.as_str())]
    );

    let (status, _, _) = h
        .call(Method::DELETE, &format!("{servers}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = h.call(Method::GET, &format!("{servers}/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
