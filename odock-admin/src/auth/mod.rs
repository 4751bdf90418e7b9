//! Signing in to the admin API: password hashing, sessions and sign-in throttling.
//!
//! Users themselves are an admin object ([`crate::services::users`]); this module holds what only the
//! sign-in flow needs. Tokens are stored hashed; passwords as argon2id PHC strings.

pub mod access;
pub mod passwords;
pub mod sessions;
pub mod throttle;
