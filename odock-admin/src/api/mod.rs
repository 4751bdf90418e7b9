//! The admin API under `/api` (ADMIN_API.md): signed-in users (sessions) and the static
//! `ODOCK_ADMIN_TOKEN`, with roles enforced on every route.
//!
//! - [`routes`] is the route table: every route with its documentation and handler. [`router`] and
//!   the OpenAPI document ([`openapi`], served at `GET /api/openapi.json`) are both built from it.
//! - [`authz`] is the one authorisation layer: every operation's [`authz::Access`] rule is enforced
//!   by a middleware wrapped around its handler, after [`auth`] named the caller. [`session`] holds
//!   the sign-in routes; users and invitations are [`users`] and [`invitations`].
//! - Handlers (one module per resource) are thin: they extract with [`extract`] (whose rejections
//!   are JSON errors), call the repositories of `crate::services`, send the cache invalidation
//!   after a successful write, and answer; every failure is an [`error::ApiError`].

pub mod analytics;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod auth_settings;
pub mod authz;
pub mod budgets;
pub mod credentials;
pub mod csrf;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod forwarded;
pub mod grants;
pub mod host_policy;
pub mod invitations;
pub mod invoices;
pub mod ledger_rules;
pub mod mcp_servers;
pub mod mcp_usage;
pub mod models;
pub mod notifications;
pub mod openapi;
pub mod operation;
pub mod organisations;
pub mod principal;
pub mod provider_keys;
pub mod providers;
mod records;
pub mod routes;
pub mod routing;
pub mod session;
pub mod teams;
pub mod usage_records;
pub mod users;

use std::sync::Arc;

use axum::{Extension, Router};
use odock_core::{CacheInvalidator, CacheKind, InvalidationCommand, LiveWindows, Secret};
use odock_store::db::Db;
use odock_store::MasterKey;

/// Everything the admin handlers need.
#[derive(Clone)]
pub struct AdminState {
    /// The database.
    pub pool: Db,
    /// What tenants may point the gateway at (egress) and run on its host (stdio commands).
    pub host: host_policy::HostPolicy,
    /// Seals and opens provider keys and MCP credentials.
    pub master_key: Arc<MasterKey>,
    /// Called after every write that changes runtime state (keys, models, providers, grants, …).
    pub invalidator: Arc<dyn CacheInvalidator>,
    /// The static admin token (acts as SUPER_ADMIN).
    pub admin_token: Secret,
    /// Budget and quota window totals ahead of the database (the in-process ledger, or Redis).
    pub live_windows: Arc<dyn LiveWindows>,
}

impl AdminState {
    /// Tells every cache that `id` of `kind` changed.
    pub fn invalidate(&self, kind: CacheKind, id: &str) {
        self.invalidator
            .invalidate(&InvalidationCommand::new(kind, id));
    }
}

/// The `/api` router with the default sign-in settings (wall clock, 12-hour sessions, ADMIN_API.md
/// throttling). Paths are absolute (`/api/admin/...`, `/api/organisations/...`), so merge it into the
/// application router rather than nesting it. It sets no fallback (the application owns unknown
/// paths) but answers a wrong method on a known path with a JSON 405.
pub fn router(state: AdminState) -> Router {
    router_with(state, session::AuthSettings::default())
}

/// [`router`] with explicit sign-in settings (a test clock, another session lifetime).
pub fn router_with(state: AdminState, settings: session::AuthSettings) -> Router {
    let mut router = Router::new();
    // Inside the authorisation guard, so it sees the caller and never records a refused call.
    let operations = routes::operations();
    let auditor = audit::Auditor::new(&state, &operations);
    for operation in operations {
        let handler = auditor.wrap(&operation, operation.handler.clone());
        let handler = authz::guard(handler, operation.access, &state, &settings);
        // Outermost: a forged browser write is refused before anything else runs.
        let handler = if operation.verb == routes::Verb::Get {
            handler
        } else {
            let route = csrf::Route {
                json_body: operation.request.is_some(),
                signs_in: operation.public,
            };
            csrf::guard(handler, &settings.csrf, route)
        };
        router = router.route(operation.path, handler);
    }
    router
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(Extension(settings))
        .with_state(state)
}
