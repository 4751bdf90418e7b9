//! Models (`/api/organisations/{organisationId}/models`): the names clients call, bound to a provider,
//! an optional provider key and a price list.

use chrono::{DateTime, Utc};
use odock_core::{new_object_id, Capability, ModelPricing, ModelType};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::organisations::ensure_exists;
use super::policies::{check_optional_policies, check_policies};
use super::{
    conflict, exists_in_org, from_json_text, nullable, parse_column, required_text, to_json_text,
    AdminError, JsonObject, Page, PageRequest, Scoped,
};
use odock_store::db::{from_ms, now_ms};

/// A model, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// The model's id.
    pub id: String,
    /// The organisation the model belongs to.
    pub organisation_id: String,
    /// The name clients send as `model`; unique in the organisation.
    pub name: String,
    /// The upstream's model id.
    pub slug: String,
    /// What the model does: `chat`, `reasoning`, `image`, `embeddings`, `audio`, ….
    #[serde(rename = "type")]
    pub model_type: ModelType,
    /// The provider (of the same organisation) that serves the model.
    pub provider_id: String,
    /// The provider key calls use; `null`: the provider's unrevoked keys.
    #[schema(required = true)]
    pub provider_key_id: Option<String>,
    /// What the model supports (tools, vision, …), as configured.
    pub capabilities: Vec<Capability>,
    /// `None`: unpriced (usage costs nothing).
    #[schema(required = true)]
    pub pricing: Option<ModelPricing>,
    /// The model's rate-limit policy document (`{}`: no limits of its own).
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: JsonObject,
    /// Model-specific settings (e.g. `maxOutputTokens`), as configured.
    #[schema(value_type = Object)]
    pub config: JsonObject,
    /// Whether clients may call the model.
    pub enabled: bool,
    /// When the model was created.
    pub created_at: DateTime<Utc>,
    /// When the model was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../models`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewModel {
    /// The name clients send as `model` (trimmed, 1–200 characters; unique in the organisation).
    pub name: String,
    /// The upstream's model id: ASCII letters, digits and `. _ - : / @`, at most 300 characters.
    pub slug: String,
    /// What the model does: `chat`, `reasoning`, `image`, `embeddings`, `audio`, ….
    #[serde(rename = "type")]
    pub model_type: ModelType,
    /// The provider that serves the model (a provider of this organisation).
    pub provider_id: String,
    /// A key of that provider for the model's calls; absent: the provider's unrevoked keys.
    #[serde(default)]
    pub provider_key_id: Option<String>,
    /// What the model supports; default none.
    #[serde(default)]
    pub capabilities: Option<Vec<Capability>>,
    /// The model's prices; absent: unpriced (usage costs nothing).
    #[serde(default)]
    pub pricing: Option<ModelPricing>,
    /// A rate-limit policy document (known keys only); default `{}`.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
    /// Model-specific settings (e.g. `maxOutputTokens`); default `{}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Option<JsonObject>,
    /// Whether clients may call the model; default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH .../models/{id}`: absent fields stay; `providerKeyId: null` and `pricing: null` clear.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPatch {
    /// A new client-facing name (trimmed, 1–200 characters; unique in the organisation).
    #[serde(default)]
    pub name: Option<String>,
    /// A new upstream model id.
    #[serde(default)]
    pub slug: Option<String>,
    /// A new model type.
    #[serde(default, rename = "type")]
    pub model_type: Option<ModelType>,
    /// A new provider (of this organisation); a set `providerKeyId` must belong to it.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// A new provider key of the model's provider; `null`: the provider's unrevoked keys.
    #[serde(default, deserialize_with = "nullable")]
    pub provider_key_id: Option<Option<String>>,
    /// Replaces the capabilities.
    #[serde(default)]
    pub capabilities: Option<Vec<Capability>>,
    /// Replaces the prices; `null`: unpriced.
    #[serde(default, deserialize_with = "nullable")]
    pub pricing: Option<Option<ModelPricing>>,
    /// Replaces the policy document.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
    /// Replaces the model-specific settings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Option<JsonObject>,
    /// Enables or disables the model.
    #[serde(default)]
    pub enabled: Option<bool>,
}

const COLUMNS: &str =
    "id, organisation_id, name, slug, type, provider_id, provider_key_id, capabilities, \
                       pricing, policies, config, enabled, created_at, updated_at";

const MODELS: Scoped<Model> = Scoped {
    table: "models",
    columns: COLUMNS,
    what: "model",
    decode,
    id_of: |row| &row.id,
};

fn decode(row: &DbRow) -> Result<Model, sqlx::Error> {
    let pricing: Option<String> = row.try_get("pricing")?;
    Ok(Model {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        model_type: parse_column(row.try_get::<&str, _>("type")?)?,
        provider_id: row.try_get("provider_id")?,
        provider_key_id: row.try_get("provider_key_id")?,
        capabilities: from_json_text(row.try_get("capabilities")?)?,
        pricing: pricing
            .map(|text| serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(e.into())))
            .transpose()?,
        policies: from_json_text(row.try_get("policies")?)?,
        config: from_json_text(row.try_get("config")?)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

/// The upstream model id (`gpt-4o`, `meta-llama/Llama-3.1-8B`, `ft:gpt-4o-mini:org::id`,
/// `claude-3-5-sonnet@20240620`, `tunedModels/x`): ASCII letters, digits and `. _ - : / @` only,
/// with no `.` or `..` segment and no empty segment but a leading `/`. Providers put slugs into
/// URLs (Gemini, Azure, Hugging Face tasks) — percent-encoded, but a slug that could add a query,
/// a fragment or climb the path is refused here in the first place.
pub fn check_slug(slug: &str) -> Result<String, AdminError> {
    let slug = required_text("slug", slug, 300)?;
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@');
    if let Some(bad) = slug.chars().find(|c| !allowed(*c)) {
        return Err(AdminError::field(
            "slug",
            format!(
                "slug may contain only letters, digits and . _ - : / @ (found `{}`)",
                bad.escape_default()
            ),
        ));
    }
    let body = slug.strip_prefix('/').unwrap_or(&slug);
    if body
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(AdminError::field(
            "slug",
            "slug must not contain empty, `.` or `..` path segments",
        ));
    }
    Ok(slug)
}

fn check_pricing(pricing: Option<ModelPricing>) -> Result<Option<ModelPricing>, AdminError> {
    if let Some(pricing) = &pricing {
        pricing
            .validate()
            .map_err(|e| AdminError::field("pricing", e.to_string()))?;
    }
    Ok(pricing)
}

/// The provider must be in the organisation and the key (when set) must belong to that provider.
async fn check_provider(
    pool: &Db,
    organisation_id: &str,
    provider_id: &str,
    provider_key_id: Option<&str>,
) -> Result<(), AdminError> {
    if !exists_in_org(pool, "providers", organisation_id, provider_id).await? {
        return Err(AdminError::field(
            "providerId",
            "providerId does not name a provider of this organisation",
        ));
    }
    if let Some(key_id) = provider_key_id {
        let found = sqlx::query(
            "SELECT 1 FROM provider_api_keys WHERE id = $1 AND provider_id = $2 AND organisation_id = $3",
        )
        .bind(key_id)
        .bind(provider_id)
        .bind(organisation_id)
        .fetch_optional(pool)
        .await?;
        if found.is_none() {
            return Err(AdminError::field(
                "providerKeyId",
                "providerKeyId does not name a key of this provider",
            ));
        }
    }
    Ok(())
}

fn duplicate_name(name: &str) -> String {
    format!("a model named `{name}` already exists in this organisation")
}

/// Creates a model. Errors: 404 when the organisation does not exist; 400 on a bad name, slug,
/// pricing or policy document, or a provider (key) not of this organisation; 409 on a taken name.
pub async fn create(
    pool: &Db,
    organisation_id: &str,
    input: NewModel,
) -> Result<Model, AdminError> {
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let slug = check_slug(&input.slug)?;
    let pricing = check_pricing(input.pricing)?;
    let policies = check_optional_policies(input.policies)?;
    check_provider(
        pool,
        organisation_id,
        &input.provider_id,
        input.provider_key_id.as_deref(),
    )
    .await?;
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO models (id, organisation_id, name, slug, type, provider_id, provider_key_id, capabilities, \
         pricing, policies, config, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(&slug)
    .bind(input.model_type.as_str())
    .bind(&input.provider_id)
    .bind(&input.provider_key_id)
    .bind(to_json_text(&input.capabilities.unwrap_or_default())?)
    .bind(pricing.as_ref().map(to_json_text).transpose()?)
    .bind(to_json_text(&policies)?)
    .bind(to_json_text(&input.config.unwrap_or_default())?)
    .bind(i64::from(input.enabled.unwrap_or(true)))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_name(&name)))?;
    get(pool, organisation_id, &id).await
}

/// The model `id` of the organisation; 404 when it is not there.
pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<Model, AdminError> {
    MODELS.get(pool, organisation_id, id).await
}

/// The organisation's models; with `organisation_id = None`, every organisation's (SUPER_ADMIN).
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Model>, AdminError> {
    MODELS.list(pool, organisation_id, &[], page).await
}

/// Applies `patch` (absent fields stay); errors as [`create`], and 404 when the model is not
/// in the organisation.
pub async fn update(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: ModelPatch,
) -> Result<Model, AdminError> {
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(slug) = patch.slug {
        current.slug = check_slug(&slug)?;
    }
    if let Some(model_type) = patch.model_type {
        current.model_type = model_type;
    }
    let provider_changed = patch.provider_id.is_some() || patch.provider_key_id.is_some();
    if let Some(provider_id) = patch.provider_id {
        current.provider_id = provider_id;
    }
    if let Some(provider_key_id) = patch.provider_key_id {
        current.provider_key_id = provider_key_id;
    }
    if provider_changed {
        check_provider(
            pool,
            organisation_id,
            &current.provider_id,
            current.provider_key_id.as_deref(),
        )
        .await?;
    }
    if let Some(capabilities) = patch.capabilities {
        current.capabilities = capabilities;
    }
    if let Some(pricing) = patch.pricing {
        current.pricing = check_pricing(pricing)?;
    }
    if let Some(policies) = patch.policies {
        current.policies = check_policies(policies)?;
    }
    if let Some(config) = patch.config {
        current.config = config;
    }
    if let Some(enabled) = patch.enabled {
        current.enabled = enabled;
    }
    let result = sqlx::query(
        "UPDATE models SET name = $1, slug = $2, type = $3, provider_id = $4, provider_key_id = $5, capabilities = $6, \
         pricing = $7, policies = $8, config = $9, enabled = $10, updated_at = $11 WHERE id = $12 AND organisation_id = $13",
    )
    .bind(&current.name)
    .bind(&current.slug)
    .bind(current.model_type.as_str())
    .bind(&current.provider_id)
    .bind(&current.provider_key_id)
    .bind(to_json_text(&current.capabilities)?)
    .bind(current.pricing.as_ref().map(to_json_text).transpose()?)
    .bind(to_json_text(&current.policies)?)
    .bind(to_json_text(&current.config)?)
    .bind(i64::from(current.enabled))
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_name(&current.name)))?;
    MODELS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Deletes the model and its grants (cascade).
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    MODELS.delete(pool, organisation_id, id).await
}

#[cfg(test)]
pub(crate) mod tests {
    use odock_core::ProviderType;

    use super::*;
    use crate::services::providers::{self, NewProvider};
    use crate::services::test_support::{org, pool};

    pub(crate) async fn provider(pool: &Db, org: &str) -> String {
        providers::create(
            pool,
            org,
            NewProvider {
                provider_type: ProviderType::OpenAi,
                name: "OpenAI".into(),
                base_url: None,
                timeout_ms: None,
                enabled: None,
                config: None,
            },
        )
        .await
        .unwrap()
        .id
    }

    pub(crate) fn new(name: &str, provider_id: &str) -> NewModel {
        serde_json::from_value(serde_json::json!({
            "name": name, "slug": "gpt-4o-mini", "type": "chat", "providerId": provider_id,
        }))
        .unwrap()
    }

    #[test]
    fn slugs_are_safe_to_put_in_a_url() {
        for good in [
            "gpt-4o",
            "meta-llama/Llama-3.1-8B-Instruct",
            "ft:gpt-4o-mini-2024-07-18:org::AbC123",
            "claude-3-5-sonnet@20240620",
            "tunedModels/my-model_1",
            "/models/llama-3",
            "deepseek-ai/DeepSeek-R1:novita",
        ] {
            assert_eq!(check_slug(good).unwrap(), good);
        }
        for bad in [
            "../../x#", "x#y", "x?y=1", "a b", "model%2F", "a/../b", "a//b", "a/./b", "café",
            "x\\y",
        ] {
            let error = check_slug(bad).unwrap_err();
            assert!(error.to_string().contains("slug"), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn validation_scoping_and_uniqueness() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let pa = provider(&pool, &a).await;
        let pb = provider(&pool, &b).await;

        let model = create(&pool, &a, new("fast", &pa)).await.unwrap();
        assert_eq!(model.pricing, None);
        assert_eq!(model.model_type, ModelType::Chat);
        assert!(matches!(
            create(&pool, &a, new("fast", &pa)).await,
            Err(AdminError::Conflict(_))
        ));
        // Same name in another organisation is fine.
        create(&pool, &b, new("fast", &pb)).await.unwrap();

        let cross = create(&pool, &a, new("other", &pb)).await;
        assert!(
            matches!(cross, Err(AdminError::Invalid { field: Some(f), .. }) if f == "providerId")
        );

        let mut priced = new("priced", &pa);
        priced.pricing = Some(ModelPricing {
            cached_input_discount_percent: 120,
            ..ModelPricing::default()
        });
        let refused = create(&pool, &a, priced).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "pricing")
        );

        let mut keyed = new("keyed", &pa);
        keyed.provider_key_id = Some("missing".into());
        let refused = create(&pool, &a, keyed).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "providerKeyId")
        );

        assert!(matches!(
            get(&pool, &b, &model.id).await,
            Err(AdminError::NotFound(_))
        ));
        let patched = update(
            &pool,
            &a,
            &model.id,
            ModelPatch {
                enabled: Some(false),
                capabilities: Some(vec![Capability::Vision]),
                ..ModelPatch::default()
            },
        )
        .await
        .unwrap();
        assert!(!patched.enabled);
        assert_eq!(patched.capabilities, vec![Capability::Vision]);
        let moved = update(
            &pool,
            &a,
            &model.id,
            ModelPatch {
                provider_id: Some(pb.clone()),
                ..ModelPatch::default()
            },
        )
        .await;
        assert!(matches!(moved, Err(AdminError::Invalid { .. })));
    }
}
