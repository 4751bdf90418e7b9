//! Quotas (`/api/organisations/{organisationId}/quotas`): limits on a metric (requests, tokens,
//! errors, cost, latency) per calendar window. Same owners, schedule, creation, update and windows
//! as [`super::budgets`] (one ledger rule over its kind, the `ledger_rule` module).

use chrono::{DateTime, Utc};
use odock_core::{BudgetPeriod, CacheKind, LedgerKind, OwnerType, QuotaMetric};
use odock_store::db::{from_ms, DbRow, Param};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::ledger_rule::{
    common_rule_fields, NewRule, RuleFields, RuleKind, RulePatch, WindowTotalsMut,
};
use super::schedule::{decode_owner, WindowRows};
use super::{nullable, parse_column, AdminError, Scoped};

/// A quota, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// The quota's id.
    pub id: String,
    /// The organisation the quota belongs to.
    pub organisation_id: String,
    /// A display name.
    pub name: String,
    /// Whose usage the quota limits: `ORG`, `TEAM`, `USER` or `APIKEY`.
    pub owner_type: OwnerType,
    /// The team, user or key id; `None` for `ORG`.
    #[schema(required = true)]
    pub owner_id: Option<String>,
    /// What the quota counts (`REQUESTS`, `TOKENS`, `COST` in nanos USD, `LATENCY_MS`, …).
    pub metric: QuotaMetric,
    /// The most of `metric` allowed per window, in the metric's unit.
    pub limit: i64,
    /// The length of a window: `DAILY`, `WEEKLY`, `MONTHLY` or `QUARTERLY`.
    pub period: BudgetPeriod,
    /// When the quota starts applying; its windows are computed from it in `timezone`.
    pub start_at: DateTime<Utc>,
    /// IANA zone the windows are computed in.
    pub timezone: String,
    /// When the quota stops applying; `null`: never.
    #[schema(required = true)]
    pub end_at: Option<DateTime<Utc>>,
    /// Whether the quota is enforced.
    pub active: bool,
    /// When the quota was created.
    pub created_at: DateTime<Utc>,
    /// When the quota was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../quotas`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewQuota {
    /// A display name (trimmed, 1–200 characters).
    pub name: String,
    /// Whose usage the quota limits: `ORG`, `TEAM`, `USER` or `APIKEY`.
    pub owner_type: OwnerType,
    /// The team, user or API key id; absent for ORG, required otherwise.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// What the quota counts; cannot be changed later.
    pub metric: QuotaMetric,
    /// The most of `metric` allowed per window, greater than 0.
    #[schema(minimum = 1)]
    pub limit: i64,
    /// The length of a window: `DAILY`, `WEEKLY`, `MONTHLY` or `QUARTERLY`.
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
    /// Whether the quota is enforced; default `true`.
    #[serde(default)]
    pub active: Option<bool>,
}

/// `PATCH .../quotas/{id}`: the owner and metric cannot change; `endAt: null` removes the end.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new limit per window, greater than 0.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub limit: Option<i64>,
    /// A new window length.
    #[serde(default)]
    pub period: Option<BudgetPeriod>,
    /// A new start (windows are computed from it).
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    /// IANA timezone; default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A new end (after `startAt`); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub end_at: Option<Option<DateTime<Utc>>>,
    /// Enables or disables the quota.
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
    /// When the window starts (inclusive).
    pub start_at: DateTime<Utc>,
    /// When the window ends (exclusive).
    pub end_at: DateTime<Utc>,
    /// How much of the metric was counted in the window.
    pub used: i64,
    /// How much is held by requests still in flight.
    pub reserved: i64,
}

const COLUMNS: &str =
    "id, organisation_id, name, owner_type, team_id, user_id, api_key_id, metric, limit_value, \
     period, start_at, timezone, end_at, active, created_at, updated_at";

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

/// Quotas as a ledger rule kind: an integer `limit` on a metric, which a quota adds (and never
/// changes).
pub(crate) struct Quotas;

impl RuleKind for Quotas {
    type Rule = Quota;
    type New = NewQuota;
    type Patch = QuotaPatch;
    type Window = QuotaWindow;
    type NewExtra = QuotaMetric;
    type PatchExtra = ();
    const ROWS: Scoped<Quota> = QUOTAS;
    const WINDOWS: WindowRows<QuotaWindow> = QUOTA_WINDOWS;
    const LIMIT: (&'static str, &'static str) = ("limit_value", "limit");
    const CACHE: CacheKind = CacheKind::Quota;
    const LEDGER: LedgerKind = LedgerKind::Quota;

    common_rule_fields!(limit, new: |new| new.metric, patch: |patch| ());

    fn window_totals(window: &mut QuotaWindow) -> WindowTotalsMut<'_> {
        let totals = (&mut window.used, &mut window.reserved);
        (window.start_at, window.end_at, totals)
    }

    fn new_columns(metric: QuotaMetric) -> Result<Vec<(&'static str, Param)>, AdminError> {
        Ok(vec![("metric", metric.as_str().into())])
    }

    fn apply_patch(_: &mut Quota, (): ()) -> Result<(), AdminError> {
        Ok(())
    }

    fn patched_columns(_: &Quota) -> Result<Vec<(&'static str, Param)>, AdminError> {
        Ok(Vec::new())
    }
}

const QUOTA_WINDOWS: WindowRows<QuotaWindow> = WindowRows {
    table: "quota_windows",
    rule_column: "quota_id",
    totals: ("used", "reserved"),
    make: |id, start_at, end_at, (used, reserved)| QuotaWindow {
        id,
        start_at,
        end_at,
        used,
        reserved,
    },
    start_of: |w| w.start_at,
};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::services::ledger_rule::{create, windows};
    use crate::services::test_support::{org, pool};
    use odock_store::db::{now_ms, to_ms};

    pub(crate) fn new(limit: i64) -> NewQuota {
        NewQuota {
            name: "rpm".into(),
            owner_type: OwnerType::Org,
            owner_id: None,
            metric: QuotaMetric::Requests,
            limit,
            period: BudgetPeriod::Daily,
            start_at: None,
            timezone: Some("Europe/Paris".into()),
            end_at: None,
            active: None,
        }
    }

    #[tokio::test]
    async fn windows_prefer_the_ledger_row() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let quota = create::<Quotas>(&pool, &a, new(0)).await;
        assert!(matches!(quota, Err(AdminError::Invalid { field: Some(f), .. }) if f == "limit"));
        let quota = create::<Quotas>(&pool, &a, new(100)).await.unwrap();
        let computed = windows::<Quotas>(&pool, &a, &quota.id).await.unwrap();
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
        let stored = windows::<Quotas>(&pool, &a, &quota.id).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].id.as_deref(), Some("w1"));
        assert_eq!((stored[0].used, stored[0].reserved), (7, 2));
    }
}
