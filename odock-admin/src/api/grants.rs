//! Grants from the key's side (`/apikeys/{id}/model-access`, `/apikeys/{id}/mcp-access`) and the
//! target's (`/models/{id}/api-key-access`, `/mcp-servers/{id}/api-key-access`), written once over
//! the `GrantKind` (model or MCP grants; the route table instantiates each handler for both).
//! Answers are the complete current list. Each write invalidates `Grant` for every key it touched.

use crate::services::grants::{GrantApiKeys, GrantKind};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::error::ApiError;
use super::extract::AdminJson;
use super::AdminState;

/// The targets the key may call, by target name.
pub(crate) async fn list_for_api_key<K: GrantKind>(
    State(state): State<AdminState>,
    Path((org, api_key)): Path<(String, String)>,
) -> Result<Json<Page<K::Grant>>, ApiError> {
    let grants = K::TABLE.for_api_key(&state.pool, &org, &api_key).await?;
    Ok(Json(Page::all(grants)))
}

/// Grants the key the body's targets; answers the key's grants.
pub(crate) async fn grant_targets<K: GrantKind>(
    State(state): State<AdminState>,
    Path((org, api_key)): Path<(String, String)>,
    AdminJson(input): AdminJson<K::Targets>,
) -> Result<Json<Page<K::Grant>>, ApiError> {
    let targets = K::target_ids(&input);
    let grants = K::TABLE
        .grant_targets(&state.pool, &org, &api_key, targets)
        .await?;
    state.invalidate(CacheKind::Grant, &api_key);
    Ok(Json(Page::all(grants)))
}

pub(crate) async fn revoke<K: GrantKind>(
    State(state): State<AdminState>,
    Path((org, api_key, target)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    K::TABLE
        .revoke(&state.pool, &org, &api_key, &target)
        .await?;
    state.invalidate(CacheKind::Grant, &api_key);
    super::routing::prune_after_write(&state, &org).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The keys that may call the target, by key name.
pub(crate) async fn list_for_target<K: GrantKind>(
    State(state): State<AdminState>,
    Path((org, target)): Path<(String, String)>,
) -> Result<Json<Page<K::Grant>>, ApiError> {
    let grants = K::TABLE.for_target(&state.pool, &org, &target).await?;
    Ok(Json(Page::all(grants)))
}

/// Grants the body's keys the target; answers the target's grants.
pub(crate) async fn grant_api_keys<K: GrantKind>(
    State(state): State<AdminState>,
    Path((org, target)): Path<(String, String)>,
    AdminJson(input): AdminJson<GrantApiKeys>,
) -> Result<Json<Page<K::Grant>>, ApiError> {
    let grants = K::TABLE
        .grant_api_keys(&state.pool, &org, &target, &input.api_key_ids)
        .await?;
    let mut touched = input.api_key_ids;
    touched.sort();
    touched.dedup();
    for api_key in &touched {
        state.invalidate(CacheKind::Grant, api_key);
    }
    Ok(Json(Page::all(grants)))
}
