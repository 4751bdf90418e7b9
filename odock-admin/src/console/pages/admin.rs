//! The operator family `/admin/*` (SUPER_ADMIN; the API answers 403 to anyone else): organisations
//! with their creation, cross-organisation lists with an organisation filter, usage across
//! organisations, the audit log and server links.

use std::collections::HashMap;

use axum::extract::Query;
use http::{Method, StatusCode};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::{disclosure, names, see_other, table, Page};
use crate::console::client::encode;
use crate::console::forms::{self, FormState};
use crate::console::layout::{self, badge, csrf_field, pager, rows, s, text, Scope};
use crate::console::session::{Ctx, Fields};

type Params = Query<HashMap<String, String>>;
/// One cell of an admin list.
type Cell = fn(&Value) -> Markup;

/// Refuses anyone but SUPER_ADMIN before any call (the API would refuse each call too).
fn operator(ctx: &Ctx) -> Result<(), axum::response::Response> {
    if ctx.is_super_admin() {
        Ok(())
    } else {
        Err(layout::error_in_shell(
            ctx,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "The admin pages are for Odock's operators (SUPER_ADMIN). Your organisation's pages are in the menu.",
        ))
    }
}

/// `?organisationId=` and `?cursor=` of an admin list, for the API and for the pager.
fn list_query(query: &HashMap<String, String>) -> (String, String) {
    let org = query.get("organisationId").filter(|o| !o.is_empty());
    let mut api = vec!["limit=50".to_owned()];
    let mut page = Vec::new();
    if let Some(org) = org {
        api.push(format!("organisationId={}", encode(org)));
        page.push(format!("organisationId={}", encode(org)));
    }
    if let Some(cursor) = query.get("cursor").filter(|c| !c.is_empty()) {
        api.push(format!("cursor={}", encode(cursor)));
    }
    (api.join("&"), page.join("&"))
}

fn org_filter(slug: &str, orgs: &Value, query: &HashMap<String, String>) -> Markup {
    let chosen = query
        .get("organisationId")
        .map(String::as_str)
        .unwrap_or("");
    html! {
        form.filters method="get" action={ "/admin/" (slug) } {
            div.field {
                label for="a-org" { "Organisation" }
                select #a-org name="organisationId" {
                    option value="" { "All organisations" }
                    @for o in rows(orgs) { option value=(s(o, "id")) selected[s(o, "id") == chosen] { (s(o, "name")) } }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

/// One cross-organisation list page: `columns` are `(header, cell)`; the name links to the item's
/// detail page in its organisation.
async fn cross_list(
    ctx: Ctx,
    query: HashMap<String, String>,
    slug: &str,
    title: &str,
    api_path: &str,
    columns: &[(&str, Cell)],
) -> Page {
    operator(&ctx)?;
    let orgs = ctx.get("/api/admin/organisations?limit=500").await?;
    let org_names = names(&orgs);
    let (api_query, page_query) = list_query(&query);
    let list = ctx.get(&format!("{api_path}?{api_query}")).await?;
    let mut headers = vec!["Name", "Organisation"];
    headers.extend(columns.iter().map(|(h, _)| *h));
    let content = html! {
        (org_filter(slug, &orgs, &query))
        @if rows(&list).is_empty() { (layout::empty("Nothing here yet in any organisation.")) }
        @else {
            (table(&headers, rows(&list), |item| {
                let org = s(item, "organisationId");
                let name = item["name"].as_str().or_else(|| item["email"].as_str()).unwrap_or("—");
                html! { tr {
                    td { a href={ "/" (org) "/" (slug) "/" (s(item, "id")) } { (name) } }
                    td { a href={ "/" (org) "/dashboard" } { (org_names.get(org).map_or(org, String::as_str)) } }
                    @for (_, cell) in columns { td { (cell(item)) } }
                } }
            }))
        }
        (pager(&list, &format!("/admin/{slug}?{page_query}")))
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &Scope::Admin,
        slug,
        title,
        content,
    )))
}

fn cell_type(v: &Value) -> Markup {
    html! { (s(v, "type")) }
}
fn cell_enabled(v: &Value) -> Markup {
    let on = v["enabled"].as_bool().unwrap_or(false);
    badge(if on { "enabled" } else { "disabled" }, on)
}
fn cell_created(v: &Value) -> Markup {
    html! { (layout::when(v, "createdAt")) }
}
fn cell_role(v: &Value) -> Markup {
    html! { (s(v, "role")) }
}
fn cell_status(v: &Value) -> Markup {
    badge(s(v, "status"), s(v, "status") == "ACTIVE")
}
fn cell_email(v: &Value) -> Markup {
    html! { (s(v, "email")) }
}
fn cell_preview(v: &Value) -> Markup {
    html! { span.mono { (s(v, "preview")) } }
}
fn cell_revoked(v: &Value) -> Markup {
    let revoked = v["revoked"].as_bool().unwrap_or(false);
    badge(if revoked { "revoked" } else { "active" }, !revoked)
}
fn cell_slug(v: &Value) -> Markup {
    html! { span.mono { (s(v, "slug")) } }
}
fn cell_transport(v: &Value) -> Markup {
    html! { (s(v, "transport")) }
}
fn cell_owner(v: &Value) -> Markup {
    html! { (s(v, "ownerType")) }
}
fn cell_amount(v: &Value) -> Markup {
    html! { (layout::usd(layout::int(v, "amountNanos"))) " / " (s(v, "period")) }
}
fn cell_limit(v: &Value) -> Markup {
    html! { (text(v, "limit")) " " (s(v, "metric")) " / " (s(v, "period")) }
}

/// `GET /admin/teams`: every organisation's teams (SUPER_ADMIN).
pub async fn teams(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "teams",
        "Teams",
        "/api/admin/teams",
        &[("Created", cell_created as Cell)],
    )
    .await
}
/// `GET /admin/users`: every organisation's users (SUPER_ADMIN).
pub async fn users(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "users",
        "Users",
        "/api/admin/users",
        &[
            ("Email", cell_email as Cell),
            ("Role", cell_role as Cell),
            ("Status", cell_status as Cell),
        ],
    )
    .await
}
/// `GET /admin/providers`: every organisation's providers (SUPER_ADMIN).
pub async fn providers(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "providers",
        "Providers",
        "/api/admin/providers",
        &[
            ("Type", cell_type as Cell),
            ("Enabled", cell_enabled as Cell),
        ],
    )
    .await
}
/// `GET /admin/models`: every organisation's models (SUPER_ADMIN).
pub async fn models(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "models",
        "Models",
        "/api/admin/models",
        &[
            ("Upstream id", cell_slug as Cell),
            ("Type", cell_type as Cell),
            ("Enabled", cell_enabled as Cell),
        ],
    )
    .await
}
/// `GET /admin/mcp-servers`: every organisation's MCP servers (SUPER_ADMIN).
pub async fn mcp_servers(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "mcp-servers",
        "MCP servers",
        "/api/admin/mcp-servers",
        &[
            ("Slug", cell_slug as Cell),
            ("Transport", cell_transport as Cell),
            ("Enabled", cell_enabled as Cell),
        ],
    )
    .await
}
/// `GET /admin/apikeys`: every organisation's API keys (SUPER_ADMIN).
pub async fn apikeys(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "apikeys",
        "API keys",
        "/api/admin/apikeys",
        &[
            ("Preview", cell_preview as Cell),
            ("Type", cell_type as Cell),
            ("State", cell_revoked as Cell),
        ],
    )
    .await
}
/// `GET /admin/budgets`: every organisation's budgets (SUPER_ADMIN).
pub async fn budgets(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "budgets",
        "Budgets",
        "/api/admin/budgets",
        &[
            ("Owner", cell_owner as Cell),
            ("Amount", cell_amount as Cell),
        ],
    )
    .await
}
/// `GET /admin/quotas`: every organisation's quotas (SUPER_ADMIN).
pub async fn quotas(ctx: Ctx, Query(q): Params) -> Page {
    cross_list(
        ctx,
        q,
        "quotas",
        "Quotas",
        "/api/admin/quotas",
        &[("Owner", cell_owner as Cell), ("Limit", cell_limit as Cell)],
    )
    .await
}

/// The first page's size of a list, with `+` when there are more.
fn count_of(list: &Option<Value>) -> String {
    match list {
        Some(list) => format!(
            "{}{}",
            rows(list).len(),
            if list["nextCursor"].is_string() {
                "+"
            } else {
                ""
            }
        ),
        None => "—".into(),
    }
}

/// `GET /admin/dashboard`: object counts across organisations (SUPER_ADMIN).
pub async fn dashboard(ctx: Ctx) -> Page {
    operator(&ctx)?;
    let mut counts = Vec::new();
    for (label, slug) in [
        ("Organisations", "organisations"),
        ("Users", "users"),
        ("Teams", "teams"),
        ("Providers", "providers"),
        ("Models", "models"),
        ("MCP servers", "mcp-servers"),
        ("API keys", "apikeys"),
    ] {
        counts.push((
            label,
            slug,
            count_of(&ctx.get_opt(&format!("/api/admin/{slug}?limit=500")).await),
        ));
    }
    let recent = ctx
        .get_opt("/api/admin/usage-records?limit=20")
        .await
        .unwrap_or(Value::Null);
    let content = html! {
        div.counts {
            @for (label, slug, n) in &counts {
                a.count href={ "/admin/" (slug) } { span.kpi-value { (n) } span.kpi-label { (label) } }
            }
        }
        section aria-labelledby="recent-h" {
            h2 #recent-h { "Latest requests, all organisations" }
            (super::reports::records_table(&recent, ""))
        }
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &Scope::Admin,
        "dashboard",
        "Operator dashboard",
        content,
    )))
}

fn organisation_form(ctx: &Ctx, state: &FormState) -> Markup {
    disclosure(
        "Create an organisation",
        state.open,
        html! {
            form method="post" action="/admin/organisations" {
                (csrf_field(ctx))
                (state.summary())
                (forms::input(state, "name", "Name", "text", true, None))
                (forms::input(state, "contact", "Contact", "text", false, Some("Optional, e.g. an email address.")))
                button type="submit" { "Create organisation" }
            }
        },
    )
}

async fn organisations_page(
    ctx: &Ctx,
    query: &HashMap<String, String>,
    state: &FormState,
    status: StatusCode,
) -> Page {
    operator(ctx)?;
    let cursor = query
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| format!("&cursor={}", encode(c)))
        .unwrap_or_default();
    let list = ctx
        .get(&format!("/api/admin/organisations?limit=50{cursor}"))
        .await?;
    let content = html! {
        (organisation_form(ctx, state))
        @if rows(&list).is_empty() { (layout::empty("No organisation yet. Create the first one to start.")) }
        @else {
            (table(&["Name", "Slug", "Contact", "Status", "Created"], rows(&list), |o| html! { tr {
                td { a href={ "/" (s(o, "id")) "/dashboard" } { (s(o, "name")) } }
                td.mono { (s(o, "slug")) }
                td { (text(o, "contact")) }
                td { (badge(s(o, "status"), s(o, "status") == "ACTIVE" || s(o, "status") == "active")) }
                td { (layout::when(o, "createdAt")) }
            } }))
        }
        (pager(&list, "/admin/organisations"))
    };
    Ok(layout::respond(
        status,
        layout::page(
            ctx,
            &Scope::Admin,
            "organisations",
            "Organisations",
            content,
        ),
    ))
}

/// `GET /admin/organisations`: the organisations and the form creating one (SUPER_ADMIN).
pub async fn organisations(ctx: Ctx, Query(q): Params) -> Page {
    organisations_page(&ctx, &q, &FormState::default(), StatusCode::OK).await
}

/// `POST /admin/organisations`: creates an organisation (SUPER_ADMIN).
pub async fn create_organisation(ctx: Ctx, fields: Fields) -> Page {
    operator(&ctx)?;
    ctx.check_form(&fields)?;
    let mut body = json!({"name": fields.get("name")});
    if let Some(contact) = fields.opt("contact") {
        body["contact"] = json!(contact);
    }
    let answer = ctx
        .call(Method::POST, "/api/admin/organisations", Some(&body))
        .await;
    if answer.ok() {
        return Ok(see_other(&format!("/{}/dashboard", s(&answer.body, "id"))));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    organisations_page(&ctx, &HashMap::new(), &state, answer.status).await
}

/// `GET /admin/usage`: usage records of every organisation (SUPER_ADMIN).
pub async fn usage(ctx: Ctx, Query(q): Params) -> Page {
    operator(&ctx)?;
    let orgs = ctx.get("/api/admin/organisations?limit=500").await?;
    let (api_query, page_query) = list_query(&q);
    let request = q
        .get("requestId")
        .filter(|r| !r.is_empty())
        .map(|r| format!("&requestId={}", encode(r)))
        .unwrap_or_default();
    let list = ctx
        .get(&format!("/api/admin/usage-records?{api_query}{request}"))
        .await?;
    let content = html! {
        (org_filter("usage", &orgs, &q))
        p.help { "Pick an organisation's own usage page for its charts and filters." }
        (super::reports::records_table(&list, ""))
        (pager(&list, &format!("/admin/usage?{page_query}")))
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &Scope::Admin,
        "usage",
        "Usage, all organisations",
        content,
    )))
}

/// `GET /admin/invoices`: links to each organisation's invoices (SUPER_ADMIN).
pub async fn invoices(ctx: Ctx) -> Page {
    operator(&ctx)?;
    let orgs = ctx.get("/api/admin/organisations?limit=500").await?;
    let content = html! {
        p { "Invoices are per organisation. Choose one:" }
        @if rows(&orgs).is_empty() { (layout::empty("No organisation yet.")) }
        ul { @for o in rows(&orgs) { li { a href={ "/" (s(o, "id")) "/invoices" } { (s(o, "name")) } } } }
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &Scope::Admin,
        "invoices",
        "Invoices",
        content,
    )))
}

/// `GET /admin/playground`: the playground form without an organisation's models (SUPER_ADMIN).
pub async fn playground(ctx: Ctx) -> Page {
    operator(&ctx)?;
    let content = super::reports::playground_form(&[], &[], None);
    Ok(layout::ok(layout::page(
        &ctx,
        &Scope::Admin,
        "playground",
        "Playground",
        content,
    )))
}

/// `GET /admin/settings`: the server's settings and the latest audit entries (SUPER_ADMIN).
pub async fn settings(ctx: Ctx) -> Page {
    operator(&ctx)?;
    let audit = ctx
        .get_opt("/api/admin/audit-log?limit=20")
        .await
        .unwrap_or(Value::Null);
    let content = html! {
        section.card {
            h2 { "Server" }
            ul {
                li { a href="/api/openapi.json" { "OpenAPI document of the admin API" } }
                li { a href="/v1/health" { "Health" } " · " a href="/v1/healthz" { "Readiness" } }
                li { a href="/account/password" { "Change your password" } }
            }
        }
        section.card aria-labelledby="audit-h" {
            h2 #audit-h { "Latest administrative changes" }
            @if rows(&audit).is_empty() { (layout::empty("No change recorded yet.")) }
            @else {
                (table(&["When", "Action", "Target", "Actor"], rows(&audit), |e| html! { tr {
                    td { (layout::when(e, "at")) } td { (s(e, "action")) } td { (s(e, "targetType")) " " span.mono { (text(e, "targetId")) } } td { (text(e, "actorUserId")) }
                } }))
            }
        }
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &Scope::Admin,
        "settings",
        "Settings",
        content,
    )))
}
