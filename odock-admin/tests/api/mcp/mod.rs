//! The MCP parts of the admin API: MCP servers (secrets sealed, previews only), MCP grants from
//! both sides, and MCP usage records. Their harness allows loopback upstreams.

mod grants;
mod servers;
mod usage;

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use odock_admin::api::host_policy::HostPolicy;
use odock_admin::api::{router, AdminState};
use odock_admin::testing::RecordingInvalidator;
use odock_core::{InvalidationCommand, Secret};
use odock_store::db::Db;
use odock_store::MasterKey;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";

struct Harness {
    app: Router,
    pool: Db,
    master_key: Arc<MasterKey>,
    invalidations: Arc<RecordingInvalidator>,
}

async fn harness() -> Harness {
    let pool = odock_store::testing::database().await;
    let (master_key, _) = MasterKey::generate();
    let master_key = Arc::new(master_key);
    let invalidations = Arc::new(RecordingInvalidator::default());
    let app = router(AdminState {
        pool: pool.clone(),
        host: HostPolicy {
            egress: Arc::new(odock_core::egress::EgressPolicy::parse("127.0.0.0/8").unwrap()),
            ..Default::default()
        },
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
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, text)
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value, text) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path} -> {status}: {text}");
        value
    }

    async fn org(&self, name: &str) -> String {
        self.ok(
            Method::POST,
            "/api/admin/organisations",
            Some(json!({ "name": name })),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn api_key(&self, org: &str) -> String {
        self.ok(
            Method::POST,
            &format!("/api/organisations/{org}/apikeys"),
            Some(json!({ "name": "agent", "type": "ORGANISATION" })),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn invalidated(&self) -> Vec<InvalidationCommand> {
        self.invalidations.take()
    }
}
