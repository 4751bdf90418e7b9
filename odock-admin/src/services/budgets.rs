//! Budgets (`/api/organisations/{organisationId}/budgets`): spending limits in nanos per calendar
//! window (DECISIONS.md "Budgets and quotas"), and their windows.
//!
//! Owners, schedules, creating, updating and window listing are shared with [`super::quotas`]:
//! both are a ledger rule kind (the `ledger_rule` and `schedule` modules); this module says what a
//! budget adds.
//!
//! Window rows are created lazily by the ledger; `windows` adds the window running now, computed
//! from the budget's schedule, with zero usage when the ledger has not created its row yet.

use chrono::{DateTime, Utc};
use odock_core::{BudgetPeriod, CacheKind, LedgerKind, OwnerType};
use odock_store::db::{from_ms, DbRow, Param};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::ledger_rule::{
    common_rule_fields, NewRule, RuleFields, RuleKind, RulePatch, WindowTotalsMut,
};
pub use super::schedule::OwnerFilter;
use super::schedule::{decode_owner, WindowRows};
use super::{from_json_text, nullable, parse_column, to_json_text, AdminError, Scoped};

/// The currency a budget is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    /// US dollars (the default).
    #[default]
    Usd,
    /// Euros.
    Eur,
    /// Pounds sterling.
    Lbs,
}

impl Currency {
    /// Every currency, in declaration order.
    pub const ALL: &'static [Currency] = &[Currency::Usd, Currency::Eur, Currency::Lbs];

    /// The stored and wire name: `USD`, `EUR` or `LBS`.
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
    /// The budget's id.
    pub id: String,
    /// The organisation the budget belongs to.
    pub organisation_id: String,
    /// A display name.
    pub name: String,
    /// Whose spending the budget limits: `ORG`, `TEAM`, `USER` or `APIKEY`.
    pub owner_type: OwnerType,
    /// The team, user or key id; `None` for `ORG`.
    #[schema(required = true)]
    pub owner_id: Option<String>,
    /// The spending limit per window, in nanos (billionths); compared with costs in nanos USD.
    pub amount_nanos: i64,
    /// The currency the amount is written in (a label: costs are counted in nanos USD).
    pub currency: Currency,
    /// The length of a window: `DAILY`, `WEEKLY`, `MONTHLY` or `QUARTERLY`.
    pub period: BudgetPeriod,
    /// When the budget starts applying; its windows are computed from it in `timezone`.
    pub start_at: DateTime<Utc>,
    /// IANA zone the windows are computed in.
    pub timezone: String,
    /// When the budget stops applying; `null`: never.
    #[schema(required = true)]
    pub end_at: Option<DateTime<Utc>>,
    /// Percentages of the amount whose crossing is reported (never blocking), ascending.
    pub thresholds: Vec<u32>,
    /// Stored, not yet applied.
    pub rollover: bool,
    /// Whether the budget is enforced.
    pub active: bool,
    /// When the budget was created.
    pub created_at: DateTime<Utc>,
    /// When the budget was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../budgets`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBudget {
    /// A display name (trimmed, 1–200 characters).
    pub name: String,
    /// Whose spending the budget limits: `ORG`, `TEAM`, `USER` or `APIKEY`.
    pub owner_type: OwnerType,
    /// The team, user or API key id; absent for ORG, required otherwise.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// The spending limit per window, in nanos of the currency; greater than 0.
    #[schema(minimum = 1)]
    pub amount_nanos: i64,
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
    /// Percentages of the amount whose crossing is reported, each one of 50, 80, 90, 100;
    /// default none.
    #[serde(default)]
    pub thresholds: Option<Vec<u32>>,
    /// Stored, not yet applied.
    #[serde(default)]
    pub rollover: Option<bool>,
    /// Whether the budget is enforced; default `true`.
    #[serde(default)]
    pub active: Option<bool>,
    /// The currency the amount is written in; default `USD`.
    #[serde(default)]
    pub currency: Option<Currency>,
}

/// `PATCH .../budgets/{id}`: the owner cannot change (create another budget); `endAt: null` removes
/// the end.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new spending limit per window, greater than 0.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub amount_nanos: Option<i64>,
    /// A new currency label.
    #[serde(default)]
    pub currency: Option<Currency>,
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
    /// New threshold percentages (each one of 50, 80, 90, 100), replacing the old ones.
    #[serde(default)]
    pub thresholds: Option<Vec<u32>>,
    /// Sets the rollover flag (stored, not yet applied).
    #[serde(default)]
    pub rollover: Option<bool>,
    /// Enables or disables the budget.
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
    /// When the window starts (inclusive).
    pub start_at: DateTime<Utc>,
    /// When the window ends (exclusive).
    pub end_at: DateTime<Utc>,
    /// Spend settled in the window, in nanos.
    pub used_nanos: i64,
    /// Spend held by requests still in flight, in nanos.
    pub reserved_nanos: i64,
}

const COLUMNS: &str = "id, organisation_id, name, owner_type, team_id, user_id, api_key_id, amount_nanos, \
     currency, period, start_at, timezone, end_at, thresholds, rollover, active, created_at, updated_at";

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

/// Budgets as a ledger rule kind: a limit in nanos (`amountNanos`), with a currency, thresholds and
/// rollover of their own.
pub(crate) struct Budgets;

/// A budget's own fields of a request: currency, thresholds, rollover.
type Own = (Option<Currency>, Option<Vec<u32>>, Option<bool>);

impl RuleKind for Budgets {
    type Rule = Budget;
    type New = NewBudget;
    type Patch = BudgetPatch;
    type Window = BudgetWindow;
    type NewExtra = Own;
    type PatchExtra = Own;
    const ROWS: Scoped<Budget> = BUDGETS;
    const WINDOWS: WindowRows<BudgetWindow> = BUDGET_WINDOWS;
    const LIMIT: (&'static str, &'static str) = ("amount_nanos", "amountNanos");
    const CACHE: CacheKind = CacheKind::Budget;
    const LEDGER: LedgerKind = LedgerKind::Budget;

    common_rule_fields!(
        amount_nanos,
        new: |new| (new.currency, new.thresholds, new.rollover),
        patch: |patch| (patch.currency, patch.thresholds, patch.rollover),
    );

    fn window_totals(window: &mut BudgetWindow) -> WindowTotalsMut<'_> {
        let totals = (&mut window.used_nanos, &mut window.reserved_nanos);
        (window.start_at, window.end_at, totals)
    }

    fn new_columns(
        (currency, thresholds, rollover): Own,
    ) -> Result<Vec<(&'static str, Param)>, AdminError> {
        let thresholds = check_thresholds(thresholds)?;
        Ok(vec![
            ("currency", currency.unwrap_or_default().as_str().into()),
            ("thresholds", to_json_text(&thresholds)?.into()),
            ("rollover", rollover.unwrap_or(false).into()),
        ])
    }

    fn apply_patch(
        budget: &mut Budget,
        (currency, thresholds, rollover): Own,
    ) -> Result<(), AdminError> {
        if let Some(currency) = currency {
            budget.currency = currency;
        }
        if let Some(thresholds) = thresholds {
            budget.thresholds = check_thresholds(Some(thresholds))?;
        }
        if let Some(rollover) = rollover {
            budget.rollover = rollover;
        }
        Ok(())
    }

    fn patched_columns(budget: &Budget) -> Result<Vec<(&'static str, Param)>, AdminError> {
        Ok(vec![
            ("currency", budget.currency.as_str().into()),
            ("thresholds", to_json_text(&budget.thresholds)?.into()),
            ("rollover", budget.rollover.into()),
        ])
    }
}

const BUDGET_WINDOWS: WindowRows<BudgetWindow> = WindowRows {
    table: "budget_windows",
    rule_column: "budget_id",
    totals: ("used_nanos", "reserved_nanos"),
    make: |id, start_at, end_at, (used_nanos, reserved_nanos)| BudgetWindow {
        id,
        start_at,
        end_at,
        used_nanos,
        reserved_nanos,
    },
    start_of: |w| w.start_at,
};

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::services::ledger_rule::{self, list};
    use crate::services::test_support::{org, pool};
    use crate::services::PageRequest;
    use odock_store::db::Db;

    async fn create(pool: &Db, org: &str, input: NewBudget) -> Result<Budget, AdminError> {
        ledger_rule::create::<Budgets>(pool, org, input).await
    }

    async fn windows(pool: &Db, org: &str, id: &str) -> Result<Vec<BudgetWindow>, AdminError> {
        ledger_rule::windows::<Budgets>(pool, org, id).await
    }

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
            self::windows(&pool, &b, &budget.id).await,
            Err(AdminError::NotFound("budget"))
        ));

        let only_org = OwnerFilter {
            owner_type: Some(OwnerType::Org),
            active: Some(true),
        };
        assert_eq!(
            list::<Budgets>(&pool, Some(&a), &only_org, &PageRequest::default())
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
        assert!(
            list::<Budgets>(&pool, Some(&a), &inactive, &PageRequest::default())
                .await
                .unwrap()
                .data
                .is_empty()
        );
    }
}
