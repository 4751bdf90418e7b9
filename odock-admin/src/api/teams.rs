//! `/api/organisations/{organisationId}/teams` with their members, and the cross-organisation
//! `/api/admin/teams`. Writes to a team invalidate it (its policies are cached with TEAM keys).

use crate::services::api_keys::{self, ApiKey};
use crate::services::teams::{
    self, NewTeam, NewTeamMember, Team, TeamMember, TeamMemberPatch, TeamPatch,
};
use crate::services::Page;
use axum::extract::{Extension, Path, State};
use axum::Json;
use http::StatusCode;
use odock_core::{ApiKeyType, CacheKind};

use super::authz::{visible_page, AdminPrincipal, Visibility};
use super::error::ApiError;
use super::extract::{AdminJson, AdminListParams, AdminQuery, ListParams};
use super::AdminState;

/// `POST /api/organisations/{organisationId}/teams`: create a team. Access: ORG_ADMIN.
pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewTeam>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    let team = teams::create(&state.pool, &org, input).await?;
    Ok((StatusCode::CREATED, Json(team)))
}

/// The teams the caller may see: all for admins, the ones it belongs to otherwise.
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<Team>>, ApiError> {
    let visibility = Visibility::of(&state, &principal).await?;
    let pool = &state.pool;
    if visibility.sees_everything() {
        return Ok(Json(teams::list(pool, Some(&org), &params.page()).await?));
    }
    let org = org.as_str();
    let page = visible_page(
        &params.page(),
        |page| async move { teams::list(pool, Some(org), &page).await },
        |team| visibility.sees_team(&team.id),
        |team| &team.id,
    )
    .await?;
    Ok(Json(page))
}

/// `GET .../teams/{id}/apikeys`: the team's TEAM keys.
pub async fn list_api_keys(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    teams::get(&state.pool, &org, &id).await?;
    let (pool, org) = (&state.pool, org.as_str());
    let page = visible_page(
        &params.page(),
        |page| async move { api_keys::list(pool, Some(org), &page).await },
        |key| key.key_type == ApiKeyType::Team && key.team_id.as_deref() == Some(id.as_str()),
        |key| &key.id,
    )
    .await?;
    Ok(Json(page))
}

/// `GET /api/admin/teams`: list teams of every organisation. Access: SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<Team>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(teams::list(&state.pool, org, &params.page()).await?))
}

/// `GET /api/organisations/{organisationId}/teams/{id}`: read a team. Access: ORG_ADMIN or a member
/// of the team.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(teams::get(&state.pool, &org, &id).await?))
}

/// `PATCH /api/organisations/{organisationId}/teams/{id}`: update a team's name or policies.
/// Access: ORG_ADMIN.
pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<TeamPatch>,
) -> Result<Json<Team>, ApiError> {
    let team = teams::update(&state.pool, &org, &id, patch).await?;
    state.invalidate(CacheKind::Team, &id);
    Ok(Json(team))
}

/// `DELETE /api/organisations/{organisationId}/teams/{id}`: delete a team with its members, TEAM
/// keys, budgets and quotas. Access: ORG_ADMIN.
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    teams::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::Team, &id);
    // The cascade removed the team's budgets and quotas.
    state.invalidate(CacheKind::Budget, &org);
    state.invalidate(CacheKind::Quota, &org);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/organisations/{organisationId}/teams/{id}/members`: add a user of the organisation to
/// the team. Access: ORG_ADMIN or the team's MANAGER.
pub async fn add_member(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(input): AdminJson<NewTeamMember>,
) -> Result<(StatusCode, Json<TeamMember>), ApiError> {
    let member = teams::add_member(&state.pool, &org, &id, input).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// `GET /api/organisations/{organisationId}/teams/{id}/members`: list the team's members. Access:
/// ORG_ADMIN or a member of the team.
pub async fn list_members(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<TeamMember>>, ApiError> {
    Ok(Json(
        teams::list_members(&state.pool, &org, &id, &params.page()).await?,
    ))
}

/// `PATCH /api/organisations/{organisationId}/teams/{id}/members/{userId}`: change a member's team
/// role. Access: ORG_ADMIN or the team's MANAGER.
pub async fn update_member(
    State(state): State<AdminState>,
    Path((org, id, user_id)): Path<(String, String, String)>,
    AdminJson(patch): AdminJson<TeamMemberPatch>,
) -> Result<Json<TeamMember>, ApiError> {
    Ok(Json(
        teams::update_member(&state.pool, &org, &id, &user_id, patch).await?,
    ))
}

/// `DELETE /api/organisations/{organisationId}/teams/{id}/members/{userId}`: remove a member from
/// the team. Access: ORG_ADMIN or the team's MANAGER.
pub async fn remove_member(
    State(state): State<AdminState>,
    Path((org, id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    teams::remove_member(&state.pool, &org, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
