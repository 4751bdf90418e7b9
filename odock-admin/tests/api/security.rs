//! The management plane's defences, through the real admin router: CSRF on cookie-authenticated
//! and sign-in writes, throttled admin-token guesses and password changes, no cross-tenant email
//! oracle, IANA timezones, and what a MANAGER of several teams sees of usage.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use axum::body::Body;
use chrono::Duration;
use http::{Method, Request, StatusCode};
use odock_admin::analytics::synthetic::{generate, SyntheticKey, SyntheticRecord, SyntheticSpec};
use odock_admin::auth::throttle::ThrottleRule;
use odock_admin::testing::{
    assert_error, harness, harness_with, Answer, Harness, ADMIN_TOKEN, PASSWORD,
};
use odock_core::layers::ClientIp;
use odock_core::Role;
use serde_json::{json, Value};

const HOST: &str = "odock.example:8080";
const SAME_ORIGIN: &str = "http://odock.example:8080";
const EVIL_ORIGIN: &str = "https://evil.example";

/// A request with the session cookie and whichever of `content_type` / `origin` are given.
fn cookie_request(
    method: Method,
    path: &str,
    session: &str,
    content_type: Option<&str>,
    origin: Option<&str>,
    body: &str,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST)
        .header("cookie", format!("odock_session={session}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn org_admin(h: &Harness) -> (String, String) {
    let org = h
        .create("/api/admin/organisations", json!({"name": "Acme"}))
        .await;
    let admin = h.user(Some(&org), "admin@acme.test", Role::OrgAdmin).await;
    let session = h.session(&admin).await;
    (org, session)
}

#[tokio::test]
async fn cookie_writes_must_come_from_the_same_origin_as_json() {
    let h = harness().await;
    let (org, session) = org_admin(&h).await;
    let teams = format!("/api/organisations/{org}/teams");
    let team = r#"{"name":"Alpha"}"#;

    // What a cross-site form can send: text/plain, with or without an Origin.
    for origin in [None, Some(EVIL_ORIGIN), Some(SAME_ORIGIN)] {
        let reply = h
            .send(cookie_request(
                Method::POST,
                &teams,
                &session,
                Some("text/plain"),
                origin,
                team,
            ))
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "csrf_rejected");
    }
    // JSON from another origin, or with no origin at all.
    for origin in [Some(EVIL_ORIGIN), Some("null"), None] {
        let reply = h
            .send(cookie_request(
                Method::POST,
                &teams,
                &session,
                Some("application/json"),
                origin,
                team,
            ))
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "csrf_rejected");
    }
    // Nothing was created.
    let list = h.admin(Method::GET, &teams, None).await;
    assert_eq!(list.body["data"], json!([]), "{}", list.text);

    // The console's own requests.
    let reply = h
        .send(cookie_request(
            Method::POST,
            &teams,
            &session,
            Some("application/json"),
            Some(SAME_ORIGIN),
            team,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let mut fetched = cookie_request(
        Method::PATCH,
        &format!("{teams}/{id}"),
        &session,
        Some("application/json"),
        None,
        r#"{"name":"Beta"}"#,
    );
    fetched
        .headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    let reply = h.send(fetched).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // Body-less writes need the origin too; reads do not.
    let reply = h
        .send(cookie_request(
            Method::DELETE,
            &format!("{teams}/{id}"),
            &session,
            None,
            Some(EVIL_ORIGIN),
            "",
        ))
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "csrf_rejected");
    let reply = h
        .send(cookie_request(
            Method::GET,
            &teams,
            &session,
            None,
            Some(EVIL_ORIGIN),
            "",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // A bearer token is never attached by a browser on its own: not checked.
    let bearer = Request::builder()
        .method(Method::POST)
        .uri(&teams)
        .header("authorization", format!("Bearer {session}"))
        .header("content-type", "text/plain")
        .header("origin", EVIL_ORIGIN)
        .body(Body::from(r#"{"name":"Gamma"}"#))
        .unwrap();
    let reply = h.send(bearer).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn signing_in_from_another_origin_is_refused() {
    let h = harness().await;
    let org = h
        .create("/api/admin/organisations", json!({"name": "Acme"}))
        .await;
    h.user(Some(&org), "alice@acme.test", Role::User).await;
    let credentials = json!({"email": "alice@acme.test", "password": PASSWORD}).to_string();
    let login = |content_type: &str, origin: Option<&str>| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/api/auth/login")
            .header("host", HOST)
            .header("content-type", content_type);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        h.send(request.body(Body::from(credentials.clone())).unwrap())
    };
    // Login CSRF: a page elsewhere signing the visitor in.
    assert_error(
        &login("application/json", Some(EVIL_ORIGIN)).await,
        StatusCode::FORBIDDEN,
        "csrf_rejected",
    );
    assert_error(
        &login("text/plain", None).await,
        StatusCode::FORBIDDEN,
        "csrf_rejected",
    );
    assert_error(
        &login("application/x-www-form-urlencoded", Some(SAME_ORIGIN)).await,
        StatusCode::FORBIDDEN,
        "csrf_rejected",
    );
    // The console, and a script without browser headers.
    assert_eq!(
        login("application/json", Some(SAME_ORIGIN)).await.status,
        StatusCode::OK
    );
    assert_eq!(login("application/json", None).await.status, StatusCode::OK);

    // Accepting an invitation signs in too.
    let invited = h
        .admin(
            Method::POST,
            &format!("/api/organisations/{org}/invitations"),
            Some(&json!({"email": "bob@acme.test", "role": "USER"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let token = invited.body["token"].as_str().unwrap();
    let accept = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/invitations/{token}/accept"))
        .header("host", HOST)
        .header("content-type", "application/json")
        .header("origin", EVIL_ORIGIN)
        .body(Body::from(
            json!({"name": "Bob", "password": PASSWORD}).to_string(),
        ))
        .unwrap();
    assert_error(
        &h.send(accept).await,
        StatusCode::FORBIDDEN,
        "csrf_rejected",
    );
}

/// A request with a bearer token from a client address.
fn from_ip(
    method: Method,
    path: &str,
    bearer: &str,
    ip: [u8; 4],
    body: Option<&Value>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(Body::from(body.map(Value::to_string).unwrap_or_default()))
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientIp(IpAddr::V4(Ipv4Addr::from(ip))));
    request
}

const THREE_A_MINUTE: ThrottleRule = ThrottleRule {
    max_failures: 3,
    window_ms: 60_000,
    lock_ms: 60_000,
};

#[tokio::test]
async fn admin_token_guesses_are_throttled_per_ip() {
    let h = harness_with(odock_store::testing::database().await, |s| {
        s.token_rule = THREE_A_MINUTE;
    });
    let orgs = "/api/admin/organisations";
    let attacker = [203, 0, 113, 7];
    for _ in 0..2 {
        let reply = h
            .send(from_ip(
                Method::GET,
                orgs,
                "guess-1234567890",
                attacker,
                None,
            ))
            .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let locked = h
        .send(from_ip(
            Method::GET,
            orgs,
            "guess-abcdefghij",
            attacker,
            None,
        ))
        .await;
    assert_error(&locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert_eq!(locked.headers["retry-after"], "60");
    // Locked out even with the right token: a guesser learns nothing more.
    let right = h
        .send(from_ip(Method::GET, orgs, ADMIN_TOKEN, attacker, None))
        .await;
    assert_error(&right, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    // Other addresses, and sessions from the same address, are unaffected.
    let other = h
        .send(from_ip(
            Method::GET,
            orgs,
            ADMIN_TOKEN,
            [198, 51, 100, 1],
            None,
        ))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    let admin = h.user(None, "root@odock.test", Role::SuperAdmin).await;
    let session = h.session(&admin).await;
    let by_session = h
        .send(from_ip(Method::GET, orgs, &session, attacker, None))
        .await;
    assert_eq!(by_session.status, StatusCode::OK, "{}", by_session.text);
    // The lock ends.
    h.clock.advance(Duration::seconds(61));
    let later = h
        .send(from_ip(Method::GET, orgs, ADMIN_TOKEN, attacker, None))
        .await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.text);
}

#[tokio::test]
async fn password_changes_are_throttled_like_sign_in() {
    let h = harness_with(odock_store::testing::database().await, |s| {
        s.account_rule = THREE_A_MINUTE;
    });
    let org = h
        .create("/api/admin/organisations", json!({"name": "Acme"}))
        .await;
    let alice = h.user(Some(&org), "alice@acme.test", Role::User).await;
    let session = h.session(&alice).await;
    let ip = [192, 0, 2, 10];
    let change = |current: &str| json!({"currentPassword": current, "newPassword": "a brand new passphrase"});
    for _ in 0..2 {
        let reply = h
            .send(from_ip(
                Method::POST,
                "/api/auth/password",
                &session,
                ip,
                Some(&change("wrong guess")),
            ))
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.body["error"]["field"], "currentPassword");
    }
    let locked = h
        .send(from_ip(
            Method::POST,
            "/api/auth/password",
            &session,
            ip,
            Some(&change("third guess")),
        ))
        .await;
    assert_error(&locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(locked.headers.contains_key("retry-after"));
    // The right password is refused while locked, here and at sign-in (one account scope).
    let right = h
        .send(from_ip(
            Method::POST,
            "/api/auth/password",
            &session,
            ip,
            Some(&change(PASSWORD)),
        ))
        .await;
    assert_error(&right, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let login = from_ip(
        Method::POST,
        "/api/auth/login",
        "",
        [198, 51, 100, 2],
        Some(&json!({"email": "alice@acme.test", "password": PASSWORD})),
    );
    let (mut parts, body) = login.into_parts();
    parts.headers.remove("authorization");
    let signed_in = h.send(Request::from_parts(parts, body)).await;
    assert_error(
        &signed_in,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    // After the lock, the right password changes it.
    h.clock.advance(Duration::seconds(61));
    let changed = h
        .send(from_ip(
            Method::POST,
            "/api/auth/password",
            &session,
            ip,
            Some(&change(PASSWORD)),
        ))
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
}

#[tokio::test]
async fn another_organisations_emails_are_not_revealed() {
    let h = harness().await;
    let acme = h
        .create("/api/admin/organisations", json!({"name": "Acme"}))
        .await;
    let globex = h
        .create(
            "/api/admin/organisations",
            json!({"name": "Globex Secret Corp"}),
        )
        .await;
    h.user(Some(&globex), "ceo@globex.test", Role::OrgAdmin)
        .await;
    h.user(Some(&acme), "dev@acme.test", Role::User).await;
    let admin = h.user(Some(&acme), "admin@acme.test", Role::OrgAdmin).await;
    let session = h.session(&admin).await;
    let users = format!("/api/organisations/{acme}/users");
    let create = |email: &'static str| {
        let (users, session) = (users.clone(), session.clone());
        let h = &h;
        async move {
            h.call(
                Method::POST,
                &users,
                Some(&session),
                Some(&json!({"email": email, "role": "USER"})),
            )
            .await
        }
    };
    let foreign = create("CEO@globex.test").await;
    let own = create("dev@acme.test").await;
    assert_error(&foreign, StatusCode::CONFLICT, "conflict");
    // The same answer as for a user of one's own organisation, naming nothing.
    assert_eq!(foreign.body, own.body);
    for secret in ["globex", &globex, "Globex Secret Corp", "ceo@"] {
        assert!(
            !foreign.text.to_lowercase().contains(&secret.to_lowercase()),
            "{}",
            foreign.text
        );
    }
    // Inviting the address works like inviting anyone (accepting is for its owner to fail).
    let invited = h
        .call(
            Method::POST,
            &format!("/api/organisations/{acme}/invitations"),
            Some(&session),
            Some(&json!({"email": "ceo@globex.test", "role": "USER"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    // A user of the organisation itself is still a conflict.
    let own_invite = h
        .call(
            Method::POST,
            &format!("/api/organisations/{acme}/invitations"),
            Some(&session),
            Some(&json!({"email": "dev@acme.test", "role": "USER"})),
        )
        .await;
    assert_error(&own_invite, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn timezones_must_be_iana_zones_everywhere() {
    let h = harness().await;
    let (org, _) = org_admin(&h).await;
    let key = h
        .create(
            &format!("/api/organisations/{org}/apikeys"),
            json!({"name": "ci", "type": "ORGANISATION", "timezone": "Europe/Paris"}),
        )
        .await;
    let refused = |reply: Answer| {
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.body["error"]["field"], "timezone", "{}", reply.text);
    };
    let bad = "Nowhere/Land";
    refused(
        h.admin(
            Method::POST,
            &format!("/api/organisations/{org}/apikeys"),
            Some(&json!({"name": "x", "type": "ORGANISATION", "timezone": bad})),
        )
        .await,
    );
    refused(
        h.admin(
            Method::PATCH,
            &format!("/api/organisations/{org}/apikeys/{key}"),
            Some(&json!({"timezone": bad})),
        )
        .await,
    );
    refused(
        h.admin(
            Method::POST,
            &format!("/api/organisations/{org}/budgets"),
            Some(&json!({"name": "b", "ownerType": "ORG", "amountNanos": 1, "period": "MONTHLY", "timezone": bad})),
        )
        .await,
    );
    refused(
        h.admin(
            Method::POST,
            &format!("/api/organisations/{org}/quotas"),
            Some(&json!({"name": "q", "ownerType": "ORG", "metric": "REQUESTS", "limit": 1, "period": "DAILY", "timezone": bad})),
        )
        .await,
    );
}

#[tokio::test]
async fn a_manager_of_several_teams_sees_all_their_usage() {
    let h = harness().await;
    let org = h
        .create("/api/admin/organisations", json!({"name": "Acme"}))
        .await;
    let team = |name: &'static str| {
        let path = format!("/api/organisations/{org}/teams");
        let h = &h;
        async move { h.create(&path, json!({ "name": name })).await }
    };
    let (a, b, c) = (team("A").await, team("B").await, team("C").await);
    let manager = h.user(Some(&org), "manager@acme.test", Role::Manager).await;
    for (team, role) in [(&a, "MANAGER"), (&b, "MANAGER"), (&c, "MEMBER")] {
        let added = h
            .admin(
                Method::POST,
                &format!("/api/organisations/{org}/teams/{team}/members"),
                Some(&json!({"userId": manager, "role": role})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    }
    let key = |team: Option<&str>, user: Option<&str>, n: usize| SyntheticKey {
        id: format!("key-{n}"),
        team_id: team.map(str::to_owned),
        user_id: user.map(str::to_owned),
    };
    let keys = vec![
        key(Some(&a), None, 1),
        key(Some(&b), None, 2),
        key(Some(&c), None, 3),
        key(None, Some(&manager), 4),
        // A record of a managed team that is also the manager's own: listed once.
        key(Some(&a), Some(&manager), 5),
        key(None, None, 6),
    ];
    let records = generate(&SyntheticSpec {
        organisation_id: org.clone(),
        keys,
        models: vec![("model-1".into(), "gpt".into())],
        mcp_servers: Vec::new(),
        records: 300,
        start_ms: 1_717_200_000_000,
        span_ms: 86_400_000,
        seed: 7,
    });
    store_records(&h, &records).await;
    let visible = |team: &Option<String>, user: &Option<String>| {
        [&a, &b].iter().any(|t| team.as_deref() == Some(t.as_str()))
            || user.as_deref() == Some(manager.as_str())
    };
    let expected: HashSet<String> = records
        .iter()
        .filter(|r| visible(&r.team_id, &r.user_id))
        .map(|r| r.id.clone())
        .collect();
    assert!(expected.len() > 50, "fixture too small: {}", expected.len());

    let session = h.session(&manager).await;
    let seen = page_through(
        &h,
        &session,
        &format!("/api/organisations/{org}/usage-records?limit=17"),
    )
    .await;
    assert_eq!(
        seen.len(),
        expected.len(),
        "each visible record exactly once"
    );
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);

    // Asking for one managed team narrows to it; an unmanaged team shows only the manager's own.
    let only_b = page_through(
        &h,
        &session,
        &format!("/api/organisations/{org}/usage-records?teamId={b}&limit=500"),
    )
    .await;
    let expected_b = records
        .iter()
        .filter(|r| r.team_id.as_deref() == Some(&b))
        .count();
    assert_eq!(only_b.len(), expected_b);
    let only_c = page_through(
        &h,
        &session,
        &format!("/api/organisations/{org}/usage-records?teamId={c}&limit=500"),
    )
    .await;
    assert!(only_c.is_empty(), "team C's records are not the manager's");

    // The summary counts the same records.
    let summary = h
        .call(
            Method::GET,
            &format!("/api/organisations/{org}/usage/summary?from=2024-06-01T00:00:00Z&to=2024-06-03T00:00:00Z"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.text);
    assert_eq!(
        summary.body["totals"]["requests"].as_u64(),
        Some(expected.len() as u64),
        "{}",
        summary.text
    );
}

/// Stores generated records as the gateway would write them (the list endpoints decode every
/// column).
async fn store_records(h: &Harness, records: &[SyntheticRecord]) {
    use odock_core::{
        ApiKeyId, OrganisationId, RequestId, TeamId, TokenUsage, UsageRecord, UsageRecordId, UserId,
    };
    let records: Vec<UsageRecord> = records
        .iter()
        .map(|r| UsageRecord {
            id: UsageRecordId::new(r.id.as_str()),
            request_id: RequestId::generate(),
            organisation_id: OrganisationId::new(r.organisation_id.as_str()),
            team_id: r.team_id.as_deref().map(TeamId::new),
            user_id: r.user_id.as_deref().map(UserId::new),
            api_key_id: ApiKeyId::new(r.api_key_id.as_str()),
            provider: "openai".into(),
            model: Some("gpt".into()),
            model_id: None,
            endpoint: "/v1/chat/completions".into(),
            http_status: 200,
            error_code: None,
            latency_ms: 100,
            gateway_overhead_us: 100,
            stream: false,
            tokens: TokenUsage::default(),
            billable_tokens: 0,
            cost_nanos_usd: 1,
            billing: None,
            provider_usage: None,
            routing: None,
            metadata: odock_core::UsageMetadata {
                schema: "usage_metadata_v1".into(),
                outcome: odock_core::RequestOutcome::Completed,
                usage_estimated: false,
                upstream_latency_ms: None,
                received_at: chrono::Utc::now(),
                provider_type: None,
                denied_by: None,
            },
            provider_request_id: None,
            trace_id: None,
            created_at: chrono::DateTime::from_timestamp_millis(r.created_at).unwrap(),
            ledger_charges: Vec::new(),
        })
        .collect();
    let mut conn = h.pool.acquire().await.unwrap();
    odock_store::usage_records::insert_batch(&mut conn, &records, &[])
        .await
        .unwrap();
}

/// Every id of a paged list, in order, following `nextCursor`; asserts newest-first order.
async fn page_through(h: &Harness, bearer: &str, first: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut last: Option<(chrono::DateTime<chrono::FixedOffset>, String)> = None;
    let mut path = first.to_owned();
    loop {
        let page = h.call(Method::GET, &path, Some(bearer), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for item in page.body["data"].as_array().unwrap() {
            let created_at =
                chrono::DateTime::parse_from_rfc3339(item["createdAt"].as_str().unwrap()).unwrap();
            let key = (created_at, item["id"].as_str().unwrap().to_owned());
            if let Some(previous) = &last {
                assert!(key < *previous, "out of order: {key:?} after {previous:?}");
            }
            ids.push(key.1.clone());
            last = Some(key);
        }
        match page.body["nextCursor"].as_str() {
            Some(cursor) => {
                let base = first.split("&cursor=").next().unwrap();
                path = format!("{base}&cursor={cursor}");
            }
            None => return ids,
        }
    }
}
