//! Virtual API keys (`/api/organisations/{organisationId}/apikeys`): issue, rotate, revoke.
//!
//! The plaintext key exists only in the [`IssuedApiKey`] returned by [`create`] and [`rotate`]; the
//! database holds its SHA-256 ([`hash_virtual_key`]) and a preview. Rotation keeps the id, so grants,
//! budgets and routing survive, and records the previous preview in `api_key_rotations`.

use std::fmt;

use chrono::{DateTime, Utc};
use odock_core::secret::preview;
use odock_core::{new_object_id, ApiKeyType};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::organisations::ensure_exists;
use super::policies::{check_optional_policies, check_policies};
use super::{
    exists_in_org, from_json_text, nullable, parse_column, required_text, to_json_text, AdminError,
    JsonObject, Page, PageRequest, Scoped,
};
use odock_store::db::{from_ms, now_ms, to_ms};
use odock_store::keys::{generate_virtual_key, hash_virtual_key};

/// A virtual key, as returned by the API (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// The key's id (stable across rotations).
    pub id: String,
    /// The organisation the key belongs to.
    pub organisation_id: String,
    /// A display name.
    pub name: String,
    /// Whom the key belongs to: `ORGANISATION`, `TEAM` or `USER`.
    #[serde(rename = "type")]
    pub key_type: ApiKeyType,
    /// The team of a TEAM key; `null` otherwise.
    #[schema(required = true)]
    pub team_id: Option<String>,
    /// The user of a USER key; `null` otherwise.
    #[schema(required = true)]
    pub user_id: Option<String>,
    /// `sk_` + first 3 + `…` + last 4.
    pub preview: String,
    /// When the key stops working; `null`: never.
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// IANA name the key's windows are computed in.
    pub timezone: String,
    /// Whether the key is revoked (refused by the gateway until restored).
    pub revoked: bool,
    /// Whether the plaintext has been shown (always, at creation: we never show it later).
    pub revealed: bool,
    /// How many times the key's secret has been rotated.
    pub rotations: u32,
    /// The key's rate-limit policy document (`{}`: no limits of its own).
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: JsonObject,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key was last changed (including rotation and revocation).
    pub updated_at: DateTime<Utc>,
}

/// The key object plus the plaintext `key`: the response of create and rotate, and nothing else.
/// `Debug` hides the key.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedApiKey {
    /// The key object (its fields are flattened into this one).
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The plaintext key, shown only in this response.
    pub key: String,
}

impl fmt::Debug for IssuedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedApiKey")
            .field("api_key", &self.api_key)
            .field("key", &"***")
            .finish()
    }
}

/// `POST .../apikeys`. TEAM keys name a team of the organisation, USER keys a user of it,
/// ORGANISATION keys neither.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewApiKey {
    /// A display name (trimmed, 1–200 characters).
    pub name: String,
    /// Whom the key belongs to: `ORGANISATION`, `TEAM` (needs `teamId`) or `USER` (needs `userId`).
    #[serde(rename = "type")]
    pub key_type: ApiKeyType,
    /// Required for TEAM keys, refused otherwise.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Required for USER keys, refused otherwise.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Must be in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Defaults to `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A rate-limit policy document (known keys only); default `{}`.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
}

/// `PATCH .../apikeys/{id}`: `expiresAt: null` removes the expiry.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new expiry (must be in the future); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// A new IANA zone for the key's windows (`UTC`, `Europe/Paris`, …).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Replaces the policy document.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
}

/// `POST .../apikeys/{id}/rotate`: a new expiry for the new secret (else the current one stays).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateApiKey {
    /// Must be in the future; default: unchanged.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, organisation_id, name, type, team_id, user_id, preview, expires_at, timezone, \
                       revoked, revealed, rotations, policies, created_at, updated_at";

const API_KEYS: Scoped<ApiKey> = Scoped {
    table: "api_keys",
    columns: COLUMNS,
    what: "API key",
    decode,
    id_of: |row| &row.id,
};

fn decode(row: &DbRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        key_type: parse_column(row.try_get::<&str, _>("type")?)?,
        team_id: row.try_get("team_id")?,
        user_id: row.try_get("user_id")?,
        preview: row.try_get("preview")?,
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(from_ms),
        timezone: row.try_get("timezone")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
        revealed: row.try_get::<i64, _>("revealed")? != 0,
        rotations: u32::try_from(row.try_get::<i64, _>("rotations")?).unwrap_or(0),
        policies: from_json_text(row.try_get("policies")?)?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

fn check_expiry(expires_at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, AdminError> {
    match expires_at {
        Some(at) if at <= Utc::now() => Err(AdminError::field(
            "expiresAt",
            "expiresAt must be in the future",
        )),
        other => Ok(other),
    }
}

/// An existing IANA zone (`UTC`, `Europe/Paris`); absent means `UTC`. The same check as budgets
/// and quotas: a name of the right shape that names no zone (`Nowhere/Land`) is a 400.
fn check_timezone(timezone: Option<String>) -> Result<String, AdminError> {
    super::schedule::check_timezone(timezone.as_deref())
}

/// A key has exactly the owner its type names.
async fn check_owner(
    pool: &Db,
    organisation_id: &str,
    input: &NewApiKey,
) -> Result<(), AdminError> {
    let (needed, forbidden) = match input.key_type {
        ApiKeyType::Organisation => (
            None,
            [("teamId", &input.team_id), ("userId", &input.user_id)].to_vec(),
        ),
        ApiKeyType::Team => (
            Some(("teamId", "teams", &input.team_id)),
            vec![("userId", &input.user_id)],
        ),
        ApiKeyType::User => (
            Some(("userId", "users", &input.user_id)),
            vec![("teamId", &input.team_id)],
        ),
    };
    if let Some((field, _)) = forbidden.iter().find(|(_, value)| value.is_some()) {
        return Err(AdminError::field(
            field,
            format!("{field} is not allowed on a {} key", input.key_type),
        ));
    }
    if let Some((field, table, value)) = needed {
        let Some(owner_id) = value else {
            return Err(AdminError::field(
                field,
                format!("{field} is required for a {} key", input.key_type),
            ));
        };
        if !exists_in_org(pool, table, organisation_id, owner_id).await? {
            return Err(AdminError::field(
                field,
                format!(
                    "{field} does not name a {} of this organisation",
                    &table[..table.len() - 1]
                ),
            ));
        }
    }
    Ok(())
}

/// Issues a key and returns its plaintext once. Errors: 404 when the organisation does not
/// exist; 400 on a bad name, owner (missing, refused or not in the organisation), past expiry,
/// unknown timezone or bad policy document.
pub async fn create(
    pool: &Db,
    organisation_id: &str,
    input: NewApiKey,
) -> Result<IssuedApiKey, AdminError> {
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    check_owner(pool, organisation_id, &input).await?;
    let expires_at = check_expiry(input.expires_at)?;
    let timezone = check_timezone(input.timezone)?;
    let policies = check_optional_policies(input.policies)?;
    let key = generate_virtual_key();
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO api_keys (id, organisation_id, name, type, team_id, user_id, key_hash, preview, expires_at, \
         timezone, revoked, revealed, rotations, policies, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 1, 0, $11, $12, $13)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(input.key_type.as_str())
    .bind(&input.team_id)
    .bind(&input.user_id)
    .bind(hash_virtual_key(&key))
    .bind(preview(&key))
    .bind(expires_at.map(to_ms))
    .bind(&timezone)
    .bind(to_json_text(&policies)?)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    let api_key = get(pool, organisation_id, &id).await?;
    Ok(IssuedApiKey { api_key, key })
}

/// The key `id` of the organisation; 404 when it is not there.
pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<ApiKey, AdminError> {
    API_KEYS.get(pool, organisation_id, id).await
}

/// The organisation's keys; with `organisation_id = None`, every organisation's (SUPER_ADMIN).
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<ApiKey>, AdminError> {
    API_KEYS.list(pool, organisation_id, &[], page).await
}

/// Applies `patch` (absent fields stay); 404 when the key is not in the organisation, 400 on
/// a bad name, past expiry, unknown timezone or bad policy document.
pub async fn update(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: ApiKeyPatch,
) -> Result<ApiKey, AdminError> {
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(expires_at) = patch.expires_at {
        current.expires_at = check_expiry(expires_at)?;
    }
    if let Some(timezone) = patch.timezone {
        current.timezone = check_timezone(Some(timezone))?;
    }
    if let Some(policies) = patch.policies {
        current.policies = check_policies(policies)?;
    }
    let result = sqlx::query(
        "UPDATE api_keys SET name = $1, expires_at = $2, timezone = $3, policies = $4, updated_at = $5 \
         WHERE id = $6 AND organisation_id = $7",
    )
    .bind(&current.name)
    .bind(current.expires_at.map(to_ms))
    .bind(&current.timezone)
    .bind(to_json_text(&current.policies)?)
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    API_KEYS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Issues a new secret for the same key id; the old secret stops matching at once. Refused for a
/// revoked key (unrevoke it first) and for an expiry in the past.
pub async fn rotate(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    input: RotateApiKey,
    rotated_by: Option<&str>,
) -> Result<IssuedApiKey, AdminError> {
    let new_expiry = check_expiry(input.expires_at)?;
    let current = get(pool, organisation_id, id).await?;
    if current.revoked {
        return Err(AdminError::invalid(
            None,
            "a revoked API key cannot be rotated; unrevoke it first",
        ));
    }
    let expires_at = new_expiry.or(current.expires_at);
    let key = generate_virtual_key();
    let now = now_ms();
    let mut tx = pool.begin().await?;
    // `revoked = 0` and the rotation count in the WHERE clause make a concurrent revoke or rotation
    // lose cleanly instead of being overwritten.
    let result = sqlx::query(
        "UPDATE api_keys SET key_hash = $1, preview = $2, expires_at = $3, rotations = rotations + 1, \
         revealed = 1, updated_at = $4 WHERE id = $5 AND organisation_id = $6 AND revoked = 0 AND rotations = $7",
    )
    .bind(hash_virtual_key(&key))
    .bind(preview(&key))
    .bind(expires_at.map(to_ms))
    .bind(now)
    .bind(id)
    .bind(organisation_id)
    .bind(i64::from(current.rotations))
    .execute(&mut *tx)
    .await?;
    if result.rows_affected() == 0 {
        return Err(AdminError::Conflict(
            "the API key changed while it was being rotated; retry".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO api_key_rotations (id, api_key_id, previous_preview, previous_expires_at, new_expires_at, \
         rotated_by, rotated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_object_id())
    .bind(id)
    .bind(&current.preview)
    .bind(current.expires_at.map(to_ms))
    .bind(expires_at.map(to_ms))
    .bind(rotated_by)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let api_key = get(pool, organisation_id, id).await?;
    Ok(IssuedApiKey { api_key, key })
}

/// Revokes (`true`) or restores (`false`) the key; idempotent.
pub async fn set_revoked(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    revoked: bool,
) -> Result<ApiKey, AdminError> {
    let result = sqlx::query(
        "UPDATE api_keys SET revoked = $1, updated_at = $2 WHERE id = $3 AND organisation_id = $4",
    )
    .bind(i64::from(revoked))
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    API_KEYS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Deletes the key with its grants (cascade).
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    API_KEYS.delete(pool, organisation_id, id).await
}

/// One rotation of a key: what the previous secret looked like and who replaced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKeyRotation)]
pub struct Rotation {
    /// The rotation's id.
    pub id: String,
    /// The key that was rotated.
    pub api_key_id: String,
    /// The preview of the secret this rotation replaced.
    pub previous_preview: String,
    /// The expiry before the rotation; `null`: none.
    #[schema(required = true)]
    pub previous_expires_at: Option<DateTime<Utc>>,
    /// The expiry after the rotation; `null`: none.
    #[schema(required = true)]
    pub new_expires_at: Option<DateTime<Utc>>,
    /// The user id (or `admin-token`) that rotated it.
    #[schema(required = true)]
    pub rotated_by: Option<String>,
    /// When the rotation happened.
    pub rotated_at: DateTime<Utc>,
}

/// The key's rotations, newest first (a key is rotated rarely: the whole history is one page).
pub async fn rotations(
    pool: &Db,
    organisation_id: &str,
    id: &str,
) -> Result<Page<Rotation>, AdminError> {
    if !exists_in_org(pool, "api_keys", organisation_id, id).await? {
        return Err(AdminError::NotFound("API key"));
    }
    let rows = sqlx::query(
        "SELECT id, api_key_id, previous_preview, previous_expires_at, new_expires_at, rotated_by, \
         rotated_at FROM api_key_rotations WHERE api_key_id = $1 ORDER BY rotated_at DESC, id DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let data = rows
        .iter()
        .map(|row| {
            Ok(Rotation {
                id: row.try_get("id")?,
                api_key_id: row.try_get("api_key_id")?,
                previous_preview: row.try_get("previous_preview")?,
                previous_expires_at: row
                    .try_get::<Option<i64>, _>("previous_expires_at")?
                    .map(from_ms),
                new_expires_at: row
                    .try_get::<Option<i64>, _>("new_expires_at")?
                    .map(from_ms),
                rotated_by: row.try_get("rotated_by")?,
                rotated_at: from_ms(row.try_get("rotated_at")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Page::all(data))
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Duration;

    use super::*;
    use crate::services::test_support::{org, pool};

    pub(crate) fn new(key_type: ApiKeyType) -> NewApiKey {
        NewApiKey {
            name: "ci".into(),
            key_type,
            team_id: None,
            user_id: None,
            expires_at: None,
            timezone: None,
            policies: None,
        }
    }

    async fn stored_hash(pool: &Db, id: &str) -> String {
        sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn issue_rotate_revoke() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let issued = create(&pool, &a, new(ApiKeyType::Organisation))
            .await
            .unwrap();
        assert!(issued.key.starts_with("sk_"));
        assert!(!format!("{issued:?}").contains(&issued.key));
        assert_eq!(issued.api_key.preview, preview(&issued.key));
        assert_eq!(issued.api_key.timezone, "UTC");
        assert_eq!(
            stored_hash(&pool, &issued.api_key.id).await,
            hash_virtual_key(&issued.key)
        );

        let past = RotateApiKey {
            expires_at: Some(Utc::now() - Duration::hours(1)),
        };
        let refused = rotate(&pool, &a, &issued.api_key.id, past, None).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "expiresAt")
        );

        let rotated = rotate(
            &pool,
            &a,
            &issued.api_key.id,
            RotateApiKey::default(),
            Some("admin"),
        )
        .await
        .unwrap();
        assert_eq!(rotated.api_key.id, issued.api_key.id);
        assert_ne!(rotated.key, issued.key);
        assert_eq!(rotated.api_key.rotations, 1);
        assert_eq!(
            stored_hash(&pool, &issued.api_key.id).await,
            hash_virtual_key(&rotated.key)
        );
        let rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM api_key_rotations WHERE api_key_id = $1")
                .bind(&issued.api_key.id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(rows, 1);

        assert!(
            set_revoked(&pool, &a, &issued.api_key.id, true)
                .await
                .unwrap()
                .revoked
        );
        let refused = rotate(&pool, &a, &issued.api_key.id, RotateApiKey::default(), None).await;
        assert!(matches!(refused, Err(AdminError::Invalid { .. })));
        assert!(
            !set_revoked(&pool, &a, &issued.api_key.id, false)
                .await
                .unwrap()
                .revoked
        );
    }

    #[tokio::test]
    async fn owners_must_match_the_type() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let missing_team = create(&pool, &a, new(ApiKeyType::Team)).await;
        assert!(
            matches!(missing_team, Err(AdminError::Invalid { field: Some(f), .. }) if f == "teamId")
        );
        let mut unknown_user = new(ApiKeyType::User);
        unknown_user.user_id = Some("nobody".into());
        let refused = create(&pool, &a, unknown_user).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "userId")
        );
        let mut org_with_team = new(ApiKeyType::Organisation);
        org_with_team.team_id = Some("t".into());
        let refused = create(&pool, &a, org_with_team).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "teamId")
        );

        let now = now_ms();
        sqlx::query("INSERT INTO teams (id, organisation_id, name, created_at, updated_at) VALUES ('t1', $1, 'core', $2, $3)")
            .bind(&a)
            .bind(now)
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        let mut team_key = new(ApiKeyType::Team);
        team_key.team_id = Some("t1".into());
        team_key.timezone = Some("Europe/Paris".into());
        let issued = create(&pool, &a, team_key).await.unwrap();
        assert_eq!(issued.api_key.team_id.as_deref(), Some("t1"));

        let mut bad_tz = new(ApiKeyType::Organisation);
        bad_tz.timezone = Some("not a zone".into());
        assert!(matches!(
            create(&pool, &a, bad_tz).await,
            Err(AdminError::Invalid { .. })
        ));
    }
}
