//! The access log: one structured event per request (target `odock::access`, a JSON line with
//! `ODOCK_LOG_FORMAT=json`): request id, trace id, organisation, key id, route, model, provider,
//! status, error code, latency, upstream latency, tokens and cost. Never a key, a header, a body
//! or content.
//!
//! Governed requests (LLM and MCP routes, once authenticated) are logged from their usage record
//! when it is made — at the end of the response body, so a stream's line has its tokens and
//! duration. Everything else (unauthenticated refusals, the admin API, health, unknown routes) is
//! logged by the metrics middleware when the response head leaves. `ODOCK_ACCESS_LOG` picks `all`
//! (default), `errors` (status ≥ 400) or `off`; `ODOCK_ACCESS_LOG_SAMPLE_RATIO` keeps that share of
//! successful lines (errors are always kept). The level is `info` (`warn` for 5xx), so `ODOCK_LOG`
//! filters it like any target (`odock::access=off`).

use std::time::Duration;

use odock_core::UsageRecord;

use crate::observability::AccessLogMode;

/// Writes access lines per the configured mode and sample ratio.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    mode: AccessLogMode,
    sample_ratio: f64,
}

impl AccessLog {
    /// An access log in `mode` keeping `sample_ratio` (0..=1) of successful lines.
    pub fn new(mode: AccessLogMode, sample_ratio: f64) -> Self {
        Self { mode, sample_ratio }
    }

    /// Whether any line is written (the mode is not `off`).
    pub fn enabled(&self) -> bool {
        self.mode != AccessLogMode::Off
    }

    fn keeps(&self, status: u16) -> bool {
        match self.mode {
            AccessLogMode::Off => false,
            _ if status >= 400 => true,
            AccessLogMode::Errors => false,
            AccessLogMode::All => {
                self.sample_ratio >= 1.0 || rand::random::<f64>() < self.sample_ratio
            }
        }
    }

    /// The line of a governed request, from its usage record.
    pub fn record(&self, r: &UsageRecord) {
        if !self.keeps(r.http_status) {
            return;
        }
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "odock::access",
                    request_id = %r.request_id,
                    trace_id = r.trace_id.as_deref().unwrap_or(""),
                    organisation_id = %r.organisation_id,
                    api_key_id = %r.api_key_id,
                    route = %r.endpoint,
                    model = r.model.as_deref().unwrap_or(""),
                    provider = %r.provider,
                    status = r.http_status,
                    error_code = r.error_code.as_deref().unwrap_or(""),
                    latency_ms = r.latency_ms,
                    upstream_latency_ms = r.metadata.upstream_latency_ms,
                    gateway_overhead_us = r.gateway_overhead_us,
                    stream = r.stream,
                    input_tokens = r.tokens.input,
                    output_tokens = r.tokens.output,
                    cost_nanos_usd = r.cost_nanos_usd,
                    "access"
                )
            };
        }
        if r.http_status >= 500 {
            line!(warn);
        } else {
            line!(info);
        }
    }

    /// The line of a request no usage record describes.
    pub fn request(
        &self,
        method: &http::Method,
        route: &str,
        status: u16,
        request_id: &str,
        latency: Duration,
    ) {
        if !self.keeps(status) {
            return;
        }
        let latency_ms = latency.as_millis() as u64;
        if status >= 500 {
            tracing::warn!(target: "odock::access", request_id, method = %method, route, status, latency_ms, "access");
        } else {
            tracing::info!(target: "odock::access", request_id, method = %method, route, status, latency_ms, "access");
        }
    }
}

/// Whether a request on `route` (a matched route pattern) that answered `status` left a usage
/// record, and so its access line: the LLM and MCP routes, once the caller was authenticated.
pub fn metered(route: &str, status: u16) -> bool {
    let gateway = route.starts_with("/v1/") || route.starts_with("/v1beta/");
    let unmetered = matches!(
        route,
        "/v1/health" | "/v1/healthz" | "/v1/keys/validate" | "/v1/internal/cache/invalidate"
    ) || route.ends_with("/models");
    // `/v1/mcp` without a server reference is refused (400) before authentication.
    let before_auth = status == 401 || matches!(route, "/v1/mcp" | "/v1/mcp/");
    gateway && !unmetered && !before_auth
}
