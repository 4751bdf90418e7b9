//! Provider-key pools: a model without a fixed provider key uses every active key of its provider
//! in turn. A key the upstream answered 401/403 is taken out of rotation (until its provider key
//! is changed in the admin API, or `EVICTED_FOR` passed); a key answered 429 cools down for the
//! upstream's `Retry-After` (`DEFAULT_COOL_DOWN` without one). When every key is out, the pool's
//! first key is used (an answer beats a refusal). Per replica, like the circuit breakers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::cache::{CacheInvalidator, CacheKind, InvalidationCommand};
use crate::clock::{Clock, SystemClock};
use crate::ids::{ProviderId, ProviderKeyId};
use crate::model::ResolvedModel;

/// How long a key answered 401/403 stays out of rotation unless it is changed sooner.
pub const EVICTED_FOR: Duration = Duration::from_secs(300);
/// How long a key answered 429 without `Retry-After` cools down.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(30);

/// Why a key is out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Answered 401/403.
    Evicted,
    /// Answered 429.
    CoolingDown,
}

/// A key out of rotation, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyOut {
    /// Why it is out.
    pub state: KeyState,
    /// When it rejoins the rotation.
    pub until: DateTime<Utc>,
    /// The upstream status that took it out (401, 403 or 429).
    pub status: u16,
}

/// The pools' rotation cursors and the keys out of rotation, for one replica.
pub struct KeyPools {
    clock: Arc<dyn Clock>,
    cursors: RwLock<HashMap<ProviderId, Arc<AtomicUsize>>>,
    out: Mutex<HashMap<ProviderKeyId, KeyOut>>,
}

impl std::fmt::Debug for KeyPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPools")
    }
}

impl Default for KeyPools {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl KeyPools {
    /// Empty pools, timing cool-downs and evictions on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            cursors: RwLock::new(HashMap::new()),
            out: Mutex::new(HashMap::new()),
        }
    }

    fn cursor(&self, provider: &ProviderId) -> Arc<AtomicUsize> {
        if let Some(cursor) = self.cursors.read().get(provider) {
            return cursor.clone();
        }
        self.cursors
            .write()
            .entry(provider.clone())
            .or_default()
            .clone()
    }

    /// `model` with the pool's next usable key (the model itself when it has no pool).
    pub fn pick(&self, model: &Arc<ResolvedModel>) -> Arc<ResolvedModel> {
        let pool = &model.key_pool;
        if pool.len() < 2 {
            return model.clone();
        }
        let start = self
            .cursor(&model.provider.id)
            .fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let chosen = {
            let mut out = self.out.lock();
            out.retain(|_, key| key.until > now);
            (0..pool.len())
                .map(|i| &pool[(start + i) % pool.len()])
                .find(|key| !out.contains_key(&key.id))
                .unwrap_or(&pool[0])
                .clone()
        };
        if model
            .provider_key
            .as_ref()
            .is_some_and(|k| k.id == chosen.id)
        {
            return model.clone();
        }
        let mut picked = ResolvedModel::clone(model);
        picked.provider_key = Some(chosen);
        Arc::new(picked)
    }

    /// Takes `model`'s key out of rotation after the upstream answered `status` (401/403: evicted;
    /// 429: cooled down for `retry_after`). Other statuses change nothing. Only pooled keys.
    pub fn report(&self, model: &ResolvedModel, status: u16, retry_after: Option<Duration>) {
        if model.key_pool.len() < 2 {
            return;
        }
        let Some(key) = &model.provider_key else {
            return;
        };
        let (state, wait) = match status {
            401 | 403 => (KeyState::Evicted, EVICTED_FOR),
            429 => (
                KeyState::CoolingDown,
                retry_after.unwrap_or(DEFAULT_COOL_DOWN),
            ),
            _ => return,
        };
        let until = self.clock.now()
            + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(30));
        tracing::warn!(provider_key_id = %key.id, status, ?wait, "provider key taken out of rotation");
        self.out.lock().insert(
            key.id.clone(),
            KeyOut {
                state,
                until,
                status,
            },
        );
    }
}

/// The seconds of a `Retry-After` header, if it has them.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

impl KeyPools {
    /// The keys out of rotation now.
    pub fn snapshot(&self) -> HashMap<ProviderKeyId, KeyOut> {
        let now = self.clock.now();
        let mut out = self.out.lock();
        out.retain(|_, key| key.until > now);
        out.clone()
    }
}

impl CacheInvalidator for KeyPools {
    /// A changed provider key (a new secret, unrevoked) is given another chance at once.
    fn invalidate(&self, command: &InvalidationCommand) {
        if command.kind == CacheKind::ProviderKey {
            self.out
                .lock()
                .remove(&ProviderKeyId::new(command.id.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::{ResolvedProvider, ResolvedProviderKey};
    use crate::secret::Secret;
    use crate::ProviderType;

    fn pooled() -> Arc<ResolvedModel> {
        let key = |id: &str| ResolvedProviderKey {
            id: id.into(),
            secret: Secret::new(format!("sk-{id}")),
            revoked: false,
        };
        let mut model = ResolvedModel::chat(
            "o",
            "m",
            "m",
            "m",
            ResolvedProvider::new("p", ProviderType::OpenAi, "http://x"),
        )
        .with_key("a", "sk-a");
        model.key_pool = vec![key("a"), key("b"), key("c")].into();
        Arc::new(model)
    }

    fn key_of(model: &ResolvedModel) -> String {
        model.provider_key.as_ref().unwrap().id.to_string()
    }

    #[test]
    fn keys_rotate_and_failing_ones_sit_out() {
        let clock = ManualClock::new(Utc::now());
        let pools = KeyPools::new(Arc::new(clock.clone()));
        let model = pooled();
        let picks: Vec<String> = (0..4).map(|_| key_of(&pools.pick(&model))).collect();
        assert_eq!(picks, ["a", "b", "c", "a"]);
        let b = pools.pick(&model);
        assert_eq!(key_of(&b), "b");
        pools.report(&b, 401, None);
        let c = pools.pick(&model);
        pools.report(&c, 429, Some(Duration::from_secs(10)));
        let picks: Vec<String> = (0..3).map(|_| key_of(&pools.pick(&model))).collect();
        assert_eq!(picks, ["a", "a", "a"]);
        assert_eq!(pools.snapshot().len(), 2);
        clock.advance(chrono::Duration::seconds(11));
        let picks: Vec<String> = (0..3).map(|_| key_of(&pools.pick(&model))).collect();
        assert!(picks.contains(&"c".to_owned()) && !picks.contains(&"b".to_owned()));
        pools.invalidate(&InvalidationCommand::new(CacheKind::ProviderKey, "b"));
        let picks: Vec<String> = (0..3).map(|_| key_of(&pools.pick(&model))).collect();
        assert!(picks.contains(&"b".to_owned()));
    }
}
