#![deny(missing_docs)]
//! # odock-admin
//!
//! Odock's management plane, over `odock-store`'s database:
//! - [`services`]: one module per resource (organisations, users, invitations, teams, providers and
//!   their keys, models, MCP servers, API keys, grants, budgets, quotas) — typed inputs, validation
//!   and the SQL that reads and writes them;
//! - [`auth`]: passwords, sessions, sign-in throttling and the access facts authorisation reads;
//! - [`analytics`], [`invoices`] (JSON, CSV, PDF) and the [`audit_log`]: reports over usage and writes;
//! - [`api`]: the JSON admin API under `/api` — the route table, OpenAPI document, authorisation
//!   layer, CSRF check, session routes and audit middleware;
//! - [`console`]: the web console, server-rendered pages over the same API operations.
//!
//! With the `testing` feature, `testing` is the admin API under test that the integration tests in
//! `tests/api/` share.
//!
//! `odock-server` assembles it: it builds an [`api::AdminState`] and merges [`api::router`] into
//! its application router.

pub mod analytics;
pub mod api;
pub mod audit_log;
pub mod auth;
pub mod console;
pub mod invoices;
pub mod services;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
