//! The connection every Redis component shares: settings, a reconnecting multiplexed connection
//! (`ConnectionManager`), key naming under the deployment's prefix, and a bound on every call so a
//! Redis outage turns into a prompt error instead of a hung request. After a connection failure,
//! calls fail at once for a short while (a circuit breaker) instead of each waiting out the
//! timeout; the next call after that probes Redis again.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use odock_core::Secret;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::outage::OutagePolicy;

/// How to reach Redis and what to do while it is unreachable.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (may carry a password: never logged).
    pub url: Secret,
    /// Every key and the invalidation channel live under this prefix (default `odock:`).
    pub prefix: String,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on one command or script, so an outage fails requests promptly.
    pub response_timeout: Duration,
    /// Budget/quota admission while Redis is unreachable.
    pub outage: OutagePolicy,
}

impl RedisSettings {
    /// Key prefix used when `ODOCK_REDIS_PREFIX` is not set.
    pub const DEFAULT_PREFIX: &'static str = "odock:";
    /// Default bound on establishing a connection: long enough for a remote Redis, short enough to
    /// fail start-up promptly.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default bound on one command or script: an outage then costs a request at most half a
    /// second.
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

    /// Settings for `url` with the default prefix, timeouts and outage policy.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url.into()),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            outage: OutagePolicy::default(),
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"***")
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("outage", &self.outage)
            .finish()
    }
}

/// Why a Redis operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    /// The Redis client reported an error (connection, protocol or script).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the response (or connect) timeout.
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
    /// Not tried: a recent connection failure opened the circuit breaker.
    #[error("redis: unreachable (retrying shortly)")]
    Unreachable,
    /// Redis answered, but not in the shape the caller expected.
    #[error("redis: unexpected reply: {0}")]
    Reply(String),
    /// The database failed while rebuilding or flushing windows.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A cheap-to-clone handle on one Redis deployment.
#[derive(Clone)]
pub struct RedisConnection {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: Arc<str>,
    settings: Arc<RedisSettings>,
    /// Unix ms until which calls fail without trying (set by a connection failure).
    open_until: Arc<AtomicI64>,
}

/// How long calls fail fast after a connection failure.
const BREAKER_OPEN_MS: i64 = 1_000;

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Connects (failing when Redis cannot be reached now); afterwards the connection reconnects
    /// by itself whenever Redis comes back.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(settings.url.expose())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(settings.connect_timeout)
            .set_response_timeout(settings.response_timeout)
            // Reconnection attempts back off up to 1 s so recovery is noticed quickly.
            .set_number_of_retries(2)
            .set_max_delay(1_000);
        let manager = tokio::time::timeout(
            settings.connect_timeout.saturating_mul(4),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| RedisStoreError::Timeout(settings.connect_timeout))??;
        Ok(Self {
            client,
            manager,
            prefix: settings.prefix.as_str().into(),
            settings: Arc::new(settings.clone()),
            open_until: Arc::new(AtomicI64::new(0)),
        })
    }

    /// `prefix` + `suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// The prefix every key and the invalidation channel live under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The settings this connection was made with.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A clone of the multiplexed connection for one call.
    pub fn manager(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// The underlying client, for what the multiplexed connection cannot do (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs one Redis call with the response timeout as a hard bound.
    pub async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisStoreError> {
        let now = odock_store::db::now_ms();
        if now < self.open_until.load(Ordering::Relaxed) {
            return Err(RedisStoreError::Unreachable);
        }
        let limit = self.settings.response_timeout;
        let (result, unreachable) = match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => {
                let unreachable = error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.is_timeout();
                (Err(error.into()), unreachable)
            }
            Err(_) => (Err(RedisStoreError::Timeout(limit)), true),
        };
        if unreachable {
            self.open_until
                .store(now.saturating_add(BREAKER_OPEN_MS), Ordering::Relaxed);
        }
        result
    }

    /// `PING`, for readiness checks.
    pub async fn ping(&self) -> Result<(), RedisStoreError> {
        let mut conn = self.manager();
        let reply: String = self
            .bounded(redis::cmd("PING").query_async(&mut conn))
            .await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(RedisStoreError::Reply(reply))
        }
    }
}

/// The `redis` readiness check of `/v1/healthz`.
#[derive(Debug, Clone)]
pub struct RedisHealth {
    conn: RedisConnection,
}

impl RedisHealth {
    /// A readiness check that pings Redis over `conn`.
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn }
    }

    /// `"ok"`, or the error that made the check fail.
    pub async fn check(&self) -> Result<(), String> {
        self.conn.ping().await.map_err(|error| error.to_string())
    }
}
