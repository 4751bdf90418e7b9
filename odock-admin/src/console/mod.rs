//! The web console: server-rendered HTML pages for operators and organisation members, served by
//! `odock-server` on the same port as the gateway and the JSON API.
//!
//! - Pages are [`maud`] templates (checked at compile time); the only static assets are one CSS
//!   file and one small script ([`assets`]), embedded in the binary — no CDN, no inline script, so
//!   the Content-Security-Policy ([`security`]) can be `default-src 'self'`.
//! - Every read and write goes through the admin API's own route table, in process ([`client`]):
//!   the console presents the signed-in user's session to the same handlers, authorisation rules,
//!   audit middleware and cache invalidation as the JSON API, so a page can never show or change
//!   more than that user's API calls could. No SQL here, no HTTP round trip.
//! - Sessions are the `odock_session` cookie of the JSON API; every form write carries a
//!   per-session CSRF token and must come from this site's origin ([`session`]).

// A page handler's refusal *is* a response (a 403 page, a redirect to sign-in): returning it by
// value in `Err` keeps `?` usable; boxing it would only add an allocation on every refusal.
#![allow(clippy::result_large_err)]

pub mod assets;
pub mod charts;
pub mod client;
pub mod ctx;
pub mod forms;
pub mod layout;
pub mod pages;
pub mod security;
pub mod session;

#[cfg(test)]
mod tests;

use axum::routing::{get, post};
use axum::{middleware, Router};

use crate::api::session::AuthSettings;

/// What every console handler needs.
#[derive(Clone)]
pub struct Console {
    /// The admin API router (`crate::api::router_with`, with the server's extensions), called in
    /// process.
    pub api: Router,
    /// The CSRF origin policy and clock shared with the JSON API.
    pub settings: AuthSettings,
}

/// The console's routes. Merge them into the application router next to the admin API (paths are
/// absolute); leave them out for an API-only deployment (`ODOCK_UI=off`).
pub fn router(api: Router, settings: AuthSettings) -> Router {
    use pages::{admin, auth, catalog, keys, people, reports, rules, settings as org_settings};
    let console = Console { api, settings };
    let public = Router::new()
        .route("/", get(auth::home))
        .route("/assets/{file}", get(assets::serve))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route(
            "/account/password",
            get(auth::password_page).post(auth::password),
        )
        .route(
            "/invitations/{token}",
            get(auth::invitation_page).post(auth::accept_invitation),
        )
        // The operator family (SUPER_ADMIN).
        .route("/admin/dashboard", get(admin::dashboard))
        .route(
            "/admin/organisations",
            get(admin::organisations).post(admin::create_organisation),
        )
        .route("/admin/teams", get(admin::teams))
        .route("/admin/users", get(admin::users))
        .route("/admin/providers", get(admin::providers))
        .route("/admin/models", get(admin::models))
        .route("/admin/mcp-servers", get(admin::mcp_servers))
        .route("/admin/apikeys", get(admin::apikeys))
        .route("/admin/budgets", get(admin::budgets))
        .route("/admin/quotas", get(admin::quotas))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/invoices", get(admin::invoices))
        .route("/admin/playground", get(admin::playground))
        .route("/admin/settings", get(admin::settings));
    // The organisation family. Its first segment matches any path's, so anything that is not an
    // organisation id is left to the application's JSON 404 before a session is even looked at.
    let organisation = Router::new()
        .route("/{org}/dashboard", get(reports::dashboard))
        .route(
            "/{org}/providers",
            get(catalog::providers).post(catalog::create_provider),
        )
        .route("/{org}/providers/{id}", get(catalog::provider))
        .route(
            "/{org}/providers/{id}/keys",
            post(catalog::create_provider_key),
        )
        .route(
            "/{org}/providers/{id}/keys/{key}/{action}",
            post(catalog::provider_key_action),
        )
        .route(
            "/{org}/providers/{id}/{action}",
            post(catalog::provider_action),
        )
        .route(
            "/{org}/models",
            get(catalog::models).post(catalog::create_model),
        )
        .route("/{org}/models/{id}", get(catalog::model))
        .route("/{org}/models/{id}/{action}", post(catalog::model_action))
        .route(
            "/{org}/mcp-servers",
            get(catalog::mcp_servers).post(catalog::create_mcp_server),
        )
        .route("/{org}/mcp-servers/{id}", get(catalog::mcp_server))
        .route(
            "/{org}/mcp-servers/{id}/{action}",
            post(catalog::mcp_server_action),
        )
        .route("/{org}/teams", get(people::teams).post(people::create_team))
        .route(
            "/{org}/teams/{id}",
            get(people::team).post(people::add_member),
        )
        .route("/{org}/teams/{id}/{action}", post(people::team_action))
        .route(
            "/{org}/teams/{id}/members/{user}/{action}",
            post(people::member_action),
        )
        .route("/{org}/users", get(people::users).post(people::invite))
        .route("/{org}/users/{id}", get(people::user))
        .route("/{org}/users/{id}/{action}", post(people::user_action))
        .route("/{org}/apikeys", get(keys::list).post(keys::create))
        .route("/{org}/apikeys/{id}", get(keys::detail))
        .route("/{org}/apikeys/{id}/{action}", post(keys::action))
        .route(
            "/{org}/apikeys/{id}/models/{model}/remove",
            post(keys::remove_grant),
        )
        .route(
            "/{org}/budgets",
            get(rules::budgets).post(rules::create_budget),
        )
        .route("/{org}/budgets/{id}", get(rules::budget))
        .route("/{org}/budgets/{id}/{action}", post(rules::budget_action))
        .route(
            "/{org}/quotas",
            get(rules::quotas).post(rules::create_quota),
        )
        .route("/{org}/quotas/{id}", get(rules::quota))
        .route("/{org}/quotas/{id}/{action}", post(rules::quota_action))
        .route("/{org}/usage", get(reports::usage))
        .route("/{org}/usage/{id}", get(reports::record))
        .route("/{org}/invoices", get(reports::invoices))
        .route("/{org}/playground", get(reports::playground))
        .route(
            "/{org}/settings",
            get(org_settings::page).post(org_settings::save),
        )
        .route_layer(middleware::from_fn(pages::organisation_paths_only));
    public
        .merge(organisation)
        .layer(middleware::from_fn(security::headers))
        .with_state(console)
}
