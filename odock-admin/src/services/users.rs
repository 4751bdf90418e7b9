//! Users (`/api/organisations/{organisationId}/users`, `/api/admin/users`): people who sign in to
//! the admin API with an email and a password.
//!
//! - A user belongs to one organisation (SUPER_ADMINs to none) and has a role (`ORG_ADMIN`, `MANAGER`,
//!   `USER`; `SUPER_ADMIN` only through the bootstrap) and a status: `PENDING` (created without a
//!   password, waiting for an invitation to be accepted or for an admin's approval), `ACTIVE` (may sign
//!   in), `REVOKED` (may not; their sessions end at once, their keys are untouched).
//! - Emails are unique across the installation and compared lower-cased.
//! - Deleting a user deletes, by cascade, their sessions, team memberships, USER keys (with those
//!   keys' grants and budgets/quotas) and USER-owned budgets and quotas; [`delete`] returns the ids of
//!   the deleted keys so the caller can invalidate them. Usage records keep the user id as history.
//! - The password hash never leaves this module's SQL: [`User`] has no such field.

use chrono::{DateTime, Utc};
use odock_core::{new_object_id, Role, UserStatus};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{
    conflict, list_page, parse_column, required_text, touched, AdminError, Page, PageRequest,
    Scoped,
};
use crate::auth::passwords::{hash_password, PasswordError};
use odock_store::db::{from_ms, now_ms, Db, DbRow};

/// A user, as returned by the API (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub id: String,
    /// `None` for SUPER_ADMINs, who belong to no organisation.
    #[schema(required = true)]
    pub organisation_id: Option<String>,
    /// The user's e-mail address (lower-cased; unique across the installation).
    pub email: String,
    /// The user's display name; `null` when none.
    #[schema(required = true)]
    pub name: Option<String>,
    /// `SUPER_ADMIN`, `ORG_ADMIN`, `MANAGER` or `USER`.
    pub role: Role,
    /// `PENDING` (cannot sign in yet), `ACTIVE` (may sign in) or `REVOKED` (locked out).
    pub status: UserStatus,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST .../users`. Created with a password → `ACTIVE`, without → `PENDING`, unless `status` says
/// otherwise.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    /// The e-mail address (trimmed, lower-cased; unique across the installation).
    pub email: String,
    /// A display name (trimmed, at most 200 characters); blank means none.
    #[serde(default)]
    pub name: Option<String>,
    /// `ORG_ADMIN`, `MANAGER` or `USER` (`SUPER_ADMIN` is refused).
    pub role: Role,
    /// An initial password (8 to 1024 characters); write-only.
    #[serde(default)]
    #[schema(write_only)]
    pub password: Option<String>,
    /// The initial status; default `ACTIVE` with a password, `PENDING` without.
    #[serde(default)]
    pub status: Option<UserStatus>,
}

/// `PATCH .../users/{id}`: absent fields stay unchanged.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPatch {
    /// A new e-mail address (trimmed, lower-cased; unique across the installation).
    #[serde(default)]
    pub email: Option<String>,
    /// A new display name (at most 200 characters); blank clears it.
    #[serde(default)]
    pub name: Option<String>,
    /// A new role: `ORG_ADMIN`, `MANAGER` or `USER`.
    #[serde(default)]
    pub role: Option<Role>,
    /// A new status; `REVOKED` ends the user's sessions.
    #[serde(default)]
    pub status: Option<UserStatus>,
    /// Sets a new password (an admin reset); the user's sessions end.
    #[serde(default)]
    #[schema(write_only)]
    pub password: Option<String>,
}

const COLUMNS: &str = "id, organisation_id, email, name, role, status, created_at, updated_at";

const USERS: Scoped<User> = Scoped {
    table: "users",
    columns: COLUMNS,
    what: "user",
    decode,
    id_of: |user| &user.id,
};

pub(crate) fn decode(row: &DbRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: parse_column(row.try_get::<&str, _>("role")?)?,
        status: parse_column(row.try_get::<&str, _>("status")?)?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

/// Ends every session of the user except `keep` (the one changing the password). Here rather than
/// in `auth::sessions`: ending them is part of revoking, resetting and deleting a user.
async fn end_sessions(pool: &Db, user_id: &str, keep: Option<&str>) -> Result<u64, sqlx::Error> {
    let result = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// Trims and lower-cases an email and checks its shape (one `@`, no spaces, at most 320 chars).
pub fn normalise_email(field: &str, email: &str) -> Result<String, AdminError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 320
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(email)
    } else {
        Err(AdminError::field(
            field,
            format!("{field} is not an email address"),
        ))
    }
}

/// A 400 on `password` for a password that breaks the rules.
pub(crate) fn password_hash(password: &str) -> Result<String, AdminError> {
    hash_password(password).map_err(|error| match error {
        PasswordError::TooShort | PasswordError::TooLong => {
            AdminError::field("password", error.to_string())
        }
        PasswordError::Hashing => AdminError::invalid(None, "the password could not be hashed"),
    })
}

fn organisation_role(role: Role) -> Result<Role, AdminError> {
    match role {
        Role::OrgAdmin | Role::Manager | Role::User => Ok(role),
        Role::SuperAdmin => Err(AdminError::field(
            "role",
            "role must be ORG_ADMIN, MANAGER or USER",
        )),
    }
}

fn clean_name(name: Option<String>) -> Result<Option<String>, AdminError> {
    name.filter(|n| !n.trim().is_empty())
        .map(|n| required_text("name", &n, 200))
        .transpose()
}

/// The 409 for a taken email: the same words whoever holds it, naming neither the address nor
/// an organisation. (Emails are unique across the installation, so a create still cannot succeed
/// for another organisation's user; invitations are the way in that reveals nothing, see
/// [`ensure_invitable_into`].)
fn duplicate_email(_email: &str) -> String {
    "a user with this email address already exists".to_owned()
}

/// Creates a user of the organisation.
pub async fn create(pool: &Db, organisation_id: &str, input: NewUser) -> Result<User, AdminError> {
    super::organisations::ensure_exists(pool, organisation_id).await?;
    let role = organisation_role(input.role)?;
    let email = normalise_email("email", &input.email)?;
    let name = clean_name(input.name)?;
    let hash = input.password.as_deref().map(password_hash).transpose()?;
    let status = input.status.unwrap_or(if hash.is_some() {
        UserStatus::Active
    } else {
        UserStatus::Pending
    });
    insert(
        pool,
        Some(organisation_id),
        &email,
        name.as_deref(),
        role,
        status,
        hash.as_deref(),
    )
    .await
}

async fn insert(
    pool: &Db,
    organisation_id: Option<&str>,
    email: &str,
    name: Option<&str>,
    role: Role,
    status: UserStatus,
    password_hash: Option<&str>,
) -> Result<User, AdminError> {
    let id = new_object_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, organisation_id, email, name, role, status, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(email)
    .bind(name)
    .bind(role.as_str())
    .bind(status.as_str())
    .bind(password_hash)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_email(email)))?;
    get_by_id(pool, &id).await
}

/// The user with this id in the organisation.
pub async fn get(pool: &Db, organisation_id: &str, id: &str) -> Result<User, AdminError> {
    USERS.get(pool, organisation_id, id).await
}

/// The user with this id, whatever its organisation (the signed-in user, SUPER_ADMIN views).
pub async fn get_by_id(pool: &Db, id: &str) -> Result<User, AdminError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    match row {
        Some(row) => Ok(decode(&row)?),
        None => Err(AdminError::NotFound("user")),
    }
}

/// The organisation's users; with `None`, every user of the installation (SUPER_ADMIN).
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<User>, AdminError> {
    match organisation_id {
        Some(_) => USERS.list(pool, organisation_id, &[], page).await,
        None => {
            let select = format!("SELECT {COLUMNS} FROM users");
            list_page(pool, &select, &[], page, decode, |u| &u.id).await
        }
    }
}

/// Applies a patch. Revoking the user, or setting a password, ends their sessions.
pub async fn update(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    patch: UserPatch,
) -> Result<User, AdminError> {
    let mut current = get(pool, organisation_id, id).await?;
    if let Some(email) = patch.email {
        current.email = normalise_email("email", &email)?;
    }
    if let Some(name) = patch.name {
        current.name = clean_name(Some(name))?;
    }
    if let Some(role) = patch.role {
        current.role = organisation_role(role)?;
    }
    let revoked = patch.status == Some(UserStatus::Revoked);
    if let Some(status) = patch.status {
        current.status = status;
    }
    let hash = patch.password.as_deref().map(password_hash).transpose()?;
    let result = sqlx::query(
        "UPDATE users SET email = $1, name = $2, role = $3, status = $4, \
         password_hash = COALESCE($5, password_hash), updated_at = $6 \
         WHERE id = $7 AND organisation_id = $8",
    )
    .bind(&current.email)
    .bind(&current.name)
    .bind(current.role.as_str())
    .bind(current.status.as_str())
    .bind(hash.as_deref())
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await
    .map_err(conflict(duplicate_email(&current.email)))?;
    USERS.touched(&result)?;
    if revoked || hash.is_some() {
        end_sessions(pool, id, None).await?;
    }
    get(pool, organisation_id, id).await
}

/// Moves a `PENDING` user to `ACTIVE` (approve) or `REVOKED` (decline); 409 for any other status.
pub async fn decide_pending(
    pool: &Db,
    organisation_id: &str,
    id: &str,
    approve: bool,
) -> Result<User, AdminError> {
    let to = if approve {
        UserStatus::Active
    } else {
        UserStatus::Revoked
    };
    let result = sqlx::query(
        "UPDATE users SET status = $1, updated_at = $2 \
         WHERE id = $3 AND organisation_id = $4 AND status = 'PENDING'",
    )
    .bind(to.as_str())
    .bind(now_ms())
    .bind(id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    if result.rows_affected() == 0 {
        // Tell "no such user" (404) from "not pending" (409).
        let user = get(pool, organisation_id, id).await?;
        return Err(AdminError::Conflict(format!(
            "the user is {}, not PENDING",
            user.status
        )));
    }
    if !approve {
        end_sessions(pool, id, None).await?;
    }
    get(pool, organisation_id, id).await
}

/// Deletes the user (see the module doc for the cascade) and returns the ids of the USER keys that
/// went with them.
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<Vec<String>, AdminError> {
    get(pool, organisation_id, id).await?;
    let keys = sqlx::query("SELECT id FROM api_keys WHERE user_id = $1 AND organisation_id = $2")
        .bind(id)
        .bind(organisation_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    USERS.delete(pool, organisation_id, id).await?;
    Ok(keys)
}

/// A user and their password hash, for checking a sign-in.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// The user's password hash; `None` when no password is set.
    pub password_hash: Option<String>,
}

/// The user signing in with this email (any status; the caller decides).
pub async fn credentials(pool: &Db, email: &str) -> Result<Option<Credentials>, AdminError> {
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE email = $1");
    let row = sqlx::query(&sql)
        .bind(email.trim().to_lowercase())
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        Ok(Credentials {
            user: decode(&row)?,
            password_hash: row.try_get("password_hash")?,
        })
    })
    .transpose()
}

/// The stored password hash of a user.
pub async fn password_hash_of(pool: &Db, id: &str) -> Result<Option<String>, AdminError> {
    let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => Ok(row.try_get("password_hash")?),
        None => Err(AdminError::NotFound("user")),
    }
}

/// Sets a user's password (already checked by the caller) and ends their other sessions.
pub async fn change_password(
    pool: &Db,
    id: &str,
    new_password: &str,
    keep_session: Option<&str>,
) -> Result<(), AdminError> {
    let hash = password_hash(new_password)?;
    let result = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(&hash)
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await?;
    touched(&result, "user")?;
    end_sessions(pool, id, keep_session).await?;
    Ok(())
}

/// Creates or activates the user an invitation names, with the invited role, name and password: an
/// existing `PENDING` user of the organisation is activated; anyone else with that email is a 409.
pub(crate) async fn activate_invited(
    pool: &Db,
    organisation_id: &str,
    email: &str,
    name: Option<&str>,
    role: Role,
    password_hash: &str,
) -> Result<User, AdminError> {
    let existing = credentials(pool, email).await?;
    match existing {
        Some(found)
            if found.user.organisation_id.as_deref() == Some(organisation_id)
                && found.user.status == UserStatus::Pending =>
        {
            let result = sqlx::query(
                "UPDATE users SET name = COALESCE($1, name), role = $2, status = 'ACTIVE', \
                 password_hash = $3, updated_at = $4 WHERE id = $5 AND status = 'PENDING'",
            )
            .bind(name)
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now_ms())
            .bind(&found.user.id)
            .execute(pool)
            .await?;
            touched(&result, "user")?;
            get_by_id(pool, &found.user.id).await
        }
        Some(_) => Err(AdminError::Conflict(duplicate_email(email))),
        None => {
            insert(
                pool,
                Some(organisation_id),
                email,
                name,
                role,
                UserStatus::Active,
                Some(password_hash),
            )
            .await
        }
    }
}

/// Whether an email may still be invited into the organisation: free, or a `PENDING` user of it.
pub(crate) async fn ensure_invitable(
    pool: &Db,
    organisation_id: Option<&str>,
    email: &str,
) -> Result<(), AdminError> {
    match credentials(pool, email).await? {
        None => Ok(()),
        Some(found)
            if organisation_id.is_some()
                && found.user.organisation_id.as_deref() == organisation_id
                && found.user.status == UserStatus::Pending =>
        {
            Ok(())
        }
        Some(_) => Err(AdminError::Conflict(duplicate_email(email))),
    }
}

/// Whether an organisation may invite `email`: only a user of that same organisation who is not
/// `PENDING` makes it a 409. A user of another organisation is not revealed: the invitation is
/// created like any other, and accepting it fails for that person alone (who knows their account).
pub(crate) async fn ensure_invitable_into(
    pool: &Db,
    organisation_id: &str,
    email: &str,
) -> Result<(), AdminError> {
    match credentials(pool, email).await? {
        Some(found)
            if found.user.organisation_id.as_deref() == Some(organisation_id)
                && found.user.status != UserStatus::Pending =>
        {
            Err(AdminError::Conflict(duplicate_email(email)))
        }
        _ => Ok(()),
    }
}

/// What [`bootstrap_super_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The first SUPER_ADMIN was created with this id.
    Created(String),
    /// Users already exist; nothing was done.
    UsersExist,
}

/// Creates the first SUPER_ADMIN (`ODOCK_BOOTSTRAP_ADMIN_EMAIL` / `_PASSWORD`) when the installation
/// has no user at all; does nothing otherwise, so it is safe to call at every start.
pub async fn bootstrap_super_admin(
    pool: &Db,
    email: &str,
    password: &str,
) -> Result<Bootstrap, AdminError> {
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(pool)
        .await?
        .try_get("n")?;
    if count > 0 {
        return Ok(Bootstrap::UsersExist);
    }
    let email = normalise_email("ODOCK_BOOTSTRAP_ADMIN_EMAIL", email)?;
    let hash = password_hash(password).map_err(|_| {
        AdminError::field(
            "ODOCK_BOOTSTRAP_ADMIN_PASSWORD",
            "the bootstrap password must be 8 to 1024 characters",
        )
    })?;
    let user = insert(
        pool,
        None,
        &email,
        Some("Administrator"),
        Role::SuperAdmin,
        UserStatus::Active,
        Some(&hash),
    )
    .await?;
    Ok(Bootstrap::Created(user.id))
}
