//! In-process calls into the admin API's router: the console's only way to read or change
//! anything. The request carries the signed-in user's session token as a bearer credential, so the
//! API's authentication, authorisation rules, validation, audit log and cache invalidation apply
//! exactly as to that user's own API calls (bearer calls skip the API's CSRF check, which the
//! console has already done for the form that led here).

use axum::body::Body;
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use odock_core::layers::ClientIp;
use serde_json::Value;
use tower::ServiceExt;

use crate::api::forwarded::ForwardedBy;

/// Admin API answers are small JSON documents.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One answer of the admin API.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
    /// The session cookie the API set (sign-in, invitation acceptance, sign-out).
    pub set_cookie: Option<HeaderValue>,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's error message, or a generic one.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the request failed ({})", self.status))
    }

    /// The field the API blamed, if any.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    /// The API's error code (`error.code`), if any.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// Who is asking, for the API: the caller's session and where the request came from (for the
/// sign-in throttle and the cookie's `Secure` flag).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The session token, presented as a bearer token.
    pub token: Option<String>,
    /// The client's IP, for the sign-in throttle.
    pub client_ip: Option<ClientIp>,
    /// What a trusted proxy said about the original request.
    pub forwarded: Option<ForwardedBy>,
    /// `https` when the browser reached the console over HTTPS (so the API marks cookies Secure).
    pub https: bool,
}

/// Calls `method path` on the API with an optional JSON body.
pub async fn call(
    api: &Router,
    caller: &Caller,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let uri = if caller.https {
        format!("https://console.internal{path}")
    } else {
        path.to_owned()
    };
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = &caller.token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = match request.body(body) {
        Ok(request) => request,
        Err(_) => return failure(StatusCode::BAD_REQUEST, "invalid request path"),
    };
    if let Some(ip) = caller.client_ip {
        request.extensions_mut().insert(ip);
    }
    if let Some(forwarded) = &caller.forwarded {
        request.extensions_mut().insert(forwarded.clone());
    }
    let response = match api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    };
    let status = response.status();
    let set_cookie = response.headers().get(SET_COOKIE).cloned();
    let bytes = match http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the answer was too large",
            )
        }
    };
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Answer {
        status,
        body,
        set_cookie,
    }
}

fn failure(status: StatusCode, message: &str) -> Answer {
    Answer {
        status,
        body: serde_json::json!({"error": {"code": "console", "message": message}}),
        set_cookie: None,
    }
}

/// Percent-encodes a query value or path segment.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
