//! Tests against a real Redis (`ODOCK_TEST_REDIS_URL`; skipped with a note when unset, failing when
//! set but unreachable). Each test works under its own random key prefix, so tests run in parallel
//! and leave nothing behind.

mod invalidation;
mod ledger;
mod rate_limit;
mod sessions;
mod support;
