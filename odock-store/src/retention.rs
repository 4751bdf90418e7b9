//! Usage-record retention: records older than the configured number of days are deleted in small
//! batches by a background task, so a large purge never holds a long lock or slows the writers.
//! The daily rollups are kept — totals survive the raw records — and the hourly rollups of the
//! purged period go with them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::{to_ms, Db};

/// Rows deleted per statement.
const BATCH: i64 = 5_000;

/// Deletes usage records (and MCP usage records) created before `cutoff`; returns how many
/// usage records went.
pub async fn purge_before(pool: &Db, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let cutoff = to_ms(cutoff);
    let mut deleted = 0;
    for table in ["mcp_usage_records", "usage_records"] {
        // `id IN (… LIMIT n)`: both backends accept it, and each statement stays short.
        let sql = format!(
            "DELETE FROM {table} WHERE id IN \
             (SELECT id FROM {table} WHERE created_at < $1 LIMIT $2)"
        );
        loop {
            let done = sqlx::query(&sql)
                .bind(cutoff)
                .bind(BATCH)
                .execute(pool)
                .await?
                .rows_affected();
            if table == "usage_records" {
                deleted += done;
            }
            if done < BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    crate::usage_rollups::purge_hours_before(pool, cutoff).await?;
    Ok(deleted)
}

/// Purges records older than `keep` now and then every `every`, until the task is aborted.
pub fn spawn_retention(pool: Db, keep: Duration, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Ok(keep) = chrono::Duration::from_std(keep) else {
                return;
            };
            match purge_before(&pool, Utc::now() - keep).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "usage retention purged old records"),
                Err(error) => tracing::warn!(%error, "usage retention failed; will retry"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use odock_core::UsageRecord;

    use super::*;
    use crate::usage_records::tests::record;

    async fn count(pool: &Db, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn old_records_go_in_batches_and_the_daily_totals_stay() {
        let pool = crate::testing::database().await;
        let day = |d: u32| Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap();
        let records: Vec<UsageRecord> = (0..(BATCH as usize + 7))
            .map(|i| record(&format!("old{i:05}"), to_ms(day(1))))
            .chain((0..3).map(|i| record(&format!("new{i}"), to_ms(day(20)))))
            .collect();
        let mut conn = pool.acquire().await.unwrap();
        crate::usage_records::insert_batch(&mut conn, &records, &[])
            .await
            .unwrap();
        drop(conn);
        let daily = "usage_rollups WHERE grain = 'd'";
        let hourly = "usage_rollups WHERE grain = 'h'";
        assert_eq!(
            (count(&pool, daily).await, count(&pool, hourly).await),
            (2, 2)
        );

        let deleted = purge_before(&pool, day(10)).await.unwrap();
        assert_eq!(deleted, BATCH as u64 + 7);
        assert_eq!(count(&pool, "usage_records").await, 3);
        assert_eq!(
            (count(&pool, daily).await, count(&pool, hourly).await),
            (2, 1)
        );
        // Nothing more to do the second time.
        assert_eq!(purge_before(&pool, day(10)).await.unwrap(), 0);
    }
}
