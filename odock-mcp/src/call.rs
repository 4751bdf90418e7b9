//! The innermost service of the governed MCP route, [`McpCall`]: it forwards the governed message
//! over the server's transport (from the shared [`McpTransports`] pool, which strips the caller's
//! credentials and injects the server's own) and relays the reply — JSON or an event stream, with
//! `tools/list` answers filtered to the tools the key may call. Transport configuration is checked
//! here, after the ledgers, as the access flow orders it: `mcp_missing_endpoint`,
//! `mcp_missing_stdio_command`, `mcp_auth_error`; upstream failures are `mcp_upstream_error` /
//! `mcp_stdio_error` (502).
//!
//! Governance in front of it (reference, authentication, metering, server/grant/scope/tool rules,
//! rate limits, quotas, budgets) is `odock_core::GatewayBuilder::mcp`. It lives here, not in the
//! server, so that an embedder gets the same MCP gateway: `gateway.mcp::<B, _>(McpCall::new(pool))`.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use odock_core::layers::{McpRequest, Meter};
use odock_core::telemetry::{parse_traceparent, TRACEPARENT, TRACESTATE};
use odock_core::RequestTrace;
use odock_core::{
    full, BoxError, GatewayBody, GatewayError, McpError, McpMessage, McpReply, McpUpstreamAuth,
    ResolvedMcpServer,
};
use opentelemetry::KeyValue;
use tower::Service;

use crate::framing::{Payload, ToolsListFilter};
use crate::{McpAuth, McpTransports, McpUpstream};

/// The error code recorded when the upstream answered with an error status or broke its stream.
const UPSTREAM_ERROR: &str = "mcp_upstream_error";

/// The innermost MCP service: sends the governed message to the server and relays its answer.
#[derive(Clone)]
pub struct McpCall {
    transports: McpTransports,
}

impl McpCall {
    /// Calls MCP servers through `transports` (HTTP, SSE and stdio sessions).
    pub fn new(transports: McpTransports) -> Self {
        Self { transports }
    }
}

impl std::fmt::Debug for McpCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpCall")
    }
}

impl Service<Request<Bytes>> for McpCall {
    type Response = Response<GatewayBody>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<Response<GatewayBody>, GatewayError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let transports = self.transports.clone();
        Box::pin(forward(transports, req))
    }
}

async fn forward(
    transports: McpTransports,
    req: Request<Bytes>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let (parts, body) = req.into_parts();
    let missing = |what: &str| GatewayError::Internal(format!("the MCP call needs {what}"));
    let server = parts
        .extensions
        .get::<Arc<ResolvedMcpServer>>()
        .cloned()
        .ok_or_else(|| missing("a resolved MCP server"))?;
    let lists_tools = parts
        .extensions
        .get::<McpRequest>()
        .ok_or_else(|| missing("a decoded MCP request"))?
        .lists_tools();
    let meter = parts.extensions.get::<Meter>().cloned();
    let trace = parts.extensions.get::<RequestTrace>().cloned();
    let mut headers = parts.headers;

    let upstream = upstream_config(&server)?;
    let transport = transports.transport(server.id.as_str(), &upstream)?;
    if let Some(meter) = &meter {
        meter.upstream_started();
    }
    match &trace {
        // The upstream sees this call's span as its parent.
        Some(trace) => {
            let method = parts
                .extensions
                .get::<McpRequest>()
                .map(McpRequest::rpc_method)
                .unwrap_or_default();
            trace.upstream_started(
                &method,
                &server.slug,
                vec![
                    KeyValue::new("gen_ai.operation.name", "execute_tool"),
                    KeyValue::new("mcp.method.name", method.clone()),
                    KeyValue::new("odock.mcp.server", server.slug.clone()),
                    KeyValue::new("odock.mcp.transport", server.transport.as_str()),
                ],
            );
            headers.remove(TRACESTATE);
            match trace.upstream_traceparent() {
                Some(value) => headers.insert(TRACEPARENT, value),
                None => headers.remove(TRACEPARENT),
            };
        }
        // Tracing off: a valid client traceparent passes through, anything else stays behind.
        None => {
            if headers
                .get(TRACEPARENT)
                .is_some_and(|v| parse_traceparent(v.as_bytes()).is_none())
            {
                headers.remove(TRACEPARENT);
                headers.remove(TRACESTATE);
            }
        }
    }
    let filter = lists_tools.then(|| tools_filter(&server, &body)).flatten();
    let reply = transport
        .send(McpMessage {
            method: parts.method,
            headers,
            body,
        })
        .await
        .inspect_err(|error| {
            if let Some(trace) = &trace {
                trace.upstream_failed(GatewayError::from(error.clone()).code());
            }
        })?;
    let (status, headers, body) = match reply {
        McpReply::Json {
            status,
            headers,
            body,
        } => {
            let body = match &filter {
                Some(filter) if status.is_success() => filter.apply_json(&body),
                _ => body,
            };
            (status, headers, full(body))
        }
        McpReply::Stream {
            status,
            headers,
            events,
        } => {
            let events = match filter {
                Some(filter) => filter.apply_stream(events),
                None => events,
            };
            if let Some(meter) = &meter {
                meter.set_request(true, 0);
            }
            (status, headers, relay(events, meter.clone()))
        }
    };
    if let Some(meter) = &meter {
        meter.set_status(status.as_u16());
        if !status.is_success() {
            meter.set_error_code(UPSTREAM_ERROR);
        }
    }
    if let Some(trace) = &trace {
        trace.upstream_attributes([KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        )]);
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The `odock-mcp` upstream configuration of a resolved server (secrets exposed only here, for the
/// transport). Unusable credentials are `mcp_auth_error`; a missing endpoint or command, the 400s.
fn upstream_config(server: &ResolvedMcpServer) -> Result<McpUpstream, McpError> {
    let auth = match server.auth.clone().map_err(McpError::Auth)? {
        McpUpstreamAuth::None => McpAuth::None,
        McpUpstreamAuth::Bearer { token } => McpAuth::Bearer { token },
        McpUpstreamAuth::Basic { username, password } => McpAuth::Basic { username, password },
        McpUpstreamAuth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
            audience,
        } => McpAuth::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
            audience,
        },
    };
    let upstream = McpUpstream {
        transport: server.transport,
        endpoint_url: server.endpoint_url.clone(),
        stdio_command: server.stdio_command.clone(),
        stdio_args: server.stdio_args.clone(),
        stdio_env: server
            .stdio_env
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_owned()))
            .collect(),
        // The pool starts a command off the allow-list only when a SUPER_ADMIN approved it.
        stdio_approved: server.stdio_approved,
        organisation_id: server.organisation_id.as_str().to_owned(),
        auth,
    };
    upstream.validate()?;
    Ok(upstream)
}

/// Hides the tools the key may not call from the answers to the body's `tools/list` requests.
fn tools_filter(server: &Arc<ResolvedMcpServer>, body: &Bytes) -> Option<ToolsListFilter> {
    let payload = Payload::parse(body).ok()?;
    let rules = server.clone();
    let filter = ToolsListFilter::new(
        payload.ids_with_method("tools/list"),
        Arc::new(move |tool: &str| rules.tool_rules.tool_allowed(tool)),
    );
    (!filter.is_noop()).then_some(filter)
}

/// Relays upstream events as they come. A broken upstream stream ends the relay cleanly and is
/// recorded as `mcp_upstream_error` (the client sees the stream end, not a reset connection).
fn relay(
    events: futures::stream::BoxStream<'static, Result<Bytes, McpError>>,
    meter: Option<Meter>,
) -> GatewayBody {
    let frames = events.scan((), move |(), item| {
        let next = match item {
            Ok(bytes) => Some(Ok::<_, BoxError>(Frame::data(bytes))),
            Err(error) => {
                tracing::warn!(%error, "MCP upstream stream failed");
                if let Some(meter) = &meter {
                    meter.set_error_code(UPSTREAM_ERROR);
                }
                None
            }
        };
        std::future::ready(next)
    });
    StreamBody::new(frames).boxed_unsync()
}
