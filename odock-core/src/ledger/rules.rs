//! Which budgets and quotas apply to a request, and where the ledger learns about them.
//!
//! ORG rules apply to all of the organisation's traffic; TEAM rules only to TEAM keys of that team;
//! USER rules only to USER keys of that user; APIKEY rules to that key. A rule counts only while
//! its schedule has a window (from `startAt`, before `endAt`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::{LedgerError, LedgerKind};
use crate::domain::{ApiKeyType, QuotaMetric};
use crate::ids::{ApiKeyId, OrganisationId, TeamId, UserId};
use crate::principal::Principal;
use crate::windows::Schedule;

/// A budget (money, nanos USD) or a quota (one metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// A spending limit in nanos USD.
    Budget,
    /// A limit on one usage metric (requests, tokens, errors, …).
    Quota(QuotaMetric),
}

impl RuleKind {
    /// Which ledger the rule's windows live in.
    pub fn ledger(self) -> LedgerKind {
        match self {
            RuleKind::Budget => LedgerKind::Budget,
            RuleKind::Quota(_) => LedgerKind::Quota,
        }
    }

    /// The metric a quota counts; `None` for a budget.
    pub fn metric(self) -> Option<QuotaMetric> {
        match self {
            RuleKind::Budget => None,
            RuleKind::Quota(metric) => Some(metric),
        }
    }

    /// ERRORS and LATENCY_MS are counted when the request ends: admit while `used < limit`.
    pub fn counted_after_the_fact(self) -> bool {
        matches!(
            self,
            RuleKind::Quota(QuotaMetric::Errors | QuotaMetric::LatencyMs)
        )
    }
}

/// Whose traffic a rule counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleOwner {
    /// All of the organisation's traffic.
    Organisation,
    /// TEAM keys of this team.
    Team(TeamId),
    /// USER keys of this user.
    User(UserId),
    /// This one key.
    ApiKey(ApiKeyId),
}

impl RuleOwner {
    /// Whether requests made with `principal`'s key count against a rule of this owner.
    pub fn applies_to(&self, principal: &Principal) -> bool {
        match self {
            RuleOwner::Organisation => true,
            RuleOwner::Team(team) => {
                principal.key_type == ApiKeyType::Team && principal.team_id.as_ref() == Some(team)
            }
            RuleOwner::User(user) => {
                principal.key_type == ApiKeyType::User && principal.user_id.as_ref() == Some(user)
            }
            RuleOwner::ApiKey(key) => &principal.api_key_id == key,
        }
    }
}

/// One active budget or quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRule {
    /// The budget's or quota's id, which its windows are stored under.
    pub id: Arc<str>,
    /// The organisation the rule belongs to.
    pub organisation_id: OrganisationId,
    /// The rule's name, as refusals and alerts quote it.
    pub name: String,
    /// Budget, or quota of which metric.
    pub kind: RuleKind,
    /// Whose traffic counts against it.
    pub owner: RuleOwner,
    /// Nanos USD for budgets; the metric's unit for quotas.
    pub limit: i64,
    /// When windows start and how long they last.
    pub schedule: Schedule,
    /// Warning thresholds in percent of `limit` (budgets).
    pub thresholds: Vec<u32>,
}

impl LedgerRule {
    /// An organisation-wide budget of `amount_nanos` per `period`, in calendar windows (UTC,
    /// anchored at the Unix epoch: days start at midnight, months on the 1st).
    pub fn budget(
        organisation: impl Into<OrganisationId>,
        id: &str,
        name: impl Into<String>,
        amount_nanos: i64,
        period: crate::domain::BudgetPeriod,
    ) -> Self {
        Self::calendar(
            organisation,
            id,
            name,
            RuleKind::Budget,
            amount_nanos,
            period,
        )
    }

    /// An organisation-wide quota of `limit` of `metric` per `period` (calendar windows, UTC).
    pub fn quota(
        organisation: impl Into<OrganisationId>,
        id: &str,
        name: impl Into<String>,
        metric: QuotaMetric,
        limit: i64,
        period: crate::domain::BudgetPeriod,
    ) -> Self {
        Self::calendar(
            organisation,
            id,
            name,
            RuleKind::Quota(metric),
            limit,
            period,
        )
    }

    /// The same rule, counting only `owner`'s traffic.
    pub fn owned_by(mut self, owner: RuleOwner) -> Self {
        self.owner = owner;
        self
    }

    fn calendar(
        organisation: impl Into<OrganisationId>,
        id: &str,
        name: impl Into<String>,
        kind: RuleKind,
        limit: i64,
        period: crate::domain::BudgetPeriod,
    ) -> Self {
        Self {
            id: Arc::from(id),
            organisation_id: organisation.into(),
            name: name.into(),
            kind,
            owner: RuleOwner::Organisation,
            limit,
            schedule: Schedule {
                start_at: DateTime::UNIX_EPOCH,
                timezone: chrono_tz::UTC,
                period,
                end_at: None,
            },
            thresholds: Vec::new(),
        }
    }
}

/// The durable `used` of one window, as last stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWindow {
    /// The rule the window belongs to.
    pub rule_id: Arc<str>,
    /// The window's start (inclusive).
    pub start: DateTime<Utc>,
    /// The window's end (exclusive).
    pub end: DateTime<Utc>,
    /// What the window has used, in the rule's unit.
    pub used: i64,
}

/// An organisation's active rules and the stored totals of their windows that have not ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// The organisation's active budgets and quotas.
    pub rules: Vec<LedgerRule>,
    /// Stored totals of their current windows, so a restart does not reset them.
    pub windows: Vec<StoredWindow>,
}

/// Where a ledger reads an organisation's rules (the database in the server; memory for
/// embedders). Read when the organisation is first governed, again after an invalidation, and in
/// the background now and then; never on a warm request path.
#[async_trait]
pub trait RuleSource: Send + Sync + 'static {
    /// The organisation's active rules and current window totals at `now`.
    async fn load(
        &self,
        organisation: &OrganisationId,
        now: DateTime<Utc>,
    ) -> Result<RuleSet, LedgerError>;
}

/// Rules kept in memory, set by the embedder. After changing an organisation's rules, tell the
/// ledger with [`InMemoryLedger::invalidate_organisation`](super::InMemoryLedger::invalidate_organisation).
#[derive(Debug, Default)]
pub struct StaticRuleSource {
    rules: RwLock<HashMap<OrganisationId, Vec<LedgerRule>>>,
}

impl StaticRuleSource {
    /// A source holding `rules`.
    pub fn new(rules: impl IntoIterator<Item = LedgerRule>) -> Self {
        let source = Self::default();
        for rule in rules {
            source.add(rule);
        }
        source
    }

    /// Adds `rule` to its organisation's rules (then tell the ledger, as after [`set`](Self::set)).
    pub fn add(&self, rule: LedgerRule) {
        self.rules
            .write()
            .entry(rule.organisation_id.clone())
            .or_default()
            .push(rule);
    }

    /// Replaces every rule of `organisation`.
    pub fn set(&self, organisation: &OrganisationId, rules: Vec<LedgerRule>) {
        self.rules.write().insert(organisation.clone(), rules);
    }
}

#[async_trait]
impl RuleSource for StaticRuleSource {
    async fn load(
        &self,
        organisation: &OrganisationId,
        _now: DateTime<Utc>,
    ) -> Result<RuleSet, LedgerError> {
        Ok(RuleSet {
            rules: self
                .rules
                .read()
                .get(organisation)
                .cloned()
                .unwrap_or_default(),
            windows: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(key_type: ApiKeyType) -> Principal {
        Principal {
            api_key_id: ApiKeyId::new("k1"),
            organisation_id: OrganisationId::new("o1"),
            key_type,
            team_id: Some(TeamId::new("t1")),
            user_id: Some(UserId::new("u1")),
            expires_at: None,
            revoked: false,
        }
    }

    #[test]
    fn owners_match_as_the_decisions_say() {
        let org = principal(ApiKeyType::Organisation);
        let team = principal(ApiKeyType::Team);
        let user = principal(ApiKeyType::User);
        let team_rule = RuleOwner::Team(TeamId::new("t1"));
        let user_rule = RuleOwner::User(UserId::new("u1"));
        assert!(RuleOwner::Organisation.applies_to(&org));
        assert!(RuleOwner::ApiKey(ApiKeyId::new("k1")).applies_to(&org));
        assert!(!RuleOwner::ApiKey(ApiKeyId::new("k2")).applies_to(&org));
        // A TEAM rule counts only TEAM keys of that team, a USER rule only USER keys of that user,
        // even when the principal carries the other id.
        assert!(team_rule.applies_to(&team));
        assert!(!team_rule.applies_to(&user));
        assert!(!team_rule.applies_to(&org));
        assert!(user_rule.applies_to(&user));
        assert!(!user_rule.applies_to(&team));
        assert!(!RuleOwner::Team(TeamId::new("t2")).applies_to(&team));
    }
}
