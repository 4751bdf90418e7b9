//! Loopback tests: real providers against fake upstreams on `127.0.0.1:0`.

// Test helpers outside `#[test]` functions panic on purpose when a fixture is broken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod egress;
mod fake_upstream;
mod gemini;
mod huggingface;
mod mistral;
mod openai_compat;
mod openai_routes;
mod vllm;
