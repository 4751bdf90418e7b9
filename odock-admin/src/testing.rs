//! The admin API under test (feature `testing`): what the integration tests in `tests/api/` share.
//!
//! - [`harness`] builds the real [`router_with`] over the suite's database
//!   (`odock_store::testing::database()`: in-memory SQLite, or a fresh PostgreSQL schema with
//!   `ODOCK_TEST_BACKEND=postgres`), with a [`ManualClock`] for sign-in, the static admin token
//!   [`ADMIN_TOKEN`], loopback egress allowed (fixtures name upstreams that are never called) and a
//!   [`RecordingInvalidator`]; [`harness_on`] and [`harness_with`] take another database or adjust
//!   the sign-in settings.
//! - [`Harness`] sends requests in process (`oneshot`, no socket) and answers an [`Answer`]: status,
//!   headers, the body as text and as JSON. [`Harness::user`] and [`Harness::session`] insert a
//!   signed-up user with [`PASSWORD`] and a session for it directly.
//! - [`send`] is the same request/answer step for a router built otherwise, and [`assert_error`]
//!   checks the JSON error body every failure answers.

use std::sync::{Arc, OnceLock};

use crate::api::host_policy::HostPolicy;
use crate::api::session::AuthSettings;
use crate::api::{router_with, AdminState};
use crate::auth::passwords::hash_password;
use crate::auth::sessions;
use axum::body::Body;
use axum::Router;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use odock_core::{CacheInvalidator, InvalidationCommand, ManualClock, Role, Secret};
use odock_store::db::Db;
use odock_store::MasterKey;
use parking_lot::Mutex;
use serde_json::Value;
use tower::ServiceExt;

/// The static admin token the harness's router accepts (acts as SUPER_ADMIN).
pub const ADMIN_TOKEN: &str = "rbac-admin-token";
/// The password of every user [`Harness::user`] inserts.
pub const PASSWORD: &str = "correct horse battery staple";

/// Remembers every invalidation it is sent.
#[derive(Default)]
pub struct RecordingInvalidator(pub Mutex<Vec<InvalidationCommand>>);

impl RecordingInvalidator {
    /// The commands sent since the last call.
    pub fn take(&self) -> Vec<InvalidationCommand> {
        std::mem::take(&mut *self.0.lock())
    }
}

impl CacheInvalidator for RecordingInvalidator {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.0.lock().push(command.clone());
    }
}

/// The admin router over a test database, and what the tests look at beside its answers.
pub struct Harness {
    /// The `/api` router ([`router_with`]); [`Harness::send`] calls a clone of it.
    pub app: Router,
    /// The router's database, for fixtures and checks in SQL.
    pub pool: Db,
    /// Sign-in's clock (sessions, throttling, invitations); other handlers use the wall clock.
    pub clock: ManualClock,
    /// Every cache invalidation the router sent.
    pub invalidations: Arc<RecordingInvalidator>,
}

/// One answer of the router.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    /// The body as text, for assertion messages and downloads.
    pub text: String,
}

/// `PASSWORD`'s hash, computed once (argon2id is slow on purpose).
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        hash_password(PASSWORD).unwrap_or_else(|e| panic!("hashing the test password: {e}"))
    })
}

/// A harness on the suite's database (SQLite, or PostgreSQL with `ODOCK_TEST_BACKEND=postgres`).
pub async fn harness() -> Harness {
    harness_on(odock_store::testing::database().await)
}

/// A harness on a given database.
pub fn harness_on(pool: Db) -> Harness {
    harness_with(pool, |_| {})
}

/// A harness whose sign-in settings `tweak` adjusts (throttle rules, CSRF policy).
pub fn harness_with(pool: Db, tweak: impl FnOnce(&mut AuthSettings)) -> Harness {
    let (master_key, _) = MasterKey::generate();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    let invalidations = Arc::new(RecordingInvalidator::default());
    let mut settings = AuthSettings {
        clock: Arc::new(clock.clone()),
        ..AuthSettings::default()
    };
    tweak(&mut settings);
    let app = router_with(
        AdminState {
            pool: pool.clone(),
            // Fixtures name loopback upstreams (never called): allowed explicitly.
            host: HostPolicy {
                egress: Arc::new(
                    odock_core::egress::EgressPolicy::parse("127.0.0.0/8")
                        .unwrap_or_else(|e| panic!("loopback egress policy: {e}")),
                ),
                ..Default::default()
            },
            master_key: Arc::new(master_key),
            invalidator: invalidations.clone(),
            admin_token: Secret::new(ADMIN_TOKEN),
            live_windows: Arc::new(odock_core::StoredWindowsOnly),
        },
        settings,
    );
    Harness {
        app,
        pool,
        clock,
        invalidations,
    }
}

/// Sends `request` through `app` in process and reads the whole answer; a non-empty body must be
/// JSON.
pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let Ok(response) = app.clone().oneshot(request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => panic!("reading the answer's body: {e}"),
    };
    let text = String::from_utf8(bytes.to_vec())
        .unwrap_or_else(|e| panic!("the answer's body is not UTF-8: {e}"));
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Answer {
        status,
        headers,
        body,
        text,
    }
}

impl Harness {
    /// Sends a request as built by the test.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        send(&self.app, request).await
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = request
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("building {path}: {e}"));
        self.send(request).await
    }

    /// A request with the static admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.call(method, path, Some(ADMIN_TOKEN), body).await
    }

    /// Creates with the admin token, asserts 201, returns the id.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let reply = self.admin(Method::POST, path, Some(&body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.text);
        reply.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no id in {}", reply.text))
            .to_owned()
    }

    /// An ACTIVE user with password [`PASSWORD`], inserted directly (hashing once per process).
    pub async fn user(&self, organisation: Option<&str>, email: &str, role: Role) -> String {
        let id = odock_core::new_object_id();
        let now = self.clock_ms();
        sqlx::query(
            "INSERT INTO users (id, organisation_id, email, name, role, status, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, 'Test', $4, 'ACTIVE', $5, $6, $6)",
        )
        .bind(&id)
        .bind(organisation)
        .bind(email)
        .bind(role.as_str())
        .bind(password_hash())
        .bind(now)
        .execute(&self.pool)
        .await
        .unwrap_or_else(|e| panic!("inserting user {email}: {e}"));
        id
    }

    /// A session token for the user, as sign-in would issue it.
    pub async fn session(&self, user_id: &str) -> String {
        sessions::create(&self.pool, user_id, self.clock_ms(), 3_600_000)
            .await
            .unwrap_or_else(|e| panic!("session for {user_id}: {e}"))
            .token
            .expose()
            .to_owned()
    }

    /// The manual clock's time in unix milliseconds.
    pub fn clock_ms(&self) -> i64 {
        odock_core::Clock::now(&self.clock).timestamp_millis()
    }
}

/// Asserts the error body's status and code.
pub fn assert_error(reply: &Answer, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.text);
    assert!(reply.body["error"]["message"].is_string(), "{}", reply.text);
    assert!(reply.body["error"]["type"].is_string(), "{}", reply.text);
}
