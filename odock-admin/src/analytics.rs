//! Usage analytics over `usage_records`, computed in SQL: totals and groups (by day, model, API key,
//! team, user, provider or MCP server) of requests, successes, errors, tokens, cost (LLM and MCP)
//! and latency percentiles.
//!
//! Every statement runs unchanged on SQLite and PostgreSQL: sums are `CAST(SUM(..) AS BIGINT)` (a
//! PostgreSQL `SUM(bigint)` is `numeric`). Latency percentiles are exact nearest-rank values (the
//! latency at rank `ceil(p · n / 100)`), read from a per-latency histogram that SQL counts — one
//! `GROUP BY` instead of sorting every record with window functions. The
//! `usage_records(organisation_id, created_at)` index bounds each scan to the organisation's
//! period; migration 0004 adds the team and user variants the filters use.
//!
//! What a caller may see is a parameter ([`UsageScope::visible`]), so the same queries serve an
//! organisation admin (everything), a team manager (their teams) and a user (their own traffic).
//!
//! ```no_run
//! # async fn demo(pool: odock_store::db::Db) -> Result<(), sqlx::Error> {
//! use odock_admin::analytics::{summary, GroupBy, UsageScope};
//!
//! let scope = UsageScope::organisation("corg1");
//! let report = summary(&pool, &scope, Some(GroupBy::Day)).await?;
//! println!("{} requests, p95 {:?} ms", report.totals.requests, report.totals.latency_p95_ms);
//! # Ok(()) }
//! ```

pub mod synthetic;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use odock_store::db::{from_ms, Db, DbRow, SqlBuilder};

/// The `provider` of usage records written for MCP traffic; every other provider is LLM traffic.
pub const MCP_PROVIDER: &str = "mcp";

const DAY_MS: i64 = 86_400_000;

/// Which records a report covers. Bounds and lists that are empty do not narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageScope {
    pub organisation_id: String,
    /// Inclusive lower bound on `createdAt`, unix ms.
    pub from_ms: Option<i64>,
    /// Exclusive upper bound on `createdAt`, unix ms.
    pub to_ms: Option<i64>,
    /// Records of these teams or of these keys (the union, like the invoice page's multi-select);
    /// both empty: the whole organisation.
    pub team_ids: Vec<String>,
    pub api_key_ids: Vec<String>,
    pub traffic: Traffic,
    /// What the caller may see; `None` is everything in the organisation.
    pub visible: Option<Visibility>,
}

impl UsageScope {
    /// All of `organisation_id`'s records.
    pub fn organisation(organisation_id: impl Into<String>) -> Self {
        Self {
            organisation_id: organisation_id.into(),
            ..Self::default()
        }
    }
}

/// The part of an organisation's traffic a caller may see: records of these teams, plus records
/// attributed to this user. Empty on both counts sees nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    pub team_ids: Vec<String>,
    pub user_id: Option<String>,
}

/// LLM calls, MCP calls, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Traffic {
    #[default]
    All,
    Llm,
    Mcp,
}

/// How [`summary`] groups records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupBy {
    /// UTC calendar day; the group key is `YYYY-MM-DD`.
    Day,
    Model,
    #[serde(alias = "key")]
    ApiKey,
    Team,
    User,
    Provider,
    McpServer,
}

impl GroupBy {
    pub const ALL: [GroupBy; 7] = [
        GroupBy::Day,
        GroupBy::Model,
        GroupBy::ApiKey,
        GroupBy::Team,
        GroupBy::User,
        GroupBy::Provider,
        GroupBy::McpServer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Model => "model",
            GroupBy::ApiKey => "apiKey",
            GroupBy::Team => "team",
            GroupBy::User => "user",
            GroupBy::Provider => "provider",
            GroupBy::McpServer => "mcpServer",
        }
    }

    /// The group key, as TEXT so every grouping decodes alike (NULL: no team, no model, …).
    fn key_sql(self) -> &'static str {
        match self {
            GroupBy::Day => "CAST(CAST(r.created_at / 86400000 AS BIGINT) AS TEXT)",
            GroupBy::Model => "r.model_id",
            GroupBy::ApiKey => "r.api_key_id",
            GroupBy::Team => "r.team_id",
            GroupBy::User => "r.user_id",
            GroupBy::Provider => "r.provider",
            // MCP records carry their server in `mcp_usage_records`; looked up for those only.
            GroupBy::McpServer => {
                "CASE WHEN r.provider = 'mcp' THEN (SELECT MAX(m.mcp_server_id) \
                 FROM mcp_usage_records m WHERE m.usage_record_id = r.id) END"
            }
        }
    }

    /// A name for the key, read in the same statement: the recorded name, or the object's.
    fn label_sql(self) -> (&'static str, &'static str) {
        match self {
            GroupBy::Day | GroupBy::Provider => ("", "NULL"),
            GroupBy::Model => ("", "a.recorded_name"),
            GroupBy::ApiKey => (" LEFT JOIN api_keys o ON o.id = a.g", "o.name"),
            GroupBy::Team => (" LEFT JOIN teams o ON o.id = a.g", "o.name"),
            GroupBy::User => (
                " LEFT JOIN users o ON o.id = a.g",
                "COALESCE(o.name, o.email)",
            ),
            GroupBy::McpServer => (
                " LEFT JOIN mcp_servers o ON o.id = a.g",
                "COALESCE(o.name, a.recorded_name)",
            ),
        }
    }

    fn recorded_name_sql(self) -> &'static str {
        match self {
            GroupBy::Model => "MAX(r.model)",
            // The MCP server's slug, recorded as the model of MCP records.
            GroupBy::McpServer => "MAX(r.model)",
            _ => "NULL",
        }
    }

    /// What a group without a key is called.
    fn missing_label(self) -> &'static str {
        match self {
            GroupBy::Day | GroupBy::Provider => "(none)",
            GroupBy::Model => "No model",
            GroupBy::ApiKey => "Unknown key",
            GroupBy::Team => "Direct organisation API keys",
            GroupBy::User => "No user",
            GroupBy::McpServer => "Not MCP",
        }
    }
}

/// Counters of a set of records. Tokens and money are sums; `successRate` is successes / requests
/// (2xx and 3xx count as successes), absent when there were no requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageStats {
    pub requests: i64,
    pub successes: i64,
    pub errors: i64,
    pub success_rate: Option<f64>,
    pub llm_requests: i64,
    pub mcp_requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    /// Input plus output tokens.
    pub total_tokens: i64,
    pub billable_tokens: i64,
    pub cost_nanos_usd: i64,
    pub llm_cost_nanos_usd: i64,
    pub mcp_cost_nanos_usd: i64,
    /// Nearest-rank median of `latencyMs`.
    pub latency_p50_ms: Option<i64>,
    /// Nearest-rank 95th percentile of `latencyMs`.
    pub latency_p95_ms: Option<i64>,
}

/// One group of a [`UsageSummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageGroup {
    /// The day (`YYYY-MM-DD`), object id or provider; `null` for records without one.
    pub key: Option<String>,
    pub label: String,
    #[serde(flatten)]
    pub stats: UsageStats,
}

/// The answer of `GET .../usage/summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub group_by: Option<GroupBy>,
    pub totals: UsageStats,
    /// Days in order; other groupings by cost, then requests, descending.
    pub groups: Vec<UsageGroup>,
}

/// Totals of `scope` and, with `group_by`, its groups (which add up to the totals: records without
/// a key form a group of their own).
///
/// Two passes over the records: the counters (of the scope, or per group — the totals are then the
/// groups' sums) and a latency histogram (per group when grouped), from which the exact
/// nearest-rank percentiles are read. The histogram has one row per distinct latency, far fewer
/// than records, and costs one `GROUP BY` instead of a sort with window functions.
pub async fn summary(
    pool: &Db,
    scope: &UsageScope,
    group_by: Option<GroupBy>,
) -> Result<UsageSummary, sqlx::Error> {
    let histograms = latency_histograms(pool, scope, group_by).await?;
    let (totals, groups) = match group_by {
        Some(group_by) => {
            let mut groups = groups(pool, scope, group_by).await?;
            let mut totals = UsageStats::default();
            for group in &mut groups {
                totals.add(&group.stats);
                if let Some(histogram) = histograms.get(&group.key) {
                    group.stats.latency_p50_ms = percentile(histogram, 50);
                    group.stats.latency_p95_ms = percentile(histogram, 95);
                }
            }
            totals.success_rate = rate(totals.successes, totals.requests);
            (totals, groups)
        }
        None => (totals(pool, scope).await?, Vec::new()),
    };
    let mut merged: Vec<(i64, i64)> = histograms.into_values().flatten().collect();
    merged.sort_unstable();
    let totals = UsageStats {
        latency_p50_ms: percentile(&merged, 50),
        latency_p95_ms: percentile(&merged, 95),
        ..totals
    };
    Ok(UsageSummary {
        from: scope.from_ms.map(from_ms),
        to: scope.to_ms.map(from_ms),
        group_by,
        totals,
        groups,
    })
}

fn rate(successes: i64, requests: i64) -> Option<f64> {
    (requests > 0).then(|| successes as f64 / requests as f64)
}

impl UsageStats {
    /// Adds another set's additive counters (not its rate or percentiles).
    pub fn add(&mut self, other: &UsageStats) {
        self.requests += other.requests;
        self.successes += other.successes;
        self.errors += other.errors;
        self.llm_requests += other.llm_requests;
        self.mcp_requests += other.mcp_requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.total_tokens += other.total_tokens;
        self.billable_tokens += other.billable_tokens;
        self.cost_nanos_usd += other.cost_nanos_usd;
        self.llm_cost_nanos_usd += other.llm_cost_nanos_usd;
        self.mcp_cost_nanos_usd += other.mcp_cost_nanos_usd;
    }
}

/// The nearest-rank `p`th percentile of a histogram of `(latency, count)` sorted by latency: the
/// latency of the record at rank `ceil(p · n / 100)`.
fn percentile(histogram: &[(i64, i64)], p: i64) -> Option<i64> {
    let n: i64 = histogram.iter().map(|(_, count)| count).sum();
    if n == 0 {
        return None;
    }
    let rank = (n * p + 99) / 100;
    let mut seen = 0;
    for (latency, count) in histogram {
        seen += count;
        if seen >= rank {
            return Some(*latency);
        }
    }
    histogram.last().map(|(latency, _)| *latency)
}

/// The additive counters of `scope` (latency percentiles left empty).
pub async fn totals(pool: &Db, scope: &UsageScope) -> Result<UsageStats, sqlx::Error> {
    let mut sql = SqlBuilder::new("SELECT ");
    sql.push(SUMS).push(" FROM usage_records r");
    push_filters(&mut sql, scope);
    let row = sql.query().fetch_one(pool).await?;
    decode_stats(&row)
}

/// The additive counters of `scope` per `group_by` key (latency percentiles left empty), ordered
/// as [`UsageSummary::groups`].
pub async fn groups(
    pool: &Db,
    scope: &UsageScope,
    group_by: GroupBy,
) -> Result<Vec<UsageGroup>, sqlx::Error> {
    let key = group_by.key_sql();
    let (label_join, label) = group_by.label_sql();
    let mut sql = SqlBuilder::new(format!(
        "SELECT a.*, {label} AS label FROM (SELECT {key} AS g, {recorded} AS recorded_name, {SUMS} \
         FROM usage_records r",
        recorded = group_by.recorded_name_sql(),
    ));
    push_filters(&mut sql, scope);
    sql.push(&format!(" GROUP BY {key}) a{label_join}"));
    let rows = sql.query().fetch_all(pool).await?;
    let mut groups = rows
        .iter()
        .map(|row| {
            let key: Option<String> = row.try_get("g")?;
            let label: Option<String> = row.try_get("label")?;
            let (key, label) = match group_by {
                GroupBy::Day => {
                    let day = key.as_deref().map(day_of).transpose()?;
                    (day.clone(), day)
                }
                GroupBy::Provider => (key.clone(), key),
                _ => (key, label),
            };
            let label = label
                .or_else(|| key.as_ref().map(|id| fallback_label(group_by, id)))
                .unwrap_or_else(|| group_by.missing_label().to_owned());
            Ok(UsageGroup {
                key,
                label,
                stats: decode_stats(row)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    sort_groups(group_by, &mut groups);
    Ok(groups)
}

/// Days in order; anything else by cost, then requests, descending.
fn sort_groups(group_by: GroupBy, groups: &mut [UsageGroup]) {
    if group_by == GroupBy::Day {
        groups.sort_by(|a, b| a.key.cmp(&b.key));
    } else {
        groups.sort_by(|a, b| {
            (b.stats.cost_nanos_usd, b.stats.requests, &a.key).cmp(&(
                a.stats.cost_nanos_usd,
                a.stats.requests,
                &b.key,
            ))
        });
    }
}

/// The counters of the records that share a team, key, model, MCP server and traffic kind, with
/// the names of those objects: one row per combination, which is few (each key has one team).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownRow {
    pub team_id: Option<String>,
    pub team_name: Option<String>,
    pub api_key_id: String,
    pub api_key_name: Option<String>,
    pub model_id: Option<String>,
    /// The model name (or, for MCP traffic, the server slug) the records carry.
    pub recorded_name: Option<String>,
    pub mcp_server_id: Option<String>,
    pub mcp_server_name: Option<String>,
    pub mcp: bool,
    pub stats: UsageStats,
}

/// [`BreakdownRow`]s of `scope`, in one pass over the records: what the invoice folds into its
/// totals and its breakdowns by team, key, model and MCP server (see [`fold`]), instead of one
/// grouped scan per breakdown.
pub async fn breakdown(pool: &Db, scope: &UsageScope) -> Result<Vec<BreakdownRow>, sqlx::Error> {
    let server = GroupBy::McpServer.key_sql();
    let mut sql = SqlBuilder::new(format!(
        "SELECT a.*, t.name AS team_name, k.name AS api_key_name, s.name AS mcp_server_name \
         FROM (SELECT r.team_id AS team_id, r.api_key_id AS api_key_id, r.model_id AS model_id, \
                 {server} AS mcp_server_id, {MCP_FLAG} AS is_mcp, MAX(r.model) AS recorded_name, \
                 {SUMS} \
               FROM usage_records r"
    ));
    push_filters(&mut sql, scope);
    sql.push(&format!(
        " GROUP BY r.team_id, r.api_key_id, r.model_id, {server}, {MCP_FLAG}) a \
         LEFT JOIN teams t ON t.id = a.team_id \
         LEFT JOIN api_keys k ON k.id = a.api_key_id \
         LEFT JOIN mcp_servers s ON s.id = a.mcp_server_id"
    ));
    let rows = sql.query().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(BreakdownRow {
                team_id: row.try_get("team_id")?,
                team_name: row.try_get("team_name")?,
                api_key_id: row.try_get("api_key_id")?,
                api_key_name: row.try_get("api_key_name")?,
                model_id: row.try_get("model_id")?,
                recorded_name: row.try_get("recorded_name")?,
                mcp_server_id: row.try_get("mcp_server_id")?,
                mcp_server_name: row.try_get("mcp_server_name")?,
                mcp: row.try_get::<i64, _>("is_mcp")? != 0,
                stats: decode_stats(row)?,
            })
        })
        .collect()
}

const MCP_FLAG: &str = "CASE WHEN r.provider = 'mcp' THEN 1 ELSE 0 END";

/// Folds `rows` into groups by `group_by` (team, API key, model or MCP server; other groupings
/// are not in a breakdown and give no groups), sorted like [`UsageSummary::groups`]. The labels
/// are those [`summary`] gives.
pub fn fold<'a>(
    rows: impl IntoIterator<Item = &'a BreakdownRow>,
    group_by: GroupBy,
) -> Vec<UsageGroup> {
    let mut groups: Vec<UsageGroup> = Vec::new();
    let mut index: HashMap<Option<String>, usize> = HashMap::new();
    for row in rows {
        let (key, name) = match group_by {
            GroupBy::Team => (row.team_id.clone(), row.team_name.clone()),
            GroupBy::ApiKey => (Some(row.api_key_id.clone()), row.api_key_name.clone()),
            GroupBy::Model => (row.model_id.clone(), row.recorded_name.clone()),
            GroupBy::McpServer => (
                row.mcp_server_id.clone(),
                row.mcp_server_name
                    .clone()
                    .or_else(|| row.recorded_name.clone()),
            ),
            GroupBy::Day | GroupBy::User | GroupBy::Provider => continue,
        };
        let at = *index.entry(key.clone()).or_insert_with(|| {
            let label = name
                .or_else(|| key.as_ref().map(|id| fallback_label(group_by, id)))
                .unwrap_or_else(|| group_by.missing_label().to_owned());
            groups.push(UsageGroup {
                key,
                label,
                stats: UsageStats::default(),
            });
            groups.len() - 1
        });
        if let Some(group) = groups.get_mut(at) {
            group.stats.add(&row.stats);
        }
    }
    for group in &mut groups {
        group.stats.success_rate = rate(group.stats.successes, group.stats.requests);
    }
    sort_groups(group_by, &mut groups);
    groups
}

/// A name for an object that no longer exists (or a key without a name).
fn fallback_label(group_by: GroupBy, id: &str) -> String {
    match group_by {
        GroupBy::ApiKey => format!("API Key {}", id.chars().take(8).collect::<String>()),
        _ => id.to_owned(),
    }
}

/// `YYYY-MM-DD` of a day number (days since the unix epoch).
fn day_of(days: &str) -> Result<String, sqlx::Error> {
    let days: i64 = days
        .parse()
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    Ok(from_ms(days.saturating_mul(DAY_MS))
        .format("%Y-%m-%d")
        .to_string())
}

/// `(latency, count)` sorted by latency, per group key (`None` keys the whole scope when ungrouped).
async fn latency_histograms(
    pool: &Db,
    scope: &UsageScope,
    group_by: Option<GroupBy>,
) -> Result<HashMap<Option<String>, Vec<(i64, i64)>>, sqlx::Error> {
    let key = group_by.map_or("NULL", GroupBy::key_sql);
    let mut sql = SqlBuilder::new(format!(
        "SELECT {key} AS g, r.latency_ms AS latency_ms, COUNT(*) AS c FROM usage_records r"
    ));
    push_filters(&mut sql, scope);
    match group_by {
        Some(_) => sql.push(&format!(" GROUP BY {key}, r.latency_ms")),
        None => sql.push(" GROUP BY r.latency_ms"),
    };
    let rows = sql.query().fetch_all(pool).await?;
    let mut out: HashMap<Option<String>, Vec<(i64, i64)>> = HashMap::new();
    for row in &rows {
        let key: Option<String> = row.try_get("g")?;
        let key = match (group_by, key) {
            (Some(GroupBy::Day), Some(days)) => Some(day_of(&days)?),
            (_, key) => key,
        };
        out.entry(key)
            .or_default()
            .push((row.try_get("latency_ms")?, row.try_get("c")?));
    }
    for histogram in out.values_mut() {
        histogram.sort_unstable();
    }
    Ok(out)
}

/// The additive columns every report selects (aliases read by [`decode_stats`]).
const SUMS: &str = "COUNT(*) AS requests, \
    COALESCE(CAST(SUM(CASE WHEN r.http_status < 400 THEN 1 ELSE 0 END) AS BIGINT), 0) AS successes, \
    COALESCE(CAST(SUM(CASE WHEN r.provider = 'mcp' THEN 1 ELSE 0 END) AS BIGINT), 0) AS mcp_requests, \
    COALESCE(CAST(SUM(r.input_tokens) AS BIGINT), 0) AS input_tokens, \
    COALESCE(CAST(SUM(r.output_tokens) AS BIGINT), 0) AS output_tokens, \
    COALESCE(CAST(SUM(r.cached_tokens) AS BIGINT), 0) AS cached_tokens, \
    COALESCE(CAST(SUM(r.reasoning_tokens) AS BIGINT), 0) AS reasoning_tokens, \
    COALESCE(CAST(SUM(r.billable_tokens) AS BIGINT), 0) AS billable_tokens, \
    COALESCE(CAST(SUM(r.cost_nanos_usd) AS BIGINT), 0) AS cost_nanos_usd, \
    COALESCE(CAST(SUM(CASE WHEN r.provider = 'mcp' THEN r.cost_nanos_usd ELSE 0 END) AS BIGINT), 0) \
      AS mcp_cost_nanos_usd";

fn decode_stats(row: &DbRow) -> Result<UsageStats, sqlx::Error> {
    let requests: i64 = row.try_get("requests")?;
    let successes: i64 = row.try_get("successes")?;
    let mcp_requests: i64 = row.try_get("mcp_requests")?;
    let input_tokens: i64 = row.try_get("input_tokens")?;
    let output_tokens: i64 = row.try_get("output_tokens")?;
    let cost_nanos_usd: i64 = row.try_get("cost_nanos_usd")?;
    let mcp_cost_nanos_usd: i64 = row.try_get("mcp_cost_nanos_usd")?;
    Ok(UsageStats {
        requests,
        successes,
        errors: requests - successes,
        success_rate: rate(successes, requests),
        llm_requests: requests - mcp_requests,
        mcp_requests,
        input_tokens,
        output_tokens,
        cached_tokens: row.try_get("cached_tokens")?,
        reasoning_tokens: row.try_get("reasoning_tokens")?,
        total_tokens: input_tokens.saturating_add(output_tokens),
        billable_tokens: row.try_get("billable_tokens")?,
        cost_nanos_usd,
        llm_cost_nanos_usd: cost_nanos_usd - mcp_cost_nanos_usd,
        mcp_cost_nanos_usd,
        latency_p50_ms: None,
        latency_p95_ms: None,
    })
}

/// ` WHERE …` selecting `scope` from `usage_records r`.
pub(crate) fn push_filters(sql: &mut SqlBuilder, scope: &UsageScope) {
    sql.push(" WHERE r.organisation_id = ")
        .push_bind(scope.organisation_id.as_str());
    if let Some(from) = scope.from_ms {
        sql.push(" AND r.created_at >= ").push_bind(from);
    }
    if let Some(to) = scope.to_ms {
        sql.push(" AND r.created_at < ").push_bind(to);
    }
    match (scope.team_ids.is_empty(), scope.api_key_ids.is_empty()) {
        (true, true) => {}
        (false, true) => {
            sql.push(" AND r.team_id IN ")
                .push_tuple(scope.team_ids.iter().map(String::as_str));
        }
        (true, false) => {
            sql.push(" AND r.api_key_id IN ")
                .push_tuple(scope.api_key_ids.iter().map(String::as_str));
        }
        (false, false) => {
            sql.push(" AND (r.team_id IN ")
                .push_tuple(scope.team_ids.iter().map(String::as_str))
                .push(" OR r.api_key_id IN ")
                .push_tuple(scope.api_key_ids.iter().map(String::as_str))
                .push(")");
        }
    }
    match scope.traffic {
        Traffic::All => {}
        Traffic::Llm => {
            sql.push(" AND r.provider <> ").push_bind(MCP_PROVIDER);
        }
        Traffic::Mcp => {
            sql.push(" AND r.provider = ").push_bind(MCP_PROVIDER);
        }
    }
    if let Some(visible) = &scope.visible {
        let mut alternatives = 0;
        sql.push(" AND (");
        if !visible.team_ids.is_empty() {
            sql.push("r.team_id IN ")
                .push_tuple(visible.team_ids.iter().map(String::as_str));
            alternatives += 1;
        }
        if let Some(user_id) = &visible.user_id {
            if alternatives > 0 {
                sql.push(" OR ");
            }
            sql.push("r.user_id = ").push_bind(user_id.as_str());
            alternatives += 1;
        }
        if alternatives == 0 {
            sql.push("1 = 0");
        }
        sql.push(")");
    }
}

#[cfg(test)]
mod tests;
