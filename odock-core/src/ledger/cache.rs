//! [`RuleCache`]: each organisation's budgets and quotas, read from a [`RuleSource`] once and kept.
//!
//! Read on the organisation's first governed request (the only time a request waits on the
//! source), again before the next admission after an invalidation (admin writes), and in the
//! background every `refresh_after` as a last resort. Loads run in a task of their own, so a
//! cancelled request never abandons one half-way, and one load serves every waiting request.

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use super::rules::{LedgerRule, RuleSource, StoredWindow};
use crate::cache::{CacheInvalidator, CacheKind, InvalidationCommand};
use crate::clock::Clock;
use crate::error::{BudgetError, GatewayError};
use crate::ids::OrganisationId;

/// How long loaded rules are used before a background reload (invalidations apply at once).
pub const DEFAULT_REFRESH_AFTER: Duration = Duration::from_secs(60);

/// One load of an organisation's rules.
#[derive(Debug, Default)]
pub struct OrgRules {
    /// Increases with every load, so users can tell a new load from one they have seen.
    pub generation: u64,
    /// The organisation's active rules.
    pub rules: Vec<Arc<LedgerRule>>,
    /// Stored totals of the windows that had not ended when the rules were loaded.
    pub windows: Vec<StoredWindow>,
}

/// Organisations' rules, cached.
pub struct RuleCache {
    source: Arc<dyn RuleSource>,
    clock: Arc<dyn Clock>,
    refresh_after: Duration,
    orgs: RwLock<HashMap<OrganisationId, Arc<CachedOrg>>>,
    generations: AtomicU64,
}

impl std::fmt::Debug for RuleCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleCache")
            .field("organisations", &self.orgs.read().len())
            .field("refresh_after", &self.refresh_after)
            .finish_non_exhaustive()
    }
}

struct CachedOrg {
    organisation: OrganisationId,
    loaded: RwLock<Arc<OrgRules>>,
    /// Bumped by every invalidation; the rules are current while `loaded_for == wanted`.
    wanted: AtomicU64,
    loaded_for: AtomicU64,
    /// When the rules were last loaded (ms since the epoch, cache clock).
    loaded_at: AtomicI64,
    /// One load at a time; later waiters find the rules current.
    loading: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
}

impl CachedOrg {
    fn is_current(&self) -> bool {
        self.loaded_for.load(Ordering::Acquire) == self.wanted.load(Ordering::Acquire)
    }
}

impl RuleCache {
    /// A cache loading from `source`, reloading in the background once a load is older than
    /// `refresh_after`.
    pub fn new(
        source: Arc<dyn RuleSource>,
        clock: Arc<dyn Clock>,
        refresh_after: Duration,
    ) -> Self {
        Self {
            source,
            clock,
            refresh_after,
            orgs: RwLock::new(HashMap::new()),
            generations: AtomicU64::new(0),
        }
    }

    /// The clock windows are computed on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The organisation's current rules: from memory when warm (no await), else loaded first.
    /// A load that fails is 503 `budget_unavailable`.
    pub async fn rules(
        self: &Arc<Self>,
        organisation: &OrganisationId,
    ) -> Result<Arc<OrgRules>, GatewayError> {
        let org = self.org(organisation);
        if !org.is_current() {
            self.load(&org).await?;
        } else {
            self.refresh_if_due(&org);
        }
        let rules = org.loaded.read().clone();
        Ok(rules)
    }

    /// The organisation's rules if they were ever loaded (no I/O).
    pub fn loaded(&self, organisation: &OrganisationId) -> Option<Arc<OrgRules>> {
        let org = self.orgs.read().get(organisation).cloned()?;
        let rules = org.loaded.read().clone();
        (rules.generation > 0).then_some(rules)
    }

    /// The next admission for `organisation` reloads its rules first.
    pub fn invalidate_organisation(&self, organisation: &OrganisationId) {
        if let Some(org) = self.orgs.read().get(organisation) {
            org.wanted.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Every organisation reloads its rules before its next admission.
    pub fn invalidate_all(&self) {
        for org in self.orgs.read().values() {
            org.wanted.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn org(&self, organisation: &OrganisationId) -> Arc<CachedOrg> {
        if let Some(org) = self.orgs.read().get(organisation) {
            return org.clone();
        }
        self.orgs
            .write()
            .entry(organisation.clone())
            .or_insert_with(|| {
                Arc::new(CachedOrg {
                    organisation: organisation.clone(),
                    loaded: RwLock::new(Arc::new(OrgRules::default())),
                    wanted: AtomicU64::new(1),
                    loaded_for: AtomicU64::new(0),
                    loaded_at: AtomicI64::new(0),
                    loading: tokio::sync::Mutex::new(()),
                    refreshing: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// Loads in a task of its own and waits for it.
    async fn load(self: &Arc<Self>, org: &Arc<CachedOrg>) -> Result<(), GatewayError> {
        let (cache, task_org) = (self.clone(), org.clone());
        let task = tokio::spawn(async move {
            let _one_at_a_time = task_org.loading.lock().await;
            if task_org.is_current() {
                return Ok(());
            }
            cache.reload(&task_org).await
        });
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(BudgetError::Unavailable(error).into()),
            Err(error) => Err(BudgetError::Unavailable(error.to_string()).into()),
        }
    }

    /// Reloads in the background once the rules have served `refresh_after`.
    fn refresh_if_due(self: &Arc<Self>, org: &Arc<CachedOrg>) {
        let now_ms = self.clock.now().timestamp_millis();
        let age = now_ms.saturating_sub(org.loaded_at.load(Ordering::Acquire));
        if age < i64::try_from(self.refresh_after.as_millis()).unwrap_or(i64::MAX)
            || org.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            org.refreshing.store(false, Ordering::Release);
            return;
        };
        let (cache, org) = (self.clone(), org.clone());
        runtime.spawn(async move {
            let _one_at_a_time = org.loading.lock().await;
            if let Err(error) = cache.reload(&org).await {
                tracing::warn!(organisation = %org.organisation, %error, "background reload of budgets and quotas failed; the loaded rules stay in force");
            }
            org.refreshing.store(false, Ordering::Release);
        });
    }

    async fn reload(&self, org: &CachedOrg) -> Result<(), String> {
        let wanted = org.wanted.load(Ordering::Acquire);
        let now = self.clock.now();
        let set = self
            .source
            .load(&org.organisation, now)
            .await
            .map_err(|error| error.to_string())?;
        let generation = self.generations.fetch_add(1, Ordering::AcqRel) + 1;
        *org.loaded.write() = Arc::new(OrgRules {
            generation,
            rules: set.rules.into_iter().map(Arc::new).collect(),
            windows: set.windows,
        });
        org.loaded_for.store(wanted, Ordering::Release);
        org.loaded_at
            .store(now.timestamp_millis(), Ordering::Release);
        Ok(())
    }
}

/// Admin writes to budgets, quotas or organisations (whose commands carry the organisation id)
/// reload that organisation's rules before its next admission.
impl CacheInvalidator for RuleCache {
    fn invalidate(&self, command: &InvalidationCommand) {
        if matches!(
            command.kind,
            CacheKind::Budget | CacheKind::Quota | CacheKind::Organisation
        ) {
            self.invalidate_organisation(&OrganisationId::new(command.id.as_str()));
        }
    }
}
