//! [`InMemoryLedger`]: budgets and quotas decided in memory, authoritative for one process.
//!
//! **Admission** takes one organisation's lock for a few hundred nanoseconds: every window of every
//! matching rule is checked, then the estimate is held in all of them ([`LedgerHold`]). Nothing
//! awaits between checking and holding, so no client cancellation can leave half a hold behind;
//! the hold itself is a value whose `Drop` releases it, so a request that never settles (its future
//! or body dropped anywhere) gives its reservation back.
//!
//! **Rules** come from a [`RuleSource`] through a [`RuleCache`]: loaded once per organisation,
//! reloaded before the next admission after an invalidation (admin writes).
//!
//! **Durability is write-behind:** settling returns [`WindowCharge`]s, which the usage writer
//! stores with the usage record in one transaction. The database's window totals therefore equal
//! what its stored records account for; at start, or when an organisation is first governed,
//! windows are seeded from them. In-flight holds are not persisted: they die with their requests,
//! so a crash loses nothing that was admitted and finished, and no lease sweeper is needed.
//!
//! One process is authoritative: two processes with an `InMemoryLedger` over one database each
//! admit against their own counters. Several replicas share budgets through Redis instead.

use foldhash::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};

use super::cache::{OrgRules, RuleCache, DEFAULT_REFRESH_AFTER};
use super::rules::{LedgerRule, RuleKind, RuleSource};
use super::thresholds::{
    crossed_thresholds, thresholds_of, BudgetAlerts, LogBudgetAlerts, ThresholdCrossing,
};
use super::{admits, hold_amount, used_amount, Actuals, Estimate, WindowCharge};
use crate::cache::{CacheInvalidator, InvalidationCommand};
use crate::clock::{Clock, SystemClock};
use crate::error::{BudgetError, GatewayError, QuotaError};
use crate::ids::OrganisationId;
use crate::principal::Principal;
use crate::windows::Window;

/// Windows that ended longer ago than this are forgotten (their totals are in the database).
const KEEP_ENDED_WINDOWS_MS: i64 = 24 * 3_600 * 1_000;

/// A window's live totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowTotals {
    /// What settled requests have used.
    pub used: i64,
    /// What admitted, unsettled requests hold.
    pub reserved: i64,
}

/// Budgets and quotas in memory. Cheap to clone (shared state).
#[derive(Clone)]
pub struct InMemoryLedger {
    rules: Arc<RuleCache>,
    alerts: Arc<dyn BudgetAlerts>,
    books: Arc<RwLock<HashMap<OrganisationId, Arc<Mutex<OrgBook>>>>>,
}

impl std::fmt::Debug for InMemoryLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryLedger")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// One organisation's window counters.
#[derive(Default)]
struct OrgBook {
    /// The rule load the counters were last seeded from.
    seen_generation: u64,
    /// The window each rule was in last time (recomputed when time leaves it).
    current: HashMap<Arc<str>, Window>,
    windows: HashMap<WindowId, Counters>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WindowId {
    rule: Arc<str>,
    start_ms: i64,
}

struct Counters {
    used: i64,
    reserved: i64,
    end: DateTime<Utc>,
}

impl InMemoryLedger {
    /// A ledger reading rules from `source`, on the system clock.
    pub fn new(source: Arc<dyn RuleSource>) -> Self {
        Self::with_settings(source, Arc::new(SystemClock), DEFAULT_REFRESH_AFTER)
    }

    /// A ledger whose windows follow `clock` (tests pass a manual one) and whose rules are
    /// reloaded in the background after `refresh_after`.
    pub fn with_settings(
        source: Arc<dyn RuleSource>,
        clock: Arc<dyn Clock>,
        refresh_after: Duration,
    ) -> Self {
        Self {
            rules: Arc::new(RuleCache::new(source, clock, refresh_after)),
            alerts: Arc::new(LogBudgetAlerts),
            books: Arc::default(),
        }
    }

    /// Reports threshold crossings to `alerts` (default: a warning in the logs).
    pub fn with_alerts(mut self, alerts: Arc<dyn BudgetAlerts>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Holds `estimate` in every window of every rule matching `principal`, or refuses holding
    /// nothing: 402 `budget_exceeded`, 429 `quota_exceeded` (retry when the window ends), or 503
    /// when the organisation's rules could not be loaded.
    pub async fn reserve(
        &self,
        principal: &Principal,
        estimate: &Estimate,
    ) -> Result<LedgerHold, GatewayError> {
        let rules = self.rules.rules(&principal.organisation_id).await?;
        // Nothing is awaited from here on: the hold is complete or nothing is held.
        if rules.rules.is_empty() {
            return Ok(LedgerHold::empty(self.alerts.clone()));
        }
        let book = self.book(&principal.organisation_id);
        let now = self.rules.clock().now();
        let held = admit(&mut book.lock(), &rules, principal, estimate, now)?;
        Ok(LedgerHold {
            book: (!held.is_empty()).then_some(book),
            held,
            alerts: self.alerts.clone(),
        })
    }

    /// The live totals of a rule's window, when this ledger has counted it (otherwise the stored
    /// totals are authoritative).
    pub fn window_totals(
        &self,
        organisation: &OrganisationId,
        rule_id: &str,
        start: DateTime<Utc>,
    ) -> Option<WindowTotals> {
        let book = self.books.read().get(organisation).cloned()?;
        let book = book.lock();
        let id = WindowId {
            rule: Arc::from(rule_id),
            start_ms: start.timestamp_millis(),
        };
        book.windows.get(&id).map(|c| WindowTotals {
            used: c.used,
            reserved: c.reserved,
        })
    }

    /// The next admission for `organisation` reloads its rules first.
    pub fn invalidate_organisation(&self, organisation: &OrganisationId) {
        self.rules.invalidate_organisation(organisation);
    }

    fn book(&self, organisation: &OrganisationId) -> Arc<Mutex<OrgBook>> {
        if let Some(book) = self.books.read().get(organisation) {
            return book.clone();
        }
        self.books
            .write()
            .entry(organisation.clone())
            .or_default()
            .clone()
    }
}

/// Seeds windows from a new rule load: counters already in memory are ahead of the stored ones
/// (settlements still on their way to the database), so only unknown windows take stored totals.
fn seed(book: &mut OrgBook, rules: &OrgRules, now: DateTime<Utc>) {
    for stored in &rules.windows {
        book.windows
            .entry(WindowId {
                rule: stored.rule_id.clone(),
                start_ms: stored.start.timestamp_millis(),
            })
            .or_insert(Counters {
                used: stored.used,
                reserved: 0,
                end: stored.end,
            });
    }
    let forget_before = now.timestamp_millis().saturating_sub(KEEP_ENDED_WINDOWS_MS);
    book.windows
        .retain(|_, c| c.reserved > 0 || c.end.timestamp_millis() >= forget_before);
    book.current.clear();
    book.seen_generation = rules.generation;
}

/// Checks every matching window, then holds in all of them; nothing is held on a refusal.
fn admit(
    book: &mut OrgBook,
    rules: &OrgRules,
    principal: &Principal,
    estimate: &Estimate,
    now: DateTime<Utc>,
) -> Result<Vec<Held>, GatewayError> {
    if book.seen_generation != rules.generation {
        seed(book, rules, now);
    }
    let mut held = Vec::new();
    for rule in &rules.rules {
        if !rule.owner.applies_to(principal) {
            continue;
        }
        let window = match book.current.get(&rule.id) {
            Some(window) if window.start <= now && now < window.end => *window,
            _ => match rule.schedule.window_at(now) {
                Some(window) => {
                    book.current.insert(rule.id.clone(), window);
                    window
                }
                None => continue,
            },
        };
        let amount = hold_amount(rule.kind, estimate);
        let id = WindowId {
            rule: rule.id.clone(),
            start_ms: window.start.timestamp_millis(),
        };
        let counters = book.windows.entry(id.clone()).or_insert(Counters {
            used: 0,
            reserved: 0,
            end: window.end,
        });
        if !admits(
            rule.kind,
            counters.used,
            counters.reserved,
            amount,
            rule.limit,
        ) {
            return Err(refusal(rule, &window, now));
        }
        held.push(Held {
            window: id,
            start: window.start,
            end: window.end,
            rule: rule.clone(),
            amount,
        });
    }
    for hold in &held {
        if let Some(counters) = book.windows.get_mut(&hold.window) {
            counters.reserved = counters.reserved.saturating_add(hold.amount);
        }
    }
    Ok(held)
}

/// How a rule refuses a request in `window`: 402 for a budget, 429 with `Retry-After` (the
/// window's end) for a quota.
pub fn refusal(rule: &LedgerRule, window: &Window, now: DateTime<Utc>) -> GatewayError {
    match rule.kind {
        RuleKind::Budget => BudgetError::Exceeded {
            budget: rule.name.clone(),
        }
        .into(),
        RuleKind::Quota(_) => QuotaError::Exceeded {
            quota: rule.name.clone(),
            retry_after: (window.end - now).to_std().unwrap_or_default(),
        }
        .into(),
    }
}

/// One window a request holds.
struct Held {
    window: WindowId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    rule: Arc<LedgerRule>,
    amount: i64,
}

/// A request's hold in every window of its matching rules. [`settle`](Self::settle) it when the
/// request ends; dropping it unsettled releases it.
pub struct LedgerHold {
    /// `None` when no rule matched (nothing to settle or release).
    book: Option<Arc<Mutex<OrgBook>>>,
    held: Vec<Held>,
    alerts: Arc<dyn BudgetAlerts>,
}

impl std::fmt::Debug for LedgerHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerHold")
            .field("windows", &self.held.len())
            .finish()
    }
}

impl LedgerHold {
    fn empty(alerts: Arc<dyn BudgetAlerts>) -> Self {
        Self {
            book: None,
            held: Vec::new(),
            alerts,
        }
    }

    /// Whether no window is held (no rule matched).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Moves what the request used into each window and releases the hold. Returns the charges to
    /// store with the request's usage record.
    pub fn settle(mut self, actual: &Actuals) -> Vec<WindowCharge> {
        let Some(book) = self.book.take() else {
            return Vec::new();
        };
        let held = std::mem::take(&mut self.held);
        let mut charges = Vec::with_capacity(held.len());
        let mut crossings = Vec::new();
        {
            let mut book = book.lock();
            for hold in held {
                let used = used_amount(hold.rule.kind, actual);
                let counters = book.windows.get_mut(&hold.window);
                if let Some(counters) = counters {
                    counters.reserved = counters.reserved.saturating_sub(hold.amount).max(0);
                    if used > 0 {
                        let before = counters.used;
                        counters.used = counters.used.saturating_add(used);
                        crossings.extend(crossings_of(&hold, before, counters.used));
                    }
                }
                if used > 0 {
                    charges.push(WindowCharge {
                        kind: hold.rule.kind.ledger(),
                        rule_id: hold.rule.id.clone(),
                        metric: hold.rule.kind.metric(),
                        start: hold.start,
                        end: hold.end,
                        used,
                    });
                }
            }
        }
        for crossing in &crossings {
            self.alerts.threshold_crossed(crossing);
        }
        charges
    }
}

impl Drop for LedgerHold {
    fn drop(&mut self) {
        let Some(book) = self.book.take() else {
            return;
        };
        let mut book = book.lock();
        for hold in &self.held {
            if let Some(counters) = book.windows.get_mut(&hold.window) {
                counters.reserved = counters.reserved.saturating_sub(hold.amount).max(0);
            }
        }
    }
}

fn crossings_of(hold: &Held, before: i64, after: i64) -> Vec<ThresholdCrossing> {
    let rule = &hold.rule;
    crossed_thresholds(before, after, rule.limit, thresholds_of(rule))
        .into_iter()
        .map(|threshold| ThresholdCrossing {
            organisation_id: rule.organisation_id.as_str().to_owned(),
            budget_id: rule.id.to_string(),
            budget_name: rule.name.clone(),
            quota_metric: rule.kind.metric(),
            threshold,
            used_nanos: after,
            amount_nanos: rule.limit,
            window_start: hold.start,
        })
        .collect()
}

#[async_trait::async_trait]
impl super::LiveWindows for InMemoryLedger {
    async fn live_totals(
        &self,
        organisation: &OrganisationId,
        _kind: super::LedgerKind,
        rule_id: &str,
        start: DateTime<Utc>,
    ) -> Option<WindowTotals> {
        self.window_totals(organisation, rule_id, start)
    }
}

/// Admin writes to budgets, quotas or organisations reload the organisation's rules.
impl CacheInvalidator for InMemoryLedger {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.rules.invalidate(command);
    }
}

#[cfg(test)]
mod tests;
