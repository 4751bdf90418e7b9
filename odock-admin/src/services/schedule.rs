//! Owners and schedules: what budgets and quotas share.
//!
//! Both hang off an owner (`ORG`, or a team, user or key of the organisation) stored in one of three
//! owner columns, and both run on calendar windows of a [`Schedule`]. [`super::budgets`] adds an
//! amount and thresholds, [`super::quotas`] a metric and an integer limit.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use odock_core::windows::Schedule;
use odock_core::{BudgetPeriod, OwnerType};
use odock_store::db::Db;
use odock_store::db::DbRow;
use sqlx::Row;

use super::{exists_in_org, parse_column, AdminError};
use odock_store::db::{from_ms, to_ms};

/// List filters of budgets and quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerFilter {
    /// Only rules of this owner type; `None`: every owner type.
    pub owner_type: Option<OwnerType>,
    /// Only active (`true`) or only inactive (`false`) rules; `None`: both.
    pub active: Option<bool>,
}

/// The most window rows a windows listing returns (newest first).
const MAX_WINDOWS: i64 = 500;

/// The owner id column of an owner type (`None` for `ORG`).
pub(crate) fn owner_column(owner_type: OwnerType) -> Option<&'static str> {
    match owner_type {
        OwnerType::Org => None,
        OwnerType::Team => Some("team_id"),
        OwnerType::User => Some("user_id"),
        OwnerType::ApiKey => Some("api_key_id"),
    }
}

/// Reads the owner id from the column its type names.
pub(crate) fn decode_owner(row: &DbRow) -> Result<(OwnerType, Option<String>), sqlx::Error> {
    let owner_type: OwnerType = parse_column(row.try_get::<&str, _>("owner_type")?)?;
    let owner_id = match owner_column(owner_type) {
        Some(column) => row.try_get(column)?,
        None => None,
    };
    Ok((owner_type, owner_id))
}

/// The `(team_id, user_id, api_key_id)` columns of an owner.
pub(crate) fn owner_columns(
    owner_type: OwnerType,
    owner_id: Option<&str>,
) -> (Option<&str>, Option<&str>, Option<&str>) {
    match owner_type {
        OwnerType::Org => (None, None, None),
        OwnerType::Team => (owner_id, None, None),
        OwnerType::User => (None, owner_id, None),
        OwnerType::ApiKey => (None, None, owner_id),
    }
}

/// `ORG` takes no owner id; the others need the id of a team, user or key of the organisation.
pub(crate) async fn check_owner(
    pool: &Db,
    organisation_id: &str,
    owner_type: OwnerType,
    owner_id: Option<String>,
) -> Result<Option<String>, AdminError> {
    let owner_id = owner_id
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    let table = match owner_type {
        OwnerType::Org => {
            return match owner_id {
                Some(_) => Err(AdminError::field(
                    "ownerId",
                    "ownerId is not allowed when ownerType is ORG",
                )),
                None => Ok(None),
            };
        }
        OwnerType::Team => "teams",
        OwnerType::User => "users",
        OwnerType::ApiKey => "api_keys",
    };
    let Some(owner_id) = owner_id else {
        return Err(AdminError::field(
            "ownerId",
            format!("ownerId is required when ownerType is {owner_type}"),
        ));
    };
    if !exists_in_org(pool, table, organisation_id, &owner_id).await? {
        return Err(AdminError::field(
            "ownerId",
            format!("ownerId does not name a {owner_type} of this organisation"),
        ));
    }
    Ok(Some(owner_id))
}

/// An existing IANA zone (`UTC`, `Europe/Paris`); absent means `UTC`.
pub(crate) fn check_timezone(timezone: Option<&str>) -> Result<String, AdminError> {
    let Some(timezone) = timezone else {
        return Ok("UTC".to_owned());
    };
    let timezone = timezone.trim();
    timezone.parse::<Tz>().map_err(|_| {
        AdminError::field(
            "timezone",
            format!("`{timezone}` is not an IANA timezone such as `Europe/Paris`"),
        )
    })?;
    Ok(timezone.to_owned())
}

/// `endAt`, when set, must be after `startAt`.
fn check_span(start_at: DateTime<Utc>, end_at: Option<DateTime<Utc>>) -> Result<(), AdminError> {
    match end_at {
        Some(end_at) if end_at <= start_at => {
            Err(AdminError::field("endAt", "endAt must be after startAt"))
        }
        _ => Ok(()),
    }
}

/// The checked `startAt`, `timezone` and `endAt` of a new budget or quota.
pub(crate) struct Span {
    pub start_at: DateTime<Utc>,
    pub timezone: String,
    pub end_at: Option<DateTime<Utc>>,
}

/// Checks the span of a new budget or quota: the timezone defaults to `UTC`, the start to now, and
/// the end must come after the start.
pub(crate) fn new_span(
    start_at: Option<DateTime<Utc>>,
    timezone: Option<&str>,
    end_at: Option<DateTime<Utc>>,
) -> Result<Span, AdminError> {
    let timezone = check_timezone(timezone)?;
    let start_at = truncate_ms(start_at.unwrap_or_else(Utc::now));
    let end_at = end_at.map(truncate_ms);
    check_span(start_at, end_at)?;
    Ok(Span {
        start_at,
        timezone,
        end_at,
    })
}

/// Applies a patch's `startAt`, `timezone` and `endAt` (`Some(None)` removes the end) to the stored
/// values, then checks the resulting span.
pub(crate) fn patch_span(
    start_at: &mut DateTime<Utc>,
    timezone: &mut String,
    end_at: &mut Option<DateTime<Utc>>,
    new_start_at: Option<DateTime<Utc>>,
    new_timezone: Option<String>,
    new_end_at: Option<Option<DateTime<Utc>>>,
) -> Result<(), AdminError> {
    if let Some(new_start_at) = new_start_at {
        *start_at = truncate_ms(new_start_at);
    }
    if let Some(new_timezone) = new_timezone {
        *timezone = check_timezone(Some(&new_timezone))?;
    }
    if let Some(new_end_at) = new_end_at {
        *end_at = new_end_at.map(truncate_ms);
    }
    check_span(*start_at, *end_at)
}

/// Stored at millisecond precision, like every timestamp, so windows computed from the stored value
/// match the ones computed from the input.
fn truncate_ms(at: DateTime<Utc>) -> DateTime<Utc> {
    from_ms(to_ms(at))
}

/// The schedule of a stored budget or quota.
pub(crate) fn schedule(
    start_at: DateTime<Utc>,
    timezone: &str,
    period: BudgetPeriod,
    end_at: Option<DateTime<Utc>>,
) -> Result<Schedule, AdminError> {
    let timezone = timezone.parse::<Tz>().map_err(|e| {
        AdminError::Database(sqlx::Error::Decode(
            format!("stored timezone `{timezone}`: {e}").into(),
        ))
    })?;
    Ok(Schedule {
        start_at,
        timezone,
        period,
        end_at,
    })
}

/// Filters of [`OwnerFilter`] as list conditions (after the organisation's).
pub(crate) fn filter_conditions(filter: &OwnerFilter) -> [(&'static str, Option<&'static str>); 2] {
    [
        ("owner_type", filter.owner_type.map(OwnerType::as_str)),
        // List filters bind text; the cast lets PostgreSQL compare the 0/1 column with it.
        (
            "CAST(active AS TEXT)",
            filter.active.map(|a| if a { "1" } else { "0" }),
        ),
    ]
}

/// Orders windows current first (the one containing `now`, added with zero usage when it has no
/// row yet), then the others newest first.
fn current_first<W>(
    mut rows: Vec<W>,
    current: Option<(DateTime<Utc>, DateTime<Utc>)>,
    start_of: fn(&W) -> DateTime<Utc>,
    empty: impl FnOnce(DateTime<Utc>, DateTime<Utc>) -> W,
) -> Vec<W> {
    rows.sort_by_key(|w| std::cmp::Reverse(start_of(w)));
    if let Some((start, end)) = current {
        match rows.iter().position(|w| start_of(w) == start) {
            Some(index) => {
                let window = rows.remove(index);
                rows.insert(0, window);
            }
            None => rows.insert(0, empty(start, end)),
        }
    }
    rows
}

/// A window from its id, start, end and `(used, reserved)`.
pub(crate) type MakeWindow<W> = fn(Option<String>, DateTime<Utc>, DateTime<Utc>, (i64, i64)) -> W;

/// How one kind of window row is read: its table, and the API object of a window from its id
/// (`None` while the ledger has not created its row), span and `(used, reserved)` totals. Budget
/// and quota windows differ only in these names, so reading and ordering them is written once.
pub(crate) struct WindowRows<W> {
    /// The window table (`budget_windows`).
    pub table: &'static str,
    /// Its column naming the rule (`budget_id`).
    pub rule_column: &'static str,
    /// Its `used` and `reserved` columns (`used_nanos`, `reserved_nanos`).
    pub totals: (&'static str, &'static str),
    pub make: MakeWindow<W>,
    pub start_of: fn(&W) -> DateTime<Utc>,
}

impl<W> WindowRows<W> {
    fn decode(&self, row: &DbRow) -> Result<W, sqlx::Error> {
        Ok((self.make)(
            Some(row.try_get("id")?),
            from_ms(row.try_get("start_at")?),
            from_ms(row.try_get("end_at")?),
            (row.try_get("used")?, row.try_get("reserved")?),
        ))
    }

    fn empty(&self, start_at: DateTime<Utc>, end_at: DateTime<Utc>) -> W {
        (self.make)(None, start_at, end_at, (0, 0))
    }
}

/// A rule's stored windows (at most [`MAX_WINDOWS`], newest first), ordered by [`current_first`]
/// against the window of `schedule` running now.
pub(crate) async fn windows<W>(
    pool: &Db,
    rule_id: &str,
    schedule: Schedule,
    kind: &WindowRows<W>,
) -> Result<Vec<W>, AdminError> {
    let (used, reserved) = kind.totals;
    let sql = format!(
        "SELECT id, start_at, end_at, {used} AS used, {reserved} AS reserved FROM {} \
         WHERE {} = $1 ORDER BY start_at DESC LIMIT $2",
        kind.table, kind.rule_column
    );
    let rows = sqlx::query(&sql)
        .bind(rule_id)
        .bind(MAX_WINDOWS)
        .fetch_all(pool)
        .await?;
    let rows = rows
        .iter()
        .map(|row| kind.decode(row))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let current = schedule.window_at(Utc::now()).map(|w| (w.start, w.end));
    Ok(current_first(rows, current, kind.start_of, |start, end| {
        kind.empty(start, end)
    }))
}
