//! [`RedisLedgerFlusher`]: writes the shared windows' totals to the database in batches.

use std::time::Duration;

use odock_core::{LedgerKind, QuotaMetric};
use odock_store::db::{now_ms, Db};

use crate::admission::DIRTY;
use crate::connection::{RedisConnection, RedisStoreError};

/// A window as Redis has it: `(kind, rule, start ms, end ms, metric, used)`, all absent when it
/// expired meanwhile.
type WindowRow = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// Writes every window changed since the last flush (by any replica) to `budget_windows` /
/// `quota_windows`: `used` only ever grows there, so a replica flushing an older value cannot undo
/// a newer one. Holds are not written: the admin API reads live totals from Redis.
#[derive(Clone)]
pub struct RedisLedgerFlusher {
    conn: RedisConnection,
    pool: Db,
}

impl std::fmt::Debug for RedisLedgerFlusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedgerFlusher")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl RedisLedgerFlusher {
    const BATCH: usize = 256;

    /// A flusher writing the windows on `conn` to the database `pool`.
    pub fn new(conn: RedisConnection, pool: Db) -> Self {
        Self { conn, pool }
    }

    /// Writes every window changed since the last flush; returns how many.
    pub async fn flush(&self) -> Result<u64, RedisStoreError> {
        let dirty = self.conn.key(DIRTY);
        let mut written = 0;
        loop {
            let mut conn = self.conn.manager();
            let keys: Vec<String> = self
                .conn
                .bounded(
                    redis::cmd("SPOP")
                        .arg(&dirty)
                        .arg(Self::BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            if keys.is_empty() {
                return Ok(written);
            }
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HMGET")
                    .arg(key)
                    .arg("kind")
                    .arg("rule")
                    .arg("start")
                    .arg("end")
                    .arg("metric")
                    .arg("used");
            }
            let rows: Vec<WindowRow> = self.conn.bounded(pipe.query_async(&mut conn)).await?;
            if let Err(error) = self.write(&rows).await {
                // Put them back for the next flush; the Redis counters stay authoritative.
                let _: Result<i64, _> = self
                    .conn
                    .bounded(
                        redis::cmd("SADD")
                            .arg(&dirty)
                            .arg(&keys)
                            .query_async(&mut conn),
                    )
                    .await;
                return Err(error.into());
            }
            written += keys.len() as u64;
        }
    }

    async fn write(&self, rows: &[WindowRow]) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for row in rows {
            let (Some(kind), Some(rule), Some(start), Some(end), metric, Some(used)) = row else {
                continue; // expired meanwhile
            };
            let kind = match kind.as_str() {
                "budget" => LedgerKind::Budget,
                "quota" => LedgerKind::Quota,
                _ => continue,
            };
            let metric = metric
                .as_deref()
                .and_then(|m| m.parse::<QuotaMetric>().ok());
            odock_store::ledger::ensure_window(&mut tx, kind, rule, metric, *start, *end, now)
                .await?;
            let sql = match kind {
                LedgerKind::Budget => {
                    "UPDATE budget_windows SET used_nanos = CASE WHEN used_nanos < $1 THEN $1 ELSE used_nanos END, \
                     updated_at = $2 WHERE budget_id = $3 AND start_at = $4"
                }
                LedgerKind::Quota => {
                    "UPDATE quota_windows SET used = CASE WHEN used < $1 THEN $1 ELSE used END, \
                     updated_at = $2 WHERE quota_id = $3 AND start_at = $4"
                }
            };
            sqlx::query(sql)
                .bind(*used)
                .bind(now)
                .bind(rule.as_str())
                .bind(*start)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Flushes every `every` until the handle is aborted (errors are logged and retried).
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = self.flush().await {
                    tracing::warn!(%error, "ledger totals not flushed to the database; retrying");
                }
            }
        })
    }
}
