//! The admin API under `/api` (ADMIN_API.md), authenticated by `ODOCK_ADMIN_TOKEN`.
//!
//! - [`routes`] is the route table: every route with its documentation and handler. [`router`] and
//!   the OpenAPI document ([`openapi`], served at `GET /api/openapi.json`) are both built from it.
//! - [`auth`] is the one authentication middleware in front of every route but the document.
//! - Handlers (one module per resource) are thin: they extract with [`extract`] (whose rejections
//!   are JSON errors), call the repositories of `odock_store::admin`, send the cache invalidation
//!   after a successful write, and answer; every failure is an [`error::ApiError`].

pub mod api_keys;
pub mod auth;
pub mod budgets;
pub mod error;
pub mod extract;
pub mod grants;
pub mod models;
pub mod openapi;
pub mod organisations;
pub mod provider_keys;
pub mod providers;
pub mod quotas;
pub mod routes;
pub mod teams;
pub mod usage_records;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::Router;
use odock_core::{CacheInvalidator, CacheKind, InvalidationCommand, Secret};
use odock_store::db::Db;
use odock_store::MasterKey;

/// Everything the admin handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub pool: Db,
    pub master_key: Arc<MasterKey>,
    /// Called after every write that changes runtime state (keys, models, providers, grants, …).
    pub invalidator: Arc<dyn CacheInvalidator>,
    /// The static admin token (acts as SUPER_ADMIN).
    pub admin_token: Secret,
}

impl AdminState {
    /// Tells every cache that `id` of `kind` changed.
    pub fn invalidate(&self, kind: CacheKind, id: &str) {
        self.invalidator
            .invalidate(&InvalidationCommand::new(kind, id));
    }
}

/// The `/api` router. Paths are absolute (`/api/admin/...`, `/api/organisations/...`), so merge it
/// into the application router rather than nesting it. It sets no fallback (the application owns
/// unknown paths) but answers a wrong method on a known path with a JSON 405.
pub fn router(state: AdminState) -> Router {
    let mut protected = Router::new();
    let mut public = Router::new();
    for operation in routes::operations() {
        if operation.public {
            public = public.route(operation.path, operation.handler);
        } else {
            protected = protected.route(operation.path, operation.handler);
        }
    }
    protected
        .route_layer(from_fn_with_state(state.clone(), auth::require_admin))
        .merge(public)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}
