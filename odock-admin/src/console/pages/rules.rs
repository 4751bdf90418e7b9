//! Budgets and quotas: lists, a create wizard (details and schedule → limits → recap, carried in
//! the form itself so nothing is half-created), and the detail page with the consumption of the
//! current window (used, reserved, limit) and the previous and next windows.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use http::{Method, StatusCode};
use maud::{html, Markup};
use odock_core::Role;
use serde_json::{json, Map, Value};

use super::{api, disclosure, org_scope, see_other, table, Page};
use crate::console::forms::{self, options, FormState};
use crate::console::layout::{self, badge, csrf_field, pager, rows, s, text};
use crate::console::session::{Ctx, Fields};

/// Budgets (money, nanos USD) or quotas (a metric's count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Budgets: spend per window, in nanos USD.
    Budget,
    /// Quotas: a metric's count per window.
    Quota,
}

impl Kind {
    fn slug(self) -> &'static str {
        match self {
            Kind::Budget => "budgets",
            Kind::Quota => "quotas",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Kind::Budget => "Budgets",
            Kind::Quota => "Quotas",
        }
    }
    fn one(self) -> &'static str {
        match self {
            Kind::Budget => "budget",
            Kind::Quota => "quota",
        }
    }
}

const PERIODS: &[&str] = &["DAILY", "WEEKLY", "MONTHLY", "QUARTERLY"];
const METRICS: &[&str] = &[
    "REQUESTS",
    "TOKENS",
    "TOKENS_IN",
    "TOKENS_OUT",
    "ERRORS",
    "COST",
    "LATENCY_MS",
];

/// The limit of a rule, in words.
fn limit_of(kind: Kind, rule: &Value) -> String {
    match kind {
        Kind::Budget => layout::usd(layout::int(rule, "amountNanos")),
        Kind::Quota => format!("{} {}", text(rule, "limit"), s(rule, "metric")),
    }
}

/// The budgets or quotas of an API list, linked under `base` (not linked when `None`).
pub fn rules_table(kind: Kind, list: &Value, base: Option<&str>) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty(match kind {
            Kind::Budget => "No budgets to show. A budget caps spend per window; requests beyond it are refused with 402.",
            Kind::Quota => "No quotas to show. A quota caps requests, tokens, errors, cost or latency per window (429 beyond).",
        });
    }
    table(
        &["Name", "Owner", "Limit", "Period", "Starts", "Active"],
        items,
        |r| {
            let active = r["active"].as_bool().unwrap_or(false);
            html! { tr {
                td { @if let Some(base) = base { a href={ (base) "/" (kind.slug()) "/" (s(r, "id")) } { (s(r, "name")) } } @else { (s(r, "name")) } }
                td { (s(r, "ownerType")) @if let Some(owner) = r["ownerId"].as_str() { " " span.mono { (owner) } } }
                td.num { (limit_of(kind, r)) }
                td { (s(r, "period")) }
                td { (layout::when(r, "startAt")) }
                td { (badge(if active { "active" } else { "inactive" }, active)) }
            } }
        },
    )
}

/// Owners the caller may choose, as `(ownerType:ownerId, label)`.
async fn owner_options(ctx: &Ctx, org: &str) -> Vec<(String, String)> {
    let mut owners = Vec::new();
    if matches!(ctx.role, Role::SuperAdmin | Role::OrgAdmin) {
        owners.push(("ORG:".to_owned(), "The whole organisation".to_owned()));
    }
    if let Some(teams) = ctx.get_opt(&api(org, "/teams?limit=500")).await {
        owners.extend(rows(&teams).iter().map(|t| {
            (
                format!("TEAM:{}", s(t, "id")),
                format!("Team: {}", s(t, "name")),
            )
        }));
    }
    if matches!(ctx.role, Role::SuperAdmin | Role::OrgAdmin) {
        if let Some(users) = ctx.get_opt(&api(org, "/users?limit=500")).await {
            owners.extend(rows(&users).iter().map(|u| {
                (
                    format!("USER:{}", s(u, "id")),
                    format!("User: {}", s(u, "email")),
                )
            }));
        }
    }
    if let Some(keys) = ctx.get_opt(&api(org, "/apikeys?limit=500")).await {
        owners.extend(rows(&keys).iter().map(|k| {
            (
                format!("APIKEY:{}", s(k, "id")),
                format!("API key: {} ({})", s(k, "name"), s(k, "preview")),
            )
        }));
    }
    owners
}

fn wizard(
    ctx: &Ctx,
    kind: Kind,
    base: &str,
    state: &FormState,
    owners: &[(String, String)],
) -> Markup {
    let thresholds: Vec<(String, String)> = ["50", "80", "90", "100"]
        .iter()
        .map(|t| ((*t).to_owned(), format!("{t} %")))
        .collect();
    html! {
        form method="post" action={ (base) "/" (kind.slug()) } {
            (csrf_field(ctx))
            input type="hidden" name="step" value="review";
            (state.summary())
            fieldset {
                legend { "1. Details" }
                (forms::input(state, "name", "Name", "text", true, None))
                (forms::select(state, "owner", "Applies to", owners, Some("Organisation rules cover all traffic; team rules TEAM keys; user rules USER keys.")))
            }
            fieldset {
                legend { "2. Schedule" }
                (forms::select(state, "period", "Period", &options(PERIODS), None))
                (forms::input(state, "startAt", "Starts at (UTC)", "datetime-local", false, Some("Windows are anchored here; empty: now.")))
                (forms::input_default(state, "timezone", "Timezone", "UTC", Some("IANA name, e.g. Europe/Paris.")))
            }
            fieldset {
                legend { "3. Limits" }
                @match kind {
                    Kind::Budget => {
                        (forms::input(state, "amountUsd", "Amount (USD)", "text", true, Some("e.g. 50.00 per window.")))
                        (forms::checkboxes(state, "thresholds", "Report when crossing", &thresholds))
                    }
                    Kind::Quota => {
                        (forms::select(state, "metric", "Metric", &options(METRICS), None))
                        (forms::input(state, "limit", "Limit per window", "number", true, None))
                    }
                }
                (forms::checkbox(state, "active", "Active", true))
            }
            button type="submit" { "Review" }
        }
    }
}

/// The API body of the wizard's fields, or the field at fault.
fn body_of(kind: Kind, fields: &Fields) -> Result<Value, (&'static str, String)> {
    let mut body = Map::new();
    body.insert("name".into(), json!(fields.get("name")));
    let (owner_type, owner_id) = fields.get("owner").split_once(':').unwrap_or(("", ""));
    if owner_type.is_empty() {
        return Err(("owner", "Choose what the rule applies to.".into()));
    }
    body.insert("ownerType".into(), json!(owner_type));
    if !owner_id.is_empty() {
        body.insert("ownerId".into(), json!(owner_id));
    }
    body.insert("period".into(), json!(fields.get("period")));
    if let Some(start) = fields.opt("startAt") {
        let parsed = chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| {
                (
                    "startAt",
                    "Enter a date and time like 2026-03-01T09:00.".to_owned(),
                )
            })?;
        body.insert("startAt".into(), json!(parsed.and_utc().to_rfc3339()));
    }
    body.insert(
        "timezone".into(),
        json!(fields.opt("timezone").unwrap_or("UTC")),
    );
    body.insert("active".into(), json!(fields.checked("active")));
    match kind {
        Kind::Budget => {
            let amount = layout::parse_usd(fields.get("amountUsd"))
                .filter(|n| *n > 0)
                .ok_or((
                    "amountUsd",
                    "Enter a positive amount in USD, like 50.00.".to_owned(),
                ))?;
            body.insert("amountNanos".into(), json!(amount));
            let thresholds: Vec<u32> = fields
                .all("thresholds")
                .iter()
                .filter_map(|t| t.parse().ok())
                .collect();
            body.insert("thresholds".into(), json!(thresholds));
        }
        Kind::Quota => {
            body.insert("metric".into(), json!(fields.get("metric")));
            let limit = fields
                .get("limit")
                .parse::<i64>()
                .ok()
                .filter(|l| *l > 0)
                .ok_or(("limit", "Enter a positive whole number.".to_owned()))?;
            body.insert("limit".into(), json!(limit));
        }
    }
    Ok(Value::Object(body))
}

/// The recap step: what will be created, with the fields carried in hidden inputs.
fn recap(
    ctx: &Ctx,
    kind: Kind,
    base: &str,
    fields: &Fields,
    body: &Value,
    owners: &[(String, String)],
) -> Markup {
    let owner = owners
        .iter()
        .find(|(v, _)| v == fields.get("owner"))
        .map_or(fields.get("owner"), |(_, l)| l.as_str());
    html! {
        section.card aria-labelledby="recap-h" {
            h2 #recap-h { "4. Recap" }
            dl.facts {
                dt { "Name" } dd { (s(body, "name")) }
                dt { "Applies to" } dd { (owner) }
                dt { "Limit" } dd { (limit_of(kind, body)) " per " (s(body, "period")) }
                dt { "Starts" } dd { (body["startAt"].as_str().unwrap_or("now")) " (" (s(body, "timezone")) ")" }
                @if kind == Kind::Budget { dt { "Thresholds" } dd { (body["thresholds"].to_string()) } }
                dt { "Active" } dd { (text(body, "active")) }
            }
            form method="post" action={ (base) "/" (kind.slug()) } {
                (csrf_field(ctx))
                @for (name, value) in &fields.0 {
                    @if name != "step" && name != crate::console::session::CSRF_FIELD {
                        input type="hidden" name=(name) value=(value);
                    }
                }
                input type="hidden" name="step" value="create";
                button type="submit" name="back" value="1" formnovalidate { "Back" }
                " "
                button type="submit" { "Create " (kind.one()) }
            }
        }
    }
}

async fn list_page(
    ctx: &Ctx,
    kind: Kind,
    org: &str,
    query: &HashMap<String, String>,
    state: &FormState,
    status: StatusCode,
    extra: Option<Markup>,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let mut qs = vec![];
    for key in ["ownerType", "active", "cursor"] {
        if let Some(v) = query.get(key).filter(|v| !v.is_empty()) {
            qs.push(format!("{key}={}", crate::console::client::encode(v)));
        }
    }
    let q = if qs.is_empty() {
        String::new()
    } else {
        format!("?{}", qs.join("&"))
    };
    let list = ctx
        .get(&format!("{}{}", api(org, &format!("/{}", kind.slug())), q))
        .await?;
    let creates = matches!(ctx.role, Role::SuperAdmin | Role::OrgAdmin | Role::Manager);
    let owners = if creates {
        owner_options(ctx, org).await
    } else {
        Vec::new()
    };
    let chosen = query.get("ownerType").map(String::as_str).unwrap_or("");
    let content = html! {
        @if let Some(extra) = extra { (extra) }
        @if creates && !owners.is_empty() {
            (disclosure(&format!("Create a {}", kind.one()), state.open, wizard(ctx, kind, &base, state, &owners)))
        }
        form.filters method="get" action={ (base) "/" (kind.slug()) } {
            label for="f-ownerType" { "Owner type" }
            select #f-ownerType name="ownerType" {
                @for v in ["", "ORG", "TEAM", "USER", "APIKEY"] { option value=(v) selected[v == chosen] { (if v.is_empty() { "any" } else { v }) } }
            }
            button type="submit" { "Filter" }
        }
        (rules_table(kind, &list, Some(&base)))
        (pager(&list, &format!("{base}/{}", kind.slug())))
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, kind.slug(), kind.title(), content),
    ))
}

/// The wizard preset from `?owner=TYPE:id` (the key and team pages link here), or empty.
fn preset(query: &HashMap<String, String>) -> FormState {
    match query.get("owner").filter(|o| o.contains(':')) {
        Some(owner) => FormState::sent(Fields(vec![
            ("owner".into(), owner.clone()),
            ("active".into(), "on".into()),
            ("timezone".into(), "UTC".into()),
        ])),
        None => FormState::default(),
    }
}

/// `GET /{org}/budgets`: the budgets the caller sees (and the form creating one).
pub async fn budgets(
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    list_page(
        &ctx,
        Kind::Budget,
        &org,
        &query,
        &preset(&query),
        StatusCode::OK,
        None,
    )
    .await
}

/// `GET /{org}/quotas`: the quotas the caller sees (and the form creating one).
pub async fn quotas(
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    list_page(
        &ctx,
        Kind::Quota,
        &org,
        &query,
        &preset(&query),
        StatusCode::OK,
        None,
    )
    .await
}

async fn create(ctx: Ctx, kind: Kind, org: String, fields: Fields) -> Page {
    let scope = org_scope(&org)?;
    ctx.check_form(&fields)?;
    let empty = HashMap::new();
    let body = match body_of(kind, &fields) {
        Ok(body) => body,
        Err((field, message)) => {
            let state = FormState::failed(fields, Some(field), message);
            return list_page(
                &ctx,
                kind,
                &org,
                &empty,
                &state,
                StatusCode::BAD_REQUEST,
                None,
            )
            .await;
        }
    };
    if fields.get("step") == "review" || fields.checked("back") {
        if fields.checked("back") {
            return list_page(
                &ctx,
                kind,
                &org,
                &empty,
                &FormState::sent(fields),
                StatusCode::OK,
                None,
            )
            .await;
        }
        let owners = owner_options(&ctx, &org).await;
        let recap = recap(&ctx, kind, &scope.base(), &fields, &body, &owners);
        return list_page(
            &ctx,
            kind,
            &org,
            &empty,
            &FormState::default(),
            StatusCode::OK,
            Some(recap),
        )
        .await;
    }
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, &format!("/{}", kind.slug())),
            Some(&body),
        )
        .await;
    if answer.ok() {
        return Ok(see_other(&format!(
            "/{org}/{}/{}",
            kind.slug(),
            s(&answer.body, "id")
        )));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let mut state = FormState::from_answer(fields, &answer);
    if let Some((Some(field), _)) = &mut state.error {
        *field = match field.as_str() {
            "amountNanos" => "amountUsd".into(),
            "ownerId" | "ownerType" => "owner".into(),
            other => other.to_owned(),
        };
    }
    list_page(&ctx, kind, &org, &empty, &state, answer.status, None).await
}

/// `POST /{org}/budgets`: creates a budget.
pub async fn create_budget(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    create(ctx, Kind::Budget, org, fields).await
}

/// `POST /{org}/quotas`: creates a quota.
pub async fn create_quota(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    create(ctx, Kind::Quota, org, fields).await
}

/// The consumption card: the current window's used, reserved and limit.
pub fn consumption(kind: Kind, rule: &Value, windows: &Value) -> Markup {
    let items = rows(windows);
    let limit = match kind {
        Kind::Budget => layout::int(rule, "amountNanos"),
        Kind::Quota => layout::int(rule, "limit"),
    };
    let (used_key, reserved_key) = match kind {
        Kind::Budget => ("usedNanos", "reservedNanos"),
        Kind::Quota => ("used", "reserved"),
    };
    let show = |n: i64| match kind {
        Kind::Budget => layout::usd(n),
        Kind::Quota => n.to_string(),
    };
    html! {
        section.card aria-labelledby="consumption-h" {
            h2 #consumption-h { "Consumption" }
            @match items.first() {
                None => { (layout::empty("No window yet: the first one opens at the start time.")) }
                Some(current) => {
                    @let used = layout::int(current, used_key);
                    @let reserved = layout::int(current, reserved_key);
                    @let pct = if limit > 0 { (used as f64 / limit as f64 * 100.0).min(999.0) } else { 0.0 };
                    p { span.badge.good { "Current window" } " " (layout::when(current, "startAt")) " → " (layout::when(current, "endAt")) }
                    (layout::raw(crate::console::charts::gauge(used, reserved, limit)))
                    dl.facts {
                        dt { "Used" } dd { (show(used)) " (" (format!("{pct:.1}")) " %)" }
                        dt { "Reserved" } dd { (show(reserved)) }
                        dt { "Limit" } dd { (show(limit)) }
                        dt { "Remaining" } dd { (show((limit - used - reserved).max(0))) }
                        dt { "Next window" } dd { "starts " (layout::when(current, "endAt")) }
                    }
                    @if items.len() > 1 {
                        h3 { "Previous windows" }
                        (table(&["Window", "Used", "Reserved"], &items[1..], |w| html! { tr {
                            td { (layout::when(w, "startAt")) " → " (layout::when(w, "endAt")) }
                            td.num { (show(layout::int(w, used_key))) }
                            td.num { (show(layout::int(w, reserved_key))) }
                        } }))
                    }
                }
            }
        }
    }
}

/// The edit form of a rule: everything but its owner (and a quota's metric), which cannot change.
fn edit_form(ctx: &Ctx, kind: Kind, here: &str, rule: &Value, state: &FormState) -> Markup {
    let state = if state.open {
        state.clone()
    } else {
        let start = rule["startAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        let mut pairs = vec![
            ("name", s(rule, "name").to_owned()),
            ("period", s(rule, "period").to_owned()),
            ("startAt", start),
            ("timezone", s(rule, "timezone").to_owned()),
        ];
        match kind {
            Kind::Budget => {
                pairs.push((
                    "amountUsd",
                    layout::usd_plain(layout::int(rule, "amountNanos")),
                ));
                for t in rule["thresholds"].as_array().cloned().unwrap_or_default() {
                    pairs.push(("thresholds", t.to_string()));
                }
            }
            Kind::Quota => pairs.push(("limit", text(rule, "limit"))),
        }
        if rule["active"].as_bool().unwrap_or(false) {
            pairs.push(("active", "on".into()));
        }
        super::prefilled(pairs)
    };
    let thresholds: Vec<(String, String)> = ["50", "80", "90", "100"]
        .iter()
        .map(|t| ((*t).to_owned(), format!("{t} %")))
        .collect();
    disclosure(
        &format!("Edit {}", kind.one()),
        state.open,
        html! {
            form method="post" action={ (here) "/edit" } {
                (csrf_field(ctx))
                (state.summary())
                (forms::input(&state, "name", "Name", "text", true, None))
                (forms::select(&state, "period", "Period", &options(PERIODS), None))
                (forms::input(&state, "startAt", "Starts at (UTC)", "datetime-local", false, None))
                (forms::input_default(&state, "timezone", "Timezone", "UTC", None))
                @match kind {
                    Kind::Budget => {
                        (forms::input(&state, "amountUsd", "Amount (USD)", "text", true, None))
                        (forms::checkboxes(&state, "thresholds", "Report when crossing", &thresholds))
                    }
                    Kind::Quota => {
                        (forms::input(&state, "limit", "Limit per window", "number", true, None))
                    }
                }
                (forms::checkbox(&state, "active", "Active", true))
                button type="submit" { "Save " (kind.one()) }
            }
        },
    )
}

async fn detail_page(
    ctx: &Ctx,
    kind: Kind,
    org: &str,
    id: &str,
    edit: &FormState,
    status: StatusCode,
    notice: Option<&str>,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let rule = ctx
        .get(&api(org, &format!("/{}/{id}", kind.slug())))
        .await?;
    let windows = ctx
        .get(&api(org, &format!("/{}/{id}/windows", kind.slug())))
        .await?;
    let here = format!("{base}/{}/{id}", kind.slug());
    let manages = matches!(ctx.role, Role::SuperAdmin | Role::OrgAdmin | Role::Manager);
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        dl.facts {
            dt { "Applies to" } dd { (s(&rule, "ownerType")) " " (text(&rule, "ownerId")) }
            dt { "Limit" } dd { (limit_of(kind, &rule)) " per " (s(&rule, "period")) }
            dt { "Anchored at" } dd { (layout::when(&rule, "startAt")) " (" (s(&rule, "timezone")) ")" }
            dt { "Ends" } dd { (layout::when(&rule, "endAt")) }
            @if kind == Kind::Budget { dt { "Thresholds" } dd { (rule["thresholds"].to_string()) " %" } }
            dt { "Active" } dd { (text(&rule, "active")) }
        }
        @if manages {
            (edit_form(ctx, kind, &here, &rule, edit))
            div.actions {
                (super::confirm_action(ctx, &format!("{here}/delete"), &format!("Delete {}…", kind.one()), "Its windows and consumption history go with it; traffic is no longer limited by it.", &format!("Delete {}", kind.one())))
            }
        }
        (consumption(kind, &rule, &windows))
        p { a href={ (base) "/" (kind.slug()) } { "← All " (kind.slug()) } }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, kind.slug(), s(&rule, "name"), content),
    ))
}

async fn detail(
    ctx: Ctx,
    kind: Kind,
    org: String,
    id: String,
    query: HashMap<String, String>,
) -> Page {
    let notice = (query.get("done").map(String::as_str) == Some("edit"))
        .then_some("Saved. The current window keeps its consumption.");
    detail_page(
        &ctx,
        kind,
        &org,
        &id,
        &FormState::default(),
        StatusCode::OK,
        notice,
    )
    .await
}

/// `GET /{org}/budgets/{id}`: a budget and its consumption.
pub async fn budget(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    detail(ctx, Kind::Budget, org, id, query).await
}

/// `GET /{org}/quotas/{id}`: a quota and its consumption.
pub async fn quota(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    detail(ctx, Kind::Quota, org, id, query).await
}

/// `POST /{org}/{budgets|quotas}/{id}/{edit|delete}`.
async fn rule_action(
    ctx: Ctx,
    kind: Kind,
    org: String,
    id: String,
    action: String,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/{}/{id}", kind.slug()));
    match action.as_str() {
        "delete" => {
            super::write_then(
                &ctx,
                Method::DELETE,
                &path,
                None,
                &format!("/{org}/{}", kind.slug()),
            )
            .await
        }
        "edit" => {
            // The wizard's conversion, with a stand-in owner: the owner (and metric) cannot change,
            // so they are left out of the patch.
            let mut with_owner = fields.clone();
            with_owner.0.push(("owner".into(), "ORG:".into()));
            let mut body = match body_of(kind, &with_owner) {
                Ok(body) => body,
                Err((field, message)) => {
                    let state = FormState::failed(fields, Some(field), message);
                    return detail_page(
                        &ctx,
                        kind,
                        &org,
                        &id,
                        &state,
                        StatusCode::BAD_REQUEST,
                        None,
                    )
                    .await;
                }
            };
            if let Some(body) = body.as_object_mut() {
                for fixed in ["ownerType", "ownerId", "metric"] {
                    body.remove(fixed);
                }
            }
            let answer = ctx.call(Method::PATCH, &path, Some(&body)).await;
            if answer.ok() {
                return Ok(see_other(&format!("/{org}/{}/{id}?done=edit", kind.slug())));
            }
            if let Some(page) = super::refused(&ctx, &answer) {
                return Err(page);
            }
            let mut state = FormState::from_answer(fields, &answer);
            if let Some((Some(field), _)) = &mut state.error {
                if field == "amountNanos" {
                    *field = "amountUsd".into();
                }
            }
            detail_page(&ctx, kind, &org, &id, &state, answer.status, None).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}

/// `POST /{org}/budgets/{id}/{action}`: `edit` or `delete` the budget.
pub async fn budget_action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    rule_action(ctx, Kind::Budget, org, id, action, fields).await
}

/// `POST /{org}/quotas/{id}/{action}`: `edit` or `delete` the quota.
pub async fn quota_action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    rule_action(ctx, Kind::Quota, org, id, action, fields).await
}
