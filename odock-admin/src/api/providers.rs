//! `/api/organisations/{organisationId}/providers` and the cross-organisation `/api/admin/providers`.

use crate::services::providers::{self, NewProvider, Provider, ProviderPatch};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::error::ApiError;
use super::extract::{AdminJson, AdminListParams, AdminQuery, ListParams};
use super::AdminState;

/// Creates a provider; a `baseUrl` whose host is a literal address outside the egress policy is
/// 400 (names are checked when the gateway connects).
pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewProvider>,
) -> Result<(StatusCode, Json<Provider>), ApiError> {
    if let Some(url) = &input.base_url {
        state.host.check_url("baseUrl", url)?;
    }
    let provider = providers::create(&state.pool, &org, input).await?;
    state.invalidate(CacheKind::Provider, &provider.id);
    Ok((StatusCode::CREATED, Json(provider)))
}

/// `GET /api/organisations/{organisationId}/providers`: list the organisation's providers. Access:
/// ORG_ADMIN or MANAGER.
pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<Provider>>, ApiError> {
    Ok(Json(
        providers::list(&state.pool, Some(&org), &params.page()).await?,
    ))
}

/// `GET /api/admin/providers`: list providers of every organisation. Access: SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<Provider>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(
        providers::list(&state.pool, org, &params.page()).await?,
    ))
}

/// `GET /api/organisations/{organisationId}/providers/{id}`: read a provider. Access: ORG_ADMIN or
/// MANAGER.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Provider>, ApiError> {
    Ok(Json(providers::get(&state.pool, &org, &id).await?))
}

/// `PATCH /api/organisations/{organisationId}/providers/{id}`: update a provider. Access:
/// ORG_ADMIN.
pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<ProviderPatch>,
) -> Result<Json<Provider>, ApiError> {
    if let Some(url) = &patch.base_url {
        state.host.check_url("baseUrl", url)?;
    }
    let provider = providers::update(&state.pool, &org, &id, patch).await?;
    state.invalidate(CacheKind::Provider, &id);
    Ok(Json(provider))
}

/// `DELETE /api/organisations/{organisationId}/providers/{id}`: delete a provider with its keys and
/// models. Access: ORG_ADMIN.
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    providers::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::Provider, &id);
    super::routing::prune_after_write(&state, &org).await;
    Ok(StatusCode::NO_CONTENT)
}
