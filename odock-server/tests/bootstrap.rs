#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The assembled server creates its first SUPER_ADMIN from the configuration.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use odock_core::Secret;
use odock_server::{App, Config};
use serde_json::json;

#[tokio::test]
async fn the_server_bootstraps_its_first_super_admin_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: format!("sqlite://{}", dir.path().join("odock.db").display()),
        admin_token: Some(Secret::new("boot-test-admin-token-0123456789abcdef")),
        bootstrap_admin_email: Some("root@odock.test".into()),
        bootstrap_admin_password: Some(Secret::new("root passphrase!")),
        ..Config::default()
    };
    let app = App::build(&config).await.unwrap();
    let response = tower::ServiceExt::oneshot(
        app.router(),
        Request::builder()
            .method(Method::POST)
            .uri("/api/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"email": "root@odock.test", "password": "root passphrase!"}).to_string(),
            ))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["user"]["role"], "SUPER_ADMIN");
}
