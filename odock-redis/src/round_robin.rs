//! [`RedisRoundRobinCursors`]: the `round_robin` routing counters shared by every replica, one
//! `INCR` of `{prefix}routing:rr:{key}:{type}` per round-robin request. While Redis is
//! unreachable the replica counts locally (the spread is then per replica until it is back).

use async_trait::async_trait;
use odock_core::routing::{InMemoryRoundRobinCursors, RoundRobinCursors};
use odock_core::{ApiKeyId, ModelType};

use crate::connection::RedisConnection;

/// [`RoundRobinCursors`] on Redis: one shared counter per key and model type, counting locally
/// while Redis is unreachable.
#[derive(Debug)]
pub struct RedisRoundRobinCursors {
    conn: RedisConnection,
    local: InMemoryRoundRobinCursors,
}

impl RedisRoundRobinCursors {
    /// Cursors on `conn`, with an empty local fallback.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            local: InMemoryRoundRobinCursors::default(),
        }
    }
}

#[async_trait]
impl RoundRobinCursors for RedisRoundRobinCursors {
    async fn next(&self, key: &ApiKeyId, model_type: ModelType) -> u64 {
        let name = self.conn.key(&format!("routing:rr:{key}:{model_type}"));
        let mut conn = self.conn.manager();
        let mut incr = redis::cmd("INCR");
        incr.arg(&name);
        match self.conn.bounded(incr.query_async::<i64>(&mut conn)).await {
            Ok(value) => value.saturating_sub(1).max(0) as u64,
            Err(error) => {
                tracing::warn!(%error, "round-robin counter unavailable; counting locally");
                self.local.next_now(key, model_type)
            }
        }
    }
}
