//! Quotas (`/api/organisations/{organisationId}/quotas`): limits on a metric (requests, tokens,
//! errors, cost, latency) per calendar window. Same owners and schedule as [`super::budgets`].

use chrono::{DateTime, Utc};
use odock_core::{new_object_id, BudgetPeriod, OwnerType, QuotaMetric};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::budgets::OwnerFilter;
use super::organisations::ensure_exists;
use super::schedule::{
    self, check_owner, decode_owner, filter_conditions, new_span, owner_columns, patch_span,
    schedule, Span, WindowRows,
};
use super::{nullable, parse_column, required_text, AdminError, Page, PageRequest, Scoped};
use odock_store::db::{from_ms, now_ms, to_ms};

/// A quota, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    pub id: String,
    pub organisation_id: String,
    pub name: String,
    pub owner_type: OwnerType,
    /// The team, user or key id; `None` for `ORG`.
    #[schema(required = true)]
    pub owner_id: Option<String>,
    pub metric: QuotaMetric,
    pub limit: i64,
    pub period: BudgetPeriod,
    pub start_at: DateTime<Utc>,
    pub timezone: String,
    #[schema(required = true)]
    pub end_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST .../quotas`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewQuota {
    pub name: String,
    pub owner_type: OwnerType,
    /// The team, user or API key id; absent for ORG, required otherwise.
    #[serde(default)]
    pub owner_id: Option<String>,
    pub metric: QuotaMetric,
    #[schema(minimum = 1)]
    pub limit: i64,
    pub period: BudgetPeriod,
    /// Defaults to now.
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    /// Defaults to `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// After `startAt`.
    #[serde(default)]
    pub end_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// `PATCH .../quotas/{id}`: the owner and metric cannot change; `endAt: null` removes the end.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub period: Option<BudgetPeriod>,
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    /// IANA timezone; default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub end_at: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// One window of a quota, as returned by `GET .../quotas/{id}/windows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaWindow {
    /// `None` for the current window while the ledger has not created its row.
    #[schema(required = true)]
    pub id: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub used: i64,
    pub reserved: i64,
}

const COLUMNS: &str =
    "id, organisation_id, name, owner_type, team_id, user_id, api_key_id, metric, limit_value, \
     period, start_at, timezone, end_at, active, created_at, updated_at";

fn check_limit(limit: i64) -> Result<i64, AdminError> {
    if limit > 0 {
        Ok(limit)
    } else {
        Err(AdminError::field("limit", "limit must be greater than 0"))
    }
}

const QUOTAS: Scoped<Quota> = Scoped {
    table: "quotas",
    columns: COLUMNS,
    what: "quota",
    decode,
    id_of: |row| &row.id,
};

fn decode(row: &DbRow) -> Result<Quota, sqlx::Error> {
    let (owner_type, owner_id) = decode_owner(row)?;
    Ok(Quota {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        owner_type,
        owner_id,
        metric: parse_column(row.try_get::<&str, _>("metric")?)?,
        limit: row.try_get("limit_value")?,
        period: parse_column(row.try_get::<&str, _>("period")?)?,
        start_at: from_ms(row.try_get("start_at")?),
        timezone: row.try_get("timezone")?,
        end_at: row.try_get::<Option<i64>, _>("end_at")?.map(from_ms),
        active: row.try_get::<i64, _>("active")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

pub async fn create(
    pool: &Db,
    organisation_id: &str,
    input: NewQuota,
) -> Result<Quota, AdminError> {
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let owner_id = check_owner(pool, organisation_id, input.owner_type, input.owner_id).await?;
    let limit = check_limit(input.limit)?;
    let Span {
        start_at,
        timezone,
        end_at,
    } = new_span(input.start_at, input.timezone.as_deref(), input.end_at)?;
    let (team_id, user_id, api_key_id) = owner_columns(input.owner_type, owner_id.as_deref());
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO quotas (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, metric, \
         limit_value, period, start_at, timezone, end_at, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(input.owner_type.as_str())
    .bind(team_id)
    .bind(user_id)
    .bind(api_key_id)
    .bind(input.metric.as_str())
    .bind(limit)
    .bind(input.period.as_str())
    .bind(to_ms(start_at))
    .bind(&timezone)
    .bind(end_at.map(to_ms))
    .bind(i64::from(input.active.unwrap_or(true)))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    get(pool, organisation_id, &id).await
}

pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<Quota, AdminError> {
    QUOTAS.get(pool, organisation_id, id).await
}

/// The organisation's quotas; with `organisation_id = None`, every organisation's (SUPER_ADMIN).
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    filter: &OwnerFilter,
    page: &PageRequest,
) -> Result<Page<Quota>, AdminError> {
    QUOTAS
        .list(pool, organisation_id, &filter_conditions(filter), page)
        .await
}

pub async fn update(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: QuotaPatch,
) -> Result<Quota, AdminError> {
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(limit) = patch.limit {
        current.limit = check_limit(limit)?;
    }
    if let Some(period) = patch.period {
        current.period = period;
    }
    patch_span(
        &mut current.start_at,
        &mut current.timezone,
        &mut current.end_at,
        patch.start_at,
        patch.timezone,
        patch.end_at,
    )?;
    if let Some(active) = patch.active {
        current.active = active;
    }
    let result = sqlx::query(
        "UPDATE quotas SET name = $1, limit_value = $2, period = $3, start_at = $4, timezone = $5, end_at = $6, \
         active = $7, updated_at = $8 WHERE id = $9 AND organisation_id = $10",
    )
    .bind(&current.name)
    .bind(current.limit)
    .bind(current.period.as_str())
    .bind(to_ms(current.start_at))
    .bind(&current.timezone)
    .bind(current.end_at.map(to_ms))
    .bind(i64::from(current.active))
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    QUOTAS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Deletes the quota with its windows (cascade).
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    QUOTAS.delete(pool, organisation_id, id).await
}

/// The quota's windows, current first (the current one with zero usage when it has no row yet).
pub async fn windows(
    pool: &Db,
    organisation_id: &str,
    id: &str,
) -> Result<Vec<QuotaWindow>, AdminError> {
    let quota = get(pool, organisation_id, id).await?;
    let schedule = schedule(quota.start_at, &quota.timezone, quota.period, quota.end_at)?;
    schedule::windows(pool, id, schedule, &QUOTA_WINDOWS).await
}

const QUOTA_WINDOWS: WindowRows<QuotaWindow> = WindowRows {
    select: "SELECT id, start_at, end_at, used, reserved FROM quota_windows \
             WHERE quota_id = $1 ORDER BY start_at DESC LIMIT $2",
    decode: |row| {
        Ok(QuotaWindow {
            id: Some(row.try_get("id")?),
            start_at: from_ms(row.try_get("start_at")?),
            end_at: from_ms(row.try_get("end_at")?),
            used: row.try_get("used")?,
            reserved: row.try_get("reserved")?,
        })
    },
    start_of: |w| w.start_at,
    empty: |start_at, end_at| QuotaWindow {
        id: None,
        start_at,
        end_at,
        used: 0,
        reserved: 0,
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_support::{org, pool};

    #[tokio::test]
    async fn windows_prefer_the_ledger_row() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let quota = create(
            &pool,
            &a,
            NewQuota {
                name: "rpm".into(),
                owner_type: OwnerType::Org,
                owner_id: None,
                metric: QuotaMetric::Requests,
                limit: 0,
                period: BudgetPeriod::Daily,
                start_at: None,
                timezone: Some("Europe/Paris".into()),
                end_at: None,
                active: None,
            },
        )
        .await;
        assert!(matches!(quota, Err(AdminError::Invalid { field: Some(f), .. }) if f == "limit"));
        let quota = create(
            &pool,
            &a,
            NewQuota {
                name: "rpm".into(),
                owner_type: OwnerType::Org,
                owner_id: None,
                metric: QuotaMetric::Requests,
                limit: 100,
                period: BudgetPeriod::Daily,
                start_at: None,
                timezone: Some("Europe/Paris".into()),
                end_at: None,
                active: None,
            },
        )
        .await
        .unwrap();
        let computed = windows(&pool, &a, &quota.id).await.unwrap();
        assert_eq!(computed.len(), 1);
        assert_eq!(computed[0].id, None);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO quota_windows (id, quota_id, metric, start_at, end_at, used, reserved, created_at, updated_at) \
             VALUES ('w1', $1, 'REQUESTS', $2, $3, 7, 2, $4, $5)",
        )
        .bind(&quota.id)
        .bind(to_ms(computed[0].start_at))
        .bind(to_ms(computed[0].end_at))
        .bind(now)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        let stored = windows(&pool, &a, &quota.id).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].id.as_deref(), Some("w1"));
        assert_eq!((stored[0].used, stored[0].reserved), (7, 2));
    }
}
