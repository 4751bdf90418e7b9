//! `/api/organisations/{organisationId}/quotas` with their windows, and the cross-organisation
//! `/api/admin/quotas`.
//!
//! Every write invalidates `CacheKind::Quota` for the organisation, so the ledger reloads its rules.

use crate::services::quotas::{self, NewQuota, Quota, QuotaPatch, QuotaWindow};
use crate::services::Page;
use axum::extract::{Extension, Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::{CacheKind, LedgerKind};

use super::authz::{visible_page, AdminPrincipal, Visibility};
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

/// The quotas the caller may see (as for budgets).
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<OwnerListParams>,
) -> Result<Json<Page<Quota>>, ApiError> {
    let visibility = Visibility::of(&state, &principal).await?;
    let (pool, filter) = (&state.pool, &params.filter());
    if visibility.sees_everything() {
        return Ok(Json(
            quotas::list(pool, Some(&org), filter, &params.page()).await?,
        ));
    }
    let keys = visibility.visible_keys(&state, &org).await?;
    let org = org.as_str();
    let page = visible_page(
        &params.page(),
        |page| async move { quotas::list(pool, Some(org), filter, &page).await },
        |quota| visibility.sees_rule(quota.owner_type, quota.owner_id.as_deref(), &keys),
        |quota| &quota.id,
    )
    .await?;
    Ok(Json(page))
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

/// The quota's windows, with live totals where the ledger is counting (see the budgets').
pub async fn windows(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Page<QuotaWindow>>, ApiError> {
    let mut windows = quotas::windows(&state.pool, &org, &id).await?;
    for window in &mut windows {
        let live = super::budgets::live_totals(
            &state,
            &org,
            LedgerKind::Quota,
            &id,
            window.start_at,
            window.end_at,
        );
        if let Some(live) = live.await {
            window.used = live.used;
            window.reserved = live.reserved;
        }
    }
    Ok(Json(Page::all(windows)))
}
