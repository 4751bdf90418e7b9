//! Teams (`/api/organisations/{organisationId}/teams`) and their members.
//!
//! A team groups users of one organisation; TEAM keys, budgets and quotas hang off it. Members are
//! users of the same organisation with a team role (`MANAGER` or `MEMBER`).

use chrono::{DateTime, Utc};
use odock_core::{new_object_id, TeamRole};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::organisations::ensure_exists;
use super::policies::{check_optional_policies, check_policies};
use super::{
    conflict, ensure_in_org, exists_in_org, from_json_text, parse_column, required_text,
    to_json_text, touched, AdminError, JsonObject, Page, PageRequest, Scoped,
};
use odock_store::db::{from_ms, now_ms};

/// A team, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    /// The team's id.
    pub id: String,
    /// The organisation the team belongs to.
    pub organisation_id: String,
    /// Unique in the organisation.
    pub name: String,
    /// The team's rate-limit policy document (`{}`: no limits of its own).
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: JsonObject,
    /// When the team was created.
    pub created_at: DateTime<Utc>,
    /// When the team was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../teams`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTeam {
    /// A display name (trimmed, 1–200 characters; unique in the organisation).
    pub name: String,
    /// A rate-limit policy document (known keys only); default `{}`.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
}

/// `PATCH .../teams/{id}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamPatch {
    /// A new name (trimmed, 1–200 characters; unique in the organisation).
    #[serde(default)]
    pub name: Option<String>,
    /// Replaces the policy document.
    #[serde(default)]
    #[schema(value_type = odock_core::rate_limit::Policy)]
    pub policies: Option<JsonObject>,
}

/// A membership, as returned by the API (with the user's email and name for display).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamMember {
    /// The team.
    pub team_id: String,
    /// The member (a user of the team's organisation).
    pub user_id: String,
    /// The member's e-mail address.
    pub email: String,
    /// The member's display name; `null` when none.
    #[schema(required = true)]
    pub name: Option<String>,
    /// The member's role in the team: `MANAGER` or `MEMBER`.
    pub role: TeamRole,
    /// When the user joined the team.
    pub created_at: DateTime<Utc>,
    /// When the membership was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../teams/{id}/members`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTeamMember {
    /// The user to add (a user of this organisation, not yet a member).
    pub user_id: String,
    /// The role in the team: `MANAGER` or `MEMBER`.
    pub role: TeamRole,
}

/// `PATCH .../teams/{id}/members/{userId}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamMemberPatch {
    /// The new role in the team: `MANAGER` or `MEMBER`.
    pub role: TeamRole,
}

const COLUMNS: &str = "id, organisation_id, name, policies, created_at, updated_at";

const MEMBER_SELECT: &str =
    "SELECT m.team_id, m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at \
     FROM team_members m JOIN users u ON u.id = m.user_id";

const TEAMS: Scoped<Team> = Scoped {
    table: "teams",
    columns: COLUMNS,
    what: "team",
    decode,
    id_of: |row| &row.id,
};

fn decode(row: &DbRow) -> Result<Team, sqlx::Error> {
    Ok(Team {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        policies: from_json_text(row.try_get("policies")?)?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

fn decode_member(row: &DbRow) -> Result<TeamMember, sqlx::Error> {
    Ok(TeamMember {
        team_id: row.try_get("team_id")?,
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: parse_column(row.try_get::<&str, _>("role")?)?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

fn duplicate_name(name: &str) -> String {
    format!("a team named `{name}` already exists in this organisation")
}

/// Creates a team. Errors: 404 when the organisation does not exist; 400 on a bad name or
/// policy document; 409 when the name is taken.
pub async fn create(pool: &Db, organisation_id: &str, input: NewTeam) -> Result<Team, AdminError> {
    ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let policies = check_optional_policies(input.policies)?;
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO teams (id, organisation_id, name, policies, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(to_json_text(&policies)?)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_name(&name)))?;
    get(pool, organisation_id, &id).await
}

/// The team `id` of the organisation; 404 when it is not there.
pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<Team, AdminError> {
    TEAMS.get(pool, organisation_id, id).await
}

/// The organisation's teams; with `organisation_id = None`, every organisation's (SUPER_ADMIN).
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Team>, AdminError> {
    TEAMS.list(pool, organisation_id, &[], page).await
}

/// Applies `patch` (absent fields stay); 404 when the team is not in the organisation, 400 on
/// a bad name or policy document, 409 when the new name is taken.
pub async fn update(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: TeamPatch,
) -> Result<Team, AdminError> {
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(name) = patch.name {
        current.name = required_text("name", &name, 200)?;
    }
    if let Some(policies) = patch.policies {
        current.policies = check_policies(policies)?;
    }
    let result = sqlx::query(
        "UPDATE teams SET name = $1, policies = $2, updated_at = $3 WHERE id = $4 AND organisation_id = $5",
    )
    .bind(&current.name)
    .bind(to_json_text(&current.policies)?)
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_name(&current.name)))?;
    TEAMS.touched(&result)?;
    get(pool, organisation_id, id).await
}

/// Deletes the team with its memberships, TEAM keys, budgets and quotas (cascade).
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    TEAMS.delete(pool, organisation_id, id).await
}

/// 404 unless the team exists in the organisation: the guard of every member operation.
async fn ensure_team(pool: &Db, organisation_id: &str, team_id: &str) -> Result<(), AdminError> {
    ensure_in_org(pool, "teams", organisation_id, team_id, "team").await
}

/// Adds a user of the organisation to the team. Errors: 404 when the team is not in the
/// organisation; 400 when the user is not; 409 when they are already a member.
pub async fn add_member(
    pool: &Db,
    organisation_id: &str,
    team_id: &str,
    input: NewTeamMember,
) -> Result<TeamMember, AdminError> {
    ensure_team(pool, organisation_id, team_id).await?;
    if !exists_in_org(pool, "users", organisation_id, &input.user_id).await? {
        return Err(AdminError::field(
            "userId",
            "userId does not name a user of this organisation",
        ));
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(team_id)
    .bind(&input.user_id)
    .bind(input.role.as_str())
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .map_err(conflict("this user is already a member of the team"))?;
    get_member(pool, organisation_id, team_id, &input.user_id).await
}

/// The membership of `user_id` in the team; 404 when the team or the membership is missing.
pub async fn get_member(
    pool: &Db,
    organisation_id: &str,
    team_id: &str,
    user_id: &str,
) -> Result<TeamMember, AdminError> {
    ensure_team(pool, organisation_id, team_id).await?;
    let sql = format!("{MEMBER_SELECT} WHERE m.team_id = $1 AND m.user_id = $2");
    let row = sqlx::query(&sql)
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => Ok(decode_member(&row)?),
        None => Err(AdminError::NotFound("team member")),
    }
}

/// The team's members, ordered by user id.
pub async fn list_members(
    pool: &Db,
    organisation_id: &str,
    team_id: &str,
    page: &PageRequest,
) -> Result<Page<TeamMember>, AdminError> {
    ensure_team(pool, organisation_id, team_id).await?;
    let mut query = odock_store::db::SqlBuilder::new(MEMBER_SELECT);
    query.push(" WHERE m.team_id = ").push_bind(team_id);
    if let Some(cursor) = &page.cursor {
        query.push(" AND m.user_id > ").push_bind(cursor.as_str());
    }
    query
        .push(" ORDER BY m.user_id LIMIT ")
        .push_bind(i64::from(page.limit) + 1);
    let rows = query.query().fetch_all(pool).await?;
    let mut data = rows
        .iter()
        .map(decode_member)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if data.len() > page.limit as usize {
        data.truncate(page.limit as usize);
        data.last().map(|m| m.user_id.clone())
    } else {
        None
    };
    Ok(Page { data, next_cursor })
}

/// Changes a member's role; 404 when the team or the membership is missing.
pub async fn update_member(
    pool: &Db,
    organisation_id: &str,
    team_id: &str,
    user_id: &str,
    patch: TeamMemberPatch,
) -> Result<TeamMember, AdminError> {
    ensure_team(pool, organisation_id, team_id).await?;
    let result = sqlx::query(
        "UPDATE team_members SET role = $1, updated_at = $2 WHERE team_id = $3 AND user_id = $4",
    )
    .bind(patch.role.as_str())
    .bind(now_ms())
    .bind(team_id)
    .bind(user_id)
    .execute(pool)
    .await?;
    touched(&result, "team member")?;
    get_member(pool, organisation_id, team_id, user_id).await
}

/// Removes a user from the team; 404 when the team or the membership is missing.
pub async fn remove_member(
    pool: &Db,
    organisation_id: &str,
    team_id: &str,
    user_id: &str,
) -> Result<(), AdminError> {
    ensure_team(pool, organisation_id, team_id).await?;
    let result = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(pool)
        .await?;
    touched(&result, "team member")?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::services::test_support::{org, pool};

    /// Inserts a user of `organisation_id` (users have no repository yet) and returns its id.
    pub(crate) async fn user(pool: &Db, organisation_id: &str, email: &str) -> String {
        let id = new_object_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO users (id, organisation_id, email, name, role, status, created_at, updated_at) \
             VALUES ($1, $2, $3, 'Test', 'USER', 'ACTIVE', $4, $5)",
        )
        .bind(&id)
        .bind(organisation_id)
        .bind(email)
        .bind(now)
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        id
    }

    fn new(name: &str) -> NewTeam {
        NewTeam {
            name: name.into(),
            policies: None,
        }
    }

    #[tokio::test]
    async fn crud_scoping_and_members() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let team = create(&pool, &a, new("core")).await.unwrap();
        assert!(team.policies.is_empty());
        assert!(matches!(
            create(&pool, &a, new("core")).await,
            Err(AdminError::Conflict(_))
        ));
        // Names are unique per organisation only.
        create(&pool, &b, new("core")).await.unwrap();
        assert!(matches!(
            get(&pool, &b, &team.id).await,
            Err(AdminError::NotFound(_))
        ));

        let alice = user(&pool, &a, "alice@a.test").await;
        let bob = user(&pool, &b, "bob@b.test").await;
        let refused = add_member(
            &pool,
            &a,
            &team.id,
            NewTeamMember {
                user_id: bob,
                role: TeamRole::Member,
            },
        )
        .await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "userId")
        );
        let member = add_member(
            &pool,
            &a,
            &team.id,
            NewTeamMember {
                user_id: alice.clone(),
                role: TeamRole::Member,
            },
        )
        .await
        .unwrap();
        assert_eq!(member.email, "alice@a.test");
        let promoted = update_member(
            &pool,
            &a,
            &team.id,
            &alice,
            TeamMemberPatch {
                role: TeamRole::Manager,
            },
        )
        .await
        .unwrap();
        assert_eq!(promoted.role, TeamRole::Manager);
        let members = list_members(&pool, &a, &team.id, &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(members.data.len(), 1);
        remove_member(&pool, &a, &team.id, &alice).await.unwrap();
        assert!(matches!(
            remove_member(&pool, &a, &team.id, &alice).await,
            Err(AdminError::NotFound("team member"))
        ));
        delete(&pool, &a, &team.id).await.unwrap();
        assert!(matches!(
            list_members(&pool, &a, &team.id, &PageRequest::default()).await,
            Err(AdminError::NotFound("team"))
        ));
    }
}
