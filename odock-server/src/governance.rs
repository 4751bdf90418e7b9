//! Where rate limits, quotas, budgets and cache invalidation are decided: in this process (embedded
//! mode, one replica: [`LocalAdmission`] over an [`InMemoryLedger`] whose settled amounts the usage
//! writer stores with the records), or shared through Redis when `ODOCK_REDIS_URL` is set, so
//! several replicas on one database behave as one gateway.

use std::sync::Arc;
use std::time::Duration;

use odock_core::{
    Admission, BudgetAlerts, CacheInvalidator, Clock, InMemoryLedger, LiveWindows, LocalAdmission,
    RuleSource,
};
use odock_redis::{
    InvalidationSubscriber, RedisAdmission, RedisAdmissionOptions, RedisConnection, RedisHealth,
    RedisInvalidator, RedisLedgerFlusher, RedisSettings, RedisStoreError,
};
use odock_store::db::Db;
use odock_store::SqlRuleSource;
use tokio::task::JoinHandle;

/// How often Redis ledger totals are written to the database.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How long shutdown waits for the last ledger flush.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The admission, its caches and background tasks of one replica.
pub struct Governance {
    /// Budget, quota and rate-limit admission (Redis-backed with Redis, else in memory).
    pub admission: Arc<dyn Admission>,
    /// Live window totals for the admin API.
    pub live_windows: Arc<dyn LiveWindows>,
    /// The admission's own caches (which rules apply), evicted with the others.
    pub caches: Vec<Arc<dyn CacheInvalidator>>,
    redis: Option<RedisParts>,
    tasks: Vec<JoinHandle<()>>,
}

struct RedisParts {
    conn: RedisConnection,
    flusher: RedisLedgerFlusher,
    subscriber: Option<InvalidationSubscriber>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("redis", &self.redis.as_ref().map(|r| &r.conn))
            .finish_non_exhaustive()
    }
}

impl Governance {
    /// Embedded mode: the in-process limiter and ledger, rules read from `pool`.
    pub fn embedded(pool: &Db, clock: Arc<dyn Clock>, alerts: Arc<dyn BudgetAlerts>) -> Self {
        let ledger = InMemoryLedger::with_settings(
            Arc::new(SqlRuleSource::new(pool.clone())),
            clock,
            odock_core::ledger::DEFAULT_REFRESH_AFTER,
        )
        .with_alerts(alerts);
        Self {
            admission: Arc::new(LocalAdmission::with_ledger(ledger.clone())),
            live_windows: Arc::new(ledger.clone()),
            caches: vec![Arc::new(ledger)],
            redis: None,
            tasks: Vec::new(),
        }
    }

    /// Production mode: the Redis admission (leases of `lease`, refreshed and swept every third
    /// of it), its totals flushed to `pool`, and (see [`Self::invalidator`]) invalidation over
    /// pub/sub.
    pub async fn redis(
        settings: &RedisSettings,
        pool: &Db,
        clock: Arc<dyn Clock>,
        alerts: Arc<dyn BudgetAlerts>,
        lease: Duration,
    ) -> Result<Self, RedisStoreError> {
        let conn = RedisConnection::connect(settings).await?;
        let rules: Arc<dyn RuleSource> = Arc::new(SqlRuleSource::new(pool.clone()));
        let admission = RedisAdmission::new(
            conn.clone(),
            pool.clone(),
            rules,
            clock,
            alerts,
            RedisAdmissionOptions {
                lease,
                ..RedisAdmissionOptions::default()
            },
        );
        let flusher = RedisLedgerFlusher::new(conn.clone(), pool.clone());
        let tasks = vec![
            admission.spawn_lease_keeper(lease / 3),
            flusher.clone().spawn(FLUSH_EVERY),
        ];
        tracing::info!(prefix = conn.prefix(), outage = %settings.outage, "budgets, quotas, rate limits and cache invalidation shared through Redis");
        Ok(Self {
            admission: Arc::new(admission.clone()),
            live_windows: Arc::new(admission.clone()),
            caches: vec![Arc::new(admission)],
            redis: Some(RedisParts {
                conn,
                flusher,
                subscriber: None,
            }),
            tasks,
        })
    }

    /// The invalidator admin writes and `/v1/internal/cache/invalidate` go through: `local` alone
    /// in embedded mode; with Redis, `local` plus a publication every replica applies (this one
    /// starts listening here).
    pub fn invalidator(&mut self, local: Arc<dyn CacheInvalidator>) -> Arc<dyn CacheInvalidator> {
        match &mut self.redis {
            None => local,
            Some(redis) => {
                let invalidator = RedisInvalidator::new(redis.conn.clone(), local);
                redis.subscriber = Some(invalidator.spawn_subscriber());
                Arc::new(invalidator)
            }
        }
    }

    /// The `redis` readiness check, when Redis is configured.
    /// The `round_robin` routing counters shared through Redis (production mode); `None` in
    /// embedded mode, where the routing's in-process counters are the only ones.
    pub fn round_robin(&self) -> Option<Arc<dyn odock_core::routing::RoundRobinCursors>> {
        self.redis.as_ref().map(|redis| {
            Arc::new(odock_redis::RedisRoundRobinCursors::new(redis.conn.clone()))
                as Arc<dyn odock_core::routing::RoundRobinCursors>
        })
    }

    /// The Redis readiness check for `/v1/healthz`; `None` in embedded mode.
    pub fn health(&self) -> Option<RedisHealth> {
        self.redis
            .as_ref()
            .map(|redis| RedisHealth::new(redis.conn.clone()))
    }

    /// Where MCP session ownership is recorded: in Redis, shared by the replicas; else in this
    /// process (embedded mode: every session is local, nothing is forwarded).
    pub fn mcp_sessions(&self) -> Arc<dyn odock_core::McpSessionDirectory> {
        match &self.redis {
            Some(redis) => Arc::new(odock_redis::RedisMcpSessionDirectory::new(
                redis.conn.clone(),
            )),
            None => Arc::new(odock_core::InMemoryMcpSessionDirectory::default()),
        }
    }

    /// The background loops (lease keeper, ledger flusher), for the app's
    /// [`Background`](odock_core::Background) to stop; [`shutdown`](Self::shutdown) then only
    /// writes the last totals.
    pub fn take_tasks(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.tasks)
    }

    /// Stops the background tasks and writes the last ledger totals to the database.
    pub async fn shutdown(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(redis) = self.redis.as_mut() {
            redis.subscriber = None;
            match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, redis.flusher.flush()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "last ledger totals not flushed; another replica or the next start will")
                }
                Err(_) => tracing::warn!("last ledger totals not flushed in time"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::{App, Cli, Config};

    fn config(database: &str, redis: &str, prefix: &str) -> Config {
        let lookup = |name: &str| match name {
            "ODOCK_DATABASE_URL" => Some(database.to_owned()),
            "ODOCK_REDIS_URL" => Some(redis.to_owned()),
            "ODOCK_REDIS_PREFIX" => Some(prefix.to_owned()),
            "ODOCK_REDIS_CONNECT_TIMEOUT_MS" => Some("300".to_owned()),
            "ODOCK_ADMIN_TOKEN" => Some("test-admin-token-0123456789abcdefghij".to_owned()),
            _ => None,
        };
        Config::load(&Cli::default(), lookup).unwrap()
    }

    #[tokio::test]
    async fn a_server_configured_with_redis_uses_it_and_reports_it_ready() {
        let Ok(redis) = std::env::var("ODOCK_TEST_REDIS_URL") else {
            eprintln!("skipped: ODOCK_TEST_REDIS_URL is not set");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("odock.db").display());
        let prefix = format!("odock-test:{}:", odock_core::ids::random_hex(8));
        let app = App::build(&config(&database, &redis, &prefix))
            .await
            .unwrap();
        let response = app
            .router()
            .oneshot(Request::get("/v1/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(body["checks"]["redis"], "ok");
        assert_eq!(body["checks"]["database"], "ok");
    }

    /// Embedded mode decides limits in memory: a second server on the same database without Redis
    /// would admit up to every limit again, so it refuses to start, saying why.
    #[tokio::test]
    async fn a_second_embedded_server_on_one_database_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let database = match odock_store::testing::postgres_url().await {
            Some(url) if odock_store::testing::backend_is_postgres() => url,
            _ => format!("sqlite://{}", dir.path().join("odock.db").display()),
        };
        let lookup = |name: &str| match name {
            "ODOCK_DATABASE_URL" => Some(database.clone()),
            "ODOCK_ADMIN_TOKEN" => Some("test-admin-token-0123456789abcdefghij".to_owned()),
            "ODOCK_MASTER_KEY" => Some(odock_store::MasterKey::generate().1),
            _ => None,
        };
        let config = Config::load(&Cli::default(), lookup).unwrap();
        let first = App::build(&config).await.unwrap();
        match App::build(&config).await {
            Err(crate::StartError::Config(message)) => {
                assert!(message.contains("ODOCK_REDIS_URL"), "{message}")
            }
            other => panic!("a second embedded server started: {other:?}"),
        }
        drop(first);
        App::build(&config)
            .await
            .expect("the database is free again once the first server is gone");
    }

    #[tokio::test]
    async fn a_server_configured_with_an_unreachable_redis_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("odock.db").display());
        let started = App::build(&config(&database, "redis://127.0.0.1:1", "odock:")).await;
        assert!(matches!(started, Err(crate::StartError::Redis(_))));
    }
}
