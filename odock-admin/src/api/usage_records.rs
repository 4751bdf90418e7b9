//! `GET /api/organisations/{organisationId}/usage-records[/{id}]` and the cross-organisation
//! `GET /api/admin/usage-records`. Records are written by the gateway; the admin API only reads.

use crate::services::{organisations, Page, PageRequest};
use axum::extract::{Extension, Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use odock_core::UsageRecord;
use odock_store::usage_records::{self, UsageFilter, UsageSort};
use serde::Deserialize;

use super::authz::{merged_page, AdminPrincipal, RecordScope, RecordSlice, Visibility};
use super::error::ApiError;
use super::extract::AdminQuery;
use super::AdminState;

/// The query string of both lists. `organisationId` is honoured on the cross-organisation list only;
/// the organisation-scoped list takes its organisation from the path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageParams {
    /// Inclusive, RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive, RFC 3339.
    pub to: Option<DateTime<Utc>>,
    pub api_key_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub model_id: Option<String>,
    pub provider: Option<String>,
    /// HTTP status of the request.
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub organisation_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// `time`, `cost`, `latency` or `tokens`, `-` first for descending; default `-time`.
    pub sort: Option<String>,
}

impl UsageParams {
    fn filter(
        self,
        organisation_id: Option<String>,
    ) -> Result<(UsageFilter, PageRequest), ApiError> {
        let sort = match self.sort.as_deref().filter(|s| !s.is_empty()) {
            None => UsageSort::default(),
            Some(text) => UsageSort::parse(text).ok_or_else(|| {
                ApiError::invalid(
                    Some("sort"),
                    "sort is time, cost, latency or tokens, with a leading - for descending",
                )
            })?,
        };
        let page = PageRequest::new(self.cursor, self.limit);
        let filter = UsageFilter {
            organisation_id,
            from: self.from,
            to: self.to,
            api_key_id: self.api_key_id,
            team_id: self.team_id,
            user_id: self.user_id,
            model_id: self.model_id,
            provider: self.provider,
            request_id: self.request_id,
            status: self.status,
            sort,
        };
        Ok((filter, page))
    }
}

fn list_error(error: sqlx::Error) -> ApiError {
    if usage_records::is_invalid_cursor(&error) {
        ApiError::invalid(Some("cursor"), "cursor is not one this list returned")
    } else {
        ApiError::from(error)
    }
}

fn check_period(filter: &UsageFilter) -> Result<(), ApiError> {
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(ApiError::invalid(Some("from"), "from must not be after to"));
        }
    }
    Ok(())
}

async fn list_page(
    state: &AdminState,
    filter: UsageFilter,
    page: PageRequest,
) -> Result<Json<Page<UsageRecord>>, ApiError> {
    check_period(&filter)?;
    let (data, next_cursor) =
        usage_records::list(&state.pool, &filter, page.cursor.as_deref(), page.limit)
            .await
            .map_err(list_error)?;
    Ok(Json(Page { data, next_cursor }))
}

/// The records the caller may see: all for admins; for a MANAGER those of every team it manages
/// and its own; for a USER its own — each narrowed by the query's `teamId` / `userId`.
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<UsageParams>,
) -> Result<Json<Page<UsageRecord>>, ApiError> {
    organisations::ensure_exists(&state.pool, &org).await?;
    let visibility = Visibility::of(&state, &principal).await?;
    let (filter, page) = params.filter(Some(org))?;
    let slices = match visibility.record_scope(filter.team_id.as_deref(), filter.user_id.as_deref())
    {
        None => return list_page(&state, filter, page).await,
        Some(RecordScope::Nothing) => return Ok(Json(Page::all(Vec::new()))),
        Some(RecordScope::Slices(slices)) => slices,
    };
    check_period(&filter)?;
    let pool = &state.pool;
    let sort = filter.sort;
    let (data, next_cursor) = merged_page(
        &slices,
        page.cursor.as_deref(),
        page.limit,
        sort.descending,
        |slice: &RecordSlice, cursor, limit| {
            let filter = UsageFilter {
                team_id: slice.team.clone(),
                user_id: slice.user.clone(),
                ..filter.clone()
            };
            let cursor = cursor.map(str::to_owned);
            async move { usage_records::list(pool, &filter, cursor.as_deref(), limit).await }
        },
        |record: &UsageRecord| (sort.key(record), record.id.as_str()),
    )
    .await
    .map_err(list_error)?;
    Ok(Json(Page { data, next_cursor }))
}

pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(mut params): AdminQuery<UsageParams>,
) -> Result<Json<Page<UsageRecord>>, ApiError> {
    let org = params.organisation_id.take();
    let (filter, page) = params.filter(org)?;
    list_page(&state, filter, page).await
}

pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<UsageRecord>, ApiError> {
    usage_records::get(&state.pool, Some(&org), &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("usage record not found".into()))
}
