//! Server configuration: an optional TOML file, then `ODOCK_*` environment variables, then command-line
//! flags — each overriding the one before. Secrets are held in [`Secret`] and never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use odock_core::Secret;
use serde::Deserialize;

pub use crate::config_error::ConfigError;
pub use crate::telemetry::LogFormat;

/// Command-line flags of `odock-server`.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "odock-server", version, about = "Odock AI governance gateway")]
pub struct Cli {
    /// Path of a TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 0.0.0.0:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Database URL (default sqlite://odock.db).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Log filter, e.g. `info` or `odock=debug`.
    #[arg(long)]
    pub log: Option<String>,
    /// Log format: `pretty` or `json`.
    #[arg(long)]
    pub log_format: Option<LogFormat>,
    /// Validate the configuration, print it (secrets masked) and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The configuration file (every field optional; unknown fields are errors, so typos are caught).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// `sqlite://path` (embedded default).
    pub database_url: Option<String>,
    /// Redis URL for several replicas (not used in embedded mode).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and of the invalidation channel (default `odock:`); replicas of
    /// one gateway share it, other deployments on the same Redis pick their own.
    pub redis_prefix: Option<String>,
    /// Budget/quota admission while Redis is unreachable: `fail-closed` (default: 503
    /// `budget_unavailable` / `quota_unavailable`) or `fail-open` (admit, log, settle best-effort).
    /// Rate limits always fail open.
    pub redis_outage_policy: Option<odock_redis::OutagePolicy>,
    /// Bound on one Redis command, in milliseconds (default 500).
    pub redis_timeout_ms: Option<u64>,
    /// Bound on connecting to Redis, in milliseconds (default 2000).
    pub redis_connect_timeout_ms: Option<u64>,
    /// How the other replicas reach this one (`http://10.0.0.5:8080`): requests for an MCP session
    /// held here are forwarded to it. Default: the bound address, unless it is a wildcard
    /// (`0.0.0.0`, `::`) — then set it when several replicas share Redis.
    pub advertise_url: Option<String>,
    /// Base64 of 32 bytes; sealing key for provider keys and MCP credentials.
    pub master_key: Option<String>,
    /// Static admin bearer token (acts as SUPER_ADMIN).
    pub admin_token: Option<String>,
    /// Email of the first SUPER_ADMIN, created at start when no user exists.
    pub bootstrap_admin_email: Option<String>,
    /// Password of that first SUPER_ADMIN.
    pub bootstrap_admin_password: Option<String>,
    /// Shared secret enabling `POST /v1/internal/cache/invalidate`.
    pub cache_invalidation_secret: Option<String>,
    /// Log filter (`EnvFilter` directive, e.g. `info` or `odock=debug`).
    pub log: Option<String>,
    /// Log format: `pretty` or `json`.
    pub log_format: Option<LogFormat>,
    /// Largest request body the gateway buffers, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Usage writer batch size.
    pub usage_batch_size: Option<usize>,
    /// Usage writer flush interval in milliseconds.
    pub usage_flush_interval_ms: Option<u64>,
    /// Where usage records wait when the database cannot keep up (default: beside the SQLite file,
    /// else `odock.usage-spill` in the working directory).
    pub usage_spill_path: Option<PathBuf>,
    /// `/v1/healthz` reports not ready once the oldest usage record not yet stored is older than
    /// this many seconds (default 30).
    pub usage_max_lag_secs: Option<u64>,
    /// Seconds to wait for in-flight requests on shutdown.
    pub shutdown_grace_secs: Option<u64>,
    /// Load balancers whose `X-Forwarded-For` is believed (IPs or CIDRs).
    pub trusted_proxies: Option<Vec<String>>,
    /// Days usage records are kept (unset: forever). Daily totals are kept regardless.
    pub usage_retention_days: Option<u32>,
    /// Database connection pool size.
    pub database_max_connections: Option<u32>,
    /// How long a request waits for a database connection, in milliseconds.
    pub database_acquire_timeout_ms: Option<u64>,
    /// How long a budget/quota hold outlives its last refresh (a crashed replica's holds are
    /// released this long after it died), in milliseconds.
    pub ledger_lease_ms: Option<u64>,
    /// Non-public upstream addresses the gateway may connect to anyway: CIDRs, IPs, host names,
    /// `*.suffix` wildcards, or `*` for everything (default: none — loopback, private, link-local,
    /// CGNAT and ULA addresses are refused).
    pub egress_allow: Option<Vec<String>>,
    /// Stdio commands an ORG_ADMIN may configure for MCP servers: absolute paths or bare program
    /// names (default: none; a SUPER_ADMIN may configure any).
    pub mcp_stdio_allow: Option<Vec<String>>,
    /// Most live stdio MCP server processes (default 64).
    pub mcp_stdio_max: Option<usize>,
    /// Most live stdio MCP server processes of one organisation (default a quarter of the maximum).
    pub mcp_stdio_max_per_org: Option<usize>,
    /// Largest unary upstream answer buffered, in bytes (default 64 MiB).
    pub upstream_max_response_bytes: Option<usize>,
    /// The origin browsers reach the admin API on (`https://odock.example.com`). When set, only this
    /// origin passes the CSRF check of cookie-authenticated writes; otherwise the request's own
    /// host (`X-Forwarded-Host` from a trusted proxy, else `Host`) is the origin.
    pub public_url: Option<String>,
    /// Serve the web console on the same port (default true; `false` for an API-only deployment).
    pub ui: Option<bool>,
    /// A request head must arrive whole within this many milliseconds (default 10000).
    pub header_read_timeout_ms: Option<u64>,
    /// A request body must arrive whole within this many milliseconds of its head (default 60000).
    pub body_read_timeout_ms: Option<u64>,
    /// An idle keep-alive connection is closed after this many milliseconds (default 60000).
    pub keep_alive_timeout_ms: Option<u64>,
    /// Largest request head (request line + headers) in bytes (default 65536, at least 8192).
    pub max_header_bytes: Option<usize>,
    /// Requests served at once; beyond it, 503 `overloaded` (default 1024).
    pub max_in_flight_requests: Option<usize>,
    /// Bytes of request bodies held in memory at once; beyond it, 503 `overloaded` (default 128 MiB).
    pub max_buffered_body_bytes: Option<usize>,
    /// Consecutive upstream failures that open a provider's (or key's) circuit (default 5).
    pub circuit_failure_threshold: Option<u32>,
    /// How long an open circuit skips its upstream before a probe, in milliseconds (default 30000).
    pub circuit_open_ms: Option<u64>,
    /// OTLP base endpoint (like `OTEL_EXPORTER_OTLP_ENDPOINT`); setting it turns trace export on.
    pub otel_endpoint: Option<String>,
    /// `http/protobuf` (default) or `grpc`.
    pub otel_protocol: Option<String>,
    /// `service.name` of exported spans (default `odock`).
    pub otel_service_name: Option<String>,
    /// Share of new traces sampled, 0..=1 (default 1; a client's sampled flag is followed).
    pub otel_sample_ratio: Option<f64>,
    /// Access log: `all` (default), `errors` or `off`.
    pub access_log: Option<crate::observability::AccessLogMode>,
    /// Share of successful requests written to the access log, 0..=1 (default 1).
    pub access_log_sample_ratio: Option<f64>,
    /// `smtp://user:pass@host:port` or `smtps://…`: invitations and alerts by e-mail.
    pub smtp_url: Option<String>,
    /// The `From` address of Odock's e-mail (required with `smtp_url`).
    pub smtp_from: Option<String>,
    /// First retry delay of a failed notification in milliseconds (default 1000, doubling).
    pub notify_retry_base_ms: Option<u64>,
    /// Delivery attempts before a notification is given up (default 8).
    pub notify_max_attempts: Option<u32>,
    /// Days before a key's expiry that `apikey.expiring` is sent (default 7; 0 = never).
    pub key_expiry_warning_days: Option<u32>,
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`ODOCK_LISTEN`, `--listen`; default [`DEFAULT_LISTEN`]).
    pub listen: SocketAddr,
    /// Database URL (`ODOCK_DATABASE_URL`, `--database-url`; default [`DEFAULT_DATABASE_URL`]).
    pub database_url: String,
    /// Redis URL (`ODOCK_REDIS_URL`); `None`: embedded mode, counters in this process.
    pub redis_url: Option<Secret>,
    /// Prefix of Redis keys and the invalidation channel (`ODOCK_REDIS_PREFIX`; default `odock:`).
    pub redis_prefix: String,
    /// Budget/quota admission while Redis is down (`ODOCK_REDIS_OUTAGE_POLICY`; default
    /// fail-closed).
    pub redis_outage_policy: odock_redis::OutagePolicy,
    /// Bound on one Redis command in milliseconds (`ODOCK_REDIS_TIMEOUT_MS`; default 500).
    pub redis_timeout_ms: u64,
    /// Bound on connecting to Redis, in ms (`ODOCK_REDIS_CONNECT_TIMEOUT_MS`; default 2000).
    pub redis_connect_timeout_ms: u64,
    /// How the other replicas reach this one (`ODOCK_ADVERTISE_URL`); `None`: the bound address
    /// when it is not a wildcard.
    pub advertise_url: Option<String>,
    /// Sealing key of provider keys and MCP credentials (`ODOCK_MASTER_KEY`, base64 of 32 bytes).
    pub master_key: Option<Secret>,
    /// Static admin bearer token acting as SUPER_ADMIN (`ODOCK_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// Email of the first SUPER_ADMIN, created when no user exists (`ODOCK_BOOTSTRAP_ADMIN_EMAIL`).
    pub bootstrap_admin_email: Option<String>,
    /// Password of that first SUPER_ADMIN (`ODOCK_BOOTSTRAP_ADMIN_PASSWORD`).
    pub bootstrap_admin_password: Option<Secret>,
    /// Secret enabling `POST /v1/internal/cache/invalidate` (`ODOCK_CACHE_INVALIDATION_SECRET`).
    pub cache_invalidation_secret: Option<Secret>,
    /// Log filter (`ODOCK_LOG`, `--log`; default `info`).
    pub log: String,
    /// Log format (`ODOCK_LOG_FORMAT`, `--log-format`; default `pretty`).
    pub log_format: LogFormat,
    /// Largest request body the gateway buffers, in bytes (`ODOCK_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Usage writer batch size (file only; default 256).
    pub usage_batch_size: usize,
    /// Usage writer flush interval in milliseconds (file only; default 100).
    pub usage_flush_interval_ms: u64,
    /// `ODOCK_USAGE_SPILL_PATH`; `None`: the default (see [`Config::usage_spill_file`]).
    pub usage_spill_path: Option<PathBuf>,
    /// `ODOCK_USAGE_MAX_LAG_SECS` (default 30).
    pub usage_max_lag_secs: u64,
    /// How long shutdown waits for requests in flight, in seconds (file only; default 30).
    pub shutdown_grace_secs: u64,
    /// IPs/CIDRs of the proxies in front of the server (`ODOCK_TRUSTED_PROXIES`, comma-separated).
    pub trusted_proxies: Vec<String>,
    /// Days usage records are kept (`ODOCK_USAGE_RETENTION_DAYS`; `None` keeps them forever).
    pub usage_retention_days: Option<u32>,
    /// Pool size (`ODOCK_DATABASE_MAX_CONNECTIONS`) and connection wait
    /// (`ODOCK_DATABASE_ACQUIRE_TIMEOUT_MS`).
    pub database_max_connections: u32,
    /// Connection wait in milliseconds (`ODOCK_DATABASE_ACQUIRE_TIMEOUT_MS`; default 10000).
    pub database_acquire_timeout_ms: u64,
    /// Budget/quota hold lease (`ODOCK_LEDGER_LEASE_MS`, default 30 s).
    pub ledger_lease_ms: u64,
    /// `ODOCK_EGRESS_ALLOW` (comma-separated): non-public upstreams allowed anyway.
    pub egress_allow: Vec<String>,
    /// `ODOCK_MCP_STDIO_ALLOW` (comma-separated): stdio commands an ORG_ADMIN may configure.
    pub mcp_stdio_allow: Vec<String>,
    /// `ODOCK_MCP_STDIO_MAX` (default 64).
    pub mcp_stdio_max: usize,
    /// `ODOCK_MCP_STDIO_MAX_PER_ORG` (`None`: a quarter of `mcp_stdio_max`, at least 1).
    pub mcp_stdio_max_per_org: Option<usize>,
    /// `ODOCK_UPSTREAM_MAX_RESPONSE_BYTES` (default 64 MiB).
    pub upstream_max_response_bytes: usize,
    /// The browser-facing origin (`ODOCK_PUBLIC_URL`) for the CSRF check; `None`: the request's host.
    pub public_url: Option<String>,
    /// `ODOCK_UI` (`on` by default; `off` serves no console pages, for API-only deployments).
    pub ui: bool,
    /// `ODOCK_CIRCUIT_FAILURE_THRESHOLD`, `ODOCK_CIRCUIT_OPEN_MS`: when circuit breakers open
    /// and for how long (a provider's `config` may override both).
    pub circuit_failure_threshold: u32,
    /// How long an open circuit stays open, in milliseconds (`ODOCK_CIRCUIT_OPEN_MS`).
    pub circuit_open_ms: u64,
    /// `ODOCK_HEADER_READ_TIMEOUT_MS`, `ODOCK_BODY_READ_TIMEOUT_MS`, `ODOCK_KEEP_ALIVE_TIMEOUT_MS`.
    pub header_read_timeout_ms: u64,
    /// Time for a whole request body to arrive, in milliseconds (default 60000).
    pub body_read_timeout_ms: u64,
    /// Idle time before a keep-alive connection is closed, in milliseconds (default 60000).
    pub keep_alive_timeout_ms: u64,
    /// `ODOCK_MAX_HEADER_BYTES`.
    pub max_header_bytes: usize,
    /// `ODOCK_MAX_IN_FLIGHT_REQUESTS`.
    pub max_in_flight_requests: usize,
    /// `ODOCK_MAX_BUFFERED_BODY_BYTES`.
    pub max_buffered_body_bytes: usize,
    /// Traces, access log, notifications, e-mail ([`crate::observability`]).
    pub observability: crate::observability::Observability,
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default database: SQLite file `odock.db` in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://odock.db";

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8080))),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            redis_url: None,
            redis_prefix: odock_redis::RedisSettings::DEFAULT_PREFIX.to_owned(),
            redis_outage_policy: odock_redis::OutagePolicy::default(),
            redis_timeout_ms: 500,
            redis_connect_timeout_ms: 2_000,
            advertise_url: None,
            master_key: None,
            admin_token: None,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            cache_invalidation_secret: None,
            log: "info".to_owned(),
            log_format: LogFormat::Pretty,
            max_body_bytes: odock_core::layers::resolve::DEFAULT_MAX_BODY_BYTES,
            usage_batch_size: 256,
            usage_flush_interval_ms: 100,
            usage_spill_path: None,
            usage_max_lag_secs: 30,
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
            usage_retention_days: None,
            database_max_connections: 4,
            database_acquire_timeout_ms: 10_000,
            ledger_lease_ms: 30_000,
            egress_allow: Vec::new(),
            mcp_stdio_allow: Vec::new(),
            mcp_stdio_max: odock_mcp::ProcessLimits::DEFAULT_MAX_TOTAL,
            mcp_stdio_max_per_org: None,
            upstream_max_response_bytes: odock_providers::client::DEFAULT_MAX_RESPONSE_BYTES,
            public_url: None,
            ui: true,
            circuit_failure_threshold:
                odock_core::routing::CircuitSettings::DEFAULT_FAILURE_THRESHOLD,
            circuit_open_ms: odock_core::routing::CircuitSettings::DEFAULT_OPEN_FOR.as_millis()
                as u64,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            keep_alive_timeout_ms: 60_000,
            max_header_bytes: 64 * 1024,
            max_in_flight_requests: 1_024,
            max_buffered_body_bytes: 128 * 1024 * 1024,
            observability: crate::observability::Observability::default(),
        }
    }
}

impl Config {
    /// File, then environment (`lookup` is `std::env::var` in production), then flags.
    pub fn load(cli: &Cli, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = Config::default();
        config.observability.apply_file(observability_keys(&file))?;
        config.apply_file(file);
        config.apply_env(&lookup)?;
        config
            .observability
            .apply_env(&|name: &str| lookup(name).filter(|v| !v.is_empty()))?;
        config.apply_cli(cli);
        config.validate()?;
        Ok(config)
    }

    fn apply_file(&mut self, file: FileConfig) {
        let secret = |v: Option<String>| v.filter(|s| !s.is_empty()).map(Secret::new);
        if let Some(v) = file.listen {
            self.listen = v;
        }
        if let Some(v) = file.database_url {
            self.database_url = v;
        }
        self.redis_url = secret(file.redis_url).or(self.redis_url.take());
        if let Some(v) = file.redis_prefix {
            self.redis_prefix = v;
        }
        if let Some(v) = file.redis_outage_policy {
            self.redis_outage_policy = v;
        }
        if let Some(v) = file.redis_timeout_ms {
            self.redis_timeout_ms = v;
        }
        if let Some(v) = file.redis_connect_timeout_ms {
            self.redis_connect_timeout_ms = v;
        }
        if let Some(v) = file.advertise_url.filter(|v| !v.is_empty()) {
            self.advertise_url = Some(v);
        }
        self.master_key = secret(file.master_key).or(self.master_key.take());
        self.admin_token = secret(file.admin_token).or(self.admin_token.take());
        self.bootstrap_admin_password =
            secret(file.bootstrap_admin_password).or(self.bootstrap_admin_password.take());
        if let Some(v) = file.bootstrap_admin_email.filter(|v| !v.is_empty()) {
            self.bootstrap_admin_email = Some(v);
        }
        self.cache_invalidation_secret =
            secret(file.cache_invalidation_secret).or(self.cache_invalidation_secret.take());
        if let Some(v) = file.log {
            self.log = v;
        }
        if let Some(v) = file.log_format {
            self.log_format = v;
        }
        if let Some(v) = file.max_body_bytes {
            self.max_body_bytes = v;
        }
        if let Some(v) = file.usage_batch_size {
            self.usage_batch_size = v;
        }
        if let Some(v) = file.usage_flush_interval_ms {
            self.usage_flush_interval_ms = v;
        }
        if let Some(v) = file.usage_spill_path {
            self.usage_spill_path = Some(v);
        }
        if let Some(v) = file.usage_max_lag_secs {
            self.usage_max_lag_secs = v;
        }
        if let Some(v) = file.shutdown_grace_secs {
            self.shutdown_grace_secs = v;
        }
        if let Some(v) = file.trusted_proxies {
            self.trusted_proxies = v;
        }
        if let Some(v) = file.usage_retention_days {
            self.usage_retention_days = Some(v);
        }
        if let Some(v) = file.database_max_connections {
            self.database_max_connections = v;
        }
        if let Some(v) = file.database_acquire_timeout_ms {
            self.database_acquire_timeout_ms = v;
        }
        if let Some(v) = file.ledger_lease_ms {
            self.ledger_lease_ms = v;
        }
        if let Some(v) = file.egress_allow {
            self.egress_allow = v;
        }
        if let Some(v) = file.mcp_stdio_allow {
            self.mcp_stdio_allow = v;
        }
        if let Some(v) = file.mcp_stdio_max {
            self.mcp_stdio_max = v;
        }
        if let Some(v) = file.mcp_stdio_max_per_org {
            self.mcp_stdio_max_per_org = Some(v);
        }
        if let Some(v) = file.upstream_max_response_bytes {
            self.upstream_max_response_bytes = v;
        }
        if let Some(v) = file.public_url.filter(|v| !v.is_empty()) {
            self.public_url = Some(v);
        }
        if let Some(v) = file.ui {
            self.ui = v;
        }
        if let Some(v) = file.circuit_failure_threshold {
            self.circuit_failure_threshold = v;
        }
        if let Some(v) = file.circuit_open_ms {
            self.circuit_open_ms = v;
        }
        if let Some(v) = file.header_read_timeout_ms {
            self.header_read_timeout_ms = v;
        }
        if let Some(v) = file.body_read_timeout_ms {
            self.body_read_timeout_ms = v;
        }
        if let Some(v) = file.keep_alive_timeout_ms {
            self.keep_alive_timeout_ms = v;
        }
        if let Some(v) = file.max_header_bytes {
            self.max_header_bytes = v;
        }
        if let Some(v) = file.max_in_flight_requests {
            self.max_in_flight_requests = v;
        }
        if let Some(v) = file.max_buffered_body_bytes {
            self.max_buffered_body_bytes = v;
        }
    }

    fn apply_env(&mut self, lookup: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        if let Some(v) = get("ODOCK_LISTEN") {
            self.listen = v.parse().map_err(|e| invalid("ODOCK_LISTEN", e))?;
        }
        if let Some(v) = get("ODOCK_DATABASE_URL") {
            self.database_url = v;
        }
        for (name, slot) in [
            ("ODOCK_REDIS_URL", &mut self.redis_url),
            ("ODOCK_MASTER_KEY", &mut self.master_key),
            ("ODOCK_ADMIN_TOKEN", &mut self.admin_token),
            (
                "ODOCK_BOOTSTRAP_ADMIN_PASSWORD",
                &mut self.bootstrap_admin_password,
            ),
            (
                "ODOCK_CACHE_INVALIDATION_SECRET",
                &mut self.cache_invalidation_secret,
            ),
        ] {
            if let Some(v) = get(name) {
                *slot = Some(Secret::new(v));
            }
        }
        if let Some(v) = get("ODOCK_REDIS_PREFIX") {
            self.redis_prefix = v;
        }
        if let Some(v) = get("ODOCK_REDIS_OUTAGE_POLICY") {
            self.redis_outage_policy = v
                .parse()
                .map_err(|e| invalid("ODOCK_REDIS_OUTAGE_POLICY", e))?;
        }
        if let Some(v) = get("ODOCK_REDIS_TIMEOUT_MS") {
            self.redis_timeout_ms = v
                .parse()
                .map_err(|e| invalid("ODOCK_REDIS_TIMEOUT_MS", e))?;
        }
        if let Some(v) = get("ODOCK_REDIS_CONNECT_TIMEOUT_MS") {
            self.redis_connect_timeout_ms = v
                .parse()
                .map_err(|e| invalid("ODOCK_REDIS_CONNECT_TIMEOUT_MS", e))?;
        }
        if let Some(v) = get("ODOCK_ADVERTISE_URL") {
            self.advertise_url = Some(v);
        }
        if let Some(v) = get("ODOCK_BOOTSTRAP_ADMIN_EMAIL") {
            self.bootstrap_admin_email = Some(v);
        }
        if let Some(v) = get("ODOCK_LOG") {
            self.log = v;
        }
        if let Some(v) = get("ODOCK_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => {
                    return Err(invalid(
                        "ODOCK_LOG_FORMAT",
                        format!("`{other}` (expected json or pretty)"),
                    ))
                }
            };
        }
        if let Some(v) = get("ODOCK_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = get("ODOCK_DATABASE_MAX_CONNECTIONS") {
            self.database_max_connections = v
                .parse()
                .map_err(|e| invalid("ODOCK_DATABASE_MAX_CONNECTIONS", e))?;
        }
        if let Some(v) = get("ODOCK_DATABASE_ACQUIRE_TIMEOUT_MS") {
            self.database_acquire_timeout_ms = v
                .parse()
                .map_err(|e| invalid("ODOCK_DATABASE_ACQUIRE_TIMEOUT_MS", e))?;
        }
        if let Some(v) = get("ODOCK_LEDGER_LEASE_MS") {
            self.ledger_lease_ms = v.parse().map_err(|e| invalid("ODOCK_LEDGER_LEASE_MS", e))?;
        }
        if let Some(v) = get("ODOCK_USAGE_SPILL_PATH") {
            self.usage_spill_path = Some(PathBuf::from(v));
        }
        if let Some(v) = get("ODOCK_USAGE_MAX_LAG_SECS") {
            self.usage_max_lag_secs = v
                .parse()
                .map_err(|e| invalid("ODOCK_USAGE_MAX_LAG_SECS", e))?;
        }
        if let Some(v) = get("ODOCK_USAGE_RETENTION_DAYS") {
            let days = v
                .parse()
                .map_err(|e| invalid("ODOCK_USAGE_RETENTION_DAYS", e))?;
            self.usage_retention_days = Some(days);
        }
        if let Some(v) = get("ODOCK_MAX_BODY_BYTES") {
            self.max_body_bytes = v.parse().map_err(|e| invalid("ODOCK_MAX_BODY_BYTES", e))?;
        }
        if let Some(v) = get("ODOCK_EGRESS_ALLOW") {
            self.egress_allow = comma_list(&v);
        }
        if let Some(v) = get("ODOCK_MCP_STDIO_ALLOW") {
            self.mcp_stdio_allow = comma_list(&v);
        }
        if let Some(v) = get("ODOCK_MCP_STDIO_MAX") {
            self.mcp_stdio_max = v.parse().map_err(|e| invalid("ODOCK_MCP_STDIO_MAX", e))?;
        }
        if let Some(v) = get("ODOCK_MCP_STDIO_MAX_PER_ORG") {
            let max = v
                .parse()
                .map_err(|e| invalid("ODOCK_MCP_STDIO_MAX_PER_ORG", e))?;
            self.mcp_stdio_max_per_org = Some(max);
        }
        if let Some(v) = get("ODOCK_UPSTREAM_MAX_RESPONSE_BYTES") {
            self.upstream_max_response_bytes = v
                .parse()
                .map_err(|e| invalid("ODOCK_UPSTREAM_MAX_RESPONSE_BYTES", e))?;
        }
        if let Some(v) = get("ODOCK_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = get("ODOCK_UI") {
            self.ui = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => true,
                "off" | "false" | "0" | "no" => false,
                _ => return Err(invalid("ODOCK_UI", "expected `on` or `off`")),
            };
        }
        if let Some(v) = get("ODOCK_CIRCUIT_FAILURE_THRESHOLD") {
            self.circuit_failure_threshold = v
                .parse()
                .map_err(|e| invalid("ODOCK_CIRCUIT_FAILURE_THRESHOLD", e))?;
        }
        if let Some(v) = get("ODOCK_CIRCUIT_OPEN_MS") {
            self.circuit_open_ms = v.parse().map_err(|e| invalid("ODOCK_CIRCUIT_OPEN_MS", e))?;
        }
        for (name, slot) in [
            (
                "ODOCK_HEADER_READ_TIMEOUT_MS",
                &mut self.header_read_timeout_ms,
            ),
            ("ODOCK_BODY_READ_TIMEOUT_MS", &mut self.body_read_timeout_ms),
            (
                "ODOCK_KEEP_ALIVE_TIMEOUT_MS",
                &mut self.keep_alive_timeout_ms,
            ),
        ] {
            if let Some(v) = get(name) {
                *slot = v.parse().map_err(|e| invalid(name, e))?;
            }
        }
        for (name, slot) in [
            ("ODOCK_MAX_HEADER_BYTES", &mut self.max_header_bytes),
            (
                "ODOCK_MAX_IN_FLIGHT_REQUESTS",
                &mut self.max_in_flight_requests,
            ),
            (
                "ODOCK_MAX_BUFFERED_BODY_BYTES",
                &mut self.max_buffered_body_bytes,
            ),
        ] {
            if let Some(v) = get(name) {
                *slot = v.parse().map_err(|e| invalid(name, e))?;
            }
        }
        Ok(())
    }

    fn apply_cli(&mut self, cli: &Cli) {
        if let Some(v) = cli.listen {
            self.listen = v;
        }
        if let Some(v) = &cli.database_url {
            self.database_url = v.clone();
        }
        if let Some(v) = &cli.log {
            self.log = v.clone();
        }
        if let Some(v) = cli.log_format {
            self.log_format = v;
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.observability.validate()?;
        if let Some(url) = &self.advertise_url {
            check_advertise_url(url).map_err(|message| invalid("advertise_url", message))?;
        }
        if let Some(url) = &self.public_url {
            check_advertise_url(url).map_err(|message| invalid("public_url", message))?;
        }
        if let Some(token) = &self.admin_token {
            odock_admin::api::auth::check_admin_token_strength(token.expose())
                .map_err(|message| invalid("admin_token", message))?;
        }
        for (name, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("keep_alive_timeout_ms", self.keep_alive_timeout_ms),
            ("circuit_open_ms", self.circuit_open_ms),
            (
                "circuit_failure_threshold",
                u64::from(self.circuit_failure_threshold),
            ),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be positive"));
            }
        }
        if self.max_header_bytes < crate::serve::MIN_HEADER_BYTES {
            return Err(invalid(
                "max_header_bytes",
                format!("must be at least {}", crate::serve::MIN_HEADER_BYTES),
            ));
        }
        if self.max_in_flight_requests == 0 {
            return Err(invalid("max_in_flight_requests", "must be positive"));
        }
        if self.max_buffered_body_bytes < self.max_body_bytes {
            return Err(invalid(
                "max_buffered_body_bytes",
                "must be at least max_body_bytes (else the largest allowed body could never be read)",
            ));
        }
        match odock_store::db::Backend::of_url(&self.database_url) {
            None => {
                return Err(invalid(
                    "database_url",
                    "expected sqlite://path or postgres://user@host/database",
                ))
            }
            // Replicas must share one master key, and a generated one would live on one machine.
            Some(odock_store::db::Backend::Postgres) if self.master_key.is_none() => {
                return Err(invalid(
                    "master_key",
                    "ODOCK_MASTER_KEY is required with a PostgreSQL database",
                ))
            }
            Some(_) => {}
        }
        crate::routes::client_ip::TrustedProxies::parse(&self.trusted_proxies).map_err(
            |entry| invalid("trusted_proxies", format!("`{entry}` is not an IP or CIDR")),
        )?;
        if let Some(key) = &self.master_key {
            odock_store::MasterKey::from_base64(key.expose())
                .map_err(|e| invalid("master_key", e))?;
        }
        if self.ledger_lease_ms < 300 {
            return Err(invalid("ledger_lease_ms", "must be at least 300"));
        }
        if self.database_max_connections == 0 {
            return Err(invalid("database_max_connections", "must be positive"));
        }
        if self.usage_retention_days == Some(0) {
            return Err(invalid(
                "usage_retention_days",
                "must be at least 1 (unset keeps records forever)",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be positive"));
        }
        if self.usage_batch_size == 0 {
            return Err(invalid("usage_batch_size", "must be positive"));
        }
        if self.redis_timeout_ms == 0 || self.redis_connect_timeout_ms == 0 {
            return Err(invalid(
                "redis_timeout_ms",
                "Redis timeouts must be positive",
            ));
        }
        self.egress_policy()
            .map_err(|e| invalid("egress_allow", e))?;
        self.stdio_allow_list()
            .map_err(|e| invalid("mcp_stdio_allow", e))?;
        if self.mcp_stdio_max_per_org == Some(0) {
            return Err(invalid("mcp_stdio_max_per_org", "must be positive"));
        }
        if self.upstream_max_response_bytes == 0 {
            return Err(invalid("upstream_max_response_bytes", "must be positive"));
        }
        Ok(())
    }

    /// The egress policy of every upstream connection (`egress_allow` over the safe default).
    pub fn egress_policy(
        &self,
    ) -> Result<odock_core::egress::EgressPolicy, odock_core::egress::EgressConfigError> {
        odock_core::egress::EgressPolicy::from_entries(&self.egress_allow)
    }

    /// The stdio commands an ORG_ADMIN may configure.
    pub fn stdio_allow_list(
        &self,
    ) -> Result<odock_mcp::StdioAllowList, odock_mcp::stdio::policy::StdioAllowError> {
        odock_mcp::StdioAllowList::from_entries(&self.mcp_stdio_allow)
    }

    /// When circuit breakers open and how long they stay open (a provider may override both).
    pub fn circuit_settings(&self) -> odock_core::routing::CircuitSettings {
        odock_core::routing::CircuitSettings {
            failure_threshold: self.circuit_failure_threshold,
            open_for: std::time::Duration::from_millis(self.circuit_open_ms),
        }
    }

    /// The caps on live stdio processes (`mcp_stdio_max` = 0 refuses every stdio session).
    pub fn stdio_limits(&self) -> odock_mcp::ProcessLimits {
        let mut limits = odock_mcp::ProcessLimits::new(self.mcp_stdio_max);
        if let Some(share) = self.mcp_stdio_max_per_org {
            limits.max_per_organisation = share;
        }
        limits
    }

    /// How to reach Redis, when `redis_url` is set (production mode).
    pub fn redis_settings(&self) -> Option<odock_redis::RedisSettings> {
        let url = self.redis_url.as_ref()?;
        let mut settings = odock_redis::RedisSettings::new(url.expose());
        settings.prefix = self.redis_prefix.clone();
        settings.outage = self.redis_outage_policy;
        settings.response_timeout = std::time::Duration::from_millis(self.redis_timeout_ms);
        settings.connect_timeout = std::time::Duration::from_millis(self.redis_connect_timeout_ms);
        Some(settings)
    }

    /// The SQLite file behind `database_url`, when it is a file (not `:memory:`).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }

    /// Where the usage writer spills when the database cannot keep up: `usage_spill_path`, else
    /// beside the SQLite file, else `odock.usage-spill` in the working directory. In-memory
    /// databases spill to a temporary file of their own (`None`).
    pub fn usage_spill_file(&self) -> Option<PathBuf> {
        if let Some(path) = &self.usage_spill_path {
            return Some(path.clone());
        }
        match odock_store::db::Backend::of_url(&self.database_url) {
            Some(odock_store::db::Backend::Postgres) => Some(PathBuf::from("odock.usage-spill")),
            _ => self.sibling_file("usage-spill"),
        }
    }

    /// Where generated secrets live: beside the database file, named after it.
    pub fn sibling_file(&self, suffix: &str) -> Option<PathBuf> {
        let db = self.sqlite_path()?;
        let stem = db
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "odock".into());
        let dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
        Some(dir.join(format!("{stem}.{suffix}")))
    }

    /// A printable summary with every secret masked (`--check-config`).
    pub fn describe(&self) -> String {
        let mask = |s: &Option<Secret>| if s.is_some() { "***" } else { "(unset)" };
        format!(
            "listen = {}\ndatabase_url = {}\nredis_url = {}\nredis_prefix = {}\nredis_outage_policy = {}\nredis_timeout_ms = {}\nredis_connect_timeout_ms = {}\nadvertise_url = {}\nmaster_key = {}\nadmin_token = {}\ncache_invalidation_secret = {}\nlog = {}\nlog_format = {:?}\nmax_body_bytes = {}\nusage_batch_size = {}\nusage_flush_interval_ms = {}\nusage_spill_file = {:?}\nusage_max_lag_secs = {}\nshutdown_grace_secs = {}\ntrusted_proxies = {:?}\nusage_retention_days = {:?}\ndatabase_max_connections = {}\ndatabase_acquire_timeout_ms = {}\nledger_lease_ms = {}\n",
            self.listen,
            self.database_url,
            mask(&self.redis_url),
            self.redis_prefix,
            self.redis_outage_policy,
            self.redis_timeout_ms,
            self.redis_connect_timeout_ms,
            self.advertise_url.as_deref().unwrap_or("(bound address)"),
            mask(&self.master_key),
            mask(&self.admin_token),
            mask(&self.cache_invalidation_secret),
            self.log,
            self.log_format,
            self.max_body_bytes,
            self.usage_batch_size,
            self.usage_flush_interval_ms,
            self.usage_spill_file(),
            self.usage_max_lag_secs,
            self.shutdown_grace_secs,
            self.trusted_proxies,
            self.usage_retention_days,
            self.database_max_connections,
            self.database_acquire_timeout_ms,
            self.ledger_lease_ms,
        ) + &format!(
            "egress_allow = {:?}\nmcp_stdio_allow = {:?}\nmcp_stdio_max = {}\nmcp_stdio_max_per_org = {}\nupstream_max_response_bytes = {}\n",
            self.egress_allow,
            self.mcp_stdio_allow,
            self.mcp_stdio_max,
            self.stdio_limits().max_per_organisation,
            self.upstream_max_response_bytes,
        ) + &format!(
            "public_url = {}\nheader_read_timeout_ms = {}\nbody_read_timeout_ms = {}\nkeep_alive_timeout_ms = {}\nmax_header_bytes = {}\nmax_in_flight_requests = {}\nmax_buffered_body_bytes = {}\n",
            self.public_url.as_deref().unwrap_or("(request host)"),
            self.header_read_timeout_ms,
            self.body_read_timeout_ms,
            self.keep_alive_timeout_ms,
            self.max_header_bytes,
            self.max_in_flight_requests,
            self.max_buffered_body_bytes,
        ) + &format!(
            "circuit_failure_threshold = {}\ncircuit_open_ms = {}\n",
            self.circuit_failure_threshold, self.circuit_open_ms,
        ) + &self.observability.describe()
    }
}

/// The observability keys of the file, read by [`crate::observability`].
fn observability_keys(file: &FileConfig) -> crate::observability::ObservabilityFile {
    crate::observability::ObservabilityFile {
        otel_endpoint: file.otel_endpoint.clone(),
        otel_protocol: file.otel_protocol.clone(),
        otel_service_name: file.otel_service_name.clone(),
        otel_sample_ratio: file.otel_sample_ratio,
        access_log: file.access_log,
        access_log_sample_ratio: file.access_log_sample_ratio,
        smtp_url: file.smtp_url.clone(),
        smtp_from: file.smtp_from.clone(),
        notify_retry_base_ms: file.notify_retry_base_ms,
        notify_max_attempts: file.notify_max_attempts,
        key_expiry_warning_days: file.key_expiry_warning_days,
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// An advertised URL other replicas can forward to: `http(s)://host[:port]`, no credentials, no
/// path (request paths are appended to it).
fn check_advertise_url(url: &str) -> Result<(), String> {
    // Messages never repeat the URL: it might carry credentials.
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("expected http(s)://host[:port]".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".to_owned());
    }
    if parsed.path() != "/" || parsed.query().is_some() {
        return Err("must have no path or query".to_owned());
    }
    Ok(())
}

/// The non-empty, trimmed entries of a comma-separated setting.
fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn invalid(name: &'static str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn zero_config_uses_the_embedded_defaults() {
        let config = Config::load(&Cli::default(), env(&[])).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.database_url, "sqlite://odock.db");
        assert_eq!(
            config.sibling_file("master-key"),
            Some(PathBuf::from("odock.master-key"))
        );
    }

    #[test]
    fn the_bootstrap_admin_comes_from_the_environment_and_stays_masked() {
        let config = Config::load(
            &Cli::default(),
            env(&[
                ("ODOCK_BOOTSTRAP_ADMIN_EMAIL", "root@odock.test"),
                ("ODOCK_BOOTSTRAP_ADMIN_PASSWORD", "s3cret passphrase"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.bootstrap_admin_email.as_deref(),
            Some("root@odock.test")
        );
        assert_eq!(
            config.bootstrap_admin_password.as_ref().map(Secret::expose),
            Some("s3cret passphrase")
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odock.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1000\"\nlog = \"debug\"\nadmin_token = \"file-token-0123456789abcdefghijklmnop\"\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        let config = Config::load(&cli, env(&[("ODOCK_LISTEN", "127.0.0.1:2000")])).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:2000");
        assert_eq!(config.log, "debug");
        assert_eq!(
            config.admin_token.as_ref().map(Secret::expose),
            Some("file-token-0123456789abcdefghijklmnop")
        );

        let cli = Cli {
            config: Some(path),
            listen: Some("127.0.0.1:3000".parse().unwrap()),
            ..Cli::default()
        };
        let config = Config::load(&cli, env(&[("ODOCK_LISTEN", "127.0.0.1:2000")])).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn unknown_file_fields_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odock.toml");
        std::fs::write(&path, "listne = \"127.0.0.1:1000\"\n").unwrap();
        let cli = Cli {
            config: Some(path),
            ..Cli::default()
        };
        assert!(matches!(
            Config::load(&cli, env(&[])),
            Err(ConfigError::Parse { .. })
        ));
        assert!(
            Config::load(&Cli::default(), env(&[("ODOCK_MASTER_KEY", "not-base64!")])).is_err()
        );
        assert!(Config::load(&Cli::default(), env(&[("ODOCK_LOG_FORMAT", "xml")])).is_err());
    }

    #[test]
    fn advertise_url_is_an_origin_without_credentials() {
        let load = |url: &str| Config::load(&Cli::default(), env(&[("ODOCK_ADVERTISE_URL", url)]));
        assert_eq!(
            Config::load(&Cli::default(), env(&[]))
                .unwrap()
                .advertise_url,
            None
        );
        let config = load("http://10.0.0.5:8080").unwrap();
        assert_eq!(
            config.advertise_url.as_deref(),
            Some("http://10.0.0.5:8080")
        );
        assert!(config
            .describe()
            .contains("advertise_url = http://10.0.0.5:8080"));
        assert!(load("https://replica-1.internal/").is_ok());
        for bad in [
            "10.0.0.5:8080",
            "ftp://10.0.0.5",
            "http://user:pw@10.0.0.5:8080",
            "http://10.0.0.5:8080/v1",
            "http://10.0.0.5:8080?x=1",
        ] {
            let error = load(bad).unwrap_err().to_string();
            assert!(error.contains("advertise_url"), "{bad}: {error}");
            assert!(!error.contains("pw@"), "{error}");
        }
    }

    #[test]
    fn redis_settings_come_from_the_environment() {
        let config = Config::load(&Cli::default(), env(&[])).unwrap();
        assert!(config.redis_settings().is_none());
        let config = Config::load(
            &Cli::default(),
            env(&[
                ("ODOCK_REDIS_URL", "redis://:hunter2@127.0.0.1:6379"),
                ("ODOCK_REDIS_PREFIX", "replica-test:"),
                ("ODOCK_REDIS_OUTAGE_POLICY", "fail-open"),
                ("ODOCK_REDIS_TIMEOUT_MS", "250"),
            ]),
        )
        .unwrap();
        let settings = config.redis_settings().unwrap();
        assert_eq!(settings.prefix, "replica-test:");
        assert_eq!(settings.outage, odock_redis::OutagePolicy::FailOpen);
        assert_eq!(
            settings.response_timeout,
            std::time::Duration::from_millis(250)
        );
        assert!(!config.describe().contains("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));
        let bad = env(&[("ODOCK_REDIS_OUTAGE_POLICY", "sometimes")]);
        assert!(Config::load(&Cli::default(), bad).is_err());
    }

    #[test]
    fn egress_and_stdio_settings_parse_and_bad_entries_are_refused() {
        let config = Config::load(&Cli::default(), env(&[])).unwrap();
        assert!(config
            .egress_policy()
            .unwrap()
            .check_host("127.0.0.1")
            .is_err());
        assert!(config.stdio_allow_list().unwrap().is_empty());
        assert_eq!(config.stdio_limits(), odock_mcp::ProcessLimits::new(64));
        assert_eq!(config.upstream_max_response_bytes, 64 * 1024 * 1024);

        let config = Config::load(
            &Cli::default(),
            env(&[
                ("ODOCK_EGRESS_ALLOW", "127.0.0.0/8, vllm.internal"),
                ("ODOCK_MCP_STDIO_ALLOW", "npx,/usr/bin/uvx"),
                ("ODOCK_MCP_STDIO_MAX", "8"),
                ("ODOCK_MCP_STDIO_MAX_PER_ORG", "3"),
                ("ODOCK_UPSTREAM_MAX_RESPONSE_BYTES", "1048576"),
            ]),
        )
        .unwrap();
        let egress = config.egress_policy().unwrap();
        assert!(egress.check_host("127.0.0.1").is_ok());
        assert!(egress.allows_host_name("vllm.internal"));
        assert!(config.stdio_allow_list().unwrap().allows("npx"));
        assert_eq!(config.stdio_limits().max_total, 8);
        assert_eq!(config.stdio_limits().max_per_organisation, 3);
        assert_eq!(config.upstream_max_response_bytes, 1_048_576);
        assert!(config.describe().contains("mcp_stdio_max_per_org = 3"));

        let refused = |pairs: &[(&str, &str)]| Config::load(&Cli::default(), env(pairs)).is_err();
        assert!(refused(&[("ODOCK_EGRESS_ALLOW", "10.0.0.0/99")]));
        assert!(refused(&[("ODOCK_MCP_STDIO_ALLOW", "./relative")]));
        assert!(refused(&[("ODOCK_MCP_STDIO_MAX_PER_ORG", "0")]));
        assert!(refused(&[("ODOCK_UPSTREAM_MAX_RESPONSE_BYTES", "0")]));
    }

    #[test]
    fn secrets_are_masked_in_descriptions_and_debug_output() {
        let config = Config::load(
            &Cli::default(),
            env(&[
                ("ODOCK_ADMIN_TOKEN", "super-secret-token-0123456789abcdef"),
                ("ODOCK_CACHE_INVALIDATION_SECRET", "inv-secret"),
            ]),
        )
        .unwrap();
        let described = config.describe();
        let debugged = format!("{config:?}");
        for text in [described, debugged] {
            assert!(!text.contains("super-secret-token"));
            assert!(!text.contains("inv-secret"));
        }
    }

    #[test]
    fn production_settings_parse_and_bad_values_are_refused() {
        let config = Config::load(
            &Cli::default(),
            env(&[
                ("ODOCK_DATABASE_URL", "postgres://odock@db/odock"),
                (
                    "ODOCK_MASTER_KEY",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ),
                ("ODOCK_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.1"),
                ("ODOCK_USAGE_RETENTION_DAYS", "90"),
                ("ODOCK_DATABASE_MAX_CONNECTIONS", "32"),
            ]),
        )
        .unwrap();
        assert_eq!(config.trusted_proxies, vec!["10.0.0.0/8", "192.168.0.1"]);
        assert_eq!(config.usage_retention_days, Some(90));
        assert_eq!(config.database_max_connections, 32);

        let refused = |pairs: &[(&str, &str)]| Config::load(&Cli::default(), env(pairs)).is_err();
        assert!(refused(&[(
            "ODOCK_DATABASE_URL",
            "postgres://odock@db/odock"
        )]));
        assert!(refused(&[("ODOCK_DATABASE_URL", "mysql://db/odock")]));
        assert!(refused(&[(
            "ODOCK_TRUSTED_PROXIES",
            "10.0.0.0/8,not-an-ip"
        )]));
        assert!(refused(&[("ODOCK_USAGE_RETENTION_DAYS", "0")]));
        assert!(refused(&[("ODOCK_USAGE_RETENTION_DAYS", "forever")]));
    }

    #[test]
    fn http_limits_and_the_public_url_are_read_and_checked() {
        let config = Config::load(
            &Cli::default(),
            env(&[
                ("ODOCK_PUBLIC_URL", "https://odock.example.com"),
                ("ODOCK_HEADER_READ_TIMEOUT_MS", "2000"),
                ("ODOCK_BODY_READ_TIMEOUT_MS", "3000"),
                ("ODOCK_KEEP_ALIVE_TIMEOUT_MS", "4000"),
                ("ODOCK_MAX_HEADER_BYTES", "16384"),
                ("ODOCK_MAX_IN_FLIGHT_REQUESTS", "10"),
                ("ODOCK_MAX_BUFFERED_BODY_BYTES", "67108864"),
                ("ODOCK_CIRCUIT_FAILURE_THRESHOLD", "3"),
                ("ODOCK_CIRCUIT_OPEN_MS", "1500"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (config.circuit_failure_threshold, config.circuit_open_ms),
            (3, 1500)
        );
        assert!(config.describe().contains("circuit_failure_threshold = 3"));
        assert_eq!(
            Config::default().circuit_settings(),
            odock_core::routing::CircuitSettings::default()
        );
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://odock.example.com")
        );
        assert_eq!(
            (
                config.header_read_timeout_ms,
                config.body_read_timeout_ms,
                config.keep_alive_timeout_ms
            ),
            (2000, 3000, 4000)
        );
        assert_eq!(config.max_header_bytes, 16384);
        assert_eq!(config.max_in_flight_requests, 10);
        assert_eq!(config.max_buffered_body_bytes, 67_108_864);
        assert!(config.describe().contains("max_in_flight_requests = 10"));

        let refused = |pairs: &[(&str, &str)]| {
            Config::load(&Cli::default(), env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(
            refused(&[("ODOCK_PUBLIC_URL", "https://odock.example.com/console")])
                .contains("public_url")
        );
        assert!(
            refused(&[("ODOCK_HEADER_READ_TIMEOUT_MS", "0")]).contains("header_read_timeout_ms")
        );
        assert!(refused(&[("ODOCK_MAX_HEADER_BYTES", "1024")]).contains("max_header_bytes"));
        assert!(refused(&[("ODOCK_CIRCUIT_FAILURE_THRESHOLD", "0")])
            .contains("circuit_failure_threshold"));
        assert!(refused(&[("ODOCK_CIRCUIT_OPEN_MS", "0")]).contains("circuit_open_ms"));
        assert!(
            refused(&[("ODOCK_MAX_IN_FLIGHT_REQUESTS", "0")]).contains("max_in_flight_requests")
        );
        assert!(refused(&[("ODOCK_MAX_BUFFERED_BODY_BYTES", "1000")])
            .contains("max_buffered_body_bytes"));
        let weak = refused(&[("ODOCK_ADMIN_TOKEN", "change-me")]);
        assert!(
            weak.contains("admin_token") && weak.contains("at least 32"),
            "{weak}"
        );
        assert!(
            !weak.contains("change-me"),
            "the token never appears: {weak}"
        );
    }
}
