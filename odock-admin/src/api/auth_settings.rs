//! How sign-in behaves ([`AuthSettings`]): the clock, session lifetime, throttling rules and CSRF
//! policy every admin route reads through an `Extension`.

use std::sync::Arc;

use chrono::Duration;
use odock_core::{Clock, SystemClock};

use crate::auth::throttle::{ThrottleRule, ACCOUNT_RULE, IP_RULE};

use super::csrf::CsrfPolicy;

/// How sign-in behaves; shared by every admin route through an `Extension`.
#[derive(Clone)]
pub struct AuthSettings {
    /// Session expiry, throttling windows and invitation expiry read this clock.
    pub clock: Arc<dyn Clock>,
    /// How long a session lasts from sign-in.
    pub session_ttl: Duration,
    /// Failed sign-ins per account before it is locked.
    pub account_rule: ThrottleRule,
    /// Failed sign-ins per client IP before it is locked.
    pub ip_rule: ThrottleRule,
    /// Admin-token tries per client IP ([`super::auth`]).
    pub token_rule: ThrottleRule,
    /// Which origins may send cookie-authenticated writes ([`super::csrf`]).
    pub csrf: CsrfPolicy,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            session_ttl: Duration::hours(12),
            account_rule: ACCOUNT_RULE,
            ip_rule: IP_RULE,
            token_rule: IP_RULE,
            csrf: CsrfPolicy::default(),
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("session_ttl", &self.session_ttl)
            .finish_non_exhaustive()
    }
}

impl AuthSettings {
    /// The settings' clock now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }
}
