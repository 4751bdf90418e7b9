//! [`SqlRuleSource`]: an organisation's active budgets and quotas, as [`LedgerRule`]s.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use odock_core::windows::Schedule;
use odock_core::{
    ApiKeyId, BudgetPeriod, LedgerError, LedgerRule, OrganisationId, QuotaMetric, RuleKind,
    RuleOwner, RuleSet, RuleSource, StoredWindow, TeamId, UserId,
};
use sqlx::Row;

use crate::db::{from_ms, to_ms, Db, DbRow};

/// Reads rules and stored window totals from the database.
#[derive(Debug, Clone)]
pub struct SqlRuleSource {
    pool: Db,
}

impl SqlRuleSource {
    /// A rule source reading from `pool`.
    pub fn new(pool: Db) -> Self {
        Self { pool }
    }

    async fn read(&self, organisation: &str, now: i64) -> Result<RuleSet, sqlx::Error> {
        let budgets = sqlx::query(
            "SELECT id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
             amount_nanos AS limit_value, NULL AS metric, period, start_at, timezone, end_at, thresholds \
             FROM budgets WHERE organisation_id = $1 AND active = 1 ORDER BY id",
        )
        .bind(organisation)
        .fetch_all(&self.pool)
        .await?;
        let quotas = sqlx::query(
            "SELECT id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
             limit_value, metric, period, start_at, timezone, end_at, NULL AS thresholds \
             FROM quotas WHERE organisation_id = $1 AND active = 1 ORDER BY id",
        )
        .bind(organisation)
        .fetch_all(&self.pool)
        .await?;
        let windows = sqlx::query(
            "SELECT w.budget_id AS rule_id, w.start_at, w.end_at, w.used_nanos AS used \
             FROM budget_windows w JOIN budgets b ON b.id = w.budget_id \
             WHERE b.organisation_id = $1 AND w.end_at > $2 \
             UNION ALL \
             SELECT w.quota_id AS rule_id, w.start_at, w.end_at, w.used \
             FROM quota_windows w JOIN quotas q ON q.id = w.quota_id \
             WHERE q.organisation_id = $3 AND w.end_at > $4",
        )
        .bind(organisation)
        .bind(now)
        .bind(organisation)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut rules = Vec::with_capacity(budgets.len() + quotas.len());
        for row in budgets.iter().chain(&quotas) {
            if let Some(rule) = rule(row)? {
                rules.push(rule);
            }
        }
        let windows = windows
            .iter()
            .map(|row| {
                Ok(StoredWindow {
                    rule_id: Arc::from(row.try_get::<String, _>("rule_id")?),
                    start: from_ms(row.try_get("start_at")?),
                    end: from_ms(row.try_get("end_at")?),
                    used: row.try_get("used")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(RuleSet { rules, windows })
    }
}

#[async_trait]
impl RuleSource for SqlRuleSource {
    async fn load(
        &self,
        organisation: &OrganisationId,
        now: DateTime<Utc>,
    ) -> Result<RuleSet, LedgerError> {
        self.read(organisation.as_str(), to_ms(now))
            .await
            .map_err(|error| LedgerError(error.to_string()))
    }
}

/// One `budgets` or `quotas` row as a rule; `None` (with a warning) when a stored value cannot be
/// understood, so one bad row never stops the organisation's other rules.
fn rule(row: &DbRow) -> Result<Option<LedgerRule>, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let text = |column: &str| row.try_get::<Option<String>, _>(column);
    let kind = match text("metric")? {
        None => RuleKind::Budget,
        Some(metric) => match metric.parse::<QuotaMetric>() {
            Ok(metric) => RuleKind::Quota(metric),
            Err(error) => return Ok(skip(&id, "metric", &error.to_string())),
        },
    };
    let owner = match row.try_get::<String, _>("owner_type")?.as_str() {
        "ORG" => Some(RuleOwner::Organisation),
        "TEAM" => text("team_id")?.map(|id| RuleOwner::Team(TeamId::new(id))),
        "USER" => text("user_id")?.map(|id| RuleOwner::User(UserId::new(id))),
        "APIKEY" => text("api_key_id")?.map(|id| RuleOwner::ApiKey(ApiKeyId::new(id))),
        _ => None,
    };
    let Some(owner) = owner else {
        return Ok(skip(&id, "owner", "unknown owner type or missing owner id"));
    };
    let period: BudgetPeriod = match row.try_get::<String, _>("period")?.parse() {
        Ok(period) => period,
        Err(error) => return Ok(skip(&id, "period", &error.to_string())),
    };
    let timezone: String = row.try_get("timezone")?;
    let timezone = timezone.parse::<Tz>().unwrap_or_else(|_| {
        tracing::warn!(rule = %id, %timezone, "unknown timezone; using UTC");
        Tz::UTC
    });
    let thresholds = match text("thresholds")? {
        None => Vec::new(),
        Some(json) => serde_json::from_str(&json).unwrap_or_else(|error| {
            // Written only by the admin services; a row that holds something else alerts on no
            // threshold rather than failing admission.
            tracing::warn!(rule = %id, %error, "unreadable thresholds; none will alert");
            Vec::new()
        }),
    };
    Ok(Some(LedgerRule {
        id: Arc::from(id),
        organisation_id: OrganisationId::new(row.try_get::<String, _>("organisation_id")?),
        name: row.try_get("name")?,
        kind,
        owner,
        limit: row.try_get("limit_value")?,
        schedule: Schedule {
            start_at: from_ms(row.try_get("start_at")?),
            timezone,
            period,
            end_at: row.try_get::<Option<i64>, _>("end_at")?.map(from_ms),
        },
        thresholds,
    }))
}

fn skip(rule: &str, what: &str, error: &str) -> Option<LedgerRule> {
    tracing::warn!(
        rule,
        what,
        error,
        "skipping a budget/quota that cannot be read"
    );
    None
}
