//! [`RedisAdmission`]: rate limits, quotas and budgets shared by every replica, admitted in one
//! Redis round trip and settled in one.
//!
//! - **Rules** (which budgets and quotas match a principal) come from the organisation's
//!   [`RuleCache`] in memory — no database round trip on a warm path — reloaded on invalidation.
//! - **Admission** is one Lua script (`lua/admit.lua`) over every matching window and every
//!   scope's rate counters: windows must admit (`used + reserved + estimate ≤ limit`; ERRORS /
//!   LATENCY_MS: `used < limit`) and rates must admit before anything is written; then the hold is
//!   added to every window, the request's lease is recorded (its deadline in a sorted set), and the
//!   rate counters advance. Concurrent requests share the multiplexed connection, so their scripts
//!   are pipelined.
//! - **Cancellation:** the script runs in a task of its own. If the client has gone by the time it
//!   answers, the ticket it produced is dropped unclaimed, and dropping a ticket releases it.
//! - **Settlement** (`lua/finish.lua`, spawned when the usage record is made) moves the actual
//!   usage into the windows, releases the holds and concurrency slots and corrects the token
//!   windows, once per admission (each admission has its own random member id, so a replayed
//!   `X-Request-Id` is a new admission, never a free pass).
//! - **Leases:** a replica refreshes the leases of its live holds in one script every third of the
//!   lease, and sweeps expired ones (a dead replica's) — see [`RedisAdmission::spawn_lease_keeper`].
//!   A hold swept while its request still ran is settled all the same: its usage counts once.
//! - **Durability:** windows touched are marked dirty; [`RedisLedgerFlusher`](crate::RedisLedgerFlusher)
//!   writes their `used` to the database. A window Redis does not have (first use, or Redis lost
//!   it) is rebuilt from the database's total before the script is run again.
//! - **Outage:** while Redis is unreachable, rate limits fail open; budgets and quotas follow the
//!   [`OutagePolicy`]: fail closed (503) or admit unledgered, the usage then added best-effort
//!   when it settles.
//!
//! Keys under the prefix: windows `ledger:w:{budget|quota}:{rule id}:{start ms}` (hash `used`,
//! `reserved`, `kind`, `metric`, `rule`, `start`, `end`; expiring a day after the window ends),
//! leases `ledger:r:{member}`, deadlines `ledger:leases`, dirty windows `ledger:dirty`, rate
//! counters `rl:{scope}:{id}:{rps|rpm|tpm|conc}`. Counters are doubles inside Lua: exact up to
//! 2^53 (9 × 10^15 nanos, $9M per window).

mod reply;
mod ticket;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use odock_core::ledger::{hold_amount, refusal, OrgRules};
use odock_core::rate_limit::ScopeLimits;
use odock_core::windows::Window;
use odock_core::{
    Admission, AdmissionRequest, Admitted, BudgetAlerts, BudgetError, CacheInvalidator, Clock,
    GatewayError, InvalidationCommand, LedgerKind, LedgerRule, LiveWindows, OrganisationId,
    QuotaError, RuleCache, RuleKind, RuleSource, Ticket, WindowTotals,
};
use odock_store::db::Db;
use parking_lot::Mutex;
use redis::{Script, Value};

use crate::connection::{RedisConnection, RedisStoreError};
use crate::outage::{OutageLog, OutagePolicy};
use reply::{Decision, Reply};
use ticket::RedisTicket;

/// How long a window's counters outlive the window (late settlements still land in Redis).
const WINDOW_GRACE_MS: i64 = 24 * 3_600 * 1_000;

/// Attempts at a script whose windows had to be rebuilt first.
const ATTEMPTS: usize = 3;

/// The set of windows changed since the last flush.
pub(crate) const DIRTY: &str = "ledger:dirty";

/// Leases per refresh script.
const REFRESH_BATCH: usize = 256;

/// Settings of a [`RedisAdmission`].
#[derive(Debug, Clone)]
pub struct RedisAdmissionOptions {
    /// How long a hold lives without a refresh before any replica's sweeper may release it.
    pub lease: Duration,
    /// How long loaded rules serve before a background reload.
    pub rules_refresh_after: Duration,
}

impl Default for RedisAdmissionOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            rules_refresh_after: odock_core::ledger::DEFAULT_REFRESH_AFTER,
        }
    }
}

/// The shared [`Admission`]. Cheap to clone.
#[derive(Clone)]
pub struct RedisAdmission {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    conn: RedisConnection,
    pool: Db,
    rules: Arc<RuleCache>,
    clock: Arc<dyn Clock>,
    alerts: Arc<dyn BudgetAlerts>,
    lease: Duration,
    outage: OutagePolicy,
    outage_log: OutageLog,
    admit: Script,
    finish: Script,
    refresh: Script,
    init: Script,
    /// Members of this replica's live holds (their leases are refreshed).
    live: Mutex<HashSet<Arc<str>>>,
}

impl std::fmt::Debug for RedisAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdmission")
            .field("conn", &self.inner.conn)
            .field("lease", &self.inner.lease)
            .field("outage", &self.inner.outage)
            .finish_non_exhaustive()
    }
}

/// One window a request asks to be held in.
#[derive(Debug, Clone)]
pub(crate) struct PlannedWindow {
    pub key: String,
    pub rule: Arc<LedgerRule>,
    pub window: Window,
    pub amount: i64,
}

/// Everything the admission script needs, owned (it runs in a task of its own).
struct Plan {
    member: Arc<str>,
    windows: Vec<PlannedWindow>,
    scopes: Vec<ScopeLimits>,
    tokens: u64,
    now: DateTime<Utc>,
}

impl RedisAdmission {
    /// `pool` is the system of record: rules are read and windows rebuilt from it.
    pub fn new(
        conn: RedisConnection,
        pool: Db,
        rules: Arc<dyn RuleSource>,
        clock: Arc<dyn Clock>,
        alerts: Arc<dyn BudgetAlerts>,
        options: RedisAdmissionOptions,
    ) -> Self {
        let outage = conn.settings().outage;
        Self {
            inner: Arc::new(Inner {
                conn,
                pool,
                rules: Arc::new(RuleCache::new(
                    rules,
                    clock.clone(),
                    options.rules_refresh_after,
                )),
                clock,
                alerts,
                lease: options.lease,
                outage,
                outage_log: OutageLog::default(),
                admit: Script::new(include_str!("../lua/admit.lua")),
                finish: Script::new(include_str!("../lua/finish.lua")),
                refresh: Script::new(include_str!("../lua/refresh.lua")),
                init: Script::new(include_str!("../lua/init_window.lua")),
                live: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Refreshes this replica's live leases and sweeps expired ones (any replica's) every
    /// `every` (a third of the lease) until the handle is aborted.
    pub fn spawn_lease_keeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = inner.refresh_live().await {
                    tracing::warn!(%error, "ledger leases not refreshed; retrying");
                }
                if let Err(error) = inner.sweep_expired().await {
                    tracing::warn!(%error, "expired ledger leases not swept; retrying");
                }
            }
        })
    }

    /// Releases every hold whose lease ended (a dead replica's); returns how many.
    pub async fn sweep_expired(&self) -> Result<u64, RedisStoreError> {
        self.inner.sweep_expired().await
    }

    /// Holds of this replica that are still live (for tests and metrics).
    pub fn live_holds(&self) -> usize {
        self.inner.live.lock().len()
    }

    /// The live totals of a rule's window as Redis has them (`None` when Redis has no counters
    /// for it: the stored totals are authoritative).
    pub async fn window_totals(
        &self,
        kind: LedgerKind,
        rule_id: &str,
        start: DateTime<Utc>,
    ) -> Result<Option<WindowTotals>, RedisStoreError> {
        let key = self
            .inner
            .window_key(kind, rule_id, start.timestamp_millis());
        let mut conn = self.inner.conn.manager();
        let (used, reserved): (Option<i64>, Option<i64>) = self
            .inner
            .conn
            .bounded(
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("used")
                    .arg("reserved")
                    .query_async(&mut conn),
            )
            .await?;
        Ok(used.map(|used| WindowTotals {
            used,
            reserved: reserved.unwrap_or(0).max(0),
        }))
    }
}

impl Inner {
    pub(crate) fn window_key(&self, kind: LedgerKind, rule_id: &str, start_ms: i64) -> String {
        self.conn
            .key(&format!("ledger:w:{}:{rule_id}:{start_ms}", kind.as_str()))
    }

    pub(crate) fn lease_key(&self, member: &str) -> String {
        self.conn.key(&format!("ledger:r:{member}"))
    }

    pub(crate) fn deadlines_key(&self) -> String {
        self.conn.key("ledger:leases")
    }

    pub(crate) fn dirty_key(&self) -> String {
        self.conn.key(DIRTY)
    }

    fn rate_key(&self, scope_key: &str, counter: &str) -> String {
        self.conn.key(&format!("rl:{scope_key}:{counter}"))
    }

    fn lease_end_ms(&self, now: DateTime<Utc>) -> i64 {
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        now.timestamp_millis().saturating_add(lease)
    }

    /// The windows `principal`'s request is held in: every matching rule's current window.
    fn plan_windows(
        &self,
        rules: &OrgRules,
        request: &AdmissionRequest<'_>,
        now: DateTime<Utc>,
    ) -> Vec<PlannedWindow> {
        rules
            .rules
            .iter()
            .filter(|rule| rule.owner.applies_to(request.principal))
            .filter_map(|rule| {
                let window = rule.schedule.window_at(now)?;
                Some(PlannedWindow {
                    key: self.window_key(
                        rule.kind.ledger(),
                        &rule.id,
                        window.start.timestamp_millis(),
                    ),
                    rule: rule.clone(),
                    window,
                    amount: hold_amount(rule.kind, &request.estimate),
                })
            })
            .collect()
    }

    /// Runs the admission script until it decides (rebuilding windows Redis lacks).
    async fn run(self: &Arc<Self>, plan: Plan) -> Result<Admitted, GatewayError> {
        for _ in 0..ATTEMPTS {
            let reply = match self.invoke_admit(&plan).await {
                Ok(reply) => reply,
                Err(error) => return self.outage(plan, error),
            };
            match reply::admission(&reply, &plan.scopes, plan.windows.len()) {
                Ok(Decision::Admitted { requests, tokens }) => {
                    return Ok(Admitted {
                        requests,
                        tokens,
                        ticket: self.ticket(plan, true),
                    });
                }
                Ok(Decision::RateRefused(denied)) => {
                    return Err(odock_core::admission::rate_refusal(denied))
                }
                Ok(Decision::WindowRefused(index)) => {
                    let held = &plan.windows[index];
                    return Err(refusal(&held.rule, &held.window, plan.now));
                }
                Ok(Decision::Missing(indices)) => {
                    for index in indices {
                        if let Err(error) = self.rebuild(&plan.windows[index]).await {
                            return self.outage(plan, error);
                        }
                    }
                }
                Err(error) => return self.outage(plan, error),
            }
        }
        self.outage(
            plan,
            RedisStoreError::Reply("windows kept disappearing while admitting".to_owned()),
        )
    }

    async fn invoke_admit(&self, plan: &Plan) -> Result<Vec<Value>, RedisStoreError> {
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(self.lease_key(&plan.member))
            .key(self.deadlines_key())
            .key(self.dirty_key())
            .arg(plan.now.timestamp_micros())
            .arg(plan.tokens)
            .arg(&*plan.member)
            .arg(plan.scopes.len())
            .arg(self.lease_end_ms(plan.now));
        for limits in &plan.scopes {
            for counter in ["rps", "rpm", "tpm", "conc"] {
                invocation.key(self.rate_key(&limits.key, counter));
            }
            invocation
                .arg(limits.requests_per_second)
                .arg(limits.burst)
                .arg(limits.requests_per_minute)
                .arg(limits.tokens_per_minute)
                .arg(limits.max_concurrent)
                .arg(u64::try_from(limits.lease_ttl.as_millis()).unwrap_or(u64::MAX));
        }
        for window in &plan.windows {
            invocation
                .key(&window.key)
                .arg(window.rule.limit)
                .arg(window.amount)
                .arg(u8::from(window.rule.kind.counted_after_the_fact()));
        }
        let mut conn = self.conn.manager();
        self.conn.bounded(invocation.invoke_async(&mut conn)).await
    }

    /// The ticket of an admitted plan (`ledgered`: its holds are in Redis).
    fn ticket(self: &Arc<Self>, plan: Plan, ledgered: bool) -> Ticket {
        if plan.windows.is_empty() && plan.scopes.is_empty() {
            return Ticket::empty();
        }
        if ledgered && !plan.windows.is_empty() {
            self.live.lock().insert(plan.member.clone());
        }
        Ticket::new(RedisTicket::new(
            self.clone(),
            plan.member,
            plan.windows,
            plan.scopes,
            plan.tokens,
        ))
    }

    /// Redis could not be reached (or a window could not be rebuilt): rate limits fail open,
    /// budgets and quotas follow the outage policy.
    fn outage(
        self: &Arc<Self>,
        plan: Plan,
        error: RedisStoreError,
    ) -> Result<Admitted, GatewayError> {
        if self.outage_log.should_log() {
            tracing::warn!(%error, policy = %self.outage, "admission without Redis: rate limits fail open, budgets and quotas follow the outage policy");
        }
        if plan.windows.is_empty() {
            return Ok(Admitted::default());
        }
        match self.outage {
            OutagePolicy::FailClosed => {
                let message = error.to_string();
                Err(
                    if plan.windows.iter().any(|w| w.rule.kind == RuleKind::Budget) {
                        BudgetError::Unavailable(message).into()
                    } else {
                        QuotaError::Unavailable(message).into()
                    },
                )
            }
            // Settled like a hold Redis lost: the usage is added to the windows, once.
            OutagePolicy::FailOpen => Ok(Admitted {
                ticket: self.ticket(
                    Plan {
                        scopes: Vec::new(),
                        ..plan
                    },
                    false,
                ),
                ..Admitted::default()
            }),
        }
    }

    /// Creates a window's counters from the database's total (first use, or Redis lost them).
    pub(crate) async fn rebuild(&self, window: &PlannedWindow) -> Result<(), RedisStoreError> {
        let kind = window.rule.kind.ledger();
        let start = window.window.start.timestamp_millis();
        let end = window.window.end.timestamp_millis();
        let used =
            odock_store::ledger::window_used(&self.pool, kind, &window.rule.id, start).await?;
        let keep_ms = end
            .saturating_sub(self.clock.now().timestamp_millis())
            .max(0)
            .saturating_add(WINDOW_GRACE_MS);
        let mut invocation = self.init.prepare_invoke();
        invocation
            .key(&window.key)
            .arg(used)
            .arg(kind.as_str())
            .arg(window.rule.kind.metric().map_or("", |m| m.as_str()))
            .arg(&*window.rule.id)
            .arg(start)
            .arg(end)
            .arg(keep_ms);
        let mut conn = self.conn.manager();
        let created: i64 = self
            .conn
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        if created == 1 {
            tracing::info!(window = %window.key, used, "rebuilt ledger window from the database");
        }
        Ok(())
    }

    async fn refresh_live(&self) -> Result<(), RedisStoreError> {
        let members: Vec<Arc<str>> = self.live.lock().iter().cloned().collect();
        let expires = self.lease_end_ms(self.clock.now());
        for chunk in members.chunks(REFRESH_BATCH) {
            let mut invocation = self.refresh.prepare_invoke();
            invocation.key(self.deadlines_key()).arg(expires);
            for member in chunk {
                invocation.key(self.lease_key(member)).arg(&**member);
            }
            let mut conn = self.conn.manager();
            let _: i64 = self
                .conn
                .bounded(invocation.invoke_async(&mut conn))
                .await?;
        }
        Ok(())
    }

    async fn sweep_expired(self: &Arc<Self>) -> Result<u64, RedisStoreError> {
        const BATCH: usize = 256;
        let now = self.clock.now().timestamp_millis();
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
                let reply =
                    ticket::finish(self, member, ticket::Mode::Sweep, &[], &[], 0, 0, "").await?;
                if matches!(reply, Reply::Done(_)) {
                    released += 1;
                }
            }
            if expired.len() < BATCH {
                break;
            }
        }
        if released > 0 {
            tracing::info!(released, "released expired ledger leases");
        }
        Ok(released)
    }
}

#[async_trait]
impl Admission for RedisAdmission {
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Admitted, GatewayError> {
        let inner = &self.inner;
        let rules = inner
            .rules
            .rules(&request.principal.organisation_id)
            .await?;
        let now = inner.clock.now();
        let windows = inner.plan_windows(&rules, &request, now);
        self.run_plan(windows, &request, now).await
    }

    async fn admit_rates(&self, request: AdmissionRequest<'_>) -> Result<Admitted, GatewayError> {
        self.run_plan(Vec::new(), &request, self.inner.clock.now())
            .await
    }
}

impl RedisAdmission {
    /// Admits `request`'s rate limits and `windows` in one script run.
    async fn run_plan(
        &self,
        windows: Vec<PlannedWindow>,
        request: &AdmissionRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<Admitted, GatewayError> {
        let inner = &self.inner;
        if windows.is_empty() && request.limits.is_empty() {
            return Ok(Admitted::default());
        }
        let plan = Plan {
            member: Arc::from(odock_core::ids::random_hex(16)),
            windows,
            scopes: request.limits.to_vec(),
            tokens: request.estimated_tokens(),
            now,
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let task_inner = inner.clone();
        // The script runs to completion whatever happens to this request: if the request is gone
        // when it answers, the unclaimed ticket is dropped, and a dropped ticket releases itself.
        tokio::spawn(async move {
            let _ = sender.send(task_inner.run(plan).await);
        });
        receiver
            .await
            .unwrap_or_else(|_| Err(GatewayError::Internal("admission task failed".into())))
    }
}

#[async_trait]
impl LiveWindows for RedisAdmission {
    async fn live_totals(
        &self,
        _organisation: &OrganisationId,
        kind: LedgerKind,
        rule_id: &str,
        start: DateTime<Utc>,
    ) -> Option<WindowTotals> {
        match self.window_totals(kind, rule_id, start).await {
            Ok(totals) => totals,
            Err(error) => {
                tracing::warn!(%error, "live window totals unavailable; showing the stored ones");
                None
            }
        }
    }
}

/// Admin writes to budgets, quotas or organisations reload the organisation's rules.
impl CacheInvalidator for RedisAdmission {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.inner.rules.invalidate(command);
    }
}

impl RedisAdmission {
    /// The organisation's rules as loaded (for tests).
    pub fn loaded_rules(&self, organisation: &OrganisationId) -> Option<Arc<OrgRules>> {
        self.inner.rules.loaded(organisation)
    }
}
