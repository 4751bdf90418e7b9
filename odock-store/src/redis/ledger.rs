//! [`RedisBudgetLedger`] and [`RedisQuotaLedger`]: the SQL ledgers' semantics with the counters in
//! Redis, so every replica admits against the same totals.
//!
//! - **Rules** (which budgets/quotas match a principal, and their current window) come from the
//!   database through the SQL ledgers' `rules` module, cached per API key for a few seconds and
//!   evicted by cache invalidation (so an admin change on any replica applies at once).
//! - **Admission** is one Lua script (`lua/ledger_reserve.lua`) over every matching window: each
//!   window must admit (`used + reserved + estimate ≤ limit`; ERRORS / LATENCY_MS: `used < limit`)
//!   before anything is held, then the hold is added to every window and recorded in the request's
//!   lease hash, whose deadline sits in a sorted set.
//! - **Settle / release** (`lua/ledger_close.lua`) act only on a live lease and mark it closed, so
//!   repeating them — or settling after the sweeper released the hold — changes nothing. A replayed
//!   request id after settlement is checked again, never admitted for free.
//! - **Refresh** extends the lease; **sweep** releases the holds whose lease ended (a dead
//!   replica's).
//! - **Durability:** windows touched are marked dirty; [`RedisLedgerFlusher`] writes their `used`
//!   (never lowering it) and `reserved` to `budget_windows` / `quota_windows` in batches.
//! - **Lost counters** (Redis restarted without its data, or a window's first use): the script
//!   reports the missing windows, which are rebuilt from the database — the durable `used`, nothing
//!   reserved — before admission is retried, so a Redis restart never resets a budget. What can be
//!   lost is bounded by the flush interval.
//!
//! Keys, under the prefix: windows `ledger:{budget|quota}:w:{rule id}:{window start ms}` (hash
//! `used`, `reserved`, `sql`, `kind`, `metric`; expiring a day after the window ends), leases
//! `ledger:{kind}:r:{api key id}:{request id}`, deadlines `ledger:{kind}:leases`, dirty windows
//! `ledger:dirty`. Counters are doubles inside Lua: exact up to 2^53 (9 × 10^15 nanos, $9M per
//! window).
//!
//! While Redis is unreachable, admission follows the [`OutagePolicy`]: fail closed (503
//! `budget_unavailable` / `quota_unavailable`) or fail open (admitted unledgered; the actual usage
//! is added best-effort when it settles).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use odock_core::{
    crossed_thresholds, BudgetAlerts, BudgetError, BudgetLedger, CacheInvalidator, CacheKind,
    Clock, InvalidationCommand, LedgerError, LogBudgetAlerts, Principal, QuotaActuals, QuotaDemand,
    QuotaError, QuotaLedger, QuotaMetric, RequestId, Reservation, ReservationId, ThresholdCrossing,
};
use redis::{Script, Value};

use super::connection::{RedisConnection, RedisStoreError};
use super::outage::{OutageLog, OutagePolicy};
use crate::db::{from_ms, to_ms, Db};
use crate::ledger::rules::{self, Rule, BUDGET_RULES, QUOTA_RULES};
use crate::ledger::{
    current_window, reserve_amount, settle_amount, LedgerOptions, BUDGETS, QUOTAS,
};

/// How long a closed lease is remembered, so a late duplicate settle or release stays a no-op.
const CLOSED_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How long a window's counters outlive the window (late settlements still land in Redis).
const WINDOW_GRACE_MS: i64 = 24 * 3600 * 1000;

/// How long a principal's matching rules are reused without an invalidation.
const RULES_TTL: Duration = Duration::from_secs(5);

/// Attempts at a script whose windows had to be rebuilt first.
const ATTEMPTS: usize = 3;

/// Marks reservations admitted without Redis under the fail-open policy.
const UNLEDGERED: &str = "unledgered:";

/// Budgets or quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Budget,
    Quota,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Budget => "budget",
            Kind::Quota => "quota",
        }
    }

    fn rules(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Budget => BUDGET_RULES,
            Kind::Quota => QUOTA_RULES,
        }
    }

    fn book(self) -> &'static crate::ledger::Book {
        match self {
            Kind::Budget => &BUDGETS,
            Kind::Quota => &QUOTAS,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "budget" => Some(Kind::Budget),
            "quota" => Some(Kind::Quota),
            _ => None,
        }
    }
}

/// What one matching rule asks of the reservation script.
struct Hold<'a> {
    rule: &'a Rule,
    key: String,
    amount: i64,
    /// Counted after the fact: admit while `used < limit`.
    after_the_fact: bool,
}

/// The outcome of an admission attempt that reached Redis.
enum Admission<'a> {
    Held(Reservation),
    Refused(&'a Rule),
}

/// The Lua scripts, loaded once per ledger (`EVALSHA`, reloaded after a Redis restart).
struct Scripts {
    reserve: Script,
    init: Script,
    close: Script,
    refresh: Script,
    add_used: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            reserve: Script::new(include_str!("lua/ledger_reserve.lua")),
            init: Script::new(include_str!("lua/ledger_init.lua")),
            close: Script::new(include_str!("lua/ledger_close.lua")),
            refresh: Script::new(include_str!("lua/ledger_refresh.lua")),
            add_used: Script::new(include_str!("lua/ledger_add_used.lua")),
        }
    }
}

/// What budgets and quotas share.
struct Ledger {
    kind: Kind,
    conn: RedisConnection,
    pool: Db,
    clock: Arc<dyn Clock>,
    options: LedgerOptions,
    outage: OutagePolicy,
    outage_log: OutageLog,
    rules: moka::sync::Cache<String, Arc<Vec<Rule>>>,
    scripts: Scripts,
}

impl Ledger {
    fn new(
        kind: Kind,
        conn: RedisConnection,
        pool: Db,
        clock: Arc<dyn Clock>,
        options: LedgerOptions,
    ) -> Self {
        let outage = conn.settings().outage;
        Self {
            kind,
            conn,
            pool,
            clock,
            options,
            outage,
            outage_log: OutageLog::default(),
            rules: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(RULES_TTL)
                .build(),
            scripts: Scripts::new(),
        }
    }

    fn window_key(&self, rule: &Rule) -> String {
        self.conn.key(&format!(
            "ledger:{}:w:{}:{}",
            self.kind.name(),
            rule.id,
            to_ms(rule.window.start)
        ))
    }

    fn lease_key(&self, member: &str) -> String {
        self.conn
            .key(&format!("ledger:{}:r:{member}", self.kind.name()))
    }

    fn deadlines_key(&self) -> String {
        self.conn
            .key(&format!("ledger:{}:leases", self.kind.name()))
    }

    fn dirty_key(&self) -> String {
        self.conn.key(DIRTY)
    }

    fn lease_end(&self, now: DateTime<Utc>) -> i64 {
        let lease = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX);
        to_ms(now).saturating_add(lease)
    }

    fn empty_reservation(&self, request_id: &RequestId, now: DateTime<Utc>) -> Reservation {
        Reservation {
            id: ReservationId::generate(),
            request_id: request_id.clone(),
            windows: Vec::new(),
            expires_at: from_ms(self.lease_end(now)),
        }
    }

    /// The rules matching `principal` now: cached per key while every cached window is current.
    async fn matching(
        &self,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> Result<Arc<Vec<Rule>>, sqlx::Error> {
        let cache_key = principal.api_key_id.as_str();
        if let Some(rules) = self.rules.get(cache_key) {
            if rules
                .iter()
                .all(|rule| rule.window.start <= now && now < rule.window.end)
            {
                return Ok(rules);
            }
        }
        let mut conn = self.pool.acquire().await?;
        let rules = Arc::new(rules::matching(&mut conn, self.kind.rules(), principal, now).await?);
        self.rules.insert(cache_key.to_owned(), rules.clone());
        Ok(rules)
    }

    /// Reserves in every window of `holds`, rebuilding windows Redis does not have.
    async fn reserve<'a>(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        holds: &[Hold<'a>],
        estimate: i64,
        now: DateTime<Utc>,
    ) -> Result<Admission<'a>, RedisStoreError> {
        let member = format!("{}:{}", principal.api_key_id.as_str(), request_id.as_str());
        let expires = self.lease_end(now);
        for _ in 0..ATTEMPTS {
            let mut invocation = self.scripts.reserve.prepare_invoke();
            invocation
                .key(self.lease_key(&member))
                .key(self.deadlines_key())
                .key(self.dirty_key())
                .arg(to_ms(now))
                .arg(expires)
                .arg(&member)
                .arg(estimate);
            for hold in holds {
                invocation
                    .key(&hold.key)
                    .arg(hold.rule.limit)
                    .arg(hold.amount)
                    .arg(u8::from(hold.after_the_fact));
            }
            let mut conn = self.conn.manager();
            let reply: Vec<Value> = self
                .conn
                .bounded(invocation.invoke_async(&mut conn))
                .await?;
            let reply = Reply::parse(&reply)?;
            match reply.code {
                1 => {
                    return Ok(Admission::Held(Reservation {
                        id: ReservationId::new(member),
                        request_id: request_id.clone(),
                        windows: holds.iter().map(|hold| hold.key.clone()).collect(),
                        expires_at: from_ms(expires),
                    }))
                }
                2 => {
                    let expires = reply.int(0)?;
                    return Ok(Admission::Held(Reservation {
                        id: ReservationId::new(member),
                        request_id: request_id.clone(),
                        windows: reply.rest.iter().skip(1).map(text).collect(),
                        expires_at: from_ms(expires),
                    }));
                }
                0 => return Ok(Admission::Refused(hold_at(holds, reply.int(0)?)?.rule)),
                3 => {
                    for index in 0..reply.rest.len() {
                        let hold = hold_at(holds, reply.int(index)?)?;
                        self.rebuild_for_rule(hold, now).await?;
                    }
                }
                other => return Err(unexpected("reserve", other)),
            }
        }
        Err(RedisStoreError::Reply(
            "windows kept disappearing while reserving".to_owned(),
        ))
    }

    /// Creates a window's counters from the database row (created if this is its first use).
    async fn rebuild_for_rule(
        &self,
        hold: &Hold<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), RedisStoreError> {
        let mut conn = self.pool.acquire().await?;
        let (sql_id, used, _reserved) =
            current_window(&mut conn, self.kind.book(), hold.rule, to_ms(now)).await?;
        let metric = hold.rule.metric.map_or("", QuotaMetric::as_str);
        self.init_window(
            &hold.key,
            &sql_id,
            used,
            metric,
            to_ms(hold.rule.window.end),
        )
        .await
    }

    /// Recreates the counters of a window known only by its key (a settlement after Redis lost
    /// them): looked up by rule and start in the database.
    async fn rebuild_for_key(&self, key: &str) -> Result<(), RedisStoreError> {
        let prefix = self.conn.key(&format!("ledger:{}:w:", self.kind.name()));
        let Some((rule_id, start)) = key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.rsplit_once(':'))
            .and_then(|(rule, start)| Some((rule, start.parse::<i64>().ok()?)))
        else {
            return Err(RedisStoreError::Reply(format!("not a window key: {key}")));
        };
        let book = self.kind.book();
        let metric = match self.kind {
            Kind::Budget => "NULL",
            Kind::Quota => "metric",
        };
        let sql = format!(
            "SELECT id, {used}, end_at, {metric} FROM {windows} WHERE {fk} = $1 AND start_at = $2",
            used = book.used,
            windows = book.windows,
            fk = book.rule_fk,
        );
        let row: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(&sql)
            .bind(rule_id)
            .bind(start)
            .fetch_optional(&self.pool)
            .await?;
        let Some((sql_id, used, end, metric)) = row else {
            return Err(RedisStoreError::Reply(format!(
                "window {rule_id}@{start} is not in the database"
            )));
        };
        self.init_window(key, &sql_id, used, metric.as_deref().unwrap_or(""), end)
            .await
    }

    async fn init_window(
        &self,
        key: &str,
        sql_id: &str,
        used: i64,
        metric: &str,
        end_ms: i64,
    ) -> Result<(), RedisStoreError> {
        let mut invocation = self.scripts.init.prepare_invoke();
        invocation
            .key(key)
            .arg(sql_id)
            .arg(used)
            .arg(self.kind.name())
            .arg(metric)
            // Relative to the ledger's clock: Redis' own clock may disagree (tests, skew).
            .arg(
                end_ms
                    .saturating_sub(to_ms(self.clock.now()))
                    .max(0)
                    .saturating_add(WINDOW_GRACE_MS),
            );
        let mut conn = self.conn.manager();
        let created: i64 = self
            .conn
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        if created == 1 {
            tracing::info!(
                kind = self.kind.name(),
                window = sql_id,
                used,
                "rebuilt ledger window from the database"
            );
        }
        Ok(())
    }

    /// Settles (`actual` by metric) or releases a reservation; a no-op when it is not live.
    async fn close(
        &self,
        reservation: &Reservation,
        mode: CloseMode,
        actual: &HashMap<&str, i64>,
        actual_cost: i64,
    ) -> Result<Closed, RedisStoreError> {
        let member = reservation.id.as_str();
        if member.starts_with(UNLEDGERED) {
            return match mode {
                CloseMode::Settle => self.add_used(&reservation.windows, actual).await,
                CloseMode::Release | CloseMode::Sweep => Ok(Closed::default()),
            };
        }
        if reservation.windows.is_empty() && mode != CloseMode::Sweep {
            return Ok(Closed::default());
        }
        let now = to_ms(self.clock.now());
        let actual_json = serde_json::to_string(actual)
            .map_err(|error| RedisStoreError::Reply(error.to_string()))?;
        for _ in 0..ATTEMPTS {
            let mut invocation = self.scripts.close.prepare_invoke();
            invocation
                .key(self.lease_key(member))
                .key(self.deadlines_key())
                .key(self.dirty_key());
            for window in &reservation.windows {
                invocation.key(window);
            }
            invocation
                .arg(mode.as_str())
                .arg(now)
                .arg(&actual_json)
                .arg(member)
                .arg(u64::try_from(CLOSED_RETENTION.as_millis()).unwrap_or(u64::MAX))
                .arg(actual_cost);
            let mut conn = self.conn.manager();
            let reply: Vec<Value> = self
                .conn
                .bounded(invocation.invoke_async(&mut conn))
                .await?;
            let reply = Reply::parse(&reply)?;
            match reply.code {
                0 => return Ok(Closed::default()),
                1 => return reply.closed(),
                3 => {
                    for key in reply.rest.iter().map(text) {
                        self.rebuild_for_key(&key).await?;
                    }
                }
                other => return Err(unexpected("close", other)),
            }
        }
        Err(RedisStoreError::Reply(
            "windows kept disappearing while settling".to_owned(),
        ))
    }

    /// Best-effort settlement of a request admitted without Redis (fail-open policy).
    async fn add_used(
        &self,
        windows: &[String],
        actual: &HashMap<&str, i64>,
    ) -> Result<Closed, RedisStoreError> {
        if windows.is_empty() {
            return Ok(Closed::default());
        }
        let actual_json = serde_json::to_string(actual)
            .map_err(|error| RedisStoreError::Reply(error.to_string()))?;
        for _ in 0..ATTEMPTS {
            let mut invocation = self.scripts.add_used.prepare_invoke();
            invocation.key(self.dirty_key());
            for window in windows {
                invocation.key(window);
            }
            invocation.arg(&actual_json);
            let mut conn = self.conn.manager();
            let reply: Vec<Value> = self
                .conn
                .bounded(invocation.invoke_async(&mut conn))
                .await?;
            let reply = Reply::parse(&reply)?;
            match reply.code {
                1 => return reply.closed(),
                3 => {
                    for key in reply.rest.iter().map(text) {
                        self.rebuild_for_key(&key).await?;
                    }
                }
                other => return Err(unexpected("add_used", other)),
            }
        }
        Err(RedisStoreError::Reply(
            "windows kept disappearing while settling".to_owned(),
        ))
    }

    async fn refresh(&self, reservation: &Reservation) -> Result<(), RedisStoreError> {
        if reservation.windows.is_empty() || reservation.id.as_str().starts_with(UNLEDGERED) {
            return Ok(());
        }
        let member = reservation.id.as_str();
        let mut invocation = self.scripts.refresh.prepare_invoke();
        invocation
            .key(self.lease_key(member))
            .key(self.deadlines_key())
            .arg(self.lease_end(self.clock.now()))
            .arg(member);
        let mut conn = self.conn.manager();
        let _: i64 = self
            .conn
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    /// Releases every hold whose lease ended before now.
    async fn sweep(&self) -> Result<u64, RedisStoreError> {
        const BATCH: usize = 256;
        let now = to_ms(self.clock.now());
        let mut released = 0;
        loop {
            let mut conn = self.conn.manager();
            let expired: Vec<String> = self
                .conn
                .bounded(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(self.deadlines_key())
                        .arg("-inf")
                        .arg(format!("({now}"))
                        .arg("LIMIT")
                        .arg(0)
                        .arg(BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            for member in &expired {
                let holds: Option<String> = self
                    .conn
                    .bounded(
                        redis::cmd("HGET")
                            .arg(self.lease_key(member))
                            .arg("holds")
                            .query_async(&mut conn),
                    )
                    .await?;
                let windows = holds
                    .and_then(|holds| serde_json::from_str::<Vec<(String, String)>>(&holds).ok())
                    .unwrap_or_default();
                let reservation = Reservation {
                    id: ReservationId::new(member.as_str()),
                    request_id: RequestId::generate(),
                    windows: windows.into_iter().map(|(key, _)| key).collect(),
                    expires_at: from_ms(now),
                };
                if self
                    .close(&reservation, CloseMode::Sweep, &HashMap::new(), 0)
                    .await?
                    .closed
                {
                    released += 1;
                }
            }
            if expired.len() < BATCH {
                break;
            }
        }
        if released > 0 {
            tracing::info!(
                kind = self.kind.name(),
                released,
                "released expired ledger leases"
            );
        }
        Ok(released)
    }

    /// An admission without Redis under the fail-open policy. The windows' database rows are
    /// created now, so the settlement can rebuild counters Redis never had.
    async fn unledgered(
        &self,
        request_id: &RequestId,
        principal: &Principal,
        holds: &[Hold<'_>],
        now: DateTime<Utc>,
    ) -> Reservation {
        for hold in holds {
            let created = async {
                let mut conn = self.pool.acquire().await?;
                current_window(&mut conn, self.kind.book(), hold.rule, to_ms(now)).await
            };
            if let Err(error) = created.await {
                tracing::warn!(%error, "window row not created for an unledgered admission");
            }
        }
        Reservation {
            id: ReservationId::new(format!(
                "{UNLEDGERED}{}:{}",
                principal.api_key_id.as_str(),
                request_id.as_str()
            )),
            request_id: request_id.clone(),
            windows: holds.iter().map(|hold| hold.key.clone()).collect(),
            expires_at: from_ms(self.lease_end(now)),
        }
    }

    /// Logs (throttled) that Redis is unreachable.
    fn note_outage(&self, error: &RedisStoreError) {
        if self.outage_log.should_log() {
            tracing::warn!(kind = self.kind.name(), %error, policy = %self.outage, "ledger unavailable: Redis unreachable");
        }
    }

    fn forget_rules(&self, command: &InvalidationCommand) {
        let relevant = match self.kind {
            Kind::Budget => command.kind == CacheKind::Budget,
            Kind::Quota => command.kind == CacheKind::Quota,
        };
        if relevant
            || matches!(
                command.kind,
                CacheKind::Organisation | CacheKind::Team | CacheKind::ApiKey
            )
        {
            self.rules.invalidate_all();
        }
    }
}

/// What closing a hold did.
#[derive(Debug, Default)]
struct Closed {
    closed: bool,
    /// `(window key, used after, added)` for every window whose spend grew.
    grew: Vec<(String, i64, i64)>,
}

/// How a hold ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseMode {
    Settle,
    Release,
    /// Release only if the lease ended.
    Sweep,
}

impl CloseMode {
    fn as_str(self) -> &'static str {
        match self {
            CloseMode::Settle => "settle",
            CloseMode::Release => "release",
            CloseMode::Sweep => "sweep",
        }
    }
}

/// A script reply: a code, then values.
struct Reply<'a> {
    code: i64,
    rest: &'a [Value],
}

impl<'a> Reply<'a> {
    fn parse(values: &'a [Value]) -> Result<Self, RedisStoreError> {
        match values.split_first() {
            Some((Value::Int(code), rest)) => Ok(Self { code: *code, rest }),
            _ => Err(RedisStoreError::Reply(format!("{values:?}"))),
        }
    }

    /// A successful close: `(window, used after, added)` triples follow the code.
    fn closed(&self) -> Result<Closed, RedisStoreError> {
        let mut grew = Vec::new();
        for triple in self.rest.chunks(3) {
            match triple {
                [window, Value::Int(after), Value::Int(added)] => {
                    grew.push((text(window), *after, *added))
                }
                other => return Err(RedisStoreError::Reply(format!("close: {other:?}"))),
            }
        }
        Ok(Closed { closed: true, grew })
    }

    fn int(&self, index: usize) -> Result<i64, RedisStoreError> {
        match self.rest.get(index) {
            Some(Value::Int(value)) => Ok(*value),
            other => Err(RedisStoreError::Reply(format!(
                "expected an integer, got {other:?}"
            ))),
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// The hold at a 1-based index from a script reply.
fn hold_at<'h, 'a>(holds: &'h [Hold<'a>], index: i64) -> Result<&'h Hold<'a>, RedisStoreError> {
    usize::try_from(index - 1)
        .ok()
        .and_then(|i| holds.get(i))
        .ok_or_else(|| RedisStoreError::Reply(format!("no window #{index}")))
}

fn unexpected(script: &str, code: i64) -> RedisStoreError {
    RedisStoreError::Reply(format!("{script}: unexpected code {code}"))
}

fn ledger_error(error: RedisStoreError) -> LedgerError {
    LedgerError(error.to_string())
}

/// The set of windows changed since the last flush.
const DIRTY: &str = "ledger:dirty";

/// The Redis [`BudgetLedger`]. Cheap to share behind an `Arc`. Reports warning-threshold
/// crossings like the SQL ledger: each settlement's spend increase is atomic in Redis, so every
/// crossing is reported once, by the settlement that made it.
pub struct RedisBudgetLedger {
    ledger: Ledger,
    alerts: Arc<dyn BudgetAlerts>,
    /// Name, organisation, amount and thresholds per budget id, for crossing reports.
    budgets: moka::sync::Cache<String, Arc<BudgetFacts>>,
}

/// What a threshold report says about a budget.
#[derive(Debug)]
struct BudgetFacts {
    name: String,
    organisation_id: String,
    amount: i64,
    thresholds: Vec<u32>,
}

impl std::fmt::Debug for RedisBudgetLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudgetLedger")
            .field("options", &self.ledger.options)
            .field("outage", &self.ledger.outage)
            .finish_non_exhaustive()
    }
}

impl RedisBudgetLedger {
    /// `pool` is the system of record the windows are rebuilt from and flushed to.
    pub fn new(
        conn: RedisConnection,
        pool: Db,
        clock: Arc<dyn Clock>,
        options: LedgerOptions,
    ) -> Self {
        Self {
            ledger: Ledger::new(Kind::Budget, conn, pool, clock, options),
            alerts: Arc::new(LogBudgetAlerts),
            budgets: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(RULES_TTL)
                .build(),
        }
    }

    /// Reports threshold crossings to `alerts` (default: a warning in the logs).
    pub fn with_alerts(mut self, alerts: Arc<dyn BudgetAlerts>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Reports the thresholds that a settlement's spend increase crossed.
    async fn report_crossings(&self, grew: &[(String, i64, i64)]) {
        let prefix = self.ledger.conn.key("ledger:budget:w:");
        for (window, after, added) in grew {
            let Some((budget_id, start)) = window
                .strip_prefix(&prefix)
                .and_then(|rest| rest.rsplit_once(':'))
                .and_then(|(id, start)| Some((id, start.parse::<i64>().ok()?)))
            else {
                continue;
            };
            let facts = match self.facts(budget_id).await {
                Ok(Some(facts)) => facts,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, budget = budget_id, "budget thresholds not checked");
                    continue;
                }
            };
            let before = after.saturating_sub(*added);
            for threshold in crossed_thresholds(before, *after, facts.amount, &facts.thresholds) {
                self.alerts.threshold_crossed(&ThresholdCrossing {
                    organisation_id: facts.organisation_id.clone(),
                    budget_id: budget_id.to_owned(),
                    budget_name: facts.name.clone(),
                    threshold,
                    used_nanos: *after,
                    amount_nanos: facts.amount,
                    window_start: from_ms(start),
                });
            }
        }
    }

    async fn facts(&self, budget_id: &str) -> Result<Option<Arc<BudgetFacts>>, sqlx::Error> {
        if let Some(facts) = self.budgets.get(budget_id) {
            return Ok(Some(facts));
        }
        let row: Option<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT name, organisation_id, amount_nanos, thresholds FROM budgets WHERE id = $1",
        )
        .bind(budget_id)
        .fetch_optional(&self.ledger.pool)
        .await?;
        Ok(row.map(|(name, organisation_id, amount, thresholds)| {
            let facts = Arc::new(BudgetFacts {
                name,
                organisation_id,
                amount,
                thresholds: crate::ledger::parse_thresholds(thresholds),
            });
            self.budgets.insert(budget_id.to_owned(), facts.clone());
            facts
        }))
    }
}

#[async_trait]
impl BudgetLedger for RedisBudgetLedger {
    async fn reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        estimate_nanos: i64,
    ) -> Result<Reservation, BudgetError> {
        let ledger = &self.ledger;
        let now = ledger.clock.now();
        let estimate = estimate_nanos.max(0);
        let rules = ledger
            .matching(principal, now)
            .await
            .map_err(|error| BudgetError::Unavailable(error.to_string()))?;
        let holds: Vec<Hold<'_>> = rules
            .iter()
            .map(|rule| Hold {
                rule,
                key: ledger.window_key(rule),
                amount: estimate,
                after_the_fact: false,
            })
            .collect();
        if holds.is_empty() {
            return Ok(ledger.empty_reservation(request_id, now));
        }
        match ledger
            .reserve(principal, request_id, &holds, estimate, now)
            .await
        {
            Ok(Admission::Held(reservation)) => Ok(reservation),
            Ok(Admission::Refused(rule)) => Err(BudgetError::Exceeded {
                budget: rule.name.clone(),
            }),
            Err(RedisStoreError::Db(error)) => Err(BudgetError::Unavailable(error.to_string())),
            Err(error) => {
                ledger.note_outage(&error);
                match ledger.outage {
                    OutagePolicy::FailClosed => Err(BudgetError::Unavailable(error.to_string())),
                    OutagePolicy::FailOpen => {
                        Ok(ledger.unledgered(request_id, principal, &holds, now).await)
                    }
                }
            }
        }
    }

    async fn settle(
        &self,
        reservation: &Reservation,
        actual_nanos: i64,
    ) -> Result<(), LedgerError> {
        let actual = actual_nanos.max(0);
        let closed = self
            .ledger
            .close(
                reservation,
                CloseMode::Settle,
                &HashMap::from([("", actual)]),
                actual,
            )
            .await
            .map_err(ledger_error)?;
        self.report_crossings(&closed.grew).await;
        Ok(())
    }

    async fn release(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        self.ledger
            .close(reservation, CloseMode::Release, &HashMap::new(), 0)
            .await
            .map(drop)
            .map_err(ledger_error)
    }

    async fn refresh(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        self.ledger.refresh(reservation).await.map_err(ledger_error)
    }

    async fn sweep_expired(&self) -> Result<u64, LedgerError> {
        self.ledger.sweep().await.map_err(ledger_error)
    }
}

impl CacheInvalidator for RedisBudgetLedger {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.ledger.forget_rules(command);
        if matches!(command.kind, CacheKind::Budget | CacheKind::Organisation) {
            self.budgets.invalidate_all();
        }
    }
}

/// The Redis [`QuotaLedger`]. Metrics as in the SQL quota ledger: REQUESTS, TOKENS, TOKENS_IN,
/// TOKENS_OUT and COST hold their estimate; ERRORS and LATENCY_MS hold nothing and admit while
/// `used < limit`.
pub struct RedisQuotaLedger(Ledger);

impl std::fmt::Debug for RedisQuotaLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQuotaLedger")
            .field("options", &self.0.options)
            .field("outage", &self.0.outage)
            .finish_non_exhaustive()
    }
}

impl RedisQuotaLedger {
    /// `pool` is the system of record the windows are rebuilt from and flushed to.
    pub fn new(
        conn: RedisConnection,
        pool: Db,
        clock: Arc<dyn Clock>,
        options: LedgerOptions,
    ) -> Self {
        Self(Ledger::new(Kind::Quota, conn, pool, clock, options))
    }
}

#[async_trait]
impl QuotaLedger for RedisQuotaLedger {
    async fn reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        demand: QuotaDemand,
    ) -> Result<Reservation, QuotaError> {
        let ledger = &self.0;
        let now = ledger.clock.now();
        let rules = ledger
            .matching(principal, now)
            .await
            .map_err(|error| QuotaError::Unavailable(error.to_string()))?;
        let holds: Vec<Hold<'_>> = rules
            .iter()
            .filter_map(|rule| {
                let metric = rule.metric?;
                Some(Hold {
                    rule,
                    key: ledger.window_key(rule),
                    amount: reserve_amount(metric, &demand),
                    after_the_fact: matches!(metric, QuotaMetric::Errors | QuotaMetric::LatencyMs),
                })
            })
            .collect();
        if holds.is_empty() {
            return Ok(ledger.empty_reservation(request_id, now));
        }
        match ledger
            .reserve(principal, request_id, &holds, demand.cost_nanos.max(0), now)
            .await
        {
            Ok(Admission::Held(reservation)) => Ok(reservation),
            Ok(Admission::Refused(rule)) => Err(QuotaError::Exceeded {
                quota: rule.name.clone(),
                retry_after: (rule.window.end - now).to_std().unwrap_or_default(),
            }),
            Err(RedisStoreError::Db(error)) => Err(QuotaError::Unavailable(error.to_string())),
            Err(error) => {
                ledger.note_outage(&error);
                match ledger.outage {
                    OutagePolicy::FailClosed => Err(QuotaError::Unavailable(error.to_string())),
                    OutagePolicy::FailOpen => {
                        Ok(ledger.unledgered(request_id, principal, &holds, now).await)
                    }
                }
            }
        }
    }

    async fn settle(
        &self,
        reservation: &Reservation,
        actual: QuotaActuals,
    ) -> Result<(), LedgerError> {
        let amounts: HashMap<&str, i64> = QuotaMetric::ALL
            .iter()
            .map(|metric| (metric.as_str(), settle_amount(*metric, &actual)))
            .collect();
        self.0
            .close(
                reservation,
                CloseMode::Settle,
                &amounts,
                actual.cost_nanos.max(0),
            )
            .await
            .map(drop)
            .map_err(ledger_error)
    }

    async fn release(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        self.0
            .close(reservation, CloseMode::Release, &HashMap::new(), 0)
            .await
            .map(drop)
            .map_err(ledger_error)
    }

    async fn refresh(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        self.0.refresh(reservation).await.map_err(ledger_error)
    }

    async fn sweep_expired(&self) -> Result<u64, LedgerError> {
        self.0.sweep().await.map_err(ledger_error)
    }
}

impl CacheInvalidator for RedisQuotaLedger {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.0.forget_rules(command);
    }
}

#[async_trait]
impl crate::ledger::SweepExpired for RedisBudgetLedger {
    async fn sweep_expired_leases(&self) -> Result<u64, LedgerError> {
        BudgetLedger::sweep_expired(self).await
    }
}

#[async_trait]
impl crate::ledger::SweepExpired for RedisQuotaLedger {
    async fn sweep_expired_leases(&self) -> Result<u64, LedgerError> {
        QuotaLedger::sweep_expired(self).await
    }
}

/// A window's `(sql id, kind, used, reserved)` as Redis has it (all absent if it expired).
type WindowTotals = (Option<String>, Option<String>, Option<i64>, Option<i64>);

/// Writes the Redis windows' totals to the database in batches: `used` (never lowered, so a
/// replica flushing an older value cannot undo a newer one) and `reserved` (informational).
#[derive(Clone)]
pub struct RedisLedgerFlusher {
    conn: RedisConnection,
    pool: Db,
}

impl std::fmt::Debug for RedisLedgerFlusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedgerFlusher")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl RedisLedgerFlusher {
    const BATCH: usize = 256;

    pub fn new(conn: RedisConnection, pool: Db) -> Self {
        Self { conn, pool }
    }

    /// Writes every window changed since the last flush (on any replica); returns how many.
    pub async fn flush(&self) -> Result<u64, RedisStoreError> {
        let dirty = self.conn.key(DIRTY);
        let mut written = 0;
        loop {
            let mut conn = self.conn.manager();
            let keys: Vec<String> = self
                .conn
                .bounded(
                    redis::cmd("SPOP")
                        .arg(&dirty)
                        .arg(Self::BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            if keys.is_empty() {
                return Ok(written);
            }
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HMGET")
                    .arg(key)
                    .arg("sql")
                    .arg("kind")
                    .arg("used")
                    .arg("reserved");
            }
            let totals: Vec<WindowTotals> = self.conn.bounded(pipe.query_async(&mut conn)).await?;
            if let Err(error) = self.write(&totals).await {
                // Put them back for the next flush; the Redis counters stay authoritative.
                let _: Result<i64, _> = self
                    .conn
                    .bounded(
                        redis::cmd("SADD")
                            .arg(&dirty)
                            .arg(&keys)
                            .query_async(&mut conn),
                    )
                    .await;
                return Err(error.into());
            }
            written += keys.len() as u64;
        }
    }

    async fn write(&self, totals: &[WindowTotals]) -> Result<(), sqlx::Error> {
        let now = crate::db::now_ms();
        let mut tx = self.pool.begin().await?;
        for (sql_id, kind, used, reserved) in totals {
            let (Some(sql_id), Some(kind), Some(used)) = (sql_id, kind, used) else {
                continue; // expired meanwhile
            };
            let Some(kind) = Kind::from_name(kind) else {
                continue;
            };
            let book = kind.book();
            let sql = format!(
                "UPDATE {windows} SET {used} = CASE WHEN {used} < $1 THEN $1 ELSE {used} END, \
                 {reserved} = $2, updated_at = $3 WHERE id = $4",
                windows = book.windows,
                used = book.used,
                reserved = book.reserved,
            );
            sqlx::query(&sql)
                .bind(*used)
                .bind(reserved.unwrap_or(0).max(0))
                .bind(now)
                .bind(sql_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Flushes every `every` until the handle is aborted (errors are logged and retried).
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = self.flush().await {
                    tracing::warn!(%error, "ledger totals not flushed to the database; retrying");
                }
            }
        })
    }
}
