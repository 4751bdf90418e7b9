//! `/{org}/settings`: the signed-in user's account for everyone, and the organisation's own
//! settings (name, contact, routing switch, policies) for its administrators.

use axum::extract::{Path, Query};
use http::{Method, StatusCode};
use maud::html;
use serde_json::{json, Value};
use std::collections::HashMap;

use super::{api, is_admin, org_scope, see_other, Page};
use crate::console::forms::{self, FormState};
use crate::console::layout::{self, csrf_field, s, text};
use crate::console::session::{Ctx, Fields};

async fn settings_page(
    ctx: &Ctx,
    org: &str,
    state: &FormState,
    status: StatusCode,
    saved: bool,
) -> Page {
    let scope = org_scope(org)?;
    let settings = if is_admin(ctx) {
        Some(ctx.get(&api(org, "/settings")).await?)
    } else {
        None
    };
    let state = match (&settings, state.fields.0.is_empty()) {
        // First view: the form starts from the stored values.
        (Some(current), true) => FormState {
            fields: Fields(
                vec![
                    ("name".into(), s(current, "name").to_owned()),
                    ("contact".into(), s(current, "contact").to_owned()),
                    (
                        "policies".into(),
                        serde_json::to_string_pretty(&current["policies"]).unwrap_or_default(),
                    ),
                ]
                .into_iter()
                .chain(
                    current["routingEnabled"]
                        .as_bool()
                        .filter(|r| *r)
                        .map(|_| ("routingEnabled".to_owned(), "on".to_owned())),
                )
                .collect(),
            ),
            error: None,
            open: false,
            id_prefix: "",
        },
        _ => state.clone(),
    };
    let content = html! {
        @if saved { (layout::notice("The settings were saved.")) }
        section.card aria-labelledby="acct-h" {
            h2 #acct-h { "Your account" }
            dl.facts {
                dt { "Name" } dd { (text(&ctx.user, "name")) }
                dt { "Email" } dd { (text(&ctx.user, "email")) }
                dt { "Role" } dd { (text(&ctx.user, "role")) }
            }
            p { a href="/account/password" { "Change your password" } }
        }
        @if settings.is_some() {
            section.card aria-labelledby="org-h" {
                h2 #org-h { "Organisation" }
                form method="post" action={ "/" (org) "/settings" } {
                    (csrf_field(ctx))
                    (state.summary())
                    (forms::input(&state, "name", "Name", "text", true, None))
                    (forms::input(&state, "contact", "Contact", "text", false, Some("Who to reach about this organisation.")))
                    (forms::checkbox(&state, "routingEnabled", "Smart routing enabled", false))
                    (forms::textarea(&state, "policies", "Policies (JSON)", Some("Rate limits and IP rules for the whole organisation, e.g. {\"requestsPerMinute\": 600}.")))
                    button type="submit" { "Save settings" }
                }
            }
        }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "settings", "Settings", content),
    ))
}

/// `GET /{org}/settings`: the organisation's settings page (the settings form for ORG_ADMIN).
pub async fn page(
    ctx: Ctx,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    settings_page(
        &ctx,
        &org,
        &FormState::default(),
        StatusCode::OK,
        query.contains_key("saved"),
    )
    .await
}

/// `POST /{org}/settings`: saves the organisation's settings.
pub async fn save(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let policies: Value = match fields.opt("policies") {
        None => json!({}),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                let state = FormState::failed(
                    fields,
                    Some("policies"),
                    "Policies must be a JSON object, like {\"requestsPerMinute\": 600}.",
                );
                return settings_page(&ctx, &org, &state, StatusCode::BAD_REQUEST, false).await;
            }
        },
    };
    let contact = fields.opt("contact").map_or(Value::Null, |c| json!(c));
    let body = json!({
        "name": fields.get("name"),
        "contact": contact,
        "routingEnabled": fields.checked("routingEnabled"),
        "policies": policies,
    });
    let answer = ctx
        .call(Method::PATCH, &api(&org, "/settings"), Some(&body))
        .await;
    if answer.ok() {
        return Ok(see_other(&format!("/{org}/settings?saved=1")));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    settings_page(&ctx, &org, &state, answer.status, false).await
}
