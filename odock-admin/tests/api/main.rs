//! The admin API's integration tests: the real `/api` router of `odock-admin`, called in process
//! (`oneshot`) over the suite's database — in-memory SQLite, or a fresh PostgreSQL schema with
//! `ODOCK_TEST_BACKEND=postgres`. One binary (one link) with a module per resource:
//!
//! - the resource modules (organisations … usage_records) use [`common`]'s harness: the router as
//!   `odock-server` builds it, called with the static admin token;
//! - `auth`, `rbac`, `reports`, `audit` and `security` use `odock_admin::testing` (feature
//!   `testing`): a manual clock for sign-in, users with passwords and sessions;
//! - `mcp` has a harness of its own that allows loopback upstreams.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod api_keys;
mod audit;
mod auth;
mod budgets_quotas;
mod grants;
mod mcp;
mod models;
mod notifications;
mod organisations;
mod policies;
mod providers;
mod rbac;
mod reports;
mod routes;
mod security;
mod teams;
mod usage_records;
