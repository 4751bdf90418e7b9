//! Admin repositories: the objects of the admin API (ADMIN_API.md) and their SQL.
//!
//! One module per resource. Each exposes typed, camelCase serde structs for the API object and for its
//! create/patch inputs (`deny_unknown_fields`, so typos are refused), plus async functions over a
//! [`Db`]. Every organisation-scoped function takes the organisation id and treats an object of
//! another organisation exactly like a missing one ([`AdminError::NotFound`]), so existence never leaks.
//!
//! Repositories validate their input and return [`AdminError`]; they never touch caches: the caller
//! (the admin HTTP handlers) sends the cache invalidation after a successful write.
//!
//! ```no_run
//! # async fn demo(pool: odock_store::db::Db) -> Result<(), odock_admin::services::AdminError> {
//! use odock_admin::services::{organisations, PageRequest};
//!
//! let input = serde_json::from_str(r#"{"name":"Acme Corp"}"#).map_err(|e| {
//!     odock_admin::services::AdminError::invalid(None, e.to_string())
//! })?;
//! let acme = organisations::create(&pool, input).await?;
//! assert_eq!(acme.slug, "acme-corp");
//! let page = organisations::list(&pool, &PageRequest::first(10)).await?;
//! assert_eq!(page.data.len(), 1);
//! # Ok(()) }
//! ```

pub mod api_keys;
pub mod budgets;
pub mod grants;
pub mod invitations;
pub(crate) mod ledger_rule;
pub mod mcp_grants;
pub mod mcp_servers;
pub mod models;
pub mod notifications;
pub mod organisations;
pub mod policies;
pub mod provider_keys;
pub mod providers;
pub mod quotas;
pub mod routing;
mod schedule;
mod scoped;
pub mod teams;
pub mod users;

pub(crate) use scoped::{touched, Scoped};

use odock_store::db::{Db, DbRow, SqlBuilder};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A JSON object column (`config`, `policies`).
pub type JsonObject = Map<String, Value>;

/// Why an admin operation failed. The HTTP layer maps each variant to one status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The input is unusable (400); `field` names the culprit when one is at fault.
    #[error("{message}")]
    Invalid {
        /// What is wrong, for the client.
        message: String,
        /// The camelCase input field at fault, when one is.
        field: Option<String>,
    },
    /// The object (or its organisation) does not exist (404). Holds what was looked for.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was violated (409).
    #[error("{0}")]
    Conflict(String),
    /// Anything else (500); the message is for logs only.
    #[error("database: {0}")]
    Database(sqlx::Error),
}

impl AdminError {
    /// A 400 ([`AdminError::Invalid`]) with `message`, blaming `field` when given.
    pub fn invalid(field: Option<&str>, message: impl Into<String>) -> Self {
        AdminError::Invalid {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// A 400 blaming `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(Some(field), message)
    }
}

impl From<sqlx::Error> for AdminError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                AdminError::Conflict("an object with the same unique value already exists".into())
            }
            _ => AdminError::Database(error),
        }
    }
}

/// Maps a UNIQUE violation to a 409 with `message`; other errors as usual.
pub(crate) fn conflict(message: impl Into<String>) -> impl FnOnce(sqlx::Error) -> AdminError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            AdminError::Conflict(message.into())
        }
        _ => AdminError::from(error),
    }
}

/// Default page size of every list.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size a client may ask for; larger values are clamped.
pub const MAX_LIMIT: u32 = 500;

/// Which page of a list to read. Ids are time-ordered, so a page is "the next `limit` ids after the
/// cursor", which stays stable while rows are inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The last id of the previous page (the previous response's `nextCursor`).
    pub cursor: Option<String>,
    /// 1..=[`MAX_LIMIT`].
    pub limit: u32,
}

impl PageRequest {
    /// `limit` defaults to [`DEFAULT_LIMIT`] and is clamped to 1..=[`MAX_LIMIT`].
    pub fn new(cursor: Option<String>, limit: Option<u32>) -> Self {
        Self {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit: limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
        }
    }

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self::new(None, Some(limit))
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::new(None, None)
    }
}

/// One page of a list: `{"data":[...],"nextCursor":null|"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// The cursor of the next page (pass it as `cursor`); `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A complete list (no further page).
    pub fn all(data: Vec<T>) -> Self {
        Self {
            data,
            next_cursor: None,
        }
    }
}

/// Lists `table` ordered by id: `filters` are `column = value` conditions (column names come from
/// code, never from clients), then the cursor and `limit + 1` rows to learn whether a next page exists.
pub(crate) async fn list_page<T>(
    pool: &Db,
    select: &str,
    filters: &[(&str, Option<&str>)],
    page: &PageRequest,
    decode: fn(&DbRow) -> Result<T, sqlx::Error>,
    id_of: fn(&T) -> &str,
) -> Result<Page<T>, AdminError> {
    let mut query = SqlBuilder::new(select);
    query.push(" WHERE 1 = 1");
    for (column, value) in filters {
        if let Some(value) = value {
            query.push(&format!(" AND {column} = ")).push_bind(*value);
        }
    }
    if let Some(cursor) = &page.cursor {
        query.push(" AND id > ").push_bind(cursor.as_str());
    }
    query
        .push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(page.limit) + 1);
    let rows = query.query().fetch_all(pool).await?;
    let mut data = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let limit = page.limit as usize;
    let next_cursor = if data.len() > limit {
        data.truncate(limit);
        data.last().map(|item| id_of(item).to_owned())
    } else {
        None
    };
    Ok(Page { data, next_cursor })
}

/// For `Option<Option<T>>` patch fields: absent → `None` (unchanged), `null` → `Some(None)` (cleared),
/// a value → `Some(Some(v))`. Use with `#[serde(default, deserialize_with = "...")]`.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Trims `value` and refuses it when empty or longer than `max` characters.
pub(crate) fn required_text(field: &str, value: &str, max: usize) -> Result<String, AdminError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AdminError::field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(AdminError::field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An upstream URL a tenant configures (provider base URL, MCP endpoint, OAuth2 token URL): an
/// absolute `http(s)://host…` URL without whitespace, without a fragment (a `#` would cut off the
/// path the gateway appends) and without credentials (`user:pass@`; credentials belong in the
/// sealed key or auth config). Whether its host may be reached is the egress policy's business,
/// checked by the admin API and again at connect time.
pub fn check_upstream_url(field: &str, url: &str) -> Result<(), AdminError> {
    let url = url.trim();
    let refuse = |why: &str| AdminError::field(field, format!("{field} {why}"));
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("must not contain whitespace"));
    }
    if url.contains('#') {
        return Err(refuse("must not contain a fragment (`#`)"));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| refuse("must be an absolute http(s) URL"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok {
        return Err(refuse("must be an absolute http(s) URL"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(refuse("must not contain credentials (`user:pass@`)"));
    }
    Ok(())
}

/// Serialises a JSON column.
pub(crate) fn to_json_text<T: Serialize>(value: &T) -> Result<String, AdminError> {
    serde_json::to_string(value).map_err(|e| AdminError::Database(sqlx::Error::Encode(e.into())))
}

/// Parses a nullable JSON column; absent means `T::default()`.
pub(crate) fn from_json_text<T: serde::de::DeserializeOwned + Default>(
    text: Option<String>,
) -> Result<T, sqlx::Error> {
    match text {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(e.into())),
    }
}

/// Parses an enum column spelled as in the seed reference.
pub(crate) fn parse_column<T>(text: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .map_err(|e: T::Err| sqlx::Error::Decode(Box::new(e)))
}

/// Whether a row with this id exists in `table` for the organisation.
pub(crate) async fn exists_in_org(
    pool: &Db,
    table: &str,
    organisation_id: &str,
    id: &str,
) -> Result<bool, AdminError> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = $1 AND organisation_id = $2");
    let found = sqlx::query(&sql)
        .bind(id)
        .bind(organisation_id)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// 404 (`what`) unless a row with this id exists in `table` for the organisation: the guard of every
/// operation on an object's children (a team's members, a provider's keys).
pub(crate) async fn ensure_in_org(
    pool: &Db,
    table: &str,
    organisation_id: &str,
    id: &str,
    what: &'static str,
) -> Result<(), AdminError> {
    if exists_in_org(pool, table, organisation_id, id).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(what))
    }
}

/// Removes duplicates while keeping the first occurrence's order.
pub(crate) fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod url_tests {
    use super::check_upstream_url;

    #[test]
    fn upstream_urls_carry_no_fragment_or_credentials() {
        assert!(check_upstream_url("baseUrl", "https://api.openai.com/v1").is_ok());
        assert!(check_upstream_url("baseUrl", "http://10.0.0.1:8000").is_ok());
        for bad in [
            "https://evil.example/#",
            "https://evil.example/x#/v1",
            "https://user:pw@api.openai.com/v1",
            "https://user@api.openai.com",
            "https://api.openai.com/v 1",
            "ftp://api.openai.com",
            "/relative",
        ] {
            let error = check_upstream_url("baseUrl", bad).unwrap_err();
            assert!(error.to_string().contains("baseUrl"), "{bad}: {error}");
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use odock_store::db::Db;

    use super::organisations::{self, NewOrganisation};

    pub async fn pool() -> Db {
        odock_store::testing::database().await
    }

    pub async fn org(pool: &Db, name: &str) -> String {
        organisations::create(
            pool,
            NewOrganisation {
                name: name.into(),
                slug: None,
                contact: None,
            },
        )
        .await
        .unwrap()
        .id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_request_defaults_and_clamps() {
        assert_eq!(PageRequest::new(None, None).limit, 50);
        assert_eq!(PageRequest::new(None, Some(0)).limit, 1);
        assert_eq!(PageRequest::new(None, Some(10_000)).limit, 500);
        assert_eq!(PageRequest::new(Some(String::new()), None).cursor, None);
    }

    #[test]
    fn dedup_keeps_first_order() {
        let ids = ["b", "a", "b", "c", "a"].map(String::from);
        assert_eq!(dedup(&ids), vec!["b", "a", "c"]);
    }
}
