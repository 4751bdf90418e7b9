//! A `KeyStore` of your own: virtual keys that live in your application's own user table, stored
//! only as SHA-256 hashes, each team's key granted the models of its plan. Odock asks the store who
//! a presented key is, which model a name means and whether the key may use it; everything else —
//! metering, budgets, dispatch — is the same stack.
//! ```text
//! cargo run --example custom_key_store
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::routing::post_service;
use axum::Router;
use odock::core::rate_limit::ScopedPolicies;
use odock::core::testing::StaticProvider;
use odock::core::{
    ApiKeyId, AuthError, Endpoint, GatewayBuilder, InMemoryUsageSink, KeyStore, ModelId,
    OrganisationId, Principal, ProviderRegistry, ProviderType, ResolveError, ResolvedModel,
    ResolvedProvider,
};
use sha2::{Digest, Sha256};

/// A team in your application: its key's hash and the models its plan includes.
pub struct Team {
    pub id: &'static str,
    pub key_sha256: String,
    pub plan: &'static [&'static str],
}

/// Keys by hash (the plaintext is never held); models by name.
pub struct TeamKeys {
    teams: HashMap<String, Team>,
    models: HashMap<String, Arc<ResolvedModel>>,
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl TeamKeys {
    pub fn new(teams: Vec<Team>, models: Vec<ResolvedModel>) -> Self {
        let teams = teams
            .into_iter()
            .map(|t| (t.key_sha256.clone(), t))
            .collect();
        let models = models
            .into_iter()
            .map(|m| (m.name.clone(), Arc::new(m)))
            .collect();
        Self { teams, models }
    }

    fn team_of(&self, key: &ApiKeyId) -> Option<&Team> {
        self.teams.values().find(|t| t.id == key.as_str())
    }
}

#[async_trait]
impl KeyStore for TeamKeys {
    async fn principal(&self, presented_key: &str) -> Result<Principal, AuthError> {
        let team = self
            .teams
            .get(&sha256_hex(presented_key))
            .ok_or(AuthError::Unknown)?;
        Ok(Principal::organisation_key("acme", team.id))
    }

    async fn model(
        &self,
        _org: &OrganisationId,
        name: &str,
    ) -> Result<Arc<ResolvedModel>, ResolveError> {
        self.models
            .get(name)
            .cloned()
            .ok_or_else(|| ResolveError::ModelNotFound(name.to_owned()))
    }

    async fn has_model_grant(&self, key: &ApiKeyId, model: &ModelId) -> Result<bool, ResolveError> {
        let plan = self.team_of(key).map(|t| t.plan).unwrap_or_default();
        Ok(plan
            .iter()
            .any(|name| self.models.get(*name).is_some_and(|m| m.id == *model)))
    }

    async fn granted_models(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Arc<ResolvedModel>>, ResolveError> {
        let plan = self
            .team_of(&principal.api_key_id)
            .map(|t| t.plan)
            .unwrap_or_default();
        Ok(plan
            .iter()
            .filter_map(|name| self.models.get(*name).cloned())
            .collect())
    }

    async fn policies(
        &self,
        _: &Principal,
        _: &ModelId,
    ) -> Result<Arc<ScopedPolicies>, ResolveError> {
        Ok(Arc::new(ScopedPolicies::new()))
    }
}

/// Two teams: `basic` may use `small`, `pro` may use `small` and `large`.
pub fn app(usage: InMemoryUsageSink) -> Router {
    let openai = ResolvedProvider::new("openai", ProviderType::OpenAi, "https://api.openai.com/v1");
    let model = |id: &str, name: &str| {
        ResolvedModel::chat("acme", id, name, "gpt-4o-mini", openai.clone())
            .with_key("openai-key", "sk-upstream")
    };
    let teams = vec![
        Team {
            id: "team-basic",
            key_sha256: sha256_hex("sk_basic"),
            plan: &["small"],
        },
        Team {
            id: "team-pro",
            key_sha256: sha256_hex("sk_pro"),
            plan: &["small", "large"],
        },
    ];
    let store = TeamKeys::new(
        teams,
        vec![model("m-small", "small"), model("m-large", "large")],
    );
    let providers =
        ProviderRegistry::new().with(ProviderType::OpenAi, Arc::new(StaticProvider::default()));
    let gateway = GatewayBuilder::new(Arc::new(store), providers, Arc::new(usage));
    let chat = gateway.llm(Endpoint::ChatCompletions);
    Router::new().route("/v1/chat/completions", post_service(chat))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3003").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(InMemoryUsageSink::new())).await
}
