//! Generated usage records for the analytics and invoice tests and benchmarks: deterministic
//! (seeded), varied (statuses, latencies, tokens, costs, keys with and without teams and users,
//! LLM and MCP traffic), and inserted fast (multi-row INSERTs in one transaction, then the rollups
//! rebuilt from them).
//!
//! The generated values are produced here, never taken from clients, so they are written as SQL
//! literals: a million rows load in seconds instead of minutes of per-value binding.

use std::fmt::Write as _;

use super::MCP_PROVIDER;
use odock_store::db::Db;

/// A key the records are attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticKey {
    /// The key id.
    pub id: String,
    /// The key's team; `None`: a direct organisation key.
    pub team_id: Option<String>,
    /// The user the key's records are attributed to, if any.
    pub user_id: Option<String>,
}

/// What to generate. Ids must be plain (`[A-Za-z0-9_-]`).
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    /// The organisation every record belongs to.
    pub organisation_id: String,
    /// Keys to attribute records to, picked at random; empty: no records are generated.
    pub keys: Vec<SyntheticKey>,
    /// `(model id, model name)` of LLM traffic.
    pub models: Vec<(String, String)>,
    /// `(server id, slug)` of MCP traffic; empty: no MCP records.
    pub mcp_servers: Vec<(String, String)>,
    /// How many records to generate.
    pub records: usize,
    /// Records are spread over `[start_ms, start_ms + span_ms)`.
    pub start_ms: i64,
    /// Length of the time span the records cover, ms.
    pub span_ms: i64,
    /// Seed of the generator: the same spec always gives the same records.
    pub seed: u64,
}

/// One generated record: the columns analytics read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticRecord {
    /// Record id: `{organisation_id}-{index:08}`.
    pub id: String,
    /// The organisation the record belongs to.
    pub organisation_id: String,
    /// The key's team, if any.
    pub team_id: Option<String>,
    /// The user the record is attributed to, if any.
    pub user_id: Option<String>,
    /// The API key the request was made with.
    pub api_key_id: String,
    /// The provider (`openai`, `anthropic`, `gemini`, or `mcp` for MCP traffic).
    pub provider: String,
    /// The model name, or the server slug for MCP traffic.
    pub model: Option<String>,
    /// The model id; `None` for MCP traffic and requests that resolved no model.
    pub model_id: Option<String>,
    /// The MCP server id of MCP traffic.
    pub mcp_server_id: Option<String>,
    /// The MCP server slug of MCP traffic.
    pub mcp_slug: Option<String>,
    /// HTTP status of the response (mostly 200; some 429, 500 and 502).
    pub http_status: i64,
    /// Request latency, ms (heavy-tailed).
    pub latency_ms: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cached input tokens.
    pub cached_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Billable tokens.
    pub billable_tokens: i64,
    /// Cost in nanos USD.
    pub cost_nanos_usd: i64,
    /// When the request was made, unix ms.
    pub created_at: i64,
}

/// xorshift64*: tiny, seeded, good enough to spread test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

const PROVIDERS: [&str; 3] = ["openai", "anthropic", "gemini"];
const STATUSES: [i64; 10] = [200, 200, 200, 200, 200, 200, 200, 429, 500, 502];

/// The records `spec` describes, in `created_at` order.
pub fn generate(spec: &SyntheticSpec) -> Vec<SyntheticRecord> {
    let mut rng = Rng(spec.seed | 1);
    let step = (spec.span_ms / spec.records.max(1) as i64).max(1);
    let mut out = Vec::with_capacity(spec.records);
    for i in 0..spec.records {
        let Some(key) = rng.pick(&spec.keys).cloned() else {
            break;
        };
        let created_at = spec.start_ms + i as i64 * step + rng.below(step as u64) as i64;
        let http_status = *rng.pick(&STATUSES).unwrap_or(&200);
        // Heavy-tailed latency: mostly fast, sometimes very slow.
        let latency_ms = match rng.below(20) {
            0 => 2_000 + rng.below(30_000) as i64,
            1..=3 => 500 + rng.below(1_500) as i64,
            _ => 20 + rng.below(480) as i64,
        };
        let mcp = !spec.mcp_servers.is_empty() && rng.below(5) == 0;
        let mut record = SyntheticRecord {
            id: format!("{}-{i:08}", spec.organisation_id),
            organisation_id: spec.organisation_id.clone(),
            team_id: key.team_id,
            user_id: key.user_id,
            api_key_id: key.id,
            provider: String::new(),
            model: None,
            model_id: None,
            mcp_server_id: None,
            mcp_slug: None,
            http_status,
            latency_ms,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            reasoning_tokens: 0,
            billable_tokens: 0,
            cost_nanos_usd: 0,
            created_at,
        };
        if mcp {
            if let Some((id, slug)) = rng.pick(&spec.mcp_servers) {
                record.provider = MCP_PROVIDER.to_owned();
                record.model = Some(slug.clone());
                record.mcp_server_id = Some(id.clone());
                record.mcp_slug = Some(slug.clone());
                record.cost_nanos_usd = 2_000 + rng.below(20_000) as i64;
            }
        } else {
            // A model belongs to one provider (as in Odock's catalog); a request that never
            // resolved a model (one in fifty: denied early) names any provider.
            let model = (rng.below(50) != 0)
                .then(|| rng.below(spec.models.len() as u64) as usize)
                .filter(|_| !spec.models.is_empty());
            let provider = match model {
                Some(index) => PROVIDERS[index % PROVIDERS.len()],
                None => *rng.pick(&PROVIDERS).unwrap_or(&"openai"),
            };
            record.provider = provider.to_owned();
            if let Some((id, name)) = model.and_then(|index| spec.models.get(index)) {
                record.model_id = Some(id.clone());
                record.model = Some(name.clone());
            }
            if http_status < 400 && record.model_id.is_some() {
                record.input_tokens = 10 + rng.below(4_000) as i64;
                record.output_tokens = rng.below(2_000) as i64;
                record.cached_tokens = rng.below(record.input_tokens as u64 / 2 + 1) as i64;
                record.reasoning_tokens = rng.below(300) as i64;
                record.billable_tokens = record.input_tokens + record.output_tokens;
                record.cost_nanos_usd = record.input_tokens * 2_000 + record.output_tokens * 8_000;
            }
        }
        out.push(record);
    }
    out
}

/// The `metadata` of every generated record (valid, so the records list can read them back).
const METADATA: &str = r#"{"schema":"usage_metadata_v1","outcome":"completed","usageEstimated":false,"receivedAt":"2024-06-01T00:00:00Z"}"#;

/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts `records` (and an MCP usage record for each MCP one) in one transaction.
pub async fn insert(pool: &Db, records: &[SyntheticRecord]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::with_capacity(chunk.len() * 400);
        sql.push_str(
            "INSERT INTO usage_records (id, request_id, organisation_id, team_id, user_id, \
             api_key_id, provider, model, model_id, endpoint, http_status, error_code, latency_ms, \
             gateway_overhead_us, stream, input_tokens, output_tokens, cached_tokens, \
             reasoning_tokens, billable_tokens, cost_nanos_usd, tokens, metadata, created_at) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let endpoint = if r.provider == MCP_PROVIDER {
                "/v1/mcp"
            } else {
                "/v1/chat/completions"
            };
            let error_code = if r.http_status >= 400 {
                literal(Some("upstream_error"))
            } else {
                literal(None)
            };
            // Writing to a String cannot fail.
            let _ = write!(
                sql,
                "({id}, {id}, {org}, {team}, {user}, {key}, {provider}, {model}, {model_id}, \
                 '{endpoint}', {status}, {error_code}, {latency}, 50, 0, {input}, {output}, \
                 {cached}, {reasoning}, {billable}, {cost}, '{{}}', '{metadata}', {at})",
                id = literal(Some(&r.id)),
                org = literal(Some(&r.organisation_id)),
                team = literal(r.team_id.as_deref()),
                user = literal(r.user_id.as_deref()),
                key = literal(Some(&r.api_key_id)),
                provider = literal(Some(&r.provider)),
                model = literal(r.model.as_deref()),
                model_id = literal(r.model_id.as_deref()),
                status = r.http_status,
                latency = r.latency_ms,
                input = r.input_tokens,
                output = r.output_tokens,
                cached = r.cached_tokens,
                reasoning = r.reasoning_tokens,
                billable = r.billable_tokens,
                cost = r.cost_nanos_usd,
                at = r.created_at,
                metadata = METADATA,
            );
        }
        sqlx::query(&sql)
            .persistent(false)
            .execute(&mut *tx)
            .await?;

        let mcp: Vec<&SyntheticRecord> =
            chunk.iter().filter(|r| r.mcp_server_id.is_some()).collect();
        if mcp.is_empty() {
            continue;
        }
        let mut sql = String::from(
            "INSERT INTO mcp_usage_records (id, usage_record_id, organisation_id, team_id, user_id, \
             api_key_id, mcp_server_id, slug, transport, rpc_method, tool_name, tool_call_count, \
             input_bytes, output_bytes, http_status, latency_ms, cost_nanos_usd, created_at) VALUES ",
        );
        for (i, r) in mcp.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let _ = write!(
                sql,
                "({mid}, {id}, {org}, {team}, {user}, {key}, {server}, {slug}, 'STREAMABLE_HTTP', \
                 'tools/call', 'search', 1, 200, 800, {status}, {latency}, {cost}, {at})",
                mid = literal(Some(&format!("m-{}", r.id))),
                id = literal(Some(&r.id)),
                org = literal(Some(&r.organisation_id)),
                team = literal(r.team_id.as_deref()),
                user = literal(r.user_id.as_deref()),
                key = literal(Some(&r.api_key_id)),
                server = literal(r.mcp_server_id.as_deref()),
                slug = literal(r.mcp_slug.as_deref()),
                status = r.http_status,
                latency = r.latency_ms,
                cost = r.cost_nanos_usd,
                at = r.created_at,
            );
        }
        sqlx::query(&sql)
            .persistent(false)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    // A bulk load outruns autovacuum: refresh the planner's statistics now, or PostgreSQL plans the
    // per-record MCP server lookups as if the tables were empty (a scan per record).
    let postgres = odock_store::db::backend(pool) == odock_store::db::Backend::Postgres;
    if postgres {
        sqlx::query("ANALYZE usage_records").execute(pool).await?;
        sqlx::query("ANALYZE mcp_usage_records")
            .execute(pool)
            .await?;
    }
    // Loaded behind the usage writer's back: roll everything up again.
    odock_store::usage_rollups::rebuild(&mut *pool.acquire().await?).await?;
    if postgres {
        sqlx::query("ANALYZE usage_rollups").execute(pool).await?;
    }
    Ok(())
}

/// A SQL string literal (quotes doubled) or `NULL`.
fn literal(value: Option<&str>) -> String {
    match value {
        Some(text) => format!("'{}'", text.replace('\'', "''")),
        None => "NULL".to_owned(),
    }
}
