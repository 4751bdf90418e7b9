//! Sign-in, sessions, throttling, user lifecycle and invitations, over HTTP with a manual clock.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::body::Body;
use chrono::Duration;
use http::{Method, Request, StatusCode};
use odock_core::layers::ClientIp;
use odock_core::{CacheKind, InvalidationCommand, Role, Secret};
use parking_lot::Mutex;
use serde_json::json;

use super::session::bootstrap_admin;
use super::test_harness::{assert_error, harness, Answer, Harness, ADMIN_TOKEN};
use crate::api::forwarded::ForwardedBy;

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

#[tokio::test]
async fn sign_in_issues_a_bearer_token_and_a_session_cookie_and_sign_out_ends_it() {
    let h = harness().await;
    let (org, alice) = acme(&h).await;

    let reply = login(&h, " alice@acme.TEST ", ALICE_PASSWORD).await;
    let token = token_of(&reply);
    assert!(
        token.starts_with("ods_") && token.len() >= 4 + 43,
        "{token}"
    );
    assert_eq!(reply.body["user"]["id"], alice.as_str());
    assert_eq!(reply.body["user"]["role"], "ORG_ADMIN");
    assert!(reply.body["user"].get("passwordHash").is_none());
    assert!(!reply.text.contains("$argon2"));
    assert_eq!(
        reply.body["expiresAt"], "2026-03-02T00:00:00Z",
        "12 hours after the clock's 12:00"
    );
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("odock_session={token};")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    // The bearer token and the cookie both authenticate.
    let who = me(&h, &token).await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.text);
    assert_eq!(who.body["user"]["email"], "alice@acme.test");
    assert_eq!(who.body["organisation"]["id"], org.as_str());
    let by_cookie = h
        .send(
            Request::builder()
                .uri("/api/auth/me")
                .header("cookie", format!("theme=dark; odock_session={token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(by_cookie.status, StatusCode::OK, "{}", by_cookie.text);

    // Behind an HTTPS proxy the cookie is Secure, but only when the proxy is trusted (the client
    // IP middleware then hands its word on as `ForwardedBy`); anyone else's header is ignored.
    let login_via = |forwarded: Option<ForwardedBy>| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/api/auth/login")
            .header("content-type", "application/json")
            .header("x-forwarded-proto", "https")
            .body(Body::from(
                json!({"email": "alice@acme.test", "password": ALICE_PASSWORD}).to_string(),
            ))
            .unwrap();
        if let Some(forwarded) = forwarded {
            request.extensions_mut().insert(forwarded);
        }
        h.send(request)
    };
    let spoofed = login_via(None).await;
    let cookie = spoofed.headers["set-cookie"].to_str().unwrap();
    assert!(
        !cookie.contains("Secure"),
        "untrusted X-Forwarded-Proto: {cookie}"
    );
    let https = login_via(Some(ForwardedBy {
        proto: Some("https".into()),
        host: None,
    }))
    .await;
    assert!(https.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));

    // Sign-out ends the session (and clears the cookie); the other session lives on.
    let out = h
        .call(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    assert!(out.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_error(
        &me(&h, &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let other = token_of(&https);
    assert_eq!(me(&h, &other).await.status, StatusCode::OK);

    // Wrong password, unknown account, and a token that was never issued.
    let wrong = login(&h, "alice@acme.test", "not the password").await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    let unknown = login(&h, "nobody@acme.test", ALICE_PASSWORD).await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        wrong.body["error"]["message"],
        unknown.body["error"]["message"]
    );
    assert_error(
        &me(&h, "ods_forged").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn sessions_expire_with_the_clock() {
    let h = harness().await;
    acme(&h).await;
    let token = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);
    h.clock.advance(Duration::hours(12) - Duration::seconds(1));
    assert_eq!(me(&h, &token).await.status, StatusCode::OK);
    h.clock.advance(Duration::seconds(1));
    assert_error(
        &me(&h, &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

fn retry_after(reply: &Answer) -> u64 {
    reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn five_failures_lock_the_account_even_for_the_right_password() {
    let h = harness().await;
    acme(&h).await;
    for _ in 1..=4 {
        let reply = login(&h, "alice@acme.test", "wrong password!").await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
        h.clock.advance(Duration::minutes(1));
    }
    let fifth = login(&h, "alice@acme.test", "wrong password!").await;
    assert_error(&fifth, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert_eq!(retry_after(&fifth), 15 * 60);

    h.clock.advance(Duration::minutes(10));
    let locked = login(&h, "alice@acme.test", ALICE_PASSWORD).await;
    assert_error(&locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert_eq!(retry_after(&locked), 5 * 60);

    h.clock.advance(Duration::minutes(5));
    token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);

    // Failures spread wider than 15 minutes never lock.
    for _ in 0..8 {
        let reply = login(&h, "alice@acme.test", "wrong password!").await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
        h.clock.advance(Duration::minutes(4));
    }
}

#[tokio::test]
async fn twenty_failures_a_minute_lock_the_client_ip() {
    let h = harness().await;
    acme(&h).await;
    let attacker = [198, 51, 100, 7];
    for n in 0..19 {
        let reply = login_from(
            &h,
            &format!("guess{n}@acme.test"),
            "x-password",
            Some(attacker),
        )
        .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let twentieth = login_from(&h, "guess19@acme.test", "x-password", Some(attacker)).await;
    assert_error(
        &twentieth,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    assert_eq!(retry_after(&twentieth), 60);
    // The IP is locked for every account, the right password included; other IPs are not.
    let locked = login_from(&h, "alice@acme.test", ALICE_PASSWORD, Some(attacker)).await;
    assert_error(&locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    token_of(
        &login_from(
            &h,
            "alice@acme.test",
            ALICE_PASSWORD,
            Some([203, 0, 113, 9]),
        )
        .await,
    );
    h.clock.advance(Duration::seconds(60));
    token_of(&login_from(&h, "alice@acme.test", ALICE_PASSWORD, Some(attacker)).await);
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let h = harness().await;
    acme(&h).await;
    let first = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);
    let second = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);
    let wrong = h
        .call(
            Method::POST,
            "/api/auth/password",
            Some(&first),
            Some(
                &json!({"currentPassword": "nope nope nope", "newPassword": "a fresh passphrase"}),
            ),
        )
        .await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(wrong.body["error"]["field"], "currentPassword");
    let short = h
        .call(
            Method::POST,
            "/api/auth/password",
            Some(&first),
            Some(&json!({"currentPassword": ALICE_PASSWORD, "newPassword": "short"})),
        )
        .await;
    assert_eq!(short.body["error"]["field"], "password", "{}", short.text);

    let changed = h
        .call(
            Method::POST,
            "/api/auth/password",
            Some(&first),
            Some(&json!({"currentPassword": ALICE_PASSWORD, "newPassword": "a fresh passphrase"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    assert_eq!(me(&h, &first).await.status, StatusCode::OK);
    assert_error(
        &me(&h, &second).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &login(&h, "alice@acme.test", ALICE_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    token_of(&login(&h, "alice@acme.test", "a fresh passphrase").await);
}

#[tokio::test]
async fn user_lifecycle_revoke_approve_decline_and_delete() {
    let h = harness().await;
    let (org, _) = acme(&h).await;
    let base = format!("/api/organisations/{org}");
    let bob = h
        .create(
            &format!("{base}/users"),
            json!({"email": "bob@acme.test", "role": "USER", "password": "bob's passphrase"}),
        )
        .await;
    let key = h
        .create(
            &format!("{base}/apikeys"),
            json!({"name": "bob", "type": "USER", "userId": bob}),
        )
        .await;
    let session = token_of(&login(&h, "bob@acme.test", "bob's passphrase").await);

    // Revoking ends the sessions and refuses sign-in; the keys are untouched.
    let revoked = h
        .admin(
            Method::PATCH,
            &format!("{base}/users/{bob}"),
            Some(&json!({"status": "REVOKED"})),
        )
        .await;
    assert_eq!(revoked.body["status"], "REVOKED", "{}", revoked.text);
    assert_error(
        &me(&h, &session).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &login(&h, "bob@acme.test", "bob's passphrase").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let still = h
        .admin(Method::GET, &format!("{base}/apikeys/{key}"), None)
        .await;
    assert_eq!(still.body["revoked"], false, "{}", still.text);

    // Pending users are approved or declined, once.
    let pending = h
        .create(
            &format!("{base}/users"),
            json!({"email": "carol@acme.test", "role": "MANAGER"}),
        )
        .await;
    let listed = h
        .admin(Method::GET, &format!("{base}/users/{pending}"), None)
        .await;
    assert_eq!(listed.body["status"], "PENDING");
    let approved = h
        .admin(
            Method::POST,
            &format!("{base}/users/{pending}/approve"),
            None,
        )
        .await;
    assert_eq!(approved.body["status"], "ACTIVE", "{}", approved.text);
    let again = h
        .admin(
            Method::POST,
            &format!("{base}/users/{pending}/approve"),
            None,
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    let dave = h
        .create(
            &format!("{base}/users"),
            json!({"email": "dave@acme.test", "role": "USER"}),
        )
        .await;
    let declined = h
        .admin(Method::POST, &format!("{base}/users/{dave}/decline"), None)
        .await;
    assert_eq!(declined.body["status"], "REVOKED", "{}", declined.text);

    // Emails are unique, and SUPER_ADMIN is not an organisation role.
    let duplicate = h
        .admin(
            Method::POST,
            &format!("{base}/users"),
            Some(&json!({"email": "BOB@acme.test", "role": "USER"})),
        )
        .await;
    assert_error(&duplicate, StatusCode::CONFLICT, "conflict");
    let super_admin = h
        .admin(
            Method::POST,
            &format!("{base}/users"),
            Some(&json!({"email": "eve@acme.test", "role": "SUPER_ADMIN"})),
        )
        .await;
    assert_eq!(
        super_admin.body["error"]["field"], "role",
        "{}",
        super_admin.text
    );

    // Deleting a user deletes their USER keys, which are invalidated at once.
    h.invalidations.0.lock().clear();
    let deleted = h
        .admin(Method::DELETE, &format!("{base}/users/{bob}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let gone = h
        .admin(Method::GET, &format!("{base}/apikeys/{key}"), None)
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    assert!(h
        .invalidations
        .0
        .lock()
        .contains(&InvalidationCommand::new(CacheKind::ApiKey, &key)));
    let listed = h.admin(Method::GET, &format!("{base}/users"), None).await;
    let emails: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "{emails:?}");
    assert!(!emails.contains(&"bob@acme.test"));
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

#[tokio::test]
async fn invitation_invite_accept_sign_in_and_act_with_the_invited_role() {
    let h = harness().await;
    let (org, _) = acme(&h).await;
    let alice = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);

    let invited = invite(&h, &org, &alice, "Mona@acme.test", "MANAGER").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let token = invited.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("odi_"));
    assert_eq!(invited.body["url"], format!("/invitations/{token}"));
    assert_eq!(invited.body["status"], "PENDING");
    assert_eq!(invited.body["type"], "JOIN_ORGANISATION");
    assert_eq!(
        invited.body["expiresAt"], "2026-03-04T12:00:00Z",
        "72 hours"
    );
    let id = invited.body["id"].as_str().unwrap().to_owned();
    // The token is shown once: reads of the invitation never carry it.
    let read = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/invitations/{id}"),
            None,
        )
        .await;
    assert!(read.body.get("token").is_none(), "{}", read.text);
    assert!(!read.text.contains(&token));

    let public = lookup(&h, &token).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text);
    assert_eq!(
        public.body,
        json!({"email": "mona@acme.test", "role": "MANAGER", "type": "JOIN_ORGANISATION",
               "status": "PENDING", "expiresAt": "2026-03-04T12:00:00Z", "organisationName": "Acme"})
    );

    let accepted = accept(&h, &token, "Mona", "mona's passphrase").await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_eq!(accepted.body["user"]["role"], "MANAGER");
    assert_eq!(accepted.body["user"]["status"], "ACTIVE");
    assert_eq!(accepted.body["user"]["name"], "Mona");
    assert!(accepted.headers.contains_key("set-cookie"));

    // Sign in and act as a MANAGER: read providers, but not create one or see settings.
    let mona = token_of(&login(&h, "mona@acme.test", "mona's passphrase").await);
    let providers = h
        .call(
            Method::GET,
            &format!("/api/organisations/{org}/providers"),
            Some(&mona),
            None,
        )
        .await;
    assert_eq!(providers.status, StatusCode::OK, "{}", providers.text);
    let create = h
        .call(
            Method::POST,
            &format!("/api/organisations/{org}/providers"),
            Some(&mona),
            Some(&json!({"type": "OPENAI", "name": "Mine"})),
        )
        .await;
    assert_error(&create, StatusCode::FORBIDDEN, "forbidden");

    // Used up: reading and accepting again are 410 invitation_used.
    assert_error(
        &lookup(&h, &token).await,
        StatusCode::GONE,
        "invitation_used",
    );
    assert_error(
        &accept(&h, &token, "Mona", "mona's passphrase").await,
        StatusCode::GONE,
        "invitation_used",
    );
    let read = h
        .admin(
            Method::GET,
            &format!("/api/organisations/{org}/invitations/{id}"),
            None,
        )
        .await;
    assert_eq!(read.body["status"], "ACCEPTED");
    assert_error(
        &lookup(&h, "odi_never-issued").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn expired_resent_and_revoked_invitations() {
    let h = harness().await;
    let (org, _) = acme(&h).await;
    let alice = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);
    let base = format!("/api/organisations/{org}/invitations");

    // One pending invitation per email; an existing account cannot be invited.
    let first = invite(&h, &org, &alice, "nina@acme.test", "USER").await;
    let old_token = first.body["token"].as_str().unwrap().to_owned();
    let id = first.body["id"].as_str().unwrap().to_owned();
    assert_error(
        &invite(&h, &org, &alice, "nina@acme.test", "USER").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &invite(&h, &org, &alice, "alice@acme.test", "USER").await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // Expired after 72 hours (Alice's session too: she signs in again).
    h.clock.advance(Duration::hours(72));
    let alice = token_of(&login(&h, "alice@acme.test", ALICE_PASSWORD).await);
    assert_error(
        &lookup(&h, &old_token).await,
        StatusCode::GONE,
        "invitation_expired",
    );
    assert_error(
        &accept(&h, &old_token, "Nina", "nina's passphrase").await,
        StatusCode::GONE,
        "invitation_expired",
    );
    let listed = h.call(Method::GET, &base, Some(&alice), None).await;
    assert_eq!(
        listed.body["data"][0]["status"], "EXPIRED",
        "{}",
        listed.text
    );

    // Resent: a new token with a new expiry; the old token is dead.
    let resent = h
        .call(
            Method::POST,
            &format!("{base}/{id}/resend"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    let new_token = resent.body["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, old_token);
    assert_eq!(resent.body["status"], "PENDING");
    assert_eq!(resent.body["expiresAt"], "2026-03-07T12:00:00Z");
    assert_error(
        &lookup(&h, &old_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Resending again kills the previous resend's token too.
    let again = h
        .call(
            Method::POST,
            &format!("{base}/{id}/resend"),
            Some(&alice),
            None,
        )
        .await;
    let newest = again.body["token"].as_str().unwrap().to_owned();
    assert_error(
        &lookup(&h, &new_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let accepted = accept(&h, &newest, "Nina", "nina's passphrase").await;
    assert_eq!(accepted.body["user"]["role"], "USER", "{}", accepted.text);

    // Revoked: the link dies; a revoked invitation cannot be resent or revoked again.
    let third = invite(&h, &org, &alice, "omar@acme.test", "ORG_ADMIN").await;
    let token = third.body["token"].as_str().unwrap().to_owned();
    let third_id = third.body["id"].as_str().unwrap().to_owned();
    let revoked = h
        .call(
            Method::POST,
            &format!("{base}/{third_id}/revoke"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(revoked.body["status"], "REVOKED", "{}", revoked.text);
    assert_error(
        &lookup(&h, &token).await,
        StatusCode::GONE,
        "invitation_revoked",
    );
    assert_error(
        &accept(&h, &token, "Omar", "omar's passphrase").await,
        StatusCode::GONE,
        "invitation_revoked",
    );
    for action in ["resend", "revoke"] {
        let refused = h
            .call(
                Method::POST,
                &format!("{base}/{third_id}/{action}"),
                Some(&alice),
                None,
            )
            .await;
        assert_error(&refused, StatusCode::CONFLICT, "conflict");
    }

    // CREATE_ORGANISATION only through /api/admin/invitations.
    let wrong_type = h
        .call(
            Method::POST,
            &base,
            Some(&alice),
            Some(&json!({"email": "x@y.test", "role": "USER", "type": "CREATE_ORGANISATION"})),
        )
        .await;
    assert_eq!(
        wrong_type.body["error"]["field"], "type",
        "{}",
        wrong_type.text
    );
}

#[tokio::test]
async fn a_create_organisation_invitation_makes_its_invitee_the_first_org_admin() {
    let h = harness().await;
    let invited = h
        .admin(
            Method::POST,
            "/api/admin/invitations",
            Some(&json!({"email": "founder@initech.test", "organisationName": "Initech"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    assert_eq!(invited.body["type"], "CREATE_ORGANISATION");
    assert_eq!(invited.body["role"], "ORG_ADMIN");
    let token = invited.body["token"].as_str().unwrap().to_owned();
    assert_eq!(lookup(&h, &token).await.body["organisationName"], "Initech");
    let accepted = accept(&h, &token, "Founder", "founder passphrase").await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let session = accepted.body["token"].as_str().unwrap().to_owned();
    let who = me(&h, &session).await;
    assert_eq!(who.body["role"], "ORG_ADMIN");
    assert_eq!(who.body["organisation"]["name"], "Initech");
    let org = who.body["organisation"]["id"].as_str().unwrap().to_owned();
    let teams = h
        .call(
            Method::POST,
            &format!("/api/organisations/{org}/teams"),
            Some(&session),
            Some(&json!({"name": "founders"})),
        )
        .await;
    assert_eq!(teams.status, StatusCode::CREATED, "{}", teams.text);
}

#[tokio::test]
async fn the_first_super_admin_is_bootstrapped_once() {
    let h = harness().await;
    let password = Secret::new("bootstrap passphrase");
    bootstrap_admin(&h.pool, Some("root@odock.test"), Some(&password))
        .await
        .unwrap();
    let root = token_of(&login(&h, "root@odock.test", "bootstrap passphrase").await);
    let who = me(&h, &root).await;
    assert_eq!(who.body["role"], "SUPER_ADMIN");
    assert!(who.body["organisation"].is_null());
    let orgs = h
        .call(Method::GET, "/api/admin/organisations", Some(&root), None)
        .await;
    assert_eq!(orgs.status, StatusCode::OK, "{}", orgs.text);
    // Users exist now: a second bootstrap (another email) does nothing.
    bootstrap_admin(&h.pool, Some("other@odock.test"), Some(&password))
        .await
        .unwrap();
    assert_error(
        &login(&h, "other@odock.test", "bootstrap passphrase").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // Without both variables nothing happens either.
    bootstrap_admin(&h.pool, None, Some(&password))
        .await
        .unwrap();
    let all = h.admin(Method::GET, "/api/admin/users", None).await;
    assert_eq!(
        all.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        all.text
    );
    assert_eq!(all.body["data"][0]["role"], Role::SuperAdmin.as_str());
}

/// Collects everything written to it (the log output of a test).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_response_log_line_or_row_holds_a_password_or_a_token() {
    if odock_core::testing::run_alone(
        "api::tests_auth::no_response_log_line_or_row_holds_a_password_or_a_token",
    ) {
        return;
    }
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = harness().await;
    let (org, _) = acme(&h).await;
    let mut replies = Vec::new();
    replies.push(login(&h, "alice@acme.test", "a wrong password").await);
    let signed_in = login(&h, "alice@acme.test", ALICE_PASSWORD).await;
    let session = token_of(&signed_in);
    let invited = invite(&h, &org, &session, "zed@acme.test", "USER").await;
    let invitation = invited.body["token"].as_str().unwrap().to_owned();
    replies.push(lookup(&h, &invitation).await);
    let accepted = accept(&h, &invitation, "Zed", "zed's secret passphrase").await;
    let zed = accepted.body["token"].as_str().unwrap().to_owned();
    replies.push(me(&h, &zed).await);
    replies.push(
        h.call(
            Method::POST,
            "/api/auth/password",
            Some(&zed),
            Some(&json!({"currentPassword": "zed's secret passphrase", "newPassword": "zed's next passphrase"})),
        )
        .await,
    );
    replies.push(
        h.call(
            Method::GET,
            &format!("/api/organisations/{org}/users"),
            Some(&session),
            None,
        )
        .await,
    );
    replies.push(
        h.call(
            Method::GET,
            &format!("/api/organisations/{org}/invitations"),
            Some(&session),
            None,
        )
        .await,
    );
    replies.push(h.admin(Method::GET, "/api/admin/users", None).await);
    // A resend answers a fresh token (audited like every write).
    let second = invite(&h, &org, &session, "yan@acme.test", "USER").await;
    let second_id = second.body["id"].as_str().unwrap().to_owned();
    let resent = h
        .call(
            Method::POST,
            &format!("/api/organisations/{org}/invitations/{second_id}/resend"),
            Some(&session),
            None,
        )
        .await;
    let resent_token = resent.body["token"].as_str().unwrap().to_owned();
    let audit = h
        .call(
            Method::GET,
            &format!("/api/organisations/{org}/audit-log?limit=500"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(
        audit.body["data"].as_array().is_some_and(|d| !d.is_empty()),
        "{}",
        audit.text
    );
    replies.push(audit);

    let passwords = [
        ALICE_PASSWORD,
        "a wrong password",
        "zed's secret passphrase",
        "zed's next passphrase",
    ];
    for reply in replies.iter().chain([&signed_in, &invited, &accepted]) {
        for secret in passwords {
            assert!(!reply.text.contains(secret), "{secret} in {}", reply.text);
        }
        assert!(!reply.text.contains("$argon2"), "{}", reply.text);
    }
    // Tokens appear only in the one response that issues them.
    for reply in &replies {
        for token in [&session, &invitation, &zed, &resent_token] {
            assert!(!reply.text.contains(token.as_str()), "{}", reply.text);
        }
    }
    assert!(!invited.text.contains(&session));

    let logged = String::from_utf8(logs.0.lock().clone()).unwrap();
    assert!(
        logged.contains("invitation accepted"),
        "the capture works: {logged}"
    );
    for secret in passwords.iter().copied().chain([
        session.as_str(),
        invitation.as_str(),
        zed.as_str(),
        resent_token.as_str(),
        ADMIN_TOKEN,
    ]) {
        assert!(!logged.contains(secret), "{secret} logged");
    }

    // At rest: tokens only as hashes, passwords only as argon2id.
    let dump = dump_tables(
        &h,
        &[
            "users",
            "sessions",
            "organisation_invitations",
            "sign_in_throttle",
            "audit_log",
        ],
    )
    .await;
    for secret in passwords.iter().copied().chain([
        session.as_str(),
        invitation.as_str(),
        zed.as_str(),
        resent_token.as_str(),
    ]) {
        assert!(!dump.contains(secret), "{secret} stored");
    }
    assert!(dump.contains("$argon2id$"));
}

/// Every text cell of the tables, concatenated.
async fn dump_tables(h: &Harness, tables: &[&str]) -> String {
    use sqlx::{Column, Row};
    let mut out = String::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&h.pool)
            .await
            .unwrap();
        for row in rows {
            for column in row.columns() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(column.ordinal()) {
                    out.push_str(&text);
                    out.push('\n');
                }
            }
        }
    }
    out
}
