//! The console's pages, one module per area: sign-in and invitations ([`auth`]), the operator
//! family ([`admin`]), and the organisation family — catalog (providers, models, MCP servers),
//! people (teams, users, invitations), API keys, budgets and quotas, reports (dashboard, usage,
//! invoices, playground) and settings.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod keys;
pub mod people;
pub mod reports;
pub mod rules;
pub mod settings;

use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::Value;

use super::client::encode;
use super::layout::{self, Scope};
use super::session::Ctx;
use crate::api::error::ApiError;

/// What a page handler answers: the page, or the page that explains why not.
pub type Page = Result<Response, Response>;

/// The organisation of an `/{organisationId}/…` path. Only object ids are organisation ids, so
/// anything else (`/v1/…`, `/api/…`) stays the JSON 404 of an unknown route.
pub fn org_scope(org: &str) -> Result<Scope, Response> {
    let is_id = org.len() == 25
        && org.starts_with('c')
        && org
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if is_id {
        Ok(Scope::Org(org.to_owned()))
    } else {
        Err(ApiError::NotFound("no such route".into()).into_response())
    }
}

/// Route layer of the organisation family: a path whose first segment is not an organisation id
/// (`/v1beta/models`, `/api/…`) answers the JSON 404 of an unknown route.
pub async fn organisation_paths_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let first = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match org_scope(&first) {
        Ok(_) => next.run(request).await,
        Err(not_found) => not_found,
    }
}

/// `/api/organisations/{org}` + `rest`.
pub fn api(org: &str, rest: &str) -> String {
    format!("/api/organisations/{}{rest}", encode(org))
}

/// The page for a write the API refused outright (401, 403, 404): no form to show it next to.
pub fn refused(ctx: &Ctx, answer: &crate::console::client::Answer) -> Option<Response> {
    match answer.status {
        http::StatusCode::UNAUTHORIZED
        | http::StatusCode::FORBIDDEN
        | http::StatusCode::NOT_FOUND => ctx.page_answer(answer.clone()).err(),
        _ => None,
    }
}

/// After a successful write: back to `to` (Post/Redirect/Get, so a reload does not resend).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `?cursor=` of a list page, passed on to the API.
pub fn cursor_query(query: &std::collections::HashMap<String, String>) -> String {
    match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(cursor) => format!("?cursor={}", encode(cursor)),
        None => String::new(),
    }
}

/// A generic table: headers, and one row of cells per item.
pub fn table(headers: &[&str], items: &[Value], row: impl Fn(&Value) -> Markup) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { @for h in headers { th scope="col" { (h) } } } }
                tbody { @for item in items { (row(item)) } }
            }
        }
    }
}

/// A name → id lookup for showing names instead of ids.
pub fn names(list: &Value) -> std::collections::HashMap<String, String> {
    layout::rows(list)
        .iter()
        .filter_map(|item| {
            let id = item["id"].as_str()?;
            let name = item["name"]
                .as_str()
                .or_else(|| item["email"].as_str())
                .unwrap_or(id);
            Some((id.to_owned(), name.to_owned()))
        })
        .collect()
}

/// Who may write on a page, for showing or hiding its forms (the API refuses regardless).
pub fn is_admin(ctx: &Ctx) -> bool {
    matches!(
        ctx.role,
        odock_core::Role::SuperAdmin | odock_core::Role::OrgAdmin
    )
}

/// A collapsible form section, open when it was sent and failed.
pub fn disclosure(summary: &str, open: bool, content: Markup) -> Markup {
    html! {
        details.panel open[open] {
            summary { (summary) }
            (content)
        }
    }
}

/// A destructive action behind a confirmation that needs no JavaScript: a disclosure whose
/// content says what will happen, next to the real submit button.
pub fn confirm_action(
    ctx: &Ctx,
    action: &str,
    summary: &str,
    warning: &str,
    button: &str,
) -> Markup {
    html! {
        details.confirm {
            summary { (summary) }
            div.confirm-body {
                p { (warning) }
                form.inline method="post" action=(action) {
                    (layout::csrf_field(ctx))
                    button.danger type="submit" { (button) }
                }
            }
        }
    }
}

/// A write with nothing to show on success but `back`; a refusal is its page and any other failure
/// (a conflict such as "still in use") an error page with the API's message.
pub async fn write_then(
    ctx: &Ctx,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
    back: &str,
) -> Page {
    let answer = ctx.call(method, path, body).await;
    if answer.ok() {
        return Ok(see_other(back));
    }
    if let Some(page) = refused(ctx, &answer) {
        return Err(page);
    }
    Err(layout::error_in_shell(
        ctx,
        answer.status,
        "Not done",
        &answer.message(),
    ))
}

/// A form state pre-filled from an object's current values (an edit form not sent yet).
pub fn prefilled(pairs: Vec<(&str, String)>) -> crate::console::forms::FormState {
    crate::console::forms::FormState {
        fields: crate::console::session::Fields(
            pairs.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
        ),
        error: None,
        open: false,
        id_prefix: "",
    }
}

/// The page of an action path that does not exist.
pub fn no_such_action(ctx: &Ctx) -> Response {
    layout::error_in_shell(
        ctx,
        http::StatusCode::NOT_FOUND,
        "Not found",
        "There is no such action here.",
    )
}
