//! Assembling the server: stores, providers, the gateway stack, the admin API, metrics, and serving
//! with graceful shutdown.
//!
//! [`App::build_with_clock`] is a table of contents: each step below is a function of its own, in
//! the order the server starts (stores → observability → governance → MCP → routers → background
//! work). The background work is one [`Background`] handle: [`App::serve`] stops it after the last
//! request; an embedder that mounts [`App::router`] itself calls [`App::shutdown`].

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{middleware, Extension, Router};
use odock_core::egress::EgressPolicy;
use odock_core::layers::RequestIdLayer;
use odock_core::routing::{CircuitBreakers, CircuitState, KeyPools, Routing};
use odock_core::{
    Background, CacheInvalidator, Clock, GatewayBuilder, InvalidatorSet, Secret, SystemClock,
    UsageSink,
};
use odock_mcp::{McpTransportOptions, McpTransports, StdioAllowList};
use odock_store::db::Db;
use odock_store::{KeyStoreOptions, MasterKey, SqlKeyStore, SqlUsageSink, UsageWriterOptions};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::governance::Governance;
use crate::metrics::{self, Metrics, ObservedUsageSink};
use crate::notify::email::{html_escape, Mailer};
use crate::notify::{Alerter, Notifier, NotifySettings, ServerAlerts};
use crate::routes::client_ip::TrustedProxies;
use crate::routes::limits::{LimitSettings, RequestLimits};
use crate::routes::mcp_affinity::{self, McpAffinity};
use crate::routes::{self, health, internal};
use crate::serve::{ConnectionTimeouts, ServeOptions};
use crate::single_writer::SingleWriter;
use crate::telemetry::{self, TraceExport};
use odock_admin::api::{self as admin, AdminState};

/// How long shutdown waits for the usage writer to drain.
const USAGE_FLUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] odock_store::DbError),
    /// The master key is invalid, or its key file could not be loaded or created.
    #[error("master key: {0}")]
    MasterKey(#[from] odock_store::CryptoError),
    /// The generated admin token's file could not be read or created.
    #[error("admin token file: {0}")]
    AdminToken(std::io::Error),
    /// A setting could not be applied at start (second embedded writer, trusted proxies, trace
    /// export, SMTP, bootstrap admin, allow lists, …).
    #[error("configuration: {0}")]
    Config(String),
    /// Redis could not be reached or set up.
    #[error(transparent)]
    Redis(#[from] odock_redis::RedisStoreError),
}

/// How often usage retention looks for records past their age.
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// A built server, ready to serve.
pub struct App {
    router: Router,
    pool: Db,
    usage: Arc<SqlUsageSink>,
    /// Everything that runs beside the requests (usage writer, retention, alerts, ledger
    /// flushers and sweepers, trace export): stopped and drained in one place.
    background: Background,
    /// MCP session ownership; learns the bound address in [`App::serve`].
    mcp_affinity: McpAffinity,
    shutdown_grace: Duration,
    /// Embedded mode: this process is the database's only gateway while it holds this.
    _single_writer: SingleWriter,
    /// Connection timeouts and head size (`ODOCK_HEADER_READ_TIMEOUT_MS`, …).
    serve_options: ServeOptions,
    /// The OTLP trace exporter, when trace export is on.
    traces: Option<TraceExport>,
    /// Raises alerts (budget/quota crossings arrive through the ledgers; this is for the rest).
    alerter: Alerter,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("App")
    }
}

/// Step 1: the database and the secrets kept beside it.
struct Stores {
    single_writer: SingleWriter,
    pool: Db,
    master_key: Arc<MasterKey>,
    admin_token: Secret,
}

/// Step 2: metrics, access log, trace export and alerts.
struct Observability {
    metrics: Arc<Metrics>,
    access_log: AccessLog,
    traces: Option<(odock_core::Tracing, TraceExport)>,
    mailer: Option<Mailer>,
    /// Shared with the admin API: a test send wakes the alert deliverer.
    wake: Arc<Notify>,
    notifier: Notifier,
    alerter: Alerter,
}

/// Step 3: who may call what, and how much — the key store, the admission and its ledgers,
/// routing, and the gateway stack over them.
struct Governed {
    usage: Arc<SqlUsageSink>,
    governance: Governance,
    gateway: GatewayBuilder,
    invalidator: Arc<dyn CacheInvalidator>,
    egress: EgressPolicy,
    stdio_allow: StdioAllowList,
    breakers: Arc<CircuitBreakers>,
    key_pools: Arc<KeyPools>,
}

/// Step 4: the MCP transports and session affinity between replicas.
struct Mcp {
    transports: McpTransports,
    affinity: McpAffinity,
}

impl App {
    /// Connects the database (migrating it), loads or creates the master key and admin token,
    /// and assembles every route.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`App::build`] with `circuit_clock` as the clock of the circuit breakers and key pools
    /// (tests move it by hand to open and half-open circuits without waiting).
    pub async fn build_with_clock(
        config: &Config,
        circuit_clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let stores = connect_stores(config).await?;
        let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies)
            .map_err(|entry| StartError::Config(format!("trusted proxy `{entry}`")))?;
        let mut obs = start_observability(config, &stores)?;
        let governed = build_governance(config, &stores, &obs, circuit_clock).await?;
        let mcp = build_mcp(config, &governed, &obs.metrics);
        let gateway = gateway_router(config, &stores, &governed, mcp.transports, &mcp.affinity);
        let (admin, auth_settings) = admin_router(config, &stores, &governed, &obs);
        let router = server_router(config, gateway, admin, auth_settings, trusted_proxies, &obs);
        let usage = governed.usage.clone();
        let background = background(config, &stores, governed, &mut obs);
        Ok(Self {
            router,
            pool: stores.pool,
            usage,
            background,
            mcp_affinity: mcp.affinity,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            _single_writer: stores.single_writer,
            serve_options: ServeOptions {
                timeouts: ConnectionTimeouts {
                    header_read: Duration::from_millis(config.header_read_timeout_ms),
                    keep_alive: Duration::from_millis(config.keep_alive_timeout_ms),
                },
                max_header_bytes: config.max_header_bytes,
            },
            traces: obs.traces.map(|(_, export)| export),
            alerter: obs.alerter,
        })
    }

    /// Exports every finished span now (tests, shutdown).
    pub async fn flush_traces(&self) {
        if let Some(traces) = &self.traces {
            traces.flush().await;
        }
    }

    /// The trace exporter (to flush it from outside, e.g. in tests, after `serve` took the app).
    pub fn trace_export(&self) -> Option<TraceExport> {
        self.traces.clone()
    }

    /// Raises alerts from outside the ledgers (provider health, once it exists).
    pub fn alerter(&self) -> Alerter {
        self.alerter.clone()
    }

    /// The complete router (for in-process tests and embedding). Whoever serves it instead of
    /// [`App::serve`] calls [`App::shutdown`] once its requests are done.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The database pool the server uses.
    pub fn pool(&self) -> &Db {
        &self.pool
    }

    /// Waits until every usage record enqueued so far is stored.
    pub async fn flush_usage(&self) -> Result<(), odock_core::UsageSinkError> {
        self.usage.flush().await
    }

    /// The usage writer (to flush it from outside, e.g. in tests, after `serve` took the app).
    pub fn usage_writer(&self) -> Arc<SqlUsageSink> {
        self.usage.clone()
    }

    /// Background tasks still running (0 after [`App::shutdown`]).
    pub fn running_background_tasks(&self) -> usize {
        self.background.running_tasks()
    }

    /// Stops the background work: retention, alert delivery and scans, ledger sweepers and
    /// flushers end; the last ledger totals, usage records and spans are written. Every request
    /// accepted before has its usage record stored (or, if the database refuses it in time, in
    /// the spill file for the next start). [`App::serve`] calls it after draining requests.
    pub async fn shutdown(&mut self) {
        self.background.shutdown().await;
        tracing::info!("stopped");
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish (up
    /// to the grace period) and flushes usage records.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopping = Arc::new(tokio::sync::Notify::new());
        let signal = stopping.clone();
        if let Ok(bound) = listener.local_addr() {
            self.mcp_affinity.advertise_bound_address(bound);
        }
        let server = crate::serve::serve(
            listener,
            self.router.clone(),
            self.serve_options,
            async move {
                shutdown.await;
                tracing::info!("shutting down: draining in-flight requests");
                signal.notify_one();
            },
        );
        let grace = self.shutdown_grace;
        let deadline = async move {
            stopping.notified().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = server => {}
            () = deadline => tracing::warn!(?grace, "grace period elapsed; closing remaining connections"),
        }
        self.shutdown().await;
        Ok(())
    }
}

/// Claims the database (embedded mode), connects and migrates it, loads the master key and the
/// admin token, and creates the bootstrap admin.
async fn connect_stores(config: &Config) -> Result<Stores, StartError> {
    let single_writer = SingleWriter::claim(config)
        .await
        .map_err(StartError::Config)?;
    let pool = odock_store::connect(
        &config.database_url,
        &odock_store::DbOptions {
            max_connections: config.database_max_connections,
            acquire_timeout: Duration::from_millis(config.database_acquire_timeout_ms),
        },
    )
    .await?;
    let master_key = Arc::new(load_master_key(config)?);
    let admin_token = load_admin_token(config)?;
    admin::session::bootstrap_admin(
        &pool,
        config.bootstrap_admin_email.as_deref(),
        config.bootstrap_admin_password.as_ref(),
    )
    .await
    .map_err(|e| StartError::Config(format!("bootstrap admin: {e}")))?;
    Ok(Stores {
        single_writer,
        pool,
        master_key,
        admin_token,
    })
}

/// Metrics, the access log, trace export, and alerts: threshold crossings (reported by the
/// ledgers) and expiring keys, delivered to the organisations' webhooks (through the egress
/// policy: tenants choose those URLs) and e-mail.
fn start_observability(config: &Config, stores: &Stores) -> Result<Observability, StartError> {
    let metrics = Metrics::new();
    let obs = &config.observability;
    let access_log = AccessLog::new(obs.access_log, obs.access_log_sample_ratio);
    let traces =
        telemetry::start_trace_export(&obs.trace_settings()).map_err(StartError::Config)?;
    let mailer = match &obs.smtp_url {
        Some(url) => Some(
            Mailer::new(url.expose(), obs.smtp_from.as_deref().unwrap_or_default())
                .map_err(StartError::Config)?,
        ),
        None => None,
    };
    let wake = Arc::new(Notify::new());
    let webhook_client = odock_providers::UpstreamClient::new(egress_policy(config)?);
    let (notifier, alerter) = Notifier::start(
        stores.pool.clone(),
        stores.master_key.clone(),
        webhook_client,
        mailer.clone(),
        NotifySettings {
            retry_base: Duration::from_millis(obs.notify_retry_base_ms),
            max_attempts: obs.notify_max_attempts,
            key_expiry_warning: (obs.key_expiry_warning_days > 0)
                .then(|| Duration::from_secs(u64::from(obs.key_expiry_warning_days) * 86_400)),
        },
        metrics.clone(),
        wake.clone(),
    );
    Ok(Observability {
        metrics,
        access_log,
        traces,
        mailer,
        wake,
        notifier,
        alerter,
    })
}

fn egress_policy(config: &Config) -> Result<EgressPolicy, StartError> {
    config
        .egress_policy()
        .map_err(|e| StartError::Config(format!("egress_allow: {e}")))
}

/// The key store and usage writer, the admission (in this process, or shared through Redis),
/// providers behind the egress policy, routing with this replica's circuit breakers, the gateway
/// stack over them, and the invalidator admin writes evict through.
async fn build_governance(
    config: &Config,
    stores: &Stores,
    obs: &Observability,
    circuit_clock: Arc<dyn Clock>,
) -> Result<Governed, StartError> {
    let pool = &stores.pool;
    let key_store = Arc::new(SqlKeyStore::new(
        pool.clone(),
        stores.master_key.clone(),
        KeyStoreOptions::default(),
    ));
    let usage = Arc::new(SqlUsageSink::start(
        pool.clone(),
        UsageWriterOptions {
            batch_size: config.usage_batch_size,
            flush_interval: Duration::from_millis(config.usage_flush_interval_ms),
            spill_path: config.usage_spill_file(),
            ..UsageWriterOptions::default()
        },
    ));
    register_gauges(&obs.metrics, &usage, &key_store);
    let observed: Arc<dyn UsageSink> = Arc::new(ObservedUsageSink::new(
        usage.clone(),
        obs.metrics.clone(),
        obs.access_log,
    ));
    let budget_alerts: Arc<dyn odock_core::BudgetAlerts> =
        Arc::new(ServerAlerts::new(obs.metrics.clone(), obs.alerter.clone()));

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // With ODOCK_REDIS_URL, budgets, quotas, rate limits and cache invalidation are shared by
    // every replica through Redis (a hold lives `lease` past its replica's last refresh);
    // otherwise they are decided in this process, which is then the only writer.
    let mut governance = match config.redis_settings() {
        Some(settings) => {
            let lease = Duration::from_millis(config.ledger_lease_ms);
            Governance::redis(&settings, pool, clock, budget_alerts, lease).await?
        }
        None => Governance::embedded(pool, clock, budget_alerts),
    };

    // Every upstream connection (providers, MCP servers, token endpoints) goes only where the
    // egress policy allows; stdio commands need the operator's approval or the allow-list.
    let egress = egress_policy(config)?;
    let stdio_allow = config
        .stdio_allow_list()
        .map_err(|e| StartError::Config(format!("mcp_stdio_allow: {e}")))?;
    let upstream_client = odock_providers::UpstreamClient::new(egress.clone())
        .with_max_response_bytes(config.upstream_max_response_bytes);
    let providers = odock_providers::default_registry(upstream_client);
    // Routing policies (cached per key, evicted with the other caches) and this replica's
    // circuit breakers.
    let routing_policies = Arc::new(odock_store::SqlRoutingPolicySource::new(
        pool.clone(),
        &KeyStoreOptions::default(),
    ));
    let breakers = Arc::new(
        CircuitBreakers::new(config.circuit_settings(), circuit_clock.clone()).on_open(
            crate::notify::circuit_alerts(pool.clone(), obs.alerter.clone()),
        ),
    );
    register_circuit_gauges(&obs.metrics, &breakers);
    let key_pools = Arc::new(KeyPools::new(circuit_clock));
    let mut routing =
        Routing::new(routing_policies.clone(), breakers.clone()).with_key_pools(key_pools.clone());
    // Production mode: the replicas share the round-robin counters through Redis.
    if let Some(cursors) = governance.round_robin() {
        routing = routing.with_round_robin(cursors);
    }
    let gateway = GatewayBuilder::new(key_store.clone(), providers, observed)
        .max_body_bytes(config.max_body_bytes)
        .admission(governance.admission.clone())
        .routing(Some(Arc::new(routing)))
        .tracing(obs.traces.as_ref().map(|(tracing, _)| tracing.clone()));
    let mut caches: Vec<Arc<dyn CacheInvalidator>> =
        vec![key_store.clone(), routing_policies, key_pools.clone()];
    caches.extend(governance.caches.iter().cloned());
    // Admin writes and `/v1/internal/cache/invalidate` evict here and, with Redis, everywhere.
    let invalidator = governance.invalidator(Arc::new(InvalidatorSet::new(caches)));
    Ok(Governed {
        usage,
        governance,
        gateway,
        invalidator,
        egress,
        stdio_allow,
        breakers,
        key_pools,
    })
}

/// One transport per MCP server (stdio sessions, SSE bridges, OAuth2 token caches). Stdio/SSE
/// sessions held here are recorded as this replica's; requests for sessions other replicas hold
/// are forwarded to them.
fn build_mcp(config: &Config, governed: &Governed, metrics: &Arc<Metrics>) -> Mcp {
    let mut mcp_options = McpTransportOptions {
        stdio_allow: governed.stdio_allow.clone(),
        ..McpTransportOptions::default()
    }
    .with_egress(governed.egress.clone())
    .with_max_response_bytes(config.upstream_max_response_bytes);
    mcp_options.stdio.limits = config.stdio_limits();
    let affinity = McpAffinity::new(
        governed.governance.mcp_sessions(),
        config.advertise_url.clone(),
        mcp_affinity::ownership_ttl(&mcp_options),
        config.max_body_bytes,
    );
    if config.redis_url.is_some()
        && config.advertise_url.is_none()
        && config.listen.ip().is_unspecified()
    {
        tracing::warn!("ODOCK_ADVERTISE_URL is not set and the listen address is a wildcard: MCP stdio/SSE sessions opened on this replica cannot be served by the others");
    }
    let transports = McpTransports::new(mcp_options);
    let processes = transports.clone();
    metrics.register(
        "odock_mcp_stdio_processes",
        "gauge",
        "Live stdio MCP server processes.",
        Box::new(move || processes.stdio_process_count() as u64),
    );
    Mcp {
        transports,
        affinity,
    }
}

/// The gateway's routes: the libraries' LLM and MCP route tables (the MCP one behind session
/// affinity), health and readiness, metrics, and cache invalidation when it has a secret.
fn gateway_router(
    config: &Config,
    stores: &Stores,
    governed: &Governed,
    transports: McpTransports,
    affinity: &McpAffinity,
) -> Router {
    let gateway = &governed.gateway;
    let mut router = Router::new()
        .route("/v1/health", get(health::health))
        .route(
            "/v1/healthz",
            get(health::healthz).with_state(health::HealthState {
                pool: stores.pool.clone(),
                redis: governed.governance.health(),
                usage: governed.usage.clone(),
                usage_max_lag: Duration::from_secs(config.usage_max_lag_secs),
            }),
        )
        .merge(odock_core::axum_routes::llm_router(gateway))
        .merge(
            odock_mcp::axum_routes::mcp_router(gateway, transports).layer(
                middleware::from_fn_with_state(affinity.clone(), mcp_affinity::affinity),
            ),
        );
    if let Some(secret) = &config.cache_invalidation_secret {
        let state = internal::InvalidationState {
            secret: secret.clone(),
            invalidator: governed.invalidator.clone(),
        };
        router = router.route(
            "/v1/internal/cache/invalidate",
            post(internal::invalidate).with_state(state),
        );
    }
    router
}

/// The admin API with what its handlers need beyond [`AdminState`] (alert waker, provider
/// health, invitation e-mail), and the sign-in settings the console shares.
fn admin_router(
    config: &Config,
    stores: &Stores,
    governed: &Governed,
    obs: &Observability,
) -> (Router, admin::session::AuthSettings) {
    let auth_settings = admin::session::AuthSettings {
        csrf: admin::csrf::CsrfPolicy::new(config.public_url.as_deref()),
        ..admin::session::AuthSettings::default()
    };
    let mut router = admin::router_with(
        AdminState {
            pool: stores.pool.clone(),
            host: admin::host_policy::HostPolicy {
                egress: Arc::new(governed.egress.clone()),
                stdio_allow: governed.stdio_allow.clone(),
            },
            master_key: stores.master_key.clone(),
            invalidator: governed.invalidator.clone(),
            admin_token: stores.admin_token.clone(),
            live_windows: governed.governance.live_windows.clone(),
        },
        auth_settings.clone(),
    )
    .layer(Extension(admin::notifications::AlertWaker(
        obs.wake.clone(),
    )))
    .layer(Extension(admin::routing::ProviderHealth {
        breakers: governed.breakers.clone(),
        pools: governed.key_pools.clone(),
    }));
    if let Some(mailer) = obs.mailer.clone() {
        let invitations: admin::invitations::Mailer = Arc::new(EmailInvitations {
            mailer,
            base_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.listen)),
        });
        router = router.layer(Extension(invitations));
    }
    (router, auth_settings)
}

/// Everything served on the port: gateway, console (unless `ODOCK_UI=off`) and admin API, JSON
/// 404/405, and the server's own front, outermost last: request id, request limits, client IP,
/// metrics. The request id here is not the gateway stack's twice: it gives the routes outside
/// the gateway stacks (admin, console, health, 404, limit refusals) their `X-Request-Id`, and the
/// metrics and access log their id; the stacks' own layer keeps the id it finds.
fn server_router(
    config: &Config,
    gateway: Router,
    admin: Router,
    auth_settings: admin::session::AuthSettings,
    trusted_proxies: TrustedProxies,
    obs: &Observability,
) -> Router {
    let limits = RequestLimits::new(LimitSettings {
        max_in_flight: config.max_in_flight_requests,
        max_buffered_body_bytes: config.max_buffered_body_bytes,
        max_body_bytes: config.max_body_bytes,
        body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
    });
    register_limit_gauges(&obs.metrics, &limits);
    let scrape = obs.metrics.clone();
    let router = gateway.route(
        "/metrics",
        get(move || {
            let metrics = scrape.clone();
            async move { metrics.render() }
        }),
    );
    // The console calls the admin API's operations in process, so it gets the API router as
    // the server built it (with its extensions); `ODOCK_UI=off` leaves it out entirely.
    let router = if config.ui {
        router.merge(odock_admin::console::router(admin.clone(), auth_settings))
    } else {
        router
    };
    let tracked = metrics::Tracked {
        metrics: obs.metrics.clone(),
        access_log: obs.access_log,
    };
    router
        .merge(admin)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn_with_state(tracked, metrics::track))
        .layer(middleware::from_fn_with_state(
            trusted_proxies,
            routes::client_ip::client_ip,
        ))
        .layer(middleware::from_fn_with_state(
            limits,
            routes::limits::limits,
        ))
        .layer(RequestIdLayer)
}

/// The background work, in the order shutdown stops it: first every loop (usage retention, the
/// notifier's alert store, delivery and expiry scan, the ledger lease keeper and flusher), then
/// the drains — the last ledger totals, the usage records, the spans.
fn background(
    config: &Config,
    stores: &Stores,
    governed: Governed,
    obs: &mut Observability,
) -> Background {
    let mut background = Background::new();
    if let Some(days) = config.usage_retention_days {
        let keep = Duration::from_secs(u64::from(days) * 86_400);
        background.task(
            "usage retention",
            odock_store::retention::spawn_retention(stores.pool.clone(), keep, RETENTION_EVERY),
        );
    }
    for task in obs.notifier.take_tasks() {
        background.task("notifier", task);
    }
    let mut governance = governed.governance;
    for task in governance.take_tasks() {
        background.task("governance", task);
    }
    background.drain("ledger totals", move || async move {
        governance.shutdown().await;
    });
    let usage = governed.usage.clone();
    background.drain("usage", move || async move {
        // The writer retries while the database is down; don't let that hold the process forever.
        match tokio::time::timeout(USAGE_FLUSH_TIMEOUT, usage.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "usage records could not be flushed"),
            Err(_) => {
                // The database does not take them: leave them on disk for the next start.
                let spilled = usage.abandon_to_spill(Duration::from_secs(5)).await;
                tracing::error!(
                    spilled,
                    "usage records could not be stored in time; left in the spill file for the next start"
                );
            }
        }
    });
    if let Some((_, traces)) = &obs.traces {
        let traces = traces.clone();
        background.drain("traces", move || async move { traces.shutdown().await });
    }
    background
}

fn register_circuit_gauges(metrics: &Metrics, breakers: &Arc<CircuitBreakers>) {
    let open = breakers.clone();
    metrics.register(
        "odock_circuit_breakers_open",
        "gauge",
        "Open circuits (providers and provider keys routed requests skip) on this replica.",
        Box::new(move || open.count(CircuitState::Open)),
    );
    let half_open = breakers.clone();
    metrics.register(
        "odock_circuit_breakers_half_open",
        "gauge",
        "Half-open circuits (waiting on a probe) on this replica.",
        Box::new(move || half_open.count(CircuitState::HalfOpen)),
    );
}

fn register_limit_gauges(metrics: &Metrics, limits: &RequestLimits) {
    let in_flight = limits.clone();
    metrics.register(
        "odock_http_requests_in_flight",
        "gauge",
        "Requests being served (ODOCK_MAX_IN_FLIGHT_REQUESTS bounds it).",
        Box::new(move || in_flight.in_flight() as u64),
    );
    let buffered = limits.clone();
    metrics.register(
        "odock_http_buffered_body_bytes",
        "gauge",
        "Request-body bytes held in memory (ODOCK_MAX_BUFFERED_BODY_BYTES bounds it).",
        Box::new(move || buffered.buffered_body_bytes() as u64),
    );
    let overloaded = limits.clone();
    metrics.register(
        "odock_http_overloaded_total",
        "counter",
        "Requests refused with 503 overloaded (in-flight limit or body memory budget).",
        Box::new(move || overloaded.overloaded_total()),
    );
}

fn register_gauges(metrics: &Metrics, usage: &Arc<SqlUsageSink>, key_store: &Arc<SqlKeyStore>) {
    let depth = usage.clone();
    metrics.register(
        "odock_usage_queue_depth",
        "gauge",
        "Usage records enqueued and not yet written.",
        Box::new(move || depth.queue_depth()),
    );
    let age = usage.clone();
    metrics.register(
        "odock_usage_backlog_age_seconds",
        "gauge",
        "Age of the oldest usage record not yet written (0 when up to date).",
        Box::new(move || age.backlog_age().as_secs()),
    );
    let spilled = usage.clone();
    metrics.register(
        "odock_usage_spilled_records",
        "gauge",
        "Usage records waiting in the spill file.",
        Box::new(move || spilled.spilled_pending()),
    );
    let errors = usage.clone();
    metrics.register(
        "odock_usage_write_errors_total",
        "counter",
        "Failed usage writes (each is retried).",
        Box::new(move || errors.write_errors_total()),
    );
    let written = usage.clone();
    metrics.register(
        "odock_usage_records_written_total",
        "counter",
        "Usage records written to the database.",
        Box::new(move || written.written_total()),
    );
    let hits = key_store.clone();
    metrics.register(
        "odock_cache_hits_total",
        "counter",
        "Key-store cache hits (keys, models, grants).",
        Box::new(move || hits.cache_stats().hits),
    );
    let misses = key_store.clone();
    metrics.register(
        "odock_cache_misses_total",
        "counter",
        "Key-store cache misses (keys, models, grants).",
        Box::new(move || misses.cache_stats().misses),
    );
}

/// `ODOCK_MASTER_KEY`, else the key file beside the database (created on first start), else an
/// ephemeral key for in-memory databases.
fn load_master_key(config: &Config) -> Result<MasterKey, StartError> {
    if let Some(key) = &config.master_key {
        return Ok(MasterKey::from_base64(key.expose())?);
    }
    match config.sibling_file("master-key") {
        Some(path) => {
            let (key, generated) = MasterKey::load_or_generate(&path)?;
            if generated {
                tracing::warn!(path = %path.display(), "generated a new master key; back it up: provider keys cannot be decrypted without it");
            }
            Ok(key)
        }
        None => Ok(MasterKey::generate().0),
    }
}

/// `ODOCK_ADMIN_TOKEN`, else a token file beside the database (created on first start, mode 0600;
/// its path is logged, never its content). In-memory databases without a token get a random one
/// nobody knows, which leaves the admin API closed.
fn load_admin_token(config: &Config) -> Result<Secret, StartError> {
    if let Some(token) = &config.admin_token {
        admin::auth::check_admin_token_strength(token.expose())
            .map_err(|message| StartError::Config(format!("ODOCK_ADMIN_TOKEN: {message}")))?;
        return Ok(token.clone());
    }
    let Some(path) = config.sibling_file("admin-token") else {
        tracing::warn!("no ODOCK_ADMIN_TOKEN configured: the admin API is closed");
        return Ok(Secret::new(odock_core::ids::random_hex(32)));
    };
    let token = read_or_create_token(&path).map_err(StartError::AdminToken)?;
    admin::auth::check_admin_token_strength(token.expose()).map_err(|message| {
        StartError::Config(format!("admin token file {}: {message}", path.display()))
    })?;
    Ok(token)
}

fn read_or_create_token(path: &Path) -> std::io::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Secret::new(text.trim().to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let token = format!("odock_admin_{}", odock_core::ids::random_hex(24));
            odock_store::crypto::write_private_file(path, token.as_bytes())?;
            tracing::warn!(path = %path.display(), "generated an admin token (set ODOCK_ADMIN_TOKEN to choose one)");
            Ok(Secret::new(token))
        }
        Err(error) => Err(error),
    }
}

/// Invitation e-mail: the accept link (on `ODOCK_PUBLIC_URL`) in plain text and HTML, sent in the
/// background with a few retries. A message that cannot be sent is logged (never its link); the
/// inviter can resend.
struct EmailInvitations {
    mailer: Mailer,
    base_url: String,
}

impl admin::invitations::InvitationMailer for EmailInvitations {
    fn send_invitation(&self, invitation: &odock_admin::services::invitations::IssuedInvitation) {
        let link = format!("{}{}", self.base_url.trim_end_matches('/'), invitation.url);
        let to = invitation.invitation.email.clone();
        let organisation = invitation
            .invitation
            .organisation_name
            .clone()
            .unwrap_or_else(|| "a new organisation".to_owned());
        let expires = invitation.invitation.expires_at.to_rfc3339();
        let subject = format!("You are invited to {organisation} on Odock");
        let text = format!(
            "You have been invited to join {organisation} on Odock.\n\nAccept the invitation: {link}\n\nThe link works once and expires at {expires}."
        );
        let html = format!(
            "<p>You have been invited to join <strong>{}</strong> on Odock.</p><p><a href=\"{}\">Accept the invitation</a></p><p>The link works once and expires at {}.</p>",
            html_escape(&organisation),
            html_escape(&link),
            html_escape(&expires)
        );
        let mailer = self.mailer.clone();
        let id = invitation.invitation.id.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=3 {
                match mailer
                    .send(
                        std::slice::from_ref(&to),
                        &subject,
                        text.clone(),
                        html.clone(),
                    )
                    .await
                {
                    Ok(()) => {
                        tracing::info!(invitation_id = %id, "invitation e-mailed");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(invitation_id = %id, attempt, %error, "invitation e-mail not sent");
                        tokio::time::sleep(delay).await;
                        delay *= 4;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use odock_core::{
        ApiKeyId, OrganisationId, RequestId, RequestOutcome, TokenUsage, UsageMetadata,
        UsageRecord, UsageRecordId, UsageSink,
    };

    use super::*;

    fn record(i: usize) -> UsageRecord {
        let now = chrono::Utc::now();
        UsageRecord {
            id: UsageRecordId::new(format!("lifecycle-{i}")),
            request_id: RequestId::generate(),
            organisation_id: OrganisationId::new("org1"),
            team_id: None,
            user_id: None,
            api_key_id: ApiKeyId::new("key1"),
            provider: "openai".into(),
            model: Some("gpt".into()),
            model_id: None,
            endpoint: "/v1/chat/completions".into(),
            http_status: 200,
            error_code: None,
            latency_ms: 1,
            gateway_overhead_us: 1,
            stream: false,
            tokens: TokenUsage::default(),
            billable_tokens: 0,
            cost_nanos_usd: 0,
            billing: None,
            provider_usage: None,
            routing: None,
            metadata: UsageMetadata {
                schema: "usage_metadata_v1".into(),
                outcome: RequestOutcome::Completed,
                usage_estimated: false,
                upstream_latency_ms: None,
                received_at: now,
                provider_type: None,
                denied_by: None,
            },
            provider_request_id: None,
            trace_id: None,
            created_at: now,
            ledger_charges: Vec::new(),
        }
    }

    /// The embedder's path (serving `App::router` itself): `App::shutdown` stops every loop the
    /// app started and stores the records the writer still held (its periodic flush never ran).
    #[tokio::test]
    async fn shutdown_stops_the_background_work_and_stores_every_enqueued_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            database_url: format!("sqlite://{}", dir.path().join("odock.db").display()),
            admin_token: Some(Secret::new("test-admin-token-0123456789abcdefghij")),
            usage_flush_interval_ms: 3_600_000,
            usage_retention_days: Some(30),
            ..Config::default()
        };
        let mut app = App::build(&config).await.expect("app builds");
        // Retention, the alert store, delivery and the expiring-key scan.
        assert_eq!(app.running_background_tasks(), 4);
        let writer = app.usage_writer();
        for i in 0..7 {
            writer.enqueue(record(i));
        }

        app.shutdown().await;

        assert_eq!(app.running_background_tasks(), 0);
        let stored: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM usage_records WHERE id LIKE 'lifecycle-%'")
                .fetch_one(app.pool())
                .await
                .expect("count");
        assert_eq!(stored, 7);
    }
}
