//! `/api/organisations/{organisationId}/quotas` with their windows, and the cross-organisation
//! `/api/admin/quotas`.
//!
//! Every write invalidates `CacheKind::Quota` for the organisation, so the ledger reloads its rules.

use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;
use odock_store::admin::quotas::{self, NewQuota, Quota, QuotaPatch, QuotaWindow};
use odock_store::admin::Page;

use super::budgets::OwnerListParams;
use super::error::ApiError;
use super::extract::{AdminJson, AdminQuery};
use super::AdminState;

pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewQuota>,
) -> Result<(StatusCode, Json<Quota>), ApiError> {
    let quota = quotas::create(&state.pool, &org, input).await?;
    state.invalidate(CacheKind::Quota, &org);
    Ok((StatusCode::CREATED, Json(quota)))
}

pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<Quota>>, ApiError> {
    Ok(Json(
        quotas::list(&state.pool, Some(&org), &params.filter(), &params.page()).await?,
    ))
}

pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<Quota>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(
        quotas::list(&state.pool, org, &params.filter(), &params.page()).await?,
    ))
}

pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Quota>, ApiError> {
    Ok(Json(quotas::get(&state.pool, &org, &id).await?))
}

pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<QuotaPatch>,
) -> Result<Json<Quota>, ApiError> {
    let quota = quotas::update(&state.pool, &org, &id, patch).await?;
    state.invalidate(CacheKind::Quota, &org);
    Ok(Json(quota))
}

pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    quotas::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::Quota, &org);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn windows(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Page<QuotaWindow>>, ApiError> {
    Ok(Json(Page::all(
        quotas::windows(&state.pool, &org, &id).await?,
    )))
}
