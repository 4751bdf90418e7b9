//! `GET /api/organisations/{organisationId}/usage/summary`: usage totals and groups, computed in
//! SQL by `crate::analytics`. The query parameters here are shared with the invoices.

use crate::analytics::{
    self, GroupBy, StatusFilter, Traffic, UsageScope, UsageSummary, Visibility,
};
use crate::services::organisations;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use http::Extensions;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::AdminQuery;
use super::AdminState;

/// The query string of the summary and the invoices.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportParams {
    /// Inclusive, RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive, RFC 3339.
    pub to: Option<DateTime<Utc>>,
    /// Comma-separated team ids.
    pub team_ids: Option<String>,
    /// Comma-separated API key ids.
    pub api_key_ids: Option<String>,
    /// Comma-separated model ids.
    pub model_ids: Option<String>,
    /// Comma-separated providers (`mcp` for MCP traffic).
    pub providers: Option<String>,
    /// Comma-separated user ids.
    pub user_ids: Option<String>,
    /// `success` (status below 400) or `error`.
    pub status: Option<StatusFilter>,
    /// Summary only.
    pub group_by: Option<GroupBy>,
    /// Summary only: `all` (default), `llm` or `mcp`.
    pub traffic: Option<Traffic>,
    /// Invoices only: `json` (default), `csv` or `pdf`.
    pub format: Option<String>,
}

impl ReportParams {
    /// The records of `organisation_id` these parameters select, as far as `visible` lets see.
    pub fn scope(&self, organisation_id: String, visible: Option<Visibility>) -> UsageScope {
        UsageScope {
            organisation_id,
            from_ms: self.from.map(|at| at.timestamp_millis()),
            to_ms: self.to.map(|at| at.timestamp_millis()),
            team_ids: split_ids(self.team_ids.as_deref()),
            api_key_ids: split_ids(self.api_key_ids.as_deref()),
            model_ids: split_ids(self.model_ids.as_deref()),
            providers: split_ids(self.providers.as_deref()),
            user_ids: split_ids(self.user_ids.as_deref()),
            status: self.status,
            traffic: self.traffic.unwrap_or_default(),
            visible,
        }
    }

    /// Refuses a period whose `from` is not before its `to` (400 on `from`).
    pub fn check_period(&self) -> Result<(), ApiError> {
        match (self.from, self.to) {
            (Some(from), Some(to)) if from >= to => {
                Err(ApiError::invalid(Some("from"), "from must be before to"))
            }
            _ => Ok(()),
        }
    }
}

/// The longest period an hourly summary covers (744 groups).
const MAX_HOURLY_DAYS: i64 = 31;

/// `a,b,,c ` → `[a, b, c]`.
fn split_ids(ids: Option<&str>) -> Vec<String> {
    ids.map(|ids| {
        ids.split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// What of the organisation's usage the caller may see: everything for the admin token, super and
/// organisation admins; a team manager its managed teams' records and its own; a user its own.
pub async fn visibility(
    state: &AdminState,
    extensions: &Extensions,
) -> Result<Option<Visibility>, ApiError> {
    let Some(principal) = extensions.get::<super::authz::AdminPrincipal>() else {
        // Only the admin token reaches a handler without a principal (before authorisation existed).
        return Ok(None);
    };
    Ok(
        match super::authz::Visibility::of(state, principal).await? {
            super::authz::Visibility::Everything => None,
            super::authz::Visibility::Limited {
                user_id,
                manager,
                memberships,
            } => Some(Visibility {
                team_ids: if manager {
                    memberships.managed
                } else {
                    Vec::new()
                },
                user_id: Some(user_id),
            }),
        },
    )
}

/// `GET /api/organisations/{organisationId}/usage/summary`: usage totals (requests, errors, tokens,
/// LLM and MCP cost, p50/p95 latency) and groups. Access: any user of the organisation, filtered to
/// what they may see.
pub async fn summary(
    State(state): State<AdminState>,
    Path(organisation_id): Path<String>,
    extensions: Extensions,
    AdminQuery(params): AdminQuery<ReportParams>,
) -> Result<Json<UsageSummary>, ApiError> {
    organisations::ensure_exists(&state.pool, &organisation_id).await?;
    if params.format.is_some() {
        return Err(ApiError::invalid(
            Some("format"),
            "format applies to invoices only",
        ));
    }
    params.check_period()?;
    if params.group_by == Some(GroupBy::Hour) {
        let too_long = match (params.from, params.to) {
            (Some(from), Some(to)) => to - from > chrono::Duration::days(MAX_HOURLY_DAYS),
            _ => true,
        };
        if too_long {
            return Err(ApiError::invalid(
                Some("groupBy"),
                "groupBy=hour needs from and to at most 31 days apart",
            ));
        }
    }
    let scope = params.scope(organisation_id, visibility(&state, &extensions).await?);
    Ok(Json(
        analytics::summary(&state.pool, &scope, params.group_by).await?,
    ))
}
