//! Invitations (`/api/organisations/{organisationId}/invitations`, `/api/admin/invitations`, and the
//! public `/api/invitations/{token}`).
//!
//! - `JOIN_ORGANISATION` invites an email into an organisation with a role; `CREATE_ORGANISATION`
//!   (sent by a SUPER_ADMIN) creates a new organisation on acceptance, its first ORG_ADMIN being the
//!   invitee.
//! - The token (`odi_` + 256 random bits) is returned once, by create and resend, and stored only as
//!   its SHA-256. There is no mail sender: whoever creates the invitation passes the link on.
//! - An invitation is valid for 72 hours ([`INVITATION_TTL_MS`]). Resend issues a new token and a
//!   new expiry (the old token dies); revoke kills it; accepting uses it up. The stored status is
//!   `PENDING`, `ACCEPTED` or `REVOKED`; a pending invitation past its expiry reads as `EXPIRED`.
//! - Times are passed in by the caller, so expiry is testable with a controlled clock.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use odock_core::{new_object_id, InvitationStatus, InvitationType, Role};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::organisations::{self, NewOrganisation};
use super::users::{self, normalise_email, password_hash, User};
use super::{list_page, parse_column, required_text, AdminError, Page, PageRequest};
use odock_store::db::{from_ms, Db, DbRow};
use odock_store::keys::hash_token;

/// How long an invitation (or a resent one) stays valid: 72 hours.
pub const INVITATION_TTL_MS: i64 = 72 * 60 * 60 * 1000;

/// Every invitation token starts with this.
pub const INVITATION_TOKEN_PREFIX: &str = "odi_";

/// An invitation, as returned by the admin API (never its token, except in [`IssuedInvitation`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    /// The invitation's id.
    pub id: String,
    /// `None` for `CREATE_ORGANISATION` invitations.
    #[schema(required = true)]
    pub organisation_id: Option<String>,
    /// The organisation a `CREATE_ORGANISATION` invitation creates.
    #[schema(required = true)]
    pub organisation_name: Option<String>,
    /// The invitee's e-mail address (lower-cased).
    pub email: String,
    /// The role the invitee gets on acceptance (`ORG_ADMIN` for `CREATE_ORGANISATION`).
    pub role: Role,
    /// `JOIN_ORGANISATION` or `CREATE_ORGANISATION`.
    #[serde(rename = "type")]
    pub kind: InvitationType,
    /// `PENDING`, `ACCEPTED`, `REVOKED`, or `EXPIRED` for a pending one past `expiresAt`.
    pub status: InvitationStatus,
    /// The user who sent the invitation; `null` when sent with the admin token.
    #[schema(required = true)]
    pub invited_by: Option<String>,
    /// When the token stops working (72 hours after it was issued).
    pub expires_at: DateTime<Utc>,
    /// When the invitation was accepted; `null` until then.
    #[schema(required = true)]
    pub accepted_at: Option<DateTime<Utc>>,
    /// When the invitation was created.
    pub created_at: DateTime<Utc>,
    /// When the invitation was last changed (resent, revoked, accepted).
    pub updated_at: DateTime<Utc>,
}

/// The create and resend responses: the invitation plus its token and accept link, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedInvitation {
    /// The invitation (its fields are flattened into this one).
    #[serde(flatten)]
    pub invitation: Invitation,
    /// The invitation token, shown only in this response.
    pub token: String,
    /// The web UI's accept page for this token (a path; prefix it with the server's address).
    pub url: String,
    /// Whether the invitation was handed to the mailer (SMTP configured).
    #[serde(default)]
    #[schema(required = true)]
    pub emailed: bool,
}

/// `POST /api/organisations/{organisationId}/invitations`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewInvitation {
    /// The invitee's e-mail address (trimmed and lower-cased).
    pub email: String,
    /// The role the invitee gets: `ORG_ADMIN`, `MANAGER` or `USER`.
    pub role: Role,
    /// Only `JOIN_ORGANISATION` here; `CREATE_ORGANISATION` goes through `/api/admin/invitations`.
    #[serde(default, rename = "type")]
    pub kind: Option<InvitationType>,
}

/// `POST /api/admin/invitations`: invite someone to create (and administer) a new organisation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrganisationInvitation {
    /// The invitee's e-mail address (trimmed and lower-cased).
    pub email: String,
    /// The name of the organisation created on acceptance (trimmed, 1–200 characters).
    pub organisation_name: String,
}

/// What the public accept page shows about a token.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicInvitation {
    /// The invitee's e-mail address.
    pub email: String,
    /// The role the invitee gets.
    pub role: Role,
    /// `JOIN_ORGANISATION` or `CREATE_ORGANISATION`.
    #[serde(rename = "type")]
    pub kind: InvitationType,
    /// `PENDING`, `ACCEPTED`, `REVOKED`, or `EXPIRED` for a pending one past `expiresAt`.
    pub status: InvitationStatus,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// The organisation joined, or the one a `CREATE_ORGANISATION` invitation creates.
    #[schema(required = true)]
    pub organisation_name: Option<String>,
}

/// `POST /api/invitations/{token}/accept`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The new user's display name (trimmed, 1–200 characters).
    pub name: String,
    /// The new user's password (8 to 1024 characters); write-only.
    #[schema(write_only)]
    pub password: String,
}

/// Why a token cannot be read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    /// No invitation has this token (404).
    #[error("invitation not found")]
    Unknown,
    /// 410 `invitation_expired`.
    #[error("the invitation has expired")]
    Expired,
    /// 410 `invitation_revoked`.
    #[error("the invitation was revoked")]
    Revoked,
    /// 410 `invitation_used`.
    #[error("the invitation was already used")]
    Used,
    /// The token is usable but the write failed (400, 404, 409 or 500, as [`AdminError`]).
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl From<sqlx::Error> for InvitationError {
    fn from(error: sqlx::Error) -> Self {
        InvitationError::Admin(error.into())
    }
}

const COLUMNS: &str = "i.id, i.organisation_id, COALESCE(o.name, i.organisation_name) AS organisation_name, \
     i.email, i.role, i.type, i.status, i.invited_by, i.expires_at, i.accepted_at, i.created_at, i.updated_at";
const FROM: &str =
    "FROM organisation_invitations i LEFT JOIN organisations o ON o.id = i.organisation_id";

/// Decodes a row, reading a pending invitation past `now_ms` as `EXPIRED`.
fn decode_at(row: &DbRow, now_ms: i64) -> Result<Invitation, sqlx::Error> {
    let expires_at: i64 = row.try_get("expires_at")?;
    let mut status: InvitationStatus = parse_column(row.try_get::<&str, _>("status")?)?;
    if status == InvitationStatus::Pending && expires_at <= now_ms {
        status = InvitationStatus::Expired;
    }
    Ok(Invitation {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        organisation_name: row.try_get("organisation_name")?,
        email: row.try_get("email")?,
        role: parse_column(row.try_get::<&str, _>("role")?)?,
        kind: parse_column(row.try_get::<&str, _>("type")?)?,
        status,
        invited_by: row.try_get("invited_by")?,
        expires_at: from_ms(expires_at),
        accepted_at: row.try_get::<Option<i64>, _>("accepted_at")?.map(from_ms),
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{INVITATION_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn issued(invitation: Invitation, token: String) -> IssuedInvitation {
    IssuedInvitation {
        url: format!("/invitations/{token}"),
        invitation,
        token,
        emailed: false,
    }
}

/// Invites `input.email` into the organisation.
pub async fn create(
    pool: &Db,
    organisation_id: &str,
    input: NewInvitation,
    invited_by: Option<&str>,
    now_ms: i64,
) -> Result<IssuedInvitation, AdminError> {
    organisations::ensure_exists(pool, organisation_id).await?;
    if input.kind == Some(InvitationType::CreateOrganisation) {
        return Err(AdminError::field(
            "type",
            "CREATE_ORGANISATION invitations are sent with POST /api/admin/invitations",
        ));
    }
    if input.role == Role::SuperAdmin {
        return Err(AdminError::field(
            "role",
            "role must be ORG_ADMIN, MANAGER or USER",
        ));
    }
    let email = normalise_email("email", &input.email)?;
    users::ensure_invitable_into(pool, organisation_id, &email).await?;
    ensure_no_pending(pool, Some(organisation_id), &email, now_ms).await?;
    insert(
        pool,
        Some(organisation_id),
        None,
        &email,
        input.role,
        InvitationType::JoinOrganisation,
        invited_by,
        now_ms,
    )
    .await
}

/// Invites `input.email` to create a new organisation named `input.organisation_name`.
pub async fn create_for_new_organisation(
    pool: &Db,
    input: NewOrganisationInvitation,
    invited_by: Option<&str>,
    now_ms: i64,
) -> Result<IssuedInvitation, AdminError> {
    let email = normalise_email("email", &input.email)?;
    let name = required_text("organisationName", &input.organisation_name, 200)?;
    users::ensure_invitable(pool, None, &email).await?;
    ensure_no_pending(pool, None, &email, now_ms).await?;
    insert(
        pool,
        None,
        Some(&name),
        &email,
        Role::OrgAdmin,
        InvitationType::CreateOrganisation,
        invited_by,
        now_ms,
    )
    .await
}

/// One live invitation per email and organisation: a second one would leave two valid links.
async fn ensure_no_pending(
    pool: &Db,
    organisation_id: Option<&str>,
    email: &str,
    now_ms: i64,
) -> Result<(), AdminError> {
    let found = sqlx::query(
        "SELECT 1 FROM organisation_invitations WHERE email = $1 AND status = 'PENDING' \
         AND expires_at > $2 AND COALESCE(organisation_id, '') = $3",
    )
    .bind(email)
    .bind(now_ms)
    .bind(organisation_id.unwrap_or(""))
    .fetch_optional(pool)
    .await?;
    match found {
        Some(_) => Err(AdminError::Conflict(
            "a pending invitation for this email address already exists; resend it instead"
                .to_owned(),
        )),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    pool: &Db,
    organisation_id: Option<&str>,
    organisation_name: Option<&str>,
    email: &str,
    role: Role,
    kind: InvitationType,
    invited_by: Option<&str>,
    now_ms: i64,
) -> Result<IssuedInvitation, AdminError> {
    let id = new_object_id();
    let token = new_token();
    sqlx::query(
        "INSERT INTO organisation_invitations (id, organisation_id, organisation_name, email, role, type, \
         status, token_hash, invited_by, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7, $8, $9, $10, $10)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(organisation_name)
    .bind(email)
    .bind(role.as_str())
    .bind(kind.as_str())
    .bind(hash_token(&token))
    .bind(invited_by)
    .bind(now_ms + INVITATION_TTL_MS)
    .bind(now_ms)
    .execute(pool)
    .await?;
    let invitation = get_by_id(pool, &id, now_ms).await?;
    Ok(issued(invitation, token))
}

async fn get_by_id(pool: &Db, id: &str, now_ms: i64) -> Result<Invitation, AdminError> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE i.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    match row {
        Some(row) => Ok(decode_at(&row, now_ms)?),
        None => Err(AdminError::NotFound("invitation")),
    }
}

/// The invitation with this id; `organisation_id = None` reads the `CREATE_ORGANISATION` ones.
pub async fn get(
    pool: &Db,
    organisation_id: Option<&str>,
    id: &str,
    now_ms: i64,
) -> Result<Invitation, AdminError> {
    let invitation = get_by_id(pool, id, now_ms).await?;
    if invitation.organisation_id.as_deref() == organisation_id {
        Ok(invitation)
    } else {
        Err(AdminError::NotFound("invitation"))
    }
}

/// The organisation's invitations (every invitation with `None`), oldest first.
pub async fn list(
    pool: &Db,
    organisation_id: Option<&str>,
    page: &PageRequest,
    now_ms: i64,
) -> Result<Page<Invitation>, AdminError> {
    if let Some(org) = organisation_id {
        organisations::ensure_exists(pool, org).await?;
    }
    // list_page filters on bare column names: wrap the join so they resolve.
    let select = format!("SELECT * FROM (SELECT {COLUMNS} {FROM}) AS invitations");
    let page = list_page(
        pool,
        &select,
        &[("organisation_id", organisation_id)],
        page,
        |row| decode_at(row, 0),
        |i| &i.id,
    )
    .await?;
    // `decode_at` cannot capture `now_ms` (it is a fn pointer): apply expiry here.
    Ok(Page {
        data: page
            .data
            .into_iter()
            .map(|mut i| {
                if i.status == InvitationStatus::Pending && i.expires_at <= from_ms(now_ms) {
                    i.status = InvitationStatus::Expired;
                }
                i
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// Issues a new token and a new 72-hour expiry for a pending or expired invitation; the old token
/// stops working. 409 for an accepted or revoked one.
pub async fn resend(
    pool: &Db,
    organisation_id: Option<&str>,
    id: &str,
    now_ms: i64,
) -> Result<IssuedInvitation, AdminError> {
    let current = get(pool, organisation_id, id, now_ms).await?;
    let token = new_token();
    let result = sqlx::query(
        "UPDATE organisation_invitations SET token_hash = $1, expires_at = $2, updated_at = $3 \
         WHERE id = $4 AND status = 'PENDING'",
    )
    .bind(hash_token(&token))
    .bind(now_ms + INVITATION_TTL_MS)
    .bind(now_ms)
    .bind(id)
    .execute(pool)
    .await?;
    if result.rows_affected() == 0 {
        return Err(AdminError::Conflict(format!(
            "the invitation is {}; only pending or expired invitations can be resent",
            current.status
        )));
    }
    Ok(issued(get_by_id(pool, id, now_ms).await?, token))
}

/// Revokes a pending (or expired) invitation: its link dies. 409 for an accepted or revoked one.
pub async fn revoke(
    pool: &Db,
    organisation_id: Option<&str>,
    id: &str,
    now_ms: i64,
) -> Result<Invitation, AdminError> {
    let current = get(pool, organisation_id, id, now_ms).await?;
    let result = sqlx::query(
        "UPDATE organisation_invitations SET status = 'REVOKED', updated_at = $1 \
         WHERE id = $2 AND status = 'PENDING'",
    )
    .bind(now_ms)
    .bind(id)
    .execute(pool)
    .await?;
    if result.rows_affected() == 0 {
        return Err(AdminError::Conflict(format!(
            "the invitation is {}; only pending invitations can be revoked",
            current.status
        )));
    }
    get_by_id(pool, id, now_ms).await
}

/// The invitation a token names, if it can still be accepted.
async fn usable(pool: &Db, token: &str, now_ms: i64) -> Result<Invitation, InvitationError> {
    if !token.starts_with(INVITATION_TOKEN_PREFIX) {
        return Err(InvitationError::Unknown);
    }
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE i.token_hash = $1");
    let row = sqlx::query(&sql)
        .bind(hash_token(token))
        .fetch_optional(pool)
        .await?;
    let invitation = match row {
        Some(row) => decode_at(&row, now_ms)?,
        None => return Err(InvitationError::Unknown),
    };
    match invitation.status {
        InvitationStatus::Pending => Ok(invitation),
        InvitationStatus::Expired => Err(InvitationError::Expired),
        InvitationStatus::Revoked => Err(InvitationError::Revoked),
        InvitationStatus::Accepted => Err(InvitationError::Used),
    }
}

/// `GET /api/invitations/{token}`.
pub async fn lookup(
    pool: &Db,
    token: &str,
    now_ms: i64,
) -> Result<PublicInvitation, InvitationError> {
    let invitation = usable(pool, token, now_ms).await?;
    Ok(PublicInvitation {
        email: invitation.email,
        role: invitation.role,
        kind: invitation.kind,
        status: invitation.status,
        expires_at: invitation.expires_at,
        organisation_name: invitation.organisation_name,
    })
}

/// `POST /api/invitations/{token}/accept`: uses the token up and returns the active user (with the
/// invited role), creating their organisation first for a `CREATE_ORGANISATION` invitation.
pub async fn accept(
    pool: &Db,
    token: &str,
    input: AcceptInvitation,
    now_ms: i64,
) -> Result<User, InvitationError> {
    let invitation = usable(pool, token, now_ms).await?;
    let name = required_text("name", &input.name, 200)?;
    let hash = password_hash(&input.password)?;
    users::ensure_invitable(
        pool,
        invitation.organisation_id.as_deref(),
        &invitation.email,
    )
    .await?;
    // Claim the token atomically: of two concurrent accepts, one wins and the other reads "used".
    let claimed = sqlx::query(
        "UPDATE organisation_invitations SET status = 'ACCEPTED', accepted_at = $1, updated_at = $1 \
         WHERE id = $2 AND status = 'PENDING' AND expires_at > $1",
    )
    .bind(now_ms)
    .bind(&invitation.id)
    .execute(pool)
    .await?;
    if claimed.rows_affected() == 0 {
        return Err(InvitationError::Used);
    }
    match activate(pool, &invitation, &name, &hash).await {
        Ok(user) => Ok(user),
        Err(error) => {
            // Hand the token back so the invitee can retry after the conflict is resolved.
            sqlx::query(
                "UPDATE organisation_invitations SET status = 'PENDING', accepted_at = NULL WHERE id = $1",
            )
            .bind(&invitation.id)
            .execute(pool)
            .await?;
            Err(error.into())
        }
    }
}

async fn activate(
    pool: &Db,
    invitation: &Invitation,
    name: &str,
    hash: &str,
) -> Result<User, AdminError> {
    let organisation_id = match (&invitation.kind, &invitation.organisation_id) {
        (InvitationType::JoinOrganisation, Some(org)) => org.clone(),
        _ => {
            let created = organisations::create(
                pool,
                NewOrganisation {
                    name: invitation
                        .organisation_name
                        .clone()
                        .unwrap_or_else(|| format!("{name}'s organisation")),
                    slug: None,
                    contact: Some(invitation.email.clone()),
                },
            )
            .await?;
            sqlx::query("UPDATE organisation_invitations SET organisation_id = $1 WHERE id = $2")
                .bind(&created.id)
                .bind(&invitation.id)
                .execute(pool)
                .await?;
            created.id
        }
    };
    users::activate_invited(
        pool,
        &organisation_id,
        &invitation.email,
        Some(name),
        invitation.role,
        hash,
    )
    .await
}
