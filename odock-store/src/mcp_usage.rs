//! The `mcp_usage_records` table: the MCP side of each usage record whose provider is `mcp` (server,
//! transport, JSON-RPC method, tool, bytes, MCP price and its snapshot).
//!
//! Rows are written by the batched usage writer in the same transaction as their usage records
//! ([`insert_batch`], idempotent by id like `usage_records`), and read by the admin API ([`list`]).

use chrono::{DateTime, Utc};
use odock_core::{McpBill, McpUsageRecord};
use sqlx::{Connection, Row};

use crate::db::{from_ms, to_ms, Db, DbConnection, DbRow, Param, SqlBuilder};
use crate::record_page::RecordQuery;

const COLUMNS: &str = "id, usage_record_id, request_id, organisation_id, team_id, user_id, \
    api_key_id, mcp_server_id, slug, transport, rpc_method, tool_name, tool_call_count, \
    input_bytes, output_bytes, http_status, error_code, latency_ms, cost_nanos_usd, pricing, \
    breakdown, created_at";
const COLUMN_COUNT: usize = 22;
/// Rows per INSERT statement, well under every backend's bound-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

/// The largest page [`list`] returns.
pub use crate::record_page::MAX_LIST_LIMIT;

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn json_text<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

fn params(record: &McpUsageRecord) -> [Param; COLUMN_COUNT] {
    [
        record.id.as_str().into(),
        record.usage_record_id.as_str().into(),
        record.request_id.as_str().into(),
        record.organisation_id.as_str().into(),
        record.team_id.as_ref().map(|id| id.as_str()).into(),
        record.user_id.as_ref().map(|id| id.as_str()).into(),
        record.api_key_id.as_str().into(),
        record.mcp_server_id.as_str().into(),
        record.slug.as_str().into(),
        record.transport.as_str().into(),
        record.rpc_method.as_deref().into(),
        record.tool_name.as_deref().into(),
        to_i64(record.tool_call_count).into(),
        to_i64(record.input_bytes).into(),
        to_i64(record.output_bytes).into(),
        i64::from(record.http_status).into(),
        record.error_code.as_deref().into(),
        to_i64(record.latency_ms).into(),
        record.cost_nanos_usd.into(),
        json_text(&record.billing.pricing).into(),
        json_text(&record.billing).into(),
        to_ms(record.created_at).into(),
    ]
}

/// Inserts `records` atomically (in a savepoint when `conn` is inside a transaction, as the usage
/// writer's is); ids already stored are skipped. Returns how many rows were inserted.
pub async fn insert_batch(
    conn: &mut DbConnection,
    records: &[McpUsageRecord],
) -> Result<u64, sqlx::Error> {
    if records.is_empty() {
        return Ok(0);
    }
    let mut tx = conn.begin().await?;
    let mut inserted = 0;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut builder =
            SqlBuilder::new(format!("INSERT INTO mcp_usage_records ({COLUMNS}) VALUES "));
        for (i, record) in chunk.iter().enumerate() {
            if i > 0 {
                builder.push(", ");
            }
            builder.push_tuple(params(record));
        }
        builder.push(" ON CONFLICT(id) DO NOTHING");
        inserted += builder
            .query()
            .persistent(false)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Which records [`list`] returns. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct McpUsageFilter {
    /// Only this organisation's records.
    pub organisation_id: Option<String>,
    /// Only requests made with this virtual key.
    pub api_key_id: Option<String>,
    /// Only requests made by this team's keys.
    pub team_id: Option<String>,
    /// Only requests made by this user's keys.
    pub user_id: Option<String>,
    /// Only requests to this MCP server.
    pub mcp_server_id: Option<String>,
    /// Only `tools/call` requests for this tool name.
    pub tool: Option<String>,
    /// Only the record with this request id (`X-Request-Id`).
    pub request_id: Option<String>,
    /// Only records with this HTTP status.
    pub status: Option<u16>,
    /// Inclusive lower bound on `createdAt`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `createdAt`.
    pub to: Option<DateTime<Utc>>,
}

/// One page of records, newest first, and the cursor of the next page: the usage records' paged
/// query and cursor ([`crate::usage_records::list`]), in their default order.
pub async fn list(
    pool: &Db,
    filter: &McpUsageFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<McpUsageRecord>, Option<String>), sqlx::Error> {
    RecordQuery {
        select: format!("SELECT {COLUMNS} FROM mcp_usage_records"),
        equal: &[
            ("organisation_id", &filter.organisation_id),
            ("api_key_id", &filter.api_key_id),
            ("team_id", &filter.team_id),
            ("user_id", &filter.user_id),
            ("mcp_server_id", &filter.mcp_server_id),
            ("tool_name", &filter.tool),
            ("request_id", &filter.request_id),
        ],
        status: filter.status,
        from: filter.from,
        to: filter.to,
        order_by: "created_at",
        descending: true,
    }
    .page(pool, cursor, limit, decode, |record| {
        (to_ms(record.created_at), record.id.as_str())
    })
    .await
}

fn decode(row: &DbRow) -> Result<McpUsageRecord, sqlx::Error> {
    let count = |column: &str| -> Result<u64, sqlx::Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
    };
    let breakdown: Option<String> = row.try_get("breakdown")?;
    let cost: i64 = row.try_get("cost_nanos_usd")?;
    let billing = breakdown
        .as_deref()
        .map(serde_json::from_str::<McpBill>)
        .transpose()
        .map_err(|e| sqlx::Error::Decode(e.into()))?
        .unwrap_or(McpBill {
            cost_nanos_usd: cost,
            call_cost_nanos_usd: 0,
            input_cost_nanos_usd: 0,
            output_cost_nanos_usd: 0,
            pricing: odock_core::McpPricing::default(),
        });
    Ok(McpUsageRecord {
        id: row.try_get("id")?,
        usage_record_id: row.try_get::<String, _>("usage_record_id")?.into(),
        // Every row this code writes has its request id; never invent one on the way out.
        request_id: row
            .try_get::<Option<String>, _>("request_id")?
            .as_deref()
            .and_then(odock_core::RequestId::parse)
            .ok_or_else(|| sqlx::Error::Decode("MCP usage record without a request id".into()))?,
        organisation_id: row.try_get::<String, _>("organisation_id")?.into(),
        team_id: row.try_get::<Option<String>, _>("team_id")?.map(Into::into),
        user_id: row.try_get::<Option<String>, _>("user_id")?.map(Into::into),
        api_key_id: row.try_get::<String, _>("api_key_id")?.into(),
        mcp_server_id: row.try_get::<String, _>("mcp_server_id")?.into(),
        slug: row.try_get("slug")?,
        transport: row.try_get("transport")?,
        rpc_method: row.try_get("rpc_method")?,
        tool_name: row.try_get("tool_name")?,
        tool_call_count: count("tool_call_count")?,
        input_bytes: count("input_bytes")?,
        output_bytes: count("output_bytes")?,
        http_status: u16::try_from(row.try_get::<i64, _>("http_status")?).unwrap_or(0),
        error_code: row.try_get("error_code")?,
        latency_ms: count("latency_ms")?,
        cost_nanos_usd: cost,
        billing,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use odock_core::UsageSink;

    use super::*;
    use crate::usage_records::tests::record;
    use crate::{SqlUsageSink, UsageWriterOptions};

    pub(crate) fn sidecar(
        usage: &odock_core::UsageRecord,
        server: &str,
        tool: &str,
    ) -> McpUsageRecord {
        let pricing = odock_core::McpPricing {
            call_nanos_usd: 7,
            ..odock_core::McpPricing::default()
        };
        let billing = odock_core::pricing::bill_mcp(&pricing, 1, 10, 20);
        McpUsageRecord {
            id: odock_core::ids::time_ordered_hex_id(),
            usage_record_id: usage.id.clone(),
            request_id: usage.request_id.clone(),
            organisation_id: usage.organisation_id.clone(),
            team_id: None,
            user_id: None,
            api_key_id: usage.api_key_id.clone(),
            mcp_server_id: server.into(),
            slug: "tools".into(),
            transport: "STDIO".into(),
            rpc_method: Some("tools/call".into()),
            tool_name: Some(tool.into()),
            tool_call_count: 1,
            input_bytes: 10,
            output_bytes: 20,
            http_status: usage.http_status,
            error_code: None,
            latency_ms: 3,
            cost_nanos_usd: billing.cost_nanos_usd,
            billing,
            created_at: usage.created_at,
        }
    }

    #[tokio::test]
    async fn sidecars_are_written_with_their_usage_records_and_read_back() {
        let pool = crate::testing::database().await;
        let sink = SqlUsageSink::start(pool.clone(), UsageWriterOptions::default());
        let now = crate::db::now_ms();
        let usages: Vec<_> = (0..3).map(|i| record(&format!("u{i}"), now + i)).collect();
        let sidecars: Vec<_> = usages
            .iter()
            .enumerate()
            .map(|(i, u)| sidecar(u, if i == 2 { "s2" } else { "s1" }, "echo"))
            .collect();
        for (usage, mcp) in usages.iter().zip(&sidecars) {
            sink.enqueue_mcp(usage.clone(), mcp.clone());
        }
        sink.flush().await.unwrap();

        let filter = McpUsageFilter {
            mcp_server_id: Some("s1".into()),
            ..McpUsageFilter::default()
        };
        let (page, next) = list(&pool, &filter, None, 1).await.unwrap();
        assert_eq!(page, [sidecars[1].clone()]);
        let (rest, last) = list(&pool, &filter, next.as_deref(), 10).await.unwrap();
        assert_eq!(rest, [sidecars[0].clone()]);
        assert_eq!(last, None);
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(stored, 3);
        // Idempotent by id, like usage records.
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(insert_batch(&mut conn, &sidecars).await.unwrap(), 0);
        sink.shutdown().await.unwrap();
    }
}
