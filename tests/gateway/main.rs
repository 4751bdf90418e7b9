//! Black-box integration tests: the real `odock-server` on 127.0.0.1:0, a fake OpenAI upstream on
//! loopback, real HTTP clients. One test binary, modules by concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod budgets;
mod cancellation;
mod chat;
mod console;
mod embedding;
mod errors;
mod gemini;
mod host_security;
mod http_surface;
mod huggingface;
mod keys;
mod mcp;
mod mistral;
mod observability;
mod openai_routes;
mod ops;
mod rate_limits;
mod replicas;
mod replicas_mcp;
mod routing;
mod sdk;
mod support;
mod vllm;
