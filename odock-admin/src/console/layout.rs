//! The page shell (header, navigation by scope and role, main), message pages, and the small
//! formatting helpers every page uses (money in USD from nanos, times, JSON fields).

use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use odock_core::Role;
use serde_json::Value;

use super::ctx::{Ctx, CSRF_FIELD};

/// Which family of pages a page belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/admin/*`, the operator's cross-organisation view.
    Admin,
    /// `/{organisationId}/*`.
    Org(String),
}

impl Scope {
    /// The URL prefix of the family.
    pub fn base(&self) -> String {
        match self {
            Scope::Admin => "/admin".into(),
            Scope::Org(id) => format!("/{id}"),
        }
    }
}

/// The organisation pages and who sees them in the navigation (the API decides what each page
/// shows; a role that may not use a page gets 403 there too).
const ORG_PAGES: &[(&str, &str, &[Role])] = &[
    ("dashboard", "Dashboard", ALL),
    ("providers", "Providers", STAFF),
    ("models", "Models", ALL),
    ("mcp-servers", "MCP servers", ALL),
    ("teams", "Teams", ALL),
    ("users", "Users", STAFF),
    ("apikeys", "API keys", ALL),
    ("budgets", "Budgets", ALL),
    ("quotas", "Quotas", ALL),
    ("usage", "Usage", ALL),
    ("invoices", "Invoices", ALL),
    ("playground", "Playground", ALL),
    ("settings", "Settings", ALL),
];

const ADMIN_PAGES: &[(&str, &str)] = &[
    ("dashboard", "Dashboard"),
    ("organisations", "Organisations"),
    ("teams", "Teams"),
    ("users", "Users"),
    ("providers", "Providers"),
    ("models", "Models"),
    ("mcp-servers", "MCP servers"),
    ("apikeys", "API keys"),
    ("budgets", "Budgets"),
    ("quotas", "Quotas"),
    ("usage", "Usage"),
    ("invoices", "Invoices"),
    ("playground", "Playground"),
    ("settings", "Settings"),
];

const ALL: &[Role] = &[Role::SuperAdmin, Role::OrgAdmin, Role::Manager, Role::User];
const STAFF: &[Role] = &[Role::SuperAdmin, Role::OrgAdmin, Role::Manager];

/// Whether `role` sees the organisation page `page` in the navigation.
pub fn org_page_visible(role: Role, page: &str) -> bool {
    ORG_PAGES
        .iter()
        .any(|(slug, _, roles)| *slug == page && roles.contains(&role))
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::SuperAdmin => "Super admin",
        Role::OrgAdmin => "Organisation admin",
        Role::Manager => "Manager",
        Role::User => "User",
    }
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Odock" }
                // No favicon request (it would be a 404 in every browser console).
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body { (body) }
        }
    }
}

/// A complete page inside the signed-in shell.
pub fn page(ctx: &Ctx, scope: &Scope, active: &str, title: &str, content: Markup) -> Markup {
    let name = ctx.user["name"]
        .as_str()
        .or_else(|| ctx.user["email"].as_str())
        .unwrap_or("Admin token");
    let pages: Vec<(String, &str)> = match scope {
        Scope::Admin => ADMIN_PAGES
            .iter()
            .map(|(slug, label)| (format!("/admin/{slug}"), *label))
            .collect(),
        Scope::Org(id) => ORG_PAGES
            .iter()
            .filter(|(slug, _, _)| org_page_visible(ctx.role, slug))
            .map(|(slug, label, _)| (format!("/{id}/{slug}"), *label))
            .collect(),
    };
    let is_active = |href: &str| href.rsplit('/').next() == Some(active);
    let current = pages
        .iter()
        .find(|(href, _)| is_active(href))
        .map(|(_, l)| *l);
    let links = html! {
        ul {
            @for (href, label) in &pages {
                li { a href=(href) aria-current=[is_active(href).then_some("page")] { (label) } }
            }
        }
    };
    document(
        title,
        html! {
            a.skip href="#main" { "Skip to content" }
            header.top {
                a.brand href="/" { "Odock" }
                @if ctx.is_super_admin() {
                    nav.families aria-label="Consoles" {
                        a href="/admin/dashboard" aria-current=[(*scope == Scope::Admin).then_some("page")] { "Admin" }
                        @if let Scope::Org(id) = scope {
                            a href={ "/" (id) "/dashboard" } aria-current="page" { "Organisation" }
                        }
                    }
                }
                div.account {
                    span { (name) " · " (role_label(ctx.role)) }
                    a href="/account/password" { "Password" }
                    form method="post" action="/logout" {
                        (csrf_field(ctx))
                        button.link type="submit" { "Sign out" }
                    }
                }
            }
            div.shell {
                // Wide screens: the side bar. Narrow screens: the same links behind a menu button
                // (a disclosure, so it works from the keyboard and without script); CSS shows one.
                nav.side aria-label="Pages" { (links) }
                details.menu {
                    summary { "Menu" @if let Some(label) = current { span.current { " · " (label) } } }
                    nav aria-label="Pages (menu)" { (links) }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (content)
                }
            }
        },
    )
}

/// A page outside the shell (sign-in, invitation).
pub fn bare(title: &str, content: Markup) -> Markup {
    document(
        title,
        html! {
            main.bare #main {
                p.brand { "Odock" }
                h1 { (title) }
                (content)
            }
        },
    )
}

/// An HTML response.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A 200 HTML response.
pub fn ok(markup: Markup) -> Response {
    respond(StatusCode::OK, markup)
}

/// A message page outside the shell (used before anyone is known to be signed in).
pub fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    respond(
        status,
        bare(
            title,
            html! { p.error role="alert" { (message) } p { a href="/" { "Back to the console" } } },
        ),
    )
}

/// An error inside the shell of the caller's own home.
pub fn error_in_shell(ctx: &Ctx, status: StatusCode, title: &str, message: &str) -> Response {
    let scope = match &ctx.organisation_id {
        Some(org) => Scope::Org(org.clone()),
        None => Scope::Admin,
    };
    respond(
        status,
        page(
            ctx,
            &scope,
            "",
            title,
            html! { p.error role="alert" { (message) } },
        ),
    )
}

/// The hidden CSRF field of a form.
pub fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf); }
}

/// A notice after a successful write.
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// A string field of a JSON object ("" when absent).
pub fn s<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// A field shown as text: strings as they are, numbers and booleans printed, absent as "—".
pub fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        _ => "—".into(),
    }
}

/// `value[key]` as an integer (also from a numeric string); 0 when missing.
pub fn int(value: &Value, key: &str) -> i64 {
    value[key]
        .as_i64()
        .or_else(|| value[key].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Nanos USD as dollars: `$12.345678` (six decimals, as budgets are shown).
pub fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    let micros = nanos.div_ceil(1_000);
    format!("{sign}${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Nanos USD per 1M tokens as the dollar amount typed in forms (`2.5`).
pub fn usd_plain(nanos: i64) -> String {
    let whole = nanos / 1_000_000_000;
    let frac = (nanos % 1_000_000_000).unsigned_abs();
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Parses a dollar amount (`12`, `0.35`, `1.000000001`) into nanos; `None` when it is not one.
pub fn parse_usd(text: &str) -> Option<i64> {
    let text = text.trim().trim_start_matches('$');
    if text.is_empty() {
        return None;
    }
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 9
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || (whole.is_empty() && frac.is_empty())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    whole.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// An RFC 3339 time as `2026-03-01 12:00 UTC`.
pub fn when(value: &Value, key: &str) -> String {
    match value[key].as_str() {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()
            })
            .unwrap_or_else(|_| t.to_owned()),
        None => "—".into(),
    }
}

/// A "next page" link when the list has more.
pub fn pager(list: &Value, base: &str) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        @if let Some(next) = list["nextCursor"].as_str() {
            nav.pager aria-label="Pagination" {
                a href={ (base) (sep) "cursor=" (super::client::encode(next)) } rel="next" { "Next page →" }
            }
        }
    }
}

/// The rows of a list answer.
pub fn rows(list: &Value) -> &[Value] {
    list["data"].as_array().map_or(&[], Vec::as_slice)
}

/// An empty-state paragraph.
pub fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// A status badge.
pub fn badge(text: &str, good: bool) -> Markup {
    html! { span.badge.good[good].bad[!good] { (text) } }
}

/// Raw pre-escaped markup (SVG built by the chart helpers).
pub fn raw(svg: String) -> Markup {
    PreEscaped(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_trip_through_nanos() {
        assert_eq!(parse_usd("2.5"), Some(2_500_000_000));
        assert_eq!(parse_usd("$0.000000001"), Some(1));
        assert_eq!(parse_usd("12"), Some(12_000_000_000));
        assert_eq!(parse_usd("1.2.3"), None);
        assert_eq!(parse_usd("-1"), None);
        assert_eq!(parse_usd("0.0000000001"), None);
        assert_eq!(usd_plain(2_500_000_000), "2.5");
        assert_eq!(usd(1_500_000_001), "$1.500001");
        assert_eq!(usd(0), "$0.000000");
    }
}
