//! `/api/organisations/{organisationId}/providers/{providerId}/keys`: upstream credentials. The secret
//! is sealed with the master key on the way in and never leaves again; responses carry a preview.

use crate::services::provider_keys::{self, NewProviderKey, ProviderKey};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::error::ApiError;
use super::extract::{AdminJson, AdminQuery, ListParams};
use super::AdminState;

/// `POST /api/organisations/{organisationId}/providers/{id}/keys`: store an upstream key (sealed;
/// only a preview is ever returned). Access: ORG_ADMIN.
pub async fn create(
    State(state): State<AdminState>,
    Path((org, provider)): Path<(String, String)>,
    AdminJson(input): AdminJson<NewProviderKey>,
) -> Result<(StatusCode, Json<ProviderKey>), ApiError> {
    let key = provider_keys::create(&state.pool, &state.master_key, &org, &provider, input).await?;
    state.invalidate(CacheKind::ProviderKey, &key.id);
    Ok((StatusCode::CREATED, Json(key)))
}

/// `GET /api/organisations/{organisationId}/providers/{id}/keys`: list a provider's keys (previews
/// only). Access: ORG_ADMIN or MANAGER.
pub async fn list(
    State(state): State<AdminState>,
    Path((org, provider)): Path<(String, String)>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<ProviderKey>>, ApiError> {
    Ok(Json(
        provider_keys::list(&state.pool, &org, &provider, &params.page()).await?,
    ))
}

/// `GET /api/organisations/{organisationId}/providers/{id}/keys/{keyId}`: read a provider key
/// (preview only). Access: ORG_ADMIN or MANAGER.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, provider, id)): Path<(String, String, String)>,
) -> Result<Json<ProviderKey>, ApiError> {
    Ok(Json(
        provider_keys::get(&state.pool, &org, &provider, &id).await?,
    ))
}

/// `DELETE /api/organisations/{organisationId}/providers/{id}/keys/{keyId}`: delete a provider key.
/// Access: ORG_ADMIN.
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, provider, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    provider_keys::delete(&state.pool, &org, &provider, &id).await?;
    state.invalidate(CacheKind::ProviderKey, &id);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/organisations/{organisationId}/providers/{id}/keys/{keyId}/revoke`: revoke a provider
/// key. Access: ORG_ADMIN.
pub async fn revoke(
    state: State<AdminState>,
    path: Path<(String, String, String)>,
) -> Result<Json<ProviderKey>, ApiError> {
    set_revoked(state, path, true).await
}

/// `POST /api/organisations/{organisationId}/providers/{id}/keys/{keyId}/unrevoke`: restore a
/// revoked provider key. Access: ORG_ADMIN.
pub async fn unrevoke(
    state: State<AdminState>,
    path: Path<(String, String, String)>,
) -> Result<Json<ProviderKey>, ApiError> {
    set_revoked(state, path, false).await
}

async fn set_revoked(
    State(state): State<AdminState>,
    Path((org, provider, id)): Path<(String, String, String)>,
    revoked: bool,
) -> Result<Json<ProviderKey>, ApiError> {
    let key = provider_keys::set_revoked(&state.pool, &org, &provider, &id, revoked).await?;
    state.invalidate(CacheKind::ProviderKey, &id);
    Ok(Json(key))
}
