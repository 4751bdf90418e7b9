//! [`RedisTicket`]: what one admission holds in Redis, settled or released by one script call
//! (spawned: tickets end where response bodies end or are dropped, which must not wait).

use std::sync::Arc;
use std::time::Duration;

use odock_core::ledger::used_amount;
use odock_core::rate_limit::ScopeLimits;
use odock_core::{
    crossed_thresholds, thresholds_of, Actuals, QuotaMetric, RuleKind, Settlement,
    ThresholdCrossing, UsageRecord,
};
use redis::Value;

use super::reply::{self, Reply};
use super::{Inner, PlannedWindow, ATTEMPTS};
use crate::connection::RedisStoreError;

/// How long a closed lease is remembered, so a late duplicate finds it closed.
const CLOSED_RETENTION_MS: u64 = 24 * 3_600 * 1_000;

/// Pauses between attempts at a settlement while Redis is unreachable.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(200), Duration::from_secs(1)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Settle,
    Release,
    /// Release only if the lease expired (a dead replica's hold).
    Sweep,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Settle => "settle",
            Mode::Release => "release",
            Mode::Sweep => "sweep",
        }
    }
}

pub(crate) struct RedisTicket {
    inner: Arc<Inner>,
    member: Arc<str>,
    windows: Vec<PlannedWindow>,
    scopes: Vec<ScopeLimits>,
    estimated_tokens: u64,
    ended: bool,
}

impl RedisTicket {
    pub(crate) fn new(
        inner: Arc<Inner>,
        member: Arc<str>,
        windows: Vec<PlannedWindow>,
        scopes: Vec<ScopeLimits>,
        estimated_tokens: u64,
    ) -> Self {
        Self {
            inner,
            member,
            windows,
            scopes,
            estimated_tokens,
            ended: false,
        }
    }

    /// Ends the ticket in a task of its own.
    fn end(&mut self, mode: Mode, actual: Actuals) {
        self.ended = true;
        let ending = Ending {
            inner: self.inner.clone(),
            member: self.member.clone(),
            windows: std::mem::take(&mut self.windows),
            scopes: std::mem::take(&mut self.scopes),
            estimated_tokens: self.estimated_tokens,
            mode,
            actual,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(ending.run());
            }
            Err(_) => {
                tracing::warn!("no runtime to end a Redis hold on; it expires with its lease")
            }
        }
    }
}

impl Settlement for RedisTicket {
    fn settle(mut self: Box<Self>, record: &mut UsageRecord) {
        self.end(Mode::Settle, Actuals::of(record));
    }
}

impl Drop for RedisTicket {
    fn drop(&mut self) {
        if !self.ended {
            self.end(Mode::Release, Actuals::default());
        }
    }
}

/// One settlement or release, owned by its task.
struct Ending {
    inner: Arc<Inner>,
    member: Arc<str>,
    windows: Vec<PlannedWindow>,
    scopes: Vec<ScopeLimits>,
    estimated_tokens: u64,
    mode: Mode,
    actual: Actuals,
}

impl Ending {
    async fn run(self) {
        let mut pauses = RETRY_PAUSES.iter();
        loop {
            match self.attempt().await {
                Ok(grew) => {
                    self.report_crossings(&grew);
                    break;
                }
                Err(error) => match pauses.next() {
                    Some(pause) => tokio::time::sleep(*pause).await,
                    None => {
                        tracing::error!(%error, mode = self.mode.as_str(), "Redis hold not ended; it expires with its lease");
                        break;
                    }
                },
            }
        }
        self.inner.live.lock().remove(&self.member);
    }

    /// One finish, rebuilding windows Redis lost; the windows whose spend grew.
    async fn attempt(&self) -> Result<Vec<(String, i64, i64)>, RedisStoreError> {
        let amounts = actual_amounts(&self.actual);
        let actual_tokens = self.actual.tokens_in.saturating_add(self.actual.tokens_out);
        for _ in 0..ATTEMPTS {
            let reply = finish(
                &self.inner,
                &self.member,
                self.mode,
                &self.windows,
                &self.scopes,
                self.estimated_tokens,
                actual_tokens,
                &amounts,
            )
            .await?;
            match reply {
                Reply::Done(grew) => return Ok(grew),
                Reply::NotLive => return Ok(Vec::new()),
                Reply::Missing(keys) => {
                    for key in keys {
                        if let Some(window) = self.windows.iter().find(|w| w.key == key) {
                            self.inner.rebuild(window).await?;
                        }
                    }
                }
            }
        }
        Err(RedisStoreError::Reply(
            "windows kept disappearing while settling".to_owned(),
        ))
    }

    /// Budget windows whose spend crossed a warning threshold, reported once: each settlement's
    /// increase is atomic in Redis, so exactly one settlement sees each crossing.
    fn report_crossings(&self, grew: &[(String, i64, i64)]) {
        for (key, after, added) in grew {
            let Some(window) = self.windows.iter().find(|w| &w.key == key) else {
                continue;
            };
            let rule = &window.rule;
            let before = after.saturating_sub(*added);
            for threshold in crossed_thresholds(before, *after, rule.limit, thresholds_of(rule)) {
                self.inner.alerts.threshold_crossed(&ThresholdCrossing {
                    organisation_id: rule.organisation_id.as_str().to_owned(),
                    budget_id: rule.id.to_string(),
                    budget_name: rule.name.clone(),
                    quota_metric: rule.kind.metric(),
                    threshold,
                    used_nanos: *after,
                    amount_nanos: rule.limit,
                    window_start: window.window.start,
                });
            }
        }
    }
}

/// What each kind of window counts for `actual`, keyed as the windows' `metric` field (`""` for
/// budgets), for the finishing script.
fn actual_amounts(actual: &Actuals) -> String {
    let mut amounts = serde_json::Map::new();
    amounts.insert(String::new(), used_amount(RuleKind::Budget, actual).into());
    for metric in QuotaMetric::ALL {
        amounts.insert(
            metric.as_str().to_owned(),
            used_amount(RuleKind::Quota(*metric), actual).into(),
        );
    }
    serde_json::Value::Object(amounts).to_string()
}

/// Runs the finishing script once for `member`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish(
    inner: &Inner,
    member: &str,
    mode: Mode,
    windows: &[PlannedWindow],
    scopes: &[ScopeLimits],
    estimated_tokens: u64,
    actual_tokens: u64,
    amounts: &str,
) -> Result<Reply, RedisStoreError> {
    let concurrency: Vec<&ScopeLimits> = scopes.iter().filter(|s| s.max_concurrent > 0).collect();
    let mut invocation = inner.finish.prepare_invoke();
    invocation
        .key(inner.lease_key(member))
        .key(inner.deadlines_key())
        .key(inner.dirty_key());
    for window in windows {
        invocation.key(&window.key);
    }
    for scope in &concurrency {
        invocation.key(inner.rate_key(&scope.key, "conc"));
    }
    for scope in scopes.iter().filter(|s| s.tokens_per_minute > 0) {
        invocation.key(inner.rate_key(&scope.key, "tpm"));
    }
    invocation
        .arg(mode.as_str())
        .arg(inner.clock.now().timestamp_millis())
        .arg(if amounts.is_empty() { "{}" } else { amounts })
        .arg(member)
        .arg(CLOSED_RETENTION_MS)
        .arg(windows.len())
        .arg(concurrency.len())
        .arg(estimated_tokens)
        .arg(actual_tokens)
        .arg(inner.clock.now().timestamp_micros());
    let mut conn = inner.conn.manager();
    let reply: Vec<Value> = inner
        .conn
        .bounded(invocation.invoke_async(&mut conn))
        .await?;
    reply::finish(&reply)
}
