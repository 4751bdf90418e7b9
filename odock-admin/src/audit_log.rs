//! The audit log: one row per successful admin write — who (a user, or the static admin token),
//! what (the admin API operation), on which object, when, and a summary of the change — with
//! secrets removed before anything is stored ([`redact`]).
//!
//! Rows are written by the admin API's audit middleware and read back newest first, a page at a
//! time, per organisation ([`list`]) or across all of them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::services::{AdminError, Page, PageRequest};
use odock_store::db::{from_ms, now_ms, Db, DbRow, SqlBuilder};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user.
    User(String),
    /// The static `ODOCK_ADMIN_TOKEN`.
    AdminToken,
}

impl Actor {
    /// How the actor is stored in `actor_kind`: `user` or `admin-token`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::AdminToken => "admin-token",
        }
    }

    /// The signed-in user's id; `None` for the admin token.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Actor::User(id) => Some(id),
            Actor::AdminToken => None,
        }
    }
}

/// A change to record. `summary` is redacted by [`record`] before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// The organisation the change belongs to; `None` for changes outside any organisation.
    pub organisation_id: Option<String>,
    /// Who made the change.
    pub actor: Actor,
    /// The admin API operation id (`createApiKey`, `updateModel`, …).
    pub action: String,
    /// What was changed (`api_key`, `model`, …).
    pub target_type: String,
    /// The id of the changed object, when there is one.
    pub target_id: Option<String>,
    /// The change: `{path, request, before, after}`; secrets are removed before storing.
    pub summary: Value,
}

/// A stored entry, as the audit-log lists return it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The entry's id.
    pub id: String,
    /// When the change was recorded.
    pub at: DateTime<Utc>,
    /// The organisation the change belongs to; `null` for changes outside any organisation.
    #[schema(required = true)]
    pub organisation_id: Option<String>,
    /// The user who made the change; `null` when it was made with the admin token.
    #[schema(required = true)]
    pub actor_user_id: Option<String>,
    /// `user` or `admin-token`.
    pub actor_kind: String,
    /// The operation id of the admin route.
    pub action: String,
    /// What kind of object was changed (`api_key`, `model`, …).
    pub target_type: String,
    /// The id of the changed object; `null` when there is none.
    #[schema(required = true)]
    pub target_id: Option<String>,
    /// `{path, request, before, after}`, secrets removed.
    pub summary: Value,
}

/// Stores `entry` with its summary redacted.
pub async fn record(pool: &Db, entry: NewAuditEntry) -> Result<AuditEntry, sqlx::Error> {
    let mut summary = entry.summary;
    redact(&mut summary);
    let id = odock_core::new_object_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO audit_log (id, organisation_id, actor_kind, actor_user_id, action, target_type, \
         target_id, summary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(entry.organisation_id.as_deref())
    .bind(entry.actor.kind())
    .bind(entry.actor.user_id())
    .bind(&entry.action)
    .bind(&entry.target_type)
    .bind(entry.target_id.as_deref())
    .bind(summary.to_string())
    .bind(now)
    .execute(pool)
    .await?;
    Ok(AuditEntry {
        id,
        at: from_ms(now),
        organisation_id: entry.organisation_id,
        actor_user_id: entry.actor.user_id().map(str::to_owned),
        actor_kind: entry.actor.kind().to_owned(),
        action: entry.action,
        target_type: entry.target_type,
        target_id: entry.target_id,
        summary,
    })
}

/// One page of entries, newest first: one organisation's, or (`None`) every entry. The cursor is
/// the last id of the previous page.
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<AuditEntry>, AdminError> {
    let mut sql = SqlBuilder::new(
        "SELECT id, organisation_id, actor_kind, actor_user_id, action, target_type, target_id, \
         summary, created_at FROM audit_log WHERE 1 = 1",
    );
    if let Some(organisation_id) = organisation_id {
        sql.push(" AND organisation_id = ")
            .push_bind(organisation_id);
    }
    if let Some(cursor) = &page.cursor {
        sql.push(" AND id < ").push_bind(cursor.as_str());
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(page.limit) + 1);
    let rows = sql.query().fetch_all(pool).await?;
    let mut data = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if data.len() > page.limit as usize {
        data.truncate(page.limit as usize);
        data.last().map(|entry| entry.id.clone())
    } else {
        None
    };
    Ok(Page { data, next_cursor })
}

fn decode(row: &DbRow) -> Result<AuditEntry, sqlx::Error> {
    let summary: String = row.try_get("summary")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: from_ms(row.try_get("created_at")?),
        organisation_id: row.try_get("organisation_id")?,
        actor_user_id: row.try_get("actor_user_id")?,
        actor_kind: row.try_get("actor_kind")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        summary: serde_json::from_str(&summary)
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
    })
}

/// What replaces a removed secret.
pub const REDACTED: &str = "[redacted]";

/// Whether a field of this name may hold a secret: keys, secrets, passwords, tokens, MCP auth
/// config and stdio environment, sealed envelopes, hashes. Ids (`apiKeyId`) and token counts
/// (`maxTokensPerRequest`, `tokens`) are not secrets.
pub fn is_secret_field(name: &str) -> bool {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const EXACT: [&str; 5] = ["authconfig", "stdioenv", "authorization", "cookie", "env"];
    const SUFFIXES: [&str; 6] = ["key", "secret", "password", "token", "envelope", "hash"];
    const ANYWHERE: [&str; 3] = ["secret", "password", "credential"];
    EXACT.contains(&name.as_str())
        || SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
        || ANYWHERE.iter().any(|part| name.contains(part))
}

/// Replaces, in place, every value under a secret-named field ([`is_secret_field`]) with
/// [`REDACTED`]; then any other string that contains one of those secrets (an invitation `url`
/// carrying its token) or looks like a virtual key (`sk_…`), wherever it appears.
pub fn redact(value: &mut Value) {
    let mut secrets = Vec::new();
    redact_fields(value, &mut secrets);
    // Short values (`"x"`) would match everywhere and are no secret worth hunting for.
    secrets.retain(|secret| secret.len() >= 8);
    redact_strings(value, &secrets);
}

fn redact_fields(value: &mut Value, secrets: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if is_secret_field(name) {
                    collect_strings(field, secrets);
                    if !field.is_null() {
                        *field = Value::String(REDACTED.to_owned());
                    }
                } else {
                    redact_fields(field, secrets);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_fields(item, secrets)),
        _ => {}
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        Value::Object(map) => map.values().for_each(|item| collect_strings(item, out)),
        _ => {}
    }
}

fn redact_strings(value: &mut Value, secrets: &[String]) {
    match value {
        Value::Object(map) => map
            .values_mut()
            .for_each(|item| redact_strings(item, secrets)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_strings(item, secrets)),
        Value::String(text) => {
            // Previews (`sk_abc…wxyz`) are short and meant to be shown; whole keys are not.
            let virtual_key = text.starts_with("sk_") && text.len() > 20;
            if virtual_key || secrets.iter().any(|secret| text.contains(secret.as_str())) {
                *text = REDACTED.to_owned();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use odock_store::testing::database;

    #[test]
    fn secret_fields_are_recognised() {
        for name in [
            "key",
            "apiKey",
            "api_key",
            "secret",
            "clientSecret",
            "password",
            "newPassword",
            "token",
            "accessToken",
            "authConfig",
            "stdioEnv",
            "envelope",
            "keyHash",
            "Authorization",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in [
            "name",
            "apiKeyId",
            "providerKeyId",
            "keys",
            "tokens",
            "maxTokensPerRequest",
            "tokensPerMinute",
            "preview",
            "billableTokens",
            "email",
        ] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    #[test]
    fn redaction_reaches_nested_values_and_keeps_the_rest() {
        let mut value = json!({
            "name": "prod",
            "key": "sk-live-123",
            "apiKeyId": "ckey1",
            "authConfig": {"token": "t"},
            "nested": [{"password": "p", "ok": 1}, "sk_abcdefghijklmnopqrstuvwxyz0123456789"],
            "preview": "sk_abc…wxyz",
            "expiresAt": null,
            "token": "inv-token-0123456789",
            "url": "/invitations/inv-token-0123456789",
        });
        redact(&mut value);
        assert_eq!(
            value,
            json!({
                "name": "prod",
                "key": REDACTED,
                "apiKeyId": "ckey1",
                "authConfig": REDACTED,
                "nested": [{"password": REDACTED, "ok": 1}, REDACTED],
                "preview": "sk_abc…wxyz",
                "expiresAt": null,
                "token": REDACTED,
                "url": REDACTED,
            })
        );
    }

    #[tokio::test]
    async fn entries_are_stored_redacted_and_listed_newest_first_per_organisation() {
        let pool = database().await;
        for (i, org) in ["org-1", "org-2", "org-1", "org-1"].into_iter().enumerate() {
            record(
                &pool,
                NewAuditEntry {
                    organisation_id: Some(org.into()),
                    actor: if i == 0 {
                        Actor::AdminToken
                    } else {
                        Actor::User("u1".into())
                    },
                    action: format!("action{i}"),
                    target_type: "api_key".into(),
                    target_id: Some(format!("k{i}")),
                    summary: json!({"request": {"name": "n", "key": "plain-secret"}}),
                },
            )
            .await
            .unwrap();
            // Ids are time-ordered; keep them apart without waiting on the clock.
            tokio::task::yield_now().await;
        }
        let raw: Vec<String> = sqlx::query_scalar("SELECT summary FROM audit_log")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(raw.len(), 4);
        assert!(raw.iter().all(|s| !s.contains("plain-secret")));

        let mut seen = Vec::new();
        let mut page = PageRequest::first(2);
        loop {
            let result = list(&pool, Some("org-1"), &page).await.unwrap();
            seen.extend(result.data.iter().map(|e| e.action.clone()));
            match result.next_cursor {
                Some(cursor) => page = PageRequest::new(Some(cursor), Some(2)),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, ["action0", "action2", "action3"]);
        let all = list(&pool, None, &PageRequest::first(50)).await.unwrap();
        assert_eq!(all.data.len(), 4);
        let first = all.data.iter().find(|e| e.action == "action0").unwrap();
        assert_eq!(first.actor_kind, "admin-token");
        assert_eq!(first.actor_user_id, None);
        assert_eq!(first.summary["request"]["key"], REDACTED);
    }
}
