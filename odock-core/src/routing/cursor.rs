//! [`RoundRobinCursors`]: where a `round_robin` policy's next start comes from — one counter per
//! key and model type. In memory for one process; `odock_redis::RedisRoundRobinCursors` shares
//! them between replicas, so a key's requests spread over the candidates whichever replica
//! serves them.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::domain::ModelType;
use crate::ids::ApiKeyId;

/// The `round_robin` strategy's counters, per key and model type (in memory, or shared by
/// replicas).
#[async_trait]
pub trait RoundRobinCursors: Send + Sync + 'static {
    /// The counter for `key` and `model_type`, then one further (the first call answers 0).
    async fn next(&self, key: &ApiKeyId, model_type: ModelType) -> u64;
}

/// Counters of this process.
#[derive(Debug, Default)]
pub struct InMemoryRoundRobinCursors {
    cursors: Mutex<HashMap<(ApiKeyId, ModelType), u64>>,
}

impl InMemoryRoundRobinCursors {
    /// The synchronous form of [`RoundRobinCursors::next`].
    pub fn next_now(&self, key: &ApiKeyId, model_type: ModelType) -> u64 {
        let mut cursors = self.cursors.lock();
        let cursor = cursors.entry((key.clone(), model_type)).or_insert(0);
        let current = *cursor;
        *cursor = cursor.wrapping_add(1);
        current
    }
}

#[async_trait]
impl RoundRobinCursors for InMemoryRoundRobinCursors {
    async fn next(&self, key: &ApiKeyId, model_type: ModelType) -> u64 {
        self.next_now(key, model_type)
    }
}
