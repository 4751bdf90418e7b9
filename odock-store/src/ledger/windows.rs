//! Window rows: settled amounts added to them, and rows created lazily.

use std::collections::HashMap;
use std::sync::Arc;

use odock_core::{LedgerKind, QuotaMetric, WindowCharge};

use crate::db::{now_ms, to_ms, Db, DbConnection};

/// Adds `charges` to their windows (summed per window first), creating missing window rows. A
/// charge whose budget or quota was deleted meanwhile is dropped: there is nothing left to count
/// it against, and it must never fail the usage batch it travels with.
pub async fn apply_charges<'a>(
    conn: &mut DbConnection,
    charges: impl IntoIterator<Item = &'a WindowCharge>,
) -> Result<(), sqlx::Error> {
    let mut totals: HashMap<(LedgerKind, &Arc<str>, i64), (&WindowCharge, i64)> = HashMap::new();
    for charge in charges {
        let key = (charge.kind, &charge.rule_id, to_ms(charge.start));
        let entry = totals.entry(key).or_insert((charge, 0));
        entry.1 = entry.1.saturating_add(charge.used);
    }
    let now = now_ms();
    for (charge, used) in totals.into_values() {
        ensure_window(
            conn,
            charge.kind,
            &charge.rule_id,
            charge.metric,
            to_ms(charge.start),
            to_ms(charge.end),
            now,
        )
        .await?;
        let sql = match charge.kind {
            LedgerKind::Budget => {
                "UPDATE budget_windows SET used_nanos = used_nanos + $1, updated_at = $2 \
                 WHERE budget_id = $3 AND start_at = $4"
            }
            LedgerKind::Quota => {
                "UPDATE quota_windows SET used = used + $1, updated_at = $2 \
                 WHERE quota_id = $3 AND start_at = $4"
            }
        };
        sqlx::query(sql)
            .bind(used)
            .bind(now)
            .bind(&*charge.rule_id)
            .bind(to_ms(charge.start))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Creates the row of window `[start, end)` of a rule unless it exists (or the rule is gone).
pub async fn ensure_window(
    conn: &mut DbConnection,
    kind: LedgerKind,
    rule_id: &str,
    metric: Option<QuotaMetric>,
    start_ms: i64,
    end_ms: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let id = odock_core::new_object_id();
    match kind {
        LedgerKind::Budget => {
            sqlx::query(
                "INSERT INTO budget_windows (id, budget_id, start_at, end_at, created_at, updated_at) \
                 SELECT $1, id, $2, $3, $4, $5 FROM budgets WHERE id = $6 \
                 ON CONFLICT(budget_id, start_at) DO NOTHING",
            )
            .bind(id)
            .bind(start_ms)
            .bind(end_ms)
            .bind(now)
            .bind(now)
            .bind(rule_id)
            .execute(conn)
            .await?;
        }
        LedgerKind::Quota => {
            sqlx::query(
                "INSERT INTO quota_windows (id, quota_id, metric, start_at, end_at, created_at, updated_at) \
                 SELECT $1, id, $2, $3, $4, $5, $6 FROM quotas WHERE id = $7 \
                 ON CONFLICT(quota_id, start_at) DO NOTHING",
            )
            .bind(id)
            .bind(metric.map_or("", QuotaMetric::as_str))
            .bind(start_ms)
            .bind(end_ms)
            .bind(now)
            .bind(now)
            .bind(rule_id)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The stored `used` of a rule's window starting at `start_ms` (0 when it has no row yet).
pub async fn window_used(
    pool: &Db,
    kind: LedgerKind,
    rule_id: &str,
    start_ms: i64,
) -> Result<i64, sqlx::Error> {
    let sql = match kind {
        LedgerKind::Budget => {
            "SELECT used_nanos FROM budget_windows WHERE budget_id = $1 AND start_at = $2"
        }
        LedgerKind::Quota => "SELECT used FROM quota_windows WHERE quota_id = $1 AND start_at = $2",
    };
    let used: Option<i64> = sqlx::query_scalar(sql)
        .bind(rule_id)
        .bind(start_ms)
        .fetch_optional(pool)
        .await?;
    Ok(used.unwrap_or(0))
}
