//! `/api/organisations/{organisationId}/budgets` with their windows, and the cross-organisation
//! `/api/admin/budgets`.
//!
//! Every write invalidates `CacheKind::Budget` for the organisation, so the ledger reloads its rules.

use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::{CacheKind, OwnerType};
use odock_store::admin::budgets::{
    self, Budget, BudgetPatch, BudgetWindow, NewBudget, OwnerFilter,
};
use odock_store::admin::{Page, PageRequest};
use serde::Deserialize;

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

pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<Budget>>, ApiError> {
    Ok(Json(
        budgets::list(&state.pool, Some(&org), &params.filter(), &params.page()).await?,
    ))
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

pub async fn windows(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Page<BudgetWindow>>, ApiError> {
    Ok(Json(Page::all(
        budgets::windows(&state.pool, &org, &id).await?,
    )))
}
