//! Sign-in, sign-out, password change and the public invitation page. Each calls the JSON API's
//! own route (`/api/auth/*`, `/api/invitations/*`), so throttling, session issue and the cookie are
//! the API's; the console adds the forms and the origin check.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::header::SET_COOKIE;
use http::{Method, StatusCode};
use maud::html;
use serde_json::json;

use super::Page;
use crate::console::client::{self, encode};
use crate::console::forms::{self, FormState};
use crate::console::layout::{self, csrf_field, s};
use crate::console::session::{caller_of, check_origin, Ctx, Fields, Head};
use crate::console::Console;
use http::request::Parts;

/// `GET /`: the caller's home.
pub async fn home(ctx: Ctx) -> Response {
    match &ctx.organisation_id {
        Some(org) if !ctx.is_super_admin() => {
            Redirect::to(&format!("/{org}/dashboard")).into_response()
        }
        _ => Redirect::to("/admin/dashboard").into_response(),
    }
}

/// Only same-site paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next.clone()
        }
        _ => "/".into(),
    }
}

fn login_form(state: &FormState, next: &str) -> maud::Markup {
    layout::bare(
        "Sign in",
        html! {
            form.card method="post" action={ "/login?next=" (encode(next)) } {
                (state.summary())
                (forms::input(state, "email", "Email", "email", true, None))
                (forms::input(state, "password", "Password", "password", true, None))
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// `GET /login`: the sign-in form.
pub async fn login_page(Query(query): Query<HashMap<String, String>>) -> Response {
    layout::ok(login_form(
        &FormState::default(),
        &safe_next(query.get("next")),
    ))
}

/// `POST /login`: signs in through `POST /api/auth/login` and redirects to `next` (a local path).
pub async fn login(
    State(console): State<Console>,
    Query(query): Query<HashMap<String, String>>,
    Head(parts): Head,
    fields: Fields,
) -> Page {
    check_origin(&console, &parts)?;
    let next = safe_next(query.get("next"));
    let body = json!({"email": fields.get("email"), "password": fields.get("password")});
    let caller = caller_of(&parts, None);
    let answer = client::call(
        &console.api,
        &caller,
        Method::POST,
        "/api/auth/login",
        Some(&body),
    )
    .await;
    if answer.ok() {
        let mut response = Redirect::to(&next).into_response();
        if let Some(cookie) = answer.set_cookie {
            response.headers_mut().insert(SET_COOKIE, cookie);
        }
        return Ok(response);
    }
    let message = match answer.status {
        StatusCode::UNAUTHORIZED => "The email or password is wrong.".to_owned(),
        _ => answer.message(),
    };
    let state = FormState::failed(fields, Some("password"), message);
    Ok(layout::respond(answer.status, login_form(&state, &next)))
}

/// `POST /logout`: ends the session and redirects to `/login`.
pub async fn logout(ctx: Ctx, fields: Fields) -> Page {
    ctx.check_form(&fields)?;
    let answer = ctx.call(Method::POST, "/api/auth/logout", None).await;
    let mut response = Redirect::to("/login").into_response();
    if let Some(cookie) = answer.set_cookie {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}

fn password_form(ctx: &Ctx, state: &FormState, done: bool) -> Response {
    let scope = match &ctx.organisation_id {
        Some(org) => layout::Scope::Org(org.clone()),
        None => layout::Scope::Admin,
    };
    layout::ok(layout::page(
        ctx,
        &scope,
        "",
        "Change your password",
        html! {
            @if done { (layout::notice("Your password was changed. Your other sessions were signed out.")) }
            form.card method="post" action="/account/password" {
                (csrf_field(ctx))
                (state.summary())
                (forms::input(state, "currentPassword", "Current password", "password", true, None))
                (forms::input(state, "newPassword", "New password", "password", true, Some("At least 12 characters.")))
                (forms::input(state, "confirmPassword", "New password again", "password", true, None))
                button type="submit" { "Change password" }
            }
        },
    ))
}

/// `GET /account/password`: the password change form.
pub async fn password_page(ctx: Ctx) -> Response {
    password_form(&ctx, &FormState::default(), false)
}

/// `POST /account/password`: changes the caller's password.
pub async fn password(ctx: Ctx, fields: Fields) -> Page {
    ctx.check_form(&fields)?;
    if fields.get("newPassword") != fields.get("confirmPassword") {
        let state = FormState::failed(
            fields,
            Some("confirmPassword"),
            "The two new passwords differ.",
        );
        let mut response = password_form(&ctx, &state, false);
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    let body = json!({
        "currentPassword": fields.get("currentPassword"),
        "newPassword": fields.get("newPassword"),
    });
    let answer = ctx
        .call(Method::POST, "/api/auth/password", Some(&body))
        .await;
    if answer.ok() {
        return Ok(password_form(&ctx, &FormState::default(), true));
    }
    let state = FormState::from_answer(fields, &answer);
    let mut response = password_form(&ctx, &state, false);
    *response.status_mut() = answer.status;
    Ok(response)
}

/// Why an invitation cannot be used, in words.
fn invitation_refusal(code: Option<&str>) -> (&'static str, &'static str) {
    match code {
        Some("invitation_expired") => (
            "This invitation has expired",
            "Ask an administrator of the organisation to send you a new one.",
        ),
        Some("invitation_revoked") => (
            "This invitation was withdrawn",
            "Ask an administrator of the organisation if you should still join.",
        ),
        Some("invitation_used") => (
            "This invitation was already accepted",
            "Sign in with the email and password chosen when it was accepted.",
        ),
        _ => (
            "This invitation link is not valid",
            "Check that the whole link was copied, or ask for a new invitation.",
        ),
    }
}

async fn invitation_view(
    console: &Console,
    parts: &Parts,
    token: &str,
    state: &FormState,
    status: StatusCode,
) -> Response {
    let caller = caller_of(parts, None);
    let path = format!("/api/invitations/{}", encode(token));
    let answer = client::call(&console.api, &caller, Method::GET, &path, None).await;
    if !answer.ok() {
        let (title, advice) = invitation_refusal(answer.code());
        return layout::respond(
            answer.status,
            layout::bare(
                title,
                html! { p.error role="alert" { (advice) } p { a href="/login" { "Go to sign-in" } } },
            ),
        );
    }
    let invitation = &answer.body;
    let organisation = s(invitation, "organisationName");
    let title = if organisation.is_empty() {
        "You are invited to Odock".to_owned()
    } else {
        format!("Join {organisation} on Odock")
    };
    layout::respond(
        status,
        layout::bare(
            &title,
            html! {
                dl.facts {
                    dt { "Organisation" } dd { (if organisation.is_empty() { "a new organisation" } else { organisation }) }
                    dt { "Email" } dd { (s(invitation, "email")) }
                    dt { "Role" } dd { (s(invitation, "role")) }
                    dt { "Expires" } dd { (layout::when(invitation, "expiresAt")) }
                }
                form.card method="post" action={ "/invitations/" (encode(token)) } {
                    (state.summary())
                    (forms::input(state, "name", "Profile name", "text", true, None))
                    (forms::input(state, "password", "Choose a password", "password", true, Some("At least 12 characters.")))
                    button type="submit" { "Accept and sign in" }
                }
            },
        ),
    )
}

/// `GET /invitations/{token}`: what the invitation offers, and the form accepting it.
pub async fn invitation_page(
    State(console): State<Console>,
    Path(token): Path<String>,
    Head(parts): Head,
) -> Response {
    invitation_view(
        &console,
        &parts,
        &token,
        &FormState::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /invitations/{token}`: accepts the invitation and signs the new user in.
pub async fn accept_invitation(
    State(console): State<Console>,
    Path(token): Path<String>,
    Head(parts): Head,
    fields: Fields,
) -> Page {
    check_origin(&console, &parts)?;
    let caller = caller_of(&parts, None);
    let body = json!({"name": fields.get("name"), "password": fields.get("password")});
    let path = format!("/api/invitations/{}/accept", encode(&token));
    let answer = client::call(&console.api, &caller, Method::POST, &path, Some(&body)).await;
    if answer.ok() {
        let mut response = Redirect::to("/").into_response();
        if let Some(cookie) = answer.set_cookie {
            response.headers_mut().insert(SET_COOKIE, cookie);
        }
        return Ok(response);
    }
    let state = FormState::from_answer(fields, &answer);
    Ok(invitation_view(&console, &parts, &token, &state, answer.status).await)
}
