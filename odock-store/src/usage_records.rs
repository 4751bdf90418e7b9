//! The `usage_records` table: one row per governed request. The writer keeps the
//! [rollups](crate::usage_rollups) in step with it.
//!
//! Writes come from the batched [`SqlUsageSink`](crate::usage_writer::SqlUsageSink) through
//! [`insert_batch`]; reads ([`list`], [`get`]) serve the admin API. Rows map back to
//! [`odock_core::UsageRecord`] exactly, except that `createdAt` is stored with millisecond precision.
//!
//! Inserts are idempotent by record id (`ON CONFLICT(id) DO NOTHING`), and the rollups only count
//! rows that were actually inserted, so a batch retried after an ambiguous failure is never counted
//! twice.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use odock_core::{
    ApiKeyId, McpUsageRecord, ModelId, OrganisationId, RequestId, TeamId, TokenUsage, UsageRecord,
    UsageRecordId, UserId,
};
use serde_json::Value;
use sqlx::Connection;

use crate::db::{connection_backend, from_ms, to_ms, Db, DbConnection, Param, SqlBuilder};

/// Rows per multi-row insert: the largest chunk, then halves down to one, so a batch of any size is
/// written with statements of at most six shapes that stay prepared.
const INSERT_CHUNK: usize = 32;

/// The size of the next insert chunk for `remaining` records.
fn insert_chunk(remaining: usize) -> usize {
    let mut size = INSERT_CHUNK;
    while size > remaining {
        size /= 2;
    }
    size.max(1)
}

/// Columns of one `usage_records` row, in insert order.
const COLUMNS: &str = "id, request_id, organisation_id, team_id, user_id, api_key_id, provider, \
    model, model_id, endpoint, http_status, error_code, latency_ms, gateway_overhead_us, stream, \
    input_tokens, output_tokens, cached_tokens, reasoning_tokens, billable_tokens, cost_nanos_usd, \
    tokens, billing, provider_usage, routing, metadata, provider_request_id, trace_id, created_at";
const COLUMN_COUNT: usize = 29;

pub use crate::record_page::is_invalid_cursor;
use crate::record_page::RecordQuery;
/// The largest page [`list`] returns (the one bound of both record lists).
pub use crate::record_page::MAX_LIST_LIMIT;

/// Inserts `records` and the MCP side of those that are MCP traffic (`mcp`), adds them to the
/// hourly and daily [rollups](crate::usage_rollups) and adds their ledger charges to the budget and
/// quota windows, atomically: in a transaction of its own, or in a savepoint when `conn` is already
/// inside one. Records whose id is already stored are skipped (neither counted nor charged again).
/// Returns how many usage records were inserted.
pub async fn insert_batch(
    conn: &mut DbConnection,
    records: &[UsageRecord],
    mcp: &[McpUsageRecord],
) -> Result<u64, sqlx::Error> {
    if records.is_empty() && mcp.is_empty() {
        return Ok(0);
    }
    let backend = connection_backend(conn);
    let mut tx = conn.begin().await?;
    let mut inserted: HashSet<String> = HashSet::with_capacity(records.len());
    let mut rest = records;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(insert_chunk(rest.len()));
        rest = tail;
        let mut builder = SqlBuilder::new(format!("INSERT INTO usage_records ({COLUMNS}) VALUES "))
            .for_backend(backend);
        for (i, record) in chunk.iter().enumerate() {
            if i > 0 {
                builder.push(", ");
            }
            builder.push_tuple(record_params(record));
        }
        builder.push(" ON CONFLICT(id) DO NOTHING RETURNING id");
        // Cached as a prepared statement: chunks come in six sizes only, so parsing (the biggest
        // cost of a multi-row insert) happens once per size and connection.
        let rows = builder.query().persistent(true).fetch_all(&mut *tx).await?;
        for row in rows {
            inserted.insert(sqlx::Row::try_get::<String, _>(&row, 0)?);
        }
    }
    let count = inserted.len() as u64;
    crate::mcp_usage::insert_batch(&mut tx, mcp).await?;

    // Each inserted id counts once, even if the batch repeated it.
    let new: Vec<&UsageRecord> = records
        .iter()
        .filter(|r| inserted.remove(r.id.as_str()))
        .collect();
    crate::ledger::apply_charges(&mut tx, new.iter().flat_map(|r| &r.ledger_charges)).await?;
    let mcp_server_of: HashMap<&str, &str> = mcp
        .iter()
        .map(|m| (m.usage_record_id.as_str(), m.mcp_server_id.as_str()))
        .collect();
    crate::usage_rollups::add(&mut tx, &new, &mcp_server_of).await?;
    tx.commit().await?;
    Ok(count)
}

/// Which records [`list`] returns. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Only this organisation's records.
    pub organisation_id: Option<String>,
    /// Inclusive lower bound on `createdAt`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `createdAt`.
    pub to: Option<DateTime<Utc>>,
    /// Only requests made with this virtual key.
    pub api_key_id: Option<String>,
    /// Only requests made by this team's keys.
    pub team_id: Option<String>,
    /// Only requests made by this user's keys.
    pub user_id: Option<String>,
    /// Only requests for this model (its id).
    pub model_id: Option<String>,
    /// Only requests served by this provider.
    pub provider: Option<String>,
    /// Only the record with this request id (`X-Request-Id`).
    pub request_id: Option<String>,
    /// HTTP status of the request.
    pub status: Option<u16>,
    /// The order of the list (newest first by default).
    pub sort: UsageSort,
}

/// The columns [`list`] may order by: an allow-list, so no caller text reaches the SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortColumn {
    /// When the record was made (`createdAt`).
    #[default]
    Time,
    /// The request's cost.
    Cost,
    /// The request's end-to-end latency.
    Latency,
    /// Input plus output tokens (what the records table shows).
    Tokens,
}

/// The order of [`list`]: a column and a direction, ties broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageSort {
    /// What to order by.
    pub column: SortColumn,
    /// Largest (or newest) first when set.
    pub descending: bool,
}

impl Default for UsageSort {
    fn default() -> Self {
        Self {
            column: SortColumn::Time,
            descending: true,
        }
    }
}

impl UsageSort {
    const NAMES: [(&'static str, SortColumn); 4] = [
        ("time", SortColumn::Time),
        ("cost", SortColumn::Cost),
        ("latency", SortColumn::Latency),
        ("tokens", SortColumn::Tokens),
    ];

    /// `time`, `cost`, `latency` or `tokens` (ascending), or with a leading `-` (descending).
    pub fn parse(text: &str) -> Option<Self> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let column = Self::NAMES.iter().find(|(n, _)| *n == name)?.1;
        Some(Self { column, descending })
    }

    /// The query value this order is spelled with ([`UsageSort::parse`]'s inverse).
    pub fn name(self) -> String {
        let name = Self::NAMES
            .iter()
            .find(|(_, c)| *c == self.column)
            .map_or("time", |(n, _)| n);
        if self.descending {
            format!("-{name}")
        } else {
            name.to_owned()
        }
    }

    fn expression(self) -> &'static str {
        match self.column {
            SortColumn::Time => "created_at",
            SortColumn::Cost => "cost_nanos_usd",
            SortColumn::Latency => "latency_ms",
            SortColumn::Tokens => "(input_tokens + output_tokens)",
        }
    }

    /// The record's value of the sort column, as the cursor carries it.
    pub fn key(self, record: &UsageRecord) -> i64 {
        match self.column {
            SortColumn::Time => record.created_at.timestamp_millis(),
            SortColumn::Cost => record.cost_nanos_usd,
            SortColumn::Latency => to_i64(record.latency_ms),
            SortColumn::Tokens => {
                to_i64(record.tokens.input).saturating_add(to_i64(record.tokens.output))
            }
        }
    }
}

/// One page of records matching `filter`, in `filter.sort` order (newest first by default), and the
/// cursor of the next page (`None` on the last page). `cursor` is a value returned by an earlier
/// call; a malformed cursor is an [`sqlx::Error::InvalidArgument`] (see [`is_invalid_cursor`];
/// answer it with a 400). `limit` is clamped to `1..=`[`MAX_LIST_LIMIT`].
pub async fn list(
    pool: &Db,
    filter: &UsageFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<UsageRecord>, Option<String>), sqlx::Error> {
    let sort = filter.sort;
    RecordQuery {
        select: format!("SELECT {COLUMNS} FROM usage_records"),
        equal: &[
            ("organisation_id", &filter.organisation_id),
            ("api_key_id", &filter.api_key_id),
            ("team_id", &filter.team_id),
            ("user_id", &filter.user_id),
            ("model_id", &filter.model_id),
            ("provider", &filter.provider),
            ("request_id", &filter.request_id),
        ],
        status: filter.status,
        from: filter.from,
        to: filter.to,
        order_by: sort.expression(),
        descending: sort.descending,
    }
    .page(
        pool,
        cursor,
        limit,
        |row| {
            <UsageRecordRow as sqlx::FromRow<'_, crate::db::DbRow>>::from_row(row)
                .and_then(UsageRecordRow::into_record)
        },
        |record| (sort.key(record), record.id.as_str()),
    )
    .await
}

/// The record `id`, when it exists (and, with `organisation_id`, belongs to that organisation).
pub async fn get(
    pool: &Db,
    organisation_id: Option<&str>,
    id: &str,
) -> Result<Option<UsageRecord>, sqlx::Error> {
    let row: Option<UsageRecordRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM usage_records WHERE id = $1 AND ($2 IS NULL OR organisation_id = $3)"
    ))
    .bind(id)
    .bind(organisation_id)
    .bind(organisation_id)
    .fetch_optional(pool)
    .await?;
    row.map(UsageRecordRow::into_record).transpose()
}

/// The bound values of one `usage_records` row, in [`COLUMNS`] order.
fn record_params(record: &UsageRecord) -> [Param; COLUMN_COUNT] {
    [
        record.id.as_str().into(),
        record.request_id.as_str().into(),
        record.organisation_id.as_str().into(),
        record.team_id.as_ref().map(|id| id.as_str()).into(),
        record.user_id.as_ref().map(|id| id.as_str()).into(),
        record.api_key_id.as_str().into(),
        record.provider.as_str().into(),
        record.model.as_deref().into(),
        record.model_id.as_ref().map(|id| id.as_str()).into(),
        record.endpoint.as_str().into(),
        i64::from(record.http_status).into(),
        record.error_code.as_deref().into(),
        to_i64(record.latency_ms).into(),
        to_i64(record.gateway_overhead_us).into(),
        record.stream.into(),
        to_i64(record.tokens.input).into(),
        to_i64(record.tokens.output).into(),
        to_i64(record.tokens.cached_input).into(),
        to_i64(record.tokens.reasoning).into(),
        to_i64(record.billable_tokens).into(),
        record.cost_nanos_usd.into(),
        json_text(&record.tokens).into(),
        record.billing.as_ref().map(json_text).into(),
        record.provider_usage.as_ref().map(json_text).into(),
        record.routing.as_ref().map(json_text).into(),
        json_text(&record.metadata).into(),
        record.provider_request_id.as_deref().into(),
        record.trace_id.as_deref().into(),
        to_ms(record.created_at).into(),
    ]
}

#[derive(sqlx::FromRow)]
struct UsageRecordRow {
    id: String,
    request_id: String,
    organisation_id: String,
    team_id: Option<String>,
    user_id: Option<String>,
    api_key_id: String,
    provider: String,
    model: Option<String>,
    model_id: Option<String>,
    endpoint: String,
    http_status: i64,
    error_code: Option<String>,
    latency_ms: i64,
    gateway_overhead_us: i64,
    stream: i64,
    billable_tokens: i64,
    cost_nanos_usd: i64,
    tokens: String,
    billing: Option<String>,
    provider_usage: Option<String>,
    routing: Option<String>,
    metadata: String,
    provider_request_id: Option<String>,
    trace_id: Option<String>,
    created_at: i64,
}

impl UsageRecordRow {
    fn into_record(self) -> Result<UsageRecord, sqlx::Error> {
        let tokens: TokenUsage = parse_json(&self.tokens)?;
        Ok(UsageRecord {
            id: UsageRecordId::new(self.id),
            // Stored ids were validated on the way in; read them back as they are.
            request_id: serde_json::from_value::<RequestId>(Value::String(self.request_id))
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
            organisation_id: OrganisationId::new(self.organisation_id),
            team_id: self.team_id.map(TeamId::new),
            user_id: self.user_id.map(UserId::new),
            api_key_id: ApiKeyId::new(self.api_key_id),
            provider: self.provider,
            model: self.model,
            model_id: self.model_id.map(ModelId::new),
            endpoint: self.endpoint,
            http_status: u16::try_from(self.http_status)
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
            error_code: self.error_code,
            latency_ms: to_u64(self.latency_ms),
            gateway_overhead_us: to_u64(self.gateway_overhead_us),
            stream: self.stream != 0,
            tokens,
            billable_tokens: to_u64(self.billable_tokens),
            cost_nanos_usd: self.cost_nanos_usd,
            billing: optional_json(self.billing)?,
            provider_usage: optional_json(self.provider_usage)?,
            routing: optional_json(self.routing)?,
            metadata: parse_json(&self.metadata)?,
            provider_request_id: self.provider_request_id,
            trace_id: self.trace_id,
            created_at: from_ms(self.created_at),
            ledger_charges: Vec::new(),
        })
    }
}

fn optional_json<T: serde::de::DeserializeOwned>(
    text: Option<String>,
) -> Result<Option<T>, sqlx::Error> {
    text.as_deref().map(parse_json).transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// JSON text of a value; serialising a `Value` or plain struct cannot fail.
fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    /// A fully populated record at `created_at_ms`.
    pub(crate) fn record(id: &str, created_at_ms: i64) -> UsageRecord {
        UsageRecord {
            id: UsageRecordId::new(id),
            request_id: RequestId::parse(&format!("req-{id}")).unwrap(),
            organisation_id: OrganisationId::new("org1"),
            team_id: Some(TeamId::new("team1")),
            user_id: None,
            api_key_id: ApiKeyId::new("key1"),
            provider: "openai".into(),
            model: Some("gpt".into()),
            model_id: Some(ModelId::new("m1")),
            endpoint: "/v1/chat/completions".into(),
            http_status: 200,
            error_code: None,
            latency_ms: 120,
            gateway_overhead_us: 350,
            stream: true,
            tokens: TokenUsage {
                input: 15,
                output: 644,
                cached_input: 5,
                reasoning: 100,
                input_audio: 1,
                units: 2,
                unit_kind: Some("images".into()),
                ..TokenUsage::default()
            },
            billable_tokens: 659,
            cost_nanos_usd: 5_182_000,
            billing: Some(odock_core::pricing::bill(
                &odock_core::ModelPricing {
                    input: odock_core::TokenRates {
                        text: 2_000_000_000,
                        ..Default::default()
                    },
                    output: odock_core::TokenRates {
                        text: 8_000_000_000,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                &TokenUsage {
                    input: 15,
                    output: 644,
                    ..TokenUsage::default()
                },
                odock_core::BillingMode::Tokens,
            )),
            provider_usage: Some(json!({"prompt_tokens": 15, "completion_tokens": 644})),
            routing: None,
            metadata: odock_core::UsageMetadata {
                schema: "usage_metadata_v1".into(),
                outcome: odock_core::RequestOutcome::Completed,
                usage_estimated: false,
                upstream_latency_ms: Some(100),
                received_at: Utc.timestamp_millis_opt(created_at_ms - 120).unwrap(),
                provider_type: Some("OPENAI".into()),
                denied_by: None,
            },
            provider_request_id: Some("chatcmpl-1".into()),
            trace_id: Some("trace-1".into()),
            created_at: Utc.timestamp_millis_opt(created_at_ms).unwrap(),
            ledger_charges: Vec::new(),
        }
    }

    async fn insert(pool: &Db, records: &[UsageRecord]) -> u64 {
        let mut conn = pool.acquire().await.unwrap();
        insert_batch(&mut conn, records, &[]).await.unwrap()
    }

    #[tokio::test]
    async fn records_round_trip_exactly() {
        let pool = crate::testing::database().await;
        let full = record("r1", 1_700_000_000_123);
        let mut sparse = record("r2", 1_700_000_000_124);
        sparse.team_id = None;
        sparse.model = None;
        sparse.model_id = None;
        sparse.provider_usage = Some(Value::Null);
        sparse.billing = None;
        sparse.metadata.upstream_latency_ms = None;
        sparse.metadata.provider_type = None;
        sparse.routing = Some(json!({"attempts": [{"modelId": "m2", "status": 500}]}));
        sparse.provider_request_id = None;
        sparse.trace_id = None;
        sparse.error_code = Some("upstream_error".into());
        sparse.http_status = 502;
        sparse.stream = false;
        assert_eq!(insert(&pool, &[full.clone(), sparse.clone()]).await, 2);

        assert_eq!(get(&pool, None, "r1").await.unwrap(), Some(full.clone()));
        assert_eq!(
            get(&pool, Some("org1"), "r2").await.unwrap(),
            Some(sparse.clone())
        );
        assert_eq!(get(&pool, Some("org2"), "r1").await.unwrap(), None);
        assert_eq!(get(&pool, None, "missing").await.unwrap(), None);

        let (page, next) = list(&pool, &UsageFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(page, vec![sparse, full]);
        assert_eq!(next, None);

        let (count,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM usage_records
             WHERE input_tokens = 15 AND output_tokens = 644 AND cached_tokens = 5
               AND reasoning_tokens = 100 AND stream IN (0, 1) AND created_at >= 1700000000123",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn rollups_count_each_inserted_record_once_per_hour_and_day() {
        let pool = crate::testing::database().await;
        let day1 = Utc
            .with_ymd_and_hms(2024, 3, 1, 23, 59, 59)
            .unwrap()
            .timestamp_millis();
        let day2 = day1 + 2_000;
        let mut failed = record("r2", day1);
        failed.http_status = 429;
        failed.latency_ms = 3;
        let mut unresolved = record("r4", day2);
        unresolved.model_id = None;
        let batch = vec![record("r1", day1), failed, record("r3", day2), unresolved];
        assert_eq!(insert(&pool, &batch).await, 4);
        // A retried batch (and a repeated id inside one) changes nothing.
        assert_eq!(
            insert(&pool, &[batch[0].clone(), batch[0].clone()]).await,
            0
        );
        assert_eq!(
            insert(&pool, &[record("r5", day1), record("r5", day1)]).await,
            1
        );

        type Row = (
            String,
            i64,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT grain, bucket_ms, model_id, team_id, status_class, requests, input_tokens, \
                    cost_nanos_usd, latency_max_ms, lat_03, lat_19
             FROM usage_rollups ORDER BY grain, bucket_ms, model_id, status_class",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let hour1 = day1 - 59 * 60_000 - 59_000;
        let midnight = day2 - 1_000;
        let day1_start = midnight - 86_400_000;
        // 120 ms falls in bucket 19, (100, 130]; 3 ms in bucket 3.
        let ok = |grain: &str, at: i64, model: &str, n: i64| {
            (
                grain.to_owned(),
                at,
                model.to_owned(),
                "team1".to_owned(),
                2,
                n,
                15 * n,
                5_182_000 * n,
                120,
                0,
                n,
            )
        };
        let failed_row = |grain: &str, at: i64| {
            (
                grain.to_owned(),
                at,
                "m1".to_owned(),
                "team1".to_owned(),
                4,
                1,
                15,
                5_182_000,
                3,
                1,
                0,
            )
        };
        assert_eq!(
            rows,
            vec![
                ok("d", day1_start, "m1", 2),
                failed_row("d", day1_start),
                ok("d", midnight, "", 1),
                ok("d", midnight, "m1", 1),
                ok("h", hour1, "m1", 2),
                failed_row("h", hour1),
                ok("h", midnight, "", 1),
                ok("h", midnight, "m1", 1),
            ]
        );
    }

    /// The migration's backfill and the writer agree: rebuilding from the stored records gives
    /// the rows the writer maintained.
    #[tokio::test]
    async fn rebuilt_rollups_equal_the_written_ones() {
        let pool = crate::testing::database().await;
        let mut records: Vec<UsageRecord> = (0..300)
            .map(|i| {
                let mut r = record(&format!("r{i:04}"), 1_700_000_000_000 + i * 997_000);
                r.latency_ms = (i as u64 * 37) % 90_000;
                r.http_status = [200, 201, 400, 429, 500, 502][i as usize % 6];
                if i % 7 == 0 {
                    r.team_id = None;
                    r.model_id = None;
                }
                r
            })
            .collect();
        records[5].provider = "mcp".into();
        let mcp = vec![McpUsageRecord {
            usage_record_id: records[5].id.clone(),
            ..crate::mcp_usage::tests::sidecar(&records[5], "s1", "echo")
        }];
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(insert_batch(&mut conn, &records, &mcp).await.unwrap(), 300);
        drop(conn);
        let snapshot = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                type Row = (String, i64, String, String, i64, i64, i64, i64, i64);
                let rows: Vec<Row> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
                rows
            }
        };
        let query = "SELECT grain, bucket_ms, model_id, mcp_server_id, status_class, requests, \
                     cost_nanos_usd, latency_max_ms, lat_00 + 3 * lat_10 + 5 * lat_30 + 7 * lat_45 \
                     FROM usage_rollups \
                     ORDER BY grain, bucket_ms, model_id, mcp_server_id, status_class, team_id";
        let written = snapshot(query).await;
        let mut conn = pool.acquire().await.unwrap();
        crate::usage_rollups::rebuild(&mut conn).await.unwrap();
        drop(conn);
        let rebuilt = snapshot(query).await;
        assert!(written.len() > 100, "{} rows", written.len());
        assert!(written.iter().any(|row| row.3 == "s1"));
        assert_eq!(written, rebuilt);
    }

    #[tokio::test]
    async fn insert_batch_joins_an_outer_transaction() {
        let pool = crate::testing::database().await;
        let mut tx = pool.begin().await.unwrap();
        assert_eq!(
            insert_batch(&mut tx, &[record("r1", 1)], &[])
                .await
                .unwrap(),
            1
        );
        tx.rollback().await.unwrap();
        assert_eq!(get(&pool, None, "r1").await.unwrap(), None);
        let (rollups,): (i64,) = sqlx::query_as("SELECT count(*) FROM usage_rollups")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rollups, 0);
    }

    #[tokio::test]
    async fn large_batches_are_chunked_under_the_variable_limit() {
        let pool = crate::testing::database().await;
        let records: Vec<_> = (0..2_500)
            .map(|i| record(&format!("r{i:05}"), 1_000 + i))
            .collect();
        assert_eq!(insert(&pool, &records).await, 2_500);
        let (requests,): (i64,) = sqlx::query_as(
            "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE grain = 'd'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(requests, 2_500);
    }

    /// Every id of `filter`'s list, read `size` records at a time through the cursors.
    async fn all_pages(pool: &Db, filter: &UsageFilter, size: u32) -> Vec<String> {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = list(pool, filter, cursor.as_deref(), size).await.unwrap();
            seen.extend(page.into_iter().map(|r| r.id.as_str().to_owned()));
            match next {
                Some(next) => cursor = Some(next),
                None => return seen,
            }
        }
    }

    #[tokio::test]
    async fn list_sorts_by_cost_latency_and_tokens_and_pages_through_ties() {
        let pool = crate::testing::database().await;
        // Costs with ties (r1 = r3, r0 = r4), latencies and token totals in other orders.
        let costs = [300, 100, 500, 100, 300, 200];
        let records: Vec<_> = costs
            .iter()
            .enumerate()
            .map(|(i, cost)| {
                let mut r = record(&format!("r{i}"), 1_000 + i as i64);
                r.cost_nanos_usd = *cost;
                r.latency_ms = 60 - 10 * i as u64;
                r.tokens.input = (i as u64 % 3) * 10;
                r.tokens.output = i as u64;
                r
            })
            .collect();
        insert(&pool, &records).await;
        let sorted = |name: &str| UsageFilter {
            sort: UsageSort::parse(name).unwrap(),
            ..UsageFilter::default()
        };
        for size in [1, 2, 4, 100] {
            assert_eq!(
                all_pages(&pool, &sorted("cost"), size).await,
                ["r1", "r3", "r5", "r0", "r4", "r2"],
                "ascending, ties by id ascending (page size {size})"
            );
            assert_eq!(
                all_pages(&pool, &sorted("-cost"), size).await,
                ["r2", "r4", "r0", "r5", "r3", "r1"],
                "descending, ties by id descending (page size {size})"
            );
        }
        assert_eq!(
            all_pages(&pool, &sorted("latency"), 2).await,
            ["r5", "r4", "r3", "r2", "r1", "r0"]
        );
        // Tokens: input (0, 10, 20, 0, 10, 20) + output (0..5) = 0, 11, 22, 3, 14, 25.
        assert_eq!(
            all_pages(&pool, &sorted("-tokens"), 2).await,
            ["r5", "r2", "r4", "r1", "r3", "r0"]
        );
        assert_eq!(
            all_pages(&pool, &sorted("time"), 4).await,
            ["r0", "r1", "r2", "r3", "r4", "r5"]
        );
        assert_eq!(
            all_pages(&pool, &UsageFilter::default(), 4).await,
            ["r5", "r4", "r3", "r2", "r1", "r0"]
        );
        assert_eq!(UsageSort::parse("-cost").unwrap().name(), "-cost");
        assert_eq!(UsageSort::parse("tokens").unwrap().name(), "tokens");
        for bad in ["", "-", "id", "cost; DROP TABLE usage_records", "--cost"] {
            assert!(UsageSort::parse(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn list_pages_newest_first_and_filters() {
        let pool = crate::testing::database().await;
        let mut records: Vec<_> = (0..7)
            .map(|i| record(&format!("r{i}"), 1_000 + i / 2))
            .collect();
        records[3].organisation_id = OrganisationId::new("org2");
        records[4].http_status = 500;
        records[5].api_key_id = ApiKeyId::new("key2");
        records[6].request_id = RequestId::parse("special").unwrap();
        insert(&pool, &records).await;

        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = list(&pool, &UsageFilter::default(), cursor.as_deref(), 2)
                .await
                .unwrap();
            assert!(page.len() <= 2);
            seen.extend(page.into_iter().map(|r| r.id.as_str().to_owned()));
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        // Newest first; equal timestamps ordered by id descending.
        assert_eq!(seen, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);

        // An exactly full last page has no next cursor.
        let (page, next) = list(&pool, &UsageFilter::default(), None, 7).await.unwrap();
        assert_eq!((page.len(), next), (7, None));

        let ids = |filter: UsageFilter| {
            let pool = pool.clone();
            async move {
                let (page, _) = list(&pool, &filter, None, 100).await.unwrap();
                page.into_iter()
                    .map(|r| r.id.as_str().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        let org1 = || UsageFilter {
            organisation_id: Some("org1".into()),
            ..UsageFilter::default()
        };
        assert_eq!(ids(org1()).await, ["r6", "r5", "r4", "r2", "r1", "r0"]);
        assert_eq!(
            ids(UsageFilter {
                status: Some(500),
                ..org1()
            })
            .await,
            ["r4"]
        );
        assert_eq!(
            ids(UsageFilter {
                api_key_id: Some("key2".into()),
                ..org1()
            })
            .await,
            ["r5"]
        );
        assert_eq!(
            ids(UsageFilter {
                request_id: Some("special".into()),
                ..org1()
            })
            .await,
            ["r6"]
        );
        assert_eq!(
            ids(UsageFilter {
                team_id: Some("nope".into()),
                ..org1()
            })
            .await,
            Vec::<String>::new()
        );
        assert_eq!(
            ids(UsageFilter {
                provider: Some("openai".into()),
                model_id: Some("m1".into()),
                user_id: None,
                ..org1()
            })
            .await
            .len(),
            6
        );
        let at = |ms| Some(Utc.timestamp_millis_opt(ms).unwrap());
        assert_eq!(
            ids(UsageFilter {
                from: at(1_001),
                to: at(1_003),
                ..UsageFilter::default()
            })
            .await,
            ["r5", "r4", "r3", "r2"]
        );

        let error = list(&pool, &UsageFilter::default(), Some("garbage"), 2)
            .await
            .unwrap_err();
        assert!(is_invalid_cursor(&error));
        assert!(is_invalid_cursor(
            &list(&pool, &UsageFilter::default(), Some("12:"), 2)
                .await
                .unwrap_err()
        ));
    }
}

#[cfg(test)]
mod chunk_tests {
    #[test]
    fn batches_split_into_few_statement_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 1..=300 {
            let (mut left, mut total) = (n, 0);
            while left > 0 {
                let size = super::insert_chunk(left);
                shapes.insert(size);
                left -= size;
                total += size;
            }
            assert_eq!(total, n);
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            vec![1, 2, 4, 8, 16, 32]
        );
    }
}
