//! Reports over usage: the dashboard, the usage page (KPIs, daily series, status breakdown, top-N,
//! the records table and a record's detail), invoices, and the playground.
//!
//! Charts read the API's usage summary (aggregates); only the table reads records.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use chrono::{Datelike, Duration, TimeZone, Utc};
use maud::{html, Markup};
use serde_json::Value;

use super::{api, org_scope, table, Page};
use crate::console::charts;
use crate::console::client::encode;
use crate::console::layout::{self, badge, rows, s, text, Scope};
use crate::console::session::Ctx;

type Params = Query<HashMap<String, String>>;

/// A table of usage records, linked to their detail when `base` names the organisation.
pub fn records_table(list: &Value, base: &str) -> Markup {
    sorted_records_table(list, base, None)
}

/// The records table's sortable columns: header label and the API's `sort` name.
const SORTABLE: &[(&str, &str)] = &[
    ("Time", "time"),
    ("Latency", "latency"),
    ("Tokens", "tokens"),
    ("Cost", "cost"),
];

/// A header cell: a link that sorts by its column (descending first, then toggling), with
/// `aria-sort` on the column the table is sorted by.
fn sort_header(label: &str, sort: Option<(&str, &str)>) -> Markup {
    let Some((current, link)) = sort else {
        return html! { th scope="col" { (label) } };
    };
    let Some((_, name)) = SORTABLE.iter().find(|(l, _)| *l == label) else {
        return html! { th scope="col" { (label) } };
    };
    let descending = current == format!("-{name}");
    let ascending = current == *name;
    let aria = if descending {
        Some("descending")
    } else if ascending {
        Some("ascending")
    } else {
        None
    };
    let next = if descending {
        (*name).to_owned()
    } else {
        format!("-{name}")
    };
    let sep = if link.contains('?') { '&' } else { '?' };
    html! {
        th scope="col" aria-sort=[aria] {
            a href={ (link) (sep) "sort=" (next) } {
                (label)
                @match aria {
                    Some("descending") => { span aria-hidden="true" { " ↓" } }
                    Some(_) => { span aria-hidden="true" { " ↑" } }
                    None => {}
                }
            }
        }
    }
}

/// The records table; with `sort` = `(current sort, link without sort and cursor)` its Time,
/// Latency, Tokens and Cost headers sort the list.
pub fn sorted_records_table(list: &Value, base: &str, sort: Option<(&str, &str)>) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty(
            "No usage records match. Records appear a few seconds after each gateway request.",
        );
    }
    let headers = [
        "Time", "Request", "Provider", "Model", "Status", "Latency", "Tokens", "Cost",
    ];
    html! {
        div.table-wrap {
            table {
                thead { tr { @for h in headers { (sort_header(h, sort)) } } }
                tbody { @for item in items { (record_row(item, base)) } }
            }
        }
    }
}

fn record_row(r: &Value, base: &str) -> Markup {
    let status = layout::int(r, "httpStatus");
    let link = if base.is_empty() {
        format!("/{}/usage/{}", s(r, "organisationId"), s(r, "id"))
    } else {
        format!("{base}/usage/{}", s(r, "id"))
    };
    html! { tr {
        td { (layout::when(r, "createdAt")) }
        td.mono { a href=(link) { (s(r, "requestId").chars().take(12).collect::<String>()) "…" } }
        td { (s(r, "provider")) }
        td { (text(r, "model")) }
        td { (badge(&status.to_string(), status < 400)) }
        td.num { (layout::int(r, "latencyMs")) " ms" }
        td.num { (layout::int(&r["tokens"], "total")) }
        td.num { (layout::usd(layout::int(r, "costNanosUsd"))) }
    } }
}

/// `[from, to)` of a range preset (`7d`, `30d`, `90d`, `365d`, `all`), as RFC 3339 query values.
fn range(preset: &str) -> Option<(String, String)> {
    let days = match preset {
        "all" => return None,
        "7d" => 7,
        "90d" => 90,
        "365d" => 365,
        _ => 30,
    };
    let now = Utc::now();
    let from = now - Duration::days(days);
    // `to` is exclusive and written in whole seconds: one second ahead, so a record of this very
    // second is in.
    let to = now + Duration::seconds(1);
    Some((
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}

fn kpi(label: &str, value: String) -> Markup {
    html! { div.kpi { span.kpi-label { (label) } span.kpi-value { (value) } } }
}

fn stats_kpis(totals: &Value) -> Markup {
    let rate = totals["successRate"]
        .as_f64()
        .map_or("—".into(), |r| format!("{:.1} %", r * 100.0));
    let p95 = totals["latencyP95Ms"]
        .as_i64()
        .map_or("—".into(), |v| format!("{v} ms"));
    html! {
        div.kpis {
            (kpi("Requests", layout::int(totals, "requests").to_string()))
            (kpi("Cost", layout::usd(layout::int(totals, "costNanosUsd"))))
            (kpi("p95 latency", p95))
            (kpi("Success rate", rate))
            (kpi("Tokens", layout::int(totals, "totalTokens").to_string()))
        }
    }
}

/// `(label, value)` of summary groups for `metric`.
fn series(summary: &Value, metric: &str) -> Vec<(String, f64)> {
    summary["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .map(|g| {
                    let value = match metric {
                        "cost" => layout::int(g, "costNanosUsd") as f64 / 1e9,
                        "tokens" => layout::int(g, "totalTokens") as f64,
                        "errors" => layout::int(g, "errors") as f64,
                        _ => layout::int(g, "requests") as f64,
                    };
                    (s(g, "label").to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How a metric's values are written on charts.
type Formatter = Box<dyn Fn(f64) -> String>;

fn metric_format(metric: &str) -> Formatter {
    match metric {
        "cost" => Box::new(|v| format!("${v:.4}")),
        _ => Box::new(|v| format!("{v:.0}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboard

/// `GET /{org}/dashboard`: the organisation's counts and last 30 days of usage.
pub async fn dashboard(ctx: Ctx, Path(org): Path<String>) -> Page {
    let scope = org_scope(&org)?;
    let base = scope.base();
    let counts = ctx.get(&api(&org, "/dashboard")).await?;
    let (from, to) = range("30d").unwrap_or_default();
    let window = format!("from={}&to={}", encode(&from), encode(&to));
    let daily = ctx
        .get_opt(&api(&org, &format!("/usage/summary?{window}&groupBy=day")))
        .await
        .unwrap_or(Value::Null);
    let top_models = ctx
        .get_opt(&api(
            &org,
            &format!("/usage/summary?{window}&groupBy=model"),
        ))
        .await
        .unwrap_or(Value::Null);
    let top_keys = ctx
        .get_opt(&api(
            &org,
            &format!("/usage/summary?{window}&groupBy=apiKey"),
        ))
        .await
        .unwrap_or(Value::Null);
    let budgets = ctx
        .get_opt(&api(&org, "/budgets?ownerType=ORG&active=true&limit=5"))
        .await;
    let recent = ctx
        .get_opt(&api(&org, "/usage-records?limit=100"))
        .await
        .unwrap_or(Value::Null);
    let errors: Vec<Value> = rows(&recent)
        .iter()
        .filter(|r| layout::int(r, "httpStatus") >= 400)
        .take(5)
        .cloned()
        .collect();
    let mut spend = Vec::new();
    for budget in budgets.as_ref().map(rows).unwrap_or(&[]) {
        if let Some(windows) = ctx
            .get_opt(&api(&org, &format!("/budgets/{}/windows", s(budget, "id"))))
            .await
        {
            spend.push((budget.clone(), windows));
        }
    }
    let count = |key: &str, label: &str, page: &str| {
        html! {
            @if let Some(n) = counts[key].as_i64() {
                a.count href={ (base) "/" (page) } { span.kpi-value { (n) } span.kpi-label { (label) } }
            }
        }
    };
    // Top five by cost; by requests when nothing is priced.
    let top = |summary: &Value| -> (Vec<(String, f64)>, Formatter) {
        let mut items = series(summary, "cost");
        let mut format = metric_format("cost");
        if items.iter().all(|(_, v)| *v == 0.0) {
            items = series(summary, "requests");
            format = metric_format("requests");
        }
        items.truncate(5);
        (items, format)
    };
    let (top_models, models_format) = top(&top_models);
    let (top_keys, keys_format) = top(&top_keys);
    let today = Utc::now().date_naive();
    let days = |metric: &str| {
        charts::fill_days(&series(&daily, metric), today - Duration::days(30), today)
    };
    let content = html! {
        section aria-label="Counts" {
            div.counts {
                (count("apiKeys", "API keys", "apikeys"))
                (count("models", "Models", "models"))
                (count("providers", "Providers", "providers"))
                (count("mcpServers", "MCP servers", "mcp-servers"))
                (count("teams", "Teams", "teams"))
                (count("users", "Users", "users"))
            }
        }
        section aria-labelledby="d30-h" {
            h2 #d30-h { "Last 30 days" }
            @if daily.is_null() { (layout::empty("Usage is not available to your role.")) }
            @else {
                (stats_kpis(&daily["totals"]))
                div.grid2 {
                    figure {
                        figcaption { "Requests per day" }
                        (layout::raw(charts::columns("Requests per day", &days("requests"), &|v: f64| format!("{v:.0}"))))
                    }
                    figure {
                        figcaption { "Cost per day (USD)" }
                        (layout::raw(charts::columns("Cost per day (USD)", &days("cost"), &|v: f64| format!("${v:.4}"))))
                    }
                }
            }
        }
        @if !spend.is_empty() {
            section aria-labelledby="spend-h" {
                h2 #spend-h { "Spend against organisation budgets" }
                @for (budget, windows) in &spend {
                    h3 { a href={ (base) "/budgets/" (s(budget, "id")) } { (s(budget, "name")) } }
                    @if let Some(current) = rows(windows).first() {
                        @let used = layout::int(current, "usedNanos");
                        @let reserved = layout::int(current, "reservedNanos");
                        @let limit = layout::int(budget, "amountNanos");
                        (layout::raw(charts::gauge(used, reserved, limit)))
                        p { (layout::usd(used)) " used of " (layout::usd(limit)) " this window" }
                    }
                }
            }
        }
        div.grid2 {
            section aria-labelledby="tm-h" {
                h2 #tm-h { "Top models" }
                (layout::raw(charts::bars("Top models", &top_models, &*models_format)))
            }
            section aria-labelledby="tk-h" {
                h2 #tk-h { "Top keys" }
                (layout::raw(charts::bars("Top API keys", &top_keys, &*keys_format)))
            }
        }
        section aria-labelledby="err-h" {
            h2 #err-h { "Recent errors" }
            @if errors.is_empty() { (layout::empty("No failed request among the latest 100.")) }
            @else { (records_table(&serde_json::json!({"data": errors}), &base)) }
        }
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &scope,
        "dashboard",
        "Dashboard",
        content,
    )))
}

// ---------------------------------------------------------------------------------------------
// Usage

/// The filters the usage page passes to the records list.
const RECORD_FILTERS: &[&str] = &[
    "status",
    "provider",
    "modelId",
    "teamId",
    "userId",
    "apiKeyId",
    "requestId",
];

/// `GET /{org}/usage`: the usage records the caller sees, filtered.
pub async fn usage(ctx: Ctx, Path(org): Path<String>, Query(query): Params) -> Page {
    let scope = org_scope(&org)?;
    usage_page(&ctx, &scope, &org, &query).await
}

async fn usage_page(ctx: &Ctx, scope: &Scope, org: &str, query: &HashMap<String, String>) -> Page {
    let base = scope.base();
    let preset = query.get("range").map(String::as_str).unwrap_or("30d");
    let metric = query
        .get("metric")
        .map(String::as_str)
        .unwrap_or("requests");
    let breakdown = query
        .get("breakdown")
        .map(String::as_str)
        .unwrap_or("model");
    let period = range(preset);
    let mut record_query = Vec::new();
    let mut summary_query = Vec::new();
    if let Some((from, to)) = &period {
        for q in [&mut record_query, &mut summary_query] {
            q.push(format!("from={}", encode(from)));
            q.push(format!("to={}", encode(to)));
        }
    }
    for key in RECORD_FILTERS {
        if let Some(v) = query.get(*key).filter(|v| !v.is_empty()) {
            record_query.push(format!("{key}={}", encode(v)));
        }
    }
    // The charts (the usage summary) follow every filter but the exact HTTP status and the request
    // id, which only the records table can answer.
    for (name, param) in [
        ("teamId", "teamIds"),
        ("apiKeyId", "apiKeyIds"),
        ("modelId", "modelIds"),
        ("provider", "providers"),
        ("userId", "userIds"),
    ] {
        if let Some(value) = query.get(name).filter(|v| !v.is_empty()) {
            summary_query.push(format!("{param}={}", encode(value)));
        }
    }
    if let Some(cursor) = query.get("cursor").filter(|v| !v.is_empty()) {
        record_query.push(format!("cursor={}", encode(cursor)));
    }
    let sort = query
        .get("sort")
        .filter(|v| !v.is_empty())
        .map_or("-time", String::as_str);
    record_query.push(format!("sort={}", encode(sort)));
    record_query.push("limit=25".into());
    let records = ctx
        .get(&format!(
            "{}?{}",
            api(org, "/usage-records"),
            record_query.join("&")
        ))
        .await?;
    let summary_base = format!("{}?{}", api(org, "/usage/summary"), summary_query.join("&"));
    let daily = ctx.get(&format!("{summary_base}&groupBy=day")).await?;
    let group = match breakdown {
        "apiKey" | "team" | "user" | "provider" | "model" | "status" => breakdown,
        _ => "model",
    };
    let top = ctx.get(&format!("{summary_base}&groupBy={group}")).await?;
    // One column per day of the period (all time: only the days with data).
    let daily_points = match &period {
        Some((from, to)) => {
            let day = |t: &str| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.date_naive());
            match (day(from), day(to)) {
                (Ok(from), Ok(to)) => charts::fill_days(&series(&daily, metric), from, to),
                _ => series(&daily, metric),
            }
        }
        None => series(&daily, metric),
    };
    let mut top_items = series(&top, metric);
    top_items.sort_by(|a, b| b.1.total_cmp(&a.1));
    top_items.truncate(10);
    let models = ctx
        .get_opt(&api(org, "/models?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let keys = ctx
        .get_opt(&api(org, "/apikeys?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let teams = ctx
        .get_opt(&api(org, "/teams?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let choose = |name: &str, label: &str, list: &Value| {
        let chosen = query.get(name).map(String::as_str).unwrap_or("");
        let id = format!("u-{name}");
        html! {
            div.field {
                label for=(id) { (label) }
                select id=(id) name=(name) {
                    option value="" { "any" }
                    @for item in rows(list) { option value=(s(item, "id")) selected[s(item, "id") == chosen] { (s(item, "name")) } }
                }
            }
        }
    };
    let pick = |name: &str, label: &str, values: &[(&str, &str)], chosen: &str| {
        let id = format!("u-{name}");
        html! {
            div.field {
                label for=(id) { (label) }
                select id=(id) name=(name) {
                    @for (v, l) in values { option value=(v) selected[*v == chosen] { (l) } }
                }
            }
        }
    };
    let fmt = metric_format(metric);
    let mut page_query: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "cursor")
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    page_query.sort();
    let here = format!("{base}/usage?{}", page_query.join("&"));
    // The header links keep every filter but start the new order from its first page.
    let unsorted: Vec<&String> = page_query
        .iter()
        .filter(|q| !q.starts_with("sort="))
        .collect();
    let sort_link = format!(
        "{base}/usage?{}",
        unsorted
            .iter()
            .map(|q| q.as_str())
            .collect::<Vec<_>>()
            .join("&")
    );
    let order = match sort.trim_start_matches('-') {
        "cost" => "cost",
        "latency" => "latency",
        "tokens" => "tokens",
        _ => "time",
    };
    let first = match (order, sort.starts_with('-')) {
        ("time", true) => "newest first",
        ("time", false) => "oldest first",
        (_, true) => "highest first",
        (_, false) => "lowest first",
    };
    let order = format!("Sorted by {order}, {first}.");
    let content = html! {
        form.filters method="get" action={ (base) "/usage" } {
            (pick("range", "Period", &[("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"), ("365d", "12 months"), ("all", "All time")], preset))
            div.field {
                label for="u-status" { "HTTP status" }
                input #u-status name="status" type="number" value=(query.get("status").map(String::as_str).unwrap_or("")) placeholder="e.g. 200";
            }
            div.field {
                label for="u-provider" { "Provider" }
                input #u-provider name="provider" type="text" value=(query.get("provider").map(String::as_str).unwrap_or("")) placeholder="openai, mcp, …";
            }
            (choose("modelId", "Model", &models))
            (choose("teamId", "Team", &teams))
            (choose("apiKeyId", "API key", &keys))
            div.field {
                label for="u-requestId" { "Request id" }
                input #u-requestId name="requestId" type="search" value=(query.get("requestId").map(String::as_str).unwrap_or(""));
            }
            (pick("metric", "Metric", &[("requests", "Requests"), ("cost", "Cost"), ("tokens", "Tokens"), ("errors", "Errors")], metric))
            (pick("breakdown", "Top by", &[("model", "Model"), ("apiKey", "API key"), ("team", "Team"), ("user", "User"), ("provider", "Provider"), ("status", "Status class")], group))
            button type="submit" { "Apply" }
        }
        (stats_kpis(&daily["totals"]))
        div.grid2 {
            section aria-labelledby="daily-h" {
                h2 #daily-h { "Daily " (metric) }
                (layout::raw(charts::columns(&format!("Daily {metric}"), &daily_points, &*fmt)))
            }
            section aria-labelledby="status-h" {
                h2 #status-h { "Status" }
                (layout::raw(charts::status_bar(layout::int(&daily["totals"], "successes"), layout::int(&daily["totals"], "errors"))))
                h2 { "Top " (group) " by " (metric) }
                (layout::raw(charts::bars(&format!("Top {group} by {metric}"), &top_items, &*fmt)))
            }
        }
        section aria-labelledby="records-h" {
            h2 #records-h { "Records" }
            p.help { "Charts follow every filter except the HTTP status and request id; the table follows every filter. " (order) " Select a column header to sort by it." }
            (sorted_records_table(&records, &base, Some((sort, &sort_link))))
            (layout::pager(&records, &here))
        }
    };
    Ok(layout::ok(layout::page(
        ctx, scope, "usage", "Usage", content,
    )))
}

fn json_card(title: &str, value: &Value) -> Markup {
    html! {
        @if !value.is_null() && value.as_object().is_none_or(|o| !o.is_empty()) {
            section.card {
                h2 { (title) }
                pre { (serde_json::to_string_pretty(value).unwrap_or_default()) }
            }
        }
    }
}

/// `GET /{org}/usage/{id}`: one usage record.
pub async fn record(ctx: Ctx, Path((org, id)): Path<(String, String)>) -> Page {
    let scope = org_scope(&org)?;
    let record = ctx.get(&api(&org, &format!("/usage-records/{id}"))).await?;
    let status = layout::int(&record, "httpStatus");
    let content = html! {
        dl.facts {
            dt { "Request id" } dd.mono { (s(&record, "requestId")) }
            dt { "Time" } dd { (layout::when(&record, "createdAt")) }
            dt { "Status" } dd { (badge(&status.to_string(), status < 400)) " " (text(&record, "errorCode")) }
            dt { "Provider / model" } dd { (s(&record, "provider")) " / " (text(&record, "model")) }
            dt { "Endpoint" } dd.mono { (s(&record, "endpoint")) }
            dt { "Latency" } dd { (layout::int(&record, "latencyMs")) " ms" }
            dt { "Streamed" } dd { (text(&record, "stream")) }
            dt { "Cost" } dd { (layout::usd(layout::int(&record, "costNanosUsd"))) }
            dt { "API key" } dd.mono { a href={ "/" (org) "/apikeys/" (s(&record, "apiKeyId")) } { (s(&record, "apiKeyId")) } }
            dt { "Trace id" } dd.mono { (text(&record, "traceId")) }
        }
        (json_card("Tokens", &record["tokens"]))
        (json_card("Billing", &record["billing"]))
        (json_card("Provider usage", &record["providerUsage"]))
        (json_card("Routing", &record["routing"]))
        (json_card("Metadata", &record["metadata"]))
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &scope,
        "usage",
        "Usage record",
        content,
    )))
}

// ---------------------------------------------------------------------------------------------
// Invoices

/// `[from, to)` of an invoice period preset, or of the custom dates (end date inclusive).
fn invoice_period(query: &HashMap<String, String>) -> (String, String) {
    let now = Utc::now();
    let month_start = |y: i32, m: u32| {
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .unwrap_or(now)
    };
    let this_month = month_start(now.year(), now.month());
    // Exclusive and in whole seconds: one second ahead, so this second's records are in.
    let end = now + Duration::seconds(1);
    let (from, to) = match query.get("period").map(String::as_str) {
        Some("last-month") => {
            let (y, m) = if now.month() == 1 {
                (now.year() - 1, 12)
            } else {
                (now.year(), now.month() - 1)
            };
            (month_start(y, m), this_month)
        }
        Some("last-30-days") => (now - Duration::days(30), end),
        Some("custom") => {
            let day = |k: &str| {
                query
                    .get(k)
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            };
            match (day("from"), day("to")) {
                (Some(f), Some(t)) if f <= t => (
                    f.and_hms_opt(0, 0, 0).map_or(this_month, |d| d.and_utc()),
                    (t + Duration::days(1))
                        .and_hms_opt(0, 0, 0)
                        .map_or(end, |d| d.and_utc()),
                ),
                _ => (this_month, end),
            }
        }
        _ => (this_month, end),
    };
    (
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn invoice_lines(title: &str, lines: &Value) -> Markup {
    html! {
        @if let Some(items) = lines.as_array().filter(|l| !l.is_empty()) {
            h3 { (title) }
            (table(&["Name", "Requests", "Cost"], items, |l| html! { tr {
                td { (s(l, "name")) } td.num { (layout::int(l, "requests")) } td.num { (layout::usd(layout::int(l, "costNanosUsd"))) }
            } }))
        }
    }
}

/// `GET /{org}/invoices`: the invoice of a period, with CSV and PDF downloads.
pub async fn invoices(ctx: Ctx, Path(org): Path<String>, Query(query): Params) -> Page {
    let scope = org_scope(&org)?;
    let base = scope.base();
    let (from, to) = invoice_period(&query);
    let teams_chosen: Vec<&str> = query
        .get("teamIds")
        .map(|t| t.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let mut params = format!("from={}&to={}", encode(&from), encode(&to));
    if let Some(t) = query.get("teamIds").filter(|t| !t.is_empty()) {
        params.push_str(&format!("&teamIds={}", encode(t)));
    }
    if let Some(k) = query.get("apiKeyIds").filter(|k| !k.is_empty()) {
        params.push_str(&format!("&apiKeyIds={}", encode(k)));
    }
    let invoice = ctx
        .get(&format!("{}?{params}", api(&org, "/invoices")))
        .await?;
    let teams = ctx
        .get_opt(&api(&org, "/teams?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let period = query
        .get("period")
        .map(String::as_str)
        .unwrap_or("this-month");
    let totals = &invoice["totals"];
    let content = html! {
        form.filters method="get" action={ (base) "/invoices" } {
            div.field {
                label for="i-period" { "Period" }
                select #i-period name="period" {
                    @for (v, l) in [("this-month", "This month"), ("last-month", "Last month"), ("last-30-days", "Last 30 days"), ("custom", "Custom range")] {
                        option value=(v) selected[v == period] { (l) }
                    }
                }
            }
            div.field { label for="i-from" { "From (custom)" } input #i-from type="date" name="from" value=(query.get("from").map(String::as_str).unwrap_or("")); }
            div.field { label for="i-to" { "To, inclusive (custom)" } input #i-to type="date" name="to" value=(query.get("to").map(String::as_str).unwrap_or("")); }
            div.field {
                label for="i-team" { "Scope" }
                select #i-team name="teamIds" {
                    option value="" { "Whole organisation" }
                    @for t in rows(&teams) { option value=(s(t, "id")) selected[teams_chosen.contains(&s(t, "id"))] { "Team: " (s(t, "name")) } }
                }
            }
            button type="submit" { "Preview" }
        }
        p { "Period: " (from) " → " (to) " (end exclusive)" }
        div.kpis {
            (kpi("Requests", layout::int(totals, "requests").to_string()))
            (kpi("LLM cost", layout::usd(layout::int(totals, "llmCostNanosUsd"))))
            (kpi("MCP cost", layout::usd(layout::int(totals, "mcpCostNanosUsd"))))
            (kpi("Total", layout::usd(layout::int(totals, "costNanosUsd"))))
            (kpi("Billable tokens", layout::int(totals, "billableTokens").to_string()))
        }
        p.actions {
            a.button href={ (api(&org, "/invoices")) "?" (params) "&format=pdf" } download { "Download PDF invoice" }
            " "
            a.button href={ (api(&org, "/invoices")) "?" (params) "&format=csv" } download { "Download CSV (all records)" }
        }
        (invoice_lines("By team", &invoice["byTeam"]))
        (invoice_lines("By API key", &invoice["byApiKey"]))
        (invoice_lines("By model", &invoice["byModel"]))
        (invoice_lines("By MCP server", &invoice["byMcpServer"]))
    };
    Ok(layout::ok(layout::page(
        &ctx, &scope, "invoices", "Invoices", content,
    )))
}

// ---------------------------------------------------------------------------------------------
// Playground

/// The playground form; the call itself is made by the browser (`console.js`) with the pasted key,
/// straight to the gateway's `/v1/chat/completions`, so it is exactly a client's call.
/// The playground: `keys` are the caller's usable keys as `(id, "name (preview)")`.
pub fn playground_form(
    models: &[(String, String)],
    keys: &[(String, String)],
    usage_api: Option<&str>,
) -> Markup {
    html! {
        form #playground.card data-usage=[usage_api] {
            p #p-why { "Odock keeps only a hash of each key, so it cannot fill in a secret for you: choose one of your keys and paste its secret (it stays in this page)." }
            @if !keys.is_empty() {
                div.field {
                    label for="p-saved" { "Your key" }
                    select #p-saved aria-describedby="p-saved-help" {
                        option value="" { "— choose, or just paste a secret —" }
                        @for (id, label) in keys { option value=(id) { (label) } }
                    }
                    small.help #p-saved-help { "Your active keys. A secret you chose to “use in the playground” after creating or rotating a key is filled in from this tab." }
                }
            }
            div.field {
                label for="p-key" { "API key secret" }
                input #p-key name="key" type="password" autocomplete="off" required placeholder="sk_…";
            }
            div.field {
                label for="p-model" { "Model" }
                @if models.is_empty() {
                    input #p-model name="model" type="text" required placeholder="model name";
                } @else {
                    select #p-model name="model" { @for (v, l) in models { option value=(v) { (l) } } }
                }
            }
            fieldset.field {
                legend { "Mode" }
                div.check { input #p-stream type="radio" name="mode" value="stream" checked; label for="p-stream" { "Streaming" } }
                div.check { input #p-unary type="radio" name="mode" value="unary"; label for="p-unary" { "Unary" } }
            }
            div.field { label for="p-system" { "System prompt" } textarea #p-system name="system" rows="2" {} }
            div.field { label for="p-prompt" { "Prompt" } textarea #p-prompt name="prompt" rows="4" required {} }
            div.field { label for="p-image" { "Image (optional)" } input #p-image name="image" type="file" accept="image/*"; }
            button type="submit" { "Send" } " " button #p-clear type="button" { "Clear" }
        }
        section.card aria-labelledby="p-out-h" {
            h2 #p-out-h { "Answer" }
            output #p-output aria-live="polite" {}
            dl.facts #p-stats {
                dt { "Status" } dd #p-status { "—" }
                dt { "First token" } dd #p-ttft { "—" }
                dt { "Latency" } dd #p-latency { "—" }
                dt { "Tokens" } dd #p-tokens { "—" }
                dt { "Cost" } dd #p-cost { "—" }
                dt { "Request id" } dd.mono #p-request { "—" }
            }
        }
    }
}

/// `GET /{org}/playground`: a form trying the organisation's chat models.
pub async fn playground(ctx: Ctx, Path(org): Path<String>) -> Page {
    let scope = org_scope(&org)?;
    let models = ctx.get(&api(&org, "/models?limit=500")).await?;
    let options: Vec<(String, String)> = rows(&models)
        .iter()
        .filter(|m| matches!(s(m, "type"), "chat" | "reasoning"))
        .map(|m| {
            (
                s(m, "name").to_owned(),
                format!("{} ({})", s(m, "name"), s(m, "slug")),
            )
        })
        .collect();
    // Keys the caller may hold the secret of: active ones it sees, except other users' own keys.
    let now = chrono::Utc::now();
    let me = ctx.user_id.clone().unwrap_or_default();
    let keys: Vec<(String, String)> = ctx
        .get_opt(&api(&org, "/apikeys?limit=500"))
        .await
        .map(|list| {
            rows(&list)
                .iter()
                .filter(|k| !k["revoked"].as_bool().unwrap_or(false))
                .filter(|k| {
                    k["expiresAt"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_none_or(|t| t > now)
                })
                .filter(|k| s(k, "type") != "USER" || s(k, "userId") == me)
                .map(|k| {
                    (
                        s(k, "id").to_owned(),
                        format!("{} ({})", s(k, "name"), s(k, "preview")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let usage_api = api(&org, "/usage-records");
    let content = html! {
        @if options.is_empty() { (layout::empty("No chat model in this organisation yet: add a provider and a model first.")) }
        (playground_form(&options, &keys, Some(&usage_api)))
    };
    Ok(layout::ok(layout::page(
        &ctx,
        &scope,
        "playground",
        "Playground",
        content,
    )))
}
