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
    /// The provider's id.
    pub id: ProviderId,
    /// The provider's display name, for logs and traces.
    pub name: String,
    /// Which family's protocol the upstream speaks.
    pub provider_type: ProviderType,
    /// Without a trailing slash.
    pub base_url: String,
    /// Overrides the provider implementation's default request timeout.
    pub timeout: Option<Duration>,
    /// Whether the provider may be called (`provider_disabled` otherwise).
    pub enabled: bool,
    /// Provider-specific settings (`apiVersion` for Azure, …).
    pub config: Value,
}

/// The decrypted upstream credential; only ever held in memory.
#[derive(Debug, Clone)]
pub struct ResolvedProviderKey {
    /// The credential's id, by which key pools and circuit breakers track it.
    pub id: ProviderKeyId,
    /// The upstream API key itself.
    pub secret: Secret,
    /// Whether the key was revoked (`provider_api_key_revoked`).
    pub revoked: bool,
}

/// A model of an organisation with its provider and credential, inserted into request extensions
/// (as `Arc<ResolvedModel>`) by the resolution layer.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The model's id.
    pub id: ModelId,
    /// The organisation the model belongs to.
    pub organisation_id: OrganisationId,
    /// The name clients send as `model`.
    pub name: String,
    /// The upstream's model id.
    pub slug: String,
    /// What kind of model it is (chat, embeddings, …), for routing by type.
    pub model_type: ModelType,
    /// What the model can do (vision, tools, …).
    pub capabilities: Vec<Capability>,
    /// Whether the model may be used.
    pub enabled: bool,
    /// The upstream that serves it.
    pub provider: ResolvedProvider,
    /// `None` when no usable key is configured for the model's provider.
    pub provider_key: Option<ResolvedProviderKey>,
    /// Every active key of the provider when the model names no key of its own and the provider
    /// has several (`provider_key` is the first); requests rotate over them
    /// ([`KeyPools`](crate::routing::KeyPools)). Empty otherwise.
    pub key_pool: Arc<[ResolvedProviderKey]>,
    /// The model's price list.
    pub pricing: Arc<ModelPricing>,
    /// The model's configured output cap (`config.maxOutputTokens`), used for estimates.
    pub max_output_tokens: Option<u64>,
    /// Model-specific settings, as configured.
    pub config: Value,
}

impl ResolvedProvider {
    /// An enabled provider of `provider_type` at `base_url`, with no timeout override and no
    /// provider-specific settings.
    pub fn new(
        id: impl Into<ProviderId>,
        provider_type: ProviderType,
        base_url: impl Into<String>,
    ) -> Self {
        let base_url: String = base_url.into();
        Self {
            id: id.into(),
            name: provider_type.as_str().to_ascii_lowercase(),
            provider_type,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout: None,
            enabled: true,
            config: Value::Null,
        }
    }
}

impl ResolvedModel {
    /// An enabled chat model `name` of `organisation`, served by `provider` as `slug`. Free and
    /// without an upstream key until [`with_pricing`](Self::with_pricing) /
    /// [`with_key`](Self::with_key).
    pub fn chat(
        organisation: impl Into<OrganisationId>,
        id: impl Into<ModelId>,
        name: impl Into<String>,
        slug: impl Into<String>,
        provider: ResolvedProvider,
    ) -> Self {
        Self {
            id: id.into(),
            organisation_id: organisation.into(),
            name: name.into(),
            slug: slug.into(),
            model_type: ModelType::Chat,
            capabilities: Vec::new(),
            enabled: true,
            provider,
            provider_key: None,
            key_pool: Arc::default(),
            pricing: Arc::new(ModelPricing::default()),
            max_output_tokens: None,
            config: Value::Null,
        }
    }

    /// The upstream credential the gateway calls with.
    pub fn with_key(mut self, id: impl Into<ProviderKeyId>, secret: impl Into<String>) -> Self {
        self.provider_key = Some(ResolvedProviderKey {
            id: id.into(),
            secret: Secret::new(secret.into()),
            revoked: false,
        });
        self
    }

    /// The model's price list.
    pub fn with_pricing(mut self, pricing: ModelPricing) -> Self {
        self.pricing = Arc::new(pricing);
        self
    }
}
