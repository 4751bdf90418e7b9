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

/// The API keys of an API list, linked under `base`; `teams` maps team ids to names.
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

/// `GET /{org}/apikeys`: the API keys the caller sees, and the form issuing one.
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

/// `POST /{org}/apikeys`: issues an API key and shows its secret once.
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
    let routing = ctx
        .get_opt(&api(org, &format!("/apikeys/{id}/routing")))
        .await;
    let settings = ctx.get_opt(&api(org, "/settings")).await;
    // Each form shows the state only when it is the form that was sent.
    let for_form = |name: &str| {
        if state.fields.get("form") == name {
            state.clone()
        } else {
            FormState::default()
        }
    };
    let grant = for_form("grant");
    let edit = for_form("edit");
    let routing_state = for_form("routing");
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        nav.tabs aria-label="Sections" {
            a href="#details" { "Details" } a href="#models" { "Model access" } a href="#mcp" { "MCP access" }
            a href="#routing" { "Routing" } a href="#rotations" { "Rotation history" } a href="#usage" { "Usage" } a href="#rules" { "Budgets & quotas" }
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
                    (super::confirm_action(ctx, &format!("{here}/delete"), "Delete…", "The key, its grants, routing, budgets and quotas are removed for good; its usage records stay.", "Delete key"))
                }
                (edit_form(ctx, &here, &key, &edit))
            }
        }
        section #models aria-labelledby="models-h" {
            h2 #models-h { "Model access" }
            @match &grants {
                None => { (layout::empty("You may not see this key's grants.")) }
                Some(g) if rows(g).is_empty() => { (layout::empty("This key may not call any model yet.")) }
                Some(g) => {
                    (table(&["Model", "Granted", ""], rows(g), |r| html! { tr {
                        td { (model_names.get(s(r, "modelId")).map_or(s(r, "modelId"), String::as_str)) }
                        td { (layout::when(r, "createdAt")) }
                        td { @if manages { (super::confirm_action(ctx, &format!("{here}/models/{}/remove", s(r, "modelId")), "Remove", "The key can no longer call this model (a routing policy naming it must drop it first).", "Remove grant")) } }
                    } }))
                }
            }
            @if manages && !grantable.is_empty() {
                (disclosure("Grant models", grant.open, html! {
                    form method="post" action={ (here) "/grant" } {
                        (csrf_field(ctx))
                        input type="hidden" name="form" value="grant";
                        (grant.summary())
                        (forms::checkboxes(&grant, "modelIds", "Models", &grantable))
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
        (routing_section(ctx, &here, &key, &routing, &routing_state, &models, &granted, settings.as_ref()))
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

/// `GET /{org}/apikeys/{id}`: an API key, its grants, rotations, recent usage and rules.
pub async fn detail(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let notice = match query.get("done").map(String::as_str) {
        Some("revoke") => Some("The key was revoked."),
        Some("unrevoke") => Some("The key was restored."),
        Some("grant") => Some("The models were granted."),
        Some("ungrant") => Some("The model grant was removed."),
        Some("edit") => Some("The key was saved."),
        Some("routing") => {
            Some("The routing policy was saved; the gateway uses it from the next request.")
        }
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
        "delete" => {
            return super::write_then(
                &ctx,
                Method::DELETE,
                &api(&org, &format!("/apikeys/{id}")),
                None,
                &format!("/{org}/apikeys"),
            )
            .await
        }
        "edit" => match edit_body(&fields) {
            Ok(body) => {
                ctx.call(
                    Method::PATCH,
                    &api(&org, &format!("/apikeys/{id}")),
                    Some(&body),
                )
                .await
            }
            Err((field, message)) => {
                let state = FormState::failed(fields, Some(field), message);
                return detail_page(&ctx, &org, &id, &state, None, StatusCode::BAD_REQUEST).await;
            }
        },
        "routing" => {
            let current = ctx.get(&path("routing")).await?;
            match routing_body(&current, &fields) {
                Ok(body) => ctx.call(Method::PUT, &path("routing"), Some(&body)).await,
                Err((field, message)) => {
                    let state = FormState::failed(fields, Some(&field), message);
                    return detail_page(&ctx, &org, &id, &state, None, StatusCode::BAD_REQUEST)
                        .await;
                }
            }
        }
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
    let kind = fields.get("modelType").to_owned();
    let mut state = FormState::from_answer(fields, &answer);
    if let Some((Some(field), _)) = &mut state.error {
        if field == "expiresAt" {
            *field = "expiresOn".into();
        } else if action == "routing" {
            // The API names the policy's field; the form prefixes it with the model type.
            let name = field.rsplit('.').next().unwrap_or(field).to_owned();
            *field = format!("{kind}.{name}");
        }
    }
    detail_page(&ctx, &org, &id, &state, None, answer.status).await
}

/// The edit form of a key's details: name, expiry and its own policies (JSON).
fn edit_form(ctx: &Ctx, here: &str, key: &Value, state: &FormState) -> Markup {
    let state = if state.open {
        state.clone()
    } else {
        let expires = key["expiresAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let policies = match key["policies"].as_object() {
            Some(p) if !p.is_empty() => serde_json::to_string_pretty(p).unwrap_or_default(),
            _ => String::new(),
        };
        super::prefilled(vec![
            ("name", s(key, "name").to_owned()),
            ("expiresOn", expires),
            ("policies", policies),
        ])
    };
    disclosure(
        "Edit details and policies",
        state.open,
        html! {
            form method="post" action={ (here) "/edit" } {
                (csrf_field(ctx))
                input type="hidden" name="form" value="edit";
                (state.summary())
                (forms::input(&state, "name", "Name", "text", true, None))
                (forms::input(&state, "expiresOn", "Expires on", "date", false, Some("Empty: never expires.")))
                (forms::textarea(&state, "policies", "Policies (JSON object)", Some("The key's own policies, e.g. {\"maxTokensPerRequest\": 4096}; empty for none.")))
                button type="submit" { "Save key" }
            }
        },
    )
}

/// The PATCH body of the edit form, or the field at fault.
fn edit_body(fields: &Fields) -> Result<Value, (&'static str, &'static str)> {
    let expires = match fields.opt("expiresOn") {
        None => Value::Null,
        Some(day) => match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
            Ok(day) => json!(format!("{day}T23:59:59Z")),
            Err(_) => return Err(("expiresOn", "Enter a date like 2026-12-31.")),
        },
    };
    let policies = match fields.opt("policies") {
        None => json!({}),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return Err((
                    "policies",
                    "Enter a JSON object, like {\"maxTokensPerRequest\": 4096}.",
                ))
            }
        },
    };
    Ok(json!({"name": fields.get("name"), "expiresAt": expires, "policies": policies}))
}

const STRATEGIES: &[(&str, &str)] = &[
    ("failover", "Failover: in the order below"),
    ("priority", "Priority: lowest number first"),
    ("round_robin", "Round robin: rotate the start"),
    ("weighted", "Weighted: start drawn by weight"),
];
const TRIGGERS: &[(&str, &str)] = &[
    ("5xx", "Upstream 5xx or connection failure"),
    ("timeout", "Upstream timeout"),
    ("rate_limit", "Upstream rate limit (429)"),
    ("any", "Any upstream failure"),
];

/// The routing tab: the organisation switch, and one policy per model type among the key's
/// granted models (candidates are those models; an empty order leaves a model out).
#[allow(clippy::too_many_arguments)]
fn routing_section(
    ctx: &Ctx,
    here: &str,
    key: &Value,
    routing: &Option<Value>,
    state: &FormState,
    models: &Value,
    granted: &[String],
    settings: Option<&Value>,
) -> Markup {
    let _ = key;
    let org_base = here.split("/apikeys/").next().unwrap_or("");
    let policies = routing
        .as_ref()
        .and_then(|r| r["policies"].as_array().cloned())
        .unwrap_or_default();
    // Granted models by type, in the catalog's order.
    let mut types: Vec<(String, Vec<&Value>)> = Vec::new();
    for model in rows(models) {
        if !granted.iter().any(|g| g == s(model, "id")) {
            continue;
        }
        let kind = s(model, "type").to_owned();
        match types.iter_mut().find(|(t, _)| *t == kind) {
            Some((_, list)) => list.push(model),
            None => types.push((kind, vec![model])),
        }
    }
    let manages = matches!(ctx.role, Role::SuperAdmin | Role::OrgAdmin | Role::Manager);
    html! {
        section #routing aria-labelledby="routing-h" {
            h2 #routing-h { "Routing" }
            p {
                "Organisation smart routing: "
                @match settings.and_then(|s| s["routingEnabled"].as_bool()) {
                    Some(true) => { (badge("on", true)) }
                    Some(false) => { (badge("off", false)) " — policies are kept but not applied until it is switched on" }
                    None => { "ask an organisation administrator" }
                }
                " (" a href={ (org_base) "/settings" } { "settings" } ")."
            }
            @if routing.is_none() { (layout::empty("You may not see this key's routing.")) }
            @else if types.is_empty() { (layout::empty("Grant models to this key first: a policy routes between granted models of one type.")) }
            @for (kind, candidates) in &types {
                @let policy = policies.iter().find(|p| s(p, "modelType") == kind).cloned();
                @let sent = state.fields.get("modelType") == kind;
                @let state = if sent { state.clone() } else { routing_values(kind, policy.as_ref()) };
                div.card {
                    h3 { "Type " (kind) ": " @if policy.is_some() { (badge("policy set", true)) } @else { "no policy (the requested model only)" } }
                    @if manages {
                        form method="post" action={ (here) "/routing" } {
                            (csrf_field(ctx))
                            input type="hidden" name="form" value="routing";
                            input type="hidden" name="modelType" value=(kind);
                            @if sent { (state.summary()) }
                            (forms::select(&state, &format!("{kind}.strategy"), "Strategy", &STRATEGIES.iter().map(|(v, l)| ((*v).to_owned(), (*l).to_owned())).collect::<Vec<_>>(), None))
                            (forms::checkboxes(&state, &format!("{kind}.triggers"), "Try the next candidate on", &TRIGGERS.iter().map(|(v, l)| ((*v).to_owned(), (*l).to_owned())).collect::<Vec<_>>()))
                            fieldset.field.invalid[sent && state_error(&state, &format!("{kind}.candidates"))] {
                                legend { "Candidates (granted " (kind) " models)" }
                                p.help { "Give an order (1, 2, …) to each model to route to; leave it empty to leave the model out. Weights apply to the weighted strategy." }
                                @for model in candidates {
                                    @let mid = s(model, "id");
                                    div.candidate {
                                        span { (s(model, "name")) }
                                        (forms::input(&state, &format!("order.{mid}"), "Order", "number", false, None))
                                        (forms::input(&state, &format!("weight.{mid}"), "Weight", "number", false, None))
                                    }
                                }
                                @if sent { @if let Some((Some(field), message)) = &state.error { @if *field == format!("{kind}.candidates") { small.field-error { (message) } } } }
                            }
                            (forms::input(&state, &format!("{kind}.maxRetries"), "Max retries", "number", false, Some("Extra attempts after the first, 0–10.")))
                            (forms::input(&state, &format!("{kind}.retryDelayMs"), "Retry delay (ms)", "number", false, Some("Pause between attempts, 0–60000.")))
                            button type="submit" { "Save routing" }
                        }
                    } @else if let Some(policy) = &policy {
                        pre { (serde_json::to_string_pretty(policy).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

fn state_error(state: &FormState, field: &str) -> bool {
    matches!(&state.error, Some((Some(f), _)) if f == field)
}

/// A stored policy as the routing form's fields.
fn routing_values(kind: &str, policy: Option<&Value>) -> FormState {
    let mut pairs: Vec<(String, String)> = vec![("modelType".into(), kind.to_owned())];
    match policy {
        None => {
            pairs.push((format!("{kind}.strategy"), "failover".into()));
            pairs.push((format!("{kind}.triggers"), "5xx".into()));
            pairs.push((format!("{kind}.triggers"), "timeout".into()));
        }
        Some(policy) => {
            pairs.push((format!("{kind}.strategy"), s(policy, "strategy").to_owned()));
            for trigger in policy["triggers"].as_array().cloned().unwrap_or_default() {
                pairs.push((
                    format!("{kind}.triggers"),
                    trigger.as_str().unwrap_or("").to_owned(),
                ));
            }
            for (i, candidate) in policy["candidates"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let mid = s(candidate, "modelId");
                let order = candidate["priority"].as_i64().unwrap_or(i as i64 + 1);
                pairs.push((format!("order.{mid}"), order.to_string()));
                if let Some(weight) = candidate["weight"].as_u64() {
                    pairs.push((format!("weight.{mid}"), weight.to_string()));
                }
            }
            pairs.push((format!("{kind}.maxRetries"), text(policy, "maxRetries")));
            pairs.push((format!("{kind}.retryDelayMs"), text(policy, "retryDelayMs")));
        }
    }
    FormState {
        fields: Fields(pairs),
        error: None,
        open: false,
        id_prefix: "",
    }
}

/// The whole routing document with the sent type's policy replaced (or removed when no
/// candidate has an order), or the field at fault. The form's fields are named
/// `{modelType}.{field}` (one form per type on the page), candidates `order.{modelId}`.
fn routing_body(current: &Value, fields: &Fields) -> Result<Value, (String, &'static str)> {
    let kind = fields.get("modelType");
    let field = |name: &str| format!("{kind}.{name}");
    let number = |name: &str| -> Result<Option<i64>, ()> {
        match fields.opt(name) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| ()),
        }
    };
    let not_whole = || (field("candidates"), "Orders and weights are whole numbers.");
    let mut candidates: Vec<(i64, usize, Value)> = Vec::new();
    for (i, (name, _)) in fields.0.iter().enumerate() {
        let Some(model) = name.strip_prefix("order.") else {
            continue;
        };
        let order = number(name).map_err(|_| not_whole())?;
        let weight = number(&format!("weight.{model}")).map_err(|_| not_whole())?;
        if let Some(order) = order {
            let mut candidate = json!({"modelId": model, "priority": order});
            if let Some(weight) = weight {
                if weight < 0 {
                    return Err((field("candidates"), "Weights are 0 or more."));
                }
                candidate["weight"] = json!(weight);
            }
            candidates.push((order, i, candidate));
        }
    }
    // Failover and the others read the list order: sort by the order given.
    candidates.sort_by_key(|(order, i, _)| (*order, *i));
    let retries = match fields.opt(&field("maxRetries")).map(str::parse::<u32>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err((field("maxRetries"), "Enter a whole number from 0 to 10.")),
    };
    let delay = match fields.opt(&field("retryDelayMs")).map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Err((
                field("retryDelayMs"),
                "Enter a whole number of milliseconds.",
            ))
        }
    };
    let mut policies: Vec<Value> = current["policies"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| s(p, "modelType") != kind)
        .collect();
    if !candidates.is_empty() {
        policies.push(json!({
            "modelType": kind,
            "strategy": fields.get(&field("strategy")),
            "triggers": fields.all(&field("triggers")),
            "candidates": candidates.into_iter().map(|(_, _, c)| c).collect::<Vec<_>>(),
            "maxRetries": retries,
            "retryDelayMs": delay,
        }));
    }
    Ok(json!({"policies": policies}))
}

/// `POST /{org}/apikeys/{id}/models/{modelId}/remove`: takes a model grant back.
pub async fn remove_grant(
    ctx: Ctx,
    Path((org, id, model)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    super::write_then(
        &ctx,
        Method::DELETE,
        &api(&org, &format!("/apikeys/{id}/model-access/{model}")),
        None,
        &format!("/{org}/apikeys/{id}?done=ungrant"),
    )
    .await
}
