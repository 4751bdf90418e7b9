//! [`AdmissionFacts`]: what the admission layer admits for one request, written once
//! by the resolution layer of its family — the LLM resolution (a model) or the MCP resolution (an
//! MCP server) — so rate limits, quotas and budgets apply to both through the same layer.

use std::sync::Arc;

use crate::error::ResolveError;
use crate::ids::{McpServerId, ModelId};
use crate::key_store::KeyStore;
use crate::layers::resolve::decode::LlmRequest;
use crate::ledger::Estimate;
use crate::model::ResolvedModel;
use crate::pricing::{bill, BillingMode};
use crate::principal::Principal;
use crate::rate_limit::ScopedPolicies;
use crate::usage::TokenUsage;

/// Output tokens assumed when neither the request nor the model caps them.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 4_096;
const BYTES_PER_TOKEN: u64 = 4;

/// The estimate for a decoded request on a model (DECISIONS.md): input tokens ≈ ⌈prompt text
/// bytes / 4⌉, output = the request's cap, else the model's `maxOutputTokens`, else 4,096; cost =
/// the model's pricing of those tokens.
pub fn estimate(request: &LlmRequest, model: &ResolvedModel, mode: BillingMode) -> Estimate {
    let tokens_in = request.prompt_text_bytes.div_ceil(BYTES_PER_TOKEN);
    let tokens_out = request
        .max_output_tokens
        .or(model.max_output_tokens)
        .unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    let usage = TokenUsage {
        input: tokens_in,
        output: tokens_out,
        ..TokenUsage::default()
    };
    Estimate {
        tokens_in,
        tokens_out,
        cost_nanos: bill(&model.pricing, &usage, mode).cost_nanos_usd,
    }
}

/// The object whose own policy applies besides the organisation's, the team's and the key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTarget {
    /// An LLM request: the model's policy applies.
    Model(ModelId),
    /// An MCP request: the server's policy applies.
    McpServer(McpServerId),
}

/// Request extension: the policy target and the estimate to admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionFacts {
    /// Whose policy applies besides the owners'.
    pub target: PolicyTarget,
    /// What the request is expected to consume.
    pub estimate: Estimate,
}

impl AdmissionFacts {
    /// Every scope's policy in force for this request (served from the store's cache).
    pub async fn policies(
        &self,
        store: &dyn KeyStore,
        principal: &Principal,
    ) -> Result<Arc<ScopedPolicies>, ResolveError> {
        match &self.target {
            PolicyTarget::Model(model) => store.policies(principal, model).await,
            PolicyTarget::McpServer(server) => store.mcp_server_policies(principal, server).await,
        }
    }
}
