//! A fake upstream on loopback that records what it received and answers as a test tells it to.

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http::{HeaderMap, Method, StatusCode, Uri};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The providers' client for tests against fake upstreams on loopback: the egress policy allows
/// `127.0.0.0/8` explicitly (the default refuses loopback, as it must in production).
pub fn http_client() -> odock_providers::UpstreamClient {
    odock_providers::UpstreamClient::new(
        odock_core::egress::EgressPolicy::parse("127.0.0.0/8").unwrap(),
    )
}

/// Sent as `x-request-id` on every answer.
pub const UPSTREAM_REQUEST_ID: &str = "req_upstream_1";

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// How the upstream answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete body with this status and content type.
    Full {
        status: StatusCode,
        content_type: &'static str,
        body: &'static str,
    },
    /// `200 text/event-stream` with this body.
    Sse(&'static str),
    /// `200 text/event-stream`: these bytes, then silence forever.
    SseThenHang(&'static str),
    /// `200 text/event-stream`: these bytes, then the connection breaks once `abort` is notified.
    SseThenAbort {
        prefix: &'static str,
        abort: Arc<Notify>,
    },
    /// Never answers.
    Hang,
    /// A complete body with extra response headers.
    WithHeaders {
        status: StatusCode,
        body: &'static str,
        headers: &'static [(&'static str, &'static str)],
    },
    /// `200 application/json`: `size` bytes sent in 1 KiB chunks, without a `Content-Length`.
    Chunked { size: usize },
}

impl Reply {
    pub fn json(status: StatusCode, body: &'static str) -> Self {
        Reply::Full {
            status,
            content_type: "application/json",
            body,
        }
    }
}

#[derive(Clone)]
struct Upstream {
    reply: Reply,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct FakeUpstream {
    /// `http://127.0.0.1:<port>/v1`, as a provider's base URL.
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeUpstream {
    pub async fn start(reply: Reply) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            reply,
            received: received.clone(),
        };
        let app = Router::new().fallback(answer).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base_url: format!("http://{addr}/v1"),
            received,
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The only request received.
    pub fn only_request(&self) -> Received {
        let received = self.received();
        assert_eq!(received.len(), 1, "exactly one upstream request");
        received.into_iter().next().unwrap()
    }
}

async fn answer(
    State(upstream): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    upstream.received.lock().unwrap().push(Received {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let builder = Response::builder()
        .header("x-request-id", UPSTREAM_REQUEST_ID)
        .header("openai-organization", "org-upstream")
        .header("x-ratelimit-remaining-requests", "99");
    let sse = |body: Body| {
        Response::builder()
            .header("content-type", "text/event-stream; charset=utf-8")
            .header("x-request-id", UPSTREAM_REQUEST_ID)
            .body(body)
            .unwrap()
    };
    match upstream.reply {
        Reply::Full {
            status,
            content_type,
            body,
        } => builder
            .status(status)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap(),
        Reply::Sse(body) => sse(Body::from(body)),
        Reply::SseThenHang(prefix) => sse(Body::from_stream(
            stream::iter([Ok::<_, Infallible>(Bytes::from_static(prefix.as_bytes()))])
                .chain(stream::pending()),
        )),
        Reply::SseThenAbort { prefix, abort } => sse(Body::from_stream(
            stream::iter([Ok(Bytes::from_static(prefix.as_bytes()))]).chain(stream::once(
                async move {
                    abort.notified().await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "upstream crashed",
                    ))
                },
            )),
        )),
        Reply::Hang => std::future::pending().await,
        Reply::WithHeaders {
            status,
            body,
            headers,
        } => {
            let mut builder = builder
                .status(status)
                .header("content-type", "application/json");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(Body::from(body)).unwrap()
        }
        Reply::Chunked { size } => {
            let chunks = (0..size.div_ceil(1024)).map(move |i| {
                let len = (size - i * 1024).min(1024);
                Ok::<_, Infallible>(Bytes::from(vec![b' '; len]))
            });
            builder
                .header("content-type", "application/json")
                .body(Body::from_stream(stream::iter(chunks)))
                .unwrap()
        }
    }
}
