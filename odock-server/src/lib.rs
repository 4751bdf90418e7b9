//! # odock-server
//!
//! The reference server: configuration, the gateway routes, the admin API and metrics.

pub mod admin;
