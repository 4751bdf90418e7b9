//! `/api/organisations/{organisationId}/models` and the cross-organisation `/api/admin/models`.

use crate::services::models::{self, Model, ModelPatch, NewModel};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::error::ApiError;
use super::extract::{AdminJson, AdminListParams, AdminQuery, ListParams};
use super::AdminState;

/// `POST /api/organisations/{organisationId}/models`: create a model. Access: ORG_ADMIN.
pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewModel>,
) -> Result<(StatusCode, Json<Model>), ApiError> {
    let model = models::create(&state.pool, &org, input).await?;
    state.invalidate(CacheKind::Model, &model.id);
    Ok((StatusCode::CREATED, Json(model)))
}

/// `GET /api/organisations/{organisationId}/models`: list the organisation's models. Access: any
/// user of the organisation.
pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<Model>>, ApiError> {
    Ok(Json(
        models::list(&state.pool, Some(&org), &params.page()).await?,
    ))
}

/// `GET /api/admin/models`: list models of every organisation. Access: SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<Model>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(models::list(&state.pool, org, &params.page()).await?))
}

/// `GET /api/organisations/{organisationId}/models/{id}`: read a model. Access: any user of the
/// organisation.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Model>, ApiError> {
    Ok(Json(models::get(&state.pool, &org, &id).await?))
}

/// `PATCH /api/organisations/{organisationId}/models/{id}`: update a model. Access: ORG_ADMIN.
pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<ModelPatch>,
) -> Result<Json<Model>, ApiError> {
    let model = models::update(&state.pool, &org, &id, patch).await?;
    state.invalidate(CacheKind::Model, &id);
    super::routing::prune_after_write(&state, &org).await;
    Ok(Json(model))
}

/// `DELETE /api/organisations/{organisationId}/models/{id}`: delete a model and its grants. Access:
/// ORG_ADMIN.
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    models::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::Model, &id);
    super::routing::prune_after_write(&state, &org).await;
    Ok(StatusCode::NO_CONTENT)
}
