//! Loopback tests: real providers against fake upstreams on `127.0.0.1:0`.

// Test helpers outside `#[test]` functions panic on purpose when a fixture is broken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_upstream;
mod openai_compat;
