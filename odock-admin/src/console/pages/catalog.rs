//! The catalog of an organisation: providers (with their write-only keys), models (with pricing in
//! USD per 1M tokens, stored as nanos) and MCP servers.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use http::{Method, StatusCode};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::{api, cursor_query, disclosure, is_admin, names, org_scope, see_other, table, Page};
use crate::console::client::Answer;
use crate::console::forms::{self, options, FormState};
use crate::console::layout::{self, badge, csrf_field, pager, rows, s, text};
use crate::console::session::{Ctx, Fields};

/// The provider types the provider form offers.
pub const PROVIDER_TYPES: &[&str] = &[
    "OPENAI",
    "ANTHROPIC",
    "GOOGLE",
    "AZURE_OPENAI",
    "VLLM",
    "MISTRAL",
    "HUGGINGFACE",
    "CUSTOM",
];
/// The model types the model form offers.
pub const MODEL_TYPES: &[&str] = &[
    "chat",
    "reasoning",
    "image",
    "embeddings",
    "audio",
    "moderation",
    "transcription",
    "tts",
    "ocr",
];

type Params = Query<HashMap<String, String>>;

// ---------------------------------------------------------------------------------------------
// Providers

/// The providers of an API list, linked under `base` (the organisation's console path).
pub fn providers_table(list: &Value, base: &str) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty("No providers yet. Add one to connect an upstream LLM service.");
    }
    table(&["Name", "Type", "Base URL", "Enabled"], items, |p| {
        html! { tr {
            td { a href={ (base) "/providers/" (s(p, "id")) } { (s(p, "name")) } }
            td { (s(p, "type")) }
            td.mono { (text(p, "baseUrl")) }
            td { (badge(if p["enabled"].as_bool().unwrap_or(false) { "enabled" } else { "disabled" }, p["enabled"].as_bool().unwrap_or(false))) }
        } }
    })
}

fn provider_form(ctx: &Ctx, base: &str, state: &FormState) -> Markup {
    disclosure(
        "Add a provider",
        state.open,
        html! {
            form method="post" action={ (base) "/providers" } {
                (csrf_field(ctx))
                (state.summary())
                (forms::input(state, "name", "Name", "text", true, None))
                (forms::select(state, "type", "Type", &options(PROVIDER_TYPES), None))
                (forms::input(state, "baseUrl", "Base URL", "url", false, Some("Leave empty for the type's public endpoint.")))
                (forms::input(state, "timeoutMs", "Timeout (ms)", "number", false, None))
                (forms::checkbox(state, "enabled", "Enabled", true))
                button type="submit" { "Add provider" }
            }
        },
    )
}

async fn providers_page(
    ctx: &Ctx,
    org: &str,
    query: &HashMap<String, String>,
    state: &FormState,
    status: StatusCode,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let list = ctx
        .get(&format!(
            "{}{}",
            api(org, "/providers"),
            cursor_query(query)
        ))
        .await?;
    let content = html! {
        @if is_admin(ctx) { (provider_form(ctx, &base, state)) }
        (providers_table(&list, &base))
        (pager(&list, &format!("{base}/providers")))
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "providers", "Providers", content),
    ))
}

/// `GET /{org}/providers`: the organisation's providers (and the form adding one, for ORG_ADMIN).
pub async fn providers(ctx: Ctx, Path(org): Path<String>, Query(query): Params) -> Page {
    providers_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

/// `POST /{org}/providers`: creates a provider.
pub async fn create_provider(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let mut body = Map::new();
    body.insert("name".into(), json!(fields.get("name")));
    body.insert("type".into(), json!(fields.get("type")));
    body.insert("enabled".into(), json!(fields.checked("enabled")));
    if let Some(url) = fields.opt("baseUrl") {
        body.insert("baseUrl".into(), json!(url));
    }
    if let Some(timeout) = fields.opt("timeoutMs") {
        match timeout.parse::<u64>() {
            Ok(ms) => body.insert("timeoutMs".into(), json!(ms)),
            Err(_) => {
                let state = FormState::failed(
                    fields,
                    Some("timeoutMs"),
                    "Enter a whole number of milliseconds.",
                );
                return providers_page(
                    &ctx,
                    &org,
                    &HashMap::new(),
                    &state,
                    StatusCode::BAD_REQUEST,
                )
                .await;
            }
        };
    }
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, "/providers"),
            Some(&Value::Object(body)),
        )
        .await;
    if answer.ok() {
        return Ok(see_other(&format!(
            "/{org}/providers/{}",
            s(&answer.body, "id")
        )));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    providers_page(&ctx, &org, &HashMap::new(), &state, answer.status).await
}

/// The edit form of a provider, pre-filled with its current values until sent.
fn provider_edit_form(ctx: &Ctx, here: &str, provider: &Value, state: &FormState) -> Markup {
    let state = if !state.open {
        let mut pairs = vec![
            ("name", s(provider, "name").to_owned()),
            ("baseUrl", s(provider, "baseUrl").to_owned()),
            (
                "timeoutMs",
                provider["timeoutMs"]
                    .as_u64()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            ),
        ];
        if provider["enabled"].as_bool().unwrap_or(false) {
            pairs.push(("enabled", "on".into()));
        }
        super::prefilled(pairs)
    } else {
        state.clone()
    }
    // The add-key form on the same page has a `name` too.
    .ids("edit-");
    disclosure(
        "Edit provider",
        state.open,
        html! {
            form method="post" action={ (here) "/edit" } {
                (csrf_field(ctx))
                (state.summary())
                (forms::input(&state, "name", "Name", "text", true, None))
                (forms::input(&state, "baseUrl", "Base URL", "url", false, Some("Leave empty for the type's public endpoint.")))
                (forms::input(&state, "timeoutMs", "Timeout (ms)", "number", false, Some("Empty: no timeout of its own.")))
                (forms::checkbox(&state, "enabled", "Enabled", true))
                button type="submit" { "Save provider" }
            }
        },
    )
}

/// One provider key's actions: replace its secret, revoke or restore it, delete it.
fn provider_key_actions(ctx: &Ctx, here: &str, key: &Value) -> Markup {
    let action = format!("{here}/keys/{}", s(key, "id"));
    let revoked = key["revoked"].as_bool().unwrap_or(false);
    html! {
        details.confirm {
            summary { "Replace secret" }
            div.confirm-body {
                form method="post" action={ (action) "/replace" } {
                    (csrf_field(ctx))
                    @let id = format!("replace-{}", s(key, "id"));
                    div.field {
                        label for=(id) { "New secret" }
                        input id=(id) name="key" type="password" required autocomplete="off";
                        small.help { "Write-only. A new key with this name is added and this one revoked." }
                    }
                    button type="submit" { "Replace" }
                }
            }
        }
        @if revoked {
            form.inline method="post" action={ (action) "/unrevoke" } {
                (csrf_field(ctx)) button type="submit" { "Unrevoke" }
            }
        } @else {
            (super::confirm_action(ctx, &format!("{action}/revoke"), "Revoke", "Requests stop using this key at once.", "Revoke key"))
        }
        (super::confirm_action(ctx, &format!("{action}/delete"), "Delete", "The key and its sealed secret are removed for good.", "Delete key"))
    }
}

/// The provider's circuit and its keys' health on this replica (`GET /provider-health`).
fn health_section(health: &Option<Value>, id: &str) -> Markup {
    let entry = health
        .as_ref()
        .and_then(|h| rows(h).iter().find(|p| s(p, "providerId") == id).cloned());
    let state_badge = |h: &Value| {
        let state = s(h, "state");
        badge(
            if state.is_empty() { "closed" } else { state },
            state == "closed" || state.is_empty(),
        )
    };
    html! {
        section aria-labelledby="health-h" {
            h2 #health-h { "Health" }
            p.help { "Circuit breakers of this gateway replica: open means requests skip it until the cool-down ends." }
            @match &entry {
                None => { (layout::empty("No health is known for this provider yet.")) }
                Some(p) => {
                    dl.facts {
                        dt { "Circuit" } dd { (state_badge(&p["health"])) }
                        dt { "Since" } dd { (layout::when(&p["health"], "since")) }
                        dt { "Consecutive failures" } dd { (text(&p["health"], "consecutiveFailures")) }
                        dt { "Last error" } dd { (last_error(&p["health"])) }
                    }
                    @let keys = p["keys"].as_array().cloned().unwrap_or_default();
                    @if !keys.is_empty() {
                        (table(&["Key", "Circuit", "Since", "Last error", "Rotation"], &keys, |k| html! { tr {
                            td { (s(k, "name")) @if k["revoked"].as_bool().unwrap_or(false) { " " (badge("revoked", false)) } }
                            td { (state_badge(&k["health"])) }
                            td { (layout::when(&k["health"], "since")) }
                            td { (last_error(&k["health"])) }
                            td { @if k["rotation"].is_object() { "out (" (text(&k["rotation"], "status")) ") until " (layout::when(&k["rotation"], "until")) } @else { "in rotation" } }
                        } }))
                    }
                }
            }
        }
    }
}

/// "none", or the last error with when it happened.
fn last_error(health: &Value) -> String {
    match health["lastError"].as_str() {
        Some(error) => format!("{error} ({})", layout::when(health, "lastErrorAt")),
        None => "none".into(),
    }
}

async fn provider_page(
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
    let provider = ctx.get(&api(org, &format!("/providers/{id}"))).await?;
    let keys = ctx.get(&api(org, &format!("/providers/{id}/keys"))).await?;
    let health = ctx.get_opt(&api(org, "/provider-health")).await;
    let models = ctx
        .get_opt(&api(org, "/models?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let models: Vec<Value> = rows(&models)
        .iter()
        .filter(|m| s(m, "providerId") == id)
        .cloned()
        .collect();
    let here = format!("{base}/providers/{id}");
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        dl.facts {
            dt { "Type" } dd { (s(&provider, "type")) }
            dt { "Base URL" } dd.mono { (text(&provider, "baseUrl")) }
            dt { "Timeout" } dd {
                @match provider["timeoutMs"].as_i64() {
                    Some(ms) => { (ms) " ms" }
                    None => { "the gateway's default" }
                }
            }
            dt { "Enabled" } dd { (text(&provider, "enabled")) }
        }
        @if is_admin(ctx) {
            (provider_edit_form(ctx, &here, &provider, edit))
            div.actions {
                (super::confirm_action(ctx, &format!("{here}/delete"), "Delete provider…", "This also deletes its keys and every model that uses it (with those models' grants). Usage records stay.", "Delete provider"))
            }
        }
        (health_section(&health, id))
        section aria-labelledby="keys-h" {
            h2 #keys-h { "Provider keys" }
            p.help { "Secrets are encrypted at rest and never shown again; only previews are listed." }
            @if rows(&keys).is_empty() { (layout::empty("No key yet: models of this provider cannot be called until one is added.")) }
            @else {
                (table(&["Name", "Preview", "State", "Added", ""], rows(&keys), |k| html! { tr {
                    td { (s(k, "name")) }
                    td.mono { (s(k, "preview")) }
                    td { (badge(if k["revoked"].as_bool().unwrap_or(false) { "revoked" } else { "active" }, !k["revoked"].as_bool().unwrap_or(false))) }
                    td { (layout::when(k, "createdAt")) }
                    td.actions { @if is_admin(ctx) { (provider_key_actions(ctx, &here, k)) } }
                } }))
            }
            @if is_admin(ctx) {
                (disclosure("Add a provider key", state.open, html! {
                    form method="post" action={ (base) "/providers/" (id) "/keys" } {
                        (csrf_field(ctx))
                        (state.summary())
                        (forms::input(state, "name", "Key name", "text", true, None))
                        (forms::input(state, "key", "Secret", "password", true, Some("Write-only: stored encrypted, never displayed.")))
                        button type="submit" { "Add key" }
                    }
                }))
            }
        }
        section aria-labelledby="models-h" {
            h2 #models-h { "Models" }
            @if models.is_empty() { (layout::empty("No model uses this provider yet.")) }
            @else { (models_table(&json!({"data": models}), &base, &HashMap::new())) }
        }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "providers", s(&provider, "name"), content),
    ))
}

/// `GET /{org}/providers/{id}`: a provider, its keys, their health and its models.
pub async fn provider(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Params,
) -> Page {
    let notice = match query.get("done").map(String::as_str) {
        _ if query.contains_key("added") => {
            Some("The key was added. Its secret will not be shown again.")
        }
        Some("edit") => Some("The provider was saved."),
        Some("replace") => Some("The secret was replaced: a new key was added and the old one revoked. Models pinned to the old key need the new one."),
        Some("revoke") => Some("The key was revoked."),
        Some("unrevoke") => Some("The key was restored."),
        Some("delete") => Some("The key was deleted."),
        _ => None,
    };
    let none = FormState::default();
    provider_page(&ctx, &org, &id, (&none, &none), StatusCode::OK, notice).await
}

/// `POST /{org}/providers/{id}/keys`: stores an upstream key of the provider.
pub async fn create_provider_key(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let body = json!({"name": fields.get("name"), "key": fields.get("key")});
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, &format!("/providers/{id}/keys")),
            Some(&body),
        )
        .await;
    if answer.ok() {
        return Ok(see_other(&format!("/{org}/providers/{id}?added=1")));
    }
    // The secret is not sent back into the page.
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    let none = FormState::default();
    provider_page(&ctx, &org, &id, (&state, &none), answer.status, None).await
}

/// `POST /{org}/providers/{id}/{edit|delete}`.
pub async fn provider_action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/providers/{id}"));
    match action.as_str() {
        "delete" => {
            super::write_then(
                &ctx,
                Method::DELETE,
                &path,
                None,
                &format!("/{org}/providers"),
            )
            .await
        }
        "edit" => {
            let timeout = match fields.opt("timeoutMs").map(str::parse::<u64>) {
                None => Value::Null,
                Some(Ok(ms)) => json!(ms),
                Some(Err(_)) => {
                    let state = FormState::failed(
                        fields,
                        Some("timeoutMs"),
                        "Enter a whole number of milliseconds.",
                    );
                    let none = FormState::default();
                    return provider_page(
                        &ctx,
                        &org,
                        &id,
                        (&none, &state),
                        StatusCode::BAD_REQUEST,
                        None,
                    )
                    .await;
                }
            };
            let body = json!({
                "name": fields.get("name"),
                "baseUrl": fields.get("baseUrl"),
                "timeoutMs": timeout,
                "enabled": fields.checked("enabled"),
            });
            let answer = ctx.call(Method::PATCH, &path, Some(&body)).await;
            if answer.ok() {
                return Ok(see_other(&format!("/{org}/providers/{id}?done=edit")));
            }
            if let Some(page) = super::refused(&ctx, &answer) {
                return Err(page);
            }
            let state = FormState::from_answer(fields, &answer);
            let none = FormState::default();
            provider_page(&ctx, &org, &id, (&none, &state), answer.status, None).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}

/// `POST /{org}/providers/{id}/keys/{keyId}/{replace|revoke|unrevoke|delete}`.
pub async fn provider_key_action(
    ctx: Ctx,
    Path((org, id, key, action)): Path<(String, String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/providers/{id}/keys/{key}"));
    let back = format!("/{org}/providers/{id}?done={action}");
    match action.as_str() {
        "revoke" | "unrevoke" => {
            super::write_then(&ctx, Method::POST, &format!("{path}/{action}"), None, &back).await
        }
        "delete" => super::write_then(&ctx, Method::DELETE, &path, None, &back).await,
        "replace" => {
            // The API has no in-place secret change: add the new key under the same name, then
            // revoke the old one (kept, so it can be restored if the new secret is wrong).
            let old = ctx.get(&path).await?;
            let body = json!({"name": s(&old, "name"), "key": fields.get("key")});
            let added = ctx
                .call(
                    Method::POST,
                    &api(&org, &format!("/providers/{id}/keys")),
                    Some(&body),
                )
                .await;
            if !added.ok() {
                if let Some(page) = super::refused(&ctx, &added) {
                    return Err(page);
                }
                let message = format!("The secret was not replaced: {}", added.message());
                return Err(layout::error_in_shell(
                    &ctx,
                    added.status,
                    "Not done",
                    &message,
                ));
            }
            super::write_then(&ctx, Method::POST, &format!("{path}/revoke"), None, &back).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}

// ---------------------------------------------------------------------------------------------
// Models

fn rate(model: &Value, side: &str) -> String {
    match model["pricing"][side]["text"].as_i64() {
        Some(nanos) if !model["pricing"].is_null() => format!("${}", layout::usd_plain(nanos)),
        _ => "—".into(),
    }
}

/// The models of an API list, linked under `base`; `providers` maps provider ids to names.
pub fn models_table(list: &Value, base: &str, providers: &HashMap<String, String>) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty("No models yet. An administrator adds models on top of a provider.");
    }
    table(
        &[
            "Name",
            "Upstream id",
            "Type",
            "Provider",
            "Input $/1M",
            "Output $/1M",
            "Enabled",
        ],
        items,
        |m| {
            let provider = providers
                .get(s(m, "providerId"))
                .map_or(s(m, "providerId"), String::as_str);
            html! { tr {
                td { a href={ (base) "/models/" (s(m, "id")) } { (s(m, "name")) } }
                td.mono { (s(m, "slug")) }
                td { (s(m, "type")) }
                td { (provider) }
                td.num { (rate(m, "input")) }
                td.num { (rate(m, "output")) }
                td { (badge(if m["enabled"].as_bool().unwrap_or(false) { "enabled" } else { "disabled" }, m["enabled"].as_bool().unwrap_or(false))) }
            } }
        },
    )
}

/// The fields of the model form (create and edit): provider and key choices, pricing in USD per
/// 1M tokens.
async fn model_fields(ctx: &Ctx, org: &str, state: &FormState) -> Option<Markup> {
    let providers = ctx
        .get_opt(&api(org, "/providers?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let mut provider_options = Vec::new();
    let mut key_options = vec![(String::new(), "Any active key of the provider".to_owned())];
    for provider in rows(&providers).iter().take(50) {
        let id = s(provider, "id");
        provider_options.push((
            id.to_owned(),
            format!("{} ({})", s(provider, "name"), s(provider, "type")),
        ));
        if let Some(keys) = ctx
            .get_opt(&api(org, &format!("/providers/{id}/keys")))
            .await
        {
            for key in rows(&keys) {
                key_options.push((
                    s(key, "id").to_owned(),
                    format!(
                        "{} / {} ({})",
                        s(provider, "name"),
                        s(key, "name"),
                        s(key, "preview")
                    ),
                ));
            }
        }
    }
    if provider_options.is_empty() {
        return None;
    }
    Some(html! {
        (forms::input(state, "name", "Name", "text", true, Some("What clients send as `model`.")))
        (forms::input(state, "slug", "Upstream model id", "text", true, Some("The provider's own id, e.g. gpt-4o-mini.")))
        (forms::select(state, "type", "Type", &options(MODEL_TYPES), None))
        (forms::select(state, "providerId", "Provider", &provider_options, None))
        (forms::select(state, "providerKeyId", "Provider key", &key_options, None))
        fieldset {
            legend { "Pricing (USD per 1M tokens)" }
            (forms::input(state, "inputUsd", "Input", "text", false, Some("e.g. 0.15; leave empty for an unpriced model.")))
            (forms::input(state, "outputUsd", "Output", "text", false, Some("e.g. 0.60")))
            (forms::input(state, "cachedInputDiscountPercent", "Cached input discount (%)", "number", false, None))
        }
        (forms::checkbox(state, "enabled", "Enabled", true))
    })
}

async fn model_form(ctx: &Ctx, org: &str, base: &str, state: &FormState) -> Markup {
    let fields = model_fields(ctx, org, state).await;
    disclosure(
        "Add a model",
        state.open,
        html! {
            @match fields {
                None => { p.empty { "Add a provider first: every model is served by one." } }
                Some(fields) => {
                    form method="post" action={ (base) "/models" } {
                        (csrf_field(ctx))
                        (state.summary())
                        (fields)
                        button type="submit" { "Add model" }
                    }
                }
            }
        },
    )
}

async fn models_page(
    ctx: &Ctx,
    org: &str,
    query: &HashMap<String, String>,
    state: &FormState,
    status: StatusCode,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let list = ctx
        .get(&format!("{}{}", api(org, "/models"), cursor_query(query)))
        .await?;
    let providers = ctx
        .get_opt(&api(org, "/providers?limit=500"))
        .await
        .map(|p| names(&p))
        .unwrap_or_default();
    let form = if is_admin(ctx) {
        model_form(ctx, org, &base, state).await
    } else {
        html! {}
    };
    let content = html! {
        (form)
        (models_table(&list, &base, &providers))
        (pager(&list, &format!("{base}/models")))
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "models", "Models", content),
    ))
}

/// `GET /{org}/models`: the organisation's models (and the form adding one, for ORG_ADMIN).
pub async fn models(ctx: Ctx, Path(org): Path<String>, Query(query): Params) -> Page {
    models_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

/// The pricing object of the model form, or the field at fault.
pub fn pricing_of(fields: &Fields) -> Result<Option<Value>, (&'static str, &'static str)> {
    let input = fields.opt("inputUsd");
    let output = fields.opt("outputUsd");
    if input.is_none() && output.is_none() {
        return Ok(None);
    }
    let parse = |value: Option<&str>, field: &'static str| match value {
        None => Ok(0),
        Some(v) => layout::parse_usd(v).ok_or((
            field,
            "Enter an amount in USD, like 0.15 (at most 9 decimals).",
        )),
    };
    let input = parse(input, "inputUsd")?;
    let output = parse(output, "outputUsd")?;
    let discount = match fields.opt("cachedInputDiscountPercent") {
        None => 0,
        Some(v) => match v.parse::<u8>() {
            Ok(p) if p <= 100 => p,
            _ => {
                return Err((
                    "cachedInputDiscountPercent",
                    "Enter a percentage between 0 and 100.",
                ))
            }
        },
    };
    Ok(Some(json!({
        "input": {"text": input},
        "output": {"text": output},
        "cachedInputDiscountPercent": discount,
    })))
}

/// `POST /{org}/models`: creates a model.
pub async fn create_model(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let pricing = match pricing_of(&fields) {
        Ok(pricing) => pricing,
        Err((field, message)) => {
            let state = FormState::failed(fields, Some(field), message);
            return models_page(&ctx, &org, &HashMap::new(), &state, StatusCode::BAD_REQUEST).await;
        }
    };
    let mut body = Map::new();
    for name in ["name", "slug", "type", "providerId"] {
        body.insert(name.into(), json!(fields.get(name)));
    }
    if let Some(key) = fields.opt("providerKeyId") {
        body.insert("providerKeyId".into(), json!(key));
    }
    if let Some(pricing) = pricing {
        body.insert("pricing".into(), pricing);
    }
    body.insert("enabled".into(), json!(fields.checked("enabled")));
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, "/models"),
            Some(&Value::Object(body)),
        )
        .await;
    if answer.ok() {
        return Ok(see_other(&format!("/{org}/models")));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = FormState::from_answer(fields, &answer);
    models_page(&ctx, &org, &HashMap::new(), &state, answer.status).await
}

/// The current values of a model as its edit form's fields.
fn model_values(model: &Value) -> FormState {
    let mut pairs = vec![
        ("name", s(model, "name").to_owned()),
        ("slug", s(model, "slug").to_owned()),
        ("type", s(model, "type").to_owned()),
        ("providerId", s(model, "providerId").to_owned()),
        ("providerKeyId", s(model, "providerKeyId").to_owned()),
    ];
    if model["pricing"].is_object() {
        let pricing = &model["pricing"];
        for (field, side) in [("inputUsd", "input"), ("outputUsd", "output")] {
            let nanos = pricing[side]["text"].as_i64().unwrap_or(0);
            pairs.push((field, layout::usd_plain(nanos)));
        }
        pairs.push((
            "cachedInputDiscountPercent",
            text(pricing, "cachedInputDiscountPercent").replace('—', ""),
        ));
    }
    if model["enabled"].as_bool().unwrap_or(false) {
        pairs.push(("enabled", "on".into()));
    }
    super::prefilled(pairs)
}

async fn model_page(
    ctx: &Ctx,
    org: &str,
    id: &str,
    edit: &FormState,
    status: StatusCode,
    notice: Option<&str>,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let model = ctx.get(&api(org, &format!("/models/{id}"))).await?;
    let provider = ctx
        .get_opt(&api(
            org,
            &format!("/providers/{}", s(&model, "providerId")),
        ))
        .await;
    // Which keys may call it: an administrator's view (others get no list).
    let access = ctx
        .get_opt(&api(org, &format!("/models/{id}/api-key-access")))
        .await;
    let here = format!("{base}/models/{id}");
    let form = if is_admin(ctx) {
        let state = if edit.open {
            edit.clone()
        } else {
            model_values(&model)
        };
        model_fields(ctx, org, &state).await.map(|fields| {
            disclosure(
                "Edit model",
                state.open,
                html! {
                    form method="post" action={ (here) "/edit" } {
                        (csrf_field(ctx))
                        (state.summary())
                        (fields)
                        button type="submit" { "Save model" }
                    }
                },
            )
        })
    } else {
        None
    };
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        dl.facts {
            dt { "Upstream id" } dd.mono { (s(&model, "slug")) }
            dt { "Type" } dd { (s(&model, "type")) }
            dt { "Provider" } dd {
                @match &provider {
                    Some(p) => { a href={ (base) "/providers/" (s(p, "id")) } { (s(p, "name")) } }
                    None => { (text(&model, "providerId")) }
                }
            }
            dt { "Provider key" } dd { (if s(&model, "providerKeyId").is_empty() { "any active key".to_owned() } else { text(&model, "providerKeyId") }) }
            dt { "Input $/1M tokens" } dd { (rate(&model, "input")) }
            dt { "Output $/1M tokens" } dd { (rate(&model, "output")) }
            dt { "Cached input discount" } dd { (text(&model["pricing"], "cachedInputDiscountPercent")) " %" }
            dt { "Enabled" } dd { (text(&model, "enabled")) }
            dt { "Policies" } dd {
                @if model["policies"].as_object().is_none_or(|p| p.is_empty()) { "none" }
                @else { pre { (serde_json::to_string_pretty(&model["policies"]).unwrap_or_default()) } }
            }
        }
        @if let Some(form) = form { (form) }
        @if is_admin(ctx) {
            div.actions {
                (super::confirm_action(ctx, &format!("{here}/delete"), "Delete model…", "Keys granted this model lose it; usage records keep its id.", "Delete model"))
            }
        }
        @if let Some(access) = &access {
            section aria-labelledby="granted-h" {
                h2 #granted-h { "API keys granted this model" }
                @if rows(access).is_empty() { (layout::empty("No API key may call this model yet. Grant it from a key's page.")) }
                @else {
                    (table(&["API key", "Granted"], rows(access), |g| html! { tr {
                        td { a href={ (base) "/apikeys/" (s(g, "apiKeyId")) } { (s(g, "apiKeyName")) } }
                        td { (layout::when(g, "createdAt")) }
                    } }))
                }
            }
        }
        p { a href={ (base) "/models" } { "← All models" } }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "models", s(&model, "name"), content),
    ))
}

/// `GET /{org}/models/{id}`: a model.
pub async fn model(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Params,
) -> Page {
    let notice =
        (query.get("done").map(String::as_str) == Some("edit")).then_some("The model was saved.");
    model_page(
        &ctx,
        &org,
        &id,
        &FormState::default(),
        StatusCode::OK,
        notice,
    )
    .await
}

/// `POST /{org}/models/{id}/{edit|delete}`.
pub async fn model_action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/models/{id}"));
    match action.as_str() {
        "delete" => {
            super::write_then(&ctx, Method::DELETE, &path, None, &format!("/{org}/models")).await
        }
        "edit" => {
            let pricing = match pricing_of(&fields) {
                Ok(pricing) => pricing,
                Err((field, message)) => {
                    let state = FormState::failed(fields, Some(field), message);
                    return model_page(&ctx, &org, &id, &state, StatusCode::BAD_REQUEST, None)
                        .await;
                }
            };
            let mut body = Map::new();
            for name in ["name", "slug", "type", "providerId"] {
                body.insert(name.into(), json!(fields.get(name)));
            }
            body.insert("providerKeyId".into(), json!(fields.opt("providerKeyId")));
            body.insert("pricing".into(), pricing.unwrap_or(Value::Null));
            body.insert("enabled".into(), json!(fields.checked("enabled")));
            let answer = ctx
                .call(Method::PATCH, &path, Some(&Value::Object(body)))
                .await;
            if answer.ok() {
                return Ok(see_other(&format!("/{org}/models/{id}?done=edit")));
            }
            if let Some(page) = super::refused(&ctx, &answer) {
                return Err(page);
            }
            let state = FormState::from_answer(fields, &answer);
            model_page(&ctx, &org, &id, &state, answer.status, None).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}

// ---------------------------------------------------------------------------------------------
// MCP servers

/// The MCP servers of an API list, linked under `base` (not linked when `None`).
pub fn mcp_table(list: &Value, base: Option<&str>) -> Markup {
    let items = rows(list);
    if items.is_empty() {
        return layout::empty(
            "No MCP servers yet. An administrator can add one to expose its tools through Odock.",
        );
    }
    table(
        &[
            "Name",
            "Slug",
            "Transport",
            "Endpoint / command",
            "Auth",
            "Enabled",
        ],
        items,
        |m| {
            let target = if s(m, "transport") == "STDIO" {
                text(m, "stdioCommand")
            } else {
                text(m, "endpointUrl")
            };
            html! { tr {
                td { @if let Some(base) = base { a href={ (base) "/mcp-servers/" (s(m, "id")) } { (s(m, "name")) } } @else { (s(m, "name")) } }
                td.mono { (s(m, "slug")) }
                td { (s(m, "transport")) }
                td.mono { (target) }
                td { (text(m, "authType")) }
                td { (badge(if m["enabled"].as_bool().unwrap_or(false) { "enabled" } else { "disabled" }, m["enabled"].as_bool().unwrap_or(false))) }
            } }
        },
    )
}

/// The upstream auth types' form fields: `(auth type, form field, authConfig key)`.
const AUTH_FIELDS: &[(&str, &str, &str)] = &[
    ("BEARER", "authToken", "token"),
    ("BASIC", "authUsername", "username"),
    ("BASIC", "authPassword", "password"),
    ("OAUTH2", "authTokenUrl", "tokenUrl"),
    ("OAUTH2", "authClientId", "clientId"),
    ("OAUTH2", "authClientSecret", "clientSecret"),
    ("OAUTH2", "authScope", "scope"),
    ("OAUTH2", "authAudience", "audience"),
];

/// The `authConfig` of `auth_type` from the form's filled fields; `None` when none of them is
/// filled (on edit: keep the sealed config).
fn auth_config(fields: &Fields, auth_type: &str) -> Option<Value> {
    let config: Map<String, Value> = AUTH_FIELDS
        .iter()
        .filter(|(kind, _, _)| *kind == auth_type)
        .filter_map(|(_, field, key)| fields.opt(field).map(|v| ((*key).to_owned(), json!(v))))
        .collect();
    (!config.is_empty()).then_some(Value::Object(config))
}

/// The form field an API error about `authConfig` belongs next to: the key the field
/// (`authConfig.<key>`) or the message (``needs `<key>` ``) names, else the type's first field.
fn auth_form_field(api_field: &str, message: &str, auth_type: &str) -> String {
    let key = api_field
        .strip_prefix("authConfig.")
        .or_else(|| message.split('`').nth(1));
    AUTH_FIELDS
        .iter()
        .filter(|(kind, _, _)| *kind == auth_type)
        .find(|(_, _, k)| key.is_none_or(|key| key == *k))
        .map_or("authType", |(_, field, _)| field)
        .to_owned()
}

const PRICE_HELP: &str = "Enter an amount in USD, like 0.001.";

/// The API body of the MCP server form. On create, empty fields are left out; on edit they clear
/// (a price becomes 0), except the auth fields: empty ones keep the sealed config. `None`: the
/// price is not an amount.
fn mcp_body(fields: &Fields, edit: bool) -> Option<Value> {
    let mut body = Map::new();
    for name in ["name", "slug", "transport"] {
        body.insert(name.into(), json!(fields.get(name)));
    }
    for name in ["endpointUrl", "stdioCommand"] {
        if edit || fields.opt(name).is_some() {
            body.insert(name.into(), json!(fields.opt(name)));
        }
    }
    let auth = fields.opt("authType").unwrap_or("NONE");
    body.insert("authType".into(), json!(auth));
    let config = match (auth, auth_config(fields, auth)) {
        ("NONE", _) => edit.then_some(Value::Null),
        (_, Some(config)) => Some(config),
        // A new server without its auth fields: the API names the missing one.
        (_, None) => (!edit).then(|| json!({})),
    };
    if let Some(config) = config {
        body.insert("authConfig".into(), config);
    }
    let call = match fields.opt("callUsd").map(layout::parse_usd) {
        Some(None) => return None,
        Some(Some(nanos)) => Some(nanos),
        None => edit.then_some(0),
    };
    if let Some(nanos) = call {
        body.insert("pricing".into(), json!({ "callNanosUsd": nanos }));
    }
    body.insert("enabled".into(), json!(fields.checked("enabled")));
    Some(Value::Object(body))
}

/// The MCP server form after the API refused it: the API names nested fields
/// (`authConfig.token`), so an auth error moves to the form's own field.
fn mcp_form_failed(fields: Fields, answer: &Answer) -> FormState {
    let auth = fields.opt("authType").unwrap_or("NONE").to_owned();
    let mut state = FormState::from_answer(fields, answer);
    if let Some((Some(field), message)) = &mut state.error {
        if field.starts_with("authConfig") {
            *field = auth_form_field(field, message, &auth);
        }
    }
    state
}

/// The fields of the MCP server form (create and edit), per transport.
fn mcp_fields(state: &FormState, token_help: &str) -> Markup {
    html! {
        (forms::input(state, "name", "Name", "text", true, None))
        (forms::input(state, "slug", "Slug", "text", true, Some("Clients reach it at /v1/mcp/{slug}.")))
        (forms::select(state, "transport", "Transport", &options(&["STREAMABLE_HTTP", "SSE", "STDIO"]), None))
        (forms::input(state, "endpointUrl", "Endpoint URL", "url", false, Some("For streamable HTTP and SSE.")))
        (forms::input(state, "stdioCommand", "Command", "text", false, Some("For STDIO: an allowed program.")))
        (forms::select(state, "authType", "Upstream auth", &options(&["NONE", "BEARER", "BASIC", "OAUTH2"]), None))
        p.help { (token_help) " Fill in the fields of the chosen type; the others are ignored." }
        fieldset {
            legend { "Bearer" }
            (forms::input(state, "authToken", "Bearer token", "password", false, None))
        }
        fieldset {
            legend { "Basic" }
            (forms::input(state, "authUsername", "Username", "text", false, None))
            (forms::input(state, "authPassword", "Password", "password", false, None))
        }
        fieldset {
            legend { "OAuth2 client credentials" }
            (forms::input(state, "authTokenUrl", "Token URL", "url", false, None))
            (forms::input(state, "authClientId", "Client id", "text", false, None))
            (forms::input(state, "authClientSecret", "Client secret", "password", false, None))
            (forms::input(state, "authScope", "Scope", "text", false, Some("Optional.")))
            (forms::input(state, "authAudience", "Audience", "text", false, Some("Optional.")))
        }
        (forms::input(state, "callUsd", "Price per tools/call (USD)", "text", false, None))
        (forms::checkbox(state, "enabled", "Enabled", true))
    }
}

async fn mcp_page(
    ctx: &Ctx,
    org: &str,
    query: &HashMap<String, String>,
    state: &FormState,
    status: StatusCode,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let list = ctx
        .get(&format!(
            "{}{}",
            api(org, "/mcp-servers"),
            cursor_query(query)
        ))
        .await?;
    let content = html! {
        @if is_admin(ctx) {
            (disclosure("Add an MCP server", state.open, html! {
                form method="post" action={ (base) "/mcp-servers" } {
                    (csrf_field(ctx))
                    (state.summary())
                    (mcp_fields(state, "Write-only: sealed at rest, shown as a preview."))
                    button type="submit" { "Add MCP server" }
                }
            }))
        }
        (mcp_table(&list, Some(&base)))
        (pager(&list, &format!("{base}/mcp-servers")))
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "mcp-servers", "MCP servers", content),
    ))
}

/// `GET /{org}/mcp-servers`: the organisation's MCP servers (and the form adding one).
pub async fn mcp_servers(ctx: Ctx, Path(org): Path<String>, Query(query): Params) -> Page {
    mcp_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

/// `POST /{org}/mcp-servers`: creates an MCP server.
pub async fn create_mcp_server(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let Some(body) = mcp_body(&fields, false) else {
        let state = FormState::failed(fields, Some("callUsd"), PRICE_HELP);
        return mcp_page(&ctx, &org, &HashMap::new(), &state, StatusCode::BAD_REQUEST).await;
    };
    let answer = ctx
        .call(Method::POST, &api(&org, "/mcp-servers"), Some(&body))
        .await;
    if answer.ok() {
        return Ok(see_other(&format!("/{org}/mcp-servers")));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let state = mcp_form_failed(fields, &answer);
    mcp_page(&ctx, &org, &HashMap::new(), &state, answer.status).await
}

/// The current values of an MCP server as its edit form's fields (the token stays empty: it is
/// write-only, and an empty field keeps the sealed one).
fn mcp_values(server: &Value) -> FormState {
    let mut pairs = vec![
        ("name", s(server, "name").to_owned()),
        ("slug", s(server, "slug").to_owned()),
        ("transport", s(server, "transport").to_owned()),
        ("endpointUrl", s(server, "endpointUrl").to_owned()),
        ("stdioCommand", s(server, "stdioCommand").to_owned()),
        ("authType", s(server, "authType").to_owned()),
    ];
    let call = layout::int(&server["pricing"], "callNanosUsd");
    if call > 0 {
        pairs.push(("callUsd", layout::usd_plain(call)));
    }
    if server["enabled"].as_bool().unwrap_or(false) {
        pairs.push(("enabled", "on".into()));
    }
    super::prefilled(pairs)
}

fn tool_list(server: &Value, key: &str, none: &str) -> Markup {
    let tools: Vec<&str> = server[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        @if tools.is_empty() { (none) }
        @else { ul.plain { @for tool in tools { li.mono { (tool) } } } }
    }
}

async fn mcp_server_page(
    ctx: &Ctx,
    org: &str,
    id: &str,
    edit: &FormState,
    status: StatusCode,
    notice: Option<&str>,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let server = ctx.get(&api(org, &format!("/mcp-servers/{id}"))).await?;
    let access = ctx
        .get_opt(&api(org, &format!("/mcp-servers/{id}/api-key-access")))
        .await;
    let here = format!("{base}/mcp-servers/{id}");
    let auth_configured = server["authConfigPreview"]
        .as_object()
        .is_some_and(|c| !c.is_empty());
    let stdio = s(&server, "transport") == "STDIO";
    let state = if edit.open {
        edit.clone()
    } else {
        mcp_values(&server)
    };
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        dl.facts {
            dt { "Slug" } dd.mono { "/v1/mcp/" (s(&server, "slug")) }
            dt { "Transport" } dd { (s(&server, "transport")) }
            @if stdio {
                dt { "Command" } dd.mono { (text(&server, "stdioCommand")) @for arg in server["stdioArgs"].as_array().cloned().unwrap_or_default() { " " (arg.as_str().unwrap_or("")) } }
            } @else {
                dt { "Endpoint" } dd.mono { (text(&server, "endpointUrl")) }
            }
            dt { "Upstream auth" } dd {
                (s(&server, "authType"))
                @if auth_configured { " — " (badge("configured", true)) " (sealed; never shown)" }
            }
            dt { "Price per tools/call" } dd { (layout::usd(layout::int(&server["pricing"], "callNanosUsd"))) }
            dt { "Allowed tools" } dd { (tool_list(&server, "allowedTools", "all the server lists")) }
            dt { "Blocked tools" } dd { (tool_list(&server, "blockedTools", "none")) }
            dt { "Enabled" } dd { (text(&server, "enabled")) }
            dt { "Description" } dd { (text(&server, "description")) }
        }
        @if is_admin(ctx) {
            (disclosure("Edit MCP server", state.open, html! {
                form method="post" action={ (here) "/edit" } {
                    (csrf_field(ctx))
                    (state.summary())
                    (mcp_fields(&state, "Write-only: leave empty to keep the sealed token."))
                    button type="submit" { "Save MCP server" }
                }
            }))
            div.actions {
                (super::confirm_action(ctx, &format!("{here}/delete"), "Delete MCP server…", "Keys granted this server lose it; clients calling its slug get 404.", "Delete MCP server"))
            }
        }
        @if let Some(access) = &access {
            section aria-labelledby="granted-h" {
                h2 #granted-h { "API keys granted this server" }
                @if rows(access).is_empty() { (layout::empty("No API key may call this server yet.")) }
                @else {
                    (table(&["API key", "Granted"], rows(access), |g| html! { tr {
                        td { a href={ (base) "/apikeys/" (s(g, "apiKeyId")) } { (text(g, "apiKeyName")) } }
                        td { (layout::when(g, "createdAt")) }
                    } }))
                }
            }
        }
        p { a href={ (base) "/mcp-servers" } { "← All MCP servers" } }
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "mcp-servers", s(&server, "name"), content),
    ))
}

/// `GET /{org}/mcp-servers/{id}`: an MCP server.
pub async fn mcp_server(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Params,
) -> Page {
    let notice = (query.get("done").map(String::as_str) == Some("edit"))
        .then_some("The MCP server was saved.");
    mcp_server_page(
        &ctx,
        &org,
        &id,
        &FormState::default(),
        StatusCode::OK,
        notice,
    )
    .await
}

/// `POST /{org}/mcp-servers/{id}/{edit|delete}`.
pub async fn mcp_server_action(
    ctx: Ctx,
    Path((org, id, action)): Path<(String, String, String)>,
    fields: Fields,
) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let path = api(&org, &format!("/mcp-servers/{id}"));
    match action.as_str() {
        "delete" => {
            super::write_then(
                &ctx,
                Method::DELETE,
                &path,
                None,
                &format!("/{org}/mcp-servers"),
            )
            .await
        }
        "edit" => {
            let Some(body) = mcp_body(&fields, true) else {
                let state = FormState::failed(fields, Some("callUsd"), PRICE_HELP);
                return mcp_server_page(&ctx, &org, &id, &state, StatusCode::BAD_REQUEST, None)
                    .await;
            };
            let answer = ctx.call(Method::PATCH, &path, Some(&body)).await;
            if answer.ok() {
                return Ok(see_other(&format!("/{org}/mcp-servers/{id}?done=edit")));
            }
            if let Some(page) = super::refused(&ctx, &answer) {
                return Err(page);
            }
            let state = mcp_form_failed(fields, &answer);
            mcp_server_page(&ctx, &org, &id, &state, answer.status, None).await
        }
        _ => Err(super::no_such_action(&ctx)),
    }
}
