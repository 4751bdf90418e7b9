//! Budgets (`/api/organisations/{organisationId}/budgets`): spending limits in nanos per calendar
//! window (DECISIONS.md "Budgets and quotas"), and their windows.
//!
//! Owners, schedules and window listing are shared with [`super::quotas`] (see the `schedule` module).
//!
//! Window rows are created lazily by the ledger; [`windows`] adds the window running now, computed
//! from the budget's schedule, with zero usage when the ledger has not created its row yet.

use chrono::{DateTime, Utc};
use odock_core::{new_object_id, BudgetPeriod, OwnerType};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::organisations::ensure_exists;
pub use super::schedule::OwnerFilter;
use super::schedule::{
    self, check_owner, decode_owner, filter_conditions, new_span, owner_columns, patch_span,
    schedule, Span, WindowRows,
};
use super::{
    from_json_text, nullable, parse_column, required_text, to_json_text, AdminError, Page,
    PageRequest, Scoped,
};
use odock_store::db::{from_ms, now_ms, to_ms};

/// The currency a budget is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    #[default]
    Usd,
    Eur,
    Lbs,
}

impl Currency {
    pub const ALL: &'static [Currency] = &[Currency::Usd, Currency::Eur, Currency::Lbs];

    pub const fn as_str(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Lbs => "LBS",
        }
    }
}

/// The stored currency was not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown currency `{0}`")]
pub struct UnknownCurrency(String);

impl std::str::FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCurrency(s.to_owned()))
    }
}

/// The threshold percentages a budget may report crossing.
pub const THRESHOLDS: &[u32] = &[50, 80, 90, 100];

/// A budget, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub id: String,
    pub organisation_id: String,
    pub name: String,
    pub owner_type: OwnerType,
    /// The team, user or key id; `None` for `ORG`.
    #[schema(required = true)]
    pub owner_id: Option<String>,
    pub amount_nanos: i64,
    pub currency: Currency,
    pub period: BudgetPeriod,
    pub start_at: DateTime<Utc>,
    /// IANA zone the windows are computed in.
    pub timezone: String,
    #[schema(required = true)]
    pub end_at: Option<DateTime<Utc>>,
    /// Percentages of the amount whose crossing is reported (never blocking), ascending.
    pub thresholds: Vec<u32>,
    /// Stored, not yet applied.
    pub rollover: bool,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST .../budgets`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBudget {
    pub name: String,
    pub owner_type: OwnerType,
    /// The team, user or API key id; absent for ORG, required otherwise.
    #[serde(default)]
    pub owner_id: Option<String>,
    #[schema(minimum = 1)]
    pub amount_nanos: i64,
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
    pub thresholds: Option<Vec<u32>>,
    /// Stored, not yet applied.
    #[serde(default)]
    pub rollover: Option<bool>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub currency: Option<Currency>,
}

/// `PATCH .../budgets/{id}`: the owner cannot change (create another budget); `endAt: null` removes
/// the end.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub amount_nanos: Option<i64>,
    #[serde(default)]
    pub currency: Option<Currency>,
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
    pub thresholds: Option<Vec<u32>>,
    #[serde(default)]
    pub rollover: Option<bool>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// One window of a budget, as returned by `GET .../budgets/{id}/windows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetWindow {
    /// `None` for the current window while the ledger has not created its row.
    #[schema(required = true)]
    pub id: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub used_nanos: i64,
    pub reserved_nanos: i64,
}

const COLUMNS: &str = "id, organisation_id, name, owner_type, team_id, user_id, api_key_id, amount_nanos, \
     currency, period, start_at, timezone, end_at, thresholds, rollover, active, created_at, updated_at";

fn check_amount(amount_nanos: i64) -> Result<i64, AdminError> {
    if amount_nanos > 0 {
        Ok(amount_nanos)
    } else {
        Err(AdminError::field(
            "amountNanos",
            "amountNanos must be greater than 0",
        ))
    }
}

fn check_thresholds(thresholds: Option<Vec<u32>>) -> Result<Vec<u32>, AdminError> {
    let mut thresholds = thresholds.unwrap_or_default();
    if let Some(bad) = thresholds.iter().find(|t| !THRESHOLDS.contains(t)) {
        return Err(AdminError::field(
            "thresholds",
            format!("threshold {bad} is not one of 50, 80, 90, 100"),
        ));
    }
    thresholds.sort_unstable();
    thresholds.dedup();
    Ok(thresholds)
}

const BUDGETS: Scoped<Budget> = Scoped {
    table: "budgets",
    columns: COLUMNS,
    what: "budget",
    decode,
    id_of: |row| &row.id,
};

fn decode(row: &DbRow) -> Result<Budget, sqlx::Error> {
    let (owner_type, owner_id) = decode_owner(row)?;
    Ok(Budget {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        owner_type,
        owner_id,
        amount_nanos: row.try_get("amount_nanos")?,
        currency: parse_column(row.try_get::<&str, _>("currency")?)?,
        period: parse_column(row.try_get::<&str, _>("period")?)?,
        start_at: from_ms(row.try_get("start_at")?),
        timezone: row.try_get("timezone")?,
        end_at: row.try_get::<Option<i64>, _>("end_at")?.map(from_ms),
        thresholds: from_json_text(row.try_get("thresholds")?)?,
        rollover: row.try_get::<i64, _>("rollover")? != 0,
        active: row.try_get::<i64, _>("active")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

pub async fn create(
    pool: &Db,
    organisation_id: &str,
    input: NewBudget,
) -> Result<Budget, AdminError> {
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let owner_id = check_owner(pool, organisation_id, input.owner_type, input.owner_id).await?;
    let amount_nanos = check_amount(input.amount_nanos)?;
    let Span {
        start_at,
        timezone,
        end_at,
    } = new_span(input.start_at, input.timezone.as_deref(), input.end_at)?;
    let thresholds = check_thresholds(input.thresholds)?;
    let (team_id, user_id, api_key_id) = owner_columns(input.owner_type, owner_id.as_deref());
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO budgets (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, amount_nanos, \
         currency, period, start_at, timezone, end_at, thresholds, rollover, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(input.owner_type.as_str())
    .bind(team_id)
    .bind(user_id)
    .bind(api_key_id)
    .bind(amount_nanos)
    .bind(input.currency.unwrap_or_default().as_str())
    .bind(input.period.as_str())
    .bind(to_ms(start_at))
    .bind(&timezone)
    .bind(end_at.map(to_ms))
    .bind(to_json_text(&thresholds)?)
    .bind(i64::from(input.rollover.unwrap_or(false)))
    .bind(i64::from(input.active.unwrap_or(true)))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    get(pool, organisation_id, &id).await
}

pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<Budget, AdminError> {
    BUDGETS.get(pool, organisation_id, id).await
}

/// The organisation's budgets; with `organisation_id = None`, every organisation's (SUPER_ADMIN).
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    filter: &OwnerFilter,
    page: &PageRequest,
) -> Result<Page<Budget>, AdminError> {
    BUDGETS
        .list(pool, organisation_id, &filter_conditions(filter), page)
        .await
}

pub async fn update(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: BudgetPatch,
) -> Result<Budget, AdminError> {
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(amount_nanos) = patch.amount_nanos {
        current.amount_nanos = check_amount(amount_nanos)?;
    }
    if let Some(currency) = patch.currency {
        current.currency = currency;
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
    if let Some(thresholds) = patch.thresholds {
        current.thresholds = check_thresholds(Some(thresholds))?;
    }
    if let Some(rollover) = patch.rollover {
        current.rollover = rollover;
    }
    if let Some(active) = patch.active {
        current.active = active;
    }
    let result = sqlx::query(
        "UPDATE budgets SET name = $1, amount_nanos = $2, currency = $3, period = $4, start_at = $5, timezone = $6, \
         end_at = $7, thresholds = $8, rollover = $9, active = $10, updated_at = $11 WHERE id = $12 AND organisation_id = $13",
    )
    .bind(&current.name)
    .bind(current.amount_nanos)
    .bind(current.currency.as_str())
    .bind(current.period.as_str())
    .bind(to_ms(current.start_at))
    .bind(&current.timezone)
    .bind(current.end_at.map(to_ms))
    .bind(to_json_text(&current.thresholds)?)
    .bind(i64::from(current.rollover))
    .bind(i64::from(current.active))
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    BUDGETS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Deletes the budget with its windows (cascade).
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    BUDGETS.delete(pool, organisation_id, id).await
}

/// The budget's windows, current first (the current one with zero usage when it has no row yet).
pub async fn windows(
    pool: &Db,
    organisation_id: &str,
    id: &str,
) -> Result<Vec<BudgetWindow>, AdminError> {
    let budget = get(pool, organisation_id, id).await?;
    let schedule = schedule(
        budget.start_at,
        &budget.timezone,
        budget.period,
        budget.end_at,
    )?;
    schedule::windows(pool, id, schedule, &BUDGET_WINDOWS).await
}

const BUDGET_WINDOWS: WindowRows<BudgetWindow> = WindowRows {
    select: "SELECT id, start_at, end_at, used_nanos, reserved_nanos FROM budget_windows \
             WHERE budget_id = $1 ORDER BY start_at DESC LIMIT $2",
    decode: |row| {
        Ok(BudgetWindow {
            id: Some(row.try_get("id")?),
            start_at: from_ms(row.try_get("start_at")?),
            end_at: from_ms(row.try_get("end_at")?),
            used_nanos: row.try_get("used_nanos")?,
            reserved_nanos: row.try_get("reserved_nanos")?,
        })
    },
    start_of: |w| w.start_at,
    empty: |start_at, end_at| BudgetWindow {
        id: None,
        start_at,
        end_at,
        used_nanos: 0,
        reserved_nanos: 0,
    },
};

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::services::test_support::{org, pool};

    fn new(owner_type: OwnerType, owner_id: Option<&str>) -> NewBudget {
        NewBudget {
            name: "monthly".into(),
            owner_type,
            owner_id: owner_id.map(Into::into),
            amount_nanos: 1_000_000_000,
            period: BudgetPeriod::Monthly,
            start_at: None,
            timezone: None,
            end_at: None,
            thresholds: None,
            rollover: None,
            active: None,
            currency: None,
        }
    }

    fn field_of(result: Result<Budget, AdminError>) -> String {
        match result {
            Err(AdminError::Invalid { field: Some(f), .. }) => f,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn validation_defaults_and_windows() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let budget = create(&pool, &a, new(OwnerType::Org, None)).await.unwrap();
        assert_eq!(budget.timezone, "UTC");
        assert_eq!(budget.currency, Currency::Usd);
        assert!(budget.active && !budget.rollover);

        assert_eq!(
            field_of(create(&pool, &a, new(OwnerType::Org, Some("x"))).await),
            "ownerId"
        );
        assert_eq!(
            field_of(create(&pool, &a, new(OwnerType::Team, None)).await),
            "ownerId"
        );
        assert_eq!(
            field_of(create(&pool, &a, new(OwnerType::User, Some("nobody"))).await),
            "ownerId"
        );
        let mut bad = new(OwnerType::Org, None);
        bad.timezone = Some("Mars/Olympus".into());
        assert_eq!(field_of(create(&pool, &a, bad).await), "timezone");
        let mut bad = new(OwnerType::Org, None);
        bad.thresholds = Some(vec![50, 75]);
        assert_eq!(field_of(create(&pool, &a, bad).await), "thresholds");
        let mut bad = new(OwnerType::Org, None);
        bad.amount_nanos = 0;
        assert_eq!(field_of(create(&pool, &a, bad).await), "amountNanos");
        let mut bad = new(OwnerType::Org, None);
        bad.end_at = Some(Utc::now() - Duration::days(1));
        assert_eq!(field_of(create(&pool, &a, bad).await), "endAt");

        let windows = windows(&pool, &a, &budget.id).await.unwrap();
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].id, None);
        assert_eq!(windows[0].start_at, budget.start_at);
        assert!(matches!(
            super::windows(&pool, &b, &budget.id).await,
            Err(AdminError::NotFound("budget"))
        ));

        let only_org = OwnerFilter {
            owner_type: Some(OwnerType::Org),
            active: Some(true),
        };
        assert_eq!(
            list(&pool, Some(&a), &only_org, &PageRequest::default())
                .await
                .unwrap()
                .data
                .len(),
            1
        );
        let inactive = OwnerFilter {
            owner_type: None,
            active: Some(false),
        };
        assert!(list(&pool, Some(&a), &inactive, &PageRequest::default())
            .await
            .unwrap()
            .data
            .is_empty());
    }
}
