//! Wire framing: JSON-RPC 2.0 messages and batches ([`Payload`]), Server-Sent Events
//! ([`SseEvent`], [`SseDecoder`]) and the `tools/list` filter ([`ToolsListFilter`]).
//!
//! Everything here is pure and total: malformed input is a [`FramingError`], never a panic.

mod event_stream;
#[cfg(test)]
mod fuzz;
mod jsonrpc;
mod tools_list;

pub use event_stream::{sse_events, SseDecoder, SseEvent};
pub use jsonrpc::{
    error_codes, error_response, FramingError, JsonRpcMessage, MessageKind, Payload, RequestId,
    ToolCall,
};
pub use tools_list::{ToolPredicate, ToolsListFilter};

#[cfg(test)]
mod robustness_tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    /// A tiny deterministic generator (xorshift), so the inputs are the same on every run.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Bytes biased towards the characters JSON and SSE care about.
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            const ALPHABET: &[u8] = b"{}[]\":,0123456789-.eEtrufalsn \n\r:datidevn\\u00ff";
            (0..len)
                .map(|_| match self.next() % 10 {
                    0 => (self.next() % 256) as u8,
                    _ => ALPHABET[(self.next() % ALPHABET.len() as u64) as usize],
                })
                .collect()
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_parser() {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let filter = ToolsListFilter::new(vec![RequestId::from(1)], Arc::new(|_: &str| false));
        let mut decoder = SseDecoder::new();
        let seeds: [&[u8]; 3] = [
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#,
            b"id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
        ];
        for round in 0..5_000 {
            let len = (noise.next() % 96) as usize;
            let mut input = noise.bytes(len);
            if round % 3 == 0 {
                // Mutate a valid message instead: flip a few bytes.
                input = seeds[round % seeds.len()].to_vec();
                for _ in 0..3 {
                    let at = (noise.next() as usize) % input.len();
                    input[at] = (noise.next() % 256) as u8;
                }
            }
            if let Ok(payload) = Payload::parse(&input) {
                let _ = (
                    payload.tool_calls(),
                    payload.primary_method(),
                    payload.is_initialize(),
                );
            }
            let _ = JsonRpcMessage::parse(&input);
            let body = Bytes::from(input.clone());
            let _ = filter.apply_json(&body);
            let _ = filter.apply_event(&body);
            let _ = SseEvent::parse(&input);
            if decoder.push(&input).is_err() {
                decoder = SseDecoder::new();
            }
        }
        let _ = decoder.finish();
    }
}
