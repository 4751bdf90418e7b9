//! The governed MCP route through the real server, against `odock-mcp`'s fake MCP servers: the
//! streamable-HTTP fake on loopback and the stdio fake binary as a child process.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use odock_mcp::testing::{FakeHttpMcpServer, FakeSseMcpServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::TestServer;

/// $0.000001 per call, 3,000 and 5,000 nanos per byte in and out (3e9 / 5e9 per 1M bytes).
const CALL_NANOS: i64 = 1_000;
const IN_PER_MILLION: i64 = 3_000_000_000;
const OUT_PER_MILLION: i64 = 5_000_000_000;

fn pricing() -> Value {
    json!({"callNanosUsd": CALL_NANOS, "inputNanosUsdPerMillionBytes": IN_PER_MILLION,
           "outputNanosUsdPerMillionBytes": OUT_PER_MILLION})
}

/// The fake stdio MCP server binary (`odock-mcp`'s test fixture), built once if this test binary
/// was compiled without it.
pub fn fake_stdio_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/gateway-… → target/<profile>/odock-fake-mcp-stdio
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target dir");
        let path = dir.join("odock-fake-mcp-stdio");
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "odock-mcp", "--bin", "odock-fake-mcp-stdio"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo build of the fake stdio server");
            assert!(status.success(), "building odock-fake-mcp-stdio failed");
        }
        assert!(path.exists(), "{} is missing", path.display());
        path
    })
    .clone()
}

/// An organisation, an ORGANISATION key, and helpers to add MCP servers granted to it.
pub struct McpWorld {
    pub org: String,
    pub key_id: String,
    pub key: String,
}

impl McpWorld {
    pub async fn create(server: &TestServer) -> Self {
        let org = server.create_org().await;
        let (key_id, key) = server.create_key(&org).await;
        Self { org, key_id, key }
    }

    /// Creates an MCP server (`body` completes `{name, slug}`), grants it to the key when `grant`.
    pub async fn add_server(
        &self,
        server: &TestServer,
        slug: &str,
        body: Value,
        grant: bool,
    ) -> String {
        let mut object = json!({"name": slug, "slug": slug});
        object
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let created = server
            .admin_ok(
                Method::POST,
                &format!("/api/organisations/{}/mcp-servers", self.org),
                Some(object),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        if grant {
            server
                .admin_ok(
                    Method::POST,
                    &format!(
                        "/api/organisations/{}/apikeys/{}/mcp-access",
                        self.org, self.key_id
                    ),
                    Some(json!({"mcpServerIds": [id]})),
                )
                .await;
        }
        id
    }

    pub async fn http_server(
        &self,
        server: &TestServer,
        slug: &str,
        url: &str,
        extra: Value,
    ) -> String {
        let mut body = json!({"transport": "STREAMABLE_HTTP", "endpointUrl": url, "pricing": pricing(),
                              "blockedTools": ["secret_tool"],
                              "semanticFilter": {"blockedKeywords": ["forbidden"]}});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.add_server(server, slug, body, true).await
    }

    pub async fn stdio_server(&self, server: &TestServer, slug: &str) -> String {
        let command = fake_stdio_binary().display().to_string();
        self.add_server(
            server,
            slug,
            json!({"transport": "STDIO", "stdioCommand": command, "pricing": pricing(),
                   "blockedTools": ["secret_tool"]}),
            true,
        )
        .await
    }
}

/// One answer of the gateway: status, session header, raw text and the JSON-RPC messages in it
/// (one JSON body, or the `data:` events of an event stream).
pub struct Answer {
    pub status: u16,
    pub session: Option<String>,
    pub request_id: String,
    pub text: String,
    pub messages: Vec<Value>,
}

impl Answer {
    /// The response to request `id`.
    pub fn response(&self, id: i64) -> &Value {
        self.messages
            .iter()
            .find(|m| m["id"] == id && m.get("method").is_none())
            .unwrap_or_else(|| panic!("no response to {id} in {}", self.text))
    }
}

/// A minimal MCP client over the gateway (plain HTTP, as an agent would speak it).
pub struct Client<'a> {
    server: &'a TestServer,
    path: String,
    key: String,
    pub session: Option<String>,
}

impl<'a> Client<'a> {
    pub fn new(server: &'a TestServer, slug: &str, key: &str) -> Self {
        Self {
            server,
            path: format!("/v1/mcp/{slug}"),
            key: key.to_owned(),
            session: None,
        }
    }

    pub async fn post_text(&mut self, body: &str) -> Answer {
        let mut request = self
            .server
            .client
            .post(self.server.url(&self.path))
            .bearer_auth(&self.key)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let request_id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let messages = parse_messages(&text);
        if session.is_some() {
            self.session = session.clone();
        }
        Answer {
            status,
            session,
            request_id,
            text,
            messages,
        }
    }

    pub async fn post(&mut self, body: Value) -> Answer {
        self.post_text(&body.to_string()).await
    }

    pub async fn initialize(&mut self) -> Answer {
        let answer = self
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "odock-test", "version": "1"}}}),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        answer
    }

    pub async fn call(&mut self, id: i64, tool: &str, arguments: Value) -> Answer {
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}}))
            .await
    }
}

fn parse_messages(text: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return match value {
            Value::Array(items) => items,
            other => vec![other],
        };
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

fn tool_names(answer: &Answer, id: i64) -> Vec<String> {
    answer.response(id)["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {}", answer.text))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the MCP usage record of `request_id` is visible.
pub async fn mcp_usage_record(server: &TestServer, org: &str, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = server
            .admin_ok(
                Method::GET,
                &format!("/api/organisations/{org}/mcp-usage-records?requestId={request_id}"),
                None,
            )
            .await;
        if let Some(record) = list["data"].as_array().and_then(|d| d.first()) {
            return record.clone();
        }
        assert!(
            Instant::now() < deadline,
            "MCP usage record of {request_id} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn expected_cost(calls: i64, input: usize, output: usize) -> i64 {
    let scaled = calls * CALL_NANOS * 1_000_000
        + input as i64 * IN_PER_MILLION
        + output as i64 * OUT_PER_MILLION;
    (scaled + 999_999) / 1_000_000
}

async fn error_code(server: &TestServer, path: &str, key: Option<&str>) -> (u16, String) {
    let mut request = server
        .client
        .post(server.url(path))
        .header("accept", "application/json, text/event-stream")
        // An initialize: stdio servers spawn their process for it (other requests need a session).
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "odock-test", "version": "1"}}}),
        );
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn every_mcp_error_code_is_produced() {
    let server = TestServer::start().await;
    let fake = FakeHttpMcpServer::start().await;
    let world = McpWorld::create(&server).await;
    let key = world.key.as_str();
    world
        .http_server(&server, "tools", &fake.url(), json!({}))
        .await;
    world
        .add_server(
            &server,
            "ungranted",
            json!({"transport": "STREAMABLE_HTTP", "endpointUrl": fake.url()}),
            false,
        )
        .await;
    world
        .add_server(
            &server,
            "off",
            json!({"transport": "STREAMABLE_HTTP", "endpointUrl": fake.url(), "enabled": false}),
            true,
        )
        .await;
    let team = server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/teams", world.org),
            Some(json!({"name": "t"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .add_server(
            &server,
            "team-only",
            json!({"transport": "STREAMABLE_HTTP", "endpointUrl": fake.url(), "teamId": team}),
            true,
        )
        .await;
    world
        .add_server(
            &server,
            "no-endpoint",
            json!({"transport": "STREAMABLE_HTTP"}),
            true,
        )
        .await;
    world
        .add_server(&server, "no-command", json!({"transport": "STDIO"}), true)
        .await;
    world
        .add_server(
            &server,
            "bad-oauth",
            json!({"transport": "STREAMABLE_HTTP", "endpointUrl": fake.url(), "authType": "OAUTH2",
                   "authConfig": {"tokenUrl": "http://127.0.0.1:9/token", "clientId": "c", "clientSecret": "s3cr3t"}}),
            true,
        )
        .await;
    world
        .add_server(
            &server,
            "unreachable",
            json!({"transport": "STREAMABLE_HTTP", "endpointUrl": "http://127.0.0.1:9/mcp"}),
            true,
        )
        .await;
    world
        .add_server(
            &server,
            "bad-command",
            json!({"transport": "STDIO", "stdioCommand": "/nonexistent/odock-mcp-server"}),
            true,
        )
        .await;

    let cases = [
        ("/v1/mcp", Some(key), 400, "invalid_mcp_ref"),
        ("/v1/mcp/tools", None, 401, "unauthorized"),
        ("/v1/mcp/nope", Some(key), 404, "mcp_not_found"),
        ("/v1/mcp/off", Some(key), 404, "mcp_not_found"),
        ("/v1/mcp/ungranted", Some(key), 403, "mcp_not_allowed"),
        ("/v1/mcp/team-only", Some(key), 403, "mcp_not_allowed"),
        (
            "/v1/mcp/no-endpoint",
            Some(key),
            400,
            "mcp_missing_endpoint",
        ),
        (
            "/v1/mcp/no-command",
            Some(key),
            400,
            "mcp_missing_stdio_command",
        ),
        ("/v1/mcp/bad-oauth", Some(key), 502, "mcp_auth_error"),
        ("/v1/mcp/unreachable", Some(key), 502, "mcp_upstream_error"),
        ("/v1/mcp/bad-command", Some(key), 502, "mcp_stdio_error"),
    ];
    for (path, key, status, code) in cases {
        assert_eq!(
            error_code(&server, path, key).await,
            (status, code.to_owned()),
            "{path}"
        );
    }
    // None of them reached the fake (which only the refused-by-config servers point at).
    assert!(fake.requests().is_empty(), "{:?}", fake.requests().len());

    // A blocked tool: a JSON-RPC error on HTTP 200, never forwarded.
    let mut client = Client::new(&server, "tools", key);
    let answer = client.call(5, "secret_tool", json!({})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.response(5)["error"]["code"], -32001);
    assert_eq!(
        answer.response(5)["error"]["data"]["code"],
        "mcp_guardrail_block"
    );
    let answer = client
        .call(6, "echo", json!({"text": "a Forbidden word"}))
        .await;
    assert_eq!(
        answer.response(6)["error"]["data"]["code"],
        "mcp_guardrail_block"
    );
    assert!(fake.requests().is_empty());
    let record = server.usage_record(&world.org, &answer.request_id).await;
    assert_eq!(record["errorCode"], "mcp_guardrail_block");
    assert_eq!(record["costNanosUsd"], 0);
}

#[tokio::test]
async fn a_session_over_streamable_http_is_governed_filtered_and_metered_exactly() {
    let server = TestServer::start().await;
    let fake = FakeHttpMcpServer::start().await;
    let world = McpWorld::create(&server).await;
    let server_id = world
        .http_server(
            &server,
            "tools",
            &fake.url(),
            json!({"authType": "BEARER", "authConfig": {"token": "upstream-token-123456"}}),
        )
        .await;
    let mut client = Client::new(&server, "tools", &world.key);
    client.initialize().await;

    let listed = client
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    let names = tool_names(&listed, 1);
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(!names.contains(&"secret_tool".to_owned()), "{names:?}");

    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "hello"}}})
    .to_string();
    let answer = client.post_text(&body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.response(2)["result"]["content"][0]["text"], "hello");

    // The upstream saw its own credentials, never the virtual key.
    let requests = fake.requests();
    assert!(!requests.is_empty());
    for recorded in &requests {
        let auth = recorded
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(auth.as_deref(), Some("Bearer upstream-token-123456"));
        assert!(recorded.headers.get("x-api-key").is_none());
        assert!(!format!("{:?}", recorded.headers).contains(&world.key));
    }

    let record = server.usage_record(&world.org, &answer.request_id).await;
    let mcp = mcp_usage_record(&server, &world.org, &answer.request_id).await;
    let cost = expected_cost(1, body.len(), answer.text.len());
    assert_eq!(record["provider"], "mcp");
    assert_eq!(record["model"], "tools");
    assert_eq!(record["httpStatus"], 200);
    assert_eq!(record["costNanosUsd"], cost);
    assert_eq!(mcp["usageRecordId"], record["id"]);
    assert_eq!(mcp["mcpServerId"], server_id.as_str());
    assert_eq!(mcp["slug"], "tools");
    assert_eq!(mcp["transport"], "STREAMABLE_HTTP");
    assert_eq!(mcp["rpcMethod"], "tools/call");
    assert_eq!(mcp["toolName"], "echo");
    assert_eq!(mcp["toolCallCount"], 1);
    assert_eq!(mcp["inputBytes"], body.len());
    assert_eq!(mcp["outputBytes"], answer.text.len());
    assert_eq!(mcp["costNanosUsd"], cost);
    assert_eq!(mcp["billing"]["callCostNanosUsd"], CALL_NANOS);
    assert_eq!(
        mcp["billing"]["pricing"]["inputNanosUsdPerMillionBytes"],
        IN_PER_MILLION
    );

    // tools/list is metered too (no call price, bytes only), and filters by tool.
    let list_record = mcp_usage_record(&server, &world.org, &listed.request_id).await;
    assert_eq!(list_record["rpcMethod"], "tools/list");
    assert_eq!(list_record["toolCallCount"], 0);
    let by_tool = server
        .admin_ok(
            Method::GET,
            &format!(
                "/api/organisations/{}/mcp-usage-records?tool=echo&mcpServerId={server_id}",
                world.org
            ),
            None,
        )
        .await;
    assert_eq!(by_tool["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn stdio_sessions_run_tools_and_relay_progress() {
    let server = TestServer::start().await;
    let world = McpWorld::create(&server).await;
    world.stdio_server(&server, "local").await;
    let mut client = Client::new(&server, "local", &world.key);
    let init = client.initialize().await;
    assert!(init.session.is_some(), "stdio sessions get an id");
    assert_eq!(
        init.response(0)["result"]["serverInfo"]["name"],
        "odock-fake-mcp"
    );

    let listed = client
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    let names = tool_names(&listed, 1);
    assert!(names.contains(&"add".to_owned()) && !names.contains(&"secret_tool".to_owned()));

    let sum = client.call(2, "add", json!({"a": 2, "b": 3})).await;
    assert_eq!(sum.response(2)["result"]["content"][0]["text"], "5");

    let progress = client.call(3, "slow_progress", json!({"steps": 2})).await;
    assert_eq!(progress.status, 200, "{}", progress.text);
    let notifications = progress
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(notifications >= 1, "{}", progress.text);
    assert!(progress.response(3)["result"].is_object());
    let mcp = mcp_usage_record(&server, &world.org, &progress.request_id).await;
    assert_eq!(mcp["transport"], "STDIO");
    assert_eq!(mcp["toolName"], "slow_progress");
    assert_eq!(mcp["outputBytes"], progress.text.len());

    // DELETE ends the session, and is recorded as the success it is (not as a client that left).
    let response = server
        .client
        .delete(server.url("/v1/mcp/local"))
        .bearer_auth(&world.key)
        .header("mcp-session-id", client.session.clone().unwrap())
        .header("x-request-id", "mcp-delete-1")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let record = server.usage_record(&world.org, "mcp-delete-1").await;
    assert_eq!(record["errorCode"], Value::Null, "{record}");
    assert_eq!(record["metadata"]["outcome"], "completed", "{record}");
}

#[tokio::test]
async fn budgets_quotas_and_the_server_rate_limit_count_mcp_calls() {
    let server = TestServer::start().await;
    let fake = FakeHttpMcpServer::start().await;
    let world = McpWorld::create(&server).await;
    world
        .http_server(
            &server,
            "limited",
            &fake.url(),
            json!({"policies": {"requestsPerMinute": 4}}),
        )
        .await;
    let mut client = Client::new(&server, "limited", &world.key);
    client.initialize().await;
    assert_eq!(
        client.call(1, "echo", json!({"text": "a"})).await.status,
        200
    );
    assert_eq!(
        client.call(2, "echo", json!({"text": "b"})).await.status,
        200
    );
    // initialize + initialized + two calls = the 4 requests of the minute.
    let refused = client.call(3, "echo", json!({"text": "c"})).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let error: Value = serde_json::from_str(&refused.text).unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error["error"]["scope"], "mcp_server");
    assert_eq!(fake.requests().len(), 4);

    // A REQUESTS quota of 4 on the key (initialize, initialized, two calls): the third call is
    // refused before the upstream.
    let quotas = McpWorld::create(&server).await;
    quotas
        .http_server(&server, "quota", &fake.url(), json!({}))
        .await;
    server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/quotas", quotas.org),
            Some(
                json!({"name": "two calls", "ownerType": "APIKEY", "ownerId": quotas.key_id,
                        "metric": "REQUESTS", "limit": 4, "period": "DAILY"}),
            ),
        )
        .await;
    let mut client = Client::new(&server, "quota", &quotas.key);
    client.initialize().await;
    let before = fake.requests().len();
    for id in 0..2 {
        let answer = client.call(id, "echo", json!({"text": "x"})).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        // Settlement happens when the record is made; wait for it before the next admission.
        server.usage_record(&quotas.org, &answer.request_id).await;
    }
    let refused = client.call(9, "echo", json!({"text": "x"})).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.text.contains("quota_exceeded"), "{}", refused.text);
    assert_eq!(fake.requests().len(), before + 2);

    // A budget that one priced call exhausts: the next call is 402 before the upstream.
    let budgeted = McpWorld::create(&server).await;
    budgeted
        .http_server(&server, "budget", &fake.url(), json!({}))
        .await;
    let mut client = Client::new(&server, "budget", &budgeted.key);
    client.initialize().await;
    let first = client.call(1, "echo", json!({"text": "x"})).await;
    let spent = server.usage_record(&budgeted.org, &first.request_id).await["costNanosUsd"]
        .as_i64()
        .unwrap();
    assert!(spent > CALL_NANOS, "{spent}");
    server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/budgets", budgeted.org),
            Some(
                json!({"name": "tiny", "ownerType": "ORG", "amountNanos": spent + CALL_NANOS,
                        "period": "MONTHLY"}),
            ),
        )
        .await;
    let second = client.call(2, "echo", json!({"text": "x"})).await;
    assert_eq!(second.status, 200, "{}", second.text);
    server.usage_record(&budgeted.org, &second.request_id).await;
    let third = client.call(3, "echo", json!({"text": "x"})).await;
    assert_eq!(third.status, 402, "{}", third.text);
    assert!(third.text.contains("budget_exceeded"));
}

/// Runs `mcp_sdk.py` against `/v1/mcp/{slug}`.
async fn run_sdk(
    server: &TestServer,
    slug: &str,
    key: &str,
    call: (&str, Value),
    slow: (&str, Value),
) -> Value {
    crate::support::run_python_script(
        "mcp_sdk.py",
        &[
            &server.url(&format!("/v1/mcp/{slug}")),
            key,
            call.0,
            &call.1.to_string(),
            slow.0,
            &slow.1.to_string(),
        ],
    )
    .await
}

#[tokio::test]
async fn the_mcp_python_sdk_reaches_the_stdio_fake_through_the_gateway() {
    if !crate::support::python_module_available("mcp", "mcp") {
        return;
    }
    let server = TestServer::start().await;
    let world = McpWorld::create(&server).await;
    world.stdio_server(&server, "fake").await;
    let result = run_sdk(
        &server,
        "fake",
        &world.key,
        ("echo", json!({"text": "hi from the SDK"})),
        ("slow_progress", json!({"steps": 3})),
    )
    .await;
    assert_eq!(result["server"], "odock-fake-mcp");
    let tools: Vec<&str> = result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"echo") && !tools.contains(&"secret_tool"),
        "{tools:?}"
    );
    assert_eq!(result["call"], "hi from the SDK");
    assert_eq!(result["callIsError"], false);
    assert!(result["progressEvents"].as_u64().unwrap() >= 1, "{result}");
    assert_eq!(result["progressIsError"], false);
}

#[tokio::test]
async fn the_mcp_python_sdk_reaches_server_everything_over_stdio() {
    if !crate::support::python_module_available("mcp", "mcp") {
        return;
    }
    let npx = std::process::Command::new("npx").arg("--version").output();
    if !npx.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("ODOCK_REQUIRE_SDK_TESTS").is_err(),
            "ODOCK_REQUIRE_SDK_TESTS is set but npx is missing"
        );
        eprintln!("skipped: npx is missing (install Node.js to run @modelcontextprotocol/server-everything)");
        return;
    }
    let server = TestServer::start().await;
    let world = McpWorld::create(&server).await;
    world
        .add_server(
            &server,
            "everything",
            json!({"transport": "STDIO", "stdioCommand": "npx",
                   "stdioArgs": ["-y", "@modelcontextprotocol/server-everything"]}),
            true,
        )
        .await;
    let result = run_sdk(
        &server,
        "everything",
        &world.key,
        ("echo", json!({"message": "hello everything"})),
        (
            "trigger-long-running-operation",
            json!({"duration": 1, "steps": 2}),
        ),
    )
    .await;
    assert_eq!(result["server"], "mcp-servers/everything");
    let tools: Vec<&str> = result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tools.contains(&"echo"), "{tools:?}");
    assert!(
        result["call"]
            .as_str()
            .unwrap()
            .contains("hello everything"),
        "{result}"
    );
    assert!(result["progressEvents"].as_u64().unwrap() >= 1, "{result}");
    assert_eq!(result["progressIsError"], false);
}

#[tokio::test]
async fn the_legacy_sse_transport_is_bridged_to_streamable_http() {
    let server = TestServer::start().await;
    let fake = FakeSseMcpServer::start().await;
    let world = McpWorld::create(&server).await;
    world
        .add_server(
            &server,
            "legacy",
            json!({"transport": "SSE", "endpointUrl": fake.url(), "blockedTools": ["secret_tool"]}),
            true,
        )
        .await;
    let mut client = Client::new(&server, "legacy", &world.key);
    let init = client.initialize().await;
    assert!(
        init.session.is_some(),
        "SSE sessions get an id from the gateway"
    );
    let listed = client
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    let names = tool_names(&listed, 1);
    assert!(names.contains(&"echo".to_owned()) && !names.contains(&"secret_tool".to_owned()));
    let echoed = client.call(2, "echo", json!({"text": "over sse"})).await;
    assert_eq!(
        echoed.response(2)["result"]["content"][0]["text"],
        "over sse"
    );
    let mcp = mcp_usage_record(&server, &world.org, &echoed.request_id).await;
    assert_eq!(mcp["transport"], "SSE");
}

#[tokio::test]
async fn a_client_leaving_a_streamed_call_is_still_recorded() {
    let server = TestServer::start().await;
    let fake = FakeHttpMcpServer::start().await;
    let world = McpWorld::create(&server).await;
    world
        .http_server(&server, "tools", &fake.url(), json!({}))
        .await;
    let mut client = Client::new(&server, "tools", &world.key);
    client.initialize().await;
    let response = server
        .client
        .post(server.url("/v1/mcp/tools"))
        .bearer_auth(&world.key)
        .header("mcp-session-id", client.session.clone().unwrap_or_default())
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "slow_progress", "arguments": {"gate": true, "steps": 1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut response = response;
    // The progress event arrives; then the client goes away before the result.
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("progress"));
    drop(response);
    let record = server.usage_record(&world.org, &request_id).await;
    assert_eq!(record["errorCode"], "client_disconnected");
    let mcp = mcp_usage_record(&server, &world.org, &request_id).await;
    assert_eq!(mcp["toolName"], "slow_progress");
    assert_eq!(mcp["outputBytes"], first.len());
    assert_eq!(
        mcp["costNanosUsd"],
        expected_cost(1, mcp["inputBytes"].as_u64().unwrap() as usize, first.len())
    );
    fake.release_gate();
}

/// Live (or zombie) children of this test process whose environment carries `ODOCK_TEST_TAG=tag`,
/// from `/proc` (tests in this binary run in parallel and spawn stdio servers of their own).
fn children_tagged(tag: &str) -> usize {
    let me = std::process::id().to_string();
    let marker = format!("ODOCK_TEST_TAG={tag}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid …`: the parent is the field after the closing parenthesis.
            let parent = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1));
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            parent == Some(me.as_str())
                && environ
                    .split(|b| *b == 0)
                    .any(|var| var == marker.as_bytes())
        })
        .count()
}

async fn stdio_process_gauge(server: &TestServer) -> u64 {
    let text = server.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix("odock_mcp_stdio_processes "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stdio process gauge in /metrics"))
}

#[tokio::test]
async fn a_hundred_concurrent_stdio_sessions_leave_no_process_behind() {
    // Above the default caps (64, a quarter per organisation) on purpose: this is about cleanup.
    let server = TestServer::start_with(|config| {
        config.mcp_stdio_max = 100;
        config.mcp_stdio_max_per_org = Some(100);
    })
    .await;
    let world = McpWorld::create(&server).await;
    let tag = odock::core::ids::random_hex(8);
    world
        .add_server(
            &server,
            "local",
            json!({"transport": "STDIO", "stdioCommand": fake_stdio_binary().display().to_string(),
                   "stdioEnv": {"ODOCK_TEST_TAG": tag}}),
            true,
        )
        .await;

    let sessions = futures::future::join_all((0..100).map(|_| async {
        let mut client = Client::new(&server, "local", &world.key);
        client.initialize().await;
        let sum = client.call(1, "add", json!({"a": 1, "b": 2})).await;
        assert_eq!(sum.response(1)["result"]["content"][0]["text"], "3");
        client.session.clone().unwrap()
    }))
    .await;
    assert_eq!(stdio_process_gauge(&server).await, 100);
    assert_eq!(children_tagged(&tag), 100, "one child process per session");

    let (server_ref, key) = (&server, world.key.as_str());
    futures::future::join_all(sessions.iter().map(|session| async move {
        let response = server_ref
            .client
            .delete(server_ref.url("/v1/mcp/local"))
            .bearer_auth(key)
            .header("mcp-session-id", session)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (gauge, children) = (stdio_process_gauge(&server).await, children_tagged(&tag));
        if gauge == 0 && children == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{gauge} stdio processes counted, {children} children alive or unreaped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
