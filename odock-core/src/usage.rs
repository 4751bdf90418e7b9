//! Normalised usage, the per-request usage record and the sink that stores records off the hot path.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ApiKeyId, ModelId, OrganisationId, RequestId, TeamId, UsageRecordId, UserId};

/// Token counts normalised across providers. `input` includes cached, audio and image input tokens;
/// `output` includes reasoning, audio and image output tokens (the OpenAI convention).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub reasoning: u64,
    pub input_audio: u64,
    pub output_audio: u64,
    pub input_image: u64,
    pub output_image: u64,
    /// Per-unit endpoints (pages, images, …).
    pub units: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_kind: Option<String>,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
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
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    pub id: UsageRecordId,
    pub request_id: RequestId,
    pub organisation_id: OrganisationId,
    pub team_id: Option<TeamId>,
    pub user_id: Option<UserId>,
    pub api_key_id: ApiKeyId,
    /// Provider family (`openai`, …) or `mcp`; empty when the request was denied before resolution.
    pub provider: String,
    /// The Odock model name that answered.
    pub model: Option<String>,
    pub model_id: Option<ModelId>,
    /// The gateway route, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    pub http_status: u16,
    pub error_code: Option<String>,
    pub latency_ms: u64,
    /// Time spent in Odock before the upstream call began.
    pub gateway_overhead_us: u64,
    pub stream: bool,
    pub tokens: TokenUsage,
    pub billable_tokens: u64,
    pub cost_nanos_usd: i64,
    pub billing: Value,
    pub provider_usage: Option<Value>,
    pub routing: Option<Value>,
    pub metadata: Value,
    pub provider_request_id: Option<String>,
    pub trace_id: Option<String>,
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

    async fn flush(&self) -> Result<(), UsageSinkError>;
}

/// Keeps records in memory; for embedding without a database and for tests.
#[derive(Debug, Default, Clone)]
pub struct InMemoryUsageSink {
    records: Arc<Mutex<Vec<UsageRecord>>>,
}

impl InMemoryUsageSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record enqueued so far.
    pub fn records(&self) -> Vec<UsageRecord> {
        self.records.lock().clone()
    }
}

#[async_trait]
impl UsageSink for InMemoryUsageSink {
    fn enqueue(&self, record: UsageRecord) {
        self.records.lock().push(record);
    }

    async fn flush(&self) -> Result<(), UsageSinkError> {
        Ok(())
    }
}
