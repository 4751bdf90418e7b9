//! The resource tests' harness: the admin router as `odock-server` builds it (default sign-in
//! settings on the wall clock, the default host policy) over the suite's database, called with
//! the static admin token. The sign-in and authorisation tests use `odock_admin::testing` instead
//! (manual clock, users with passwords, sessions).

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use chrono::Utc;
use http::{Method, Request, StatusCode};
use odock_admin::api::host_policy::HostPolicy;
use odock_admin::api::{router, AdminState};
use odock_admin::testing::{send, RecordingInvalidator};
use odock_core::{CacheKind, InvalidationCommand, Secret};
use odock_store::db::Db;
use odock_store::MasterKey;
use serde_json::{json, Value};

pub use odock_admin::testing::{assert_error, Answer};

pub const TOKEN: &str = "test-admin-token";

pub struct Harness {
    pub app: Router,
    pub pool: Db,
    pub master_key: Arc<MasterKey>,
    pub invalidations: Arc<RecordingInvalidator>,
}

pub async fn harness() -> Harness {
    let pool = odock_store::testing::database().await;
    let (master_key, _) = MasterKey::generate();
    let master_key = Arc::new(master_key);
    let invalidations = Arc::new(RecordingInvalidator::default());
    let app = router(AdminState {
        pool: pool.clone(),
        host: HostPolicy::default(),
        master_key: master_key.clone(),
        invalidator: invalidations.clone(),
        admin_token: Secret::new(TOKEN),
        live_windows: Arc::new(odock_core::StoredWindowsOnly),
    });
    Harness {
        app,
        pool,
        master_key,
        invalidations,
    }
}

impl Harness {
    pub async fn send(&self, request: Request<Body>) -> Answer {
        send(&self.app, request).await
    }

    pub async fn raw(&self, method: Method, path: &str, body: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, &body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates and returns the id, asserting 201.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let reply = self.post(path, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn org(&self, name: &str) -> String {
        self.create("/api/admin/organisations", json!({ "name": name }))
            .await
    }

    pub async fn provider(&self, org: &str) -> String {
        self.create(
            &format!("/api/organisations/{org}/providers"),
            json!({ "type": "OPENAI", "name": "OpenAI" }),
        )
        .await
    }

    pub async fn model(&self, org: &str, provider: &str, name: &str) -> String {
        self.create(
            &format!("/api/organisations/{org}/models"),
            json!({ "name": name, "slug": "gpt-4o-mini", "type": "chat", "providerId": provider }),
        )
        .await
    }

    pub async fn api_key(&self, org: &str) -> (String, String) {
        let reply = self
            .post(
                &format!("/api/organisations/{org}/apikeys"),
                json!({ "name": "ci", "type": "ORGANISATION" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let id = reply.body["id"].as_str().unwrap().to_owned();
        let key = reply.body["key"].as_str().unwrap().to_owned();
        (id, key)
    }

    /// The commands sent since the last call.
    pub fn invalidated(&self) -> Vec<InvalidationCommand> {
        self.invalidations.take()
    }
}

pub fn cmd(kind: CacheKind, id: &str) -> InvalidationCommand {
    InvalidationCommand::new(kind, id)
}

pub fn assert_invalid(reply: &Answer, field: &str) {
    assert_error(reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(reply.body["error"]["type"], "invalid_request_error");
    assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
}

pub fn assert_invalid_without_field(reply: &Answer) {
    assert_error(reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(reply.body["error"].get("field").is_none(), "{}", reply.text);
}

/// Inserts a user of `org` with plain SQL (users have no admin routes yet).
pub async fn insert_user(pool: &Db, org: &str, email: &str) -> String {
    let id = odock_core::new_object_id();
    let now = Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO users (id, organisation_id, email, name, role, status, created_at, updated_at) \
         VALUES ($1, $2, $3, 'Test', 'USER', 'ACTIVE', $4, $5)",
    )
    .bind(&id)
    .bind(org)
    .bind(email)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    id
}
