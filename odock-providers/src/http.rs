//! HTTP plumbing shared by every provider: sending a request and waiting for its answer within
//! the provider's timeout (`send`, `Answered`), presenting the provider key (`credential`),
//! turning transport failures into [`ProviderError`]s, reading bounded bodies, and choosing which
//! upstream response headers reach the client.
//!
//! Error messages are built from the transport error chain with the URL removed, and the
//! provider's credential only ever travels in a header marked sensitive, so no message produced
//! here can contain a secret.

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;
use http::{HeaderMap, HeaderValue};
use odock_core::{ProviderBody, ProviderError, ProviderRequest, ProviderResponse};
use tokio::time::Instant;

/// The most bytes of an upstream error body that are read and relayed (1 MiB).
pub const ERROR_BODY_LIMIT: usize = 1024 * 1024;

/// How long an upstream may take when its provider configures no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The `Accept` header of a request: an event stream when streaming, else JSON.
pub(crate) const fn accept(stream: bool) -> &'static str {
    if stream {
        "text/event-stream"
    } else {
        "application/json"
    }
}

/// A header value carrying the provider key (`Bearer <key>`, or the bare key), marked sensitive
/// so it is never logged by the HTTP stack.
pub(crate) fn credential(value: impl AsRef<str>) -> Result<HeaderValue, ProviderError> {
    let mut value = HeaderValue::try_from(value.as_ref()).map_err(|_| {
        // Never echo the value: it is the credential.
        ProviderError::Unreachable(
            "the provider API key is not a valid HTTP header value".to_owned(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// An upstream answer whose headers have arrived, with the deadline that still applies.
pub(crate) struct Answered {
    pub response: reqwest::Response,
    pub deadline: Deadline,
    pub status: StatusCode,
    /// The headers the client may see ([`relayed_headers`]).
    pub headers: HeaderMap,
    /// The upstream's own id for the request, from its response header.
    pub request_id: Option<String>,
}

/// When a request's answer must have arrived, and the timeout that set it (reported on expiry).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub timeout: Duration,
}

impl Deadline {
    /// The whole body of `response`, before the deadline.
    pub async fn body(self, response: reqwest::Response) -> Result<Bytes, ProviderError> {
        until(self.at, self.timeout, response.bytes()).await
    }

    /// At most [`ERROR_BODY_LIMIT`] bytes of an error answer's body, before the deadline.
    pub async fn error_body(self, response: reqwest::Response) -> Result<Bytes, ProviderError> {
        until(
            self.at,
            self.timeout,
            read_bounded(response, ERROR_BODY_LIMIT),
        )
        .await
    }
}

impl Answered {
    /// True when the upstream answered with an event stream.
    pub fn is_event_stream(&self) -> bool {
        is_event_stream(self.response.headers())
    }

    /// The error answer relayed as the upstream sent it: status, content type and (up to
    /// [`ERROR_BODY_LIMIT`] of) body.
    pub async fn relay_error(self) -> Result<ProviderResponse, ProviderError> {
        let bytes = self.deadline.error_body(self.response).await?;
        Ok(ProviderResponse {
            status: self.status,
            headers: self.headers,
            body: ProviderBody::Full { bytes, usage: None },
            provider_request_id: self.request_id,
        })
    }
}

/// Sends `upstream` for `request` and waits, within the provider's timeout, for the response
/// headers. `request_id_header` names the header carrying the upstream's own request id.
pub(crate) async fn send(
    request: &ProviderRequest,
    upstream: reqwest::RequestBuilder,
    request_id_header: &str,
) -> Result<Answered, ProviderError> {
    let model = &request.model;
    let timeout = model.provider.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let deadline = Deadline {
        at: Instant::now() + timeout,
        timeout,
    };
    let response = until(deadline.at, timeout, upstream.send()).await?;
    let status = response.status();
    let headers = relayed_headers(response.headers());
    let request_id = header_string(response.headers(), request_id_header);
    tracing::debug!(
        provider = %model.provider.name,
        request_id = %request.request_id,
        status = status.as_u16(),
        upstream_request_id = request_id.as_deref().unwrap_or(""),
        "upstream answered"
    );
    Ok(Answered {
        response,
        deadline,
        status,
        headers,
        request_id,
    })
}

/// Maps a `reqwest` failure to a [`ProviderError`]. `timeout` is the limit that applied, reported
/// when the failure was a timeout.
///
/// A timeout becomes [`ProviderError::Timeout`]; everything else (refused or reset connections,
/// TLS and DNS failures, a body cut off mid-way) is [`ProviderError::Unreachable`]. Bodies are
/// relayed as bytes, never decoded by `reqwest`, so its "decode" errors are transport failures
/// too.
pub fn provider_error(error: reqwest::Error, timeout: Duration) -> ProviderError {
    if error.is_timeout() {
        return ProviderError::Timeout(timeout);
    }
    ProviderError::Unreachable(describe(&error.without_url()))
}

/// The error and its sources, outermost first, joined by `": "`.
fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest sometimes repeat a cause's text in its parent; say it once.
        if !message.ends_with(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}

/// Runs `future` until `deadline`, mapping a `reqwest` failure with [`provider_error`] and running
/// out of time to [`ProviderError::Timeout`]`(timeout)`.
pub async fn until<T>(
    deadline: Instant,
    timeout: Duration,
    future: impl Future<Output = Result<T, reqwest::Error>>,
) -> Result<T, ProviderError> {
    match tokio::time::timeout_at(deadline, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(provider_error(error, timeout)),
        Err(_elapsed) => Err(ProviderError::Timeout(timeout)),
    }
}

/// Reads at most `limit` bytes of `response`'s body; the rest is not read (and is dropped with
/// the connection).
pub async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, reqwest::Error> {
    let mut body = BytesMut::new();
    while body.len() < limit {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(body.freeze())
}

/// True when the upstream answered with `text/event-stream`.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .get(..17)
                .is_some_and(|mime| mime.eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The upstream response headers the client may see: only `content-type`. Event streams also get
/// `cache-control: no-cache` so nothing between the gateway and the client buffers them.
///
/// Everything else (upstream rate-limit and organisation headers, cookies, hop-by-hop headers,
/// `content-length` of a body the gateway may change) stays behind.
pub fn relayed_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(content_type) = upstream.get(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, content_type.clone());
    }
    if is_event_stream(upstream) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    headers
}

/// A header's value as a string, when present, non-empty and visible ASCII.
pub fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_type_is_relayed_and_streams_are_not_cached() {
        let mut upstream = HeaderMap::new();
        upstream.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        upstream.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("9"),
        );
        upstream.insert("set-cookie", HeaderValue::from_static("a=b"));
        upstream.insert("openai-organization", HeaderValue::from_static("org-x"));
        let relayed = relayed_headers(&upstream);
        assert_eq!(relayed.len(), 1);
        assert_eq!(relayed[CONTENT_TYPE], "application/json");

        let mut upstream = HeaderMap::new();
        upstream.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        let relayed = relayed_headers(&upstream);
        assert_eq!(relayed[CONTENT_TYPE], "text/event-stream; charset=utf-8");
        assert_eq!(relayed[CACHE_CONTROL], "no-cache");

        assert!(relayed_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn event_streams_are_recognised_by_content_type() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            headers
        };
        assert!(is_event_stream(&headers("text/event-stream")));
        assert!(is_event_stream(&headers("Text/Event-Stream;charset=utf-8")));
        assert!(!is_event_stream(&headers("application/json")));
        assert!(!is_event_stream(&headers("text/event")));
        assert!(!is_event_stream(&HeaderMap::new()));
    }

    #[test]
    fn header_strings_skip_empty_values() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static(" req_123 "));
        headers.insert("x-empty", HeaderValue::from_static(""));
        assert_eq!(
            header_string(&headers, "x-request-id").as_deref(),
            Some("req_123")
        );
        assert_eq!(header_string(&headers, "x-empty"), None);
        assert_eq!(header_string(&headers, "x-missing"), None);
    }
}
