//! Load benchmark: the added latency and the throughput of `odock-server` against calling the same
//! local fake upstream directly, at 1 and at 64 concurrent connections.
//!
//! ```text
//! cargo build --release --bin odock-server --example load
//! target/release/examples/load --server target/release/odock-server --seconds 10
//! ```
//!
//! It starts a fake OpenAI upstream in-process (a fixed chat completion with usage), starts the
//! server binary as a child process on a temporary SQLite database, configures an organisation,
//! provider, priced model and key through the admin API, then drives the same request at both
//! targets with a keep-alive client. Every gateway request goes through the whole governed path:
//! auth, grant, metering, usage write. Output: a Markdown table plus the server's peak RSS.
//!
//! `--governed` adds an organisation budget, a REQUESTS quota and a rate-limit policy on the key
//! (limits far above what the run can reach), so every request also reserves, settles and passes
//! the limiter. `--database-url postgres://…` and `--redis-url redis://…` run the server in
//! production mode (PostgreSQL system of record, Redis ledgers/limits/invalidation) instead.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "load-admin-token-0123456789abcdefghijkl";

struct Args {
    server: String,
    seconds: u64,
    concurrency: Vec<usize>,
    governed: bool,
    database_url: Option<String>,
    redis_url: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        server: "target/release/odock-server".to_owned(),
        seconds: 10,
        concurrency: vec![1, 64],
        governed: false,
        database_url: None,
        redis_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--governed" {
            args.governed = true;
            continue;
        }
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--database-url" => args.database_url = Some(value),
            "--redis-url" => args.redis_url = Some(value),
            "--server" => args.server = value,
            "--seconds" => args.seconds = value.parse().unwrap_or(args.seconds),
            "--concurrency" => {
                args.concurrency = value
                    .split(',')
                    .filter_map(|c| c.trim().parse().ok())
                    .collect();
            }
            other => eprintln!("ignoring unknown flag {other}"),
        }
    }
    args
}

const UPSTREAM_BODY: &str = r#"{"id":"chatcmpl-load","object":"chat.completion","created":1,"model":"gpt-load","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, this is a fixed answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}"#;

async fn start_upstream() -> std::io::Result<SocketAddr> {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async { ([("content-type", "application/json")], UPSTREAM_BODY) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

async fn start_server(
    args: &Args,
    client: &reqwest::Client,
) -> Result<Server, Box<dyn std::error::Error>> {
    let binary = args.server.as_str();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(binary);
    command
        .env("ODOCK_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "ODOCK_DATABASE_URL",
            args.database_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("load.db").display())),
        )
        .env("ODOCK_ADMIN_TOKEN", ADMIN_TOKEN)
        // The fake upstream lives on loopback, which the default egress policy refuses.
        .env("ODOCK_EGRESS_ALLOW", "127.0.0.0/8")
        .env("ODOCK_LOG", "warn");
    if args.database_url.is_some() {
        // A throwaway master key: the benchmark's data is discarded.
        command.env(
            "ODOCK_MASTER_KEY",
            "bG9hZC1iZW5jaG1hcmstbWFzdGVyLWtleS0zMi1ieXQ=",
        );
    }
    if let Some(redis) = &args.redis_url {
        command.env("ODOCK_REDIS_URL", redis).env(
            "ODOCK_REDIS_PREFIX",
            format!("odock-load-{}:", std::process::id()),
        );
    }
    let child = command.stdout(Stdio::null()).spawn()?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{}/v1/health", server.base))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

async fn admin(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> Result<Value, Box<dyn std::error::Error>> {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("{path}: {}", response.text().await?).into());
    }
    Ok(response.json().await?)
}

/// Creates org, provider (→ upstream), key, model and grant; returns the virtual key.
async fn configure(
    client: &reqwest::Client,
    base: &str,
    upstream: SocketAddr,
) -> Result<String, Box<dyn std::error::Error>> {
    let org = admin(
        client,
        base,
        "/api/admin/organisations",
        json!({"name": "Load"}),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let root = format!("/api/organisations/{org}");
    let provider = admin(
        client,
        base,
        &format!("{root}/providers"),
        json!({"type": "OPENAI", "name": "local", "baseUrl": format!("http://{upstream}/v1")}),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    admin(
        client,
        base,
        &format!("{root}/providers/{provider}/keys"),
        json!({"name": "k", "key": "sk-upstream-load-test"}),
    )
    .await?;
    let model = admin(
        client,
        base,
        &format!("{root}/models"),
        json!({"name": "gpt-load", "slug": "gpt-load", "type": "chat", "providerId": provider,
        "pricing": {"input": {"text": 2_000_000_000i64}, "output": {"text": 8_000_000_000i64}}}),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = admin(
        client,
        base,
        &format!("{root}/apikeys"),
        json!({"name": "load", "type": "ORGANISATION"}),
    )
    .await?;
    let key_id = key["id"].as_str().unwrap_or_default().to_owned();
    admin(
        client,
        base,
        &format!("{root}/apikeys/{key_id}/model-access"),
        json!({"modelIds": [model]}),
    )
    .await?;
    Ok(key["key"].as_str().unwrap_or_default().to_owned())
}

/// A budget, a REQUESTS quota and a key rate-limit policy, all far above what a run reaches, so
/// every request pays for reservation, settlement and the limiter without being refused.
async fn govern(
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let validated: Value = client
        .post(format!("{base}/v1/keys/validate"))
        .bearer_auth(key)
        .send()
        .await?
        .json()
        .await?;
    let org = validated["organisationId"].as_str().unwrap_or_default();
    let key_id = validated["apiKeyId"].as_str().unwrap_or_default();
    let root = format!("/api/organisations/{org}");
    admin(
        client,
        base,
        &format!("{root}/budgets"),
        json!({"name": "load budget", "ownerType": "ORG", "amountNanos": 1_000_000_000_000_000i64,
               "period": "MONTHLY", "thresholds": [50, 80, 90, 100]}),
    )
    .await?;
    admin(
        client,
        base,
        &format!("{root}/quotas"),
        json!({"name": "load quota", "ownerType": "APIKEY", "ownerId": key_id,
               "metric": "REQUESTS", "limit": 1_000_000_000i64, "period": "DAILY"}),
    )
    .await?;
    let response = client
        .patch(format!("{base}{root}/apikeys/{key_id}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"policies": {"requestsPerMinute": 100_000_000u32, "tokensPerMinute": 10_000_000_000u64,
                                    "maxConcurrentRequests": 10_000u32}}))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("key policy: {}", response.text().await?).into());
    }
    Ok(())
}

struct Run {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn drive(
    client: reqwest::Client,
    url: String,
    key: Arc<String>,
    concurrency: usize,
    seconds: u64,
) -> Run {
    let body = r#"{"model":"gpt-load","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}"#;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = match client
                    .post(&url)
                    .bearer_auth(key.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(response) => {
                        response.status().is_success() && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed())
                } else {
                    errors += 1
                }
            }
            (latencies, errors)
        }));
    }
    let mut run = Run {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            run.requests += latencies.len();
            run.errors += errors;
            run.latencies.extend(latencies);
        }
    }
    run.elapsed = started.elapsed();
    run.latencies.sort();
    run
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let upstream = start_upstream().await?;
    let server = start_server(&args, &client).await?;
    let key = Arc::new(configure(&client, &server.base, upstream).await?);
    if args.governed {
        govern(&client, &server.base, &key).await?;
    }
    let direct_url = format!("http://{upstream}/v1/chat/completions");
    let gateway_url = format!("{}/v1/chat/completions", server.base);

    // Warm both paths (connection pools, caches).
    drive(client.clone(), direct_url.clone(), key.clone(), 4, 1).await;
    drive(client.clone(), gateway_url.clone(), key.clone(), 4, 1).await;

    println!("| conns | target | requests | errors | req/s | p50 | p99 |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for &concurrency in &args.concurrency {
        let mut p50s = Vec::new();
        let mut rates = Vec::new();
        for (name, url) in [("direct", &direct_url), ("odock", &gateway_url)] {
            let run = drive(
                client.clone(),
                url.clone(),
                key.clone(),
                concurrency,
                args.seconds,
            )
            .await;
            let rate = run.requests as f64 / run.elapsed.as_secs_f64();
            let p50 = percentile(&run.latencies, 0.50);
            let p99 = percentile(&run.latencies, 0.99);
            println!(
                "| {concurrency} | {name} | {} | {} | {rate:.0} | {:.0} µs | {:.0} µs |",
                run.requests,
                run.errors,
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
            p50s.push(p50);
            rates.push(rate);
        }
        println!(
            "\nconns {concurrency}: added p50 latency {:.0} µs; odock keeps {:.0} % of direct throughput\n",
            (p50s[1].as_secs_f64() - p50s[0].as_secs_f64()) * 1e6,
            100.0 * rates[1] / rates[0].max(1e-9)
        );
    }
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("odock_usage_queue_depth")
            || l.starts_with("odock_usage_records_written_total")
    }) {
        println!("{line}");
    }
    if let Some(rss) = server.peak_rss_kib() {
        println!("odock-server peak RSS: {:.1} MiB", rss as f64 / 1024.0);
    }
    Ok(())
}
