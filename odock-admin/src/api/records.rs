//! What the usage-record and MCP-usage-record lists share, written once over the list's store
//! filter ([`RecordList`]): the period check, the 400 on a cursor no page returned, and the page
//! narrowed to the slices a caller may see ([`super::authz::Visibility::record_scope`]), merged
//! into one. [`super::usage_records`] and [`super::mcp_usage`] only parse their query strings.

use std::future::Future;

use axum::Json;
use chrono::{DateTime, Utc};
use odock_core::{McpUsageRecord, UsageRecord};
use odock_store::db::Db;
use odock_store::mcp_usage::{self, McpUsageFilter};
use odock_store::usage_records::{self, is_invalid_cursor, UsageFilter};
use serde::Serialize;

use super::authz::{merged_page, AdminPrincipal, RecordScope, RecordSlice, Visibility};
use super::error::ApiError;
use super::AdminState;
use crate::services::{organisations, Page, PageRequest};

/// One record list's store filter: how it pages, narrows to a slice and orders its records.
pub(super) trait RecordList: Clone + Send + Sync + 'static {
    type Record: Serialize + Send;
    /// `from` (inclusive) and `to` (exclusive).
    fn period(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    /// The `teamId` and `userId` the query asked for.
    fn scope(&self) -> (Option<&str>, Option<&str>);
    /// This filter limited to one slice the caller may see.
    fn narrowed(&self, slice: &RecordSlice) -> Self;
    /// Whether pages run from the largest sort key down.
    fn descending(&self) -> bool;
    /// The record's sort key and id, as its cursor carries them.
    fn key<'r>(&self, record: &'r Self::Record) -> (i64, &'r str);
    /// One page of the store's list.
    fn fetch(
        &self,
        pool: &Db,
        cursor: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<Self::Record>, Option<String>), sqlx::Error>> + Send;
}

/// [`RecordList::period`], [`RecordList::scope`] and [`RecordList::narrowed`] of a store filter:
/// both name `from`, `to`, `team_id` and `user_id` alike.
macro_rules! record_filter_fields {
    () => {
        fn period(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
            (self.from, self.to)
        }
        fn scope(&self) -> (Option<&str>, Option<&str>) {
            (self.team_id.as_deref(), self.user_id.as_deref())
        }
        fn narrowed(&self, slice: &RecordSlice) -> Self {
            Self {
                team_id: slice.team.clone(),
                user_id: slice.user.clone(),
                ..self.clone()
            }
        }
    };
}

impl RecordList for UsageFilter {
    type Record = UsageRecord;
    record_filter_fields!();
    fn descending(&self) -> bool {
        self.sort.descending
    }
    fn key<'r>(&self, record: &'r UsageRecord) -> (i64, &'r str) {
        (self.sort.key(record), record.id.as_str())
    }
    fn fetch(
        &self,
        pool: &Db,
        cursor: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<UsageRecord>, Option<String>), sqlx::Error>> + Send {
        usage_records::list(pool, self, cursor, limit)
    }
}

impl RecordList for McpUsageFilter {
    type Record = McpUsageRecord;
    record_filter_fields!();
    /// MCP usage records are always newest first.
    fn descending(&self) -> bool {
        true
    }
    fn key<'r>(&self, record: &'r McpUsageRecord) -> (i64, &'r str) {
        (record.created_at.timestamp_millis(), record.id.as_str())
    }
    fn fetch(
        &self,
        pool: &Db,
        cursor: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<McpUsageRecord>, Option<String>), sqlx::Error>> + Send
    {
        mcp_usage::list(pool, self, cursor, limit)
    }
}

/// A malformed cursor is the client's 400, anything else the store's error.
fn list_error(error: sqlx::Error) -> ApiError {
    if is_invalid_cursor(&error) {
        ApiError::invalid(Some("cursor"), "cursor is not one this list returned")
    } else {
        ApiError::from(error)
    }
}

fn check_period(filter: &impl RecordList) -> Result<(), ApiError> {
    if let (Some(from), Some(to)) = filter.period() {
        if from > to {
            return Err(ApiError::invalid(Some("from"), "from must not be after to"));
        }
    }
    Ok(())
}

/// One page of the list as filtered (the cross-organisation lists, and callers who see it all).
pub(super) async fn page<F: RecordList>(
    state: &AdminState,
    filter: F,
    page: PageRequest,
) -> Result<Json<Page<F::Record>>, ApiError> {
    check_period(&filter)?;
    let (data, next_cursor) = filter
        .fetch(&state.pool, page.cursor.as_deref(), page.limit)
        .await
        .map_err(list_error)?;
    Ok(Json(Page { data, next_cursor }))
}

/// One page of the organisation's records the caller may see: all for admins; for a MANAGER those
/// of every team it manages and its own; for a USER its own — each narrowed by the query's
/// `teamId` / `userId`. `query` parses the query string, after the organisation and the caller
/// are checked (so a missing organisation is a 404 whatever the query says).
pub(super) async fn visible<F: RecordList>(
    state: &AdminState,
    principal: &AdminPrincipal,
    org: &str,
    query: impl FnOnce() -> Result<(F, PageRequest), ApiError>,
) -> Result<Json<Page<F::Record>>, ApiError> {
    organisations::ensure_exists(&state.pool, org).await?;
    let visibility = Visibility::of(state, principal).await?;
    let (filter, page_request) = query()?;
    let (team, user) = filter.scope();
    let slices = match visibility.record_scope(team, user) {
        None => return page(state, filter, page_request).await,
        Some(RecordScope::Nothing) => return Ok(Json(Page::all(Vec::new()))),
        Some(RecordScope::Slices(slices)) => slices,
    };
    check_period(&filter)?;
    let pool = &state.pool;
    let (data, next_cursor) = merged_page(
        &slices,
        page_request.cursor.as_deref(),
        page_request.limit,
        filter.descending(),
        |slice: &RecordSlice, cursor, limit| {
            let filter = filter.narrowed(slice);
            let cursor = cursor.map(str::to_owned);
            async move { filter.fetch(pool, cursor.as_deref(), limit).await }
        },
        |record: &F::Record| filter.key(record),
    )
    .await
    .map_err(list_error)?;
    Ok(Json(Page { data, next_cursor }))
}
