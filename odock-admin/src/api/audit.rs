//! The audit log of admin writes: a middleware on every write operation of the route table, and the
//! two lists that read the log back.
//!
//! [`Auditor::wrap`] gives each POST/PUT/PATCH/DELETE route a middleware that, when the call
//! succeeds (2xx), stores one `audit_log` row: the operation id as the action, the actor (the
//! signed-in user, or the static admin token), the target (the object the path names, or for a
//! create the id in the response), and a summary `{path, request, before, after}`. `before` is what
//! the route's own GET answered just before the write (when the object has one), `after` the write's
//! JSON answer. `crate::audit_log::record` strips every secret (keys, tokens, passwords, auth
//! config, stdio env, envelopes) before anything is stored, so handlers need no audit code at all.
//!
//! The middleware sits inside the authorisation layer (it needs the caller's principal), so refused
//! calls are never recorded; neither are failed ones.

use std::collections::HashMap;

use crate::audit_log::{self as audit, Actor, AuditEntry, NewAuditEntry};
use crate::services::{organisations, Page};
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Json, RequestExt, Router};
use http::header::CONTENT_TYPE;
use http::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use super::authz::AdminPrincipal;
use super::error::ApiError;
use super::extract::AdminQuery;
use super::operation::{Operation, Reply, Verb};
use super::AdminState;

/// Admin bodies are small JSON objects; larger ones are refused by the handlers' extractor anyway.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Builds the audit middleware of each write route.
#[derive(Clone)]
pub struct Auditor {
    state: AdminState,
    /// The GET routes, called for the before-state of a write.
    reader: Router,
    /// Path templates that have a GET route.
    readable: std::sync::Arc<std::collections::HashSet<&'static str>>,
}

impl Auditor {
    /// An auditor for the routes of `operations` (the route table).
    pub fn new(state: &AdminState, operations: &[Operation]) -> Self {
        let mut reader = Router::new();
        let mut readable = std::collections::HashSet::new();
        for operation in operations {
            if operation.verb == Verb::Get && !operation.public {
                readable.insert(operation.path);
                reader = reader.route(operation.path, operation.handler.clone());
            }
        }
        Self {
            state: state.clone(),
            reader: reader.with_state(state.clone()),
            readable: std::sync::Arc::new(readable),
        }
    }

    /// `handler` (the handler of `operation`) with the audit middleware when the operation writes
    /// and is not public (sign-in and invitation acceptance have no actor yet); unchanged otherwise.
    pub fn wrap(
        &self,
        operation: &Operation,
        handler: MethodRouter<AdminState>,
    ) -> MethodRouter<AdminState> {
        if operation.verb == Verb::Get || operation.public {
            return handler;
        }
        let route = AuditedRoute {
            auditor: self.clone(),
            path: operation.path,
            operation_id: operation.operation_id,
            creates: matches!(operation.reply, Reply::Created(_)),
        };
        handler.route_layer(from_fn_with_state(route, record_write))
    }
}

#[derive(Clone)]
struct AuditedRoute {
    auditor: Auditor,
    /// The path template (`/api/organisations/{organisationId}/apikeys/{id}`).
    path: &'static str,
    operation_id: &'static str,
    creates: bool,
}

/// What a write changed, by the path template and its values.
struct Target {
    kind: String,
    /// The path parameter naming the object (`id`, `keyId`, …), if the path names one.
    param: Option<String>,
    /// The template of the object's own GET route, for the before-state.
    read_path: Option<String>,
}

impl AuditedRoute {
    fn target(&self) -> Target {
        let segments: Vec<&str> = self.path.split('/').collect();
        let param_at = segments.iter().rposition(|s| s.starts_with('{'));
        if self.creates || param_at.is_none() {
            // POST to a collection: the created object's type is the collection's.
            let collection = segments.last().copied().unwrap_or_default();
            return Target {
                kind: kind_of(collection),
                param: None,
                read_path: None,
            };
        }
        let at = param_at.unwrap_or_default();
        let collection = at
            .checked_sub(1)
            .and_then(|i| segments.get(i))
            .copied()
            .unwrap_or_default();
        let param = segments
            .get(at)
            .map(|s| s.trim_start_matches('{').trim_end_matches('}').to_owned());
        let object_path = segments[..=at].join("/");
        // `/settings` is the organisation's own object.
        let (kind, read_path) = if segments.last() == Some(&"settings") {
            ("organisation".to_owned(), Some(self.path.to_owned()))
        } else {
            (kind_of(collection), Some(object_path))
        };
        Target {
            kind,
            param,
            read_path: read_path.filter(|p| self.auditor.readable.contains(p.as_str())),
        }
    }
}

/// `apikeys` → `api_key`, `mcp-servers` → `mcp_server`, `keys` → `provider_key`, ….
fn kind_of(collection: &str) -> String {
    match collection {
        "apikeys" => "api_key".to_owned(),
        "keys" => "provider_key".to_owned(),
        "members" => "team_member".to_owned(),
        "model-access" | "api-key-access" => "model_grant".to_owned(),
        "mcp-access" => "mcp_grant".to_owned(),
        "routing" => "routing_policy".to_owned(),
        other => {
            let singular = other.strip_suffix('s').unwrap_or(other);
            singular.replace('-', "_")
        }
    }
}

/// Fills a path template with the request's parameter values.
fn fill(template: &str, params: &HashMap<String, String>) -> String {
    template
        .split('/')
        .map(|segment| {
            segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .and_then(|name| params.get(name))
                .map_or(segment, String::as_str)
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn record_write(
    State(route): State<AuditedRoute>,
    mut request: Request,
    next: Next,
) -> Response {
    let params = match request
        .extract_parts::<Path<HashMap<String, String>>>()
        .await
    {
        Ok(Path(params)) => params,
        Err(_) => HashMap::new(),
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let body = serde_json::from_slice::<Value>(&bytes).ok();
    let target = route.target();
    let before = match &target.read_path {
        Some(template) => read(&route.auditor, &parts, &fill(template, &params)).await,
        None => None,
    };
    let actor = match parts.extensions.get::<AdminPrincipal>() {
        Some(principal) => match &principal.user_id {
            Some(user) => Actor::User(user.clone()),
            None => Actor::AdminToken,
        },
        None => Actor::AdminToken,
    };

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.status().is_success() {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Only a body known to fit is read back (axum's JSON bodies know their length); a larger one
    // is passed on untouched and its entry has no `after`.
    let fits = axum::body::HttpBody::size_hint(response.body())
        .upper()
        .is_some_and(|upper| upper <= MAX_BODY_BYTES as u64);
    let (response, after) = if is_json && fits {
        let (parts, body) = response.into_parts();
        match to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => {
                let after = serde_json::from_slice::<Value>(&bytes).ok();
                (Response::from_parts(parts, Body::from(bytes)), after)
            }
            Err(error) => {
                tracing::error!(error = %error, "audit: the response body could not be read");
                return ApiError::Internal.into_response();
            }
        }
    } else {
        (response, None)
    };

    let created_id = after
        .as_ref()
        .and_then(|a| a.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let target_id = match &target.param {
        Some(param) => params.get(param).cloned(),
        None if route.creates => created_id.clone(),
        None => params.get("organisationId").cloned(),
    };
    let organisation_id = params.get("organisationId").cloned().or_else(|| {
        // `/api/admin/organisations[/{id}]`: the organisation is the target.
        (target.kind == "organisation")
            .then(|| target_id.clone())
            .flatten()
    });
    let mut summary = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            summary.insert(name.to_owned(), value);
        }
    };
    put("path", Some(json!(params)));
    put("request", body);
    put("before", before);
    put("after", after);
    let entry = NewAuditEntry {
        organisation_id,
        actor,
        action: route.operation_id.to_owned(),
        target_type: target.kind,
        target_id,
        summary: Value::Object(summary),
    };
    if let Err(error) = audit::record(&route.auditor.state.pool, entry).await {
        // The write happened; losing its audit row is logged loudly rather than undoing it.
        tracing::error!(error = %error, action = route.operation_id, "audit: entry not stored");
    }
    response
}

/// The JSON the GET route at `path` answers to the caller.
async fn read(auditor: &Auditor, parts: &http::request::Parts, path: &str) -> Option<Value> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .ok()?;
    // Only the principal: axum's own extensions (path parameters, matched path) of the outer
    // request would be merged into the inner route's and break its extractors.
    if let Some(principal) = parts.extensions.get::<AdminPrincipal>() {
        request.extensions_mut().insert(principal.clone());
    }
    let response = auditor.reader.clone().oneshot(request).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let bytes = to_bytes(response.into_body(), MAX_BODY_BYTES).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `?limit=&cursor=` (and on the cross-organisation list `organisationId=`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// Only this organisation's entries (cross-organisation list only).
    pub organisation_id: Option<String>,
}

/// `GET /api/organisations/{organisationId}/audit-log`, newest first.
pub async fn list(
    State(state): State<AdminState>,
    Path(organisation_id): Path<String>,
    AdminQuery(params): AdminQuery<AuditParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    if params.organisation_id.is_some() {
        return Err(ApiError::invalid(
            Some("organisationId"),
            "the organisation is the path's",
        ));
    }
    organisations::ensure_exists(&state.pool, &organisation_id).await?;
    let page = crate::services::PageRequest::new(params.cursor, params.limit);
    Ok(Json(
        audit::list(&state.pool, Some(&organisation_id), &page).await?,
    ))
}

/// `GET /api/admin/audit-log`, every organisation's (and organisation-less) entries, newest first.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AuditParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let page = crate::services::PageRequest::new(params.cursor, params.limit);
    Ok(Json(
        audit::list(&state.pool, params.organisation_id.as_deref(), &page).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_name_their_objects() {
        assert_eq!(kind_of("apikeys"), "api_key");
        assert_eq!(kind_of("mcp-servers"), "mcp_server");
        assert_eq!(kind_of("organisations"), "organisation");
        assert_eq!(kind_of("keys"), "provider_key");
        let mut params = HashMap::new();
        params.insert("organisationId".to_owned(), "o1".to_owned());
        params.insert("id".to_owned(), "k1".to_owned());
        assert_eq!(
            fill("/api/organisations/{organisationId}/apikeys/{id}", &params),
            "/api/organisations/o1/apikeys/k1"
        );
    }
}
