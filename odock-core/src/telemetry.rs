//! Request tracing through the OpenTelemetry API: one server span per governed request, a child span
//! per stage (authentication, resolution, admission), one client span per upstream call (LLM
//! provider or MCP transport) with its time to first byte, and one for handing the usage record to
//! the sink. Attributes follow the OpenTelemetry GenAI semantic conventions (`gen_ai.*`) plus
//! Odock's own (`odock.*`); prompt and completion content is never recorded.
//!
//! Off by default and free when off: without a [`Tracing`] handed to the
//! [`GatewayBuilder`](crate::GatewayBuilder) no trace layer is in the stack, nothing is allocated
//! and no span exists. The embedder supplies the tracer (`odock-server` builds one exporting over
//! OTLP), so this crate depends on the OpenTelemetry API only, never on an SDK or exporter.
//!
//! W3C trace context: a valid incoming `traceparent` makes the server span its child (and is kept
//! on the usage record as `traceId` even when tracing is off); upstream calls carry a `traceparent`
//! naming their client span (tracing on) or the client's own header (tracing off).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use parking_lot::Mutex;

use crate::error::GatewayError;
use crate::principal::Principal;
use crate::usage::UsageRecord;

/// The W3C trace-context request header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C vendor trace state header (passed along with `traceparent`).
pub const TRACESTATE: &str = "tracestate";

/// Span names of the governed request's stages.
pub mod stage {
    /// Authentication.
    pub const AUTH: &str = "odock.auth";
    /// Model (or MCP server) resolution and the grant checks.
    pub const RESOLVE: &str = "odock.resolve";
    /// The routing policy lookup and plan.
    pub const ROUTING: &str = "odock.routing";
    /// Rate limits, budgets and quotas.
    pub const ADMISSION: &str = "odock.admission";
    /// Handing the usage record to the sink.
    pub const USAGE: &str = "odock.usage.enqueue";
}

/// The tracer request spans are made with (cheap to clone).
#[derive(Clone)]
pub struct Tracing {
    tracer: Arc<opentelemetry::global::BoxedTracer>,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracing")
    }
}

impl Tracing {
    /// Traces requests with `tracer` (an SDK tracer, or any [`Tracer`]).
    pub fn new<T>(tracer: T) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self {
            tracer: Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(tracer))),
        }
    }

    fn child(
        &self,
        parent: &Context,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&*self.tracer, parent);
        parent.with_span(span)
    }
}

/// Parses a W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`). Invalid
/// values (wrong shape, upper-case hex, all-zero ids, version `ff`) are `None`, as the spec says a
/// receiver must treat them: as absent.
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    // Version 00 is exactly 55 bytes; later versions may append fields after a dash.
    if version == 0xff
        || (version == 0 && value.len() != 55)
        || (value.len() > 55 && value[55] != b'-')
    {
        return None;
    }
    let mut trace = [0u8; 16];
    for (i, byte) in trace.iter_mut().enumerate() {
        *byte = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
    }
    let mut span = [0u8; 8];
    for (i, byte) in span.iter_mut().enumerate() {
        *byte = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&value[53..55])?;
    let (trace, span) = (TraceId::from_bytes(trace), SpanId::from_bytes(span));
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    Some((trace, span, TraceFlags::new(flags)))
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

/// The trace id of a request's `traceparent` header, as the usage record keeps it (32 hex), when
/// the header is valid.
pub fn incoming_trace_id(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(TRACEPARENT)?;
    parse_traceparent(value.as_bytes()).map(|(trace, _, _)| trace.to_string())
}

/// A `traceparent` header naming `context`'s span.
fn traceparent_of(context: &SpanContext) -> Option<HeaderValue> {
    if !context.is_valid() {
        return None;
    }
    HeaderValue::from_str(&format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    ))
    .ok()
}

/// One request's spans, in the request extensions while tracing is on (cheap to clone). Ended
/// spans stay ended: every method may be called at any time and in any order, and dropping the
/// last handle (a client that went away) ends whatever is still open.
#[derive(Clone)]
pub struct RequestTrace(Arc<TraceInner>);

impl std::fmt::Debug for RequestTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestTrace")
            .field(&self.trace_id())
            .finish()
    }
}

struct TraceInner {
    tracing: Tracing,
    server: Context,
    state: Mutex<TraceStages>,
}

#[derive(Default)]
struct TraceStages {
    /// The stage span open now (auth, resolve, admission).
    stage: Option<Context>,
    /// The upstream call's span (one per attempt).
    upstream: Option<Context>,
    first_byte: bool,
    ended: bool,
}

impl RequestTrace {
    /// Opens the server span of a request, as a child of the client's `traceparent` when valid.
    /// `route` is the route pattern (low cardinality: the span name is `METHOD route`).
    pub fn start(
        tracing: &Tracing,
        method: &http::Method,
        route: &str,
        headers: &http::HeaderMap,
        request_id: &str,
    ) -> Self {
        let parent = headers
            .get(TRACEPARENT)
            .and_then(|v| parse_traceparent(v.as_bytes()))
            .map_or_else(Context::new, |(trace, span, flags)| {
                let state = headers
                    .get(TRACESTATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<TraceState>().ok())
                    .unwrap_or_default();
                Context::new()
                    .with_remote_span_context(SpanContext::new(trace, span, flags, true, state))
            });
        let server = tracing.child(
            &parent,
            format!("{method} {route}"),
            SpanKind::Server,
            vec![
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("odock.request_id", request_id.to_owned()),
            ],
        );
        Self(Arc::new(TraceInner {
            tracing: tracing.clone(),
            server,
            state: Mutex::new(TraceStages::default()),
        }))
    }

    /// The trace id (32 hex), as the usage record keeps it.
    pub fn trace_id(&self) -> String {
        self.0.server.span().span_context().trace_id().to_string()
    }

    /// Names the caller on the server span (ids only, never the key).
    pub fn principal(&self, principal: &Principal) {
        let span = self.0.server.span();
        span.set_attribute(KeyValue::new(
            "odock.organisation_id",
            principal.organisation_id.as_str().to_owned(),
        ));
        span.set_attribute(KeyValue::new(
            "odock.api_key_id",
            principal.api_key_id.as_str().to_owned(),
        ));
    }

    /// Ends the open stage (if any) and opens `name` as a child of the server span.
    pub fn begin_stage(&self, name: &'static str) {
        let child = self
            .0
            .tracing
            .child(&self.0.server, name, SpanKind::Internal, Vec::new());
        let mut state = self.0.state.lock();
        if state.ended {
            return;
        }
        if let Some(previous) = state.stage.replace(child) {
            previous.span().end();
        }
    }

    /// Adds attributes to the open stage's span (e.g. the routing plan).
    pub fn annotate_stage(&self, attributes: Vec<KeyValue>) {
        let state = self.0.state.lock();
        if let Some(stage) = &state.stage {
            stage.span().set_attributes(attributes);
        }
    }

    /// Marks the open stage as the one that refused the request and ends it.
    pub fn fail_stage(&self, error: &GatewayError) {
        let stage = self.0.state.lock().stage.take();
        if let Some(stage) = stage {
            let span = stage.span();
            span.set_attribute(KeyValue::new("error.type", error.code()));
            span.set_status(Status::error(error.code()));
            span.end();
        }
    }

    /// Starts an upstream call's client span (ending the open stage): `operation` is the GenAI
    /// operation (`chat`, `embeddings`, …) or the MCP method, `target` the model or MCP server.
    /// Routing calls it once per attempt; the previous attempt's span ends then (see
    /// [`upstream_failed`](Self::upstream_failed)).
    pub fn upstream_started(&self, operation: &str, target: &str, attributes: Vec<KeyValue>) {
        let child = self.0.tracing.child(
            &self.0.server,
            format!("{operation} {target}"),
            SpanKind::Client,
            attributes,
        );
        let mut state = self.0.state.lock();
        if state.ended {
            return;
        }
        if let Some(stage) = state.stage.take() {
            stage.span().end();
        }
        if let Some(previous) = state.upstream.replace(child) {
            previous.span().end();
        }
        state.first_byte = false;
    }

    /// The current upstream attempt failed with `code` (routing tries the next one).
    pub fn upstream_failed(&self, code: &str) {
        if let Some(upstream) = self.0.state.lock().upstream.take() {
            let span = upstream.span();
            span.set_attribute(KeyValue::new("error.type", code.to_owned()));
            span.set_status(Status::error(code.to_owned()));
            span.end();
        }
    }

    /// Adds attributes to the upstream span (response model, upstream status, …).
    pub fn upstream_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        if let Some(upstream) = &self.0.state.lock().upstream {
            upstream.span().set_attributes(attributes);
        }
    }

    /// The `traceparent` an upstream request carries: the upstream span's (else the server's).
    pub fn upstream_traceparent(&self) -> Option<HeaderValue> {
        let state = self.0.state.lock();
        let context = state.upstream.as_ref().unwrap_or(&self.0.server);
        traceparent_of(context.span().span_context())
    }

    /// The first response byte reached the client: an event on the upstream span (once).
    pub fn first_byte(&self) {
        let mut state = self.0.state.lock();
        if state.first_byte {
            return;
        }
        state.first_byte = true;
        if let Some(upstream) = &state.upstream {
            upstream.span().add_event_with_timestamp(
                "odock.first_byte",
                SystemTime::now(),
                Vec::new(),
            );
        }
    }

    /// Puts what the usage record says (model, provider, tokens, cost, outcome) on the spans.
    pub fn usage(&self, record: &UsageRecord) {
        let mut attributes = Vec::with_capacity(10);
        if !record.provider.is_empty() {
            attributes.push(KeyValue::new(
                "gen_ai.provider.name",
                record.provider.clone(),
            ));
        }
        if let Some(model) = &record.model {
            attributes.push(KeyValue::new("gen_ai.request.model", model.clone()));
        }
        attributes.push(KeyValue::new(
            "gen_ai.usage.input_tokens",
            record.tokens.input as i64,
        ));
        attributes.push(KeyValue::new(
            "gen_ai.usage.output_tokens",
            record.tokens.output as i64,
        ));
        attributes.push(KeyValue::new("odock.cost_nanos_usd", record.cost_nanos_usd));
        attributes.push(KeyValue::new(
            "odock.usage_record_id",
            record.id.to_string(),
        ));
        if let Some(code) = &record.error_code {
            attributes.push(KeyValue::new("odock.error_code", code.clone()));
        }
        let state = self.0.state.lock();
        if let Some(upstream) = &state.upstream {
            upstream.span().set_attributes(attributes.iter().cloned());
        }
        self.0.server.span().set_attributes(attributes);
    }

    /// A short child span around handing the usage record to the sink.
    pub fn usage_span(&self) -> Context {
        self.0
            .tracing
            .child(&self.0.server, stage::USAGE, SpanKind::Internal, Vec::new())
    }

    /// Opens a child span of the server span for work this module does not know (a routing
    /// decision, a cache lookup); the caller ends it (`context.span().end()`) or drops it.
    pub fn child(&self, name: &'static str, attributes: Vec<KeyValue>) -> Context {
        self.0
            .tracing
            .child(&self.0.server, name, SpanKind::Internal, attributes)
    }

    /// Ends every open span; the server span with the response status (an error status from 500).
    pub fn end(&self, status: u16) {
        let (stage, upstream) = {
            let mut state = self.0.state.lock();
            if state.ended {
                return;
            }
            state.ended = true;
            (state.stage.take(), state.upstream.take())
        };
        if let Some(stage) = stage {
            stage.span().end();
        }
        if let Some(upstream) = upstream {
            upstream.span().end();
        }
        let span = self.0.server.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            span.set_status(Status::error(format!("HTTP {status}")));
        }
        span.end();
    }
}

impl Drop for TraceInner {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        if !state.ended {
            if let Some(stage) = state.stage.take() {
                stage.span().end();
            }
            if let Some(upstream) = state.upstream.take() {
                upstream.span().end();
            }
            self.server.span().end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_traceparents_and_refuses_the_rest() {
        let valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (trace, span, flags) = parse_traceparent(valid).unwrap_or((
            TraceId::INVALID,
            SpanId::INVALID,
            TraceFlags::default(),
        ));
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!(flags.is_sampled());
        // A later version may append fields.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
        for bad in [
            &b""[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01".as_bytes(),
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn incoming_trace_id_reads_the_header() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(incoming_trace_id(&headers), None);
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        assert_eq!(
            incoming_trace_id(&headers).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
