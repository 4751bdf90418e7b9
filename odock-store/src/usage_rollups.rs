//! The `usage_rollups` table: usage records pre-aggregated per UTC hour and per UTC day, for each
//! organisation × team × user × API key × model × provider × MCP server × status class (`2` for
//! 2xx, `4` for 4xx, …). Each row holds the request count, token and cost sums, the largest
//! latency and a latency histogram (one counter column per bucket of [`LATENCY_BOUNDS_MS`]).
//!
//! The usage writer adds a batch's newly inserted records here in the same transaction as the
//! records themselves (`add`), so reports read a few rows per hour or day instead of every
//! record. Both grains are kept because they answer different ranges: days for long periods,
//! hours for the edges of a period and for hourly charts. Absent dimensions are stored as `''`
//! (a key column cannot be NULL and stay unique); readers turn them back into `NULL`.
//!
//! Retention keeps the daily rows (totals survive the raw records) and drops hourly rows as old as
//! the records it deletes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use odock_core::UsageRecord;

use crate::db::{connection_backend, Backend, DbConnection, Param, SqlBuilder};

/// One hour in milliseconds: the hourly rollup period.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds: the daily rollup period (UTC days).
pub const DAY_MS: i64 = 86_400_000;

/// Inclusive upper bounds, in ms, of the latency histogram's buckets; one last bucket counts
/// everything slower. Exact below 8 ms, then about four buckets per doubling (a bucket is at most
/// ~30 % wider than its lower bound), up to 80 s.
pub const LATENCY_BOUNDS_MS: [i64; 45] = [
    0, 1, 2, 3, 4, 5, 6, 7, //
    10, 13, 16, 20, 25, 32, 40, 50, 64, 80, //
    100, 130, 160, 200, 250, 320, 400, 500, 640, 800, //
    1_000, 1_300, 1_600, 2_000, 2_500, 3_200, 4_000, 5_000, 6_400, 8_000, //
    10_000, 13_000, 16_000, 20_000, 32_000, 50_000, 80_000,
];

/// Buckets of the histogram: one per bound and the overflow bucket.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The histogram bucket `latency_ms` falls in.
pub fn latency_bucket(latency_ms: i64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|&bound| bound < latency_ms)
}

/// The column counting bucket `index`.
pub fn latency_column(index: usize) -> String {
    format!("lat_{index:02}")
}

/// How long a rollup row's period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grain {
    /// One UTC hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Grain {
    /// The grain as stored in the `grain` column (`h`, `d`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Grain::Hour => "h",
            Grain::Day => "d",
        }
    }

    /// The period's length in milliseconds.
    pub const fn ms(self) -> i64 {
        match self {
            Grain::Hour => HOUR_MS,
            Grain::Day => DAY_MS,
        }
    }

    /// The start of the period `at_ms` falls in.
    pub const fn start_of(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.ms()) * self.ms()
    }
}

/// The key columns, in primary-key order.
const KEY_COLUMNS: &str = "organisation_id, grain, bucket_ms, team_id, user_id, api_key_id, \
    model_id, provider, mcp_server_id, status_class";

/// The additive columns (besides the histogram), in insert order.
const SUM_COLUMNS: [&str; 7] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "billable_tokens",
    "cost_nanos_usd",
];

/// `lat_00, lat_01, …`.
fn latency_columns() -> String {
    (0..LATENCY_BUCKETS)
        .map(latency_column)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every column, in insert order.
fn all_columns() -> String {
    format!(
        "{KEY_COLUMNS}, model, {}, latency_max_ms, {}",
        SUM_COLUMNS.join(", "),
        latency_columns()
    )
}

/// The statement that creates the table, without its final `;` (migration 0008 holds exactly this
/// text; a test checks). SQLite's migration adds `WITHOUT ROWID`, so rows are stored in key order
/// and a period's rows are one sequential range instead of a lookup per row.
pub fn create_table_sql() -> String {
    let mut sql = String::from(
        "CREATE TABLE usage_rollups (\n    organisation_id TEXT NOT NULL,\n    \
         grain TEXT NOT NULL,\n    bucket_ms BIGINT NOT NULL,\n    team_id TEXT NOT NULL,\n    \
         user_id TEXT NOT NULL,\n    api_key_id TEXT NOT NULL,\n    model_id TEXT NOT NULL,\n    \
         provider TEXT NOT NULL,\n    mcp_server_id TEXT NOT NULL,\n    \
         status_class BIGINT NOT NULL,\n    model TEXT,\n",
    );
    for column in SUM_COLUMNS {
        let _ = writeln!(sql, "    {column} BIGINT NOT NULL DEFAULT 0,");
    }
    sql.push_str("    latency_max_ms BIGINT NOT NULL DEFAULT 0,\n");
    for index in 0..LATENCY_BUCKETS {
        let _ = writeln!(
            sql,
            "    {} BIGINT NOT NULL DEFAULT 0,",
            latency_column(index)
        );
    }
    let _ = write!(sql, "    PRIMARY KEY ({KEY_COLUMNS})\n)");
    sql
}

/// The statement that rolls every stored record up at `grain` into an empty `usage_rollups`
/// (migration 0008 backfills with exactly this text; [`rebuild`] runs it). MCP servers come from
/// one grouped join, not a lookup per record: a freshly loaded table without planner statistics
/// would otherwise be scanned once per record on PostgreSQL.
pub fn backfill_sql(grain: Grain) -> String {
    let mut buckets = String::new();
    for (index, bound) in LATENCY_BOUNDS_MS.iter().enumerate() {
        let lower = match index {
            0 => String::new(),
            _ => format!("latency_ms > {} AND ", LATENCY_BOUNDS_MS[index - 1]),
        };
        let _ = write!(
            buckets,
            ",\n       CAST(SUM(CASE WHEN {lower}latency_ms <= {bound} THEN 1 ELSE 0 END) AS BIGINT)"
        );
    }
    let _ = write!(
        buckets,
        ",\n       CAST(SUM(CASE WHEN latency_ms > {} THEN 1 ELSE 0 END) AS BIGINT)",
        LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]
    );
    let sums: String = SUM_COLUMNS[1..]
        .iter()
        .map(|column| format!(", CAST(SUM({column}) AS BIGINT)"))
        .collect();
    format!(
        "INSERT INTO usage_rollups ({columns})\n\
         SELECT organisation_id, '{grain}', bucket_ms, team_id, user_id, api_key_id, model_id, \
         provider, mcp_server_id, status_class, MAX(model), COUNT(*){sums}, MAX(latency_ms){buckets}\n\
         FROM (SELECT r.organisation_id, CAST(r.created_at / {ms} AS BIGINT) * {ms} AS bucket_ms, \
         COALESCE(r.team_id, '') AS team_id, COALESCE(r.user_id, '') AS user_id, r.api_key_id, \
         COALESCE(r.model_id, '') AS model_id, r.provider, \
         COALESCE(m.mcp_server_id, '') AS mcp_server_id, \
         CAST(r.http_status / 100 AS BIGINT) AS status_class, r.model, r.input_tokens, \
         r.output_tokens, r.cached_tokens, r.reasoning_tokens, r.billable_tokens, \
         r.cost_nanos_usd, r.latency_ms FROM usage_records r \
         LEFT JOIN (SELECT usage_record_id, MAX(mcp_server_id) AS mcp_server_id \
         FROM mcp_usage_records GROUP BY usage_record_id) m ON m.usage_record_id = r.id) s\n\
         GROUP BY organisation_id, bucket_ms, team_id, user_id, api_key_id, model_id, provider, \
         mcp_server_id, status_class;",
        columns = all_columns(),
        grain = grain.as_str(),
        ms = grain.ms(),
    )
}

/// Recomputes every rollup from the stored records (for records loaded behind the writer's back,
/// as the analytics benchmarks and tests do). Rows of purged records are lost.
pub async fn rebuild(conn: &mut DbConnection) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM usage_rollups")
        .execute(&mut *tx)
        .await?;
    for grain in [Grain::Hour, Grain::Day] {
        sqlx::query(&backfill_sql(grain)).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// One rollup row's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RollupKey {
    organisation_id: String,
    grain: Grain,
    bucket_ms: i64,
    team_id: String,
    user_id: String,
    api_key_id: String,
    model_id: String,
    provider: String,
    mcp_server_id: String,
    status_class: i64,
}

/// What a batch adds to one rollup row.
#[derive(Debug, Clone)]
struct RollupSums {
    model: Option<String>,
    sums: [i64; SUM_COLUMNS.len()],
    latency_max_ms: i64,
    latency: [i64; LATENCY_BUCKETS],
}

impl Default for RollupSums {
    fn default() -> Self {
        Self {
            model: None,
            sums: [0; SUM_COLUMNS.len()],
            latency_max_ms: 0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The most rows one upsert statement carries (66 parameters each: far under SQLite's 32,766).
const ROWS_PER_STATEMENT: usize = 64;

/// The rows of the next upsert for `remaining` rows: the largest power of two that fits, so a
/// batch is written with statements of at most seven shapes, each parsed once per connection and
/// kept prepared. (Parsing the wide upsert on every batch cost more than executing it.)
fn rows_in_next(remaining: usize) -> usize {
    let mut size = ROWS_PER_STATEMENT;
    while size > remaining {
        size /= 2;
    }
    size.max(1)
}

/// Adds `records` (newly inserted ones only: each must count once) to their hourly and daily rows.
/// `mcp_server_of` maps the usage record id of MCP traffic to its server. Rows are written in key
/// order, so concurrent writers on PostgreSQL lock them in the same order and never deadlock.
pub(crate) async fn add(
    conn: &mut DbConnection,
    records: &[&UsageRecord],
    mcp_server_of: &HashMap<&str, &str>,
) -> Result<(), sqlx::Error> {
    let mut rows: BTreeMap<RollupKey, RollupSums> = BTreeMap::new();
    for record in records {
        let created_ms = record.created_at.timestamp_millis();
        let latency = to_i64(record.latency_ms);
        for grain in [Grain::Hour, Grain::Day] {
            let key = RollupKey {
                organisation_id: record.organisation_id.as_str().to_owned(),
                grain,
                bucket_ms: grain.start_of(created_ms),
                team_id: record
                    .team_id
                    .as_ref()
                    .map_or_else(String::new, |id| id.as_str().to_owned()),
                user_id: record
                    .user_id
                    .as_ref()
                    .map_or_else(String::new, |id| id.as_str().to_owned()),
                api_key_id: record.api_key_id.as_str().to_owned(),
                model_id: record
                    .model_id
                    .as_ref()
                    .map_or_else(String::new, |id| id.as_str().to_owned()),
                provider: record.provider.clone(),
                mcp_server_id: mcp_server_of
                    .get(record.id.as_str())
                    .map_or_else(String::new, |id| (*id).to_owned()),
                status_class: i64::from(record.http_status / 100),
            };
            let row = rows.entry(key).or_default();
            if record.model.is_some() {
                row.model.clone_from(&record.model);
            }
            let adds = [
                1,
                to_i64(record.tokens.input),
                to_i64(record.tokens.output),
                to_i64(record.tokens.cached_input),
                to_i64(record.tokens.reasoning),
                to_i64(record.billable_tokens),
                record.cost_nanos_usd,
            ];
            for (sum, add) in row.sums.iter_mut().zip(adds) {
                *sum = sum.saturating_add(add);
            }
            row.latency_max_ms = row.latency_max_ms.max(latency);
            row.latency[latency_bucket(latency)] += 1;
        }
    }
    let backend = connection_backend(conn);
    let rows: Vec<_> = rows.into_iter().collect();
    let mut rest = rows.as_slice();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rows_in_next(rest.len()));
        rest = tail;
        let mut sql = SqlBuilder::new(format!(
            "INSERT INTO usage_rollups ({}) VALUES ",
            all_columns()
        ))
        .for_backend(backend);
        for (i, (key, row)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let mut params: Vec<Param> = vec![
                key.organisation_id.as_str().into(),
                key.grain.as_str().into(),
                key.bucket_ms.into(),
                key.team_id.as_str().into(),
                key.user_id.as_str().into(),
                key.api_key_id.as_str().into(),
                key.model_id.as_str().into(),
                key.provider.as_str().into(),
                key.mcp_server_id.as_str().into(),
                key.status_class.into(),
                row.model.as_deref().into(),
            ];
            params.extend(row.sums.iter().map(|&sum| Param::from(sum)));
            params.push(row.latency_max_ms.into());
            params.extend(row.latency.iter().map(|&count| Param::from(count)));
            sql.push_tuple(params);
        }
        sql.push(&upsert_clause(backend));
        sql.query().persistent(true).execute(&mut *conn).await?;
    }
    Ok(())
}

/// ` ON CONFLICT (key) DO UPDATE SET …`: sums add up, the largest latency stays, the latest
/// recorded model name wins.
fn upsert_clause(backend: Backend) -> String {
    let greatest = match backend {
        Backend::Sqlite => "MAX",
        Backend::Postgres => "GREATEST",
    };
    let mut clause = format!(
        " ON CONFLICT ({KEY_COLUMNS}) DO UPDATE SET \
         model = COALESCE(excluded.model, usage_rollups.model), \
         latency_max_ms = {greatest}(usage_rollups.latency_max_ms, excluded.latency_max_ms)"
    );
    let latency: Vec<String> = (0..LATENCY_BUCKETS).map(latency_column).collect();
    for column in SUM_COLUMNS
        .iter()
        .copied()
        .chain(latency.iter().map(String::as_str))
    {
        let _ = write!(
            clause,
            ", {column} = usage_rollups.{column} + excluded.{column}"
        );
    }
    clause
}

/// Deletes hourly rows of periods that ended before `cutoff_ms` (daily rows stay).
pub async fn purge_hours_before(pool: &crate::db::Db, cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM usage_rollups WHERE grain = 'h' AND bucket_ms + 3600000 <= $1")
            .bind(cutoff_ms)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_latency_in_order() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 1);
        assert_eq!(latency_bucket(7), 7);
        assert_eq!(latency_bucket(8), 8);
        assert_eq!(latency_bucket(10), 8);
        assert_eq!(latency_bucket(11), 9);
        assert_eq!(latency_bucket(80_000), LATENCY_BOUNDS_MS.len() - 1);
        assert_eq!(latency_bucket(80_001), LATENCY_BUCKETS - 1);
        assert_eq!(latency_bucket(i64::MAX), LATENCY_BUCKETS - 1);
        assert!(LATENCY_BOUNDS_MS.windows(2).all(|w| w[0] < w[1]));
    }

    /// The migration creates and backfills the table with the statements this module generates,
    /// so rows written by the writer and rows written by the backfill agree.
    #[test]
    fn the_migration_holds_the_generated_statements() {
        for migration in [
            include_str!("../migrations/sqlite/0008_usage_rollups.sql"),
            include_str!("../migrations/postgres/0008_usage_rollups.sql"),
        ] {
            assert!(
                migration.contains(&create_table_sql()),
                "CREATE TABLE differs"
            );
            for grain in [Grain::Hour, Grain::Day] {
                assert!(
                    migration.contains(&backfill_sql(grain)),
                    "backfill at {grain:?} differs"
                );
            }
        }
    }

    #[test]
    #[ignore = "prints the migration text; run with --ignored --nocapture to regenerate it"]
    fn print_migration() {
        println!("{}\n", create_table_sql());
        println!("{}\n", backfill_sql(Grain::Hour));
        println!("{}", backfill_sql(Grain::Day));
    }
}
