//! Tests against a real Redis (`ODOCK_TEST_REDIS_URL`; skipped with a note when unset, failing when
//! set but unreachable). Each test works under its own random key prefix, so tests run in parallel
//! and leave nothing behind.

mod admission;
mod invalidation;
mod sessions;
mod support;
