//! `GET /api/organisations/{organisationId}/dashboard`: how many keys, models, providers, MCP
//! servers, teams and users the organisation has — as far as the caller may see them. A count the
//! caller's role may not see (providers and users for a USER) is `null`; keys and teams are those
//! the caller sees (a MANAGER its teams' keys, a USER its own).

use axum::extract::{Extension, Path, State};
use axum::Json;
use odock_core::Role;
use serde::Serialize;

use super::authz::{AdminPrincipal, Visibility};
use super::error::ApiError;
use super::AdminState;
use crate::services::organisations::{self, object_count, ObjectTable};

/// `GET …/dashboard`: how many objects of each kind the caller sees in the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardCounts {
    /// The keys the caller sees.
    pub api_keys: i64,
    /// The organisation's models.
    pub models: i64,
    /// `null` for roles that may not list providers.
    #[schema(required = true)]
    pub providers: Option<i64>,
    /// The organisation's MCP servers.
    pub mcp_servers: i64,
    /// The teams the caller sees.
    pub teams: i64,
    /// `null` for roles that may not list users.
    #[schema(required = true)]
    pub users: Option<i64>,
}

/// `GET /api/organisations/{organisationId}/dashboard`: counts of the organisation's keys, models,
/// providers, MCP servers, teams and users, as far as the caller sees them. Access: any user of the
/// organisation, filtered to what they may see.
pub async fn counts(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
) -> Result<Json<DashboardCounts>, ApiError> {
    organisations::ensure_exists(&state.pool, &org).await?;
    let pool = &state.pool;
    let visibility = Visibility::of(&state, &principal).await?;
    let staff = matches!(
        principal.role,
        Role::SuperAdmin | Role::OrgAdmin | Role::Manager
    );
    let count = |table| object_count(pool, &org, table);
    let (api_keys, teams) = match &visibility {
        Visibility::Everything => (
            count(ObjectTable::ApiKeys).await?,
            count(ObjectTable::Teams).await?,
        ),
        Visibility::Limited { memberships, .. } => {
            let keys = visibility.visible_keys(&state, &org).await?.len();
            let teams = memberships.managed.len() + memberships.member_of.len();
            (
                i64::try_from(keys).unwrap_or(i64::MAX),
                i64::try_from(teams).unwrap_or(i64::MAX),
            )
        }
    };
    Ok(Json(DashboardCounts {
        api_keys,
        models: count(ObjectTable::Models).await?,
        providers: if staff {
            Some(count(ObjectTable::Providers).await?)
        } else {
            None
        },
        mcp_servers: count(ObjectTable::McpServers).await?,
        teams,
        users: if staff {
            Some(count(ObjectTable::Users).await?)
        } else {
            None
        },
    }))
}
