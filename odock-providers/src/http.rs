//! HTTP plumbing shared by every provider: sending a request and waiting for its answer within
//! the provider's timeout (`send`, `Answered`), presenting the provider key (`credential`),
//! turning transport failures into [`ProviderError`]s (an egress refusal into
//! [`ProviderError::Forbidden`]), reading bounded bodies (unary answers up to the client's cap,
//! error answers up to [`ERROR_BODY_LIMIT`]), and choosing which upstream response headers reach
//! the client.
//!
//! Error messages are built from the transport error chain with the URL removed, and the
//! provider's credential only ever travels in a header marked sensitive, so no message produced
//! here can contain a secret.

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;
use http::{HeaderMap, HeaderValue};
use odock_core::{ProviderBody, ProviderError, ProviderRequest, ProviderResponse};
use tokio::time::Instant;

use crate::client::{forbidden, UpstreamClient};

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

/// When a request's answer must have arrived, the timeout that set it (reported on expiry), and
/// the largest unary body that is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub timeout: Duration,
    pub max_body: usize,
}

impl Deadline {
    /// The deadline of a request sent now through `client` for `model`'s provider.
    pub fn start(client: &UpstreamClient, model: &odock_core::ResolvedModel) -> Self {
        let timeout = model.provider.timeout.unwrap_or(DEFAULT_TIMEOUT);
        Self {
            at: Instant::now() + timeout,
            timeout,
            max_body: client.max_response_bytes(),
        }
    }

    /// The whole body of `response`, before the deadline; larger than the cap is
    /// [`ProviderError::ResponseTooLarge`] (the rest is not read).
    pub async fn body(self, response: reqwest::Response) -> Result<Bytes, ProviderError> {
        match tokio::time::timeout_at(self.at, read_capped(response, self.max_body, self.timeout))
            .await
        {
            Ok(result) => result,
            Err(_elapsed) => Err(ProviderError::Timeout(self.timeout)),
        }
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

/// Adds the W3C `traceparent` the request carries upstream (see
/// [`ProviderRequest::traceparent`]).
pub(crate) fn with_traceparent(
    upstream: reqwest::RequestBuilder,
    traceparent: Option<&HeaderValue>,
) -> reqwest::RequestBuilder {
    match traceparent {
        Some(value) => upstream.header(odock_core::telemetry::TRACEPARENT, value.clone()),
        None => upstream,
    }
}

/// Sends `upstream` for `request` and waits, within the provider's timeout, for the response
/// headers. `request_id_header` names the header carrying the upstream's own request id.
pub(crate) async fn send(
    client: &UpstreamClient,
    request: &ProviderRequest,
    upstream: reqwest::RequestBuilder,
    request_id_header: &str,
) -> Result<Answered, ProviderError> {
    let model = &request.model;
    let deadline = Deadline::start(client, model);
    let upstream = with_traceparent(upstream, request.traceparent.as_ref());
    // The answer's head may have a shorter limit than the whole exchange (a dead upstream is
    // detected in seconds while a stream may run for minutes).
    let (head_at, head_timeout) = match first_byte_timeout(&model.provider) {
        Some(limit) if Instant::now() + limit < deadline.at => (Instant::now() + limit, limit),
        _ => (deadline.at, deadline.timeout),
    };
    let response = send_until(&model.provider, head_at, head_timeout, upstream).await?;
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

/// Sends `upstream` and waits until `deadline` for the answer's head. A connection that could
/// not be made within the provider's connect timeout is a timeout of that length.
pub(crate) async fn send_until(
    provider: &odock_core::ResolvedProvider,
    deadline: Instant,
    timeout: Duration,
    upstream: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ProviderError> {
    match tokio::time::timeout_at(deadline, upstream.send()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) if error.is_connect() && error.is_timeout() => Err(ProviderError::Timeout(
            crate::client::connect_timeout(provider).unwrap_or(crate::CONNECT_TIMEOUT),
        )),
        Ok(Err(error)) => Err(provider_error(error, timeout)),
        Err(_elapsed) => Err(ProviderError::Timeout(timeout)),
    }
}

/// The provider's `config.firstByteTimeoutMs`: how long the answer's head may take, within the
/// provider's overall `timeoutMs`.
pub(crate) fn first_byte_timeout(provider: &odock_core::ResolvedProvider) -> Option<Duration> {
    provider
        .config
        .get(FIRST_BYTE_TIMEOUT)
        .and_then(serde_json::Value::as_u64)
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// The provider setting naming the first-byte timeout in milliseconds.
pub const FIRST_BYTE_TIMEOUT: &str = "firstByteTimeoutMs";

/// Maps a `reqwest` failure to a [`ProviderError`]. `timeout` is the limit that applied, reported
/// when the failure was a timeout.
///
/// A timeout becomes [`ProviderError::Timeout`], a connection the egress policy refused
/// [`ProviderError::Forbidden`]; everything else (refused or reset connections, TLS and DNS
/// failures, a body cut off mid-way) is [`ProviderError::Unreachable`]. Bodies are relayed as
/// bytes, never decoded by `reqwest`, so its "decode" errors are transport failures too.
pub fn provider_error(error: reqwest::Error, timeout: Duration) -> ProviderError {
    if error.is_timeout() {
        return ProviderError::Timeout(timeout);
    }
    if let Some(denied) = forbidden(&error) {
        return ProviderError::Forbidden(denied);
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

/// The whole body of `response` when it is at most `limit` bytes, else
/// [`ProviderError::ResponseTooLarge`] as soon as that is known (a declared `Content-Length`, or
/// the first chunk past the limit): a runaway upstream cannot make the gateway buffer without end.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ProviderError> {
    let too_large = || ProviderError::ResponseTooLarge { limit };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| provider_error(error, timeout))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The upstream's `Retry-After` as a duration: delta-seconds, or an HTTP date (time from now,
/// zero when past). `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// `text` as one URL path segment: every byte but the unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// percent-encoded, so a model slug can never add segments, a query or a fragment to a URL. A
/// segment that is all dots would still be read as `.`/`..` by URL parsers, so its dots are
/// encoded too (model slugs with such segments are refused by the admin API anyway).
pub fn path_segment(text: &str) -> String {
    let all_dots = !text.is_empty() && text.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'~')
            || (byte == b'.' && !all_dots);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `text` as `/`-separated path segments, each encoded with [`path_segment`] (for Hugging Face
/// model ids such as `org/name`).
pub fn path_segments(text: &str) -> String {
    text.split('/')
        .map(path_segment)
        .collect::<Vec<_>>()
        .join("/")
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

/// The upstream response headers the client may see: `content-type`, and `retry-after` (an
/// upstream 429 or 503 says when to come back). Event streams also get `cache-control: no-cache`
/// so nothing between the gateway and the client buffers them.
///
/// Everything else (upstream rate-limit and organisation headers, cookies, hop-by-hop headers,
/// `content-length` of a body the gateway may change) stays behind.
pub fn relayed_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in [CONTENT_TYPE, RETRY_AFTER] {
        if let Some(value) = upstream.get(&name) {
            headers.insert(name, value.clone());
        }
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
        upstream.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        let relayed = relayed_headers(&upstream);
        assert_eq!(relayed.len(), 1);
        assert_eq!(relayed[CONTENT_TYPE], "application/json");

        upstream.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let relayed = relayed_headers(&upstream);
        assert_eq!(relayed.len(), 2);
        assert_eq!(relayed[RETRY_AFTER], "7");

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
    fn path_segments_cannot_escape_their_place_in_the_url() {
        assert_eq!(path_segment("gemini-1.5-pro_002~x"), "gemini-1.5-pro_002~x");
        assert_eq!(path_segment("../../x#"), "..%2F..%2Fx%23");
        assert_eq!(path_segment("a?b=c d%"), "a%3Fb%3Dc%20d%25");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("é"), "%C3%A9");
        assert_eq!(path_segments("org/Model-1.0"), "org/Model-1.0");
        assert_eq!(path_segments("org/../x#y"), "org/%2E%2E/x%23y");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
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
