//! Virtual API keys: the list with the create form, the reveal-once page of a new (or rotated)
//! secret, and the key's detail page — details, model and MCP access, rotation history, usage,
//! budgets and quotas — with rotate, revoke and unrevoke behind a confirmation.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use http::{Method, StatusCode};
use maud::{html, Markup};
use odock_core::Role;
use serde_json::{json, Map, Value};

use super::{api, cursor_query, disclosure, names, org_scope, see_other, table, Page};
use crate::console::forms::{self, FormState};
use crate::console::layout::{self, badge, csrf_field, pager, rows, s, text};
use crate::console::session::{Ctx, Fields};

pub fn keys_table(list: &Value, base: &str, teams: &HashMap<String, String>) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty("No API keys to show. Keys you may see (your own, or your teams') appear here once created.");
    }
    table(
        &["Name", "Preview", "Type", "Owner", "Expires", "State"],
        items,
        |k| {
            let owner = match s(k, "type") {
                "TEAM" => teams
                    .get(s(k, "teamId"))
                    .cloned()
                    .unwrap_or_else(|| text(k, "teamId")),
                "USER" => text(k, "userId"),
                _ => "organisation".into(),
            };
            let revoked = k["revoked"].as_bool().unwrap_or(false);
            html! { tr {
                td { a href={ (base) "/apikeys/" (s(k, "id")) } { (s(k, "name")) } }
                td.mono { (s(k, "preview")) }
                td { (s(k, "type")) }
                td { (owner) }
                td { (layout::when(k, "expiresAt")) }
                td { (badge(if revoked { "revoked" } else { "active" }, !revoked)) }
            } }
        },
    )
}

/// May the caller create keys at all (the API decides which)?
fn creates_keys(ctx: &Ctx) -> bool {
    matches!(ctx.role, Role::SuperAdmin | Role::OrgAdmin | Role::Manager)
}

async fn create_form(ctx: &Ctx, org: &str, base: &str, state: &FormState) -> Markup {
    let teams = ctx
        .get_opt(&api(org, "/teams?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let users = ctx
        .get_opt(&api(org, "/users?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let models = ctx
        .get_opt(&api(org, "/models?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let mut team_options = vec![(String::new(), "—".to_owned())];
    team_options.extend(
        rows(&teams)
            .iter()
            .map(|t| (s(t, "id").to_owned(), s(t, "name").to_owned())),
    );
    let mut user_options = vec![(String::new(), "—".to_owned())];
    user_options.extend(rows(&users).iter().map(|u| {
        (
            s(u, "id").to_owned(),
            format!("{} <{}>", s(u, "name"), s(u, "email")),
        )
    }));
    let model_options: Vec<(String, String)> = rows(&models)
        .iter()
        .map(|m| {
            (
                s(m, "id").to_owned(),
                format!("{} ({})", s(m, "name"), s(m, "type")),
            )
        })
        .collect();
    let types: &[&str] = if ctx.role == Role::Manager {
        &["TEAM"]
    } else {
        &["ORGANISATION", "TEAM", "USER"]
    };
    disclosure(
        "Create an API key",
        state.open,
        html! {
            form method="post" action={ (base) "/apikeys" } {
                (csrf_field(ctx))
                (state.summary())
                (forms::input(state, "name", "Name", "text", true, None))
                (forms::select(state, "type", "Type", &forms::options(types), Some("ORGANISATION keys bill the organisation; TEAM keys a team; USER keys one user.")))
                (forms::select(state, "teamId", "Team (TEAM keys)", &team_options, None))
                (forms::select(state, "userId", "User (USER keys)", &user_options, None))
                (forms::input(state, "expiresOn", "Expires on", "date", false, Some("Optional; the key stops working at the end of that day (UTC).")))
                (forms::checkboxes(state, "modelIds", "Models this key may call", &model_options))
                button type="submit" { "Create key" }
            }
        },
    )
}

async fn list_page(
    ctx: &Ctx,
    org: &str,
    query: &HashMap<String, String>,
    state: &FormState,
    status: StatusCode,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let list = ctx
        .get(&format!("{}{}", api(org, "/apikeys"), cursor_query(query)))
        .await?;
    let teams = ctx
        .get_opt(&api(org, "/teams?limit=500"))
        .await
        .map(|t| names(&t))
        .unwrap_or_default();
    let form = if creates_keys(ctx) {
        create_form(ctx, org, &base, state).await
    } else {
        html! {}
    };
    let content = html! {
        (form)
        (keys_table(&list, &base, &teams))
        (pager(&list, &format!("{base}/apikeys")))
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "apikeys", "API keys", content),
    ))
}

pub async fn list(
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    list_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

/// The page that shows a new secret, once: it is in this response only (not in a URL, not stored).
fn reveal(ctx: &Ctx, org: &str, issued: &Value, what: &str) -> Page {
    let scope = org_scope(org)?;
    let id = s(issued, "id");
    let content = html! {
        div.reveal role="status" {
            p { strong { (what) } " Copy the secret now: it will not be shown again." }
            div.secret {
                code #new-secret { (s(issued, "key")) }
                button type="button" data-copy="new-secret" { "Copy" }
                button type="button" data-remember=(id) data-name=(s(issued, "name")) data-secret-of="new-secret" { "Use in the playground" }
            }
            p.help { "“Use in the playground” keeps the secret in this browser tab only (session storage), never on the server." }
        }
        p { a href={ "/" (org) "/apikeys/" (id) } { "Go to the key's page" } }
    };
    Ok(layout::ok(layout::page(
        ctx,
        &scope,
        "apikeys",
        s(issued, "name"),
        content,
    )))
}

pub async fn create(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let mut body = Map::new();
    body.insert("name".into(), json!(fields.get("name")));
    body.insert("type".into(), json!(fields.get("type")));
    match fields.get("type") {
        "TEAM" => {
            body.insert("teamId".into(), json!(fields.get("teamId")));
        }
        "USER" => {
            body.insert("userId".into(), json!(fields.get("userId")));
        }
        _ => {}
    }
    if let Some(day) = fields.opt("expiresOn") {
        match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
            Ok(day) => body.insert("expiresAt".into(), json!(format!("{day}T23:59:59Z"))),
            Err(_) => {
                let state =
                    FormState::failed(fields, Some("expiresOn"), "Enter a date like 2026-12-31.");
                return list_page(&ctx, &org, &HashMap::new(), &state, StatusCode::BAD_REQUEST)
                    .await;
            }
        };
    }
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, "/apikeys"),
            Some(&Value::Object(body)),
        )
        .await;
    if !answer.ok() {
        if let Some(page) = super::refused(&ctx, &answer) {
            return Err(page);
        }
        let mut state = FormState::from_answer(fields, &answer);
        if let Some((Some(field), _)) = &mut state.error {
            if field == "expiresAt" {
                *field = "expiresOn".into();
            }
        }
        return list_page(&ctx, &org, &HashMap::new(), &state, answer.status).await;
    }
    let issued = answer.body;
    let models = fields.all("modelIds");
    let mut what = "The key was created.".to_owned();
    if !models.is_empty() {
        let grant = ctx
            .call(
                Method::POST,
                &api(&org, &format!("/apikeys/{}/model-access", s(&issued, "id"))),
                Some(&json!({"modelIds": models})),
            )
            .await;
        what = if grant.ok() {
            format!(
                "The key was created with access to {} model(s).",
                models.len()
            )
        } else {
            format!(
                "The key was created, but the model grant failed: {}",
                grant.message()
            )
        };
    }
    reveal(&ctx, &org, &issued, &what)
}

fn confirm_button(ctx: &Ctx, action: &str, label: &str, confirm: &str, danger: bool) -> Markup {
    html! {
        form.inline method="post" action={ (action) } data-confirm=(confirm) {
            (csrf_field(ctx))
            button.danger[danger] type="submit" { (label) }
        }
    }
}

fn rules_for_key(list: &Option<Value>, key: &str) -> Vec<Value> {
    list.as_ref()
        .map(|l| {
            rows(l)
                .iter()
                .filter(|r| s(r, "ownerId") == key)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

async fn detail_page(
    ctx: &Ctx,
    org: &str,
    id: &str,
    state: &FormState,
    notice: Option<&str>,
    status: StatusCode,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let key = ctx.get(&api(org, &format!("/apikeys/{id}"))).await?;
    let grants = ctx
        .get_opt(&api(org, &format!("/apikeys/{id}/model-access")))
        .await;
    let mcp = ctx
        .get_opt(&api(org, &format!("/apikeys/{id}/mcp-access")))
        .await;
    let rotations = ctx
        .get_opt(&api(org, &format!("/apikeys/{id}/rotations")))
        .await;
    let usage = ctx
        .get_opt(&api(org, &format!("/usage-records?apiKeyId={id}&limit=20")))
        .await;
    let budgets = ctx
        .get_opt(&api(org, "/budgets?ownerType=APIKEY&limit=500"))
        .await;
    let quotas = ctx
        .get_opt(&api(org, "/quotas?ownerType=APIKEY&limit=500"))
        .await;
    let models = ctx
        .get_opt(&api(org, "/models?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let model_names = names(&models);
    let mcp_names = ctx
        .get_opt(&api(org, "/mcp-servers?limit=500"))
        .await
        .map(|l| names(&l))
        .unwrap_or_default();
    let revoked = key["revoked"].as_bool().unwrap_or(false);
    let manages =
        grants.is_some() && matches!(ctx.role, Role::SuperAdmin | Role::OrgAdmin | Role::Manager);
    let granted: Vec<String> = grants
        .as_ref()
        .map(|g| rows(g).iter().map(|r| s(r, "modelId").to_owned()).collect())
        .unwrap_or_default();
    let grantable: Vec<(String, String)> = rows(&models)
        .iter()
        .filter(|m| !granted.iter().any(|g| g == s(m, "id")))
        .map(|m| (s(m, "id").to_owned(), s(m, "name").to_owned()))
        .collect();
    let here = format!("{base}/apikeys/{id}");
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        nav.tabs aria-label="Sections" {
            a href="#details" { "Details" } a href="#models" { "Model access" } a href="#mcp" { "MCP access" }
            a href="#rotations" { "Rotation history" } a href="#usage" { "Usage" } a href="#rules" { "Budgets & quotas" }
        }
        section #details aria-labelledby="details-h" {
            h2 #details-h { "Details" }
            dl.facts {
                dt { "Preview" } dd.mono { (s(&key, "preview")) }
                dt { "Type" } dd { (s(&key, "type")) }
                dt { "Team" } dd { (text(&key, "teamId")) }
                dt { "User" } dd { (text(&key, "userId")) }
                dt { "Expires" } dd { (layout::when(&key, "expiresAt")) }
                dt { "Timezone" } dd { (s(&key, "timezone")) }
                dt { "State" } dd { (badge(if revoked { "revoked" } else { "active" }, !revoked)) }
                dt { "Rotations" } dd { (text(&key, "rotations")) }
                dt { "Created" } dd { (layout::when(&key, "createdAt")) }
                dt { "Policies" } dd {
                    @if key["policies"].as_object().is_none_or(|p| p.is_empty()) { "none (organisation and team policies apply)" }
                    @else { pre { (serde_json::to_string_pretty(&key["policies"]).unwrap_or_default()) } }
                }
            }
            @if manages {
                div.actions {
                    @if !revoked {
                        (confirm_button(ctx, &format!("{here}/rotate"), "Rotate secret", "Rotate this key? The current secret stops working immediately.", false))
                        (confirm_button(ctx, &format!("{here}/revoke"), "Revoke", "Revoke this key? Every request with it will be refused until it is unrevoked.", true))
                    } @else {
                        (confirm_button(ctx, &format!("{here}/unrevoke"), "Unrevoke", "Restore this key? Its secret will work again.", false))
                    }
                }
            }
        }
        section #models aria-labelledby="models-h" {
            h2 #models-h { "Model access" }
            @match &grants {
                None => { (layout::empty("You may not see this key's grants.")) }
                Some(g) if rows(g).is_empty() => { (layout::empty("This key may not call any model yet.")) }
                Some(g) => {
                    (table(&["Model", "Granted"], rows(g), |r| html! { tr {
                        td { (model_names.get(s(r, "modelId")).map_or(s(r, "modelId"), String::as_str)) }
                        td { (layout::when(r, "createdAt")) }
                    } }))
                }
            }
            @if manages && !grantable.is_empty() {
                (disclosure("Grant models", state.open, html! {
                    form method="post" action={ (here) "/grant" } {
                        (csrf_field(ctx))
                        (state.summary())
                        (forms::checkboxes(state, "modelIds", "Models", &grantable))
                        button type="submit" { "Grant" }
                    }
                }))
            }
        }
        section #mcp aria-labelledby="mcp-h" {
            h2 #mcp-h { "MCP access" }
            @match &mcp {
                Some(g) if !rows(g).is_empty() => {
                    (table(&["MCP server", "Granted"], rows(g), |r| html! { tr {
                        td { (mcp_names.get(s(r, "mcpServerId")).map_or(s(r, "mcpServerId"), String::as_str)) } td { (layout::when(r, "createdAt")) }
                    } }))
                }
                _ => { (layout::empty("No MCP server is granted to this key.")) }
            }
        }
        section #rotations aria-labelledby="rot-h" {
            h2 #rot-h { "Rotation history" }
            @match &rotations {
                Some(r) if !rows(r).is_empty() => {
                    (table(&["Rotated", "Previous key", "Previous expiry", "New expiry", "By"], rows(r), |r| html! { tr {
                        td { (layout::when(r, "rotatedAt")) }
                        td.mono { (s(r, "previousPreview")) }
                        td { (layout::when(r, "previousExpiresAt")) }
                        td { (layout::when(r, "newExpiresAt")) }
                        td { (text(r, "rotatedBy")) }
                    } }))
                }
                _ => { (layout::empty("This key was never rotated.")) }
            }
        }
        section #usage aria-labelledby="usage-h" {
            h2 #usage-h { "Recent usage" }
            @match &usage {
                Some(u) if !rows(u).is_empty() => { (super::reports::records_table(u, &base)) }
                _ => { (layout::empty("No request was made with this key yet.")) }
            }
            p { a href={ (base) "/usage?apiKeyId=" (id) } { "All usage of this key →" } }
        }
        section #rules aria-labelledby="rules-h" {
            h2 #rules-h { "Budgets & quotas" }
            @let key_budgets = rules_for_key(&budgets, id);
            @let key_quotas = rules_for_key(&quotas, id);
            @if key_budgets.is_empty() && key_quotas.is_empty() {
                (layout::empty("No budget or quota is set on this key itself (organisation and team rules still apply)."))
            }
            @for b in &key_budgets { p { a href={ (base) "/budgets/" (s(b, "id")) } { "Budget: " (s(b, "name")) } " — " (layout::usd(layout::int(b, "amountNanos"))) " per " (s(b, "period")) } }
            @if manages {
                p.actions {
                    a href={ (base) "/budgets?owner=APIKEY:" (id) } { "Add a budget for this key" }
                    a href={ (base) "/quotas?owner=APIKEY:" (id) } { "Add a quota for this key" }
                }
            }
            @for q in &key_quotas { p { a href={ (base) "/quotas/" (s(q, "id")) } { "Quota: " (s(q, "name")) } " — " (text(q, "limit")) " " (s(q, "metric")) " per " (s(q, "period")) } }
        }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "apikeys", s(&key, "name"), content),
    ))
}

pub async fn detail(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let notice = match query.get("done").map(String::as_str) {
        Some("revoke") => Some("The key was revoked."),
        Some("unrevoke") => Some("The key was restored."),
        Some("grant") => Some("The models were granted."),
        _ => None,
    };
    detail_page(
        &ctx,
        &org,
        &id,
        &FormState::default(),
        notice,
        StatusCode::OK,
    )
    .await
}

/// `POST /{org}/apikeys/{id}/{rotate|revoke|unrevoke|grant}`.
pub async fn action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = |rest: &str| api(&org, &format!("/apikeys/{id}/{rest}"));
    let answer = match action.as_str() {
        "rotate" => {
            let answer = ctx
                .call(Method::POST, &path("rotate"), Some(&json!({})))
                .await;
            if answer.ok() {
                return reveal(
                    &ctx,
                    &org,
                    &answer.body,
                    "The key was rotated: the previous secret no longer works.",
                );
            }
            answer
        }
        "revoke" | "unrevoke" => ctx.call(Method::POST, &path(&action), None).await,
        "grant" => {
            let models = fields.all("modelIds");
            if models.is_empty() {
                let state =
                    FormState::failed(fields, Some("modelIds"), "Choose at least one model.");
                return detail_page(&ctx, &org, &id, &state, None, StatusCode::BAD_REQUEST).await;
            }
            ctx.call(
                Method::POST,
                &path("model-access"),
                Some(&json!({"modelIds": models})),
            )
            .await
        }
        _ => {
            return Err(layout::error_in_shell(
                &ctx,
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such action on API keys.",
            ))
        }
    };
    if answer.ok() {
        return Ok(see_other(&format!("/{org}/apikeys/{id}?done={action}")));
    }
    if answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::NOT_FOUND {
        return ctx
            .page_answer(answer)
            .map(|_| see_other(&format!("/{org}/apikeys/{id}")));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    detail_page(&ctx, &org, &id, &state, None, answer.status).await
}
