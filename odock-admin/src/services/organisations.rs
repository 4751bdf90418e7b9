//! Organisations (`/api/admin/organisations`): the tenants everything else belongs to.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use odock_core::new_object_id;
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::policies::check_policies;
use super::{
    conflict, from_json_text, list_page, nullable, parse_column, required_text, to_json_text,
    touched, AdminError, JsonObject, Page, PageRequest,
};
use odock_store::db::{from_ms, now_ms};

/// Whether an organisation may use the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrganisationStatus {
    /// The organisation may use the gateway.
    Active,
    /// The organisation is switched off: the gateway refuses its API keys.
    Disabled,
}

impl OrganisationStatus {
    /// The stored and wire name: `active` or `disabled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrganisationStatus::Active => "active",
            OrganisationStatus::Disabled => "disabled",
        }
    }
}

/// The stored status was not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown organisation status `{0}`")]
pub struct UnknownStatus(String);

impl FromStr for OrganisationStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(OrganisationStatus::Active),
            "disabled" => Ok(OrganisationStatus::Disabled),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

impl fmt::Display for OrganisationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An organisation, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organisation {
    /// The organisation's id.
    pub id: String,
    /// A display name.
    pub name: String,
    /// Unique across organisations: 1–100 characters of `a-z`, `0-9` and `-`.
    pub slug: String,
    /// A free-text contact (a person, an e-mail address…); `null` when none.
    #[schema(required = true)]
    pub contact: Option<String>,
    /// Whether the organisation may use the gateway (`active`) or not (`disabled`).
    pub status: OrganisationStatus,
    /// Whether API keys' routing documents apply (failover and load balancing across models).
    pub routing_enabled: bool,
    /// When the organisation was created.
    pub created_at: DateTime<Utc>,
    /// When the organisation was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/admin/organisations`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganisation {
    /// A display name (trimmed, 1–200 characters).
    pub name: String,
    /// Derived from the name when absent (see [`slugify`]).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9-]{1,100}$")]
    pub slug: Option<String>,
    /// A free-text contact; blank means none.
    #[serde(default)]
    pub contact: Option<String>,
}

/// `PATCH /api/admin/organisations/{id}`: absent fields stay unchanged; `contact: null` clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganisationPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new slug (1–100 characters of `a-z`, `0-9` and `-`; unique).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9-]{1,100}$")]
    pub slug: Option<String>,
    /// A new contact; `null` or blank clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub contact: Option<Option<String>>,
    /// Enables (`active`) or disables (`disabled`) the organisation.
    #[serde(default)]
    pub status: Option<OrganisationStatus>,
    /// Turns routing documents on or off for the organisation's keys.
    #[serde(default)]
    pub routing_enabled: Option<bool>,
    /// The organisation's rate-limit policy (see [`super::policies`]); replaces the stored one.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
}

/// `GET/PATCH /api/organisations/{organisationId}/settings`: what an organisation's own admins
/// may see and change about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganisationSettings {
    /// The organisation's display name.
    pub name: String,
    /// A free-text contact; `null` when none.
    #[schema(required = true)]
    pub contact: Option<String>,
    /// Whether API keys' routing documents apply.
    pub routing_enabled: bool,
    /// The organisation's rate-limit policy document (`{}`: none).
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: JsonObject,
}

/// `PATCH .../settings`: absent fields stay unchanged; `contact: null` clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new contact; `null` or blank clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub contact: Option<Option<String>>,
    /// Turns routing documents on or off for the organisation's keys.
    #[serde(default)]
    pub routing_enabled: Option<bool>,
    /// A new rate-limit policy document, replacing the stored one (known keys only).
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
}

const COLUMNS: &str = "id, name, slug, contact, status, routing_enabled, created_at, updated_at";

fn decode(row: &DbRow) -> Result<Organisation, sqlx::Error> {
    Ok(Organisation {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        contact: row.try_get("contact")?,
        status: parse_column(row.try_get::<&str, _>("status")?)?,
        routing_enabled: row.try_get::<i64, _>("routing_enabled")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

/// Lower-case, every run of non-alphanumerics becomes one `-`, no leading or trailing `-`:
/// `"Acme Corp!"` → `"acme-corp"`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

/// A slug is 1–100 characters of `a-z`, `0-9` and `-`.
fn check_slug(slug: &str) -> Result<String, AdminError> {
    let slug = slug.trim();
    let valid = !slug.is_empty()
        && slug.len() <= 100
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(slug.to_owned())
    } else {
        Err(AdminError::field(
            "slug",
            "slug must be 1-100 characters of a-z, 0-9 and -",
        ))
    }
}

fn clean_contact(contact: Option<String>) -> Option<String> {
    contact
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
}

fn duplicate_slug(slug: &str) -> String {
    format!("an organisation with slug `{slug}` already exists")
}

/// Creates an active organisation with routing off; the slug is derived from the name when
/// absent. Errors: 400 on a bad name or slug, 409 when the slug is taken.
pub async fn create(pool: &Db, input: NewOrganisation) -> Result<Organisation, AdminError> {
    let name = required_text("name", &input.name, 200)?;
    let slug = match input.slug {
        Some(slug) => check_slug(&slug)?,
        None => {
            let derived = slugify(&name);
            if derived.is_empty() {
                return Err(AdminError::field(
                    "slug",
                    "no slug can be derived from this name; provide one",
                ));
            }
            check_slug(&derived)?
        }
    };
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO organisations (id, name, slug, contact, status, routing_enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'active', 0, $5, $6)",
    )
    .bind(&id)
    .bind(&name)
    .bind(&slug)
    .bind(clean_contact(input.contact))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_slug(&slug)))?;
    get(pool, &id).await
}

/// The organisation `id`; 404 when it does not exist.
pub async fn get(pool: &Db, id: &str) -> Result<Organisation, AdminError> {
    let sql = format!("SELECT {COLUMNS} FROM organisations WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    match row {
        Some(row) => Ok(decode(&row)?),
        None => Err(AdminError::NotFound("organisation")),
    }
}

/// 404 unless the organisation exists: the guard of every organisation-scoped list and create.
pub async fn ensure_exists(pool: &Db, id: &str) -> Result<(), AdminError> {
    let found = sqlx::query("SELECT 1 FROM organisations WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    found
        .map(|_| ())
        .ok_or(AdminError::NotFound("organisation"))
}

/// One page of every organisation.
pub async fn list(pool: &Db, page: &PageRequest) -> Result<Page<Organisation>, AdminError> {
    let select = format!("SELECT {COLUMNS} FROM organisations");
    list_page(pool, &select, &[], page, decode, |o| &o.id).await
}

/// Applies `patch` (absent fields stay); 404 when missing, 400 on a bad field or policy
/// document, 409 when the new slug is taken.
pub async fn update(
    pool: &Db,
    id: &str,
    patch: OrganisationPatch,
) -> Result<Organisation, AdminError> {
    let mut current = get(pool, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(slug) = patch.slug {
        current.slug = check_slug(&slug)?;
    }
    if let Some(contact) = patch.contact {
        current.contact = clean_contact(contact);
    }
    if let Some(status) = patch.status {
        current.status = status;
    }
    if let Some(routing_enabled) = patch.routing_enabled {
        current.routing_enabled = routing_enabled;
    }
    let policies = patch.policies.map(check_policies).transpose()?;
    let result = sqlx::query(
        "UPDATE organisations SET name = $1, slug = $2, contact = $3, status = $4, routing_enabled = $5, \
         policies = COALESCE($6, policies), updated_at = $7 WHERE id = $8",
    )
    .bind(&current.name)
    .bind(&current.slug)
    .bind(&current.contact)
    .bind(current.status.as_str())
    .bind(i64::from(current.routing_enabled))
    .bind(policies.as_ref().map(to_json_text).transpose()?)
    .bind(now_ms())
    .bind(id)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_slug(&current.slug)))?;
    touched(&result, "organisation")?;
    get(pool, id).await
}

/// What the organisation's own admins see of it; 404 when it does not exist.
pub async fn settings(pool: &Db, id: &str) -> Result<OrganisationSettings, AdminError> {
    let row = sqlx::query(
        "SELECT name, contact, routing_enabled, policies FROM organisations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Err(AdminError::NotFound("organisation"));
    };
    Ok(OrganisationSettings {
        name: row.try_get("name")?,
        contact: row.try_get("contact")?,
        routing_enabled: row.try_get::<i64, _>("routing_enabled")? != 0,
        policies: from_json_text(row.try_get("policies")?)?,
    })
}

/// Applies an organisation admin's `patch` (name, contact, routing, policies) and returns the
/// resulting settings; errors as [`update`].
pub async fn update_settings(
    pool: &Db,
    id: &str,
    patch: SettingsPatch,
) -> Result<OrganisationSettings, AdminError> {
    let patch = OrganisationPatch {
        name: patch.name,
        contact: patch.contact,
        routing_enabled: patch.routing_enabled,
        policies: patch.policies,
        ..OrganisationPatch::default()
    };
    update(pool, id, patch).await?;
    settings(pool, id).await
}

/// How many of each object the organisation has (the dashboard's counts).
pub async fn object_count(pool: &Db, id: &str, table: ObjectTable) -> Result<i64, AdminError> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM {} WHERE organisation_id = $1",
        table.as_str()
    );
    let row = sqlx::query(&sql).bind(id).fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>("n")?)
}

/// The tables [`object_count`] counts (names from code, never from clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectTable {
    /// `api_keys`
    ApiKeys,
    /// `models`
    Models,
    /// `providers`
    Providers,
    /// `mcp_servers`
    McpServers,
    /// `teams`
    Teams,
    /// `users` (members of the organisation)
    Users,
}

impl ObjectTable {
    const fn as_str(self) -> &'static str {
        match self {
            ObjectTable::ApiKeys => "api_keys",
            ObjectTable::Models => "models",
            ObjectTable::Providers => "providers",
            ObjectTable::McpServers => "mcp_servers",
            ObjectTable::Teams => "teams",
            ObjectTable::Users => "users",
        }
    }
}

/// Deletes the organisation and (by cascade) everything it owns; 404 when it does not exist.
pub async fn delete(pool: &Db, id: &str) -> Result<(), AdminError> {
    let result = sqlx::query("DELETE FROM organisations WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    touched(&result, "organisation")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_support::pool;

    fn new(name: &str, slug: Option<&str>) -> NewOrganisation {
        NewOrganisation {
            name: name.into(),
            slug: slug.map(Into::into),
            contact: None,
        }
    }

    #[test]
    fn slugs_are_derived_from_names() {
        assert_eq!(slugify("Acme Corp!"), "acme-corp");
        assert_eq!(slugify("  Hello   World 2 "), "hello-world-2");
        assert_eq!(slugify("!!!"), "");
    }

    #[tokio::test]
    async fn crud_and_duplicate_slug() {
        let pool = pool().await;
        let acme = create(&pool, new("Acme Corp", None)).await.unwrap();
        assert_eq!(acme.slug, "acme-corp");
        assert_eq!(acme.status, OrganisationStatus::Active);
        assert!(!acme.routing_enabled);

        let dup = create(&pool, new("Other", Some("acme-corp"))).await;
        assert!(matches!(dup, Err(AdminError::Conflict(_))));
        let bad = create(&pool, new("Other", Some("Not A Slug"))).await;
        assert!(matches!(bad, Err(AdminError::Invalid { field: Some(f), .. }) if f == "slug"));

        let patched = update(
            &pool,
            &acme.id,
            OrganisationPatch {
                status: Some(OrganisationStatus::Disabled),
                routing_enabled: Some(true),
                contact: Some(Some("ops@acme.test".into())),
                ..OrganisationPatch::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(patched.status, OrganisationStatus::Disabled);
        assert!(patched.routing_enabled);
        assert_eq!(patched.contact.as_deref(), Some("ops@acme.test"));
        assert_eq!(patched.name, "Acme Corp");

        delete(&pool, &acme.id).await.unwrap();
        assert!(matches!(
            get(&pool, &acme.id).await,
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            delete(&pool, &acme.id).await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn pagination_walks_every_item_once() {
        let pool = pool().await;
        for i in 0..5 {
            create(&pool, new(&format!("Org {i}"), None)).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = list(&pool, &PageRequest::new(cursor, Some(2)))
                .await
                .unwrap();
            assert!(page.data.len() <= 2);
            seen.extend(page.data.into_iter().map(|o| o.name));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        seen.sort();
        assert_eq!(seen, (0..5).map(|i| format!("Org {i}")).collect::<Vec<_>>());
    }
}
