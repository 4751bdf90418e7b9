#![deny(missing_docs)]
//! # odock-server
//!
//! The reference server: configuration, the gateway routes, metrics and the admin API (from
//! `odock-admin`), assembled by [`App`]. `main.rs` only parses flags, loads [`Config`] and calls [`App::serve`].

pub mod access_log;
pub mod app;
pub mod config;
mod config_error;
pub mod governance;
pub mod metrics;
pub mod notify;
pub mod observability;
pub mod routes;
pub mod serve;
pub mod single_writer;
pub mod telemetry;

pub use app::{App, StartError};
pub use config::{Cli, Config};
