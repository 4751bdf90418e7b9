//! `/api/admin/organisations` (SUPER_ADMIN).

use crate::services::organisations::{
    self, NewOrganisation, Organisation, OrganisationPatch, OrganisationSettings, SettingsPatch,
};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::error::ApiError;
use super::extract::{AdminJson, AdminQuery, ListParams};
use super::AdminState;

/// `POST /api/admin/organisations`: create an organisation. Access: SUPER_ADMIN only.
pub async fn create(
    State(state): State<AdminState>,
    AdminJson(input): AdminJson<NewOrganisation>,
) -> Result<(StatusCode, Json<Organisation>), ApiError> {
    let organisation = organisations::create(&state.pool, input).await?;
    state.invalidate(CacheKind::Organisation, &organisation.id);
    Ok((StatusCode::CREATED, Json(organisation)))
}

/// `GET /api/admin/organisations`: list organisations. Access: SUPER_ADMIN only.
pub async fn list(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<Organisation>>, ApiError> {
    Ok(Json(
        organisations::list(&state.pool, &params.page()).await?,
    ))
}

/// `GET /api/admin/organisations/{id}`: read an organisation. Access: SUPER_ADMIN only.
pub async fn get(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Organisation>, ApiError> {
    Ok(Json(organisations::get(&state.pool, &id).await?))
}

/// `PATCH /api/admin/organisations/{id}`: update an organisation. Access: SUPER_ADMIN only.
pub async fn update(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    AdminJson(patch): AdminJson<OrganisationPatch>,
) -> Result<Json<Organisation>, ApiError> {
    let organisation = organisations::update(&state.pool, &id, patch).await?;
    state.invalidate(CacheKind::Organisation, &id);
    Ok(Json(organisation))
}

/// `DELETE /api/admin/organisations/{id}`: delete an organisation and everything it owns. Access:
/// SUPER_ADMIN only.
pub async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    organisations::delete(&state.pool, &id).await?;
    state.invalidate(CacheKind::Organisation, &id);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/organisations/{organisationId}/settings`.
pub async fn get_settings(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<OrganisationSettings>, ApiError> {
    Ok(Json(organisations::settings(&state.pool, &id).await?))
}

/// `PATCH /api/organisations/{organisationId}/settings`.
pub async fn update_settings(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    AdminJson(patch): AdminJson<SettingsPatch>,
) -> Result<Json<OrganisationSettings>, ApiError> {
    let settings = organisations::update_settings(&state.pool, &id, patch).await?;
    state.invalidate(CacheKind::Organisation, &id);
    Ok(Json(settings))
}
