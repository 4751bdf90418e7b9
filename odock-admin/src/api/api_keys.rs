//! `/api/organisations/{organisationId}/apikeys` and the cross-organisation `/api/admin/apikeys`.
//!
//! The plaintext key appears only in the responses of create and rotate. Every write invalidates
//! the key (by id) so a rotated or revoked secret stops working on every replica at once.

use crate::services::api_keys::{self, ApiKey, ApiKeyPatch, IssuedApiKey, NewApiKey, RotateApiKey};
use crate::services::Page;
use axum::extract::{Extension, Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::authz::{visible_page, AdminPrincipal, Visibility};
use super::error::ApiError;
use super::extract::{AdminJson, AdminListParams, AdminQuery, ListParams};
use super::AdminState;

/// Recorded as `rotated_by` for rotations made with the static admin token.
const ADMIN_TOKEN_ACTOR: &str = "admin-token";

/// `POST /api/organisations/{organisationId}/apikeys`: issue an API key; the plaintext `key` is
/// returned only here. Access: ORG_ADMIN, or a team MANAGER for a TEAM key of its team.
pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewApiKey>,
) -> Result<(StatusCode, Json<IssuedApiKey>), ApiError> {
    let issued = api_keys::create(&state.pool, &org, input).await?;
    state.invalidate(CacheKind::ApiKey, &issued.api_key.id);
    Ok((StatusCode::CREATED, Json(issued)))
}

/// The keys the caller may see: all for admins, its teams' TEAM keys for a MANAGER, its own USER
/// keys for anyone.
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    let visibility = Visibility::of(&state, &principal).await?;
    let pool = &state.pool;
    if visibility.sees_everything() {
        return Ok(Json(
            api_keys::list(pool, Some(&org), &params.page()).await?,
        ));
    }
    let org = org.as_str();
    let page = visible_page(
        &params.page(),
        |page| async move { api_keys::list(pool, Some(org), &page).await },
        |key| visibility.sees_key(key.key_type, key.team_id.as_deref(), key.user_id.as_deref()),
        |key| &key.id,
    )
    .await?;
    Ok(Json(page))
}

/// `GET /api/admin/apikeys`: list API keys of every organisation. Access: SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(
        api_keys::list(&state.pool, org, &params.page()).await?,
    ))
}

/// `GET /api/organisations/{organisationId}/apikeys/{id}`: read an API key (preview only). Access:
/// ORG_ADMIN, the team's MANAGER (TEAM key) or the owner (USER key).
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(api_keys::get(&state.pool, &org, &id).await?))
}

/// `PATCH /api/organisations/{organisationId}/apikeys/{id}`: update an API key's name, expiry,
/// timezone or policies. Access: ORG_ADMIN or the team's MANAGER (TEAM key).
pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<ApiKeyPatch>,
) -> Result<Json<ApiKey>, ApiError> {
    let key = api_keys::update(&state.pool, &org, &id, patch).await?;
    state.invalidate(CacheKind::ApiKey, &id);
    Ok(Json(key))
}

/// `DELETE /api/organisations/{organisationId}/apikeys/{id}`: delete an API key. Access: ORG_ADMIN
/// or the team's MANAGER (TEAM key).
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    api_keys::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::ApiKey, &id);
    state.invalidate(CacheKind::Grant, &id);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/organisations/{organisationId}/apikeys/{id}/rotate`: issue a new secret for the same
/// key id; the old one stops working at once. Access: ORG_ADMIN or the team's MANAGER (TEAM key).
pub async fn rotate(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(input): AdminJson<RotateApiKey>,
) -> Result<Json<IssuedApiKey>, ApiError> {
    // Signed-in users are recorded by id; the static token by name.
    let actor = principal.user_id.as_deref().unwrap_or(ADMIN_TOKEN_ACTOR);
    let issued = api_keys::rotate(&state.pool, &org, &id, input, Some(actor)).await?;
    state.invalidate(CacheKind::ApiKey, &id);
    Ok(Json(issued))
}

/// `POST /api/organisations/{organisationId}/apikeys/{id}/revoke`: revoke an API key. Access:
/// ORG_ADMIN or the team's MANAGER (TEAM key).
pub async fn revoke(
    state: State<AdminState>,
    path: Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    set_revoked(state, path, true).await
}

/// `POST /api/organisations/{organisationId}/apikeys/{id}/unrevoke`: restore a revoked API key.
/// Access: ORG_ADMIN or the team's MANAGER (TEAM key).
pub async fn unrevoke(
    state: State<AdminState>,
    path: Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    set_revoked(state, path, false).await
}

async fn set_revoked(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    revoked: bool,
) -> Result<Json<ApiKey>, ApiError> {
    let key = api_keys::set_revoked(&state.pool, &org, &id, revoked).await?;
    state.invalidate(CacheKind::ApiKey, &id);
    Ok(Json(key))
}

/// `GET .../apikeys/{id}/rotations`: the key's rotation history, newest first (previews only).
pub async fn rotations(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Page<api_keys::Rotation>>, ApiError> {
    Ok(Json(api_keys::rotations(&state.pool, &org, &id).await?))
}
