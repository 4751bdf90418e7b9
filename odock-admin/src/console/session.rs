//! Who is signed in to the console, and the CSRF defence of its forms.
//!
//! [`Ctx`] is the extractor of every signed-in page: it reads the `odock_session` cookie, asks the
//! API who that is (`GET /api/auth/me`), and sends anyone without a valid session to `/login`.
//!
//! Every form write must pass two checks ([`Ctx::check_form`]): the form's `_csrf` field equals the
//! session's token (a hash of the session secret, which no other site can read: the cookie is
//! HttpOnly), and the request is same-origin by `Origin` / `Sec-Fetch-Site` (the JSON API's own
//! [`CsrfPolicy`](crate::api::csrf::CsrfPolicy)). Sign-in and invitation acceptance have no session
//! yet; they get the origin check ([`check_origin`]).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::request::Parts;
use http::{Method, StatusCode};
use odock_core::layers::ClientIp;
use odock_core::Role;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::client::{self, Answer, Caller};
pub use super::ctx::{Ctx, CSRF_FIELD};
use super::layout;
use super::Console;
use crate::api::auth::session_cookie;
use crate::api::csrf::Route;
use crate::api::forwarded::{over_https, ForwardedBy};

/// The CSRF token of a session: derived from its secret, so nothing is stored and it changes with
/// every sign-in.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::digest(format!("odock-console-csrf\0{session_token}").as_bytes());
    hex::encode(&digest[..16])
}

/// Where the request came from, for the API calls made on its behalf.
pub fn caller_of(parts: &Parts, token: Option<String>) -> Caller {
    let forwarded = parts.extensions.get::<ForwardedBy>().cloned();
    Caller {
        token,
        client_ip: parts.extensions.get::<ClientIp>().copied(),
        https: over_https(&parts.uri, forwarded.as_ref()),
        forwarded,
    }
}

/// The origin half of the CSRF check, as the JSON API applies it to sign-in routes: a browser's
/// write must come from this site.
pub fn check_origin(console: &Console, parts: &Parts) -> Result<(), Response> {
    console
        .settings
        .csrf
        .check(
            &Method::POST,
            &parts.headers,
            &parts.uri,
            parts.extensions.get::<ForwardedBy>(),
            Route {
                json_body: false,
                signs_in: true,
            },
        )
        .map_err(|_| {
            layout::message_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form was not sent from this site. Reload the page and try again.",
            )
        })
}

/// Where to go to sign in, coming back to `path` afterwards.
pub fn to_login(path: &str) -> Response {
    Redirect::to(&format!("/login?next={}", client::encode(path))).into_response()
}

impl FromRequestParts<Console> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let Some(token) = session_cookie(&parts.headers).map(str::to_owned) else {
            return Err(to_login(&path));
        };
        let caller = caller_of(parts, Some(token.clone()));
        let me = client::call(&console.api, &caller, Method::GET, "/api/auth/me", None).await;
        if me.status == StatusCode::UNAUTHORIZED {
            return Err(to_login(&path));
        }
        if !me.ok() {
            return Err(layout::message_page(
                me.status,
                "Something went wrong",
                &me.message(),
            ));
        }
        let role = serde_json::from_value::<Role>(me.body["role"].clone()).map_err(|_| {
            layout::message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Unknown role",
                "Your account has a role the console does not know.",
            )
        })?;
        let origin_ok = parts.method == Method::GET || check_origin(console, parts).is_ok();
        Ok(Ctx {
            console: console.clone(),
            role,
            user_id: me.body["user"]["id"].as_str().map(str::to_owned),
            user: me.body["user"].clone(),
            organisation_id: me.body["organisation"]["id"].as_str().map(str::to_owned),
            csrf: csrf_token(&token),
            caller,
            origin_ok,
            path,
        })
    }
}

impl Ctx {
    /// Both CSRF checks of a form write; the refusal page otherwise.
    pub fn check_form(&self, fields: &Fields) -> Result<(), Response> {
        let sent = fields.get(CSRF_FIELD);
        let token_ok = bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes()));
        if token_ok && self.origin_ok {
            Ok(())
        } else {
            Err(layout::message_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form's security token is missing or out of date (or it was sent from another \
                 site). Go back, reload the page and try again.",
            ))
        }
    }

    /// `method path` on the API as this caller.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        client::call(&self.console.api, &self.caller, method, path, body).await
    }

    /// A read whose failure is the page's failure: 401 signs in again, any other error shows its
    /// status and the API's message (403 for a role that may not see it, 404 for what does not
    /// exist in the caller's organisation).
    pub async fn get(&self, path: &str) -> Result<Value, Response> {
        let answer = self.call(Method::GET, path, None).await;
        self.page_answer(answer)
    }

    /// A read that may be refused without failing the page (a card the role may not see).
    pub async fn get_opt(&self, path: &str) -> Option<Value> {
        let answer = self.call(Method::GET, path, None).await;
        answer.ok().then_some(answer.body)
    }

    /// An API answer's body, or the page to show instead (sign-in on 401, an error page otherwise).
    pub fn page_answer(&self, answer: Answer) -> Result<Value, Response> {
        if answer.ok() {
            return Ok(answer.body);
        }
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(to_login(&self.path));
        }
        let title = match answer.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            _ => "Something went wrong",
        };
        let message = match answer.status {
            StatusCode::FORBIDDEN => format!(
                "{} Ask an administrator of your organisation if you need access.",
                answer.message()
            ),
            _ => answer.message(),
        };
        Err(layout::error_in_shell(self, answer.status, title, &message))
    }
}

/// A URL-encoded form body as name/value pairs (repeated names kept, for checkbox lists).
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// `Some(value)` when present and not blank.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, v)| n == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// Whether `name` was sent at all (a checked checkbox).
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        match Form::<Vec<(String, String)>>::from_request(request, state).await {
            Ok(Form(pairs)) => Ok(Fields(pairs)),
            Err(_) => Err(layout::message_page(
                StatusCode::BAD_REQUEST,
                "Unreadable form",
                "The form could not be read. Go back and send it again.",
            )),
        }
    }
}

/// The request head (method, URI, headers, extensions) of a handler that also reads the body.
#[derive(Debug)]
pub struct Head(pub Parts);

impl<S: Send + Sync> FromRequestParts<S> for Head {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (mut head, ()) = http::Request::new(()).into_parts();
        head.method = parts.method.clone();
        head.uri = parts.uri.clone();
        head.version = parts.version;
        head.headers = parts.headers.clone();
        head.extensions = parts.extensions.clone();
        Ok(Head(head))
    }
}
