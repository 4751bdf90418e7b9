//! Issue 12, "host and network": a tenant administrator never reaches the gateway's host or its
//! network. Stdio commands (who may configure which, what a child process sees, the process caps)
//! and the egress policy (private upstreams refused at configuration and at connect time, header
//! allow-list), plus the unary body cap and the upstream's `Retry-After`.

use std::path::Path;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use odock_mcp::testing::FakeHttpMcpServer;
use reqwest::Method;
use serde_json::{json, Value};

use crate::mcp::{fake_stdio_binary, Client, McpWorld};
use crate::support::upstream::FakeUpstream;
use crate::support::{TestServer, ADMIN_TOKEN};

const ORG_ADMIN_PASSWORD: &str = "correct horse battery staple 12";

/// Signs in a fresh ORG_ADMIN of `org`; returns its session token.
async fn org_admin(server: &TestServer, org: &str) -> String {
    let email = format!("admin-{}@acme.test", odock::core::ids::random_hex(4));
    server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/users"),
            Some(json!({"email": email, "role": "ORG_ADMIN", "password": ORG_ADMIN_PASSWORD})),
        )
        .await;
    let response = server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"email": email, "password": ORG_ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().expect("session token").to_owned()
}

/// An admin API call with `token` (a session or the admin token); returns status and JSON.
async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The error body's code, after checking the documented shape.
fn error_code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert!(error["type"].is_string(), "{body}");
    error["code"].as_str().unwrap_or_else(|| panic!("{body}"))
}

fn mcp_servers(org: &str) -> String {
    format!("/api/organisations/{org}/mcp-servers")
}

/// `/bin/sh -c '<script> > proof'`: what an attacker would configure.
fn proof_script(proof: &Path) -> Value {
    json!(["-c", format!("id > {}", proof.display())])
}

#[tokio::test]
async fn an_org_admin_cannot_run_commands_on_the_host() {
    let server = TestServer::start().await;
    let world = McpWorld::create(&server).await;
    let tenant = org_admin(&server, &world.org).await;
    let scratch = tempfile::tempdir().unwrap();
    let proof = scratch.path().join("proof");
    let rce = json!({"name": "rce", "slug": "rce", "transport": "STDIO",
                     "stdioCommand": "/bin/sh", "stdioArgs": proof_script(&proof)});

    // Create: refused, whatever the transport.
    let (status, body) = call(
        &server,
        &tenant,
        Method::POST,
        &mcp_servers(&world.org),
        rce,
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "stdio_not_allowed"));
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ODOCK_MCP_STDIO_ALLOW"));
    let (status, body) = call(
        &server,
        &tenant,
        Method::POST,
        &mcp_servers(&world.org),
        json!({"name": "sneaky", "slug": "sneaky", "transport": "STREAMABLE_HTTP",
               "endpointUrl": "https://mcp.example/mcp", "stdioCommand": "/bin/sh"}),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "stdio_not_allowed"));

    // PATCH an HTTP server into STDIO, or just its command: refused.
    let (status, http) = call(
        &server,
        &tenant,
        Method::POST,
        &mcp_servers(&world.org),
        json!({"name": "web", "slug": "web", "transport": "STREAMABLE_HTTP",
               "endpointUrl": "https://mcp.example/mcp"}),
    )
    .await;
    assert_eq!(status, 201, "{http}");
    let web = format!(
        "{}/{}",
        mcp_servers(&world.org),
        http["id"].as_str().unwrap()
    );
    for patch in [
        json!({"transport": "STDIO", "stdioCommand": "/bin/sh", "stdioArgs": proof_script(&proof)}),
        json!({"stdioCommand": "/bin/sh"}),
        json!({"stdioEnv": {"LD_PRELOAD": "/tmp/evil.so"}}),
    ] {
        let (status, body) = call(&server, &tenant, Method::PATCH, &web, patch.clone()).await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "stdio_not_allowed"),
            "{patch}"
        );
    }

    // A STDIO server the operator configured: the tenant may rename it, not change its launch.
    let approved = world.stdio_server(&server, "approved").await;
    let approved = format!("{}/{approved}", mcp_servers(&world.org));
    let (status, body) = call(
        &server,
        &tenant,
        Method::PATCH,
        &approved,
        json!({"stdioArgs": proof_script(&proof)}),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "stdio_not_allowed"));
    let (status, renamed) = call(
        &server,
        &tenant,
        Method::PATCH,
        &approved,
        json!({"name": "Renamed"}),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["stdioApproved"], true);

    // A server stored without the operator's approval (as before this fix, or written behind the
    // API's back) does not start: 403 at run time, and no process ran.
    // Nothing is sealed for this server, so any master key will do.
    let pool = server.pool().await;
    let stored = odock_admin::services::mcp_servers::create(
        &pool,
        &odock_store::MasterKey::generate().0,
        &world.org,
        serde_json::from_value(json!({"name": "old", "slug": "old", "transport": "STDIO",
                                      "stdioCommand": "/bin/sh", "stdioArgs": proof_script(&proof)}))
        .unwrap(),
    )
    .await
    .unwrap();
    {
        server
            .admin_ok(
                Method::POST,
                &format!(
                    "/api/organisations/{}/apikeys/{}/mcp-access",
                    world.org, world.key_id
                ),
                Some(json!({"mcpServerIds": [stored.id]})),
            )
            .await;
        let mut client = Client::new(&server, "old", &world.key);
        let answer = client
            .post_text(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "t", "version": "1"}}})
                .to_string(),
            )
            .await;
        assert_eq!(answer.status, 403, "{}", answer.text);
        let body: Value = serde_json::from_str(&answer.text).unwrap();
        assert_eq!(error_code(&body), "stdio_not_allowed");
    }
    assert!(!proof.exists(), "no command ran on the host");
}

#[tokio::test]
async fn allow_listed_commands_run_for_an_org_admin_with_a_cleared_environment() {
    let fake = fake_stdio_binary().display().to_string();
    let allowed = fake.clone();
    let server = TestServer::start_with(move |config| {
        config.mcp_stdio_allow = vec![allowed];
    })
    .await;
    // A variable of the gateway's own environment, as ODOCK_ADMIN_TOKEN would be.
    std::env::set_var("ODOCK_HOST_SECURITY_TEST_SECRET", ADMIN_TOKEN);
    let world = McpWorld::create(&server).await;
    let tenant = org_admin(&server, &world.org).await;
    let (status, created) = call(
        &server,
        &tenant,
        Method::POST,
        &mcp_servers(&world.org),
        json!({"name": "tools", "slug": "tools", "transport": "STDIO", "stdioCommand": fake,
               "stdioArgs": ["--tag=host-security"], "stdioEnv": {"TOOL_TOKEN": "declared"}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["stdioApproved"], false);
    server
        .admin_ok(
            Method::POST,
            &format!(
                "/api/organisations/{}/apikeys/{}/mcp-access",
                world.org, world.key_id
            ),
            Some(json!({"mcpServerIds": [created["id"]]})),
        )
        .await;

    let mut client = Client::new(&server, "tools", &world.key);
    let init = client
        .post_text(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}}})
            .to_string(),
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.text);
    let info = client
        .post_text(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "process_info", "arguments": {}}})
            .to_string(),
        )
        .await;
    assert_eq!(info.status, 200, "{}", info.text);
    let text = info.response(2)["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let info: Value = serde_json::from_str(&text).unwrap();
    let env = info["env"].as_object().unwrap();
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["HOME", "PATH", "TMPDIR", "TOOL_TOKEN"], "{env:?}");
    assert!(
        !text.contains(ADMIN_TOKEN),
        "the gateway's secrets stay out"
    );
    assert_eq!(info["pgid"], info["pid"], "its own process group");
    assert_ne!(
        Path::new(info["cwd"].as_str().unwrap()),
        std::env::current_dir().unwrap()
    );
}

#[tokio::test]
async fn stdio_sessions_beyond_the_caps_are_refused_with_503() {
    let server = TestServer::start_with(|config| {
        config.mcp_stdio_max = 3;
        config.mcp_stdio_max_per_org = Some(2);
    })
    .await;
    let a = McpWorld::create(&server).await;
    let b = McpWorld::create(&server).await;
    a.stdio_server(&server, "tools").await;
    b.stdio_server(&server, "tools").await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                       "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();

    let mut a_sessions = Vec::new();
    for _ in 0..2 {
        let mut client = Client::new(&server, "tools", &a.key);
        assert_eq!(client.post_text(&initialize).await.status, 200);
        a_sessions.push(client);
    }
    // Organisation A holds its share: refused, while B still gets a slot.
    let refused = Client::new(&server, "tools", &a.key)
        .post_text(&initialize)
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    let body: Value = serde_json::from_str(&refused.text).unwrap();
    assert_eq!(error_code(&body), "overloaded");
    let mut b_client = Client::new(&server, "tools", &b.key);
    assert_eq!(b_client.post_text(&initialize).await.status, 200);
    // The global cap now: B is refused too.
    let refused = Client::new(&server, "tools", &b.key)
        .post_text(&initialize)
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text);

    // Ending a session gives its slot back.
    let session = a_sessions[0].session.clone().unwrap();
    let deleted = server
        .client
        .delete(server.url("/v1/mcp/tools"))
        .bearer_auth(&a.key)
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let mut again = Client::new(&server, "tools", &b.key);
    assert_eq!(again.post_text(&initialize).await.status, 200);
}

#[tokio::test]
async fn private_upstreams_are_refused_at_configuration_and_at_connect_time() {
    // The default policy: nothing private, loopback included.
    let server = TestServer::start_with(|config| config.egress_allow = Vec::new()).await;
    let mcp_upstream = FakeHttpMcpServer::start().await;
    let llm_upstream = FakeUpstream::start(|_| async { StatusCode::OK.into_response() }).await;
    let world = McpWorld::create(&server).await;
    let org = &world.org;

    // Literal addresses: refused when configured, naming the field and the setting.
    for (path, body, field) in [
        (
            mcp_servers(org),
            json!({"name": "m", "slug": "m", "transport": "STREAMABLE_HTTP",
                   "endpointUrl": mcp_upstream.url()}),
            "endpointUrl",
        ),
        (
            mcp_servers(org),
            json!({"name": "m", "slug": "m", "transport": "SSE",
                   "endpointUrl": "http://169.254.169.254/latest/meta-data/"}),
            "endpointUrl",
        ),
        (
            mcp_servers(org),
            json!({"name": "m", "slug": "m", "transport": "STREAMABLE_HTTP",
                   "endpointUrl": "https://mcp.example/mcp", "authType": "OAUTH2",
                   "authConfig": {"tokenUrl": "http://[fd00:ec2::254]/token",
                                  "clientId": "c", "clientSecret": "s"}}),
            "authConfig",
        ),
        (
            format!("/api/organisations/{org}/providers"),
            json!({"type": "OPENAI", "name": "p", "baseUrl": format!("{}/v1", llm_upstream.root())}),
            "baseUrl",
        ),
        (
            format!("/api/organisations/{org}/providers"),
            json!({"type": "OPENAI", "name": "p", "baseUrl": "http://[::ffff:127.0.0.1]:8000/v1"}),
            "baseUrl",
        ),
    ] {
        let (status, body) = call(&server, ADMIN_TOKEN, Method::POST, &path, body).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_request"),
            "{body}"
        );
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ODOCK_EGRESS_ALLOW"),
            "{body}"
        );
    }

    // A name resolving to loopback passes configuration and is refused when connecting.
    let by_name = |url: String| url.replace("127.0.0.1", "localhost");
    world
        .add_server(
            &server,
            "local",
            json!({"transport": "STREAMABLE_HTTP", "endpointUrl": by_name(mcp_upstream.url())}),
            true,
        )
        .await;
    let answer = Client::new(&server, "local", &world.key)
        .post_text(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}}})
            .to_string(),
        )
        .await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    let body: Value = serde_json::from_str(&answer.text).unwrap();
    assert_eq!(error_code(&body), "upstream_forbidden");
    assert!(answer.text.contains("ODOCK_EGRESS_ALLOW"));
    assert!(mcp_upstream.requests().is_empty(), "nothing reached it");

    let provider = server
        .create_provider(
            org,
            "OPENAI",
            &by_name(format!("{}/v1", llm_upstream.root())),
            json!({}),
        )
        .await;
    let model = server
        .create_model(org, &provider, "gpt-4o", "gpt-4o")
        .await;
    server.grant(org, &world.key_id, &model).await;
    let response = server
        .chat(
            &world.key,
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "upstream_forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ODOCK_EGRESS_ALLOW"));
    assert!(llm_upstream.received().is_empty(), "nothing reached it");
}

#[tokio::test]
async fn base_urls_with_fragments_and_unsafe_model_slugs_are_refused() {
    let server = TestServer::start().await;
    let org = server.create_org().await;
    let (status, body) = call(
        &server,
        ADMIN_TOKEN,
        Method::POST,
        &format!("/api/organisations/{org}/providers"),
        json!({"type": "OPENAI", "name": "p", "baseUrl": "https://evil.example/#"}),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_request"));
    assert_eq!(body["error"]["field"], "baseUrl");

    let provider = server
        .create_provider(
            &org,
            "GOOGLE",
            "https://generativelanguage.googleapis.com",
            json!({}),
        )
        .await;
    for slug in ["../../x#", "gemini?alt=json", "a b"] {
        let (status, body) = call(
            &server,
            ADMIN_TOKEN,
            Method::POST,
            &format!("/api/organisations/{org}/models"),
            json!({"name": "m", "slug": slug, "type": "chat", "providerId": provider}),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_request"),
            "{slug}"
        );
        assert_eq!(body["error"]["field"], "slug");
    }
}

#[tokio::test]
async fn only_mcp_headers_reach_an_mcp_upstream() {
    let server = TestServer::start().await;
    let upstream = FakeHttpMcpServer::start().await;
    let world = McpWorld::create(&server).await;
    world
        .http_server(&server, "tools", &upstream.url(), json!({}))
        .await;
    let response = server
        .client
        .post(server.url("/v1/mcp/tools"))
        .bearer_auth(&world.key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("metadata-flavor", "Google")
        .header("x-aws-ec2-metadata-token", "imds")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-custom", "1")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "t", "version": "1"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = &upstream.requests()[0];
    for name in [
        "metadata-flavor",
        "x-aws-ec2-metadata-token",
        "x-forwarded-for",
        "x-custom",
        "authorization",
    ] {
        assert_eq!(seen.header(name), None, "{name} must not be forwarded");
    }
    assert!(seen.header("accept").is_some());
}

/// A JSON body of `size` bytes.
fn big_answer(size: usize) -> Response {
    let padding = "x".repeat(size);
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"id": "chatcmpl-1", "object": "chat.completion", "padding": padding}).to_string(),
    )
        .into_response()
}

#[tokio::test]
async fn unary_upstream_answers_above_the_cap_are_refused() {
    let server = TestServer::start_with(|config| config.upstream_max_response_bytes = 4096).await;
    let upstream = FakeUpstream::start(|request| async move {
        let size = if request.text().contains("big") {
            64 * 1024
        } else {
            100
        };
        big_answer(size)
    })
    .await;
    let org = server.create_org().await;
    let provider = server
        .create_provider(
            &org,
            "OPENAI",
            &format!("{}/v1", upstream.root()),
            json!({}),
        )
        .await;
    let model = server
        .create_model(&org, &provider, "gpt-4o", "gpt-4o")
        .await;
    let (key_id, key) = server.create_key(&org).await;
    server.grant(&org, &key_id, &model).await;
    let chat = |content: &'static str| json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]});
    let small = server.chat(&key, chat("small")).await;
    assert_eq!(small.status(), 200);
    let big = server.chat(&key, chat("big")).await;
    assert_eq!(big.status(), 502);
    let body: Value = big.json().await.unwrap();
    assert_eq!(error_code(&body), "upstream_response_too_large");
}

#[tokio::test]
async fn the_upstreams_retry_after_reaches_the_client() {
    let server = TestServer::start().await;
    let upstream = FakeUpstream::start(|_| async {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("content-type", "application/json"), ("retry-after", "7")],
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}).to_string(),
        )
            .into_response()
    })
    .await;
    let org = server.create_org().await;
    let provider = server
        .create_provider(
            &org,
            "OPENAI",
            &format!("{}/v1", upstream.root()),
            json!({}),
        )
        .await;
    let model = server
        .create_model(&org, &provider, "gpt-4o", "gpt-4o")
        .await;
    let (key_id, key) = server.create_key(&org).await;
    server.grant(&org, &key_id, &model).await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});

    // Native route: relayed with the upstream's status, body and Retry-After.
    let native = server.chat(&key, body.clone()).await;
    assert_eq!(native.status(), 429);
    assert_eq!(native.headers()["retry-after"], "7");

    // Translated route: 429 upstream_rate_limited, with the same Retry-After.
    let unified = server
        .client
        .post(server.url("/v1/llm/chat"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unified.status(), 429);
    assert_eq!(unified.headers()["retry-after"], "7");
    let body: Value = unified.json().await.unwrap();
    assert_eq!(error_code(&body), "upstream_rate_limited");
}
