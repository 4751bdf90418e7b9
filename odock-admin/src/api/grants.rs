//! Model grants, from the key's side (`/apikeys/{id}/model-access`) and the model's
//! (`/models/{id}/api-key-access`). Answers are the complete current list. Each write invalidates
//! `Grant` for every key it touched.

use crate::services::grants::{self, GrantApiKeys, GrantModels, ModelGrant};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::error::ApiError;
use super::extract::AdminJson;
use super::AdminState;

pub async fn list_for_api_key(
    State(state): State<AdminState>,
    Path((org, api_key)): Path<(String, String)>,
) -> Result<Json<Page<ModelGrant>>, ApiError> {
    let grants = grants::list_for_api_key(&state.pool, &org, &api_key).await?;
    Ok(Json(Page::all(grants)))
}

pub async fn grant_models(
    State(state): State<AdminState>,
    Path((org, api_key)): Path<(String, String)>,
    AdminJson(input): AdminJson<GrantModels>,
) -> Result<Json<Page<ModelGrant>>, ApiError> {
    let grants = grants::grant_models(&state.pool, &org, &api_key, &input.model_ids).await?;
    state.invalidate(CacheKind::Grant, &api_key);
    Ok(Json(Page::all(grants)))
}

pub async fn revoke_model(
    State(state): State<AdminState>,
    Path((org, api_key, model)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    grants::revoke_model(&state.pool, &org, &api_key, &model).await?;
    state.invalidate(CacheKind::Grant, &api_key);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_for_model(
    State(state): State<AdminState>,
    Path((org, model)): Path<(String, String)>,
) -> Result<Json<Page<ModelGrant>>, ApiError> {
    let grants = grants::list_for_model(&state.pool, &org, &model).await?;
    Ok(Json(Page::all(grants)))
}

pub async fn grant_api_keys(
    State(state): State<AdminState>,
    Path((org, model)): Path<(String, String)>,
    AdminJson(input): AdminJson<GrantApiKeys>,
) -> Result<Json<Page<ModelGrant>>, ApiError> {
    let grants = grants::grant_api_keys(&state.pool, &org, &model, &input.api_key_ids).await?;
    let mut touched = input.api_key_ids;
    touched.sort();
    touched.dedup();
    for api_key in &touched {
        state.invalidate(CacheKind::Grant, api_key);
    }
    Ok(Json(Page::all(grants)))
}
