//! Server-side tests of the console: every page renders for the roles that may use it, refuses
//! (403/404) the others without showing their data, forms validate with field errors, CSRF is
//! enforced, and secrets appear exactly once.

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use odock_core::Role;
use serde_json::json;
use tower::ServiceExt;

use crate::api::session::AuthSettings;
use crate::testing::{harness, Harness, PASSWORD};

const HOST: &str = "console.test";
const ORIGIN: &str = "http://console.test";

struct Page {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
}

struct World {
    h: Harness,
    console: Router,
    org: String,
    other_org: String,
    admin: String,
    user: String,
    super_admin: String,
    team: String,
}

impl World {
    async fn new() -> Self {
        let h = harness().await;
        let console = super::router(h.app.clone(), AuthSettings::default());
        let org = h
            .create("/api/admin/organisations", json!({"name": "Acme"}))
            .await;
        let other_org = h
            .create(
                "/api/admin/organisations",
                json!({"name": "Globex Secret Corp"}),
            )
            .await;
        let team = h
            .create(
                &format!("/api/organisations/{org}/teams"),
                json!({"name": "core"}),
            )
            .await;
        h.create(
            &format!("/api/organisations/{other_org}/teams"),
            json!({"name": "globex-hidden-team"}),
        )
        .await;
        let admin_id = h.user(Some(&org), "admin@acme.test", Role::OrgAdmin).await;
        let user_id = h.user(Some(&org), "user@acme.test", Role::User).await;
        let super_id = h.user(None, "root@odock.test", Role::SuperAdmin).await;
        let admin = h.session(&admin_id).await;
        let user = h.session(&user_id).await;
        let super_admin = h.session(&super_id).await;
        Self {
            h,
            console,
            org,
            other_org,
            admin,
            user,
            super_admin,
            team,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
        form: Option<&str>,
        origin: Option<&str>,
    ) -> Page {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST);
        if let Some(session) = session {
            request = request.header("cookie", format!("odock_session={session}"));
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if form.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let body = Body::from(form.unwrap_or_default().to_owned());
        let response = self
            .console
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str, session: &str) -> Page {
        self.send(Method::GET, path, Some(session), None, None)
            .await
    }

    /// A form post with the session's CSRF token and a same-origin `Origin`.
    async fn post(&self, path: &str, session: &str, form: &str) -> Page {
        let token = super::session::csrf_token(session);
        let form = format!("_csrf={token}&{form}");
        self.send(Method::POST, path, Some(session), Some(&form), Some(ORIGIN))
            .await
    }
}

const ORG_PAGES: &[&str] = &[
    "dashboard",
    "providers",
    "models",
    "mcp-servers",
    "teams",
    "users",
    "apikeys",
    "budgets",
    "quotas",
    "usage",
    "invoices",
    "playground",
    "settings",
];
const ADMIN_PAGES: &[&str] = &[
    "dashboard",
    "organisations",
    "teams",
    "users",
    "providers",
    "models",
    "mcp-servers",
    "apikeys",
    "budgets",
    "quotas",
    "usage",
    "invoices",
    "playground",
    "settings",
];

fn assert_html(page: &Page, path: &str) {
    assert!(
        page.text.starts_with("<!DOCTYPE html>"),
        "{path}: {}",
        page.text
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert!(!page.text.contains("<script>"), "{path}: inline script");
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in() {
    let w = World::new().await;
    let page = w
        .send(
            Method::GET,
            &format!("/{}/dashboard", w.org),
            None,
            None,
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let location = page.headers["location"].to_str().unwrap();
    assert!(location.starts_with("/login?next=%2F"), "{location}");
    let login = w.send(Method::GET, "/login", None, None, None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert_html(&login, "/login");
    assert!(login.text.contains(r#"<label for="f-email">"#));
    // A stale cookie is no session.
    let stale = w
        .get(&format!("/{}/dashboard", w.org), "ods_notasession")
        .await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sign_in_sets_the_session_cookie_and_refuses_cross_site_and_wrong_passwords() {
    let w = World::new().await;
    let form = format!(
        "email=admin%40acme.test&password={}",
        PASSWORD.replace(' ', "+")
    );
    let page = w
        .send(
            Method::POST,
            "/login?next=%2Fsomewhere",
            None,
            Some(&form),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(page.headers["location"], "/somewhere");
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("odock_session=ods_") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    let wrong = w
        .send(
            Method::POST,
            "/login",
            None,
            Some("email=admin%40acme.test&password=nope"),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("The email or password is wrong."));
    assert!(
        wrong.text.contains(r#"id="f-password-error""#),
        "the error sits next to the field"
    );

    let forged = w
        .send(
            Method::POST,
            "/login",
            None,
            Some(&form),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.headers.get("set-cookie").is_none());

    // Only same-site paths are followed.
    let open = w
        .send(
            Method::POST,
            "/login?next=%2F%2Fevil.example",
            None,
            Some(&form),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(open.headers["location"], "/");
}

#[tokio::test]
async fn an_org_admin_sees_every_organisation_page_and_no_admin_page() {
    let w = World::new().await;
    for page in ORG_PAGES {
        let path = format!("/{}/{page}", w.org);
        let answer = w.get(&path, &w.admin).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        assert_html(&answer, &path);
        assert!(
            !answer.text.contains("Globex") && !answer.text.contains("globex-hidden-team"),
            "{path} leaks another organisation"
        );
    }
    for page in ADMIN_PAGES {
        let path = format!("/admin/{page}");
        let answer = w.get(&path, &w.admin).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!answer.text.contains("Globex"), "{path} leaks");
    }
    // Another organisation's pages answer 404 and show nothing of it.
    for page in ["dashboard", "teams", "apikeys", "usage"] {
        let path = format!("/{}/{page}", w.other_org);
        let answer = w.get(&path, &w.admin).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!answer.text.contains("globex-hidden-team"));
    }
}

#[tokio::test]
async fn a_user_sees_only_what_users_may() {
    let w = World::new().await;
    for page in [
        "dashboard",
        "models",
        "mcp-servers",
        "teams",
        "apikeys",
        "budgets",
        "quotas",
        "usage",
        "invoices",
        "playground",
        "settings",
    ] {
        let path = format!("/{}/{page}", w.org);
        let answer = w.get(&path, &w.user).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        // No admin-only forms.
        assert!(
            !answer.text.contains("Add a provider") && !answer.text.contains("Invite a user"),
            "{path}"
        );
    }
    for page in ["providers", "users"] {
        let path = format!("/{}/{page}", w.org);
        assert_eq!(
            w.get(&path, &w.user).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(
        w.get("/admin/dashboard", &w.user).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.get("/admin/organisations", &w.user).await.status,
        StatusCode::FORBIDDEN
    );
    // The team list shows only teams the user belongs to (none).
    let teams = w.get(&format!("/{}/teams", w.org), &w.user).await;
    assert!(!teams.text.contains(">core<"), "{}", teams.text);
    // Writes the role may not make are refused by the API's rules.
    let refused = w
        .post(&format!("/{}/teams", w.org), &w.user, "name=sneaky")
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_super_admin_sees_every_page_of_both_families() {
    let w = World::new().await;
    for page in ADMIN_PAGES {
        let path = format!("/admin/{page}");
        let answer = w.get(&path, &w.super_admin).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        assert_html(&answer, &path);
    }
    for page in ORG_PAGES {
        let path = format!("/{}/{page}", w.other_org);
        let answer = w.get(&path, &w.super_admin).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let orgs = w.get("/admin/organisations", &w.super_admin).await;
    assert!(orgs.text.contains("Globex Secret Corp") && orgs.text.contains("Acme"));
    // Cross-organisation lists link each item to its detail page in its organisation.
    let teams = w.get("/admin/teams", &w.super_admin).await;
    assert!(
        teams
            .text
            .contains(&format!(r#"href="/{}/teams/{}""#, w.org, w.team)),
        "{}",
        teams.text
    );
    let detail = w
        .get(&format!("/{}/teams/{}", w.org, w.team), &w.super_admin)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    // Creating an organisation through the form.
    let created = w
        .post(
            "/admin/organisations",
            &w.super_admin,
            "name=Initech&contact=ops%40initech.test",
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    assert!(w
        .get("/admin/organisations", &w.super_admin)
        .await
        .text
        .contains("Initech"));
}

#[tokio::test]
async fn form_writes_need_the_csrf_token_and_a_same_origin() {
    let w = World::new().await;
    let path = format!("/{}/teams", w.org);
    let no_token = w
        .send(
            Method::POST,
            &path,
            Some(&w.admin),
            Some("name=a"),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let token = super::session::csrf_token(&w.admin);
    let cross = w
        .send(
            Method::POST,
            &path,
            Some(&w.admin),
            Some(&format!("_csrf={token}&name=b")),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let other_session = super::session::csrf_token(&w.user);
    let wrong = w
        .send(
            Method::POST,
            &path,
            Some(&w.admin),
            Some(&format!("_csrf={other_session}&name=c")),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let teams =
        w.h.admin(
            Method::GET,
            &format!("/api/organisations/{}/teams", w.org),
            None,
        )
        .await;
    assert_eq!(
        teams.body["data"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
    let ok = w.post(&path, &w.admin, "name=platform").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    // Every page carries the token in its forms.
    assert!(w.get(&path, &w.admin).await.text.contains(&token));
}

#[tokio::test]
async fn provider_key_model_and_api_key_through_the_forms_show_the_secret_once() {
    let w = World::new().await;
    let base = format!("/{}", w.org);
    let created = w
        .post(
            &format!("{base}/providers"),
            &w.admin,
            "name=Upstream&type=OPENAI&baseUrl=http%3A%2F%2F127.0.0.1%3A9%2Fv1&enabled=on",
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let provider_page = created.headers["location"].to_str().unwrap().to_owned();
    let provider_id = provider_page.rsplit('/').next().unwrap().to_owned();

    let key = w
        .post(
            &format!("{provider_page}/keys"),
            &w.admin,
            "name=Primary&key=sk-upstream-secret-123456",
        )
        .await;
    assert_eq!(key.status, StatusCode::SEE_OTHER, "{}", key.text);
    let page = w.get(&format!("{provider_page}?added=1"), &w.admin).await;
    assert!(
        page.text.contains("Primary") && !page.text.contains("sk-upstream-secret-123456"),
        "the provider secret is write-only"
    );

    // Pricing is validated by the console, next to its field.
    let bad = w.post(&format!("{base}/models"), &w.admin, &format!("name=gpt&slug=gpt-4o-mini&type=chat&providerId={provider_id}&inputUsd=abc&enabled=on")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text.contains(r#"id="f-inputUsd-error""#),
        "{}",
        bad.text
    );
    // The API's own validation comes back next to the field it names.
    let dup = w
        .post(
            &format!("{base}/models"),
            &w.admin,
            &format!("name=&slug=x&type=chat&providerId={provider_id}"),
        )
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST, "{}", dup.text);
    assert!(dup.text.contains("error-summary"));

    let model = w.post(&format!("{base}/models"), &w.admin, &format!("name=gpt&slug=gpt-4o-mini&type=chat&providerId={provider_id}&inputUsd=0.15&outputUsd=0.6&enabled=on")).await;
    assert_eq!(model.status, StatusCode::SEE_OTHER, "{}", model.text);
    let models =
        w.h.admin(
            Method::GET,
            &format!("/api/organisations/{}/models", w.org),
            None,
        )
        .await;
    let stored = &models.body["data"][0];
    assert_eq!(
        stored["pricing"]["input"]["text"], 150_000_000,
        "USD per 1M tokens stored as nanos"
    );
    assert_eq!(stored["pricing"]["output"]["text"], 600_000_000);
    let model_id = stored["id"].as_str().unwrap().to_owned();
    assert!(w
        .get(&format!("{base}/models"), &w.admin)
        .await
        .text
        .contains("$0.15"));

    let issued = w
        .post(
            &format!("{base}/apikeys"),
            &w.admin,
            &format!("name=ci&type=ORGANISATION&modelIds={model_id}"),
        )
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    let start = issued.text.find("sk_").expect("the secret is shown");
    let secret: String = issued.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert!(secret.len() > 40, "{secret}");
    assert!(issued.text.contains("access to 1 model"));
    let keys =
        w.h.admin(
            Method::GET,
            &format!("/api/organisations/{}/apikeys", w.org),
            None,
        )
        .await;
    let key_id = keys.body["data"][0]["id"].as_str().unwrap().to_owned();
    let detail = w.get(&format!("{base}/apikeys/{key_id}"), &w.admin).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(!detail.text.contains(&secret), "never shown again");
    assert!(detail.text.contains("gpt"), "the grant is listed");

    // Rotation shows the new secret once and lands in the history.
    let rotated = w
        .post(&format!("{base}/apikeys/{key_id}/rotate"), &w.admin, "")
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert!(rotated.text.contains("sk_") && !rotated.text.contains(&secret));
    let history =
        w.h.admin(
            Method::GET,
            &format!("/api/organisations/{}/apikeys/{key_id}/rotations", w.org),
            None,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    assert_eq!(history.body["data"].as_array().unwrap().len(), 1);
    let detail = w.get(&format!("{base}/apikeys/{key_id}"), &w.admin).await;
    assert!(
        detail.text.contains("Rotation history")
            && !detail.text.contains("This key was never rotated")
    );

    let revoked = w
        .post(&format!("{base}/apikeys/{key_id}/revoke"), &w.admin, "")
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(w
        .get(&format!("{base}/apikeys/{key_id}?done=revoke"), &w.admin)
        .await
        .text
        .contains("Unrevoke"));
    // A user cannot reach an organisation key's page.
    assert_eq!(
        w.get(&format!("{base}/apikeys/{key_id}"), &w.user)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn budgets_go_through_a_recap_and_show_their_consumption() {
    let w = World::new().await;
    let base = format!("/{}", w.org);
    let review = w.post(&format!("{base}/budgets"), &w.admin, "step=review&name=monthly&owner=ORG%3A&period=MONTHLY&timezone=UTC&amountUsd=50&thresholds=80&active=on").await;
    assert_eq!(review.status, StatusCode::OK, "{}", review.text);
    assert!(review.text.contains("4. Recap") && review.text.contains("$50.000000"));
    let none =
        w.h.admin(
            Method::GET,
            &format!("/api/organisations/{}/budgets", w.org),
            None,
        )
        .await;
    assert!(
        none.body["data"].as_array().unwrap().is_empty(),
        "the recap creates nothing"
    );
    let bad = w
        .post(
            &format!("{base}/budgets"),
            &w.admin,
            "step=review&name=x&owner=ORG%3A&period=MONTHLY&amountUsd=-3",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains(r#"id="f-amountUsd-error""#));
    let created = w.post(&format!("{base}/budgets"), &w.admin, "step=create&name=monthly&owner=ORG%3A&period=MONTHLY&timezone=UTC&amountUsd=50&thresholds=80&active=on").await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let detail = w
        .get(created.headers["location"].to_str().unwrap(), &w.admin)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    assert!(
        detail.text.contains("Consumption")
            && detail.text.contains("Current window")
            && detail.text.contains("$50.000000")
    );

    // The key and team pages link to a wizard preset for their owner.
    let preset = w
        .get(&format!("{base}/quotas?owner=TEAM:{}", w.team), &w.admin)
        .await;
    assert!(
        preset
            .text
            .contains(&format!(r#"<option value="TEAM:{}" selected>"#, w.team)),
        "{}",
        preset.text
    );
    let quota = w.post(&format!("{base}/quotas"), &w.admin, &format!("step=create&name=req&owner=TEAM%3A{}&period=DAILY&metric=REQUESTS&limit=100&active=on", w.team)).await;
    assert_eq!(quota.status, StatusCode::SEE_OTHER, "{}", quota.text);
    let detail = w
        .get(quota.headers["location"].to_str().unwrap(), &w.admin)
        .await;
    assert!(detail.text.contains("100 REQUESTS"), "{}", detail.text);
}

#[tokio::test]
async fn invitations_are_sent_shown_once_and_accepted_on_the_public_page() {
    let w = World::new().await;
    let base = format!("/{}", w.org);
    let sent = w
        .post(
            &format!("{base}/users"),
            &w.admin,
            "op=invite&email=new%40acme.test&role=USER",
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    let start = sent
        .text
        .find("/invitations/")
        .expect("the accept link is shown");
    let link: String = sent.text[start..]
        .chars()
        .take_while(|c| *c != '<' && *c != '"')
        .collect();
    let page = w.send(Method::GET, &link, None, None, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("Acme")
            && page.text.contains("new@acme.test")
            && page.text.contains("USER")
    );
    let short = w
        .send(
            Method::POST,
            &link,
            None,
            Some("name=New&password=short"),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST, "{}", short.text);
    assert!(short.text.contains("error-summary"));
    let accepted = w
        .send(
            Method::POST,
            &link,
            None,
            Some("name=New+Person&password=a-long-enough-password"),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.text);
    assert!(accepted.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("odock_session="));
    let used = w.send(Method::GET, &link, None, None, None).await;
    assert_eq!(used.status, StatusCode::GONE);
    assert!(used.text.contains("already accepted"));
    let unknown = w
        .send(Method::GET, "/invitations/nope", None, None, None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.text.contains("not valid"));
}

#[tokio::test]
async fn dashboard_counts_follow_what_the_caller_sees() {
    let w = World::new().await;
    let path = format!("/api/organisations/{}/dashboard", w.org);
    let admin = w.h.call(Method::GET, &path, Some(&w.admin), None).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    assert_eq!(admin.body["teams"], 1);
    assert_eq!(admin.body["users"], 2);
    assert_eq!(admin.body["providers"], 0);
    let user = w.h.call(Method::GET, &path, Some(&w.user), None).await;
    assert_eq!(user.body["teams"], 0);
    assert!(user.body["users"].is_null() && user.body["providers"].is_null());
    let outsider =
        w.h.call(
            Method::GET,
            &format!("/api/organisations/{}/dashboard", w.other_org),
            Some(&w.admin),
            None,
        )
        .await;
    assert_eq!(outsider.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn password_change_and_sign_out() {
    let w = World::new().await;
    let mismatch = w.post("/account/password", &w.admin, &format!("currentPassword={}&newPassword=another-long-password&confirmPassword=different-password", PASSWORD.replace(' ', "+"))).await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert!(mismatch.text.contains(r#"id="f-confirmPassword-error""#));
    let wrong = w.post("/account/password", &w.admin, "currentPassword=wrong&newPassword=another-long-password&confirmPassword=another-long-password").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.text.contains(r#"id="f-currentPassword-error""#),
        "{}",
        wrong.text
    );
    let ok = w.post("/account/password", &w.admin, &format!("currentPassword={}&newPassword=another-long-password&confirmPassword=another-long-password", PASSWORD.replace(' ', "+"))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(ok.text.contains("Your password was changed"));
    let out = w.post("/logout", &w.admin, "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        w.get(&format!("/{}/dashboard", w.org), &w.admin)
            .await
            .status,
        StatusCode::SEE_OTHER,
        "the session ended"
    );
}

#[tokio::test]
async fn non_id_paths_stay_json_404s_and_assets_are_served() {
    let w = World::new().await;
    let page = w.get("/v1/dashboard", &w.admin).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.text.starts_with('{'), "{}", page.text);
    let css = w
        .send(Method::GET, "/assets/console.css", None, None, None)
        .await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let js = w
        .send(Method::GET, "/assets/console.js", None, None, None)
        .await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        w.send(Method::GET, "/assets/nope.js", None, None, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// Every `id` of a page is unique (labels and error references point at one field).
fn assert_unique_ids(page: &Page) {
    let mut seen = std::collections::HashSet::new();
    for part in page.text.split(" id=\"").skip(1) {
        let id = part.split('"').next().unwrap();
        assert!(seen.insert(id.to_owned()), "duplicate id {id}");
    }
}

impl World {
    async fn api(&self, method: Method, path: &str) -> serde_json::Value {
        self.h
            .admin(
                method,
                &format!("/api/organisations/{}{path}", self.org),
                None,
            )
            .await
            .body
    }

    /// A provider with one key and a priced chat model: `(provider, key, model)`.
    async fn catalog(&self) -> (String, String, String) {
        let base = format!("/api/organisations/{}", self.org);
        let provider = self
            .h
            .create(
                &format!("{base}/providers"),
                json!({"name": "Upstream", "type": "OPENAI", "baseUrl": "http://127.0.0.1:9/v1"}),
            )
            .await;
        let key = self
            .h
            .create(
                &format!("{base}/providers/{provider}/keys"),
                json!({"name": "Primary", "key": "sk-first-secret-0001"}),
            )
            .await;
        let model = self
            .h
            .create(
                &format!("{base}/models"),
                json!({"name": "gpt", "slug": "gpt-4o-mini", "type": "chat", "providerId": provider,
                       "pricing": {"input": {"text": 150_000_000}, "output": {"text": 600_000_000}}}),
            )
            .await;
        (provider, key, model)
    }
}

#[tokio::test]
async fn providers_and_their_keys_are_edited_replaced_and_deleted() {
    let w = World::new().await;
    let (provider, key, model) = w.catalog().await;
    let here = format!("/{}/providers/{provider}", w.org);
    let page = w.get(&here, &w.admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Edit provider") && page.text.contains("Health"));
    assert!(
        page.text.contains(r#"<details class="confirm">"#),
        "deletes sit behind a disclosure, not a script"
    );
    assert!(
        page.text.contains(r#"value="Upstream""#),
        "the form is pre-filled"
    );

    let bad = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=Renamed&timeoutMs=soon",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text.contains(r#"id="f-edit-timeoutMs-error""#),
        "{}",
        bad.text
    );
    let saved = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=Renamed&baseUrl=http%3A%2F%2F127.0.0.1%3A9%2Fv2&timeoutMs=5000&enabled=on",
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = w.api(Method::GET, &format!("/providers/{provider}")).await;
    assert_eq!(stored["name"], "Renamed");
    assert_eq!(stored["timeoutMs"], 5000);

    // Replacing a secret adds a key and revokes the old one; no secret is ever rendered.
    let replaced = w
        .post(
            &format!("{here}/keys/{key}/replace"),
            &w.admin,
            "key=sk-second-secret-0002",
        )
        .await;
    assert_eq!(replaced.status, StatusCode::SEE_OTHER, "{}", replaced.text);
    let keys = w
        .api(Method::GET, &format!("/providers/{provider}/keys"))
        .await;
    let keys = keys["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let old = keys.iter().find(|k| k["id"] == key.as_str()).unwrap();
    assert_eq!(old["revoked"], true);
    let page = w.get(&format!("{here}?done=replace"), &w.admin).await;
    assert!(!page.text.contains("sk-second-secret") && !page.text.contains("sk-first-secret"));
    let deleted = w
        .post(&format!("{here}/keys/{key}/delete"), &w.admin, "")
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let keys = w
        .api(Method::GET, &format!("/providers/{provider}/keys"))
        .await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);

    // A manager may read providers but not change them; a user may not even read them.
    let manager_id =
        w.h.user(Some(&w.org), "manager@acme.test", Role::Manager)
            .await;
    let manager = w.h.session(&manager_id).await;
    let page = w.get(&here, &manager).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("Edit provider") && !page.text.contains("Delete provider"));
    assert_eq!(
        w.post(&format!("{here}/delete"), &manager, "").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(w.get(&here, &w.user).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.post(&format!("{here}/edit"), &w.user, "name=x")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Another organisation's admin finds nothing.
    let other_admin =
        w.h.user(Some(&w.other_org), "admin@globex.test", Role::OrgAdmin)
            .await;
    let other_admin = w.h.session(&other_admin).await;
    assert_eq!(
        w.post(&format!("{here}/delete"), &other_admin, "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Deleting the provider deletes its models too (as the confirmation says).
    let page = w.get(&here, &w.admin).await;
    assert!(page.text.contains("every model that uses it"));
    let gone = w.post(&format!("{here}/delete"), &w.admin, "").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.text);
    assert_eq!(gone.headers["location"], format!("/{}/providers", w.org));
    let models = format!("/{}/models/{model}", w.org);
    assert_eq!(w.get(&models, &w.admin).await.status, StatusCode::NOT_FOUND);
    assert_eq!(w.get(&here, &w.admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn models_have_a_detail_page_with_pricing_grants_and_an_edit_form() {
    let w = World::new().await;
    let (_, _, model) = w.catalog().await;
    let key =
        w.h.create(
            &format!("/api/organisations/{}/apikeys", w.org),
            json!({"name": "granted-key", "type": "ORGANISATION"}),
        )
        .await;
    w.h.admin(
        Method::POST,
        &format!("/api/organisations/{}/apikeys/{key}/model-access", w.org),
        Some(&json!({"modelIds": [model]})),
    )
    .await;
    let list = w.get(&format!("/{}/models", w.org), &w.admin).await;
    assert!(
        list.text.contains(&format!("/models/{model}")),
        "the list links to the detail"
    );
    let here = format!("/{}/models/{model}", w.org);
    let page = w.get(&here, &w.admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("$0.15") && page.text.contains("granted-key"));
    assert!(
        page.text.contains(r#"value="0.15""#),
        "pricing pre-filled in USD per 1M"
    );

    let bad = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=gpt&slug=gpt-4o-mini&type=chat&inputUsd=1.2.3",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains(r#"id="f-inputUsd-error""#));
    let provider = w.api(Method::GET, &format!("/models/{model}")).await["providerId"].clone();
    let saved = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            &format!(
                "name=gpt-renamed&slug=gpt-4o-mini&type=chat&providerId={}&inputUsd=0.2&outputUsd=1.25&enabled=on",
                provider.as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = w.api(Method::GET, &format!("/models/{model}")).await;
    assert_eq!(stored["name"], "gpt-renamed");
    assert_eq!(stored["pricing"]["input"]["text"], 200_000_000);
    assert_eq!(stored["pricing"]["output"]["text"], 1_250_000_000);

    // A user sees the model but no form, no grants, and may not change it.
    let page = w.get(&here, &w.user).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("Edit model") && !page.text.contains("granted-key"));
    assert_eq!(
        w.post(&format!("{here}/delete"), &w.user, "").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn mcp_servers_show_sealed_auth_only_as_configured_and_are_edited_and_deleted() {
    let w = World::new().await;
    let server =
        w.h.create(
            &format!("/api/organisations/{}/mcp-servers", w.org),
            json!({"name": "Tools", "slug": "tools", "transport": "STREAMABLE_HTTP",
                   "endpointUrl": "https://mcp.example.test/mcp", "authType": "BEARER",
                   "authConfig": {"token": "mcp-sealed-token-123456"},
                   "allowedTools": ["search"]}),
        )
        .await;
    let list = w.get(&format!("/{}/mcp-servers", w.org), &w.admin).await;
    assert!(list.text.contains(&format!("/mcp-servers/{server}")));
    let here = format!("/{}/mcp-servers/{server}", w.org);
    let page = w.get(&here, &w.admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("configured") && page.text.contains("search"));
    assert!(!page.text.contains("mcp-sealed-token-123456"));
    // An empty token field keeps the sealed token.
    let saved = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=Tools+2&slug=tools&transport=STREAMABLE_HTTP&endpointUrl=https%3A%2F%2Fmcp.example.test%2Fmcp&authType=BEARER&authToken=&callUsd=0.001&enabled=on",
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = w.api(Method::GET, &format!("/mcp-servers/{server}")).await;
    assert_eq!(stored["name"], "Tools 2");
    assert_eq!(stored["pricing"]["callNanosUsd"], 1_000_000);
    assert!(!stored["authConfigPreview"].as_object().unwrap().is_empty());
    let bad = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=Tools&slug=tools&transport=STREAMABLE_HTTP&callUsd=lots",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains(r#"id="f-callUsd-error""#));
    assert_eq!(
        w.post(&format!("{here}/delete"), &w.user, "").await.status,
        StatusCode::FORBIDDEN
    );
    let gone = w.post(&format!("{here}/delete"), &w.admin, "").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(w.get(&here, &w.admin).await.status, StatusCode::NOT_FOUND);
}

/// Basic and OAuth2 client-credentials upstream auth are set from the form (sealed, previews
/// only), and a missing field is reported next to that field.
#[tokio::test]
async fn mcp_servers_take_basic_and_oauth2_upstream_auth_from_the_form() {
    let w = World::new().await;
    let create = |body: &'static str| {
        let w = &w;
        async move {
            w.post(&format!("/{}/mcp-servers", w.org), &w.admin, body)
                .await
        }
    };
    let basic = create(
        "name=Basic&slug=basic&transport=STREAMABLE_HTTP&endpointUrl=https%3A%2F%2Fmcp.example.test%2Fb\
         &authType=BASIC&authToken=ignored&authUsername=robot&authPassword=basic-secret-9876&enabled=on",
    )
    .await;
    assert_eq!(basic.status, StatusCode::SEE_OTHER, "{}", basic.text);
    let oauth = create(
        "name=OAuth&slug=oauth&transport=STREAMABLE_HTTP&endpointUrl=https%3A%2F%2Fmcp.example.test%2Fo\
         &authType=OAUTH2&authTokenUrl=https%3A%2F%2Fidp.example.test%2Ftoken&authClientId=odock\
         &authClientSecret=oauth-secret-5432&authScope=tools&enabled=on",
    )
    .await;
    assert_eq!(oauth.status, StatusCode::SEE_OTHER, "{}", oauth.text);
    let servers = w.api(Method::GET, "/mcp-servers").await;
    let find = |slug: &str| {
        servers["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["slug"] == slug)
            .unwrap()
            .clone()
    };
    let (basic, oauth) = (find("basic"), find("oauth"));
    assert_eq!(basic["authType"], "BASIC");
    assert_eq!(oauth["authType"], "OAUTH2");
    for (server, secret) in [(&basic, "basic-secret-9876"), (&oauth, "oauth-secret-5432")] {
        assert!(!server["authConfigPreview"].as_object().unwrap().is_empty());
        assert!(!server.to_string().contains(secret));
        let page = w
            .get(
                &format!("/{}/mcp-servers/{}", w.org, server["id"].as_str().unwrap()),
                &w.admin,
            )
            .await;
        assert!(page.text.contains("configured") && !page.text.contains(secret));
    }
    // No password: the error is shown at the password field.
    let missing = create(
        "name=Half&slug=half&transport=STREAMABLE_HTTP&endpointUrl=https%3A%2F%2Fmcp.example.test%2Fh\
         &authType=BASIC&authUsername=robot&enabled=on",
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);
    assert!(
        missing.text.contains(r#"id="f-authPassword-error""#),
        "{}",
        missing.text
    );
}

#[tokio::test]
async fn teams_members_and_users_are_edited_from_their_pages() {
    let w = World::new().await;
    let member = w.h.user(Some(&w.org), "member@acme.test", Role::User).await;
    w.h.admin(
        Method::POST,
        &format!("/api/organisations/{}/teams/{}/members", w.org, w.team),
        Some(&json!({"userId": member, "role": "MEMBER"})),
    )
    .await;
    let team = format!("/{}/teams/{}", w.org, w.team);
    let renamed = w
        .post(&format!("{team}/edit"), &w.admin, "name=platform")
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.text);
    assert_eq!(
        w.api(Method::GET, &format!("/teams/{}", w.team)).await["name"],
        "platform"
    );
    let promoted = w
        .post(
            &format!("{team}/members/{member}/role"),
            &w.admin,
            "role=MANAGER",
        )
        .await;
    assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{}", promoted.text);
    let members = w
        .api(Method::GET, &format!("/teams/{}/members", w.team))
        .await;
    assert_eq!(members["data"][0]["role"], "MANAGER");

    // The user's page lists the team; the user list links to it.
    let users = w.get(&format!("/{}/users", w.org), &w.admin).await;
    assert!(users.text.contains(&format!("/users/{member}")));
    let user_page = format!("/{}/users/{member}", w.org);
    let page = w.get(&user_page, &w.admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("member@acme.test") && page.text.contains("platform"));
    assert_unique_ids(&page);
    assert_unique_ids(&w.get(&team, &w.admin).await);
    let role = w
        .post(
            &format!("{user_page}/edit"),
            &w.admin,
            "name=Member&role=MANAGER",
        )
        .await;
    assert_eq!(role.status, StatusCode::SEE_OTHER, "{}", role.text);
    assert_eq!(
        w.api(Method::GET, &format!("/users/{member}")).await["role"],
        "MANAGER"
    );
    let bad = w
        .post(&format!("{user_page}/edit"), &w.admin, "role=SUPER_ADMIN")
        .await;
    assert!(bad.status.is_client_error(), "{}", bad.status);
    assert!(bad.text.contains("error-summary"), "{}", bad.text);
    let off = w
        .post(&format!("{user_page}/deactivate"), &w.admin, "")
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.text);
    assert_eq!(
        w.api(Method::GET, &format!("/users/{member}")).await["status"],
        "REVOKED"
    );
    assert!(w
        .get(&format!("{user_page}?done=deactivate"), &w.admin)
        .await
        .text
        .contains("Activate"));

    // A user may change none of it.
    for (path, form) in [
        (format!("{team}/edit"), "name=x"),
        (format!("{team}/members/{member}/remove"), ""),
        (format!("{user_page}/deactivate"), ""),
    ] {
        let refused = w.post(&path, &w.user, form).await;
        assert!(
            matches!(
                refused.status,
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
            ),
            "{path}: {}",
            refused.status
        );
    }
    assert_eq!(
        w.get(&user_page, &w.user).await.status,
        StatusCode::FORBIDDEN
    );

    let removed = w
        .post(&format!("{team}/members/{member}/remove"), &w.admin, "")
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let members = w
        .api(Method::GET, &format!("/teams/{}/members", w.team))
        .await;
    assert!(members["data"].as_array().unwrap().is_empty());
    let deleted = w.post(&format!("{team}/delete"), &w.admin, "").await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.text);
    assert_eq!(w.get(&team, &w.admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn budgets_and_quotas_are_edited_and_deleted() {
    let w = World::new().await;
    let budget = w
        .h
        .create(
            &format!("/api/organisations/{}/budgets", w.org),
            json!({"name": "monthly", "ownerType": "ORG", "period": "MONTHLY", "amountNanos": 50_000_000_000_i64, "thresholds": [80]}),
        )
        .await;
    let here = format!("/{}/budgets/{budget}", w.org);
    let page = w.get(&here, &w.admin).await;
    assert!(
        page.text.contains("Edit budget") && page.text.contains(r#"value="50""#),
        "{}",
        page.text
    );
    let bad = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=monthly&period=MONTHLY&amountUsd=lots",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains(r#"id="f-amountUsd-error""#));
    let saved = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=bigger&period=MONTHLY&timezone=UTC&amountUsd=75.5&thresholds=90&active=on",
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = w.api(Method::GET, &format!("/budgets/{budget}")).await;
    assert_eq!(stored["amountNanos"], 75_500_000_000_i64);
    assert_eq!(stored["ownerType"], "ORG", "the owner does not change");
    assert_eq!(
        w.post(&format!("{here}/delete"), &w.user, "").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.post(&format!("{here}/delete"), &w.admin, "").await.status,
        StatusCode::SEE_OTHER
    );

    let quota = w
        .h
        .create(
            &format!("/api/organisations/{}/quotas", w.org),
            json!({"name": "req", "ownerType": "TEAM", "ownerId": w.team, "period": "DAILY", "metric": "REQUESTS", "limit": 100}),
        )
        .await;
    let here = format!("/{}/quotas/{quota}", w.org);
    let saved = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "name=req&period=DAILY&timezone=UTC&limit=250&active=on",
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = w.api(Method::GET, &format!("/quotas/{quota}")).await;
    assert_eq!(stored["limit"], 250);
    assert_eq!(stored["metric"], "REQUESTS");
}

#[tokio::test]
async fn api_keys_are_edited_deleted_and_routed_between_granted_models() {
    let w = World::new().await;
    let (provider, _, first) = w.catalog().await;
    let second =
        w.h.create(
            &format!("/api/organisations/{}/models", w.org),
            json!({"name": "backup", "slug": "gpt-4o", "type": "chat", "providerId": provider}),
        )
        .await;
    let key =
        w.h.create(
            &format!("/api/organisations/{}/apikeys", w.org),
            json!({"name": "routed", "type": "ORGANISATION"}),
        )
        .await;
    w.h.admin(
        Method::POST,
        &format!("/api/organisations/{}/apikeys/{key}/model-access", w.org),
        Some(&json!({"modelIds": [first, second]})),
    )
    .await;
    let here = format!("/{}/apikeys/{key}", w.org);
    let page = w.get(&here, &w.admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains(r#"id="routing""#) && page.text.contains("Organisation smart routing")
    );
    assert!(
        page.text.contains(&format!("order.{second}")),
        "granted chat models are candidates"
    );

    // Candidates in the order given; the API's bounds come back next to their field.
    let form = format!(
        "form=routing&modelType=chat&chat.strategy=failover&chat.triggers=5xx&chat.triggers=rate_limit&order.{first}=2&order.{second}=1&chat.maxRetries=2&chat.retryDelayMs=100"
    );
    let saved = w.post(&format!("{here}/routing"), &w.admin, &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let routing = w.api(Method::GET, &format!("/apikeys/{key}/routing")).await;
    let policy = &routing["policies"][0];
    assert_eq!(policy["candidates"][0]["modelId"], second.as_str());
    assert_eq!(policy["candidates"][1]["modelId"], first.as_str());
    assert_eq!(policy["maxRetries"], 2);
    assert_eq!(policy["triggers"], json!(["5xx", "rate_limit"]));
    let too_many = w
        .post(
            &format!("{here}/routing"),
            &w.admin,
            &format!("form=routing&modelType=chat&chat.strategy=failover&chat.triggers=5xx&order.{first}=1&chat.maxRetries=99"),
        )
        .await;
    assert_eq!(
        too_many.status,
        StatusCode::BAD_REQUEST,
        "{}",
        too_many.text
    );
    assert!(
        too_many.text.contains(r#"id="f-chat-maxRetries-error""#),
        "{}",
        too_many.text
    );
    // No candidate left removes the type's policy.
    let cleared = w
        .post(
            &format!("{here}/routing"),
            &w.admin,
            "form=routing&modelType=chat&chat.strategy=failover&chat.triggers=5xx",
        )
        .await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER);
    let routing = w.api(Method::GET, &format!("/apikeys/{key}/routing")).await;
    assert!(routing["policies"].as_array().unwrap().is_empty());

    // Details and policies.
    let bad = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "form=edit&name=routed&policies=%7Bnot+json",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains(r#"id="f-policies-error""#));
    let saved = w
        .post(
            &format!("{here}/edit"),
            &w.admin,
            "form=edit&name=renamed&expiresOn=2030-01-31&policies=%7B%22maxTokensPerRequest%22%3A+4096%7D",
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let stored = w.api(Method::GET, &format!("/apikeys/{key}")).await;
    assert_eq!(stored["name"], "renamed");
    assert_eq!(stored["policies"]["maxTokensPerRequest"], 4096);
    assert!(stored["expiresAt"]
        .as_str()
        .unwrap()
        .starts_with("2030-01-31"));

    // A user may not see, route or delete an organisation key.
    for action in ["routing", "edit", "delete"] {
        assert_eq!(
            w.post(&format!("{here}/{action}"), &w.user, "form=edit&name=x")
                .await
                .status,
            StatusCode::FORBIDDEN,
            "{action}"
        );
    }
    // A grant is taken back behind its confirmation; a user may not.
    let remove = format!("{here}/models/{second}/remove");
    assert_eq!(
        w.post(&remove, &w.user, "").await.status,
        StatusCode::FORBIDDEN
    );
    let removed = w.post(&remove, &w.admin, "").await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text);
    let grants = w
        .api(Method::GET, &format!("/apikeys/{key}/model-access"))
        .await;
    assert_eq!(grants["data"].as_array().unwrap().len(), 1);
    assert_eq!(grants["data"][0]["modelId"], first.as_str());

    let deleted = w.post(&format!("{here}/delete"), &w.admin, "").await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(w.get(&here, &w.admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn narrow_screens_get_a_menu_disclosure_instead_of_the_side_bar() {
    let w = World::new().await;
    let page = w.get(&format!("/{}/usage", w.org), &w.admin).await;
    let menu = page
        .text
        .find(r#"<details class="menu">"#)
        .expect("the menu disclosure");
    assert!(
        page.text[menu..]
            .contains("<summary>Menu<span class=\"current\"> · Usage</span></summary>"),
        "{}",
        &page.text[menu..menu + 300]
    );
    let css = w
        .send(Method::GET, "/assets/console.css", None, None, None)
        .await;
    assert!(css.text.contains("details.menu { display: none; }"));
}

#[tokio::test]
async fn the_provider_page_shows_circuit_and_key_health() {
    use odock_core::routing::{BreakerKey, CircuitBreakers, CircuitSettings, KeyPools};
    use odock_core::{ProviderId, ProviderKeyId};
    use std::sync::Arc;

    let mut w = World::new().await;
    let (provider, key, _) = w.catalog().await;
    let clock: Arc<dyn odock_core::Clock> = Arc::new(w.h.clock.clone());
    let breakers = Arc::new(CircuitBreakers::new(
        CircuitSettings::default(),
        clock.clone(),
    ));
    let threshold = CircuitSettings::DEFAULT_FAILURE_THRESHOLD;
    for _ in 0..threshold {
        breakers.record_failure(
            &BreakerKey::Provider(ProviderId::new(provider.as_str())),
            "upstream answered 503",
        );
    }
    breakers.record_failure(
        &BreakerKey::ProviderKey(ProviderKeyId::new(key.as_str())),
        "upstream answered 401",
    );
    let health = crate::api::routing::ProviderHealth {
        breakers,
        pools: Arc::new(KeyPools::new(clock)),
    };
    w.console = super::router(
        w.h.app.clone().layer(axum::Extension(health)),
        AuthSettings::default(),
    );
    let page = w
        .get(&format!("/{}/providers/{provider}", w.org), &w.admin)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let health = &page.text[page.text.find(r#"id="health-h""#).unwrap()..];
    assert!(
        health.contains(r#"<span class="badge bad">open</span>"#),
        "{health}"
    );
    assert!(health.contains("upstream answered 503") && health.contains("upstream answered 401"));
    assert!(health.contains("Primary") && health.contains("in rotation"));
}

/// A usage record of the organisation's user `user` costing `cost` nanos, `minutes_ago` old.
fn usage_record(org: &str, user: &str, cost: i64, minutes_ago: i64) -> odock_core::UsageRecord {
    use odock_core::*;
    UsageRecord {
        id: UsageRecordId::generate(),
        request_id: RequestId::generate(),
        organisation_id: OrganisationId::new(org),
        team_id: None,
        user_id: Some(UserId::new(user)),
        api_key_id: ApiKeyId::new("key-1"),
        provider: "openai".into(),
        model: Some("fast".into()),
        model_id: None,
        endpoint: "/v1/chat/completions".into(),
        http_status: 200,
        error_code: None,
        latency_ms: 100 + minutes_ago as u64,
        gateway_overhead_us: 300,
        stream: false,
        tokens: TokenUsage {
            input: 10,
            output: 20,
            ..TokenUsage::default()
        },
        billable_tokens: 30,
        cost_nanos_usd: cost,
        billing: None,
        provider_usage: None,
        routing: None,
        metadata: UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: None,
            received_at: chrono::Utc::now(),
            provider_type: None,
            denied_by: None,
        },
        provider_request_id: None,
        trace_id: None,
        created_at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        ledger_charges: Vec::new(),
    }
}

#[tokio::test]
async fn usage_records_sort_by_cost_through_the_api_and_the_page_headers() {
    let w = World::new().await;
    let me =
        w.h.call(Method::GET, "/api/auth/me", Some(&w.user), None)
            .await
            .body["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let costs = [3_000, 1_000, 5_000, 1_000, 4_000];
    let records: Vec<_> = costs
        .iter()
        .enumerate()
        .map(|(i, cost)| usage_record(&w.org, &me, *cost, 10 + i as i64))
        .collect();
    {
        let mut conn = w.h.pool.acquire().await.unwrap();
        odock_store::usage_records::insert_batch(&mut conn, &records, &[])
            .await
            .unwrap();
    }
    // A USER's list is the merged view of its slices: it pages in the sort order too.
    let base = format!("/api/organisations/{}/usage-records", w.org);
    let read_all = |sort: &'static str| {
        let w = &w;
        let base = base.clone();
        async move {
            let mut costs = Vec::new();
            let mut path = format!("{base}?sort={sort}&limit=2");
            loop {
                let page = w.h.call(Method::GET, &path, Some(&w.user), None).await;
                assert_eq!(page.status, StatusCode::OK, "{}", page.text);
                for r in page.body["data"].as_array().unwrap() {
                    costs.push(r["costNanosUsd"].as_i64().unwrap());
                }
                match page.body["nextCursor"].as_str() {
                    Some(c) => path = format!("{base}?sort={sort}&limit=2&cursor={c}"),
                    None => return costs,
                }
            }
        }
    };
    assert_eq!(read_all("-cost").await, [5_000, 4_000, 3_000, 1_000, 1_000]);
    assert_eq!(read_all("cost").await, [1_000, 1_000, 3_000, 4_000, 5_000]);
    let bad =
        w.h.call(
            Method::GET,
            &format!("{base}?sort=cost_nanos_usd"),
            Some(&w.user),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["field"], "sort");

    // The page: the Cost header carries aria-sort and links to the other direction.
    let page = w
        .get(&format!("/{}/usage?range=7d&sort=-cost", w.org), &w.admin)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains(&format!(
            r#"<th scope="col" aria-sort="descending"><a href="/{}/usage?range=7d&amp;sort=cost">Cost"#,
            w.org
        )),
        "{}",
        page.text
    );
    assert!(page.text.contains(&format!(
        r#"<a href="/{}/usage?range=7d&amp;sort=-latency">Latency"#,
        w.org
    )));
    let first = page.text.find("$0.000005").unwrap();
    let last = page.text.find("$0.000001").unwrap();
    assert!(first < last, "highest cost first");
    assert!(page.text.contains("Sorted by cost, highest first."));
}

/// The usage page's charts and KPIs follow the model, provider and user filters (the usage
/// summary takes them), and offer a breakdown by status class.
#[tokio::test]
async fn usage_charts_follow_the_provider_filter_and_break_down_by_status() {
    let w = World::new().await;
    let me =
        w.h.call(Method::GET, "/api/auth/me", Some(&w.user), None)
            .await
            .body["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let mut records: Vec<_> = [3_000, 1_000, 5_000]
        .iter()
        .enumerate()
        .map(|(i, cost)| usage_record(&w.org, &me, *cost, 10 + i as i64))
        .collect();
    records[2].provider = "anthropic".into();
    records[1].http_status = 502;
    {
        let mut conn = w.h.pool.acquire().await.unwrap();
        odock_store::usage_records::insert_batch(&mut conn, &records, &[])
            .await
            .unwrap();
    }
    let kpi = |label: &str, value: &str| {
        format!(r#"<span class="kpi-label">{label}</span><span class="kpi-value">{value}</span>"#)
    };
    let all = w.get(&format!("/{}/usage?range=7d", w.org), &w.admin).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert!(all.text.contains(&kpi("Requests", "3")), "{}", all.text);
    let anthropic = w
        .get(
            &format!(
                "/{}/usage?range=7d&provider=anthropic&breakdown=status",
                w.org
            ),
            &w.admin,
        )
        .await;
    assert_eq!(anthropic.status, StatusCode::OK, "{}", anthropic.text);
    assert!(
        anthropic.text.contains(&kpi("Requests", "1")),
        "{}",
        anthropic.text
    );
    assert!(anthropic.text.contains(&kpi("Cost", "$0.000005")));
    assert!(anthropic.text.contains("Top status by requests"));
    assert!(anthropic.text.contains("2xx"));
    assert!(!anthropic.text.contains("5xx"));
}

#[tokio::test]
async fn the_playground_lists_the_callers_active_keys_and_says_why_it_needs_the_secret() {
    let w = World::new().await;
    let me =
        w.h.call(Method::GET, "/api/auth/me", Some(&w.user), None)
            .await
            .body["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let other = w.h.user(Some(&w.org), "other@acme.test", Role::User).await;
    let keys = format!("/api/organisations/{}/apikeys", w.org);
    let mine =
        w.h.create(
            &keys,
            json!({"name": "my-key", "type": "USER", "userId": me}),
        )
        .await;
    let revoked =
        w.h.create(
            &keys,
            json!({"name": "my-old-key", "type": "USER", "userId": me}),
        )
        .await;
    w.h.admin(Method::POST, &format!("{keys}/{revoked}/revoke"), None)
        .await;
    w.h.create(
        &keys,
        json!({"name": "someone-elses", "type": "USER", "userId": other}),
    )
    .await;
    let page = w.get(&format!("/{}/playground", w.org), &w.user).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("only a hash of each key"));
    assert!(page
        .text
        .contains(&format!(r#"<option value="{mine}">my-key (sk_"#)));
    assert!(!page.text.contains("my-old-key") && !page.text.contains("someone-elses"));
    // The admin sees the organisation's keys but not another user's own key either.
    let page = w.get(&format!("/{}/playground", w.org), &w.admin).await;
    assert!(!page.text.contains("someone-elses") && !page.text.contains("my-key"));
}
