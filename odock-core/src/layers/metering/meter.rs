//! The per-request meter: later layers and the provider dispatch write what they learn into it; it
//! turns that into one [`UsageRecord`] exactly once — when the response body ends, when it is
//! dropped (client abort), or when the request fails — and hands it to the [`UsageSink`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use parking_lot::Mutex;

use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::ids::{RequestId, UsageRecordId};
use crate::layers::mcp::McpRequest;
use crate::layers::request_id::RequestStart;
use crate::mcp_server::ResolvedMcpServer;
use crate::model::ResolvedModel;
use crate::pricing::{bill, bill_mcp};
use crate::principal::Principal;
use crate::telemetry::RequestTrace;
use crate::usage::{
    McpUsageRecord, ReportedUsage, TokenUsage, UsageMetadata, UsageRecord, UsageSink,
};
use opentelemetry::trace::TraceContextExt;

/// Rough bytes-per-token ratio used when an upstream never reported usage (aborted streams).
const BYTES_PER_TOKEN: u64 = 4;

pub use crate::usage::RequestOutcome as Outcome;

/// A hook run with the final record before it is enqueued (settling holds, which may attach the
/// ledger charges the usage writer stores with the record).
pub type FinishHook = Box<dyn FnOnce(&mut UsageRecord) + Send>;

/// Shared handle to the request's meter (cheap to clone).
#[derive(Clone)]
pub struct Meter(Arc<MeterInner>);

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meter")
    }
}

struct MeterInner {
    sink: Arc<dyn UsageSink>,
    state: Mutex<MeterState>,
    /// Response body bytes delivered to the client (MCP output bytes); lock-free on the body path.
    response_bytes: AtomicU64,
}

/// What an MCP exchange records beyond the usage record (provider `mcp`).
struct McpFacts {
    server: Arc<ResolvedMcpServer>,
    rpc_method: String,
    tool_name: Option<String>,
    tool_call_count: u64,
    input_bytes: u64,
}

struct MeterState {
    finished: bool,
    request_id: RequestId,
    principal: Principal,
    endpoint: Option<Endpoint>,
    start: RequestStart,
    model: Option<Arc<ResolvedModel>>,
    stream: bool,
    prompt_text_bytes: u64,
    upstream_started: Option<Instant>,
    status: Option<u16>,
    error_code: Option<&'static str>,
    denied_by: Option<String>,
    usage: Option<ReportedUsage>,
    streamed_output_bytes: u64,
    provider_request_id: Option<String>,
    mcp: Option<McpFacts>,
    /// The routing facts (strategy, attempts) of a routed request.
    routing: Option<serde_json::Value>,
    hooks: Vec<FinishHook>,
    /// The request's spans (tracing on) and the trace id the record keeps.
    trace: Option<RequestTrace>,
    trace_id: Option<String>,
}

impl Meter {
    /// A meter for one authenticated request, enqueuing its record into `sink` when it finishes.
    pub fn new(
        sink: Arc<dyn UsageSink>,
        request_id: RequestId,
        principal: Principal,
        endpoint: Option<Endpoint>,
        start: RequestStart,
    ) -> Self {
        Self(Arc::new(MeterInner {
            sink,
            state: Mutex::new(MeterState {
                finished: false,
                request_id,
                principal,
                endpoint,
                start,
                model: None,
                stream: false,
                prompt_text_bytes: 0,
                upstream_started: None,
                status: None,
                error_code: None,
                denied_by: None,
                usage: None,
                streamed_output_bytes: 0,
                provider_request_id: None,
                mcp: None,
                routing: None,
                hooks: Vec::new(),
                trace: None,
                trace_id: None,
            }),
            response_bytes: AtomicU64::new(0),
        }))
    }

    /// The model that serves the request (named, priced and counted on the record).
    pub fn set_model(&self, model: Arc<ResolvedModel>) {
        self.0.state.lock().model = Some(model);
    }

    /// The record's `routing` object (routed requests: strategy, whether rerouted, attempts).
    pub fn set_routing(&self, routing: serde_json::Value) {
        self.0.state.lock().routing = Some(routing);
    }

    /// Makes this an MCP exchange with `server`: the record names the server (provider `mcp`, model
    /// = slug), is priced with the server's MCP pricing and gets its MCP usage record.
    pub fn set_mcp(&self, server: Arc<ResolvedMcpServer>, request: &McpRequest) {
        self.0.state.lock().mcp = Some(McpFacts {
            server,
            rpc_method: request.rpc_method(),
            tool_name: request.tool_name().map(str::to_owned),
            tool_call_count: request.tool_call_count(),
            input_bytes: request.body_bytes,
        });
    }

    /// Links the record to its trace: `trace` (tracing on) gets the record's facts as span
    /// attributes and a span around the enqueue; `trace_id` (32 hex) goes on the record.
    pub fn set_trace(&self, trace: Option<RequestTrace>, trace_id: Option<String>) {
        let mut state = self.0.state.lock();
        state.trace = trace;
        state.trace_id = trace_id;
    }

    /// Counts response body bytes as they reach the client.
    pub fn add_response_bytes(&self, n: u64) {
        self.0.response_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Facts decoded from the request body.
    pub fn set_request(&self, stream: bool, prompt_text_bytes: u64) {
        let mut state = self.0.state.lock();
        state.stream = stream;
        state.prompt_text_bytes = prompt_text_bytes;
    }

    /// Marks the start of the upstream call (ends the gateway-overhead interval).
    pub fn upstream_started(&self) {
        self.0.state.lock().upstream_started = Some(Instant::now());
    }

    /// The status the client receives.
    pub fn set_status(&self, status: u16) {
        self.0.state.lock().status = Some(status);
    }

    /// The gateway error code the request failed with.
    pub fn set_error_code(&self, code: &'static str) {
        self.0.state.lock().error_code = Some(code);
    }

    /// The upstream's id for the request; `None` keeps what was set before.
    pub fn set_provider_request_id(&self, id: Option<String>) {
        if id.is_some() {
            self.0.state.lock().provider_request_id = id;
        }
    }

    /// The usage the upstream reported; the record is billed from it.
    pub fn record_usage(&self, usage: ReportedUsage) {
        self.0.state.lock().usage = Some(usage);
    }

    /// Counts streamed output text, for estimating usage when none is reported.
    pub fn add_output_text_bytes(&self, n: u64) {
        if n > 0 {
            let mut state = self.0.state.lock();
            state.streamed_output_bytes = state.streamed_output_bytes.saturating_add(n);
        }
    }

    /// Registers a hook to run once with the final record.
    pub fn on_finish(&self, hook: FinishHook) {
        let mut state = self.0.state.lock();
        if !state.finished {
            state.hooks.push(hook);
        }
    }

    /// Records a gateway error as the request's outcome and finishes.
    pub fn fail(&self, error: &GatewayError) {
        {
            let mut state = self.0.state.lock();
            state.status = Some(error.status().as_u16());
            state.error_code = Some(error.code());
            state.denied_by = match error {
                GatewayError::RateLimit(crate::error::RateLimitError::Exceeded {
                    scope,
                    limit,
                    ..
                }) => Some(format!("rate limit `{limit}` on scope `{scope}`")),
                GatewayError::Budget(_) | GatewayError::Quota(_) | GatewayError::RateLimit(_) => {
                    Some(error.to_string())
                }
                _ => None,
            };
        }
        self.finish(Outcome::Failed);
    }

    /// Builds and enqueues the record. Only the first call does anything.
    pub fn finish(&self, outcome: Outcome) {
        let response_bytes = self.0.response_bytes.load(Ordering::Relaxed);
        let mut state = self.0.state.lock();
        finish_state(&mut state, &*self.0.sink, outcome, response_bytes);
    }
}

impl Drop for MeterInner {
    fn drop(&mut self) {
        // The last handle went away without an explicit finish: the response future or body was
        // dropped, i.e. the client left. Still bill and record.
        let response_bytes = *self.response_bytes.get_mut();
        let state = self.state.get_mut();
        finish_state(state, &*self.sink, Outcome::ClientAborted, response_bytes);
    }
}

fn finish_state(
    state: &mut MeterState,
    sink: &dyn UsageSink,
    outcome: Outcome,
    response_bytes: u64,
) {
    if state.finished {
        return;
    }
    state.finished = true;
    let mut record = build_record(state, outcome);
    let mcp = state
        .mcp
        .take()
        .map(|facts| mcp_record(&mut record, state, facts, response_bytes));
    for hook in state.hooks.drain(..) {
        hook(&mut record);
    }
    record.trace_id = state.trace_id.take();
    let usage_span = state.trace.take().map(|trace| {
        trace.usage(&record);
        trace.usage_span()
    });
    match mcp {
        Some(mcp) => sink.enqueue_mcp(record, mcp),
        None => sink.enqueue(record),
    }
    if let Some(span) = usage_span {
        span.span().end();
    }
}

/// Turns `record` into the usage record of an MCP exchange and builds its MCP usage record. Only a
/// message that reached the upstream is priced: tool calls at the call price (failed ones too) and
/// the bytes both ways; a refused one costs nothing.
fn mcp_record(
    record: &mut UsageRecord,
    state: &MeterState,
    facts: McpFacts,
    response_bytes: u64,
) -> McpUsageRecord {
    let forwarded = state.upstream_started.is_some();
    let (calls, input_bytes) = if forwarded {
        (facts.tool_call_count, facts.input_bytes)
    } else {
        (0, 0)
    };
    let output_bytes = if forwarded { response_bytes } else { 0 };
    let billing = bill_mcp(&facts.server.pricing, calls, input_bytes, output_bytes);
    record.provider = "mcp".to_owned();
    record.model = Some(facts.server.slug.clone());
    record.model_id = None;
    record.billing = None;
    record.cost_nanos_usd = billing.cost_nanos_usd;
    record.metadata.provider_type = Some(facts.server.transport.as_str().to_owned());
    McpUsageRecord {
        id: crate::ids::time_ordered_hex_id(),
        usage_record_id: record.id.clone(),
        request_id: record.request_id.clone(),
        organisation_id: record.organisation_id.clone(),
        team_id: record.team_id.clone(),
        user_id: record.user_id.clone(),
        api_key_id: record.api_key_id.clone(),
        mcp_server_id: facts.server.id.clone(),
        slug: facts.server.slug.clone(),
        transport: facts.server.transport.as_str().to_owned(),
        rpc_method: Some(facts.rpc_method),
        tool_name: facts.tool_name,
        tool_call_count: calls,
        input_bytes,
        output_bytes,
        http_status: record.http_status,
        error_code: record.error_code.clone(),
        latency_ms: record.latency_ms,
        cost_nanos_usd: billing.cost_nanos_usd,
        billing,
        created_at: record.created_at,
    }
}

fn build_record(state: &mut MeterState, outcome: Outcome) -> UsageRecord {
    let now = Instant::now();
    let latency = now.duration_since(state.start.instant);
    let overhead = state
        .upstream_started
        .map_or(latency, |t| t.duration_since(state.start.instant));

    // Exact usage when the upstream reported it. Otherwise, when the upstream was reached and the
    // client went away (or text was streamed), an estimate: the prompt reached the provider, which
    // bills it, and what was streamed was generated — an aborted request is never free.
    let estimate_usage = state.upstream_started.is_some()
        && (state.streamed_output_bytes > 0 || outcome == Outcome::ClientAborted);
    let (tokens, provider_usage, estimated) = match state.usage.take() {
        Some(reported) => (reported.tokens, Some(reported.raw), false),
        None if estimate_usage => {
            let tokens = TokenUsage {
                input: state.prompt_text_bytes.div_ceil(BYTES_PER_TOKEN),
                output: state.streamed_output_bytes.div_ceil(BYTES_PER_TOKEN),
                ..TokenUsage::default()
            };
            let estimated = tokens.total() > 0;
            (tokens, None, estimated)
        }
        None => (TokenUsage::default(), None, false),
    };

    let (status, error_code) = match outcome {
        Outcome::ClientAborted => (
            state.status.unwrap_or(499),
            state.error_code.or(Some("client_disconnected")),
        ),
        Outcome::Completed | Outcome::Failed => (state.status.unwrap_or(200), state.error_code),
    };

    let billing = match (&state.model, state.endpoint) {
        (Some(model), Some(endpoint)) => {
            Some(bill(&model.pricing, &tokens, endpoint.billing_mode()))
        }
        _ => None,
    };

    let upstream_ms = state
        .upstream_started
        .map(|t| now.duration_since(t).as_millis() as u64);
    let metadata = UsageMetadata {
        schema: "usage_metadata_v1".to_owned(),
        outcome,
        usage_estimated: estimated,
        upstream_latency_ms: upstream_ms,
        received_at: state.start.at,
        provider_type: state
            .model
            .as_ref()
            .map(|m| m.provider.provider_type.as_str().to_owned()),
        denied_by: state.denied_by.take(),
    };

    let principal = &state.principal;
    UsageRecord {
        id: UsageRecordId::new(crate::ids::time_ordered_hex_id()),
        request_id: state.request_id.clone(),
        organisation_id: principal.organisation_id.clone(),
        team_id: principal.team_id.clone(),
        user_id: principal.user_id.clone(),
        api_key_id: principal.api_key_id.clone(),
        provider: state
            .model
            .as_ref()
            .map(|m| m.provider.provider_type.family().to_owned())
            .unwrap_or_default(),
        model: state.model.as_ref().map(|m| m.name.clone()),
        model_id: state.model.as_ref().map(|m| m.id.clone()),
        endpoint: state
            .endpoint
            .map(|e| e.route().to_owned())
            .unwrap_or_default(),
        http_status: status,
        error_code: error_code.map(str::to_owned),
        latency_ms: latency.as_millis() as u64,
        gateway_overhead_us: overhead.as_micros() as u64,
        stream: state.stream,
        billable_tokens: tokens.total(),
        tokens,
        cost_nanos_usd: billing.as_ref().map_or(0, |b| b.cost_nanos_usd),
        billing,
        provider_usage,
        routing: state.routing.take(),
        metadata,
        provider_request_id: state.provider_request_id.take(),
        trace_id: None,
        created_at: Utc::now(),
        ledger_charges: Vec::new(),
    }
}
