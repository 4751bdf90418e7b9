//! Cross-site request forgery defence of the admin API.
//!
//! A browser sends the `odock_session` cookie with requests other sites make it send, so every
//! write (POST, PUT, PATCH, DELETE) that a browser could have made must prove it comes from Odock's
//! own origin, or is refused with 403 `csrf_rejected`:
//! - **Cookie-authenticated writes** need `Sec-Fetch-Site: same-origin` or a same-origin `Origin`
//!   (a write with the cookie and neither header is refused), and on routes with a JSON body
//!   `Content-Type: application/json` (which no cross-site form can send, and no cross-site script
//!   can send without a CORS preflight Odock never grants).
//! - **Sign-in writes** (`/api/auth/login`, invitation acceptance) start sessions, so they are
//!   guarded too (login CSRF signs the victim into the attacker's account): JSON is required, and a
//!   request that looks like a browser's (it carries `Origin` or `Sec-Fetch-*`) must be
//!   same-origin. Browsers send `Origin` with every POST, so only non-browser clients — scripts
//!   signing in to get a bearer token, which nobody can forge from a web page — go without.
//! - **Bearer-token calls** are not affected: no browser attaches them by itself.
//!
//! "Same origin": `Sec-Fetch-Site: same-origin` (the browser's own statement), or an `Origin`
//! that is exactly `ODOCK_PUBLIC_URL` when that is set, else whose host and port equal the host
//! the request was sent to — the `X-Forwarded-Host` of a trusted proxy (`ODOCK_TRUSTED_PROXIES`),
//! else `Host` (or the HTTP/2 authority). Behind a proxy that rewrites `Host` and is not trusted,
//! or for a console served from another origin, set `ODOCK_PUBLIC_URL`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, Method, Uri};

use super::credentials::{bearer, session_cookie};
use super::error::ApiError;
use super::AdminState;
use crate::api::forwarded::ForwardedBy;

/// What the check needs to know about a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// It takes a JSON body (so `Content-Type: application/json` is required).
    pub json_body: bool,
    /// It is public and starts a session (sign-in, invitation acceptance).
    pub signs_in: bool,
}

/// Which origins may send cookie-authenticated writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrfPolicy {
    /// The configured public origin (`ODOCK_PUBLIC_URL`), normalised; `None`: the request's host.
    public_origin: Option<Arc<str>>,
}

impl CsrfPolicy {
    /// `public_url` is an `http(s)://host[:port]` origin (validated by the configuration).
    pub fn new(public_url: Option<&str>) -> Self {
        Self {
            public_origin: public_url.and_then(normalise_origin).map(Arc::from),
        }
    }

    /// Whether a write with these headers may go on.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        uri: &Uri,
        forwarded: Option<&ForwardedBy>,
        route: Route,
    ) -> Result<(), ApiError> {
        let with_cookie = session_cookie(headers).is_some();
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) || bearer(headers).is_some()
            // Without a credential a protected route answers 401 anyway; sign-in routes need none.
            || (!with_cookie && !route.signs_in)
        {
            return Ok(());
        }
        let json_body = route.json_body;
        if json_body && !is_json(headers) {
            return Err(ApiError::CsrfRejected(
                "this request needs `Content-Type: application/json`".into(),
            ));
        }
        let browser_like = headers.contains_key(ORIGIN)
            || headers
                .keys()
                .any(|name| name.as_str().starts_with("sec-fetch-"));
        if !with_cookie && !browser_like {
            return Ok(());
        }
        if self.same_origin(headers, uri, forwarded) {
            Ok(())
        } else {
            Err(ApiError::CsrfRejected(
                "cross-origin request refused: a browser write must come from this site's origin \
                 (or authenticate with a bearer token)"
                    .into(),
            ))
        }
    }

    fn same_origin(&self, headers: &HeaderMap, uri: &Uri, forwarded: Option<&ForwardedBy>) -> bool {
        let origin = headers
            .get(ORIGIN)
            .and_then(|v| v.to_str().ok())
            .and_then(normalise_origin);
        if let Some(origin) = &origin {
            let allowed = match &self.public_origin {
                Some(public) => origin == public.as_ref(),
                None => request_host(headers, uri, forwarded)
                    .is_some_and(|host| authority_of(origin) == normalise_host(&host, origin)),
            };
            if allowed {
                return true;
            }
        }
        // The browser's own word, which no page can forge (`Sec-` headers are forbidden to
        // scripts); it also covers a proxy that rewrites `Host` without being trusted.
        headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("same-origin"))
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The host the client addressed: a trusted proxy's `X-Forwarded-Host`, else `Host`, else the
/// URI's authority (HTTP/2).
fn request_host(headers: &HeaderMap, uri: &Uri, forwarded: Option<&ForwardedBy>) -> Option<String> {
    if let Some(host) = forwarded.and_then(|f| f.host.clone()) {
        return Some(host);
    }
    headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
}

/// `scheme://host[:port]` lower-cased, without a default port; `None` for `null` or anything else.
fn normalise_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https")
        || authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
    {
        return None;
    }
    let authority = strip_default_port(scheme, authority);
    Some(format!("{scheme}://{authority}"))
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

fn authority_of(origin: &str) -> &str {
    origin.split_once("://").map_or(origin, |(_, a)| a)
}

/// A `Host` value in the form [`authority_of`] gives for `origin`'s scheme.
fn normalise_host(host: &str, origin: &str) -> String {
    let scheme = origin.split_once("://").map_or("http", |(s, _)| s);
    strip_default_port(scheme, &host.trim().to_ascii_lowercase()).to_owned()
}

/// Wraps a write operation's handler with the check.
pub fn guard(
    handler: MethodRouter<AdminState>,
    policy: &CsrfPolicy,
    route: Route,
) -> MethodRouter<AdminState> {
    let guard = CsrfGuard {
        policy: policy.clone(),
        route,
    };
    handler.route_layer(from_fn_with_state(guard, enforce))
}

#[derive(Clone)]
struct CsrfGuard {
    policy: CsrfPolicy,
    route: Route,
}

async fn enforce(State(guard): State<CsrfGuard>, request: Request, next: Next) -> Response {
    let checked = guard.policy.check(
        request.method(),
        request.headers(),
        request.uri(),
        request.extensions().get::<ForwardedBy>(),
        guard.route,
    );
    match checked {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "write refused by the CSRF check");
            refusal.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn check(
        policy: &CsrfPolicy,
        pairs: &[(&'static str, &str)],
        forwarded: Option<&ForwardedBy>,
    ) -> bool {
        policy
            .check(
                &Method::POST,
                &headers(pairs),
                &Uri::from_static("/api/auth/password"),
                forwarded,
                SIGN_IN,
            )
            .is_ok()
    }

    const SIGN_IN: Route = Route {
        json_body: true,
        signs_in: true,
    };
    const DELETE: Route = Route {
        json_body: false,
        signs_in: false,
    };

    const COOKIE: (&str, &str) = ("cookie", "odock_session=ods_x");
    const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");

    #[test]
    fn cookie_writes_need_the_same_origin() {
        let policy = CsrfPolicy::default();
        let host = ("host", "odock.example:8080");
        assert!(check(
            &policy,
            &[COOKIE, JSON, host, ("origin", "http://odock.example:8080")],
            None
        ));
        assert!(check(
            &policy,
            &[COOKIE, JSON, host, ("origin", "HTTP://Odock.Example:8080/")],
            None
        ));
        assert!(!check(
            &policy,
            &[COOKIE, JSON, host, ("origin", "http://evil.example:8080")],
            None
        ));
        assert!(!check(
            &policy,
            &[COOKIE, JSON, host, ("origin", "null")],
            None
        ));
        assert!(
            !check(&policy, &[COOKIE, JSON, host], None),
            "no origin at all"
        );
        assert!(check(
            &policy,
            &[COOKIE, JSON, host, ("sec-fetch-site", "same-origin")],
            None
        ));
        assert!(!check(
            &policy,
            &[COOKIE, JSON, host, ("sec-fetch-site", "cross-site")],
            None
        ));
        // Default ports.
        let plain = ("host", "odock.example");
        assert!(check(
            &policy,
            &[COOKIE, JSON, plain, ("origin", "https://odock.example")],
            None
        ));
        assert!(check(
            &policy,
            &[
                COOKIE,
                JSON,
                ("host", "odock.example:443"),
                ("origin", "https://odock.example")
            ],
            None
        ));
        // Text bodies never pass, whatever the origin.
        assert!(!check(
            &policy,
            &[
                COOKIE,
                ("content-type", "text/plain"),
                host,
                ("origin", "http://odock.example:8080")
            ],
            None
        ));
    }

    #[test]
    fn forwarded_hosts_count_only_from_trusted_proxies() {
        let policy = CsrfPolicy::default();
        let pairs = [
            COOKIE,
            JSON,
            ("host", "10.0.0.5:8080"),
            ("origin", "https://odock.example"),
        ];
        assert!(!check(&policy, &pairs, None));
        let proxy = ForwardedBy {
            proto: Some("https".into()),
            host: Some("odock.example".into()),
        };
        assert!(check(&policy, &pairs, Some(&proxy)));
    }

    #[test]
    fn a_public_url_is_the_only_origin() {
        let policy = CsrfPolicy::new(Some("https://console.odock.example"));
        let host = ("host", "odock.internal:8080");
        assert!(check(
            &policy,
            &[
                COOKIE,
                JSON,
                host,
                ("origin", "https://console.odock.example")
            ],
            None
        ));
        assert!(!check(
            &policy,
            &[COOKIE, JSON, host, ("origin", "http://odock.internal:8080")],
            None
        ));
        // The browser vouching for a same-origin request is enough.
        assert!(check(
            &policy,
            &[COOKIE, JSON, host, ("sec-fetch-site", "same-origin")],
            None
        ));
    }

    #[test]
    fn bearer_calls_and_reads_are_not_checked_and_scripts_may_sign_in() {
        let policy = CsrfPolicy::default();
        let evil = ("origin", "https://evil.example");
        assert!(check(
            &policy,
            &[
                ("authorization", "Bearer tok"),
                ("content-type", "text/plain"),
                evil
            ],
            None
        ));
        let get = policy.check(
            &Method::GET,
            &headers(&[COOKIE, evil]),
            &Uri::from_static("/"),
            None,
            DELETE,
        );
        assert!(get.is_ok());
        // No cookie, no browser headers: a script signing in.
        assert!(check(&policy, &[JSON], None));
        assert!(!check(&policy, &[("content-type", "text/plain")], None));
        assert!(!check(&policy, &[JSON, evil], None));
        // A body-less write (DELETE) needs no content type, but still the origin.
        let delete = |pairs: &[(&'static str, &str)]| {
            policy
                .check(
                    &Method::DELETE,
                    &headers(pairs),
                    &Uri::from_static("/x"),
                    None,
                    DELETE,
                )
                .is_ok()
        };
        assert!(!delete(&[COOKIE, evil, ("host", "odock.example")]));
        assert!(delete(&[
            COOKIE,
            ("origin", "http://odock.example"),
            ("host", "odock.example")
        ]));
        // Without any credential a protected route is left to authentication (401).
        assert!(delete(&[evil]));
    }
}
