//! Providers (`/api/organisations/{organisationId}/providers`): the upstreams models are served by.

use chrono::{DateTime, Utc};
use odock_core::{new_object_id, ProviderType};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::organisations::ensure_exists;
use super::{
    from_json_text, nullable, parse_column, required_text, to_json_text, AdminError, JsonObject,
    Page, PageRequest, Scoped,
};
use odock_store::db::{from_ms, now_ms};

/// A provider, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// The provider's id.
    pub id: String,
    /// The organisation the provider belongs to.
    pub organisation_id: String,
    /// The upstream's API family (`OPENAI`, `ANTHROPIC`, `GOOGLE`, …); fixed at creation.
    #[serde(rename = "type")]
    pub provider_type: ProviderType,
    /// A display name.
    pub name: String,
    /// Without a trailing slash.
    #[schema(format = "uri")]
    pub base_url: String,
    /// The upstream call timeout, ms; `null`: the gateway's default.
    #[schema(required = true)]
    pub timeout_ms: Option<u64>,
    /// Whether the provider's models may be called.
    pub enabled: bool,
    /// Provider-specific settings (`apiVersion` for Azure, …).
    #[schema(value_type = Object)]
    pub config: JsonObject,
    /// When the provider was created.
    pub created_at: DateTime<Utc>,
    /// When the provider was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../providers`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProvider {
    /// The upstream's API family; cannot be changed later.
    #[serde(rename = "type")]
    pub provider_type: ProviderType,
    /// A display name (trimmed, 1–200 characters).
    pub name: String,
    /// Defaults to [`ProviderType::default_base_url`].
    #[serde(default)]
    #[schema(format = "uri")]
    pub base_url: Option<String>,
    /// The upstream call timeout, 1 to 3,600,000 ms; absent: the gateway's default.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3_600_000)]
    pub timeout_ms: Option<u64>,
    /// Whether the provider's models may be called; default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Provider-specific settings (`apiVersion` for Azure, …); default `{}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Option<JsonObject>,
}

/// `PATCH .../providers/{id}`. The type cannot change (its models depend on it); `timeoutMs: null`
/// removes the timeout.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new base URL (http(s), no query, fragment or credentials; a trailing `/` is dropped).
    #[serde(default)]
    #[schema(format = "uri")]
    pub base_url: Option<String>,
    /// A new timeout, 1 to 3,600,000 ms; `null`: the gateway's default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 3_600_000)]
    pub timeout_ms: Option<Option<u64>>,
    /// Enables or disables the provider.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Replaces the provider-specific settings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Option<JsonObject>,
}

const COLUMNS: &str =
    "id, organisation_id, type, name, base_url, timeout_ms, enabled, config, created_at, updated_at";

/// The longest upstream timeout we accept (one hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

const PROVIDERS: Scoped<Provider> = Scoped {
    table: "providers",
    columns: COLUMNS,
    what: "provider",
    decode,
    id_of: |row| &row.id,
};

fn decode(row: &DbRow) -> Result<Provider, sqlx::Error> {
    Ok(Provider {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        provider_type: parse_column(row.try_get::<&str, _>("type")?)?,
        name: row.try_get("name")?,
        base_url: row.try_get("base_url")?,
        timeout_ms: row
            .try_get::<Option<i64>, _>("timeout_ms")?
            .map(|ms| u64::try_from(ms).unwrap_or(0)),
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        config: from_json_text(row.try_get("config")?)?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

/// An absolute `http(s)://host...` URL without query, fragment or credentials
/// ([`super::check_upstream_url`]), stored without its trailing slash.
pub fn check_base_url(url: &str) -> Result<String, AdminError> {
    let url = url.trim().trim_end_matches('/');
    super::check_upstream_url("baseUrl", url)?;
    if url.contains('?') {
        return Err(AdminError::field(
            "baseUrl",
            "baseUrl must not contain a query",
        ));
    }
    Ok(url.to_owned())
}

fn check_timeout(timeout_ms: Option<u64>) -> Result<Option<u64>, AdminError> {
    match timeout_ms {
        Some(ms) if ms == 0 || ms > MAX_TIMEOUT_MS => Err(AdminError::field(
            "timeoutMs",
            format!("timeoutMs must be between 1 and {MAX_TIMEOUT_MS}"),
        )),
        other => Ok(other),
    }
}

/// The provider settings the gateway reads as positive integers: timeouts in milliseconds (at
/// most [`MAX_TIMEOUT_MS`]) and circuit breaker overrides.
const NUMERIC_SETTINGS: [(&str, u64); 4] = [
    ("firstByteTimeoutMs", MAX_TIMEOUT_MS),
    ("connectTimeoutMs", MAX_TIMEOUT_MS),
    ("circuitFailureThreshold", u32::MAX as u64),
    ("circuitOpenMs", MAX_TIMEOUT_MS),
];

/// Refuses a numeric setting the gateway would otherwise silently ignore.
fn check_config(config: &JsonObject) -> Result<(), AdminError> {
    for (name, max) in NUMERIC_SETTINGS {
        let Some(value) = config.get(name) else {
            continue;
        };
        if !value.as_u64().is_some_and(|v| v > 0 && v <= max) {
            return Err(AdminError::field(
                &format!("config.{name}"),
                format!("config.{name} must be an integer between 1 and {max}"),
            ));
        }
    }
    Ok(())
}

fn timeout_column(timeout_ms: Option<u64>) -> Option<i64> {
    timeout_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Creates a provider (base URL defaulting to the type's). Errors: 404 when the organisation
/// does not exist; 400 on a bad name, base URL, timeout or numeric setting in `config`.
pub async fn create(
    pool: &Db,
    organisation_id: &str,
    input: NewProvider,
) -> Result<Provider, AdminError> {
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let base_url = check_base_url(
        input
            .base_url
            .as_deref()
            .unwrap_or(input.provider_type.default_base_url()),
    )?;
    let timeout_ms = check_timeout(input.timeout_ms)?;
    let config = input.config.unwrap_or_default();
    check_config(&config)?;
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO providers (id, organisation_id, name, type, base_url, timeout_ms, enabled, config, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(input.provider_type.as_str())
    .bind(&base_url)
    .bind(timeout_column(timeout_ms))
    .bind(i64::from(input.enabled.unwrap_or(true)))
    .bind(to_json_text(&config)?)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    get(pool, organisation_id, &id).await
}

/// The provider `id` of the organisation; 404 when it is not there.
pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<Provider, AdminError> {
    PROVIDERS.get(pool, organisation_id, id).await
}

/// The organisation's providers; with `organisation_id = None`, every organisation's (SUPER_ADMIN).
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Provider>, AdminError> {
    PROVIDERS.list(pool, organisation_id, &[], page).await
}

/// Applies `patch` (absent fields stay); 404 when the provider is not in the organisation, 400
/// on the same checks as [`create`].
pub async fn update(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: ProviderPatch,
) -> Result<Provider, AdminError> {
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(base_url) = patch.base_url {
        current.base_url = check_base_url(&base_url)?;
    }
    if let Some(timeout_ms) = patch.timeout_ms {
        current.timeout_ms = check_timeout(timeout_ms)?;
    }
    if let Some(enabled) = patch.enabled {
        current.enabled = enabled;
    }
    if let Some(config) = patch.config {
        check_config(&config)?;
        current.config = config;
    }
    let result = sqlx::query(
        "UPDATE providers SET name = $1, base_url = $2, timeout_ms = $3, enabled = $4, config = $5, \
         updated_at = $6 WHERE id = $7 AND organisation_id = $8",
    )
    .bind(&current.name)
    .bind(&current.base_url)
    .bind(timeout_column(current.timeout_ms))
    .bind(i64::from(current.enabled))
    .bind(to_json_text(&current.config)?)
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    PROVIDERS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Deletes the provider with its keys and models (cascade).
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    PROVIDERS.delete(pool, organisation_id, id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_support::{org, pool};

    fn new(provider_type: ProviderType, base_url: Option<&str>) -> NewProvider {
        NewProvider {
            provider_type,
            name: "Upstream".into(),
            base_url: base_url.map(Into::into),
            timeout_ms: None,
            enabled: None,
            config: None,
        }
    }

    #[test]
    fn base_urls_must_be_http() {
        assert_eq!(
            check_base_url("https://api.openai.com/v1/").unwrap(),
            "https://api.openai.com/v1"
        );
        assert!(check_base_url("http://localhost:8000").is_ok());
        assert!(check_base_url("ftp://example.com").is_err());
        assert!(check_base_url("not a url").is_err());
        assert!(check_base_url("/relative").is_err());
        assert!(check_base_url("https://api.openai.com/v1?x=1").is_err());
        assert!(check_base_url("https://evil.example/#").is_err());
        assert!(check_base_url("https://user:pw@api.openai.com/v1").is_err());
    }

    #[test]
    fn numeric_settings_must_be_positive_integers() {
        let config = |value: serde_json::Value| {
            serde_json::json!({ "connectTimeoutMs": value, "apiVersion": "x" })
                .as_object()
                .unwrap()
                .clone()
        };
        assert!(check_config(&config(serde_json::json!(2_000))).is_ok());
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!("2000"),
            serde_json::json!(1.5),
            serde_json::json!(MAX_TIMEOUT_MS + 1),
        ] {
            let refused = check_config(&config(bad.clone()));
            assert!(
                matches!(&refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "config.connectTimeoutMs"),
                "{bad}: {refused:?}"
            );
        }
        let threshold = serde_json::json!({ "circuitFailureThreshold": 0 });
        assert!(check_config(threshold.as_object().unwrap()).is_err());
    }

    #[tokio::test]
    async fn defaults_scoping_and_patch() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let p = create(&pool, &a, new(ProviderType::Mistral, None))
            .await
            .unwrap();
        assert_eq!(p.base_url, "https://api.mistral.ai/v1");
        assert!(p.enabled);
        assert!(p.config.is_empty());

        assert!(matches!(
            get(&pool, &b, &p.id).await,
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            create(&pool, "nope", new(ProviderType::OpenAi, None)).await,
            Err(AdminError::NotFound("organisation"))
        ));
        let bad = create(&pool, &a, new(ProviderType::Custom, Some("mailto:x"))).await;
        assert!(matches!(bad, Err(AdminError::Invalid { field: Some(f), .. }) if f == "baseUrl"));

        let patched = update(
            &pool,
            &a,
            &p.id,
            ProviderPatch {
                timeout_ms: Some(Some(5_000)),
                enabled: Some(false),
                ..ProviderPatch::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(patched.timeout_ms, Some(5_000));
        assert!(!patched.enabled);

        assert_eq!(
            list(&pool, Some(&a), &PageRequest::default())
                .await
                .unwrap()
                .data
                .len(),
            1
        );
        assert_eq!(
            list(&pool, Some(&b), &PageRequest::default())
                .await
                .unwrap()
                .data
                .len(),
            0
        );
        assert_eq!(
            list(&pool, None, &PageRequest::default())
                .await
                .unwrap()
                .data
                .len(),
            1
        );
        delete(&pool, &a, &p.id).await.unwrap();
    }
}
