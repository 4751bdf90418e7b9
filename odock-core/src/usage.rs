//! Normalised usage, the per-request usage record and the sink that stores records off the hot path.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{
    ApiKeyId, McpServerId, ModelId, OrganisationId, RequestId, TeamId, UsageRecordId, UserId,
};
use crate::ledger::{Actuals, WindowCharge};
use crate::pricing::{Bill, McpBill};
pub use crate::tokens::TokenUsage;

impl Actuals {
    /// The actuals of a finished request's usage record.
    pub fn of(record: &UsageRecord) -> Self {
        Self {
            tokens_in: record.tokens.input,
            tokens_out: record.tokens.output,
            cost_nanos: record.cost_nanos_usd,
            errors: u64::from(record.http_status >= 400 || record.error_code.is_some()),
            latency_ms: record.latency_ms,
        }
    }
}

/// Usage as an upstream reported it: normalised tokens plus the raw payload for the record.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedUsage {
    /// The usage in Odock's normalised form, for billing and limits.
    pub tokens: TokenUsage,
    /// The upstream's own usage object, kept for the record's `providerUsage`.
    pub raw: Value,
}

/// One gateway request, as stored and returned by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// The record's own id (idempotency key for storage).
    pub id: UsageRecordId,
    /// The request's `X-Request-Id`, as echoed to the client.
    pub request_id: RequestId,
    /// The organisation the key belongs to.
    pub organisation_id: OrganisationId,
    /// The key's team, when it has one.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub team_id: Option<TeamId>,
    /// The key's user, when it has one.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub user_id: Option<UserId>,
    /// The virtual key that made the request.
    pub api_key_id: ApiKeyId,
    /// Provider family (`openai`, …) or `mcp`; empty when the request was denied before resolution.
    pub provider: String,
    /// The Odock model name that answered.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub model: Option<String>,
    /// The id of the model that answered.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub model_id: Option<ModelId>,
    /// The gateway route, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    /// The status the client received.
    pub http_status: u16,
    /// The gateway error code, when the request failed in the gateway.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error_code: Option<String>,
    /// From receipt to the end of the response (or the failure), in milliseconds.
    pub latency_ms: u64,
    /// Time spent in Odock before the upstream call began.
    pub gateway_overhead_us: u64,
    /// Whether the response was streamed.
    pub stream: bool,
    /// Tokens in and out, as reported (or estimated).
    pub tokens: TokenUsage,
    /// The tokens the request is billed and counted for (input plus output).
    pub billable_tokens: u64,
    /// What the request cost, in billionths of a US dollar.
    pub cost_nanos_usd: i64,
    /// The calculator's breakdown and pricing snapshot; `None` when nothing was priced.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub billing: Option<Bill>,
    /// The upstream's own usage object, as it reported it.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub provider_usage: Option<Value>,
    /// How routing went (strategy, whether rerouted, attempts), for routed requests.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub routing: Option<Value>,
    /// Facts about the request that are not usage.
    pub metadata: UsageMetadata,
    /// The upstream's id for the request, for matching against the provider's own logs.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub provider_request_id: Option<String>,
    /// The trace the request was recorded under, when tracing is on.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub trace_id: Option<String>,
    /// When the record was made (the end of the request).
    pub created_at: DateTime<Utc>,
    /// What settling this request added to budget and quota windows, for the usage writer to store
    /// with the record (in-process ledger only; never part of the API's record).
    #[serde(skip)]
    pub ledger_charges: Vec<WindowCharge>,
}

/// How a request ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// The response body was delivered to its end.
    Completed,
    /// The request failed with a gateway error before a response.
    Failed,
    /// The client went away before the response ended.
    ClientAborted,
}

/// Facts about the request that are not usage (schema `usage_metadata_v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// The metadata's schema version (`usage_metadata_v1`).
    pub schema: String,
    /// How the request ended.
    pub outcome: RequestOutcome,
    /// True when no usage was reported upstream and tokens were estimated from streamed text.
    pub usage_estimated: bool,
    /// From the start of the upstream call to the end of its response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_latency_ms: Option<u64>,
    /// When the gateway received the request.
    pub received_at: DateTime<Utc>,
    /// The provider type that served the request, when it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// Which governance rule refused the request (budget, quota or rate limit), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<String>,
}

/// The MCP side of a usage record (provider `mcp`): which server, transport and JSON-RPC method, the
/// tool called, bytes each way and the MCP price. Stored in `mcp_usage_records`, paired with its
/// usage record by `usage_record_id`; the usage record's cost is the same total (never added twice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct McpUsageRecord {
    /// The MCP record's own id.
    pub id: String,
    /// The usage record this one details.
    pub usage_record_id: UsageRecordId,
    /// The request's `X-Request-Id`.
    pub request_id: RequestId,
    /// The organisation the key belongs to.
    pub organisation_id: OrganisationId,
    /// The key's team, when it has one.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub team_id: Option<TeamId>,
    /// The key's user, when it has one.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub user_id: Option<UserId>,
    /// The virtual key that made the request.
    pub api_key_id: ApiKeyId,
    /// The MCP server called.
    pub mcp_server_id: McpServerId,
    /// The MCP server's slug, as the client named it in `/v1/mcp/{slug}`.
    pub slug: String,
    /// `STREAMABLE_HTTP`, `SSE` or `STDIO`.
    pub transport: String,
    /// The JSON-RPC method (`tools/call`, `tools/list`, …; the first one of a batch), or the HTTP
    /// method for bodiless requests (`GET` server stream, `DELETE` session end).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub rpc_method: Option<String>,
    /// The tool of a `tools/call` (the first one of a batch).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub tool_name: Option<String>,
    /// How many `tools/call` requests the body held (a batch may hold several).
    pub tool_call_count: u64,
    /// Bytes of the client's request body.
    pub input_bytes: u64,
    /// Bytes of the reply relayed to the client.
    pub output_bytes: u64,
    /// The status the client received.
    pub http_status: u16,
    /// The gateway error code, when the request failed in the gateway.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error_code: Option<String>,
    /// From receipt to the end of the reply, in milliseconds.
    pub latency_ms: u64,
    /// What the request cost, in billionths of a US dollar.
    pub cost_nanos_usd: i64,
    /// Breakdown and pricing snapshot.
    pub billing: McpBill,
    /// When the record was made.
    pub created_at: DateTime<Utc>,
}

/// Why a sink could not store records.
#[derive(Debug, thiserror::Error)]
#[error("usage sink: {0}")]
pub struct UsageSinkError(pub String);

/// Where usage records go. `enqueue` must never block or fail the request: implementations buffer
/// and write in batches in the background; `flush` waits until everything enqueued is stored
/// (graceful shutdown, tests).
#[async_trait]
pub trait UsageSink: Send + Sync + 'static {
    /// Takes one record; never blocks and never fails the request.
    fn enqueue(&self, record: UsageRecord);

    /// Enqueues a usage record together with its MCP sidecar, to be stored in the same write.
    /// Sinks that do not keep MCP records store the usage record alone.
    fn enqueue_mcp(&self, record: UsageRecord, mcp: McpUsageRecord) {
        drop(mcp);
        self.enqueue(record);
    }

    /// Waits until everything enqueued so far is stored.
    async fn flush(&self) -> Result<(), UsageSinkError>;
}

/// Keeps records in memory; for embedding without a database and for tests.
#[derive(Debug, Default, Clone)]
pub struct InMemoryUsageSink {
    records: Arc<Mutex<Vec<UsageRecord>>>,
    mcp_records: Arc<Mutex<Vec<McpUsageRecord>>>,
}

impl InMemoryUsageSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record enqueued so far.
    pub fn records(&self) -> Vec<UsageRecord> {
        self.records.lock().clone()
    }

    /// A copy of every MCP usage record enqueued so far.
    pub fn mcp_records(&self) -> Vec<McpUsageRecord> {
        self.mcp_records.lock().clone()
    }
}

#[async_trait]
impl UsageSink for InMemoryUsageSink {
    fn enqueue(&self, record: UsageRecord) {
        self.records.lock().push(record);
    }

    fn enqueue_mcp(&self, record: UsageRecord, mcp: McpUsageRecord) {
        self.mcp_records.lock().push(mcp);
        self.records.lock().push(record);
    }

    async fn flush(&self) -> Result<(), UsageSinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_usage_has_the_documented_wire_shape() {
        let usage = TokenUsage {
            input: 10,
            output: 5,
            cached_input: 3,
            reasoning: 2,
            ..TokenUsage::default()
        };
        let json = serde_json::to_value(&usage).unwrap();
        assert_eq!(json["cached"], 3);
        assert_eq!(json["total"], 15);
        assert_eq!(json["reasoning"], 2);
        assert!(json.get("unitKind").is_none());
        let back: TokenUsage = serde_json::from_value(json).unwrap();
        assert_eq!(back, usage);
    }
}
