//! People of an organisation: teams with their members, users with their invitations (send,
//! resend, revoke; the accept link shown once, with a copy button, since mail may not be set up).

use std::collections::HashMap;

use axum::extract::{Path, Query};
use http::{Method, StatusCode};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::{api, cursor_query, disclosure, is_admin, org_scope, see_other, table, Page};
use crate::console::forms::{self, options, FormState};
use crate::console::layout::{self, badge, csrf_field, pager, rows, s, text};
use crate::console::session::{Ctx, Fields};

// ---------------------------------------------------------------------------------------------
// Teams

pub fn teams_table(list: &Value, base: Option<&str>) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty(
            "No teams to show. Teams group users and TEAM keys; you see the teams you belong to.",
        );
    }
    table(&["Name", "Created"], items, |t| {
        html! { tr {
            td { @if let Some(base) = base { a href={ (base) "/teams/" (s(t, "id")) } { (s(t, "name")) } } @else { (s(t, "name")) } }
            td { (layout::when(t, "createdAt")) }
        } }
    })
}

async fn teams_page(
    ctx: &Ctx,
    org: &str,
    query: &HashMap<String, String>,
    state: &FormState,
    status: StatusCode,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let list = ctx
        .get(&format!("{}{}", api(org, "/teams"), cursor_query(query)))
        .await?;
    let content = html! {
        @if is_admin(ctx) {
            (disclosure("Create a team", state.open, html! {
                form method="post" action={ (base) "/teams" } {
                    (csrf_field(ctx))
                    (state.summary())
                    (forms::input(state, "name", "Name", "text", true, None))
                    button type="submit" { "Create team" }
                }
            }))
        }
        (teams_table(&list, Some(&base)))
        (pager(&list, &format!("{base}/teams")))
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "teams", "Teams", content),
    ))
}

pub async fn teams(
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    teams_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

pub async fn create_team(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, "/teams"),
            Some(&json!({"name": fields.get("name")})),
        )
        .await;
    if answer.ok() {
        return Ok(see_other(&format!(
            "/{org}/teams/{}",
            s(&answer.body, "id")
        )));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    teams_page(&ctx, &org, &HashMap::new(), &state, answer.status).await
}

async fn team_page(ctx: &Ctx, org: &str, id: &str, state: &FormState, status: StatusCode) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let team = ctx.get(&api(org, &format!("/teams/{id}"))).await?;
    let members = ctx.get(&api(org, &format!("/teams/{id}/members"))).await?;
    let keys = ctx
        .get_opt(&api(org, &format!("/teams/{id}/apikeys")))
        .await;
    let users = ctx.get_opt(&api(org, "/users?limit=500")).await;
    let content = html! {
        section aria-labelledby="members-h" {
            h2 #members-h { "Members" }
            @if rows(&members).is_empty() { (layout::empty("No members yet.")) }
            @else {
                (table(&["Name", "Email", "Team role", "Since"], rows(&members), |m| html! { tr {
                    td { (text(m, "name")) } td { (s(m, "email")) } td { (s(m, "role")) } td { (layout::when(m, "createdAt")) }
                } }))
            }
            @if let Some(users) = users.as_ref().filter(|_| is_admin(ctx) || ctx.role == odock_core::Role::Manager) {
                @let user_options: Vec<(String, String)> = rows(users).iter().map(|u| (s(u, "id").to_owned(), format!("{} <{}>", s(u, "name"), s(u, "email")))).collect();
                (disclosure("Add a member", state.open, html! {
                    form method="post" action={ (base) "/teams/" (id) } {
                        (csrf_field(ctx))
                        (state.summary())
                        (forms::select(state, "userId", "User", &user_options, None))
                        (forms::select(state, "role", "Team role", &options(&["MEMBER", "MANAGER"]), None))
                        button type="submit" { "Add member" }
                    }
                }))
            }
        }
        p.actions {
            a href={ (base) "/usage?teamId=" (id) } { "Team usage" }
            a href={ (base) "/budgets?ownerType=TEAM" } { "Team budgets" }
            @if is_admin(ctx) || ctx.role == odock_core::Role::Manager {
                a href={ (base) "/budgets?owner=TEAM:" (id) } { "Add a team budget" }
                a href={ (base) "/quotas?owner=TEAM:" (id) } { "Add a team quota" }
            }
        }
        section aria-labelledby="tkeys-h" {
            h2 #tkeys-h { "Team keys" }
            @match &keys {
                Some(k) => { (super::keys::keys_table(k, &base, &HashMap::new())) }
                None => { (layout::empty("You may not see this team's keys.")) }
            }
        }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "teams", s(&team, "name"), content),
    ))
}

pub async fn team(ctx: Ctx, Path((org, id)): Path<(String, String)>) -> Page {
    team_page(&ctx, &org, &id, &FormState::default(), StatusCode::OK).await
}

pub async fn add_member(ctx: Ctx, Path((org, id)): Path<(String, String)>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let body = json!({"userId": fields.get("userId"), "role": fields.get("role")});
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, &format!("/teams/{id}/members")),
            Some(&body),
        )
        .await;
    if answer.ok() {
        return Ok(see_other(&format!("/{org}/teams/{id}")));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    team_page(&ctx, &org, &id, &state, answer.status).await
}

// ---------------------------------------------------------------------------------------------
// Users and invitations

pub fn users_table(list: &Value) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty("No users yet. Invite someone to join the organisation.");
    }
    table(&["Name", "Email", "Role", "Status", "Joined"], items, |u| {
        html! { tr {
            td { (text(u, "name")) } td { (s(u, "email")) } td { (s(u, "role")) }
            td { (badge(s(u, "status"), s(u, "status") == "ACTIVE")) }
            td { (layout::when(u, "createdAt")) }
        } }
    })
}

/// The accept link of a fresh invitation, shown once.
fn issued_link(issued: &Value) -> Markup {
    let url = s(issued, "url");
    html! {
        div.reveal role="status" {
            p { "Invitation for " strong { (s(issued, "email")) } " (" (s(issued, "role")) "), valid until " (layout::when(issued, "expiresAt")) ". "
                "Send this link to them; it is shown only now." }
            div.secret {
                code #invite-link data-absolute="true" { (url) }
                button type="button" data-copy="invite-link" { "Copy link" }
            }
        }
    }
}

async fn users_page(
    ctx: &Ctx,
    org: &str,
    query: &HashMap<String, String>,
    state: &FormState,
    issued: Option<&Value>,
    status: StatusCode,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let list = ctx
        .get(&format!("{}{}", api(org, "/users"), cursor_query(query)))
        .await?;
    let invitations = if is_admin(ctx) {
        ctx.get_opt(&api(org, "/invitations?limit=100")).await
    } else {
        None
    };
    let content = html! {
        @if let Some(issued) = issued { (issued_link(issued)) }
        @if is_admin(ctx) {
            (disclosure("Invite a user", state.open, html! {
                form method="post" action={ (base) "/users" } {
                    (csrf_field(ctx))
                    input type="hidden" name="op" value="invite";
                    (state.summary())
                    (forms::input(state, "email", "Email", "email", true, None))
                    (forms::select(state, "role", "Role", &options(&["USER", "MANAGER", "ORG_ADMIN"]), None))
                    button type="submit" { "Send invitation" }
                }
            }))
        }
        (users_table(&list))
        (pager(&list, &format!("{base}/users")))
        @if let Some(invitations) = &invitations {
            section aria-labelledby="inv-h" {
                h2 #inv-h { "Invitations" }
                @if rows(invitations).is_empty() { (layout::empty("No invitations sent.")) }
                @else {
                    (table(&["Email", "Role", "Status", "Expires", ""], rows(invitations), |i| html! { tr {
                        td { (s(i, "email")) } td { (s(i, "role")) } td { (s(i, "status")) } td { (layout::when(i, "expiresAt")) }
                        td.actions {
                            @if s(i, "status") == "PENDING" {
                                form.inline method="post" action={ (base) "/users" } {
                                    (csrf_field(ctx)) input type="hidden" name="op" value="resend"; input type="hidden" name="invitationId" value=(s(i, "id"));
                                    button type="submit" { "Resend" }
                                }
                                form.inline method="post" action={ (base) "/users" } data-confirm="Revoke this invitation? Its link stops working." {
                                    (csrf_field(ctx)) input type="hidden" name="op" value="revoke"; input type="hidden" name="invitationId" value=(s(i, "id"));
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    } }))
                }
            }
        }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "users", "Users", content),
    ))
}

pub async fn users(
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    users_page(
        &ctx,
        &org,
        &query,
        &FormState::default(),
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /{org}/users`: `op` = invite | resend | revoke.
pub async fn invite(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let invitation = fields.get("invitationId").to_owned();
    let answer = match fields.get("op") {
        "resend" => {
            ctx.call(
                Method::POST,
                &api(&org, &format!("/invitations/{invitation}/resend")),
                None,
            )
            .await
        }
        "revoke" => {
            let answer = ctx
                .call(
                    Method::POST,
                    &api(&org, &format!("/invitations/{invitation}/revoke")),
                    None,
                )
                .await;
            if answer.ok() {
                return Ok(see_other(&format!("/{org}/users")));
            }
            answer
        }
        _ => {
            let body = json!({"email": fields.get("email"), "role": fields.get("role")});
            ctx.call(Method::POST, &api(&org, "/invitations"), Some(&body))
                .await
        }
    };
    if answer.ok() {
        // Rendered directly (not redirected): the link must not land in a URL or history.
        return users_page(
            &ctx,
            &org,
            &HashMap::new(),
            &FormState::default(),
            Some(&answer.body),
            StatusCode::OK,
        )
        .await;
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    users_page(&ctx, &org, &HashMap::new(), &state, None, answer.status).await
}
