//! The facts the admin API's authorisation layer decides on: who manages which team, who owns a
//! key, a budget, a quota or a usage record. Each lookup is scoped to one organisation and answers
//! `None` for an object of another organisation, exactly like a missing one.

use odock_core::{ApiKeyType, OwnerType, TeamRole};
use sqlx::Row;

use crate::services::parse_column;
use odock_store::db::Db;

/// The teams a user belongs to, with their team role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    /// The teams the user is a team MANAGER of.
    pub managed: Vec<String>,
    /// The teams the user is a plain member of.
    pub member_of: Vec<String>,
}

impl Memberships {
    /// Whether the user is a team MANAGER of `team_id`.
    pub fn manages(&self, team_id: &str) -> bool {
        self.managed.iter().any(|t| t == team_id)
    }

    /// Member in any role.
    pub fn belongs_to(&self, team_id: &str) -> bool {
        self.manages(team_id) || self.member_of.iter().any(|t| t == team_id)
    }
}

/// Every team membership of the user.
pub async fn memberships(pool: &Db, user_id: &str) -> Result<Memberships, sqlx::Error> {
    let rows =
        sqlx::query("SELECT team_id, role FROM team_members WHERE user_id = $1 ORDER BY team_id")
            .bind(user_id)
            .fetch_all(pool)
            .await?;
    let mut memberships = Memberships::default();
    for row in rows {
        let team: String = row.try_get("team_id")?;
        match parse_column::<TeamRole>(row.try_get::<&str, _>("role")?)? {
            TeamRole::Manager => memberships.managed.push(team),
            TeamRole::Member => memberships.member_of.push(team),
        }
    }
    Ok(memberships)
}

/// Whether the team exists in the organisation.
pub async fn team_exists(
    pool: &Db,
    organisation_id: &str,
    team_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM teams WHERE id = $1 AND organisation_id = $2")
            .bind(team_id)
            .bind(organisation_id)
            .fetch_optional(pool)
            .await?
            .is_some(),
    )
}

/// Whether the user exists in the organisation.
pub async fn user_exists(
    pool: &Db,
    organisation_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM users WHERE id = $1 AND organisation_id = $2")
            .bind(user_id)
            .bind(organisation_id)
            .fetch_optional(pool)
            .await?
            .is_some(),
    )
}

/// Whom an API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// TEAM or USER key.
    pub key_type: ApiKeyType,
    /// The owning team (TEAM keys).
    pub team_id: Option<String>,
    /// The owning user (USER keys).
    pub user_id: Option<String>,
}

/// The owner of API key `key_id` of the organisation; `None` if there is none.
pub async fn api_key_owner(
    pool: &Db,
    organisation_id: &str,
    key_id: &str,
) -> Result<Option<KeyOwner>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT type, team_id, user_id FROM api_keys WHERE id = $1 AND organisation_id = $2",
    )
    .bind(key_id)
    .bind(organisation_id)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(KeyOwner {
            key_type: parse_column(row.try_get::<&str, _>("type")?)?,
            team_id: row.try_get("team_id")?,
            user_id: row.try_get("user_id")?,
        })
    })
    .transpose()
}

/// Whom a budget or quota belongs to; `key` is the owning key's owner for `APIKEY` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOwner {
    /// ORG, TEAM, USER or APIKEY.
    pub owner_type: OwnerType,
    /// The owning team (TEAM rules).
    pub team_id: Option<String>,
    /// The owning user (USER rules).
    pub user_id: Option<String>,
    /// The owning key's owner (APIKEY rules).
    pub key: Option<KeyOwner>,
}

/// The two tables whose rows are owned rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleTable {
    /// The `budgets` table.
    Budgets,
    /// The `quotas` table.
    Quotas,
}

impl RuleTable {
    const fn name(self) -> &'static str {
        match self {
            RuleTable::Budgets => "budgets",
            RuleTable::Quotas => "quotas",
        }
    }
}

/// The owner of rule `id` in `table` of the organisation; `None` if there is none.
pub async fn rule_owner(
    pool: &Db,
    table: RuleTable,
    organisation_id: &str,
    id: &str,
) -> Result<Option<RuleOwner>, sqlx::Error> {
    let sql = format!(
        "SELECT owner_type, team_id, user_id, api_key_id FROM {} WHERE id = $1 AND organisation_id = $2",
        table.name()
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(organisation_id)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let key_id: Option<String> = row.try_get("api_key_id")?;
    let key = match key_id {
        Some(key_id) => api_key_owner(pool, organisation_id, &key_id).await?,
        None => None,
    };
    Ok(Some(RuleOwner {
        owner_type: parse_column(row.try_get::<&str, _>("owner_type")?)?,
        team_id: row.try_get("team_id")?,
        user_id: row.try_get("user_id")?,
        key,
    }))
}

/// The team and user a usage record is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOwner {
    /// The team the record is attributed to, if any.
    pub team_id: Option<String>,
    /// The user the record is attributed to, if any.
    pub user_id: Option<String>,
}

/// The owner of usage record `id` of the organisation; `None` if there is none.
pub async fn usage_record_owner(
    pool: &Db,
    organisation_id: &str,
    id: &str,
) -> Result<Option<RecordOwner>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT team_id, user_id FROM usage_records WHERE id = $1 AND organisation_id = $2",
    )
    .bind(id)
    .bind(organisation_id)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(RecordOwner {
            team_id: row.try_get("team_id")?,
            user_id: row.try_get("user_id")?,
        })
    })
    .transpose()
}
