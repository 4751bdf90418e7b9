//! [`SqlBudgetLedger`]: money budgets (nanos USD) per ORG / TEAM / USER / APIKEY owner.

use std::sync::Arc;

use crate::db::Db;
use async_trait::async_trait;
use odock_core::{
    BudgetAlerts, BudgetError, BudgetLedger, Clock, LedgerError, LogBudgetAlerts, Principal,
    RequestId, Reservation, ReservationId,
};

use super::rules::{self, BUDGET_RULES};
use super::GOVERNED_TTL;
use super::{
    begin_immediate, close_now, current_window, empty_reservation, existing_reservation,
    find_lease, lease_end, lease_key, record_holds, Close, Hold, LedgerOptions, BUDGETS, RESERVED,
};
use crate::db::{from_ms, to_ms};

/// The SQLite [`BudgetLedger`]. Cheap to share behind an `Arc`.
pub struct SqlBudgetLedger {
    pool: Db,
    clock: Arc<dyn Clock>,
    options: LedgerOptions,
    governed: rules::Governed,
    alerts: Arc<dyn BudgetAlerts>,
}

impl std::fmt::Debug for SqlBudgetLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlBudgetLedger")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqlBudgetLedger {
    pub fn new(pool: Db, clock: Arc<dyn Clock>, options: LedgerOptions) -> Self {
        Self {
            pool,
            clock,
            options,
            governed: rules::Governed::new("budgets", GOVERNED_TTL),
            alerts: Arc::new(LogBudgetAlerts),
        }
    }

    /// Reports threshold crossings to `alerts` (default: a warning in the logs).
    pub fn with_alerts(mut self, alerts: Arc<dyn BudgetAlerts>) -> Self {
        self.alerts = alerts;
        self
    }

    async fn try_reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        estimate: i64,
    ) -> Result<Result<Reservation, String>, sqlx::Error> {
        let now = self.clock.now();
        // Ungoverned traffic never takes the write lock.
        {
            if !self
                .governed
                .has_rules(&self.pool, principal.organisation_id.as_str())
                .await?
            {
                return Ok(Ok(empty_reservation(request_id, now, self.options.lease)));
            }
            let mut conn = self.pool.acquire().await?;
            if rules::matching(&mut conn, BUDGET_RULES, principal, now)
                .await?
                .is_empty()
            {
                return Ok(Ok(empty_reservation(request_id, now, self.options.lease)));
            }
        }
        let mut tx = begin_immediate(&self.pool).await?;
        let key = lease_key(&BUDGETS, principal, request_id);
        let existing = find_lease(&mut tx, &key).await?;
        if let Some(lease) = existing.as_ref().filter(|l| l.status == RESERVED) {
            let reservation = existing_reservation(&mut tx, &BUDGETS, lease, request_id).await?;
            tx.rollback().await?;
            return Ok(Ok(reservation));
        }
        let now_ms = to_ms(now);
        let rules = rules::matching(&mut tx, BUDGET_RULES, principal, now).await?;
        let mut holds = Vec::with_capacity(rules.len());
        for rule in &rules {
            let (window_id, used, reserved) =
                current_window(&mut tx, &BUDGETS, rule, now_ms).await?;
            if used.saturating_add(reserved).saturating_add(estimate) > rule.limit {
                // Nothing is held anywhere: the window rows created so far are rolled back too.
                tx.rollback().await?;
                return Ok(Err(rule.name.clone()));
            }
            holds.push(Hold {
                window_id,
                amount: estimate,
            });
        }
        if holds.is_empty() {
            tx.rollback().await?;
            return Ok(Ok(empty_reservation(request_id, now, self.options.lease)));
        }
        let expires_at = lease_end(now, self.options.lease);
        let id = record_holds(
            &mut tx,
            &BUDGETS,
            &key,
            existing.as_ref(),
            principal,
            estimate,
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
impl BudgetLedger for SqlBudgetLedger {
    async fn reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        estimate_nanos: i64,
    ) -> Result<Reservation, BudgetError> {
        match self
            .try_reserve(principal, request_id, estimate_nanos.max(0))
            .await
        {
            Ok(Ok(reservation)) => Ok(reservation),
            Ok(Err(budget)) => Err(BudgetError::Exceeded { budget }),
            Err(error) => Err(BudgetError::Unavailable(error.to_string())),
        }
    }

    async fn settle(
        &self,
        reservation: &Reservation,
        actual_nanos: i64,
    ) -> Result<(), LedgerError> {
        let actual = actual_nanos.max(0);
        let mut crossings = Vec::new();
        // The overshoot (actual above estimate) stays visible: `used` takes the full actual and
        // the request row keeps both `estimate_nanos` and `actual_nanos`.
        close_now(
            &self.pool,
            &BUDGETS,
            self.clock.as_ref(),
            reservation,
            Close::Settle(&|_| actual),
            Some(actual),
            Some(&mut crossings),
        )
        .await?;
        for crossing in &crossings {
            self.alerts.threshold_crossed(crossing);
        }
        Ok(())
    }

    async fn release(&self, reservation: &Reservation) -> Result<(), LedgerError> {
        close_now(
            &self.pool,
            &BUDGETS,
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
        super::sweep_expired(&self.pool, &BUDGETS, self.clock.as_ref()).await
    }
}

/// Admin writes to budgets (and organisation changes) evict the governed-organisations cache.
impl odock_core::CacheInvalidator for SqlBudgetLedger {
    fn invalidate(&self, command: &odock_core::InvalidationCommand) {
        if matches!(
            command.kind,
            odock_core::CacheKind::Budget | odock_core::CacheKind::Organisation
        ) {
            self.governed.forget_all();
        }
    }
}
