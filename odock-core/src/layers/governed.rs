//! [`Governed`]: what the policy gate and the reservation layer admit for one request, written once
//! by the resolution layer of its family — the LLM resolution (a model) or the MCP resolution (an
//! MCP server) — so rate limits, quotas and budgets apply to both through the same layers.

use std::sync::Arc;

use crate::error::ResolveError;
use crate::ids::{McpServerId, ModelId};
use crate::key_store::KeyStore;
use crate::layers::reservation::Estimate;
use crate::principal::Principal;
use crate::rate_limit::ScopedPolicies;

/// The object whose own policy applies besides the organisation's, the team's and the key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTarget {
    Model(ModelId),
    McpServer(McpServerId),
}

/// Request extension: the policy target and the estimate to admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governed {
    pub target: PolicyTarget,
    pub estimate: Estimate,
}

impl Governed {
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
