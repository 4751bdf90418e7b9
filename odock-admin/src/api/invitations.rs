//! Invitations: managed under `/api/organisations/{organisationId}/invitations` (JOIN_ORGANISATION)
//! and `/api/admin/invitations` (CREATE_ORGANISATION, SUPER_ADMIN), read and accepted by the invitee
//! at the public `/api/invitations/{token}`.
//!
//! Create and resend return the token and the accept link once. When the server has a mailer
//! ([`InvitationMailer`], SMTP configured) they also e-mail the link to the invitee (`emailed:
//! true`); without one the inviter passes the link on.

use std::sync::Arc;

use crate::services::invitations::{
    self, AcceptInvitation, Invitation, InvitationError, IssuedInvitation, NewInvitation,
    NewOrganisationInvitation, PublicInvitation,
};
use crate::services::Page;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{StatusCode, Uri};
use serde_json::json;

use super::authz::AdminPrincipal;
use super::error::ApiError;
use super::extract::{AdminJson, AdminListParams, AdminQuery, ListParams};
use super::session::{request_over_https, start_session, AuthSettings};
use super::AdminState;
use crate::api::forwarded::ForwardedBy;

/// The public routes' refusals: 404 for an unknown token, 410 with a specific code for a dead one,
/// the admin API's errors otherwise.
#[derive(Debug)]
pub enum InvitationRefusal {
    /// 410 with `invitation_expired`, `invitation_revoked` or `invitation_used` (404 if unknown).
    Token(InvitationError),
    /// Any other admin API error.
    Api(ApiError),
}

impl From<InvitationError> for InvitationRefusal {
    fn from(error: InvitationError) -> Self {
        match error {
            InvitationError::Admin(error) => InvitationRefusal::Api(error.into()),
            other => InvitationRefusal::Token(other),
        }
    }
}

impl From<ApiError> for InvitationRefusal {
    fn from(error: ApiError) -> Self {
        InvitationRefusal::Api(error)
    }
}

impl IntoResponse for InvitationRefusal {
    fn into_response(self) -> Response {
        let error = match self {
            InvitationRefusal::Api(error) => return error.into_response(),
            InvitationRefusal::Token(error) => error,
        };
        let code = match &error {
            InvitationError::Unknown | InvitationError::Admin(_) => {
                return ApiError::NotFound("invitation not found".into()).into_response()
            }
            InvitationError::Expired => "invitation_expired",
            InvitationError::Revoked => "invitation_revoked",
            InvitationError::Used => "invitation_used",
        };
        let body = json!({"error": {"code": code, "message": error.to_string(), "type": "invalid_request_error"}});
        (StatusCode::GONE, Json(body)).into_response()
    }
}

/// Sends invitation e-mail. Must not block: implementations queue the message and return.
pub trait InvitationMailer: Send + Sync + 'static {
    /// Queues the e-mail carrying `invitation`'s link.
    fn send_invitation(&self, invitation: &IssuedInvitation);
}

/// The mailer the server installed (an `Extension<Mailer>` on the admin router), if any.
pub type Mailer = Arc<dyn InvitationMailer>;

/// Hands `issued` to the mailer, when there is one, and says so in the answer.
fn mail(mailer: Option<Extension<Mailer>>, mut issued: IssuedInvitation) -> IssuedInvitation {
    if let Some(Extension(mailer)) = mailer {
        mailer.send_invitation(&issued);
        issued.emailed = true;
    }
    issued
}

/// `POST /api/organisations/{organisationId}/invitations`: invite someone into the organisation;
/// the token and link are returned only here. Access: ORG_ADMIN.
pub async fn create(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Extension(principal): Extension<AdminPrincipal>,
    mailer: Option<Extension<Mailer>>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewInvitation>,
) -> Result<(StatusCode, Json<IssuedInvitation>), ApiError> {
    let issued = invitations::create(
        &state.pool,
        &org,
        input,
        principal.user_id.as_deref(),
        settings.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(mail(mailer, issued))))
}

/// `POST /api/admin/invitations`: invite someone to create a new organisation (CREATE_ORGANISATION)
/// as its ORG_ADMIN. Access: SUPER_ADMIN only.
pub async fn create_for_new_organisation(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Extension(principal): Extension<AdminPrincipal>,
    mailer: Option<Extension<Mailer>>,
    AdminJson(input): AdminJson<NewOrganisationInvitation>,
) -> Result<(StatusCode, Json<IssuedInvitation>), ApiError> {
    let issued = invitations::create_for_new_organisation(
        &state.pool,
        input,
        principal.user_id.as_deref(),
        settings.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(mail(mailer, issued))))
}

/// `GET /api/organisations/{organisationId}/invitations`: list the organisation's invitations.
/// Access: ORG_ADMIN.
pub async fn list(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<Invitation>>, ApiError> {
    let page =
        invitations::list(&state.pool, Some(&org), &params.page(), settings.now_ms()).await?;
    Ok(Json(page))
}

/// `GET /api/admin/invitations`: list invitations of every organisation. Access: SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<Invitation>>, ApiError> {
    let org = params.organisation_id.as_deref();
    let page = invitations::list(&state.pool, org, &params.page(), settings.now_ms()).await?;
    Ok(Json(page))
}

/// `GET /api/organisations/{organisationId}/invitations/{id}`: read an invitation (never its
/// token). Access: ORG_ADMIN.
pub async fn get(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Invitation>, ApiError> {
    let invitation = invitations::get(&state.pool, Some(&org), &id, settings.now_ms()).await?;
    Ok(Json(invitation))
}

/// `POST /api/organisations/{organisationId}/invitations/{id}/resend`: issue a new token and
/// 72-hour expiry; the old token stops working. Access: ORG_ADMIN.
pub async fn resend(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    mailer: Option<Extension<Mailer>>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<IssuedInvitation>, ApiError> {
    let issued = invitations::resend(&state.pool, Some(&org), &id, settings.now_ms()).await?;
    Ok(Json(mail(mailer, issued)))
}

/// `POST /api/organisations/{organisationId}/invitations/{id}/revoke`: revoke a pending invitation.
/// Access: ORG_ADMIN.
pub async fn revoke(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Invitation>, ApiError> {
    let invitation = invitations::revoke(&state.pool, Some(&org), &id, settings.now_ms()).await?;
    Ok(Json(invitation))
}

/// `POST /api/admin/invitations/{id}/resend` (CREATE_ORGANISATION invitations).
pub async fn resend_for_new_organisation(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    mailer: Option<Extension<Mailer>>,
    Path(id): Path<String>,
) -> Result<Json<IssuedInvitation>, ApiError> {
    let issued = invitations::resend(&state.pool, None, &id, settings.now_ms()).await?;
    Ok(Json(mail(mailer, issued)))
}

/// `POST /api/admin/invitations/{id}/revoke` (CREATE_ORGANISATION invitations).
pub async fn revoke_for_new_organisation(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Path(id): Path<String>,
) -> Result<Json<Invitation>, ApiError> {
    let invitation = invitations::revoke(&state.pool, None, &id, settings.now_ms()).await?;
    Ok(Json(invitation))
}

/// `GET /api/invitations/{token}` (public).
pub async fn lookup(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Path(token): Path<String>,
) -> Result<Json<PublicInvitation>, InvitationRefusal> {
    Ok(Json(
        invitations::lookup(&state.pool, &token, settings.now_ms()).await?,
    ))
}

/// `POST /api/invitations/{token}/accept` (public): activates the user with the invited role and
/// signs them in.
pub async fn accept(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    Path(token): Path<String>,
    forwarded: Option<Extension<ForwardedBy>>,
    uri: Uri,
    AdminJson(input): AdminJson<AcceptInvitation>,
) -> Result<Response, InvitationRefusal> {
    let user = invitations::accept(&state.pool, &token, input, settings.now_ms()).await?;
    tracing::info!(user_id = %user.id, "invitation accepted");
    let secure = request_over_https(&uri, forwarded.as_ref());
    Ok(start_session(&state, &settings, user, StatusCode::OK, secure).await?)
}
