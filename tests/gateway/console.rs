//! The web console end to end: a real server, a fake OpenAI upstream, and a real headless Chromium
//! driven by Playwright for Python (`console_e2e.py`). Skipped with a message when Chromium or
//! Playwright is missing, unless `ODOCK_REQUIRE_BROWSER_TESTS` is set (CI sets it). Screenshots of
//! every page land in `target/console-screenshots/`.

use odock::core::Secret;
use reqwest::Method;
use serde_json::json;

use crate::support::{run_python_script, FakeOpenAi, TestServer};

const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD: &str = "console-e2e-password";

fn browser_available() -> bool {
    let chromium = std::path::Path::new(CHROMIUM).exists();
    let playwright = std::process::Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if chromium && playwright {
        return true;
    }
    assert!(
        std::env::var("ODOCK_REQUIRE_BROWSER_TESTS").is_err(),
        "ODOCK_REQUIRE_BROWSER_TESTS is set but {} is missing",
        if chromium {
            "the playwright Python package"
        } else {
            CHROMIUM
        }
    );
    eprintln!(
        "skipped: the browser test needs {CHROMIUM} (apt-get install chromium) and Playwright for \
         Python (pip install playwright)"
    );
    false
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start_with(|config| {
        config.bootstrap_admin_email = Some("root@odock.test".into());
        config.bootstrap_admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let org = server.create_org().await;
    for (email, role) in [("admin@e2e.test", "ORG_ADMIN"), ("user@e2e.test", "USER")] {
        server
            .admin_ok(
                Method::POST,
                &format!("/api/organisations/{org}/users"),
                Some(json!({"email": email, "name": role, "role": role, "password": PASSWORD})),
            )
            .await;
    }
    let screenshots = format!("{}/target/console-screenshots", env!("CARGO_MANIFEST_DIR"));
    let config = json!({
        "base": server.base,
        "org": org,
        "upstream": upstream.base_url(),
        "screenshots": screenshots,
        "super": {"email": "root@odock.test", "password": PASSWORD},
        "orgAdmin": {"email": "admin@e2e.test", "password": PASSWORD},
        "user": {"email": "user@e2e.test", "password": PASSWORD},
        "invitee": "invitee@e2e.test",
    });
    let result = run_python_script("console_e2e.py", &[&config.to_string()]).await;
    assert_eq!(result["problems"], json!([]), "{result}");
    // The playground's call is an ordinary gateway request with its usage record.
    server.flush_usage().await;
    let request_id = result["requestId"].as_str().unwrap();
    let record = server.usage_record(&org, request_id).await;
    assert_eq!(record["httpStatus"], 200);
    assert_eq!(record["stream"], true);
}

#[tokio::test]
async fn odock_ui_off_serves_no_console() {
    let server = TestServer::start_with(|config| config.ui = false).await;
    let login = server
        .client
        .get(server.url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 404);
    let body: serde_json::Value = login.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let css = server
        .client
        .get(server.url("/assets/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 404);
    // The JSON API is still there.
    let (status, _) = server
        .admin(Method::GET, "/api/admin/organisations", None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_console_is_served_on_the_gateway_port_with_security_headers() {
    let server = TestServer::start().await;
    let login = server
        .client
        .get(server.url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(login.headers()["referrer-policy"], "no-referrer");
    let html = login.text().await.unwrap();
    assert!(
        html.contains(r#"action="/login"#) && html.contains(r#"name="password""#),
        "{html}"
    );
    // Gateway routes keep their JSON 404 for unknown paths that look like console paths.
    let unknown = server
        .client
        .get(server.url("/v1/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("json"));
}
