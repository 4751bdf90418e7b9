//! Which budgets and quotas apply to a principal, and their current window.
//!
//! ORG rules apply to all of the organisation's traffic; TEAM rules only to TEAM keys of that team;
//! USER rules only to USER keys of that user; APIKEY rules to that key. Inactive rules, and rules
//! whose schedule has no window now (before `startAt`, from `endAt` on), do not apply.

use crate::db::{Db, DbConnection};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use odock_core::windows::{Schedule, Window};
use odock_core::{ApiKeyType, BudgetPeriod, Principal, QuotaMetric};

use crate::db::{from_ms, to_ms};

/// One matching rule and the window it is in now.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub id: String,
    pub name: String,
    pub limit: i64,
    /// `None` for budgets.
    pub metric: Option<QuotaMetric>,
    pub window: Window,
}

/// `(table, limit column, metric column)`.
pub(crate) const BUDGET_RULES: (&str, &str, &str) = ("budgets", "amount_nanos", "NULL");
pub(crate) const QUOTA_RULES: (&str, &str, &str) = ("quotas", "limit_value", "metric");

type RuleRow = (
    String,
    String,
    i64,
    Option<String>,
    String,
    i64,
    String,
    Option<i64>,
);

/// The active rules of `table` matching `principal` that have a window at `now`, ordered by id.
pub(crate) async fn matching(
    conn: &mut DbConnection,
    (table, limit, metric): (&str, &str, &str),
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<Vec<Rule>, sqlx::Error> {
    let sql = format!(
        "SELECT id, name, {limit}, {metric}, period, start_at, timezone, end_at FROM {table} \
         WHERE organisation_id = $1 AND active = 1 AND start_at <= $2 \
         AND (end_at IS NULL OR end_at > $3) \
         AND (owner_type = 'ORG' \
              OR (owner_type = 'TEAM' AND team_id = $4) \
              OR (owner_type = 'USER' AND user_id = $5) \
              OR (owner_type = 'APIKEY' AND api_key_id = $6)) \
         ORDER BY id"
    );
    // A NULL bind never equals anything, so a TEAM rule cannot match a USER key and vice versa.
    let team = match principal.key_type {
        ApiKeyType::Team => principal.team_id.as_ref().map(|id| id.as_str()),
        ApiKeyType::Organisation | ApiKeyType::User => None,
    };
    let user = match principal.key_type {
        ApiKeyType::User => principal.user_id.as_ref().map(|id| id.as_str()),
        ApiKeyType::Organisation | ApiKeyType::Team => None,
    };
    let now_ms = to_ms(now);
    let rows: Vec<RuleRow> = sqlx::query_as(&sql)
        .bind(principal.organisation_id.as_str())
        .bind(now_ms)
        .bind(now_ms)
        .bind(team)
        .bind(user)
        .bind(principal.api_key_id.as_str())
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().filter_map(|row| rule(row, now)).collect())
}

fn rule(
    (id, name, limit, metric, period, start_at, timezone, end_at): RuleRow,
    now: DateTime<Utc>,
) -> Option<Rule> {
    let period: BudgetPeriod = match period.parse() {
        Ok(period) => period,
        Err(error) => {
            tracing::warn!(rule = %id, %error, "skipping budget/quota rule with an unknown period");
            return None;
        }
    };
    let metric = match metric.map(|m| m.parse::<QuotaMetric>()).transpose() {
        Ok(metric) => metric,
        Err(error) => {
            tracing::warn!(rule = %id, %error, "skipping quota with an unknown metric");
            return None;
        }
    };
    let schedule = Schedule {
        start_at: from_ms(start_at),
        timezone: parse_timezone(&id, &timezone),
        period,
        end_at: end_at.map(from_ms),
    };
    let window = schedule.window_at(now)?;
    Some(Rule {
        id,
        name,
        limit,
        metric,
        window,
    })
}

/// An IANA zone name; an unknown name falls back to UTC (with a warning) rather than disabling the
/// rule.
fn parse_timezone(rule: &str, name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| {
        tracing::warn!(rule, timezone = name, "unknown timezone; using UTC");
        Tz::UTC
    })
}

/// Which organisations have any active rule in a table, cached so that requests of organisations
/// without budgets or quotas never touch the database. Entries expire after `ttl` and are evicted at
/// once by [`Governed::forget`] (admin writes, cache invalidation).
pub(super) struct Governed {
    table: &'static str,
    cache: moka::sync::Cache<String, bool>,
}

impl Governed {
    pub(super) fn new(table: &'static str, ttl: std::time::Duration) -> Self {
        Self {
            table,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Whether `organisation` has an active rule; answered from the cache when warm.
    pub(super) async fn has_rules(
        &self,
        pool: &Db,
        organisation: &str,
    ) -> Result<bool, sqlx::Error> {
        if let Some(governed) = self.cache.get(organisation) {
            return Ok(governed);
        }
        let sql = format!(
            "SELECT CASE WHEN EXISTS(SELECT 1 FROM {} WHERE organisation_id = $1 AND active = 1) \
             THEN 1 ELSE 0 END",
            self.table
        );
        let governed = sqlx::query_scalar::<_, i64>(&sql)
            .bind(organisation)
            .fetch_one(pool)
            .await?
            != 0;
        self.cache.insert(organisation.to_owned(), governed);
        Ok(governed)
    }

    pub(super) fn forget_all(&self) {
        self.cache.invalidate_all();
    }
}
