//! Hiding tools a key may not call: `tools/list` results are filtered before the client sees them,
//! in a JSON body, in one SSE event or across a relayed event stream.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use odock_core::McpError;
use serde_json::Value;

use super::event_stream::SseEvent;
use super::jsonrpc::RequestId;

/// Decides whether a tool (by name) may be shown.
pub type ToolPredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Filters the responses to the given `tools/list` request ids. Responses to other ids, and bodies
/// that are not JSON, pass through untouched.
#[derive(Clone)]
pub struct ToolsListFilter {
    ids: Vec<RequestId>,
    allow: ToolPredicate,
}

impl std::fmt::Debug for ToolsListFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsListFilter")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl ToolsListFilter {
    /// A filter for the responses to the `tools/list` requests `ids`, showing the tools `allow`
    /// accepts.
    pub fn new(ids: Vec<RequestId>, allow: ToolPredicate) -> Self {
        Self { ids, allow }
    }

    /// True when there is nothing to filter (the request held no `tools/list`).
    pub fn is_noop(&self) -> bool {
        self.ids.is_empty()
    }

    /// Filters a JSON body (one response or a batch of responses).
    pub fn apply_json(&self, body: &Bytes) -> Bytes {
        if self.is_noop() {
            return body.clone();
        }
        let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
            return body.clone();
        };
        if self.apply_value(&mut value) {
            Bytes::from(value.to_string())
        } else {
            body.clone()
        }
    }

    /// Filters one serialised SSE event whose data is a JSON-RPC message.
    pub fn apply_event(&self, event: &Bytes) -> Bytes {
        if self.is_noop() {
            return event.clone();
        }
        let Some(mut parsed) = SseEvent::parse(event) else {
            return event.clone();
        };
        let Ok(mut value) = serde_json::from_str::<Value>(&parsed.data) else {
            return event.clone();
        };
        if !self.apply_value(&mut value) {
            return event.clone();
        }
        parsed.data = value.to_string();
        parsed.to_bytes()
    }

    /// Filters every event of a relayed stream (items are whole serialised events).
    pub fn apply_stream(
        &self,
        events: BoxStream<'static, Result<Bytes, McpError>>,
    ) -> BoxStream<'static, Result<Bytes, McpError>> {
        if self.is_noop() {
            return events;
        }
        let filter = self.clone();
        events
            .map(move |item| item.map(|event| filter.apply_event(&event)))
            .boxed()
    }

    /// Filters a parsed message or batch in place; true when something was removed.
    pub fn apply_value(&self, value: &mut Value) -> bool {
        match value {
            // Every item is filtered (no short-circuit): count the changes.
            Value::Array(items) => {
                items
                    .iter_mut()
                    .map(|item| self.apply_message(item))
                    .filter(|changed| *changed)
                    .count()
                    > 0
            }
            message => self.apply_message(message),
        }
    }

    fn apply_message(&self, message: &mut Value) -> bool {
        let is_ours = message
            .get("id")
            .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok())
            .is_some_and(|id| self.ids.contains(&id));
        if !is_ours {
            return false;
        }
        let Some(tools) = message
            .get_mut("result")
            .and_then(|result| result.get_mut("tools"))
            .and_then(Value::as_array_mut)
        else {
            return false;
        };
        let before = tools.len();
        tools.retain(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| (self.allow)(name))
        });
        tools.len() != before
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter() -> ToolsListFilter {
        ToolsListFilter::new(
            vec![RequestId::from(2)],
            Arc::new(|name: &str| name != "secret_tool"),
        )
    }

    fn tools_result(id: i64) -> Value {
        json!({"jsonrpc":"2.0","id":id,"result":{"tools":[{"name":"echo"},{"name":"secret_tool"},{"noname":true}]}})
    }

    #[test]
    fn filters_a_json_body_only_for_its_ids() {
        let body = Bytes::from(tools_result(2).to_string());
        let filtered: Value = serde_json::from_slice(&filter().apply_json(&body)).unwrap();
        assert_eq!(filtered["result"]["tools"], json!([{"name":"echo"}]));

        let other = Bytes::from(tools_result(3).to_string());
        assert_eq!(filter().apply_json(&other), other);
        let garbage = Bytes::from_static(b"not json");
        assert_eq!(filter().apply_json(&garbage), garbage);
    }

    #[test]
    fn filters_batches_and_sse_events() {
        let batch = Bytes::from(json!([tools_result(1), tools_result(2)]).to_string());
        let filtered: Value = serde_json::from_slice(&filter().apply_json(&batch)).unwrap();
        assert_eq!(filtered[0]["result"]["tools"].as_array().unwrap().len(), 3);
        assert_eq!(filtered[1]["result"]["tools"], json!([{"name":"echo"}]));

        let event = SseEvent {
            id: Some("e1".into()),
            event: Some("message".into()),
            data: tools_result(2).to_string(),
            retry: None,
        };
        let out = SseEvent::parse(&filter().apply_event(&event.to_bytes())).unwrap();
        assert_eq!(out.id.as_deref(), Some("e1"));
        let data: Value = serde_json::from_str(&out.data).unwrap();
        assert_eq!(data["result"]["tools"], json!([{"name":"echo"}]));
    }

    #[tokio::test]
    async fn filters_a_stream() {
        let events = futures::stream::iter(vec![
            Ok(SseEvent::message(
                json!({"jsonrpc":"2.0","method":"notifications/progress"}).to_string(),
            )
            .to_bytes()),
            Ok(SseEvent::message(tools_result(2).to_string()).to_bytes()),
        ])
        .boxed();
        let out: Vec<_> = filter().apply_stream(events).collect().await;
        let last = SseEvent::parse(out[1].as_ref().unwrap()).unwrap();
        assert!(!last.data.contains("secret_tool"));
        assert!(filter().apply_value(&mut tools_result(2)));
        assert!(ToolsListFilter::new(vec![], Arc::new(|_: &str| false)).is_noop());
    }
}
