//! Invoices: what an organisation (or some of its teams and keys) consumed in a period, read from
//! the stored usage records — totals (requests, LLM cost, MCP cost, billable tokens) and
//! breakdowns by team, API key, model and MCP server ([`build`]); every record of the period as CSV
//! ([`csv_chunks`], read in keyset-paged chunks so a large period never sits in memory); and a
//! PDF document ([`pdf::render`]).
//!
//! Money stays integer nanos USD; each amount also comes as an exact decimal USD string
//! ([`usd`], nine decimals) for display.

pub mod pdf;

use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Serialize;
use sqlx::Row;

use crate::analytics::{self, GroupBy, UsageGroup, UsageScope, UsageStats};
use odock_store::db::{from_ms, Db, DbRow, SqlBuilder};

/// An invoice's figures (the JSON answer of `GET .../invoices`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// The invoiced organisation.
    pub organisation_id: String,
    /// The invoiced period.
    pub period: Period,
    /// The teams and keys the invoice was narrowed to (empty: the whole organisation).
    pub team_ids: Vec<String>,
    /// See `teamIds`: the invoice covers records of these teams or these keys.
    pub api_key_ids: Vec<String>,
    /// When the invoice was built.
    pub generated_at: DateTime<Utc>,
    /// Totals of the period.
    pub totals: InvoiceTotals,
    /// The totals per team (records made without a team: `id` is `null`).
    pub by_team: Vec<InvoiceLine>,
    /// The totals per API key.
    pub by_api_key: Vec<InvoiceLine>,
    /// LLM traffic only.
    pub by_model: Vec<InvoiceLine>,
    /// MCP traffic only.
    pub by_mcp_server: Vec<InvoiceLine>,
}

/// `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// Start of the period (inclusive).
    pub from: DateTime<Utc>,
    /// End of the period (exclusive).
    pub to: DateTime<Utc>,
}

/// An invoice's totals. Amounts are in nanos USD (billionths of a dollar), also as USD strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceTotals {
    /// Usage records (LLM and MCP calls) in the period.
    pub requests: i64,
    /// Usage records of LLM calls in the period.
    pub llm_requests: i64,
    /// Usage records of MCP calls.
    pub mcp_requests: i64,
    /// Cost of the LLM calls, nanos USD.
    pub llm_cost_nanos_usd: i64,
    /// Cost of the MCP calls, nanos USD.
    pub mcp_cost_nanos_usd: i64,
    /// Total cost (LLM plus MCP), nanos USD.
    pub cost_nanos_usd: i64,
    /// Tokens billed (input plus output).
    pub billable_tokens: i64,
    /// The amount in USD with nine decimals, exactly the nanos.
    pub llm_cost_usd: String,
    /// The amount in USD with nine decimals, exactly the nanos.
    pub mcp_cost_usd: String,
    /// The amount in USD with nine decimals, exactly the nanos.
    pub cost_usd: String,
}

impl InvoiceTotals {
    fn of(stats: &UsageStats) -> Self {
        Self {
            requests: stats.requests,
            llm_requests: stats.llm_requests,
            mcp_requests: stats.mcp_requests,
            llm_cost_nanos_usd: stats.llm_cost_nanos_usd,
            mcp_cost_nanos_usd: stats.mcp_cost_nanos_usd,
            cost_nanos_usd: stats.cost_nanos_usd,
            billable_tokens: stats.billable_tokens,
            llm_cost_usd: usd(stats.llm_cost_nanos_usd),
            mcp_cost_usd: usd(stats.mcp_cost_nanos_usd),
            cost_usd: usd(stats.cost_nanos_usd),
        }
    }
}

/// One row of a breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    /// The team, key, model or server id; `null` for records without one (direct organisation keys
    /// in `byTeam`, requests that never resolved a model in `byModel`).
    #[schema(required = true)]
    pub id: Option<String>,
    /// The name of the team, key, model or server; a placeholder for records without one.
    pub name: String,
    /// Usage records in the row.
    pub requests: i64,
    /// Cost of the row's LLM calls, nanos USD.
    pub llm_cost_nanos_usd: i64,
    /// Cost of the row's MCP calls, nanos USD.
    pub mcp_cost_nanos_usd: i64,
    /// Total cost of the row, nanos USD.
    pub cost_nanos_usd: i64,
    /// Tokens billed (input plus output).
    pub billable_tokens: i64,
    /// The amount in USD with nine decimals, exactly the nanos.
    pub cost_usd: String,
}

impl InvoiceLine {
    fn of(group: UsageGroup) -> Self {
        let stats = group.stats;
        Self {
            id: group.key,
            name: group.label,
            requests: stats.requests,
            llm_cost_nanos_usd: stats.llm_cost_nanos_usd,
            mcp_cost_nanos_usd: stats.mcp_cost_nanos_usd,
            cost_nanos_usd: stats.cost_nanos_usd,
            billable_tokens: stats.billable_tokens,
            cost_usd: usd(stats.cost_nanos_usd),
        }
    }
}

/// The invoice of `scope` for `[from, to)` (the scope's own bounds are replaced by these).
pub async fn build(
    pool: &Db,
    scope: &UsageScope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Invoice, sqlx::Error> {
    let scope = UsageScope {
        from_ms: Some(from.timestamp_millis()),
        to_ms: Some(to.timestamp_millis()),
        ..scope.clone()
    };
    // One pass over the records; every figure below is folded from its rows.
    let rows = analytics::breakdown(pool, &scope).await?;
    let mut totals = UsageStats::default();
    for row in &rows {
        totals.add(&row.stats);
    }
    let lines = |groups: Vec<UsageGroup>| groups.into_iter().map(InvoiceLine::of).collect();
    let by_team = lines(analytics::fold(&rows, GroupBy::Team));
    let by_api_key = lines(analytics::fold(&rows, GroupBy::ApiKey));
    let by_model = lines(analytics::fold(
        rows.iter().filter(|r| !r.mcp),
        GroupBy::Model,
    ));
    let by_mcp_server = lines(analytics::fold(
        rows.iter().filter(|r| r.mcp),
        GroupBy::McpServer,
    ));
    Ok(Invoice {
        organisation_id: scope.organisation_id.clone(),
        period: Period { from, to },
        team_ids: scope.team_ids.clone(),
        api_key_ids: scope.api_key_ids.clone(),
        generated_at: Utc::now(),
        totals: InvoiceTotals::of(&totals),
        by_team,
        by_api_key,
        by_model,
        by_mcp_server,
    })
}

/// `nanos` as a decimal USD amount with nine decimals: `5182000` → `"0.005182000"`.
pub fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

/// The CSV columns, one row per usage record.
pub const CSV_COLUMNS: [&str; 23] = [
    "id",
    "createdAt",
    "requestId",
    "organisationId",
    "teamId",
    "userId",
    "apiKeyId",
    "provider",
    "model",
    "modelId",
    "mcpServerId",
    "endpoint",
    "httpStatus",
    "errorCode",
    "latencyMs",
    "inputTokens",
    "outputTokens",
    "cachedTokens",
    "reasoningTokens",
    "billableTokens",
    "costNanosUsd",
    "costUsd",
    "traffic",
];

/// Records read per CSV chunk.
pub const CSV_CHUNK_ROWS: i64 = 2_000;

/// The CSV of every record of `scope` in `[from, to)`, oldest first: the header line, then one
/// chunk of up to [`CSV_CHUNK_ROWS`] lines per query. Ends after the first error.
pub fn csv_chunks(
    pool: Db,
    scope: UsageScope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl Stream<Item = Result<String, sqlx::Error>> + Send + 'static {
    let scope = UsageScope {
        from_ms: Some(from.timestamp_millis()),
        to_ms: Some(to.timestamp_millis()),
        ..scope
    };
    enum State {
        Header,
        After(Option<(i64, String)>),
        Done,
    }
    futures::stream::unfold(State::Header, move |state| {
        let pool = pool.clone();
        let scope = scope.clone();
        async move {
            match state {
                State::Header => {
                    let mut header = CSV_COLUMNS.join(",");
                    header.push_str("\r\n");
                    Some((Ok(header), State::After(None)))
                }
                State::After(after) => match csv_page(&pool, &scope, after.as_ref()).await {
                    Ok((_, None)) => None,
                    Ok((text, Some(last))) => Some((Ok(text), State::After(Some(last)))),
                    Err(error) => Some((Err(error), State::Done)),
                },
                State::Done => None,
            }
        }
    })
}

/// One chunk of CSV lines after `after` (`(created_at, id)` of the previous chunk's last record),
/// and the position of its last record (`None` when there was nothing left).
async fn csv_page(
    pool: &Db,
    scope: &UsageScope,
    after: Option<&(i64, String)>,
) -> Result<(String, Option<(i64, String)>), sqlx::Error> {
    let mut sql = SqlBuilder::new(
        "SELECT r.id, r.created_at, r.request_id, r.organisation_id, r.team_id, r.user_id, \
         r.api_key_id, r.provider, r.model, r.model_id, \
         (SELECT MAX(m.mcp_server_id) FROM mcp_usage_records m WHERE m.usage_record_id = r.id) \
           AS mcp_server_id, \
         r.endpoint, r.http_status, r.error_code, r.latency_ms, r.input_tokens, r.output_tokens, \
         r.cached_tokens, r.reasoning_tokens, r.billable_tokens, r.cost_nanos_usd \
         FROM usage_records r",
    );
    analytics::push_filters(&mut sql, scope);
    if let Some((created_at, id)) = after {
        sql.push(" AND (r.created_at > ")
            .push_bind(*created_at)
            .push(" OR (r.created_at = ")
            .push_bind(*created_at)
            .push(" AND r.id > ")
            .push_bind(id.as_str())
            .push("))");
    }
    sql.push(" ORDER BY r.created_at, r.id LIMIT ")
        .push_bind(CSV_CHUNK_ROWS);
    let rows = sql.query().fetch_all(pool).await?;
    let mut text = String::with_capacity(rows.len() * 256);
    let mut last = None;
    for row in &rows {
        last = Some(csv_line(row, &mut text)?);
    }
    Ok((text, last))
}

/// Appends the CSV line of `row`; returns its `(created_at, id)`.
fn csv_line(row: &DbRow, out: &mut String) -> Result<(i64, String), sqlx::Error> {
    let text = |name: &str| -> Result<String, sqlx::Error> {
        Ok(row.try_get::<Option<String>, _>(name)?.unwrap_or_default())
    };
    let int = |name: &str| -> Result<i64, sqlx::Error> { row.try_get::<i64, _>(name) };
    let id: String = row.try_get("id")?;
    let created_at = int("created_at")?;
    let provider = text("provider")?;
    let cost = int("cost_nanos_usd")?;
    let traffic = if provider == analytics::MCP_PROVIDER {
        "mcp"
    } else {
        "llm"
    };
    let fields = [
        id.clone(),
        from_ms(created_at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        text("request_id")?,
        text("organisation_id")?,
        text("team_id")?,
        text("user_id")?,
        text("api_key_id")?,
        provider,
        text("model")?,
        text("model_id")?,
        text("mcp_server_id")?,
        text("endpoint")?,
        int("http_status")?.to_string(),
        text("error_code")?,
        int("latency_ms")?.to_string(),
        int("input_tokens")?.to_string(),
        int("output_tokens")?.to_string(),
        int("cached_tokens")?.to_string(),
        int("reasoning_tokens")?.to_string(),
        int("billable_tokens")?.to_string(),
        cost.to_string(),
        usd(cost),
        traffic.to_owned(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_csv_field(out, field);
    }
    out.push_str("\r\n");
    Ok((created_at, id))
}

/// Appends `value` as one RFC 4180 field: quoted (quotes doubled) when it holds a comma, quote or
/// line break. A text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or CR
/// first) is prefixed with `'` — numbers are never affected, they are written by us.
pub fn push_csv_field(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '@', '\t', '\r'])
        || (value.starts_with('-') && value.parse::<f64>().is_err());
    let quote = formula || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use futures::TryStreamExt;

    use super::*;
    use crate::analytics::synthetic::{generate, insert, SyntheticKey, SyntheticSpec};

    #[tokio::test]
    async fn csv_has_every_record_of_the_period_once_across_chunks() {
        let pool = odock_store::testing::database().await;
        let start = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let spec = SyntheticSpec {
            organisation_id: "org-1".into(),
            keys: vec![SyntheticKey {
                id: "k,1".into(),
                team_id: Some("t\"1".into()),
                user_id: None,
            }],
            models: vec![("m1".into(), "=cmd|' /C calc'!A0".into())],
            mcp_servers: vec![("s1".into(), "search".into())],
            // More than two chunks, several records per millisecond.
            records: CSV_CHUNK_ROWS as usize * 2 + 345,
            start_ms: start.timestamp_millis(),
            span_ms: 1_000,
            seed: 1,
        };
        let records = generate(&spec);
        insert(&pool, &records).await.unwrap();
        let chunks: Vec<String> = csv_chunks(
            pool.clone(),
            UsageScope::organisation("org-1"),
            start,
            start + chrono::Duration::days(1),
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(chunks.len(), 4, "header + 3 chunks");
        let csv = chunks.concat();
        let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(lines.len() - 1, records.len());
        let mut ids: Vec<&str> = lines[1..]
            .iter()
            .map(|line| line.split(',').next().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), records.len());
        // Hostile names are quoted and defused.
        assert!(csv.contains("\"k,1\""));
        assert!(csv.contains("\"t\"\"1\""));
        assert!(csv.contains("\"'=cmd|' /C calc'!A0\""));
        assert!(csv.contains(",s1,"));

        let invoice = build(
            &pool,
            &UsageScope::organisation("org-1"),
            start,
            start + chrono::Duration::days(1),
        )
        .await
        .unwrap();
        let cost: i64 = records.iter().map(|r| r.cost_nanos_usd).sum();
        assert_eq!(invoice.totals.cost_nanos_usd, cost);
        assert_eq!(invoice.totals.cost_usd, usd(cost));
        assert_eq!(invoice.by_team.len(), 1);
        assert_eq!(invoice.by_team[0].name, "t\"1");
        let pdf = pdf::render(&invoice);
        assert_eq!(pdf::tests::check_structure(&pdf), 1);
    }

    #[test]
    fn usd_has_nine_exact_decimals() {
        assert_eq!(usd(5_182_000), "0.005182000");
        assert_eq!(usd(0), "0.000000000");
        assert_eq!(usd(12_345_000_000_001), "12345.000000001");
        assert_eq!(usd(-1), "-0.000000001");
        assert_eq!(usd(i64::MIN), "-9223372036.854775808");
    }

    #[test]
    fn csv_fields_are_escaped() {
        let field = |v: &str| {
            let mut out = String::new();
            push_csv_field(&mut out, v);
            out
        };
        assert_eq!(field("plain"), "plain");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(field("-12"), "-12");
        assert_eq!(field("-x"), "\"'-x\"");
    }
}
