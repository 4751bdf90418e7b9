//! Sign-in, sessions, throttling, user lifecycle and invitations, over HTTP with a manual clock
//! (`odock_admin::testing`). The helpers here (an organisation with an ORG_ADMIN, sign-in,
//! invitations) serve the modules below.

mod invitations;
mod session;
mod users;

use std::net::{IpAddr, Ipv4Addr};

use axum::body::Body;
use http::{Method, Request, StatusCode};
use odock_admin::testing::{Answer, Harness};
use odock_core::layers::ClientIp;
use serde_json::json;

const ALICE_PASSWORD: &str = "alice's long passphrase";

/// An organisation with an ORG_ADMIN created through the API with a password.
async fn acme(h: &Harness) -> (String, String) {
    let org = h
        .create("/api/admin/organisations", json!({"name": "Acme"}))
        .await;
    let alice = h
        .create(
            &format!("/api/organisations/{org}/users"),
            json!({"email": "Alice@Acme.test", "name": "Alice", "role": "ORG_ADMIN", "password": ALICE_PASSWORD}),
        )
        .await;
    (org, alice)
}

async fn login_from(h: &Harness, email: &str, password: &str, ip: Option<[u8; 4]>) -> Answer {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"email": email, "password": password}).to_string(),
        ))
        .unwrap();
    if let Some(ip) = ip {
        request
            .extensions_mut()
            .insert(ClientIp(IpAddr::V4(Ipv4Addr::from(ip))));
    }
    h.send(request).await
}

async fn login(h: &Harness, email: &str, password: &str) -> Answer {
    login_from(h, email, password, Some([192, 0, 2, 1])).await
}

async fn me(h: &Harness, token: &str) -> Answer {
    h.call(Method::GET, "/api/auth/me", Some(token), None).await
}

fn token_of(reply: &Answer) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["token"].as_str().unwrap().to_owned()
}

async fn invite(h: &Harness, org: &str, by: &str, email: &str, role: &str) -> Answer {
    h.call(
        Method::POST,
        &format!("/api/organisations/{org}/invitations"),
        Some(by),
        Some(&json!({"email": email, "role": role})),
    )
    .await
}

async fn accept(h: &Harness, token: &str, name: &str, password: &str) -> Answer {
    h.call(
        Method::POST,
        &format!("/api/invitations/{token}/accept"),
        None,
        Some(&json!({"name": name, "password": password})),
    )
    .await
}

async fn lookup(h: &Harness, token: &str) -> Answer {
    h.call(
        Method::GET,
        &format!("/api/invitations/{token}"),
        None,
        None,
    )
    .await
}
