//! The skeleton every fake upstream shares: a loopback server on 127.0.0.1:0 that records every
//! request it receives (method, path, query, headers, body) and answers with a handler the fake
//! provides. Handlers are async, so a fake may stream or sleep. The server stops when dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use odock::core::layers::resolve::multipart;
use serde_json::Value;

/// One request as a fake upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream received JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The header `name` (which must be ASCII), or `""` when absent.
    pub fn header_str(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
            .unwrap_or_default()
    }

    /// The text fields of a multipart body.
    pub fn form_fields(&self) -> Vec<(String, String)> {
        let content_type = self.headers["content-type"].to_str().expect("content type");
        let boundary = multipart::boundary(content_type).expect("a multipart boundary");
        multipart::text_fields(&self.body, &boundary).expect("a multipart body")
    }
}

type BoxedHandler =
    Arc<dyn Fn(Received) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    handler: BoxedHandler,
}

/// A loopback server that records every request and answers with the fake's handler.
pub struct FakeUpstream {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts on 127.0.0.1:0; every request is recorded, then answered by `handler`.
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(Received) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            received: received.clone(),
            handler: Arc::new(move |request| Box::pin(handler(request))),
        };
        let app = Router::new().fallback(record).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("upstream received a request")
    }
}

async fn record(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    };
    shared.received.lock().unwrap().push(received.clone());
    (shared.handler)(received).await
}

pub fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub fn sse_response(events: &[String]) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(events.concat()))
        .unwrap()
}

pub fn sse_event(data: &Value) -> String {
    format!("data: {data}\n\n")
}

/// Declares a fake upstream `$name`: a [`FakeUpstream`] answering with `$handler` (an async
/// `Fn(Received) -> Response`), whose `base_url()` — what a provider's `baseUrl` should be — is
/// the server root followed by `$base_path`. `received()`, `last()` and `root()` come from the
/// recording server (through `Deref`).
macro_rules! fake_upstream {
    ($(#[$meta:meta])* $name:ident, $handler:expr, base_path: $base_path:literal) => {
        $(#[$meta])*
        pub struct $name(pub $crate::support::upstream::FakeUpstream);

        impl $name {
            pub async fn start() -> Self {
                Self($crate::support::upstream::FakeUpstream::start($handler).await)
            }

            /// What a provider's `baseUrl` should be.
            pub fn base_url(&self) -> String {
                format!("{}{}", self.0.root(), $base_path)
            }
        }

        impl std::ops::Deref for $name {
            type Target = $crate::support::upstream::FakeUpstream;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
}

pub(crate) use fake_upstream;
