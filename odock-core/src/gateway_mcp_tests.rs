//! The assembled MCP stack over in-memory stores and a recording fake MCP call: the access flow's
//! order and codes, tool rules answered without reaching the upstream, metering with the MCP
//! sidecar, and rate limits on the server's policy.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::layers::{McpRequest, Meter};
use crate::rate_limit::Policy;
use crate::*;

const ANSWER: &str =
    r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#;

struct Harness {
    gateway: GatewayBuilder,
    sink: InMemoryUsageSink,
    store: InMemoryKeyStore,
    /// Bodies the fake upstream received.
    received: Arc<Mutex<Vec<Bytes>>>,
}

fn principal(key: &str, team: Option<&str>) -> Principal {
    Principal {
        api_key_id: key.into(),
        organisation_id: "org1".into(),
        key_type: ApiKeyType::Team,
        team_id: team.map(TeamId::from),
        user_id: None,
        expires_at: None,
        revoked: false,
    }
}

fn harness() -> Harness {
    let store = InMemoryKeyStore::new();
    store.insert_key("sk_good", principal("key1", Some("team1")));
    store.insert_key("sk_other", principal("key2", Some("team2")));
    let mut tools =
        ResolvedMcpServer::new("srv1", "org1", "tools", McpTransportKind::StreamableHttp);
    tools.tool_rules = ToolRules {
        allowed_tools: vec![],
        blocked_tools: vec!["secret_tool".into()],
        blocked_keywords: vec!["forbidden".into()],
    };
    tools.pricing = McpPricing {
        call_nanos_usd: 1_000,
        input_nanos_usd_per_million_bytes: 1_000_000,
        output_nanos_usd_per_million_bytes: 2_000_000,
    };
    store.insert_mcp_server(tools, true);
    store.insert_mcp_server(
        ResolvedMcpServer::new("srv2", "org1", "off", McpTransportKind::Stdio),
        false,
    );
    let mut scoped = ResolvedMcpServer::new("srv3", "org1", "team-only", McpTransportKind::Stdio);
    scoped.team_id = Some("team2".into());
    store.insert_mcp_server(scoped, true);
    store.grant_mcp("key1".into(), "srv1".into());
    store.grant_mcp("key1".into(), "srv2".into());
    store.grant_mcp("key1".into(), "srv3".into());
    let sink = InMemoryUsageSink::new();
    let gateway = GatewayBuilder::new(
        Arc::new(store.clone()),
        ProviderRegistry::new(),
        Arc::new(sink.clone()),
    );
    Harness {
        gateway,
        sink,
        store,
        received: Arc::default(),
    }
}

impl Harness {
    async fn send(&self, path: &str, key: Option<&str>, body: &str) -> (StatusCode, Value) {
        let received = self.received.clone();
        let call = tower::service_fn(move |req: Request<Bytes>| {
            let received = received.clone();
            async move {
                let meter = req.extensions().get::<Meter>().cloned();
                assert!(req.extensions().get::<Arc<ResolvedMcpServer>>().is_some());
                assert!(req.extensions().get::<McpRequest>().is_some());
                if let Some(meter) = meter {
                    meter.upstream_started();
                }
                received.lock().push(req.into_body());
                Ok::<_, GatewayError>(Response::new(full(ANSWER)))
            }
        });
        let service = self.gateway.mcp::<Full<Bytes>, _>(call);
        let mut request = Request::builder().method(Method::POST).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn call(tool: &str, text: &str) -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{"text":text}}})
        .to_string()
}

#[tokio::test]
async fn the_access_flow_answers_each_refusal_with_its_code() {
    let h = harness();
    let body = call("echo", "hi");
    let cases = [
        ("/v1/mcp/", None, 400, "invalid_mcp_ref"),
        ("/v1/mcp/tools", None, 401, "unauthorized"),
        ("/v1/mcp/nope", Some("sk_good"), 404, "mcp_not_found"),
        ("/v1/mcp/off", Some("sk_good"), 404, "mcp_not_found"),
        ("/v1/mcp/tools", Some("sk_other"), 403, "mcp_not_allowed"),
        ("/v1/mcp/team-only", Some("sk_good"), 403, "mcp_not_allowed"),
    ];
    for (path, key, status, code) in cases {
        let (got, reply) = h.send(path, key, &body).await;
        assert_eq!(got.as_u16(), status, "{path}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{path}");
    }
    assert!(h.received.lock().is_empty(), "nothing reached the upstream");
    // Every authenticated refusal left a record; the grant refusal names the server.
    let records = h.sink.records();
    assert_eq!(records.len(), 4);
    let not_allowed = records
        .iter()
        .find(|r| r.error_code.as_deref() == Some("mcp_not_allowed"))
        .unwrap();
    assert_eq!(not_allowed.provider, "mcp");
    assert_eq!(not_allowed.cost_nanos_usd, 0);
}

#[tokio::test]
async fn blocked_tools_and_keywords_are_json_rpc_errors_that_never_reach_the_upstream() {
    let h = harness();
    for body in [call("secret_tool", "x"), call("echo", "a FORBIDDEN word")] {
        let (status, reply) = h.send("/v1/mcp/tools", Some("sk_good"), &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(reply["id"], 1);
        assert_eq!(reply["error"]["code"], -32001);
        assert_eq!(reply["error"]["data"]["code"], "mcp_guardrail_block");
    }
    assert!(h.received.lock().is_empty());
    let records = h.sink.records();
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r.error_code.as_deref() == Some("mcp_guardrail_block") && r.cost_nanos_usd == 0));
}

#[tokio::test]
async fn a_forwarded_call_is_metered_with_its_mcp_sidecar() {
    let h = harness();
    let body = call("echo", "hi");
    let (status, reply) = h.send("/v1/mcp/tools/extra", Some("sk_good"), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["result"]["content"][0]["text"], "hi");
    assert_eq!(h.received.lock().as_slice(), [Bytes::from(body.clone())]);

    let records = h.sink.records();
    let mcp = h.sink.mcp_records();
    assert_eq!((records.len(), mcp.len()), (1, 1));
    let (record, mcp) = (&records[0], &mcp[0]);
    let (input, output) = (body.len() as i64, ANSWER.len() as i64);
    // 1,000 nanos per call, plus 1,000,000 and 2,000,000 nanos per 1M bytes in and out.
    let expected = 1_000 + (input * 1_000_000 + output * 2_000_000 + 999_999) / 1_000_000;
    assert_eq!(record.provider, "mcp");
    assert_eq!(record.model.as_deref(), Some("tools"));
    assert_eq!(record.endpoint, "/v1/mcp/{mcp_ref}");
    assert_eq!(record.cost_nanos_usd, expected);
    assert_eq!(mcp.usage_record_id, record.id);
    assert_eq!(mcp.rpc_method.as_deref(), Some("tools/call"));
    assert_eq!(mcp.tool_name.as_deref(), Some("echo"));
    assert_eq!(mcp.tool_call_count, 1);
    assert_eq!(mcp.input_bytes, input as u64);
    assert_eq!(mcp.output_bytes, output as u64);
    assert_eq!(mcp.cost_nanos_usd, expected);
    assert_eq!(mcp.billing.call_cost_nanos_usd, 1_000);
    assert_eq!(mcp.transport, "STREAMABLE_HTTP");
    assert_eq!(mcp.http_status, 200);
}

#[tokio::test]
async fn the_server_policy_rate_limits_mcp_calls() {
    let h = harness();
    h.store.set_policy(
        "mcp_server",
        "srv1",
        Policy {
            requests_per_minute: 1,
            ..Policy::default()
        },
    );
    let body = call("echo", "hi");
    assert_eq!(
        h.send("/v1/mcp/tools", Some("sk_good"), &body).await.0,
        StatusCode::OK
    );
    let (status, reply) = h.send("/v1/mcp/tools", Some("sk_good"), &body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply["error"]["code"], "rate_limit_exceeded");
    assert_eq!(reply["error"]["scope"], "mcp_server");
    assert_eq!(h.received.lock().len(), 1);
}
