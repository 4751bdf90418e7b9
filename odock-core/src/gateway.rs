//! [`GatewayBuilder`]: the one place where the layers are put together, in one order.
//!
//! Outermost first; each line says what the layer reads from and writes to the request extensions.
//!
//! 1. **Endpoint** — writes [`Endpoint`] (what this route serves).
//! 2. **Request id** ([`RequestIdLayer`]) — writes [`RequestId`](crate::RequestId) and
//!    [`RequestStart`](crate::layers::RequestStart); echoes `X-Request-Id` on every response.
//!    - **Trace** ([`TraceLayer`], only with [`GatewayBuilder::tracing`]) — reads `RequestId`,
//!      `Endpoint` and the client's `traceparent`; writes [`RequestTrace`](crate::RequestTrace)
//!      (the server span, ended with the response body). A stage marker
//!      ([`TraceStageLayer`]) before authentication, resolution, routing and admission opens each
//!      stage's span (routing's carries the plan's strategy and attempt count when a policy
//!      applies); the provider (or MCP) call opens one upstream span per attempt through
//!      `RequestTrace::upstream_started` / `upstream_failed`.
//! 3. **Error → response** ([`ErrorResponseLayer`]) — reads `Endpoint`; the only place typed errors
//!    become JSON responses.
//! 4. **Authentication** ([`AuthLayer`]) — writes [`Principal`].
//! 5. **Metering** ([`MeteringLayer`]) — reads `Principal`, `RequestId`, `RequestStart`,
//!    `Endpoint`; writes [`Meter`](crate::layers::Meter); enqueues one usage record per
//!    authenticated request when the response body ends or is dropped, or when the request fails.
//! 6. **Resolution** ([`ResolveLayer`]) — reads `Principal`, `Endpoint`, `Meter`; buffers the body;
//!    writes [`LlmRequest`](crate::layers::LlmRequest), `Arc<ResolvedModel>` and
//!    [`AdmissionFacts`](crate::layers::AdmissionFacts) (policy target + estimate).
//!    - **Routing** ([`RoutingLayer`], only with [`GatewayBuilder::routing`]) — reads
//!      `Principal`, `Endpoint`, `LlmRequest`, `Arc<ResolvedModel>`; when the key has a policy for
//!      the model's type (and its organisation routing on), writes a
//!      [`RoutePlan`](crate::routing::RoutePlan) and raises `AdmissionFacts`'s estimate to the most
//!      expensive candidate.
//! 7. **Admission** ([`AdmissionLayer`]) — reads `Principal`, `AdmissionFacts`, `Meter`, `ClientIp`,
//!    `RequestId`; checks every scope's policy, then admits rate limits, quotas and budgets in one
//!    all-or-nothing step through the [`Admission`] and registers the ticket on the meter.
//! 8. **Provider call** ([`ProviderService`]) — reads all of the above; calls the upstream, or
//!    makes the `RoutePlan`'s attempts.
//!
//! Steps 1–5 are the *front* every route shares ([`GatewayBuilder::front`], one function; a
//! [`Front`] value says which optional steps a route has), steps 6–7 the *inner* stack of the LLM
//! routes (and, for MCP, of the MCP route). Each order is written once, in those functions.
//! The model-list and key-validation routes have the [`Front::Plain`] front only: request id,
//! error → response, authentication.
//!
//! The MCP route ([`GatewayBuilder::mcp`]) is the same stack with two MCP layers: the reference
//! check ([`McpRefLayer`], between 3 and 4: a path without a server reference is 400 before
//! authentication) and MCP resolution ([`McpResolveLayer`] in place of 6: server, grant, scope,
//! tool rules; writes `Arc<ResolvedMcpServer>`, [`McpRequest`](crate::layers::McpRequest) and
//! `AdmissionFacts` with the server as policy target). The innermost service, which talks to the MCP
//! server over its transport, is the embedder's: `odock_mcp::McpCall` (what the server mounts,
//! through `odock_mcp::axum_routes::mcp_router`) or its own.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use serde_json::json;
use tower::util::BoxCloneSyncService;
use tower::util::MapRequestLayer;
use tower::ServiceBuilder;

use crate::admission::{Admission, LocalAdmission};
use crate::body::{full, BoxError, GatewayBody};
use crate::clock::{Clock, SystemClock};
use crate::dispatch::ProviderService;
use crate::domain::ProviderType;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::key_store::KeyStore;
use crate::layers::resolve::DEFAULT_MAX_BODY_BYTES;
use crate::layers::{
    AdmissionLayer, AuthLayer, ErrorResponseLayer, McpRefLayer, McpResolveLayer, MeteringLayer,
    RequestIdLayer, ResolveLayer, TraceLayer, TraceStageLayer,
};
use crate::ledger::InMemoryLedger;
use crate::lifecycle::Background;
use crate::principal::Principal;
use crate::provider::ProviderRegistry;
use crate::routing::{Routing, RoutingLayer};
use crate::telemetry::{stage, Tracing};
use crate::usage::UsageSink;

/// A complete gateway route: never fails (errors are responses).
pub type GatewayService<B> = BoxCloneSyncService<Request<B>, Response<GatewayBody>, Infallible>;

/// A service a gateway stack wraps or is built from: answers `Request<B>` with a gateway response
/// or a [`GatewayError`] (which the stack's error layer turns into a response), and can be cloned
/// into and shared between request tasks. Every such service is one (blanket impl); the trait only
/// names the bounds once.
pub trait StackService<B>:
    tower::Service<
        Request<B>,
        Response = Response<GatewayBody>,
        Error = GatewayError,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<B, S> StackService<B> for S
where
    S: tower::Service<Request<B>, Response = Response<GatewayBody>, Error = GatewayError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
}

/// Assembles the governance stack over a key store, providers and a usage sink.
#[derive(Clone)]
pub struct GatewayBuilder {
    key_store: Arc<dyn KeyStore>,
    providers: Arc<ProviderRegistry>,
    usage: Arc<dyn UsageSink>,
    clock: Arc<dyn Clock>,
    max_body_bytes: usize,
    admission: Arc<dyn Admission>,
    /// Request spans; `None` (the default) leaves every trace layer out of the stack.
    tracing: Option<Tracing>,
    /// Routing policies and circuit breakers; `None` (the default) leaves routing out.
    routing: Option<Arc<Routing>>,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("providers", &self.providers)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl GatewayBuilder {
    /// A builder over `key_store`, `providers` and `usage`, with local admission, the system clock,
    /// the default body limit and no routing or tracing.
    pub fn new(
        key_store: Arc<dyn KeyStore>,
        providers: ProviderRegistry,
        usage: Arc<dyn UsageSink>,
    ) -> Self {
        Self {
            key_store,
            providers: Arc::new(providers),
            usage,
            clock: Arc::new(SystemClock),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            admission: Arc::new(LocalAdmission::default()),
            tracing: None,
            routing: None,
        }
    }

    /// Routes requests by the keys' routing policies (see [`crate::routing`]). Without it every
    /// request calls its model directly.
    pub fn routing(mut self, routing: Option<Arc<Routing>>) -> Self {
        self.routing = routing;
        self
    }

    fn routing_layer(&self) -> Option<RoutingLayer> {
        self.routing
            .clone()
            .map(|routing| RoutingLayer::new(routing, self.key_store.clone()))
    }

    fn provider_service(&self) -> ProviderService {
        let service = ProviderService::new(self.providers.clone());
        match &self.routing {
            Some(routing) => service
                .with_breakers(routing.breakers().clone())
                .with_key_pools(routing.key_pools().clone())
                .with_admission(self.admission.clone()),
            None => service,
        }
    }

    /// Traces every LLM and MCP request with `tracing` (see [`crate::telemetry`]): a server span,
    /// stage spans, the upstream call's span. Without it the trace layers are not in the stack.
    pub fn tracing(mut self, tracing: Option<Tracing>) -> Self {
        self.tracing = tracing;
        self
    }

    fn trace_layer(&self) -> Option<TraceLayer> {
        self.tracing.clone().map(TraceLayer::new)
    }

    fn stage(&self, name: &'static str) -> Option<TraceStageLayer> {
        self.tracing.as_ref().map(|_| TraceStageLayer::new(name))
    }

    /// Enforces budgets and quotas with `ledger`, and rate limits in this process.
    pub fn ledger(self, ledger: InMemoryLedger) -> Self {
        self.admission(Arc::new(LocalAdmission::with_ledger(ledger)))
    }

    /// Admits rate limits, quotas and budgets through `admission` instead of the in-process
    /// default (which counts rate limits only). A shared admission makes several replicas
    /// enforce one set of limits.
    pub fn admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// The clock used for key expiry (tests pass a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Upper bound on a buffered request body.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The background work of this gateway, to stop with [`Background::shutdown`] once requests
    /// are drained: the usage sink's flush (so every accepted request's record is in the sink).
    /// Core starts no long-lived task; an embedder adds its own tasks and drains to the handle.
    pub fn background(&self) -> Background {
        let usage = self.usage.clone();
        let mut background = Background::new();
        background.drain("usage", move || async move {
            if let Err(error) = usage.flush().await {
                tracing::error!(%error, "usage records could not be flushed");
            }
        });
        background
    }

    /// The key store every stack authenticates and resolves through.
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.key_store
    }

    /// The admission layer as the builder's stacks use it, for an embedder's own stack.
    pub fn admission_layer(&self) -> AdmissionLayer {
        AdmissionLayer::new(self.key_store.clone(), self.admission.clone())
    }

    /// The authentication layer as the builder's stacks use it (same key store and clock).
    pub fn auth_layer(&self) -> AuthLayer {
        AuthLayer::new(self.key_store.clone()).with_clock(self.clock.clone())
    }

    /// The full governed stack for one LLM endpoint.
    pub fn llm<B>(&self, endpoint: Endpoint) -> GatewayService<B>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.stack(endpoint, self.provider_service(), self.routing_layer())
    }

    /// The same stack as [`llm`](Self::llm) in front of `inner` instead of the provider dispatch:
    /// an embedder's own handler or upstream client receives requests that are authenticated,
    /// resolved and admitted — the buffered body, with [`Principal`], `Arc<ResolvedModel>`,
    /// [`LlmRequest`](crate::layers::LlmRequest) and the [`Meter`](crate::layers::Meter) in its
    /// extensions — and reports what it served with [`Meter::record_usage`](crate::layers::Meter::record_usage),
    /// which bills the request and settles its budget holds.
    ///
    /// Routing is not in this stack: its attempts are the provider dispatch's.
    pub fn llm_with<B, S>(&self, endpoint: Endpoint, inner: S) -> GatewayService<B>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        S: StackService<Bytes>,
    {
        self.stack(endpoint, inner, None)
    }

    fn stack<B, S>(
        &self,
        endpoint: Endpoint,
        inner: S,
        routing: Option<RoutingLayer>,
    ) -> GatewayService<B>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        S: StackService<Bytes>,
    {
        // The inner stack is boxed where it meets the front. Unboxed, every optional step of the
        // front (an `Either` over the rest) nests the whole inner type twice, and compiling one
        // `llm::<B>` took over two minutes in a debug build (the crate's doctest, each example
        // and test binary paid it); boxed, seconds, for one more dynamic call per request.
        self.front(
            Front::Llm(endpoint),
            BoxCloneSyncService::new(self.llm_inner(inner, routing)),
        )
    }

    /// The front every gateway route shares, outermost first (steps 1–5 of the module docs):
    /// endpoint, request id, trace, error → response, (MCP reference), authentication, metering.
    /// [`Front`] says which of the optional steps a route has; the order is written only here.
    ///
    /// `inner` receives authenticated (and, for governed fronts, metered) requests with their body
    /// still unread. An embedder puts its own route behind the gateway's authentication and
    /// metering with it; [`llm`](Self::llm) and [`mcp`](Self::mcp) put their inner stacks here.
    pub fn front<B, S>(&self, front: Front, inner: S) -> GatewayService<B>
    where
        B: Send + 'static,
        S: StackService<B>,
    {
        let endpoint = front.endpoint();
        let governed = endpoint.is_some();
        let service = ServiceBuilder::new()
            .option_layer(endpoint.map(|endpoint| {
                MapRequestLayer::new(move |mut req: Request<B>| {
                    req.extensions_mut().insert(endpoint);
                    req
                })
            }))
            .layer(RequestIdLayer)
            .option_layer(self.trace_layer().filter(|_| governed))
            .layer(ErrorResponseLayer)
            .option_layer(matches!(front, Front::Mcp).then_some(McpRefLayer))
            .option_layer(self.stage(stage::AUTH).filter(|_| governed))
            .layer(self.auth_layer())
            .option_layer(governed.then(|| MeteringLayer::new(self.usage.clone())))
            .service(inner);
        BoxCloneSyncService::new(service)
    }

    /// The LLM inner stack (steps 6–7): resolution, routing (when given), admission, then `inner`.
    fn llm_inner<B, S>(&self, inner: S, routing: Option<RoutingLayer>) -> impl StackService<B>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        S: StackService<Bytes>,
    {
        ServiceBuilder::new()
            .option_layer(self.stage(stage::RESOLVE))
            .layer(ResolveLayer::new(self.key_store.clone()).max_body_bytes(self.max_body_bytes))
            .option_layer(
                routing
                    .is_some()
                    .then(|| self.stage(stage::ROUTING))
                    .flatten(),
            )
            .option_layer(routing)
            .option_layer(self.stage(stage::ADMISSION))
            .layer(self.admission_layer())
            .service(inner)
    }

    /// The MCP inner stack: MCP resolution (server, grant, scope, tool rules), admission, then
    /// `call`.
    fn mcp_inner<B, S>(&self, call: S) -> impl StackService<B>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        S: StackService<Bytes>,
    {
        ServiceBuilder::new()
            .option_layer(self.stage(stage::RESOLVE))
            .layer(McpResolveLayer::new(self.key_store.clone()).max_body_bytes(self.max_body_bytes))
            .option_layer(self.stage(stage::ADMISSION))
            .layer(self.admission_layer())
            .service(call)
    }

    /// The governed MCP route: the MCP front, then the MCP inner stack in front of
    /// `call`, the embedder's service that talks to the MCP server.
    pub fn mcp<B, S>(&self, call: S) -> GatewayService<B>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        S: StackService<Bytes>,
    {
        // Boxed where it meets the front, as in `stack` (compile time).
        self.front(Front::Mcp, BoxCloneSyncService::new(self.mcp_inner(call)))
    }

    /// `GET /v1/models` (every granted model, `family = None`) and the family model lists
    /// (`/v1/vllm/models`, …): the key's granted models in the OpenAI list shape. No upstream call.
    pub fn model_list<B>(&self, family: Option<ProviderType>) -> GatewayService<B>
    where
        B: Send + 'static,
    {
        let store = self.key_store.clone();
        let service = tower::service_fn(move |req: Request<B>| {
            let store = store.clone();
            async move {
                let principal = req
                    .extensions()
                    .get::<Principal>()
                    .ok_or_else(|| GatewayError::Internal("model list needs a principal".into()))?;
                let models = store.granted_models(principal).await?;
                let data: Vec<_> = models
                    .iter()
                    .filter(|m| family.is_none_or(|f| m.provider.provider_type == f))
                    .map(|m| {
                        json!({
                            "id": m.name,
                            "object": "model",
                            "created": 0,
                            "owned_by": m.provider.provider_type.family(),
                            "type": m.model_type,
                        })
                    })
                    .collect();
                Ok::<_, GatewayError>(json_response(&json!({"object": "list", "data": data})))
            }
        });
        self.front(Front::Plain, service)
    }

    /// `POST /v1/keys/validate`: authenticates the presented key and describes it, or answers with
    /// the same 401 codes as every other route. Not metered (no model is called).
    pub fn validate_key<B>(&self) -> GatewayService<B>
    where
        B: Send + 'static,
    {
        let service = tower::service_fn(|req: Request<B>| async move {
            let principal = req
                .extensions()
                .get::<Principal>()
                .ok_or_else(|| GatewayError::Internal("validation needs a principal".into()))?;
            let body = json!({
                "valid": true,
                "apiKeyId": principal.api_key_id,
                "organisationId": principal.organisation_id,
                "type": principal.key_type,
                "teamId": principal.team_id,
                "userId": principal.user_id,
                "expiresAt": principal.expires_at,
            });
            let mut response = Response::new(full(body.to_string()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok::<_, GatewayError>(response)
        });
        self.front(Front::Plain, service)
    }
}

/// Which front a route gets (see [`GatewayBuilder::front`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// A governed LLM route: endpoint, request id, trace, error → response, authentication,
    /// metering.
    Llm(Endpoint),
    /// The governed MCP route: as [`Front::Llm`] for [`Endpoint::Mcp`], with the MCP reference
    /// check between error → response and authentication (a path without a server reference is
    /// 400 before authentication).
    Mcp,
    /// A route that calls no model (model lists, key validation): request id, error → response,
    /// authentication only. Not traced, not metered, no `Endpoint` (errors in the OpenAI style).
    Plain,
}

impl Front {
    fn endpoint(self) -> Option<Endpoint> {
        match self {
            Self::Llm(endpoint) => Some(endpoint),
            Self::Mcp => Some(Endpoint::Mcp),
            Self::Plain => None,
        }
    }
}

fn json_response(body: &serde_json::Value) -> Response<GatewayBody> {
    let mut response = Response::new(full(body.to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
