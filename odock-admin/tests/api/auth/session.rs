//! Sign-in and sign-out, session expiry, sign-in throttling per account and per client IP,
//! password changes, the bootstrapped first SUPER_ADMIN, and no password or token in any answer,
//! log line or row.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use chrono::Duration;
use http::{Method, Request, StatusCode};
use odock_admin::api::forwarded::ForwardedBy;
use odock_admin::api::session::bootstrap_admin;
use odock_admin::testing::{assert_error, harness, Answer, Harness, ADMIN_TOKEN};
use odock_core::{Role, Secret};
use parking_lot::Mutex;
use serde_json::json;

use super::{accept, acme, invite, login, login_from, lookup, me, token_of, ALICE_PASSWORD};

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
        "auth::session::no_response_log_line_or_row_holds_a_password_or_a_token",
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
