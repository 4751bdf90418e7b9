//! Translation for `/v1/llm/chat` and SSE parsing, on the providers' golden fixtures (real wire
//! formats): OpenAI chat → Anthropic / Gemini requests, their answers → OpenAI completions, an
//! Anthropic event stream → OpenAI chunks, and raw SSE parsing.
//!
//! `cargo bench --bench translation`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use odock_providers::anthropic::{
    convert as anthropic, stream::ChunkTranslator, wire::MessagesResponse,
};
use odock_providers::gemini::{convert as gemini, wire::GenerateContentResponse};
use odock_providers::sse;
use std::time::Duration;

const ANTHROPIC_CHAT_REQUEST: &str =
    include_str!("../odock-providers/src/anthropic/fixtures/chat_request.json");
const ANTHROPIC_MESSAGE: &str =
    include_str!("../odock-providers/src/anthropic/fixtures/message.json");
const ANTHROPIC_STREAM: &str =
    include_str!("../odock-providers/src/anthropic/fixtures/message_stream.sse");
const GEMINI_CHAT_REQUEST: &str =
    include_str!("../odock-providers/src/gemini/fixtures/chat_request.json");
const GEMINI_RESPONSE: &str =
    include_str!("../odock-providers/src/gemini/fixtures/generate_content.json");
const OPENAI_STREAM: &str =
    include_str!("../odock-providers/src/openai_compat/fixtures/chat_completion_stream.sse");

/// The fixture split into 64-byte network-sized pieces, as a byte stream.
fn byte_stream(
    text: &'static str,
) -> impl futures::Stream<Item = Result<Bytes, reqwest::Error>> + Send {
    futures::stream::iter(
        text.as_bytes()
            .chunks(64)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect::<Vec<_>>(),
    )
}

fn translation(c: &mut Criterion) {
    c.bench_function("anthropic/request_from_chat", |b| {
        b.iter(|| {
            anthropic::to_messages_request(
                criterion::black_box(ANTHROPIC_CHAT_REQUEST.as_bytes()),
                "claude-x",
                None,
                false,
            )
        })
    });
    c.bench_function("anthropic/completion_from_message", |b| {
        b.iter(|| {
            let message: MessagesResponse =
                serde_json::from_str(criterion::black_box(ANTHROPIC_MESSAGE))
                    .unwrap_or_else(|e| panic!("{e}"));
            anthropic::to_chat_completion(&message, "claude", 0)
        })
    });
    c.bench_function("gemini/request_from_chat", |b| {
        b.iter(|| gemini::to_generate_content(criterion::black_box(GEMINI_CHAT_REQUEST.as_bytes())))
    });
    c.bench_function("gemini/completion_from_response", |b| {
        b.iter(|| {
            let response: GenerateContentResponse =
                serde_json::from_str(criterion::black_box(GEMINI_RESPONSE))
                    .unwrap_or_else(|e| panic!("{e}"));
            gemini::to_chat_completion(&response, "gemini", "id", 0)
        })
    });
}

fn streams(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(OPENAI_STREAM.len() as u64));
    group.bench_function("parse_openai_stream", |b| {
        b.to_async(&runtime).iter(|| async {
            sse::events(byte_stream(OPENAI_STREAM), Duration::from_secs(60))
                .count()
                .await
        })
    });
    group.throughput(Throughput::Bytes(ANTHROPIC_STREAM.len() as u64));
    group.bench_function("anthropic_stream_to_openai_chunks", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut translator = ChunkTranslator::new("claude", 0, true);
            let mut events = sse::events(byte_stream(ANTHROPIC_STREAM), Duration::from_secs(60));
            let mut bytes = 0;
            while let Some(Ok(event)) = events.next().await {
                if let Ok(chunk) = translator.translate(&event) {
                    bytes += chunk.bytes.len();
                }
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, translation, streams);
criterion_main!(benches);
