//! Usage analytics: totals and groups (by day, hour, model, API key, team, user, provider, MCP
//! server or status class) of requests, successes, errors, tokens, cost (LLM and MCP) and latency
//! percentiles.
//!
//! Counters are read from the hourly and daily rollups the usage writer maintains
//! (`odock_store::usage_rollups`), with the records themselves only for the minutes at the edges
//! of a period (`query`): a month of a million records is a few thousand rollup rows. Every
//! statement runs unchanged on SQLite and PostgreSQL.
//!
//! Latency percentiles are exact nearest-rank values (the latency at rank `ceil(p · n / 100)`,
//! from a per-latency histogram of the records) when a report covers at most
//! [`EXACT_PERCENTILES_UP_TO`] records; above that they are estimated from the rollups'
//! histogram buckets (`latency`), always within the bucket of the exact value, and the report
//! says which ([`UsageSummary::latency_percentiles`]).
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

mod latency;
mod query;
pub mod synthetic;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use odock_store::db::{from_ms, Db, SqlBuilder};
use odock_store::usage_rollups::{DAY_MS, HOUR_MS};

use query::{Cell, Dim, Key};

/// The `provider` of usage records written for MCP traffic; every other provider is LLM traffic.
pub const MCP_PROVIDER: &str = "mcp";

/// Reports over at most this many records get exact latency percentiles (counting each latency
/// of the records costs a scan of them; beyond this the rollups' histograms answer).
pub const EXACT_PERCENTILES_UP_TO: i64 = 50_000;

/// Which records a report covers. Bounds and lists that are empty do not narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageScope {
    /// The organisation whose usage records the report reads.
    pub organisation_id: String,
    /// Inclusive lower bound on `createdAt`, unix ms.
    pub from_ms: Option<i64>,
    /// Exclusive upper bound on `createdAt`, unix ms.
    pub to_ms: Option<i64>,
    /// Records of these teams or of these keys (the union, like the invoice page's multi-select);
    /// both empty: the whole organisation.
    pub team_ids: Vec<String>,
    /// Records of these API keys (ids); see `team_ids`.
    pub api_key_ids: Vec<String>,
    /// Records of these models (model ids).
    pub model_ids: Vec<String>,
    /// Records of these providers (`mcp` for MCP traffic).
    pub providers: Vec<String>,
    /// Records attributed to these users.
    pub user_ids: Vec<String>,
    /// Only successful or only failed requests; `None`: both.
    pub status: Option<StatusFilter>,
    /// LLM traffic, MCP traffic, or both (the default).
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
    /// Teams whose records the caller may see.
    pub team_ids: Vec<String>,
    /// A user whose own records (those attributed to them) the caller may see.
    pub user_id: Option<String>,
}

/// LLM calls, MCP calls, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Traffic {
    /// LLM and MCP traffic.
    #[default]
    All,
    /// LLM calls only (records whose provider is not `mcp`).
    Llm,
    /// MCP tool calls only (records whose provider is `mcp`).
    Mcp,
}

/// Successful requests (HTTP status below 400) or failed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    /// Requests answered with an HTTP status below 400.
    Success,
    /// Requests answered with an HTTP status of 400 or above.
    Error,
}

/// How [`summary`] groups records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum GroupBy {
    /// UTC calendar day; the group key is `YYYY-MM-DD`.
    Day,
    /// UTC hour; the group key is `YYYY-MM-DDTHH:00:00Z`.
    Hour,
    /// Model id; the label is the model name the records carry.
    Model,
    /// API key id (`key` is accepted as an alias); the label is the key's name.
    #[serde(alias = "key")]
    ApiKey,
    /// Team id; records made without a team form one group whose key is `null`.
    Team,
    /// User id the records are attributed to; the label is the user's name or email.
    User,
    /// Provider name (`openai`, `anthropic`, …; `mcp` for MCP traffic).
    Provider,
    /// MCP server id; the label is the server's name (or the slug the records carry).
    McpServer,
    /// Status class; the group key is `2xx`, `4xx`, `5xx`, ….
    Status,
}

impl GroupBy {
    /// Every grouping, in declaration order.
    pub const ALL: [GroupBy; 9] = [
        GroupBy::Day,
        GroupBy::Hour,
        GroupBy::Model,
        GroupBy::ApiKey,
        GroupBy::Team,
        GroupBy::User,
        GroupBy::Provider,
        GroupBy::McpServer,
        GroupBy::Status,
    ];

    /// The wire name of the grouping (`day`, `apiKey`, `mcpServer`, …), as serde spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Hour => "hour",
            GroupBy::Model => "model",
            GroupBy::ApiKey => "apiKey",
            GroupBy::Team => "team",
            GroupBy::User => "user",
            GroupBy::Provider => "provider",
            GroupBy::McpServer => "mcpServer",
            GroupBy::Status => "status",
        }
    }

    fn dim(self) -> Dim {
        match self {
            GroupBy::Day => Dim::Day,
            GroupBy::Hour => Dim::Hour,
            GroupBy::Model => Dim::Model,
            GroupBy::ApiKey => Dim::ApiKey,
            GroupBy::Team => Dim::Team,
            GroupBy::User => Dim::User,
            GroupBy::Provider => Dim::Provider,
            GroupBy::McpServer => Dim::McpServer,
            GroupBy::Status => Dim::Status,
        }
    }

    /// Groups in time order (days, hours, status classes) rather than by cost.
    fn ordered_by_key(self) -> bool {
        matches!(self, GroupBy::Day | GroupBy::Hour | GroupBy::Status)
    }

    /// What a group without a key is called.
    fn missing_label(self) -> &'static str {
        match self {
            GroupBy::Day | GroupBy::Hour | GroupBy::Provider | GroupBy::Status => "(none)",
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageStats {
    /// Number of requests (usage records).
    pub requests: i64,
    /// Requests answered with an HTTP status below 400.
    pub successes: i64,
    /// Requests answered with an HTTP status of 400 or above (`requests - successes`).
    pub errors: i64,
    /// Successes (HTTP status < 400) / requests.
    #[schema(required = true)]
    pub success_rate: Option<f64>,
    /// Requests that were LLM calls (provider other than `mcp`).
    pub llm_requests: i64,
    /// Requests that were MCP tool calls (provider `mcp`).
    pub mcp_requests: i64,
    /// Input (prompt) tokens, as reported by the upstream or estimated.
    pub input_tokens: i64,
    /// Output (completion) tokens.
    pub output_tokens: i64,
    /// Input tokens served from the provider's prompt cache.
    pub cached_tokens: i64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: i64,
    /// Input plus output tokens.
    pub total_tokens: i64,
    /// Tokens the requests were billed and counted for (input plus output).
    pub billable_tokens: i64,
    /// Total cost (LLM plus MCP), in nanos USD (billionths of a dollar).
    pub cost_nanos_usd: i64,
    /// Cost of the LLM calls, in nanos USD.
    pub llm_cost_nanos_usd: i64,
    /// Cost of the MCP tool calls, in nanos USD.
    pub mcp_cost_nanos_usd: i64,
    /// Median of `latencyMs` (see [`UsageSummary::latency_percentiles`]).
    #[schema(required = true)]
    pub latency_p50_ms: Option<i64>,
    /// 95th percentile of `latencyMs`.
    #[schema(required = true)]
    pub latency_p95_ms: Option<i64>,
}

/// One group of a [`UsageSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageGroup {
    /// The day (`YYYY-MM-DD`), hour, object id, provider or status class; `null` for records
    /// without one.
    #[schema(required = true)]
    pub key: Option<String>,
    /// A display name for the group: the object's name, the key itself for days, hours,
    /// providers and status classes, or a placeholder such as `No model` when the key is `null`.
    pub label: String,
    /// The group's counters (flattened into the group object).
    #[serde(flatten)]
    pub stats: UsageStats,
}

/// How a report's latency percentiles were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Percentiles {
    /// Nearest-rank values of the records' latencies.
    Exact,
    /// Estimated from histogram buckets: within the bucket of the exact value (≤ ~30 % wide).
    Estimated,
}

/// The answer of `GET .../usage/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    /// Start of the reported period (inclusive); `null`: from the first record.
    #[schema(required = true)]
    pub from: Option<DateTime<Utc>>,
    /// End of the reported period (exclusive); `null`: up to the last record.
    #[schema(required = true)]
    pub to: Option<DateTime<Utc>>,
    /// How `groups` were formed; `null`: no grouping, `groups` is empty.
    #[schema(required = true)]
    pub group_by: Option<GroupBy>,
    /// Whether the latency percentiles are exact or estimated from histogram buckets.
    pub latency_percentiles: Percentiles,
    /// Counters of every record in the scope.
    pub totals: UsageStats,
    /// Days, hours and status classes in order; other groupings by cost, then requests,
    /// descending.
    pub groups: Vec<UsageGroup>,
}

/// Totals of `scope` and, with `group_by`, its groups (which add up to the totals: records without
/// a key form a group of their own).
pub async fn summary(
    pool: &Db,
    scope: &UsageScope,
    group_by: Option<GroupBy>,
) -> Result<UsageSummary, sqlx::Error> {
    summary_with(pool, scope, group_by, EXACT_PERCENTILES_UP_TO).await
}

/// [`summary`], with exact percentiles up to `exact_up_to` records instead of
/// [`EXACT_PERCENTILES_UP_TO`].
pub async fn summary_with(
    pool: &Db,
    scope: &UsageScope,
    group_by: Option<GroupBy>,
    exact_up_to: i64,
) -> Result<UsageSummary, sqlx::Error> {
    let dims: Vec<Dim> = group_by.map(GroupBy::dim).into_iter().collect();
    let cells = query::cells(pool, scope, &dims).await?;
    let mut totals = UsageStats::default();
    let mut all_buckets = latency::Buckets::default();
    for cell in cells.values() {
        totals.add(&cell.stats);
        all_buckets.add(&cell.buckets);
    }
    let exact = totals.requests <= exact_up_to;
    // Each group beside the key it was read under (a day number, not its date), for the lookups.
    let mut groups = match group_by {
        Some(group_by) => groups_of(pool, group_by, &cells).await?,
        None => Vec::new(),
    };
    if exact && totals.requests > 0 {
        let spans = [(scope.from_ms.unwrap_or(0), scope.to_ms.unwrap_or(i64::MAX))];
        let histograms = query::histograms(pool, scope, &dims, &spans).await?;
        for (raw, group) in &mut groups {
            let histogram = histograms.get(*raw).map_or(&[][..], Vec::as_slice);
            group.stats.latency_p50_ms = latency::exact_percentile(histogram, 50);
            group.stats.latency_p95_ms = latency::exact_percentile(histogram, 95);
        }
        let mut merged: Vec<(i64, i64)> = histograms.into_values().flatten().collect();
        merged.sort_unstable();
        totals.latency_p50_ms = latency::exact_percentile(&merged, 50);
        totals.latency_p95_ms = latency::exact_percentile(&merged, 95);
    } else {
        for (raw, group) in &mut groups {
            if let Some(cell) = cells.get(*raw) {
                group.stats.latency_p50_ms = cell.buckets.percentile(50);
                group.stats.latency_p95_ms = cell.buckets.percentile(95);
            }
        }
        totals.latency_p50_ms = all_buckets.percentile(50);
        totals.latency_p95_ms = all_buckets.percentile(95);
    }
    totals.success_rate = rate(totals.successes, totals.requests);
    Ok(UsageSummary {
        from: scope.from_ms.map(from_ms),
        to: scope.to_ms.map(from_ms),
        group_by,
        latency_percentiles: if exact {
            Percentiles::Exact
        } else {
            Percentiles::Estimated
        },
        totals,
        groups: groups.into_iter().map(|(_, group)| group).collect(),
    })
}

/// The additive counters of `scope` (latency percentiles left empty).
pub async fn totals(pool: &Db, scope: &UsageScope) -> Result<UsageStats, sqlx::Error> {
    let cells = query::cells(pool, scope, &[]).await?;
    let mut totals = UsageStats::default();
    for cell in cells.values() {
        totals.add(&cell.stats);
    }
    totals.success_rate = rate(totals.successes, totals.requests);
    Ok(totals)
}

/// The additive counters of `scope` per `group_by` key (latency percentiles left empty), ordered
/// as [`UsageSummary::groups`].
pub async fn groups(
    pool: &Db,
    scope: &UsageScope,
    group_by: GroupBy,
) -> Result<Vec<UsageGroup>, sqlx::Error> {
    let cells = query::cells(pool, scope, &[group_by.dim()]).await?;
    let groups = groups_of(pool, group_by, &cells).await?;
    Ok(groups.into_iter().map(|(_, group)| group).collect())
}

/// The groups of single-dimension `cells`, labelled and sorted, each beside its cell's key.
async fn groups_of<'a>(
    pool: &Db,
    group_by: GroupBy,
    cells: &'a HashMap<Key, Cell>,
) -> Result<Vec<(&'a Key, UsageGroup)>, sqlx::Error> {
    let ids: Vec<&str> = cells
        .keys()
        .filter_map(|key| key.first().and_then(Option::as_deref))
        .collect();
    let names = names(pool, group_by, ids).await?;
    let mut groups = Vec::with_capacity(cells.len());
    for (raw_key, cell) in cells {
        if cell.stats.requests == 0 {
            continue;
        }
        let raw = raw_key.first().cloned().flatten();
        let key = match group_by {
            GroupBy::Day => raw
                .as_deref()
                .map(|days| bucket_label(days, DAY_MS))
                .transpose()?,
            GroupBy::Hour => raw
                .as_deref()
                .map(|hours| bucket_label(hours, HOUR_MS))
                .transpose()?,
            GroupBy::Status => raw.map(|class| format!("{class}xx")),
            _ => raw,
        };
        let name = match group_by {
            GroupBy::Day | GroupBy::Hour | GroupBy::Provider | GroupBy::Status => key.clone(),
            GroupBy::Model => cell.recorded_name.clone(),
            GroupBy::McpServer => key
                .as_ref()
                .and_then(|id| names.get(id).cloned())
                .or_else(|| cell.recorded_name.clone()),
            _ => key.as_ref().and_then(|id| names.get(id).cloned()),
        };
        let label = name
            .or_else(|| key.as_ref().map(|id| fallback_label(group_by, id)))
            .unwrap_or_else(|| group_by.missing_label().to_owned());
        let mut stats = cell.stats.clone();
        stats.success_rate = rate(stats.successes, stats.requests);
        groups.push((raw_key, UsageGroup { key, label, stats }));
    }
    groups.sort_by(|a, b| group_order(group_by, &a.1, &b.1));
    Ok(groups)
}

/// Names of the objects behind `ids`, for groupings of named objects.
async fn names(
    pool: &Db,
    group_by: GroupBy,
    ids: Vec<&str>,
) -> Result<HashMap<String, String>, sqlx::Error> {
    let (table, name) = match group_by {
        GroupBy::ApiKey => ("api_keys", "name"),
        GroupBy::Team => ("teams", "name"),
        GroupBy::User => ("users", "COALESCE(name, email)"),
        GroupBy::McpServer => ("mcp_servers", "name"),
        _ => return Ok(HashMap::new()),
    };
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = SqlBuilder::new(format!(
            "SELECT id, {name} AS name FROM {table} WHERE id IN "
        ));
        sql.push_tuple(chunk.iter().copied());
        for row in sql.query().fetch_all(pool).await? {
            if let Some(name) = row.try_get::<Option<String>, _>("name")? {
                out.insert(row.try_get("id")?, name);
            }
        }
    }
    Ok(out)
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

/// Days, hours and status classes in order; anything else by cost, then requests, descending.
fn group_order(group_by: GroupBy, a: &UsageGroup, b: &UsageGroup) -> std::cmp::Ordering {
    if group_by.ordered_by_key() {
        a.key.cmp(&b.key)
    } else {
        (b.stats.cost_nanos_usd, b.stats.requests, &a.key).cmp(&(
            a.stats.cost_nanos_usd,
            a.stats.requests,
            &b.key,
        ))
    }
}

/// The counters of the records that share a team, key, model, MCP server and traffic kind, with
/// the names of those objects: one row per combination, which is few (each key has one team).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownRow {
    /// The team the records were made under; `None` when there was none.
    pub team_id: Option<String>,
    /// The team's name; `None` when there is no team or it no longer exists.
    pub team_name: Option<String>,
    /// The API key the records were made with.
    pub api_key_id: String,
    /// The key's name; `None` when it has none or no longer exists.
    pub api_key_name: Option<String>,
    /// The resolved model id; `None` for MCP traffic and requests that resolved no model.
    pub model_id: Option<String>,
    /// The model name (or, for MCP traffic, the server slug) the records carry.
    pub recorded_name: Option<String>,
    /// The MCP server of MCP traffic; `None` for LLM traffic.
    pub mcp_server_id: Option<String>,
    /// The MCP server's name; `None` when not MCP or the server no longer exists.
    pub mcp_server_name: Option<String>,
    /// Whether these are MCP tool calls (provider `mcp`) rather than LLM calls.
    pub mcp: bool,
    /// The counters of the records (latency percentiles left empty).
    pub stats: UsageStats,
}

/// [`BreakdownRow`]s of `scope`, in one read of the rollups: what the invoice folds into its
/// totals and its breakdowns by team, key, model and MCP server (see [`fold`]).
pub async fn breakdown(pool: &Db, scope: &UsageScope) -> Result<Vec<BreakdownRow>, sqlx::Error> {
    let dims = [Dim::Team, Dim::ApiKey, Dim::Model, Dim::McpServer, Dim::Mcp];
    let cells = query::cells(pool, scope, &dims).await?;
    let ids = |at: usize| -> Vec<&str> {
        let set: HashSet<&str> = cells.keys().filter_map(|key| key[at].as_deref()).collect();
        set.into_iter().collect()
    };
    let teams = names(pool, GroupBy::Team, ids(0)).await?;
    let keys = names(pool, GroupBy::ApiKey, ids(1)).await?;
    let servers = names(pool, GroupBy::McpServer, ids(3)).await?;
    let mut rows = Vec::with_capacity(cells.len());
    for (key, cell) in cells {
        if cell.stats.requests == 0 {
            continue;
        }
        let decode = |what: &str| sqlx::Error::Decode(format!("breakdown row: {what}").into());
        let [team_id, api_key_id, model_id, mcp_server_id, mcp]: [Option<String>; 5] = key
            .try_into()
            .map_err(|_| decode("expected five key columns"))?;
        // `api_key_id` is NOT NULL in both tables the rows come from.
        let api_key_id = api_key_id.ok_or_else(|| decode("no API key"))?;
        let mut stats = cell.stats;
        stats.success_rate = rate(stats.successes, stats.requests);
        rows.push(BreakdownRow {
            team_name: team_id.as_ref().and_then(|id| teams.get(id).cloned()),
            team_id,
            api_key_name: keys.get(&api_key_id).cloned(),
            api_key_id,
            model_id,
            recorded_name: cell.recorded_name,
            mcp_server_name: mcp_server_id
                .as_ref()
                .and_then(|id| servers.get(id).cloned()),
            mcp_server_id,
            mcp: mcp.as_deref() == Some("1"),
            stats,
        });
    }
    Ok(rows)
}

/// Folds `rows` into groups by `group_by` (team, API key, model or MCP server; other groupings
/// are not in a breakdown and give no groups), sorted like [`UsageSummary::groups`]. The labels
/// are those [`summary`] gives.
pub fn fold<'a>(
    rows: impl IntoIterator<Item = &'a BreakdownRow>,
    group_by: GroupBy,
) -> Vec<UsageGroup> {
    let mut groups: Vec<UsageGroup> = Vec::new();
    let mut index: HashMap<Option<String>, usize> = HashMap::new();
    let mut names: HashMap<Option<String>, Option<String>> = HashMap::new();
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
            GroupBy::Day | GroupBy::Hour | GroupBy::User | GroupBy::Provider | GroupBy::Status => {
                continue
            }
        };
        // The largest recorded name of the group, as the summary's `MAX(model)` gives.
        let best = names.entry(key.clone()).or_default();
        if name > *best {
            best.clone_from(&name);
        }
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(UsageGroup {
                key,
                label: String::new(),
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
        group.label = names
            .remove(&group.key)
            .flatten()
            .or_else(|| group.key.as_ref().map(|id| fallback_label(group_by, id)))
            .unwrap_or_else(|| group_by.missing_label().to_owned());
    }
    groups.sort_by(|a, b| group_order(group_by, a, b));
    groups
}

/// A name for an object that no longer exists (or a key without a name).
fn fallback_label(group_by: GroupBy, id: &str) -> String {
    match group_by {
        GroupBy::ApiKey => format!("API Key {}", id.chars().take(8).collect::<String>()),
        _ => id.to_owned(),
    }
}

/// `YYYY-MM-DD` of a day number, or the RFC 3339 start of an hour number (periods since the
/// unix epoch).
fn bucket_label(periods: &str, unit: i64) -> Result<String, sqlx::Error> {
    let periods: i64 = periods
        .parse()
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    let at = from_ms(periods.saturating_mul(unit));
    Ok(match unit {
        DAY_MS => at.format("%Y-%m-%d").to_string(),
        _ => at.format("%Y-%m-%dT%H:00:00Z").to_string(),
    })
}

/// ` WHERE …` selecting `scope` from `usage_records r` (organisation, period and every filter):
/// for reports that list records themselves, such as the invoice's CSV.
pub(crate) fn push_filters(sql: &mut SqlBuilder, scope: &UsageScope) {
    sql.push(" WHERE r.organisation_id = ")
        .push_bind(scope.organisation_id.as_str());
    if let Some(from) = scope.from_ms {
        sql.push(" AND r.created_at >= ").push_bind(from);
    }
    if let Some(to) = scope.to_ms {
        sql.push(" AND r.created_at < ").push_bind(to);
    }
    query::push_filters(sql, scope, query::Source::Records);
}

#[cfg(test)]
mod tests;
