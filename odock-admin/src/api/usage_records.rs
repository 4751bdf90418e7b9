//! `GET /api/organisations/{organisationId}/usage-records[/{id}]` and the cross-organisation
//! `GET /api/admin/usage-records`. Records are written by the gateway; the admin API only reads.

use crate::services::{Page, PageRequest};
use axum::extract::{Extension, Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use odock_core::UsageRecord;
use odock_store::usage_records::{self, UsageFilter, UsageSort};
use serde::Deserialize;

use super::authz::AdminPrincipal;
use super::error::ApiError;
use super::extract::AdminQuery;
use super::records;
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
    /// Only this API key's records.
    pub api_key_id: Option<String>,
    /// Only this team's records.
    pub team_id: Option<String>,
    /// Only this user's records.
    pub user_id: Option<String>,
    /// Only this model's records.
    pub model_id: Option<String>,
    /// Only this provider family (`openai`, `anthropic`, …).
    pub provider: Option<String>,
    /// HTTP status of the request.
    pub status: Option<u16>,
    /// Only the record of this request id.
    pub request_id: Option<String>,
    /// Only this organisation's records (cross-organisation list only).
    pub organisation_id: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// The previous page's `nextCursor`.
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

/// The records the caller may see (see `super::records::visible`).
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<UsageParams>,
) -> Result<Json<Page<UsageRecord>>, ApiError> {
    let query = || params.filter(Some(org.clone()));
    records::visible(&state, &principal, &org, query).await
}

/// `GET /api/admin/usage-records`: list usage records of every organisation, newest first. Access:
/// SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(mut params): AdminQuery<UsageParams>,
) -> Result<Json<Page<UsageRecord>>, ApiError> {
    let org = params.organisation_id.take();
    let (filter, page) = params.filter(org)?;
    records::page(&state, filter, page).await
}

/// `GET /api/organisations/{organisationId}/usage-records/{id}`: read a usage record. Access:
/// ORG_ADMIN, the team's MANAGER or the record's user.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<UsageRecord>, ApiError> {
    usage_records::get(&state.pool, Some(&org), &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("usage record not found".into()))
}
