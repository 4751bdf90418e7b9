//! [`SqlQuotaLedger`]: one metric per quota, per ORG / TEAM / USER / APIKEY owner.
//!
//! | metric | reserves | settles | admits while |
//! |---|---|---|---|
//! | REQUESTS | 1 | 1 | `used + reserved + 1 ≤ limit` |
//! | TOKENS | `tokens_in + tokens_out` | actual in + out | `used + reserved + estimate ≤ limit` |
//! | TOKENS_IN / TOKENS_OUT | that part | actual part | idem |
//! | COST | `cost_nanos` | actual cost | idem |
//! | ERRORS | 0 | `errors` | `used < limit` |
//! | LATENCY_MS | 0 | `latency_ms` | `used < limit` |

use std::sync::Arc;

use crate::db::Db;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use odock_core::windows::Window;
use odock_core::{
    Clock, LedgerError, Principal, QuotaActuals, QuotaDemand, QuotaError, QuotaLedger, QuotaMetric,
    RequestId, Reservation, ReservationId,
};

use super::rules::{self, QUOTA_RULES};
use super::GOVERNED_TTL;
use super::{
    begin_immediate, close_now, current_window, empty_reservation, existing_reservation,
    find_lease, lease_end, lease_key, record_holds, to_i64, Close, Hold, LedgerOptions, QUOTAS,
    RESERVED,
};
use crate::db::{from_ms, to_ms};

/// The SQLite [`QuotaLedger`]. Its holds live in the same lease table as budgets (keyed
/// `quota:<api key id>:<request id>`), so [`refresh`](Self::refresh) and
/// [`sweep_expired`](Self::sweep_expired) work the same way.
pub struct SqlQuotaLedger {
    pool: Db,
    clock: Arc<dyn Clock>,
    options: LedgerOptions,
    governed: rules::Governed,
}

impl std::fmt::Debug for SqlQuotaLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlQuotaLedger")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What a metric holds at admission.
pub(crate) fn reserve_amount(metric: QuotaMetric, demand: &QuotaDemand) -> i64 {
    match metric {
        QuotaMetric::Requests => 1,
        QuotaMetric::Tokens => to_i64(demand.tokens_in.saturating_add(demand.tokens_out)),
        QuotaMetric::TokensIn => to_i64(demand.tokens_in),
        QuotaMetric::TokensOut => to_i64(demand.tokens_out),
        QuotaMetric::Cost => demand.cost_nanos.max(0),
        QuotaMetric::Errors | QuotaMetric::LatencyMs => 0,
    }
}

/// What a metric counts at settlement.
pub(crate) fn settle_amount(metric: QuotaMetric, actual: &QuotaActuals) -> i64 {
    match metric {
        QuotaMetric::Requests => 1,
        QuotaMetric::Tokens => to_i64(actual.tokens_in.saturating_add(actual.tokens_out)),
        QuotaMetric::TokensIn => to_i64(actual.tokens_in),
        QuotaMetric::TokensOut => to_i64(actual.tokens_out),
        QuotaMetric::Cost => actual.cost_nanos.max(0),
        QuotaMetric::Errors => to_i64(actual.errors),
        QuotaMetric::LatencyMs => to_i64(actual.latency_ms),
    }
}

fn admits(metric: QuotaMetric, used: i64, reserved: i64, amount: i64, limit: i64) -> bool {
    match metric {
        // Counted after the fact: admit until the limit has been reached.
        QuotaMetric::Errors | QuotaMetric::LatencyMs => used < limit,
        QuotaMetric::Requests
        | QuotaMetric::Tokens
        | QuotaMetric::TokensIn
        | QuotaMetric::TokensOut
        | QuotaMetric::Cost => used.saturating_add(reserved).saturating_add(amount) <= limit,
    }
}

fn retry_after(window: &Window, now: DateTime<Utc>) -> std::time::Duration {
    (window.end - now).to_std().unwrap_or_default()
}

impl SqlQuotaLedger {
    pub fn new(pool: Db, clock: Arc<dyn Clock>, options: LedgerOptions) -> Self {
        Self {
            pool,
            clock,
            options,
            governed: rules::Governed::new("quotas", GOVERNED_TTL),
        }
    }

    async fn try_reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        demand: &QuotaDemand,
    ) -> Result<Result<Reservation, QuotaError>, sqlx::Error> {
        let now = self.clock.now();
        {
            if !self
                .governed
                .has_rules(&self.pool, principal.organisation_id.as_str())
                .await?
            {
                return Ok(Ok(empty_reservation(request_id, now, self.options.lease)));
            }
            let mut conn = self.pool.acquire().await?;
            if rules::matching(&mut conn, QUOTA_RULES, principal, now)
                .await?
                .is_empty()
            {
                return Ok(Ok(empty_reservation(request_id, now, self.options.lease)));
            }
        }
        let mut tx = begin_immediate(&self.pool).await?;
        let key = lease_key(&QUOTAS, principal, request_id);
        let existing = find_lease(&mut tx, &key).await?;
        if let Some(lease) = existing.as_ref().filter(|l| l.status == RESERVED) {
            let reservation = existing_reservation(&mut tx, &QUOTAS, lease, request_id).await?;
            tx.rollback().await?;
            return Ok(Ok(reservation));
        }
        let now_ms = to_ms(now);
        let rules = rules::matching(&mut tx, QUOTA_RULES, principal, now).await?;
        let mut holds = Vec::with_capacity(rules.len());
        for rule in &rules {
            let Some(metric) = rule.metric else { continue };
            let amount = reserve_amount(metric, demand);
            let (window_id, used, reserved) =
                current_window(&mut tx, &QUOTAS, rule, now_ms).await?;
            if !admits(metric, used, reserved, amount, rule.limit) {
                tx.rollback().await?;
                return Ok(Err(QuotaError::Exceeded {
                    quota: rule.name.clone(),
                    retry_after: retry_after(&rule.window, now),
                }));
            }
            holds.push(Hold { window_id, amount });
        }
        if holds.is_empty() {
            tx.rollback().await?;
            return Ok(Ok(empty_reservation(request_id, now, self.options.lease)));
        }
        let expires_at = lease_end(now, self.options.lease);
        let id = record_holds(
            &mut tx,
            &QUOTAS,
            &key,
            existing.as_ref(),
            principal,
            demand.cost_nanos.max(0),
            &holds,
            now_ms,
            expires_at,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(Reservation {
            id: ReservationId::new(id),
            request_id: request_id.clone(),
            windows: holds.into_iter().map(|hold| hold.window_id).collect(),
            expires_at: from_ms(expires_at),
        }))
    }
}

#[async_trait]
impl QuotaLedger for SqlQuotaLedger {
    async fn reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        demand: QuotaDemand,
    ) -> Result<Reservation, QuotaError> {
        match self.try_reserve(principal, request_id, &demand).await {
            Ok(result) => result,
            Err(error) => Err(QuotaError::Unavailable(error.to_string())),
        }
    }

    async fn settle(
        &self,
        reservation: &Reservation,
        actual: QuotaActuals,
    ) -> Result<(), LedgerError> {
        let amount = |metric: Option<QuotaMetric>| metric.map_or(0, |m| settle_amount(m, &actual));
        close_now(
            &self.pool,
            &QUOTAS,
            self.clock.as_ref(),
            reservation,
            Close::Settle(&amount),
            Some(actual.cost_nanos.max(0)),
            None,
        )
        .await
    }

    async fn release(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        close_now(
            &self.pool,
            &QUOTAS,
            self.clock.as_ref(),
            reservation,
            Close::Release,
            None,
            None,
        )
        .await
    }

    async fn refresh(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        super::refresh(
            &self.pool,
            self.clock.as_ref(),
            self.options.lease,
            reservation,
        )
        .await
    }

    async fn sweep_expired(&self) -> Result<u64, LedgerError> {
        super::sweep_expired(&self.pool, &QUOTAS, self.clock.as_ref()).await
    }
}

/// Admin writes to quotas (and organisation changes) evict the governed-organisations cache.
impl odock_core::CacheInvalidator for SqlQuotaLedger {
    fn invalidate(&self, command: &odock_core::InvalidationCommand) {
        if matches!(
            command.kind,
            odock_core::CacheKind::Quota | odock_core::CacheKind::Organisation
        ) {
            self.governed.forget_all();
        }
    }
}
