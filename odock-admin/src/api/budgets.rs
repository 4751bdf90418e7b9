//! `/api/organisations/{organisationId}/budgets` with their windows, and the cross-organisation
//! `/api/admin/budgets`.
//!
//! Every write invalidates `CacheKind::Budget` for the organisation, so the ledger reloads its rules.

use crate::services::budgets::{self, Budget, BudgetPatch, BudgetWindow, NewBudget, OwnerFilter};
use crate::services::{Page, PageRequest};
use axum::extract::{Extension, Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use http::StatusCode;
use odock_core::{CacheKind, LedgerKind, OrganisationId, OwnerType, WindowTotals};
use serde::Deserialize;

use super::authz::{visible_page, AdminPrincipal, Visibility};
use super::error::ApiError;
use super::extract::{AdminJson, AdminQuery};
use super::AdminState;

/// `?limit=&cursor=&ownerType=&active=[&organisationId=]` of the budget and quota lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerListParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub owner_type: Option<OwnerType>,
    pub active: Option<bool>,
    /// Only read by the cross-organisation lists.
    pub organisation_id: Option<String>,
}

impl OwnerListParams {
    pub fn page(&self) -> PageRequest {
        PageRequest::new(self.cursor.clone(), self.limit)
    }

    pub fn filter(&self) -> OwnerFilter {
        OwnerFilter {
            owner_type: self.owner_type,
            active: self.active,
        }
    }
}

pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewBudget>,
) -> Result<(StatusCode, Json<Budget>), ApiError> {
    let budget = budgets::create(&state.pool, &org, input).await?;
    state.invalidate(CacheKind::Budget, &org);
    Ok((StatusCode::CREATED, Json(budget)))
}

/// The budgets the caller may see: all for admins, its teams' for a MANAGER, its own and its keys'
/// for anyone.
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<Budget>>, ApiError> {
    let visibility = Visibility::of(&state, &principal).await?;
    let (pool, filter) = (&state.pool, &params.filter());
    if visibility.sees_everything() {
        return Ok(Json(
            budgets::list(pool, Some(&org), filter, &params.page()).await?,
        ));
    }
    let keys = visibility.visible_keys(&state, &org).await?;
    let org = org.as_str();
    let page = visible_page(
        &params.page(),
        |page| async move { budgets::list(pool, Some(org), filter, &page).await },
        |budget| visibility.sees_rule(budget.owner_type, budget.owner_id.as_deref(), &keys),
        |budget| &budget.id,
    )
    .await?;
    Ok(Json(page))
}

pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<Budget>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(
        budgets::list(&state.pool, org, &params.filter(), &params.page()).await?,
    ))
}

pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Budget>, ApiError> {
    Ok(Json(budgets::get(&state.pool, &org, &id).await?))
}

pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<BudgetPatch>,
) -> Result<Json<Budget>, ApiError> {
    let budget = budgets::update(&state.pool, &org, &id, patch).await?;
    state.invalidate(CacheKind::Budget, &org);
    Ok(Json(budget))
}

pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    budgets::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::Budget, &org);
    Ok(StatusCode::NO_CONTENT)
}

/// The budget's windows; those the ledger is counting show its live totals (holds included),
/// which are ahead of the stored ones.
pub async fn windows(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Page<BudgetWindow>>, ApiError> {
    let mut windows = budgets::windows(&state.pool, &org, &id).await?;
    for window in &mut windows {
        let live = live_totals(
            &state,
            &org,
            LedgerKind::Budget,
            &id,
            window.start_at,
            window.end_at,
        );
        if let Some(live) = live.await {
            window.used_nanos = live.used;
            window.reserved_nanos = live.reserved;
        }
    }
    Ok(Json(Page::all(windows)))
}

/// A window's live totals, asked only for windows that may still be counted (ended less than a
/// day ago: later settlements of requests admitted in them still land).
pub(super) async fn live_totals(
    state: &AdminState,
    org: &str,
    kind: LedgerKind,
    rule_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<WindowTotals> {
    if end < Utc::now() - chrono::Duration::days(1) {
        return None;
    }
    state
        .live_windows
        .live_totals(&OrganisationId::new(org), kind, rule_id, start)
        .await
}
