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

/// The teams of an API list, linked under `base` (not linked when `None`).
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

/// `GET /{org}/teams`: the teams the caller sees (and the form creating one).
pub async fn teams(
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    teams_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

/// `POST /{org}/teams`: creates a team.
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

async fn team_page(
    ctx: &Ctx,
    org: &str,
    id: &str,
    forms: (&FormState, &FormState),
    status: StatusCode,
    notice: Option<&str>,
) -> Page {
    let (state, edit) = forms;
    let scope = org_scope(org)?;
    let base = scope.base();
    let team = ctx.get(&api(org, &format!("/teams/{id}"))).await?;
    let members = ctx.get(&api(org, &format!("/teams/{id}/members"))).await?;
    let keys = ctx
        .get_opt(&api(org, &format!("/teams/{id}/apikeys")))
        .await;
    let users = ctx.get_opt(&api(org, "/users?limit=500")).await;
    let here = format!("{base}/teams/{id}");
    let manages = is_admin(ctx) || ctx.role == odock_core::Role::Manager;
    let edit = if edit.open {
        edit.clone()
    } else {
        super::prefilled(vec![("name", s(&team, "name").to_owned())])
    };
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        @if is_admin(ctx) {
            (disclosure("Rename team", edit.open, html! {
                form method="post" action={ (here) "/edit" } {
                    (csrf_field(ctx))
                    (edit.summary())
                    (forms::input(&edit, "name", "Name", "text", true, None))
                    button type="submit" { "Save team" }
                }
            }))
            div.actions {
                (super::confirm_action(ctx, &format!("{here}/delete"), "Delete team…", "The team's TEAM API keys, budgets and quotas are deleted with it; its members stay in the organisation.", "Delete team"))
            }
        }
        section aria-labelledby="members-h" {
            h2 #members-h { "Members" }
            @if rows(&members).is_empty() { (layout::empty("No members yet.")) }
            @else {
                (table(&["Name", "Email", "Team role", "Since", ""], rows(&members), |m| html! { tr {
                    td { (text(m, "name")) } td { (s(m, "email")) } td { (s(m, "role")) } td { (layout::when(m, "createdAt")) }
                    td.actions {
                        @if manages {
                            @let action = format!("{here}/members/{}", s(m, "userId"));
                            @let other = if s(m, "role") == "MANAGER" { "MEMBER" } else { "MANAGER" };
                            form.inline method="post" action={ (action) "/role" } {
                                (csrf_field(ctx))
                                input type="hidden" name="role" value=(other);
                                button type="submit" { "Make " (other.to_lowercase()) }
                            }
                            (super::confirm_action(ctx, &format!("{action}/remove"), "Remove", "They lose the team's keys and budgets; their own keys stay.", "Remove member"))
                        }
                    }
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

/// `GET /{org}/teams/{id}`: a team, its members and keys.
pub async fn team(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let notice = match query.get("done").map(String::as_str) {
        Some("edit") => Some("The team was saved."),
        Some("remove") => Some("The member was removed."),
        Some("role") => Some("The member's team role was changed."),
        _ => None,
    };
    let none = FormState::default();
    team_page(&ctx, &org, &id, (&none, &none), StatusCode::OK, notice).await
}

/// `POST /{org}/teams/{id}/{edit|delete}`.
pub async fn team_action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/teams/{id}"));
    match action.as_str() {
        "delete" => {
            super::write_then(&ctx, Method::DELETE, &path, None, &format!("/{org}/teams")).await
        }
        "edit" => {
            let body = json!({"name": fields.get("name")});
            let answer = ctx.call(Method::PATCH, &path, Some(&body)).await;
            if answer.ok() {
                return Ok(see_other(&format!("/{org}/teams/{id}?done=edit")));
            }
            if let Some(page) = super::refused(&ctx, &answer) {
                return Err(page);
            }
            let state = FormState::from_answer(fields, &answer);
            let none = FormState::default();
            team_page(&ctx, &org, &id, (&none, &state), answer.status, None).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}

/// `POST /{org}/teams/{id}/members/{userId}/{role|remove}`.
pub async fn member_action(
    ctx: Ctx,
    Path((org, id, user, action)): Path<(String, String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/teams/{id}/members/{user}"));
    let back = format!("/{org}/teams/{id}?done={action}");
    match action.as_str() {
        "remove" => super::write_then(&ctx, Method::DELETE, &path, None, &back).await,
        "role" => {
            let body = json!({"role": fields.get("role")});
            super::write_then(&ctx, Method::PATCH, &path, Some(&body), &back).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}

/// `POST /{org}/teams/{id}`: adds a member to the team.
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
    let none = FormState::default();
    team_page(&ctx, &org, &id, (&state, &none), answer.status, None).await
}

// ---------------------------------------------------------------------------------------------
// Users and invitations

/// The users of an API list, linked under `base` (not linked when `None`).
pub fn users_table(list: &Value, base: Option<&str>) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty("No users yet. Invite someone to join the organisation.");
    }
    table(&["Name", "Email", "Role", "Status", "Joined"], items, |u| {
        html! { tr {
            td { @if let Some(base) = base { a href={ (base) "/users/" (s(u, "id")) } { (text(u, "name")) } } @else { (text(u, "name")) } }
            td { (s(u, "email")) } td { (s(u, "role")) }
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
        (users_table(&list, Some(&base)))
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

/// `GET /{org}/users`: the organisation's users (and, for ORG_ADMIN, its invitations).
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

/// A user's detail: role and status (with the changes the API allows), teams, keys, invitations.
async fn user_page(
    ctx: &Ctx,
    org: &str,
    id: &str,
    edit: &FormState,
    status: StatusCode,
    notice: Option<&str>,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let user = ctx.get(&api(org, &format!("/users/{id}"))).await?;
    // Teams: the memberships of each team the caller sees (no per-user endpoint).
    let mut teams = Vec::new();
    if let Some(list) = ctx.get_opt(&api(org, "/teams?limit=100")).await {
        for team in rows(&list) {
            let members = ctx
                .get_opt(&api(org, &format!("/teams/{}/members", s(team, "id"))))
                .await;
            if let Some(m) = members
                .as_ref()
                .and_then(|m| rows(m).iter().find(|m| s(m, "userId") == id).cloned())
            {
                teams.push((team.clone(), s(&m, "role").to_owned()));
            }
        }
    }
    let keys: Vec<Value> = ctx
        .get_opt(&api(org, "/apikeys?limit=500"))
        .await
        .map(|k| {
            rows(&k)
                .iter()
                .filter(|k| s(k, "userId") == id)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let invitations: Vec<Value> = ctx
        .get_opt(&api(org, "/invitations?limit=100"))
        .await
        .map(|l| {
            rows(&l)
                .iter()
                .filter(|i| s(i, "email").eq_ignore_ascii_case(s(&user, "email")))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let here = format!("{base}/users/{id}");
    let edit = if edit.open {
        edit.clone()
    } else {
        super::prefilled(vec![
            ("name", s(&user, "name").to_owned()),
            ("role", s(&user, "role").to_owned()),
        ])
    };
    let active = s(&user, "status") == "ACTIVE";
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        dl.facts {
            dt { "Email" } dd { (s(&user, "email")) }
            dt { "Role" } dd { (s(&user, "role")) }
            dt { "Status" } dd { (badge(s(&user, "status"), active)) }
            dt { "Joined" } dd { (layout::when(&user, "createdAt")) }
        }
        @if is_admin(ctx) {
            (disclosure("Edit user", edit.open, html! {
                form method="post" action={ (here) "/edit" } {
                    (csrf_field(ctx))
                    (edit.summary())
                    (forms::input(&edit, "name", "Name", "text", false, None))
                    (forms::select(&edit, "role", "Role", &options(&["USER", "MANAGER", "ORG_ADMIN"]), None))
                    button type="submit" { "Save user" }
                }
            }))
            div.actions {
                @if active {
                    (super::confirm_action(ctx, &format!("{here}/deactivate"), "Deactivate…", "They are signed out and cannot sign in; their keys keep working until revoked.", "Deactivate user"))
                } @else {
                    form.inline method="post" action={ (here) "/activate" } {
                        (csrf_field(ctx)) button type="submit" { "Activate" }
                    }
                }
                (super::confirm_action(ctx, &format!("{here}/delete"), "Delete…", "The account is removed for good, with its USER API keys, budgets and quotas.", "Delete user"))
            }
        }
        section aria-labelledby="uteams-h" {
            h2 #uteams-h { "Teams" }
            @if teams.is_empty() { (layout::empty("Not a member of any team you can see.")) }
            @else {
                ul { @for (team, role) in &teams { li { a href={ (base) "/teams/" (s(team, "id")) } { (s(team, "name")) } " — " (role) } } }
            }
        }
        section aria-labelledby="ukeys-h" {
            h2 #ukeys-h { "Keys" }
            (super::keys::keys_table(&json!({"data": keys}), &base, &HashMap::new()))
        }
        @if is_admin(ctx) {
            section aria-labelledby="uinv-h" {
                h2 #uinv-h { "Invitations" }
                @if invitations.is_empty() { (layout::empty("No invitation was sent to this address.")) }
                @else {
                    (table(&["Role", "Status", "Expires"], &invitations, |i| html! { tr {
                        td { (s(i, "role")) } td { (s(i, "status")) } td { (layout::when(i, "expiresAt")) }
                    } }))
                }
            }
        }
        p { a href={ (base) "/users" } { "← All users" } }
    };
    let title = user["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(s(&user, "email"))
        .to_owned();
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "users", &title, content),
    ))
}

/// `GET /{org}/users/{id}`: a user.
pub async fn user(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let notice = match query.get("done").map(String::as_str) {
        Some("edit") => Some("The user was saved."),
        Some("deactivate") => Some("The user was deactivated."),
        Some("activate") => Some("The user was activated."),
        _ => None,
    };
    user_page(
        &ctx,
        &org,
        &id,
        &FormState::default(),
        StatusCode::OK,
        notice,
    )
    .await
}

/// `POST /{org}/users/{id}/{edit|deactivate|activate|delete}`.
pub async fn user_action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/users/{id}"));
    let back = format!("/{org}/users/{id}?done={action}");
    match action.as_str() {
        "delete" => {
            super::write_then(&ctx, Method::DELETE, &path, None, &format!("/{org}/users")).await
        }
        "deactivate" => {
            let body = json!({"status": "REVOKED"});
            super::write_then(&ctx, Method::PATCH, &path, Some(&body), &back).await
        }
        "activate" => {
            let body = json!({"status": "ACTIVE"});
            super::write_then(&ctx, Method::PATCH, &path, Some(&body), &back).await
        }
        "edit" => {
            let mut body = serde_json::Map::new();
            if let Some(name) = fields.opt("name") {
                body.insert("name".into(), json!(name));
            }
            body.insert("role".into(), json!(fields.get("role")));
            let answer = ctx
                .call(Method::PATCH, &path, Some(&Value::Object(body)))
                .await;
            if answer.ok() {
                return Ok(see_other(&back));
            }
            if let Some(page) = super::refused(&ctx, &answer) {
                return Err(page);
            }
            let state = FormState::from_answer(fields, &answer);
            user_page(&ctx, &org, &id, &state, answer.status, None).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}
