//! `/api/organisations/{organisationId}/users` and the cross-organisation `/api/admin/users`.
//!
//! Deleting a user deletes their USER keys (see `crate::services::users`); those keys are
//! invalidated here so they stop working on every replica at once. Revoking a user ends their
//! sessions and leaves their keys alone.

use crate::services::users::{self, NewUser, User, UserPatch};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::CacheKind;

use super::error::ApiError;
use super::extract::{AdminJson, AdminListParams, AdminQuery, ListParams};
use super::AdminState;

/// `POST /api/organisations/{organisationId}/users`: create a user (with a password: ACTIVE;
/// without: PENDING). Access: ORG_ADMIN.
pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = users::create(&state.pool, &org, input).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /api/organisations/{organisationId}/users`: list the organisation's users. Access:
/// ORG_ADMIN or MANAGER.
pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<User>>, ApiError> {
    Ok(Json(
        users::list(&state.pool, Some(&org), &params.page()).await?,
    ))
}

/// `GET /api/admin/users`: list users of every organisation (and SUPER_ADMINs). Access: SUPER_ADMIN
/// only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<User>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(users::list(&state.pool, org, &params.page()).await?))
}

/// `GET /api/organisations/{organisationId}/users/{id}`: read a user. Access: ORG_ADMIN, MANAGER or
/// the user themself.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(users::get(&state.pool, &org, &id).await?))
}

/// `PATCH /api/organisations/{organisationId}/users/{id}`: update a user; REVOKED (or a new
/// password) ends their sessions, keys are untouched. Access: ORG_ADMIN.
pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<UserPatch>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(users::update(&state.pool, &org, &id, patch).await?))
}

/// `POST /api/organisations/{organisationId}/users/{id}/approve`: approve a PENDING user (ACTIVE).
/// Access: ORG_ADMIN.
pub async fn approve(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(
        users::decide_pending(&state.pool, &org, &id, true).await?,
    ))
}

/// `POST /api/organisations/{organisationId}/users/{id}/decline`: decline a PENDING user (REVOKED).
/// Access: ORG_ADMIN.
pub async fn decline(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(
        users::decide_pending(&state.pool, &org, &id, false).await?,
    ))
}

/// `DELETE /api/organisations/{organisationId}/users/{id}`: delete a user with their sessions,
/// memberships, USER keys and USER budgets/quotas. Access: ORG_ADMIN.
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let deleted_keys = users::delete(&state.pool, &org, &id).await?;
    for key in &deleted_keys {
        state.invalidate(CacheKind::ApiKey, key);
        state.invalidate(CacheKind::Grant, key);
    }
    // The cascade removed the user's budgets and quotas (and their keys').
    state.invalidate(CacheKind::Budget, &org);
    state.invalidate(CacheKind::Quota, &org);
    Ok(StatusCode::NO_CONTENT)
}
