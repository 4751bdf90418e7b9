//! A model resolved for one request: everything the provider call and the billing need.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::domain::{Capability, ModelType, ProviderType};
use crate::ids::{ModelId, OrganisationId, ProviderId, ProviderKeyId};
use crate::pricing::ModelPricing;
use crate::secret::Secret;

/// The upstream a model is served by.
#[derive(Debug, Clone)]
pub struct ResolvedProvider {
    pub id: ProviderId,
    pub name: String,
    pub provider_type: ProviderType,
    /// Without a trailing slash.
    pub base_url: String,
    pub timeout: Option<Duration>,
    pub enabled: bool,
    /// Provider-specific settings (`apiVersion` for Azure, …).
    pub config: Value,
}

/// The decrypted upstream credential; only ever held in memory.
#[derive(Debug, Clone)]
pub struct ResolvedProviderKey {
    pub id: ProviderKeyId,
    pub secret: Secret,
    pub revoked: bool,
}

/// A model of an organisation with its provider and credential, inserted into request extensions
/// (as `Arc<ResolvedModel>`) by the resolution layer.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub id: ModelId,
    pub organisation_id: OrganisationId,
    /// The name clients send as `model`.
    pub name: String,
    /// The upstream's model id.
    pub slug: String,
    pub model_type: ModelType,
    pub capabilities: Vec<Capability>,
    pub enabled: bool,
    pub provider: ResolvedProvider,
    /// `None` when no usable key is configured for the model's provider.
    pub provider_key: Option<ResolvedProviderKey>,
    pub pricing: Arc<ModelPricing>,
    /// The model's configured output cap (`config.maxOutputTokens`), used for estimates.
    pub max_output_tokens: Option<u64>,
    pub config: Value,
}
