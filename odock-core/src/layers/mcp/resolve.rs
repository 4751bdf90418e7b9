//! MCP resolution: buffers the body (bounded), decodes its JSON-RPC facts, resolves the server named
//! by the reference in the caller's organisation and checks, in the access flow's order: the server
//! exists and is enabled (404 `mcp_not_found`), the key's grant (403 `mcp_not_allowed`), the
//! server's team / API-key scope (403 `mcp_not_allowed`), then the tool rules and blocked keywords
//! on `tools/call` — a refused call is answered here as a JSON-RPC error on HTTP 200 with
//! `data.code = "mcp_guardrail_block"`, and never reaches the upstream.
//!
//! Needs [`Principal`], [`McpRef`] and the [`Meter`]. Turns `Request<B>` into `Request<Bytes>` and
//! leaves `Arc<ResolvedMcpServer>`, [`McpRequest`] and [`AdmissionFacts`] (the server's policies, the
//! estimate) for the policy gate, the reservation and the MCP call.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{header, HeaderValue, Request, Response};
use serde_json::{json, Value};
use tower::{Layer, Service};

use super::reference::McpRef;
use super::request::McpRequest;
use crate::body::{full, BoxError, GatewayBody};
use crate::error::{GatewayError, McpError};
use crate::key_store::KeyStore;
use crate::layers::admission_facts::{AdmissionFacts, PolicyTarget};
use crate::layers::metering::Meter;
use crate::layers::required;
use crate::layers::resolve::{read_body, DEFAULT_MAX_BODY_BYTES};
use crate::ledger::Estimate;
use crate::mcp_server::ResolvedMcpServer;
use crate::pricing::bill_mcp;
use crate::principal::Principal;

/// The JSON-RPC error code of a tool call refused by the tool rules (implementation-defined range).
pub const GUARDRAIL_RPC_CODE: i64 = -32001;
/// The stable code in the JSON-RPC error's `data` and on the usage record.
pub const GUARDRAIL_CODE: &str = "mcp_guardrail_block";

/// Tower layer resolving the MCP server and enforcing grants, scopes and tool rules (see the module
/// docs).
#[derive(Clone)]
pub struct McpResolveLayer {
    store: Arc<dyn KeyStore>,
    max_body_bytes: usize,
}

impl std::fmt::Debug for McpResolveLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpResolveLayer")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl McpResolveLayer {
    /// A layer resolving servers through `store`, with the default body limit.
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Upper bound on a buffered request body (413 beyond).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

impl<S> Layer<S> for McpResolveLayer {
    type Service = McpResolveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpResolveService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`McpResolveLayer`] wraps around the inner service.
#[derive(Clone)]
pub struct McpResolveService<S> {
    inner: S,
    layer: McpResolveLayer,
}

impl<S, B> Service<Request<B>> for McpResolveService<S>
where
    S: Service<Request<Bytes>, Response = Response<GatewayBody>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<Self::Response, GatewayError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let principal =
                required::<Principal>(&parts.extensions, "MCP resolution", "a principal")?.clone();
            let reference =
                required::<McpRef>(&parts.extensions, "MCP resolution", "an MCP reference")?
                    .clone();
            let meter = parts.extensions.get::<Meter>().cloned();
            let bytes = read_body(body, layer.max_body_bytes).await?;
            let request = McpRequest::decode(parts.method.clone(), &bytes)?;

            let server = layer
                .store
                .mcp_server(&principal.organisation_id, &reference.reference)
                .await?
                .ok_or(McpError::NotFound)?;
            if let Some(meter) = &meter {
                meter.set_mcp(server.clone(), &request);
            }
            if !layer
                .store
                .has_mcp_grant(&principal.api_key_id, &server.id)
                .await?
                || !server.in_scope(&principal)
            {
                return Err(McpError::NotAllowed.into());
            }
            if let Some(refusal) = guardrail_refusal(&server, &request, &bytes) {
                if let Some(meter) = &meter {
                    meter.set_error_code(GUARDRAIL_CODE);
                }
                return Ok(refusal);
            }

            let estimate = Estimate {
                tokens_in: 0,
                tokens_out: 0,
                // What is known before the call: its tool calls and request bytes. The answer's
                // bytes are settled when it ends.
                cost_nanos: bill_mcp(
                    &server.pricing,
                    request.tool_call_count(),
                    request.body_bytes,
                    0,
                )
                .cost_nanos_usd,
            };
            parts.extensions.insert(AdmissionFacts {
                target: PolicyTarget::McpServer(server.id.clone()),
                estimate,
            });
            parts.extensions.insert(server);
            parts.extensions.insert(request);
            inner.call(Request::from_parts(parts, bytes)).await
        })
    }
}

/// Why the tool rules refuse the request's `tools/call`, if they do.
fn refusal_reason(server: &ResolvedMcpServer, request: &McpRequest, body: &[u8]) -> Option<String> {
    if request.tool_call_count() == 0 {
        return None;
    }
    let rules = &server.tool_rules;
    if let Some(tool) = request
        .messages
        .iter()
        .filter(|m| m.is_tool_call())
        .find_map(|m| match m.tool.as_deref() {
            Some(tool) if rules.tool_allowed(tool) => None,
            Some(tool) => Some(tool.to_owned()),
            None => Some(String::new()),
        })
    {
        return Some(if tool.is_empty() {
            "tools/call without a tool name is not allowed".to_owned()
        } else {
            format!("tool `{tool}` is not allowed on this MCP server")
        });
    }
    rules
        .blocked_keyword(body)
        .map(|_| "the request contains a blocked keyword".to_owned())
}

/// The JSON-RPC answer to a refused `tools/call`: an error for every request of the body (a batch
/// with one refused call is refused whole, so nothing of it reaches the upstream), on HTTP 200.
fn guardrail_refusal(
    server: &ResolvedMcpServer,
    request: &McpRequest,
    body: &[u8],
) -> Option<Response<GatewayBody>> {
    let reason = refusal_reason(server, request, body)?;
    let errors: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| m.method.is_some() && m.id.is_some())
        .map(|m| {
            json!({
                "jsonrpc": "2.0",
                "id": m.id,
                "error": {
                    "code": GUARDRAIL_RPC_CODE,
                    "message": reason,
                    "data": { "code": GUARDRAIL_CODE },
                },
            })
        })
        .collect();
    let body = match (request.batch, errors.as_slice()) {
        // Only notifications: nothing to answer (the MCP transports' 202).
        (_, []) => {
            let mut accepted = Response::new(full(Bytes::new()));
            *accepted.status_mut() = http::StatusCode::ACCEPTED;
            return Some(accepted);
        }
        (false, [only]) => only.clone(),
        _ => Value::Array(errors),
    };
    let mut response = Response::new(full(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::McpTransportKind;
    use crate::mcp_server::ToolRules;
    use http::Method;

    fn server(rules: ToolRules) -> ResolvedMcpServer {
        let mut server = ResolvedMcpServer::new("s1", "org", "tools", McpTransportKind::Stdio);
        server.tool_rules = rules;
        server
    }

    fn decode(body: &str) -> McpRequest {
        McpRequest::decode(Method::POST, &Bytes::copy_from_slice(body.as_bytes())).unwrap()
    }

    #[test]
    fn refusals_follow_the_tool_rules() {
        let rules = ToolRules {
            allowed_tools: vec!["echo".into(), "add".into()],
            blocked_tools: vec!["add".into()],
            blocked_keywords: vec!["rm -rf".into()],
        };
        let s = server(rules);
        let call = |tool: &str, arg: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"x":"{arg}"}}}}}}"#
            )
        };
        let check = |body: String| refusal_reason(&s, &decode(&body), body.as_bytes());
        assert_eq!(check(call("echo", "hi")), None);
        assert!(check(call("add", "1")).unwrap().contains("`add`"));
        assert!(check(call("secret_tool", "1"))
            .unwrap()
            .contains("`secret_tool`"));
        assert!(check(call("echo", "RM -RF /")).unwrap().contains("keyword"));
        // Keywords govern tool calls only; listing tools is not refused.
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"x":"rm -rf"}}"#;
        assert_eq!(check(list.to_owned()), None);
    }

    #[tokio::test]
    async fn a_refused_batch_answers_every_request_with_an_error() {
        use http_body_util::BodyExt;
        let s = server(ToolRules {
            blocked_tools: vec!["add".into()],
            ..ToolRules::default()
        });
        let body = r#"[{"jsonrpc":"2.0","id":"a","method":"tools/list"},
                       {"jsonrpc":"2.0","method":"notifications/progress"},
                       {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"add"}}]"#;
        let response = guardrail_refusal(&s, &decode(body), body.as_bytes()).unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let answers: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
        assert_eq!(ids, [&json!("a"), &json!("b")]);
        assert!(answers
            .iter()
            .all(|a| a["error"]["data"]["code"] == GUARDRAIL_CODE));
        let single = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add"}}"#;
        assert!(guardrail_refusal(&s, &decode(single), single.as_bytes()).is_some());
        let notification = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"add"}}"#;
        let accepted = guardrail_refusal(&s, &decode(notification), notification.as_bytes());
        assert_eq!(
            accepted.map(|r| r.status()),
            Some(http::StatusCode::ACCEPTED)
        );
    }
}
