//! The catalog of an organisation: providers (with their write-only keys), models (with pricing in
//! USD per 1M tokens, stored as nanos) and MCP servers.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use http::{Method, StatusCode};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::{api, cursor_query, disclosure, is_admin, names, org_scope, see_other, table, Page};
use crate::console::forms::{self, options, FormState};
use crate::console::layout::{self, badge, csrf_field, pager, rows, s, text};
use crate::console::session::{Ctx, Fields};

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

pub async fn providers(ctx: Ctx, Path(org): Path<String>, Query(query): Params) -> Page {
    providers_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

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

async fn provider_page(
    ctx: &Ctx,
    org: &str,
    id: &str,
    state: &FormState,
    status: StatusCode,
    notice: Option<&str>,
) -> Page {
    let scope = org_scope(org)?;
    let base = scope.base();
    let provider = ctx.get(&api(org, &format!("/providers/{id}"))).await?;
    let keys = ctx.get(&api(org, &format!("/providers/{id}/keys"))).await?;
    let models = ctx
        .get_opt(&api(org, "/models?limit=500"))
        .await
        .unwrap_or(Value::Null);
    let models: Vec<Value> = rows(&models)
        .iter()
        .filter(|m| s(m, "providerId") == id)
        .cloned()
        .collect();
    let content = html! {
        @if let Some(notice) = notice { (layout::notice(notice)) }
        dl.facts {
            dt { "Type" } dd { (s(&provider, "type")) }
            dt { "Base URL" } dd.mono { (text(&provider, "baseUrl")) }
            dt { "Timeout" } dd { (text(&provider, "timeoutMs")) " ms" }
            dt { "Enabled" } dd { (text(&provider, "enabled")) }
        }
        section aria-labelledby="keys-h" {
            h2 #keys-h { "Provider keys" }
            p.help { "Secrets are encrypted at rest and never shown again; only previews are listed." }
            @if rows(&keys).is_empty() { (layout::empty("No key yet: models of this provider cannot be called until one is added.")) }
            @else {
                (table(&["Name", "Preview", "State", "Added"], rows(&keys), |k| html! { tr {
                    td { (s(k, "name")) }
                    td.mono { (s(k, "preview")) }
                    td { (badge(if k["revoked"].as_bool().unwrap_or(false) { "revoked" } else { "active" }, !k["revoked"].as_bool().unwrap_or(false))) }
                    td { (layout::when(k, "createdAt")) }
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

pub async fn provider(
    ctx: Ctx,
    Path((org, id)): Path<(String, String)>,
    Query(query): Params,
) -> Page {
    let notice = query
        .contains_key("added")
        .then_some("The key was added. Its secret will not be shown again.");
    provider_page(
        &ctx,
        &org,
        &id,
        &FormState::default(),
        StatusCode::OK,
        notice,
    )
    .await
}

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
    provider_page(&ctx, &org, &id, &state, answer.status, None).await
}

// ---------------------------------------------------------------------------------------------
// Models

fn rate(model: &Value, side: &str) -> String {
    match model["pricing"][side]["text"].as_i64() {
        Some(nanos) if !model["pricing"].is_null() => format!("${}", layout::usd_plain(nanos)),
        _ => "—".into(),
    }
}

pub fn models_table(list: &Value, _base: &str, providers: &HashMap<String, String>) -> Markup {
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
                td { (s(m, "name")) }
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

async fn model_form(ctx: &Ctx, org: &str, base: &str, state: &FormState) -> Markup {
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
    disclosure(
        "Add a model",
        state.open,
        html! {
            @if provider_options.is_empty() {
                p.empty { "Add a provider first: every model is served by one." }
            } @else {
                form method="post" action={ (base) "/models" } {
                    (csrf_field(ctx))
                    (state.summary())
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
                    button type="submit" { "Add model" }
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

// ---------------------------------------------------------------------------------------------
// MCP servers

pub fn mcp_table(list: &Value) -> Markup {
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
                td { (s(m, "name")) }
                td.mono { (s(m, "slug")) }
                td { (s(m, "transport")) }
                td.mono { (target) }
                td { (text(m, "authType")) }
                td { (badge(if m["enabled"].as_bool().unwrap_or(false) { "enabled" } else { "disabled" }, m["enabled"].as_bool().unwrap_or(false))) }
            } }
        },
    )
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
                    (forms::input(state, "name", "Name", "text", true, None))
                    (forms::input(state, "slug", "Slug", "text", true, Some("Clients reach it at /v1/mcp/{slug}.")))
                    (forms::select(state, "transport", "Transport", &options(&["STREAMABLE_HTTP", "SSE", "STDIO"]), None))
                    (forms::input(state, "endpointUrl", "Endpoint URL", "url", false, Some("For streamable HTTP and SSE.")))
                    (forms::input(state, "stdioCommand", "Command", "text", false, Some("For STDIO: an allowed program.")))
                    (forms::select(state, "authType", "Upstream auth", &options(&["NONE", "BEARER"]), None))
                    (forms::input(state, "authToken", "Bearer token", "password", false, Some("Write-only: sealed at rest, shown as a preview.")))
                    (forms::input(state, "callUsd", "Price per tools/call (USD)", "text", false, None))
                    (forms::checkbox(state, "enabled", "Enabled", true))
                    button type="submit" { "Add MCP server" }
                }
            }))
        }
        (mcp_table(&list))
        (pager(&list, &format!("{base}/mcp-servers")))
    };
    Ok(layout::respond(
        status,
        layout::page(ctx, &scope, "mcp-servers", "MCP servers", content),
    ))
}

pub async fn mcp_servers(ctx: Ctx, Path(org): Path<String>, Query(query): Params) -> Page {
    mcp_page(&ctx, &org, &query, &FormState::default(), StatusCode::OK).await
}

pub async fn create_mcp_server(ctx: Ctx, Path(org): Path<String>, fields: Fields) -> Page {
    org_scope(&org)?;
    ctx.check_form(&fields)?;
    let mut body = Map::new();
    for name in ["name", "slug", "transport"] {
        body.insert(name.into(), json!(fields.get(name)));
    }
    for name in ["endpointUrl", "stdioCommand"] {
        if let Some(value) = fields.opt(name) {
            body.insert(name.into(), json!(value));
        }
    }
    let auth = fields.get("authType");
    body.insert(
        "authType".into(),
        json!(if auth.is_empty() { "NONE" } else { auth }),
    );
    if auth == "BEARER" {
        body.insert(
            "authConfig".into(),
            json!({"token": fields.get("authToken")}),
        );
    }
    if let Some(price) = fields.opt("callUsd") {
        match layout::parse_usd(price) {
            Some(nanos) => body.insert("pricing".into(), json!({"callNanosUsd": nanos})),
            None => {
                let state = FormState::failed(
                    fields,
                    Some("callUsd"),
                    "Enter an amount in USD, like 0.001.",
                );
                return mcp_page(&ctx, &org, &HashMap::new(), &state, StatusCode::BAD_REQUEST)
                    .await;
            }
        };
    }
    body.insert("enabled".into(), json!(fields.checked("enabled")));
    let answer = ctx
        .call(
            Method::POST,
            &api(&org, "/mcp-servers"),
            Some(&Value::Object(body)),
        )
        .await;
    if answer.ok() {
        return Ok(see_other(&format!("/{org}/mcp-servers")));
    }
    if let Some(page) = super::refused(&ctx, &answer) {
        return Err(page);
    }
    let mut state = FormState::from_answer(fields, &answer);
    // The API names nested fields (`authConfig.token`); point at the form's own field.
    if let Some((Some(field), _)) = &mut state.error {
        if field.starts_with("authConfig") {
            *field = "authToken".into();
        }
    }
    mcp_page(&ctx, &org, &HashMap::new(), &state, answer.status).await
}
