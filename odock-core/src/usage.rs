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
    pub tokens: TokenUsage,
    pub raw: Value,
}

/// One gateway request, as stored and returned by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    pub id: UsageRecordId,
    pub request_id: RequestId,
    pub organisation_id: OrganisationId,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub team_id: Option<TeamId>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub user_id: Option<UserId>,
    pub api_key_id: ApiKeyId,
    /// Provider family (`openai`, …) or `mcp`; empty when the request was denied before resolution.
    pub provider: String,
    /// The Odock model name that answered.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub model: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub model_id: Option<ModelId>,
    /// The gateway route, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    pub http_status: u16,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error_code: Option<String>,
    pub latency_ms: u64,
    /// Time spent in Odock before the upstream call began.
    pub gateway_overhead_us: u64,
    pub stream: bool,
    pub tokens: TokenUsage,
    pub billable_tokens: u64,
    pub cost_nanos_usd: i64,
    /// The calculator's breakdown and pricing snapshot; `None` when nothing was priced.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub billing: Option<Bill>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub provider_usage: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub routing: Option<Value>,
    pub metadata: UsageMetadata,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub provider_request_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub trace_id: Option<String>,
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
    pub schema: String,
    pub outcome: RequestOutcome,
    /// True when no usage was reported upstream and tokens were estimated from streamed text.
    pub usage_estimated: bool,
    /// From the start of the upstream call to the end of its response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_latency_ms: Option<u64>,
    pub received_at: DateTime<Utc>,
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
    pub id: String,
    pub usage_record_id: UsageRecordId,
    pub request_id: RequestId,
    pub organisation_id: OrganisationId,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub team_id: Option<TeamId>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub user_id: Option<UserId>,
    pub api_key_id: ApiKeyId,
    pub mcp_server_id: McpServerId,
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
    pub tool_call_count: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub http_status: u16,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error_code: Option<String>,
    pub latency_ms: u64,
    pub cost_nanos_usd: i64,
    /// Breakdown and pricing snapshot.
    pub billing: McpBill,
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
    fn enqueue(&self, record: UsageRecord);

    /// Enqueues a usage record together with its MCP sidecar, to be stored in the same write.
    /// Sinks that do not keep MCP records store the usage record alone.
    fn enqueue_mcp(&self, record: UsageRecord, mcp: McpUsageRecord) {
        drop(mcp);
        self.enqueue(record);
    }

    async fn flush(&self) -> Result<(), UsageSinkError>;
}

/// Keeps records in memory; for embedding without a database and for tests.
#[derive(Debug, Default, Clone)]
pub struct InMemoryUsageSink {
    records: Arc<Mutex<Vec<UsageRecord>>>,
    mcp_records: Arc<Mutex<Vec<McpUsageRecord>>>,
}

impl InMemoryUsageSink {
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
