//! Test support: a real `odock-server` on 127.0.0.1:0 over a temporary SQLite file, a fake OpenAI
//! upstream on loopback, and a small admin-API client.

pub mod fake_anthropic;
pub mod fake_gemini;
pub mod fake_huggingface;
pub mod fake_mistral;
pub mod fake_openai;
pub mod fake_vllm;
pub mod upstream;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use odock::core::Secret;
use odock_server::{App, Config};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub use fake_openai::FakeOpenAi;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghij";
pub const INVALIDATION_SECRET: &str = "test-invalidation-secret";
pub const UPSTREAM_SECRET: &str = "sk-upstream-real-secret-123456";

/// A running server; stopped (gracefully) on `stop` or when dropped.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
    /// The database the server uses (SQLite file in `dir`, or a PostgreSQL schema when the suite
    /// runs with `ODOCK_TEST_BACKEND=postgres`).
    pub database_url: String,
    usage: std::sync::Arc<odock_store::SqlUsageSink>,
    traces: Option<odock_server::telemetry::TraceExport>,
    master_key: Option<Secret>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with a configuration adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = odock_store::testing::shared_database_url(dir.path()).await;
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: database_url.clone(),
            // PostgreSQL needs a configured master key (no file beside a database to generate into).
            master_key: odock_store::testing::backend_is_postgres()
                .then(|| Secret::new(odock_store::MasterKey::generate().1)),
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            cache_invalidation_secret: Some(Secret::new(INVALIDATION_SECRET)),
            usage_flush_interval_ms: 10,
            shutdown_grace_secs: 5,
            // The fake upstreams live on loopback, which the default egress policy refuses.
            egress_allow: vec!["127.0.0.0/8".to_owned()],
            ..Config::default()
        };
        tweak(&mut config);
        let app = App::build(&config).await.expect("app builds");
        let usage = app.usage_writer();
        let traces = app.trace_export();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = rx.await;
        }));
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
            // The tweak may have pointed the server elsewhere (several replicas on one database).
            database_url: config.database_url.clone(),
            usage,
            traces,
            master_key: config.master_key.clone(),
        }
    }

    /// The master key a server restarted on this database must use (`None` on SQLite: the key
    /// file beside the database is found again).
    pub fn master_key_for_restart(&self) -> Option<Secret> {
        self.master_key.clone()
    }

    /// Waits until every usage record enqueued so far is stored.
    pub async fn flush_usage(&self) {
        use odock::core::UsageSink;
        self.usage.flush().await.expect("usage records flushed");
    }

    /// Exports every finished span now (when trace export is on).
    pub async fn flush_traces(&self) {
        if let Some(traces) = &self.traces {
            traces.flush().await;
        }
    }

    /// The Prometheus exposition of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await;
        response
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Graceful stop: waits until the server has drained and flushed.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// A pool of its own on the server's database, for checks behind the API's back.
    pub async fn pool(&self) -> odock_store::db::Db {
        odock_store::connect(&self.database_url, &odock_store::DbOptions::default())
            .await
            .expect("test database")
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("admin body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn admin_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.admin(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} -> {status}: {value}"
        );
        value
    }

    /// POST /v1/chat/completions with a bearer key.
    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("chat request")
    }

    /// Waits (polling the admin API) until the usage record of `request_id` is visible.
    pub async fn usage_record(&self, org: &str, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self
                .admin_ok(
                    reqwest::Method::GET,
                    &format!("/api/organisations/{org}/usage-records?requestId={request_id}"),
                    None,
                )
                .await;
            if let Some(record) = list["data"].as_array().and_then(|d| d.first()) {
                return record.clone();
            }
            assert!(
                Instant::now() < deadline,
                "usage record of {request_id} never appeared"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An organisation with an OpenAI provider pointing at the fake upstream, a priced model
/// (`gpt-4o` → slug `gpt-4o-upstream`, $2/1M in, $8/1M out), and an ORGANISATION key granted to it.
pub struct World {
    pub org: String,
    pub provider: String,
    pub model: String,
    pub key_id: String,
    pub key: String,
}

impl World {
    pub async fn create(server: &TestServer, upstream: &FakeOpenAi) -> Self {
        use reqwest::Method;
        let org = server
            .admin_ok(
                Method::POST,
                "/api/admin/organisations",
                Some(json!({"name": format!("Acme {}", rand_suffix())})),
            )
            .await["id"]
            .as_str()
            .expect("org id")
            .to_owned();
        let provider = server
            .admin_ok(
                Method::POST,
                &format!("/api/organisations/{org}/providers"),
                Some(json!({"type": "OPENAI", "name": "OpenAI", "baseUrl": upstream.base_url(), "timeoutMs": 800})),
            )
            .await["id"]
            .as_str()
            .expect("provider id")
            .to_owned();
        server
            .admin_ok(
                Method::POST,
                &format!("/api/organisations/{org}/providers/{provider}/keys"),
                Some(json!({"name": "Primary", "key": UPSTREAM_SECRET})),
            )
            .await;
        let model = server
            .create_model(&org, &provider, "gpt-4o", "gpt-4o-upstream")
            .await;
        let (key_id, key) = server.create_key(&org).await;
        server.grant(&org, &key_id, &model).await;
        Self {
            org,
            provider,
            model,
            key_id,
            key,
        }
    }
}

impl TestServer {
    /// A fresh organisation; returns its id.
    pub async fn create_org(&self) -> String {
        self.admin_ok(
            reqwest::Method::POST,
            "/api/admin/organisations",
            Some(json!({"name": format!("Org {}", rand_suffix())})),
        )
        .await["id"]
            .as_str()
            .expect("org id")
            .to_owned()
    }

    /// A provider of `provider_type` (`OPENAI`, `ANTHROPIC`, …) at `base_url` with `config`, holding
    /// [`UPSTREAM_SECRET`] as its key; returns the provider id.
    pub async fn create_provider(
        &self,
        org: &str,
        provider_type: &str,
        base_url: &str,
        config: Value,
    ) -> String {
        let provider = self
            .admin_ok(
                reqwest::Method::POST,
                &format!("/api/organisations/{org}/providers"),
                Some(
                    json!({"type": provider_type, "name": provider_type, "baseUrl": base_url,
                            "timeoutMs": 2000, "config": config}),
                ),
            )
            .await["id"]
            .as_str()
            .expect("provider id")
            .to_owned();
        self.admin_ok(
            reqwest::Method::POST,
            &format!("/api/organisations/{org}/providers/{provider}/keys"),
            Some(json!({"name": "Primary", "key": UPSTREAM_SECRET})),
        )
        .await;
        provider
    }

    /// A model with an explicit type and pricing (`pricing` in the admin API's shape).
    pub async fn create_priced_model(
        &self,
        org: &str,
        provider: &str,
        name: &str,
        slug: &str,
        model_type: &str,
        pricing: Value,
    ) -> String {
        self.admin_ok(
            reqwest::Method::POST,
            &format!("/api/organisations/{org}/models"),
            Some(json!({"name": name, "slug": slug, "type": model_type, "providerId": provider, "pricing": pricing})),
        )
        .await["id"]
            .as_str()
            .expect("model id")
            .to_owned()
    }

    pub async fn create_model(&self, org: &str, provider: &str, name: &str, slug: &str) -> String {
        self.admin_ok(
            reqwest::Method::POST,
            &format!("/api/organisations/{org}/models"),
            Some(json!({
                "name": name, "slug": slug, "type": "chat", "providerId": provider,
                "pricing": {"input": {"text": 2_000_000_000i64}, "output": {"text": 8_000_000_000i64}}
            })),
        )
        .await["id"]
            .as_str()
            .expect("model id")
            .to_owned()
    }

    pub async fn create_key(&self, org: &str) -> (String, String) {
        let created = self
            .admin_ok(
                reqwest::Method::POST,
                &format!("/api/organisations/{org}/apikeys"),
                Some(json!({"name": "app", "type": "ORGANISATION"})),
            )
            .await;
        (
            created["id"].as_str().expect("key id").to_owned(),
            created["key"].as_str().expect("plaintext key").to_owned(),
        )
    }

    pub async fn grant(&self, org: &str, key_id: &str, model_id: &str) {
        self.admin_ok(
            reqwest::Method::POST,
            &format!("/api/organisations/{org}/apikeys/{key_id}/model-access"),
            Some(json!({"modelIds": [model_id]})),
        )
        .await;
    }
}

/// Whether `python3` can import the Python module `module` (installed by `pip install
/// {package}`), for the tests that drive an unmodified Python SDK. When it cannot, the test
/// should skip (this prints why) — unless `ODOCK_REQUIRE_SDK_TESTS` is set, as CI does, in which
/// case a missing module fails the test instead.
pub fn python_module_available(module: &str, package: &str) -> bool {
    let importable = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !importable {
        assert!(
            std::env::var("ODOCK_REQUIRE_SDK_TESTS").is_err(),
            "ODOCK_REQUIRE_SDK_TESTS is set but the {package} Python package is missing"
        );
        eprintln!(
            "skipped: python3 cannot import {module} (pip install {package} to run this test)"
        );
    }
    importable
}

/// Runs `python3 tests/gateway/{script} {args…}`, asserts it succeeded (showing its stderr if
/// not), and returns the JSON it printed.
pub async fn run_python_script(script: &str, args: &[&str]) -> Value {
    let script = format!("{}/tests/gateway/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn rand_suffix() -> String {
    odock::core::ids::random_hex(4)
}

/// Replicas sharing a fresh PostgreSQL schema, one Redis key prefix and one master key; `None`
/// when the services are not configured.
pub async fn replicas(n: usize) -> Option<Vec<TestServer>> {
    let database_url = odock_store::testing::postgres_url().await?;
    let Ok(redis_url) = std::env::var("ODOCK_TEST_REDIS_URL") else {
        eprintln!("skipped: multi-replica test (set ODOCK_TEST_REDIS_URL)");
        return None;
    };
    let prefix = format!("odock-replicas-{}:", odock_core::ids::random_hex(8));
    let master_key = odock_store::MasterKey::generate().1;
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        let (database_url, redis_url, prefix, master_key) = (
            database_url.clone(),
            redis_url.clone(),
            prefix.clone(),
            master_key.clone(),
        );
        servers.push(
            TestServer::start_with(move |config| {
                config.database_url = database_url;
                config.redis_url = Some(Secret::new(redis_url));
                config.redis_prefix = prefix;
                config.master_key = Some(Secret::new(master_key));
            })
            .await,
        );
    }
    Some(servers)
}
