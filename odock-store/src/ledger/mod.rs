//! [`SqlBudgetLedger`] and [`SqlQuotaLedger`]: admission by reservation on SQLite (embedded mode).
//!
//! A request is admitted iff, in every window of every matching active rule,
//! `used + reserved + estimate ≤ limit` (ERRORS and LATENCY_MS quotas: `used < limit`). The check and
//! the holds happen in one `BEGIN IMMEDIATE` transaction, so writers are serialised and a hold is
//! taken in all windows or in none. Windows are created lazily from
//! [`Schedule::window_at`](odock_core::windows::Schedule::window_at).
//!
//! Every hold is one `budget_requests` row (the lease: status `RESERVED` until `expires_at`) plus one
//! row per window in `budget_reservations` / `quota_reservations`. Budgets and quotas keep separate
//! lifecycles for the same request, so their rows are keyed apart: `request_id` is
//! `budget:<api key id>:<request id>` or `quota:<api key id>:<request id>` (scoping by key means two
//! callers that happen to send the same `X-Request-Id` never share a hold). [`Reservation::id`] is
//! the row's primary key; settle, release and refresh go by it.
//!
//! Settling and releasing only act on a `RESERVED` row and flip it in the same transaction, so doing
//! either twice — or after the sweeper released an expired lease — changes nothing. Reserving again
//! with the request id of a live hold returns that hold; after it was settled or released, a new
//! admission check runs (a replayed request id is never a free pass).
//!
//! ```no_run
//! # async fn demo(pool: odock_store::db::Db) {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use odock_core::SystemClock;
//! use odock_store::ledger::{spawn_sweeper, LedgerOptions, SqlBudgetLedger};
//!
//! let budgets = Arc::new(SqlBudgetLedger::new(pool, Arc::new(SystemClock), LedgerOptions::default()));
//! let _sweeper = spawn_sweeper(budgets.clone(), Duration::from_secs(15));
//! # }
//! ```

mod budget;
mod quota;
pub(crate) mod rules;
mod sweeper;

#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};
use odock_core::{
    crossed_thresholds, Clock, LedgerError, Principal, QuotaMetric, RequestId, Reservation,
    ReservationId, ThresholdCrossing,
};
use sqlx::{Any, Row, Transaction};

use crate::db::{backend, from_ms, to_ms, Backend, Db, DbConnection};
use rules::Rule;

pub use budget::SqlBudgetLedger;
pub use quota::SqlQuotaLedger;
// The Redis ledgers (`crate::redis`) share the rules, windows and metric arithmetic.
pub(crate) use quota::{reserve_amount, settle_amount};
pub use sweeper::{spawn_sweeper, SweepExpired};

/// How long the "does this organisation have budgets/quotas?" answer is trusted without an
/// invalidation; admin writes evict it at once.
pub(crate) const GOVERNED_TTL: Duration = Duration::from_secs(5);

/// Ledger settings.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// How long a hold lives without a refresh before the sweeper may release it.
    pub lease: Duration,
}

impl LedgerOptions {
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
}

impl Default for LedgerOptions {
    fn default() -> Self {
        Self {
            lease: Self::DEFAULT_LEASE,
        }
    }
}

const RESERVED: &str = "RESERVED";
const SETTLED: &str = "SETTLED";
const RELEASED: &str = "RELEASED";

/// The tables one kind of ledger writes to. Budgets and quotas share the request (lease) table.
#[derive(Debug)]
pub(crate) struct Book {
    /// Prefix of `budget_requests.request_id`.
    prefix: &'static str,
    pub(crate) windows: &'static str,
    /// The windows' column naming their rule.
    pub(crate) rule_fk: &'static str,
    pub(crate) used: &'static str,
    pub(crate) reserved: &'static str,
    reservations: &'static str,
    window_fk: &'static str,
    amount: &'static str,
    /// The window's metric (quotas) or `NULL` (budgets).
    metric: &'static str,
}

pub(crate) const BUDGETS: Book = Book {
    prefix: "budget",
    windows: "budget_windows",
    rule_fk: "budget_id",
    used: "used_nanos",
    reserved: "reserved_nanos",
    reservations: "budget_reservations",
    window_fk: "budget_window_id",
    amount: "amount_nanos",
    metric: "NULL",
};

pub(crate) const QUOTAS: Book = Book {
    prefix: "quota",
    windows: "quota_windows",
    rule_fk: "quota_id",
    used: "used",
    reserved: "reserved",
    reservations: "quota_reservations",
    window_fk: "quota_window_id",
    amount: "amount",
    metric: "w.metric",
};

/// An existing lease row.
struct Lease {
    id: String,
    status: String,
    expires_at: i64,
}

/// One window hold being recorded.
struct Hold {
    window_id: String,
    amount: i64,
}

/// How a hold ends.
enum Close<'a> {
    /// Add the actual amount for each window's metric (`None` for budgets) to `used`.
    Settle(&'a (dyn Fn(Option<QuotaMetric>) -> i64 + Sync)),
    Release,
}

fn ledger_error(error: sqlx::Error) -> LedgerError {
    LedgerError(error.to_string())
}

fn lease_key(book: &Book, principal: &Principal, request_id: &RequestId) -> String {
    format!(
        "{}:{}:{}",
        book.prefix,
        principal.api_key_id.as_str(),
        request_id.as_str()
    )
}

fn lease_end(now: DateTime<Utc>, lease: Duration) -> i64 {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    to_ms(now).saturating_add(lease_ms)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The PostgreSQL advisory lock that serialises ledger writes, as SQLite's write lock does.
const LEDGER_LOCK: i64 = 0x6f64_6f63_6b4c; // "odockL"

/// Starts a ledger write transaction that holds the ledger's lock from its first statement, so
/// concurrent reservations queue instead of both reading the same window totals: SQLite's write
/// lock taken up front, or a transaction-scoped advisory lock on PostgreSQL.
async fn begin_immediate(pool: &Db) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match backend(pool) {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(LEDGER_LOCK)
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        }
    }
}

async fn find_lease(conn: &mut DbConnection, key: &str) -> Result<Option<Lease>, sqlx::Error> {
    let row: Option<(String, String, i64)> =
        sqlx::query_as("SELECT id, status, expires_at FROM budget_requests WHERE request_id = $1")
            .bind(key)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(id, status, expires_at)| Lease {
        id,
        status,
        expires_at,
    }))
}

/// The window ids a lease still holds.
async fn held_window_ids(
    conn: &mut DbConnection,
    book: &Book,
    lease_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT {fk} FROM {table} WHERE budget_request_id = $1 AND status = $2 ORDER BY id",
        fk = book.window_fk,
        table = book.reservations,
    );
    let rows: Vec<(String,)> = sqlx::query_as(&sql)
        .bind(lease_id)
        .bind(RESERVED)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The reservation handed back for a live lease.
async fn existing_reservation(
    conn: &mut DbConnection,
    book: &Book,
    lease: &Lease,
    request_id: &RequestId,
) -> Result<Reservation, sqlx::Error> {
    Ok(Reservation {
        id: ReservationId::new(lease.id.as_str()),
        request_id: request_id.clone(),
        windows: held_window_ids(conn, book, &lease.id).await?,
        expires_at: from_ms(lease.expires_at),
    })
}

/// A hold of nothing: no rule matched.
fn empty_reservation(request_id: &RequestId, now: DateTime<Utc>, lease: Duration) -> Reservation {
    Reservation {
        id: ReservationId::generate(),
        request_id: request_id.clone(),
        windows: Vec::new(),
        expires_at: from_ms(lease_end(now, lease)),
    }
}

/// The rule's current window row, created if this is its first use: `(id, used, reserved)`.
pub(crate) async fn current_window(
    conn: &mut DbConnection,
    book: &Book,
    rule: &Rule,
    now: i64,
) -> Result<(String, i64, i64), sqlx::Error> {
    let start = to_ms(rule.window.start);
    let end = to_ms(rule.window.end);
    let id = odock_core::new_object_id();
    match rule.metric {
        Some(metric) => {
            sqlx::query(
                "INSERT INTO quota_windows (id, quota_id, metric, start_at, end_at, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(quota_id, start_at) DO NOTHING",
            )
            .bind(&id)
            .bind(&rule.id)
            .bind(metric.as_str())
            .bind(start)
            .bind(end)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query(
                "INSERT INTO budget_windows (id, budget_id, start_at, end_at, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT(budget_id, start_at) DO NOTHING",
            )
            .bind(&id)
            .bind(&rule.id)
            .bind(start)
            .bind(end)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
    }
    let sql = format!(
        "SELECT id, {used}, {reserved} FROM {windows} WHERE {fk} = $1 AND start_at = $2",
        used = book.used,
        reserved = book.reserved,
        windows = book.windows,
        fk = book.rule_fk,
    );
    sqlx::query_as(&sql)
        .bind(&rule.id)
        .bind(start)
        .fetch_one(conn)
        .await
}

/// Adds the holds to their windows and records the lease (re-arming `existing` when the request id
/// was used before and its earlier hold has ended).
#[allow(clippy::too_many_arguments)]
async fn record_holds(
    conn: &mut DbConnection,
    book: &Book,
    key: &str,
    existing: Option<&Lease>,
    principal: &Principal,
    estimate_nanos: i64,
    holds: &[Hold],
    now: i64,
    expires_at: i64,
) -> Result<String, sqlx::Error> {
    let lease_id = match existing {
        Some(lease) => {
            sqlx::query(
                "UPDATE budget_requests SET status = $1, estimate_nanos = $2, actual_nanos = NULL, \
                 expires_at = $3, updated_at = $4 WHERE id = $5",
            )
            .bind(RESERVED)
            .bind(estimate_nanos)
            .bind(expires_at)
            .bind(now)
            .bind(&lease.id)
            .execute(&mut *conn)
            .await?;
            lease.id.clone()
        }
        None => {
            let id = odock_core::new_object_id();
            sqlx::query(
                "INSERT INTO budget_requests (id, request_id, organisation_id, api_key_id, status, \
                 estimate_nanos, expires_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&id)
            .bind(key)
            .bind(principal.organisation_id.as_str())
            .bind(principal.api_key_id.as_str())
            .bind(RESERVED)
            .bind(estimate_nanos)
            .bind(expires_at)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            id
        }
    };
    let add = format!(
        "UPDATE {windows} SET {reserved} = {reserved} + $1, updated_at = $2 WHERE id = $3",
        windows = book.windows,
        reserved = book.reserved,
    );
    let insert = format!(
        "INSERT INTO {table} (id, budget_request_id, {fk}, {amount}, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        table = book.reservations,
        fk = book.window_fk,
        amount = book.amount,
    );
    for hold in holds {
        sqlx::query(&add)
            .bind(hold.amount)
            .bind(now)
            .bind(&hold.window_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(&insert)
            .bind(odock_core::new_object_id())
            .bind(&lease_id)
            .bind(&hold.window_id)
            .bind(hold.amount)
            .bind(RESERVED)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(lease_id)
}

/// When a lease is closed: `now`, and for the sweeper the cutoff its lease must have ended before.
#[derive(Debug, Clone, Copy)]
struct Moment {
    now: i64,
    expired_before: Option<i64>,
}

/// Ends a lease: settles or releases every window it still holds. Acts only on a `RESERVED` lease
/// (and, when `expired_before` is set, only if its lease ended before then), so repeating it is a
/// no-op. Returns whether anything changed.
async fn close(
    pool: &Db,
    book: &Book,
    lease_id: &str,
    how: Close<'_>,
    actual_nanos: Option<i64>,
    at: Moment,
    mut crossings: Option<&mut Vec<ThresholdCrossing>>,
) -> Result<bool, sqlx::Error> {
    let Moment {
        now,
        expired_before,
    } = at;
    let mut tx = begin_immediate(pool).await?;
    let status: Option<(String, i64)> =
        sqlx::query_as("SELECT status, expires_at FROM budget_requests WHERE id = $1")
            .bind(lease_id)
            .fetch_optional(&mut *tx)
            .await?;
    let live = status.is_some_and(|(status, expires_at)| {
        status == RESERVED && expired_before.is_none_or(|cutoff| expires_at < cutoff)
    });
    if !live {
        tx.rollback().await?;
        return Ok(false);
    }
    let held = format!(
        "SELECT r.id, r.{fk}, r.{amount}, {metric} FROM {table} r JOIN {windows} w ON w.id = r.{fk} \
         WHERE r.budget_request_id = $1 AND r.status = $2",
        fk = book.window_fk,
        amount = book.amount,
        metric = book.metric,
        table = book.reservations,
        windows = book.windows,
    );
    let holds: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(&held)
        .bind(lease_id)
        .bind(RESERVED)
        .fetch_all(&mut *tx)
        .await?;
    // `reserved` never goes below zero, even if a window was edited by hand in between.
    let update = format!(
        "UPDATE {windows} SET {used} = {used} + $1, {reserved} = CASE WHEN {reserved} > $2 THEN {reserved} - $2 ELSE 0 END, \
         updated_at = $3 WHERE id = $4",
        windows = book.windows,
        used = book.used,
        reserved = book.reserved,
    );
    let mark = format!(
        "UPDATE {table} SET status = $1, updated_at = $2 WHERE id = $3",
        table = book.reservations
    );
    let status = match how {
        Close::Settle(_) => SETTLED,
        Close::Release => RELEASED,
    };
    for (reservation_id, window_id, amount, metric) in holds {
        let used = match &how {
            Close::Settle(actual) => actual(metric.as_deref().and_then(|m| m.parse().ok())).max(0),
            Close::Release => 0,
        };
        sqlx::query(&update)
            .bind(used)
            .bind(amount)
            .bind(now)
            .bind(&window_id)
            .execute(&mut *tx)
            .await?;
        if let Some(crossings) = crossings.as_deref_mut().filter(|_| used > 0) {
            crossings.extend(threshold_crossings(&mut tx, &window_id, used).await?);
        }
        sqlx::query(&mark)
            .bind(status)
            .bind(now)
            .bind(&reservation_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE budget_requests SET status = $1, actual_nanos = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(status)
    .bind(actual_nanos)
    .bind(now)
    .bind(lease_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// A budget's `thresholds` column (a JSON array of percentages, validated when written). Warnings
/// never refuse, so an unreadable column means no warnings rather than a failed settlement.
pub(crate) fn parse_thresholds(column: Option<String>) -> Vec<u32> {
    column
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// The warning thresholds of the budget owning `window_id` that adding `added` to its spend just
/// crossed (read inside the settling transaction, so concurrent settlements see distinct ranges).
async fn threshold_crossings(
    conn: &mut DbConnection,
    window_id: &str,
    added: i64,
) -> Result<Vec<ThresholdCrossing>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT w.used_nanos, w.start_at, b.id, b.name, b.organisation_id, b.amount_nanos, \
         b.thresholds FROM budget_windows w JOIN budgets b ON b.id = w.budget_id WHERE w.id = $1",
    )
    .bind(window_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Vec::new());
    };
    let used: i64 = row.try_get("used_nanos")?;
    let amount: i64 = row.try_get("amount_nanos")?;
    let thresholds = parse_thresholds(row.try_get("thresholds")?);
    let (budget_id, budget_name, organisation_id): (String, String, String) = (
        row.try_get("id")?,
        row.try_get("name")?,
        row.try_get("organisation_id")?,
    );
    let start_at: i64 = row.try_get("start_at")?;
    Ok(
        crossed_thresholds(used.saturating_sub(added), used, amount, &thresholds)
            .into_iter()
            .map(|threshold| ThresholdCrossing {
                organisation_id: organisation_id.clone(),
                budget_id: budget_id.clone(),
                budget_name: budget_name.clone(),
                threshold,
                used_nanos: used,
                amount_nanos: amount,
                window_start: from_ms(start_at),
            })
            .collect(),
    )
}

/// Settles or releases a reservation now, as the ledgers' `settle` and `release` do; closing it
/// again is a no-op.
async fn close_now(
    pool: &Db,
    book: &Book,
    clock: &dyn Clock,
    reservation: &Reservation,
    how: Close<'_>,
    actual_nanos: Option<i64>,
    crossings: Option<&mut Vec<ThresholdCrossing>>,
) -> Result<(), LedgerError> {
    // Nothing was held (no rule matched, so no lease row exists): nothing to close, and no reason
    // to take the write lock on every ungoverned request.
    if reservation.windows.is_empty() {
        return Ok(());
    }
    let now = to_ms(clock.now());
    close(
        pool,
        book,
        reservation.id.as_str(),
        how,
        actual_nanos,
        Moment {
            now,
            expired_before: None,
        },
        crossings,
    )
    .await
    .map(drop)
    .map_err(ledger_error)
}

/// Extends a live reservation's lease to `lease` from now.
async fn refresh(
    pool: &Db,
    clock: &dyn Clock,
    lease: Duration,
    reservation: &Reservation,
) -> Result<(), LedgerError> {
    let now = clock.now();
    sqlx::query(
        "UPDATE budget_requests SET expires_at = CASE WHEN expires_at > $1 THEN expires_at ELSE $1 END, updated_at = $2 \
         WHERE id = $3 AND status = $4",
    )
    .bind(lease_end(now, lease))
    .bind(to_ms(now))
    .bind(reservation.id.as_str())
    .bind(RESERVED)
    .execute(pool)
    .await
    .map_err(ledger_error)?;
    Ok(())
}

/// Releases every lease of this book that expired before now; returns how many.
async fn sweep_expired(pool: &Db, book: &Book, clock: &dyn Clock) -> Result<u64, LedgerError> {
    sweep(pool, book, to_ms(clock.now()))
        .await
        .map_err(ledger_error)
}

/// Releases every lease of this book that expired before `now`; returns how many.
async fn sweep(pool: &Db, book: &Book, now: i64) -> Result<u64, sqlx::Error> {
    let pattern = format!("{}:%", book.prefix);
    let expired: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM budget_requests WHERE status = $1 AND expires_at < $2 AND request_id LIKE $3",
    )
    .bind(RESERVED)
    .bind(now)
    .bind(&pattern)
    .fetch_all(pool)
    .await?;
    let mut released = 0;
    for (id,) in expired {
        // Re-checked inside the transaction: a refresh that landed meanwhile keeps the hold.
        let at = Moment {
            now,
            expired_before: Some(now),
        };
        if close(pool, book, &id, Close::Release, None, at, None).await? {
            released += 1;
        }
    }
    if released > 0 {
        tracing::info!(
            kind = book.prefix,
            released,
            "released expired ledger leases"
        );
    }
    Ok(released)
}
