//! Provider keys (`.../providers/{id}/keys`): upstream credentials, sealed at rest with the master key.
//!
//! The secret goes in once, at creation, and never comes back out of this module: the API object
//! carries only a preview, and the envelope column is never selected here.

use std::fmt;

use chrono::{DateTime, Utc};
use odock_core::new_object_id;
use odock_core::secret::preview;
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{ensure_in_org, list_page, required_text, touched, AdminError, Page, PageRequest};
use odock_store::crypto::MasterKey;
use odock_store::db::{from_ms, now_ms};

/// A provider key, as returned by the API (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderKey {
    /// The provider key's id.
    pub id: String,
    /// The provider (of the same organisation) the key authenticates to.
    pub provider_id: String,
    /// A display name for the key.
    pub name: String,
    /// A masked form of the secret (its first three and last four characters), never the secret.
    pub preview: String,
    /// Whether the key is revoked (kept, but not used for upstream calls).
    pub revoked: bool,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../providers/{id}/keys`. `Debug` hides the key.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProviderKey {
    /// A display name for the key (trimmed, 1–200 characters).
    pub name: String,
    /// The upstream secret.
    #[schema(write_only)]
    pub key: String,
}

impl fmt::Debug for NewProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewProviderKey")
            .field("name", &self.name)
            .field("key", &"***")
            .finish()
    }
}

/// Deliberately without `envelope`.
const COLUMNS: &str = "id, provider_id, name, preview, revoked, created_at, updated_at";

fn decode(row: &DbRow) -> Result<ProviderKey, sqlx::Error> {
    Ok(ProviderKey {
        id: row.try_get("id")?,
        provider_id: row.try_get("provider_id")?,
        name: row.try_get("name")?,
        preview: row.try_get("preview")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

/// 404 unless the provider exists in the organisation (it is part of the path).
async fn ensure_provider(
    pool: &Db,
    organisation_id: &str,
    provider_id: &str,
) -> Result<(), AdminError> {
    ensure_in_org(pool, "providers", organisation_id, provider_id, "provider").await
}

/// Seals `input.key` with `master_key` and stores it under the provider. Errors: 404 when the
/// provider is not in the organisation, 400 on an empty name or key.
pub async fn create(
    pool: &Db,
    master_key: &MasterKey,
    organisation_id: &str,
    provider_id: &str,
    input: NewProviderKey,
) -> Result<ProviderKey, AdminError> {
    ensure_provider(pool, organisation_id, provider_id).await?;
    let name = required_text("name", &input.name, 200)?;
    // Keys never contain whitespace; a trailing newline is a copy-paste accident.
    let secret = input.key.trim();
    if secret.is_empty() {
        return Err(AdminError::field("key", "key must not be empty"));
    }
    let envelope = master_key
        .seal(secret)
        .map_err(|_| AdminError::field("key", "key could not be sealed"))?;
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO provider_api_keys (id, provider_id, organisation_id, name, envelope, preview, revoked, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
    )
    .bind(&id)
    .bind(provider_id)
    .bind(organisation_id)
    .bind(&name)
    .bind(&envelope)
    .bind(preview(secret))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    get(pool, organisation_id, provider_id, &id).await
}

/// The key `id` of the provider; 404 when it (or the provider) is not in the organisation.
pub async fn get(
    pool: &Db,
    organisation_id: &str,
    provider_id: &str,
    id: &str,
) -> Result<ProviderKey, AdminError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM provider_api_keys WHERE id = $1 AND provider_id = $2 AND organisation_id = $3"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(provider_id)
        .bind(organisation_id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => Ok(decode(&row)?),
        None => Err(AdminError::NotFound("provider key")),
    }
}

/// One page of the provider's keys; 404 when the provider is not in the organisation.
pub async fn list(
    pool: &Db,
    organisation_id: &str,
    provider_id: &str,
    page: &PageRequest,
) -> Result<Page<ProviderKey>, AdminError> {
    ensure_provider(pool, organisation_id, provider_id).await?;
    let select = format!("SELECT {COLUMNS} FROM provider_api_keys");
    list_page(
        pool,
        &select,
        &[
            ("organisation_id", Some(organisation_id)),
            ("provider_id", Some(provider_id)),
        ],
        page,
        decode,
        |k| &k.id,
    )
    .await
}

/// Revokes (`true`) or restores (`false`) the key; idempotent.
pub async fn set_revoked(
    pool: &Db,
    organisation_id: &str,
    provider_id: &str,
    id: &str,
    revoked: bool,
) -> Result<ProviderKey, AdminError> {
    let result = sqlx::query(
        "UPDATE provider_api_keys SET revoked = $1, updated_at = $2 \
         WHERE id = $3 AND provider_id = $4 AND organisation_id = $5",
    )
    .bind(i64::from(revoked))
    .bind(now_ms())
    .bind(id)
    .bind(provider_id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    touched(&result, "provider key")?;
    get(pool, organisation_id, provider_id, id).await
}

/// Deletes the key; models that used it keep working only if another key is configured.
pub async fn delete(
    pool: &Db,
    organisation_id: &str,
    provider_id: &str,
    id: &str,
) -> Result<(), AdminError> {
    let result = sqlx::query(
        "DELETE FROM provider_api_keys WHERE id = $1 AND provider_id = $2 AND organisation_id = $3",
    )
    .bind(id)
    .bind(provider_id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    touched(&result, "provider key")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use odock_core::ProviderType;

    use super::*;
    use crate::services::providers::{self, NewProvider};
    use crate::services::test_support::{org, pool};

    #[tokio::test]
    async fn secrets_are_sealed_and_never_returned() {
        let pool = pool().await;
        let (master, _) = MasterKey::generate();
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let provider = providers::create(
            &pool,
            &a,
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
        .unwrap();
        let secret = "sk-proj-abcdefghijklmnop1234";
        let input = NewProviderKey {
            name: "main".into(),
            key: format!("{secret}\n"),
        };
        assert!(!format!("{input:?}").contains(secret));
        let key = create(&pool, &master, &a, &provider.id, input)
            .await
            .unwrap();
        assert_eq!(key.preview, "sk-…1234");
        assert!(!serde_json::to_string(&key).unwrap().contains(secret));

        let envelope: String =
            sqlx::query_scalar("SELECT envelope FROM provider_api_keys WHERE id = $1")
                .bind(&key.id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(!envelope.contains(secret));
        assert_eq!(master.open(&envelope).unwrap().expose(), secret);

        assert!(matches!(
            get(&pool, &b, &provider.id, &key.id).await,
            Err(AdminError::NotFound(_))
        ));
        assert!(
            set_revoked(&pool, &a, &provider.id, &key.id, true)
                .await
                .unwrap()
                .revoked
        );
        assert!(
            !set_revoked(&pool, &a, &provider.id, &key.id, false)
                .await
                .unwrap()
                .revoked
        );
        delete(&pool, &a, &provider.id, &key.id).await.unwrap();
        assert!(list(&pool, &a, &provider.id, &PageRequest::default())
            .await
            .unwrap()
            .data
            .is_empty());
    }
}
