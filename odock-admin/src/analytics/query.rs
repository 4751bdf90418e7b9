//! How a report reads its counters: whole hours and days from `usage_rollups`, the minutes at the
//! edges of the period from `usage_records`, merged per group in Rust.
//!
//! A period `[from, to)` is cut into the records before the first whole hour, whole hours up to
//! the first whole day, whole days, whole hours after the last whole day, and the records after the
//! last whole hour. Each piece is read where it is cheapest and exact; the answer is the same as
//! counting every record, at the cost of a few thousand rollup rows instead of millions of records.

use std::collections::HashMap;

use odock_store::db::{end_report, report_connection, Db, DbRow, SqlBuilder};
use odock_store::usage_rollups::{latency_column, Grain, DAY_MS, HOUR_MS, LATENCY_BUCKETS};
use sqlx::Row;

use super::latency::Buckets;
use super::{StatusFilter, Traffic, UsageScope, UsageStats, MCP_PROVIDER};

/// Where counters are read from. Both tables have the dimension columns under the same names;
/// the rollups store an absent team, user, model or MCP server as `''`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Rollups,
    Records,
}

/// What a report groups by, as the group key columns of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dim {
    Day,
    Hour,
    Model,
    ApiKey,
    Team,
    User,
    Provider,
    McpServer,
    /// The status class: `2` for 2xx, `4` for 4xx, ….
    Status,
    /// `1` for MCP traffic, `0` for LLM traffic.
    Mcp,
}

impl Dim {
    /// The key as TEXT (so every dimension decodes alike); NULL for an absent object.
    fn sql(self, source: Source) -> String {
        let time = match source {
            Source::Rollups => "r.bucket_ms",
            Source::Records => "r.created_at",
        };
        let optional = |column: &str| match source {
            Source::Rollups => format!("NULLIF(r.{column}, '')"),
            Source::Records => format!("r.{column}"),
        };
        match self {
            Dim::Day => format!("CAST(CAST({time} / {DAY_MS} AS BIGINT) AS TEXT)"),
            Dim::Hour => format!("CAST(CAST({time} / {HOUR_MS} AS BIGINT) AS TEXT)"),
            Dim::Model => optional("model_id"),
            Dim::ApiKey => "r.api_key_id".to_owned(),
            Dim::Team => optional("team_id"),
            Dim::User => optional("user_id"),
            Dim::Provider => "r.provider".to_owned(),
            Dim::McpServer => match source {
                Source::Rollups => optional("mcp_server_id"),
                // MCP records carry their server in `mcp_usage_records`; looked up for those only.
                Source::Records => {
                    "CASE WHEN r.provider = 'mcp' THEN (SELECT MAX(m.mcp_server_id) \
                     FROM mcp_usage_records m WHERE m.usage_record_id = r.id) END"
                        .to_owned()
                }
            },
            Dim::Status => match source {
                Source::Rollups => "CAST(r.status_class AS TEXT)".to_owned(),
                Source::Records => "CAST(CAST(r.http_status / 100 AS BIGINT) AS TEXT)".to_owned(),
            },
            Dim::Mcp => "CAST(CASE WHEN r.provider = 'mcp' THEN 1 ELSE 0 END AS TEXT)".to_owned(),
        }
    }
}

/// A group's key: one value per [`Dim`] of the report, in order.
pub(crate) type Key = Vec<Option<String>>;

/// What a report knows of one group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cell {
    /// Additive counters only (no rate, no percentiles).
    pub stats: UsageStats,
    /// The model name (or MCP server slug) the records carry.
    pub recorded_name: Option<String>,
    pub buckets: Buckets,
}

/// A half-open period in unix ms.
type Span = (i64, i64);

/// The pieces of a period: rollup ranges of a grain, and record ranges.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub rollups: Vec<(Grain, Span)>,
    pub records: Vec<Span>,
}

/// The far future, a whole day (year 10000), for an open-ended period.
const END_OF_TIME_MS: i64 = 253_402_300_800_000;

fn ceil_to(at: i64, unit: i64) -> i64 {
    at.div_euclid(unit) * unit + if at.rem_euclid(unit) == 0 { 0 } else { unit }
}

fn floor_to(at: i64, unit: i64) -> i64 {
    at.div_euclid(unit) * unit
}

/// Cuts `[from, to)` into pieces; `hours_only` when the report groups by hour (a day row cannot
/// be split into its hours).
pub(crate) fn plan(from: Option<i64>, to: Option<i64>, hours_only: bool) -> Plan {
    let from = from.unwrap_or(0);
    let to = to.unwrap_or(END_OF_TIME_MS);
    let mut plan = Plan::default();
    if from >= to {
        return plan;
    }
    let (h0, h1) = (ceil_to(from, HOUR_MS), floor_to(to, HOUR_MS));
    if h0 >= h1 {
        plan.records.push((from, to));
        return plan;
    }
    if from < h0 {
        plan.records.push((from, h0));
    }
    if h1 < to {
        plan.records.push((h1, to));
    }
    let (d0, d1) = (ceil_to(h0, DAY_MS), floor_to(h1, DAY_MS));
    if hours_only || d0 >= d1 {
        plan.rollups.push((Grain::Hour, (h0, h1)));
        return plan;
    }
    if h0 < d0 {
        plan.rollups.push((Grain::Hour, (h0, d0)));
    }
    plan.rollups.push((Grain::Day, (d0, d1)));
    if d1 < h1 {
        plan.rollups.push((Grain::Hour, (d1, h1)));
    }
    plan
}

/// The additive counters of every group of `scope` by `dims`, and their bucketed latency
/// histograms, read as [`plan`] says.
pub(crate) async fn cells(
    pool: &Db,
    scope: &UsageScope,
    dims: &[Dim],
) -> Result<HashMap<Key, Cell>, sqlx::Error> {
    let plan = plan(scope.from_ms, scope.to_ms, dims.contains(&Dim::Hour));
    let mut cells: HashMap<Key, Cell> = HashMap::new();
    let mut conn = report_connection(pool).await?;
    if !plan.rollups.is_empty() {
        let sql = grouped(scope, dims, Source::Rollups, &plan.rollup_pieces());
        for row in sql.query().fetch_all(&mut *conn).await? {
            let cell = cells.entry(key_of(&row, dims.len())?).or_default();
            merge_counters(cell, &row)?;
            let mut buckets = Buckets {
                max_ms: row
                    .try_get::<Option<i64>, _>("latency_max_ms")?
                    .unwrap_or(0),
                ..Buckets::default()
            };
            for (index, count) in buckets.counts.iter_mut().enumerate() {
                *count = row
                    .try_get::<Option<i64>, _>(latency_column(index).as_str())?
                    .unwrap_or(0);
            }
            cell.buckets.add(&buckets);
        }
    }
    if !plan.records.is_empty() {
        let pieces: Vec<Piece> = plan
            .records
            .iter()
            .map(|&span| Piece::Records(span))
            .collect();
        let sql = grouped(scope, dims, Source::Records, &pieces);
        for row in sql.query().fetch_all(&mut *conn).await? {
            let cell = cells.entry(key_of(&row, dims.len())?).or_default();
            merge_counters(cell, &row)?;
        }
    }
    end_report(conn).await?;
    if !plan.records.is_empty() {
        for (key, histogram) in histograms(pool, scope, dims, &plan.records).await? {
            let cell = cells.entry(key).or_default();
            for (latency, count) in histogram {
                cell.buckets.record(latency, count);
            }
        }
    }
    Ok(cells)
}

/// `(latency, count)` sorted by latency, per group, of the records in `spans` — the exact
/// histogram percentiles are read from.
pub(crate) async fn histograms(
    pool: &Db,
    scope: &UsageScope,
    dims: &[Dim],
    spans: &[Span],
) -> Result<HashMap<Key, Vec<(i64, i64)>>, sqlx::Error> {
    let keys = key_columns(dims, Source::Records);
    let mut sql = SqlBuilder::new(format!(
        "SELECT {keys}r.latency_ms AS latency_ms, COUNT(*) AS c FROM "
    ));
    let pieces: Vec<Piece> = spans.iter().map(|&span| Piece::Records(span)).collect();
    push_from(&mut sql, scope, &pieces);
    push_filters(&mut sql, scope, Source::Records);
    sql.push(" GROUP BY ");
    for dim in dims {
        sql.push(&dim.sql(Source::Records)).push(", ");
    }
    sql.push("r.latency_ms");
    let mut out: HashMap<Key, Vec<(i64, i64)>> = HashMap::new();
    let mut conn = report_connection(pool).await?;
    let rows = sql.query().fetch_all(&mut *conn).await?;
    end_report(conn).await?;
    for row in rows {
        out.entry(key_of(&row, dims.len())?)
            .or_default()
            .push((row.try_get("latency_ms")?, row.try_get("c")?));
    }
    for histogram in out.values_mut() {
        histogram.sort_unstable();
    }
    Ok(out)
}

/// One piece of a period.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Rollups(Grain, Span),
    Records(Span),
}

impl Plan {
    fn rollup_pieces(&self) -> Vec<Piece> {
        self.rollups
            .iter()
            .map(|&(grain, span)| Piece::Rollups(grain, span))
            .collect()
    }
}

/// `SELECT keys, counters FROM pieces WHERE filters GROUP BY keys`.
fn grouped(scope: &UsageScope, dims: &[Dim], source: Source, pieces: &[Piece]) -> SqlBuilder {
    let keys = key_columns(dims, source);
    let counters = match source {
        Source::Rollups => rollup_counters(),
        Source::Records => RECORD_COUNTERS.to_owned(),
    };
    let mut sql = SqlBuilder::new(format!(
        "SELECT {keys}MAX(r.model) AS recorded_name, {counters} FROM "
    ));
    push_from(&mut sql, scope, pieces);
    push_filters(&mut sql, scope, source);
    if !dims.is_empty() {
        let group: Vec<String> = dims.iter().map(|dim| dim.sql(source)).collect();
        sql.push(" GROUP BY ").push(&group.join(", "));
    }
    sql
}

/// `k0, k1, …, ` — the key columns of `dims`.
fn key_columns(dims: &[Dim], source: Source) -> String {
    dims.iter()
        .enumerate()
        .map(|(i, dim)| format!("{} AS k{i}, ", dim.sql(source)))
        .collect()
}

fn key_of(row: &DbRow, len: usize) -> Result<Key, sqlx::Error> {
    (0..len)
        .map(|i| row.try_get::<Option<String>, _>(format!("k{i}").as_str()))
        .collect()
}

/// The organisation's rows of each piece, as one derived table `r`: a `UNION ALL` of index range
/// scans (`(organisation_id, grain, bucket_ms)` and `(organisation_id, created_at)`).
fn push_from(sql: &mut SqlBuilder, scope: &UsageScope, pieces: &[Piece]) {
    sql.push("(");
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        match *piece {
            Piece::Rollups(grain, (from, to)) => {
                sql.push("SELECT * FROM usage_rollups WHERE organisation_id = ")
                    .push_bind(scope.organisation_id.as_str())
                    .push(" AND grain = ")
                    .push_bind(grain.as_str())
                    .push(" AND bucket_ms >= ")
                    .push_bind(from)
                    .push(" AND bucket_ms < ")
                    .push_bind(to);
            }
            Piece::Records((from, to)) => {
                sql.push("SELECT * FROM usage_records WHERE organisation_id = ")
                    .push_bind(scope.organisation_id.as_str())
                    .push(" AND created_at >= ")
                    .push_bind(from)
                    .push(" AND created_at < ")
                    .push_bind(to);
            }
        }
    }
    sql.push(") r WHERE 1 = 1");
}

/// ` AND …` narrowing `r` to `scope` (besides organisation and period, which [`push_from`] does).
pub(crate) fn push_filters(sql: &mut SqlBuilder, scope: &UsageScope, source: Source) {
    let any_of = |sql: &mut SqlBuilder, column: &str, values: &[String]| {
        sql.push(" AND r.")
            .push(column)
            .push(" IN ")
            .push_tuple(values.iter().map(String::as_str));
    };
    match (scope.team_ids.is_empty(), scope.api_key_ids.is_empty()) {
        (true, true) => {}
        (false, true) => any_of(sql, "team_id", &scope.team_ids),
        (true, false) => any_of(sql, "api_key_id", &scope.api_key_ids),
        (false, false) => {
            sql.push(" AND (r.team_id IN ")
                .push_tuple(scope.team_ids.iter().map(String::as_str))
                .push(" OR r.api_key_id IN ")
                .push_tuple(scope.api_key_ids.iter().map(String::as_str))
                .push(")");
        }
    }
    if !scope.model_ids.is_empty() {
        any_of(sql, "model_id", &scope.model_ids);
    }
    if !scope.providers.is_empty() {
        any_of(sql, "provider", &scope.providers);
    }
    if !scope.user_ids.is_empty() {
        any_of(sql, "user_id", &scope.user_ids);
    }
    let status = match source {
        Source::Rollups => "r.status_class < 4",
        Source::Records => "r.http_status < 400",
    };
    match scope.status {
        None => {}
        Some(StatusFilter::Success) => {
            sql.push(" AND ").push(status);
        }
        Some(StatusFilter::Error) => {
            sql.push(" AND NOT (").push(status).push(")");
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

/// The counters of usage records (aliases read by [`merge_counters`]).
const RECORD_COUNTERS: &str = "COUNT(*) AS requests, \
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

/// The same counters summed over rollup rows, plus their latency histogram.
fn rollup_counters() -> String {
    let mut sql = String::from(
        "COALESCE(CAST(SUM(r.requests) AS BIGINT), 0) AS requests, \
         COALESCE(CAST(SUM(CASE WHEN r.status_class < 4 THEN r.requests ELSE 0 END) AS BIGINT), 0) \
           AS successes, \
         COALESCE(CAST(SUM(CASE WHEN r.provider = 'mcp' THEN r.requests ELSE 0 END) AS BIGINT), 0) \
           AS mcp_requests, \
         COALESCE(CAST(SUM(r.input_tokens) AS BIGINT), 0) AS input_tokens, \
         COALESCE(CAST(SUM(r.output_tokens) AS BIGINT), 0) AS output_tokens, \
         COALESCE(CAST(SUM(r.cached_tokens) AS BIGINT), 0) AS cached_tokens, \
         COALESCE(CAST(SUM(r.reasoning_tokens) AS BIGINT), 0) AS reasoning_tokens, \
         COALESCE(CAST(SUM(r.billable_tokens) AS BIGINT), 0) AS billable_tokens, \
         COALESCE(CAST(SUM(r.cost_nanos_usd) AS BIGINT), 0) AS cost_nanos_usd, \
         COALESCE(CAST(SUM(CASE WHEN r.provider = 'mcp' THEN r.cost_nanos_usd ELSE 0 END) \
           AS BIGINT), 0) AS mcp_cost_nanos_usd, \
         MAX(r.latency_max_ms) AS latency_max_ms",
    );
    for index in 0..LATENCY_BUCKETS {
        let column = latency_column(index);
        sql.push_str(&format!(", CAST(SUM(r.{column}) AS BIGINT) AS {column}"));
    }
    sql
}

/// Adds a row's counters (and recorded name) to `cell`.
fn merge_counters(cell: &mut Cell, row: &DbRow) -> Result<(), sqlx::Error> {
    let requests: i64 = row.try_get("requests")?;
    if requests == 0 {
        return Ok(());
    }
    let successes: i64 = row.try_get("successes")?;
    let mcp_requests: i64 = row.try_get("mcp_requests")?;
    let input_tokens: i64 = row.try_get("input_tokens")?;
    let output_tokens: i64 = row.try_get("output_tokens")?;
    let cost_nanos_usd: i64 = row.try_get("cost_nanos_usd")?;
    let mcp_cost_nanos_usd: i64 = row.try_get("mcp_cost_nanos_usd")?;
    cell.stats.add(&UsageStats {
        requests,
        successes,
        errors: requests - successes,
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
        ..UsageStats::default()
    });
    let name: Option<String> = row.try_get("recorded_name")?;
    if name > cell.recorded_name {
        cell.recorded_name = name;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = DAY_MS;
    const H: i64 = HOUR_MS;

    #[test]
    fn a_period_is_cut_into_records_hours_and_days() {
        let day = 20_000 * D;
        // 00:30 on day 0 to 02:15 on day 3.
        let plan = plan(Some(day + H / 2), Some(day + 3 * D + 2 * H + H / 4), false);
        assert_eq!(
            plan,
            Plan {
                rollups: vec![
                    (Grain::Hour, (day + H, day + D)),
                    (Grain::Day, (day + D, day + 3 * D)),
                    (Grain::Hour, (day + 3 * D, day + 3 * D + 2 * H)),
                ],
                records: vec![
                    (day + H / 2, day + H),
                    (day + 3 * D + 2 * H, day + 3 * D + 2 * H + H / 4)
                ],
            }
        );
        // Whole days only.
        assert_eq!(
            self::plan(Some(day), Some(day + 2 * D), false),
            Plan {
                rollups: vec![(Grain::Day, (day, day + 2 * D))],
                records: vec![],
            }
        );
        // Grouped by hour: no day rows.
        assert_eq!(
            self::plan(Some(day), Some(day + 2 * D), true).rollups,
            vec![(Grain::Hour, (day, day + 2 * D))]
        );
        // Inside one hour: records only; an empty or inverted period: nothing.
        assert_eq!(
            self::plan(Some(day + 1), Some(day + H - 1), false),
            Plan {
                rollups: vec![],
                records: vec![(day + 1, day + H - 1)],
            }
        );
        assert_eq!(self::plan(Some(day), Some(day), false), Plan::default());
        // Open-ended: every day.
        assert_eq!(
            self::plan(None, None, false).rollups,
            vec![(Grain::Day, (0, END_OF_TIME_MS))]
        );
    }
}
