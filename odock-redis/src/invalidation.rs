//! Cache invalidation across replicas: [`RedisInvalidator`] evicts locally at once and publishes
//! the command on `{prefix}cache-invalidation`; every replica's subscriber
//! ([`RedisInvalidator::spawn_subscriber`]) applies the commands the others published.
//!
//! Messages are `{"origin":"<replica id>","commands":[{"kind":"api_key","id":"…"}]}`; a replica
//! skips its own (it applied them before publishing). Publishing happens on a background task in
//! order, batching what accumulated, so admin writes never wait on Redis. The subscriber reconnects
//! after a Redis outage; commands published while it was away are lost to it, and the caches'
//! TTLs bound how long it may serve what they would have evicted.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use odock_core::{CacheInvalidator, InvalidationCommand};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::connection::RedisConnection;

/// The channel, under the prefix.
pub const CHANNEL: &str = "cache-invalidation";

/// Commands published in one message at most.
const MAX_BATCH: usize = 256;

/// Delays between attempts to publish one batch while Redis is unreachable.
const PUBLISH_RETRIES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// Pause between attempts to (re)subscribe while Redis is unreachable.
const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    origin: String,
    commands: Vec<InvalidationCommand>,
}

/// Evicts from the local caches and tells the other replicas to do the same.
pub struct RedisInvalidator {
    local: Arc<dyn CacheInvalidator>,
    conn: RedisConnection,
    origin: Arc<str>,
    outbox: mpsc::UnboundedSender<InvalidationCommand>,
    publisher: JoinHandle<()>,
}

impl std::fmt::Debug for RedisInvalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInvalidator")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisInvalidator {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

impl RedisInvalidator {
    /// `local` holds this replica's caches. Must be called inside a tokio runtime (it starts the
    /// publisher task).
    pub fn new(conn: RedisConnection, local: Arc<dyn CacheInvalidator>) -> Self {
        let origin: Arc<str> = odock_core::ids::random_hex(16).into();
        let (outbox, pending) = mpsc::unbounded_channel();
        let publisher = tokio::spawn(publish(conn.clone(), origin.clone(), pending));
        Self {
            local,
            conn,
            origin,
            outbox,
            publisher,
        }
    }

    /// This replica's id in published messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Starts applying the commands other replicas publish to this replica's caches.
    pub fn spawn_subscriber(&self) -> InvalidationSubscriber {
        let (subscribed, watcher) = watch::channel(0_u64);
        let task = tokio::spawn(subscribe(
            self.conn.clone(),
            self.origin.clone(),
            self.local.clone(),
            subscribed,
        ));
        InvalidationSubscriber { task, watcher }
    }
}

impl CacheInvalidator for RedisInvalidator {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.local.invalidate(command);
        if self.outbox.send(command.clone()).is_err() {
            tracing::warn!(
                ?command,
                "invalidation publisher stopped; other replicas rely on cache TTLs"
            );
        }
    }
}

/// The background subscriber; stops when dropped.
#[derive(Debug)]
pub struct InvalidationSubscriber {
    task: JoinHandle<()>,
    watcher: watch::Receiver<u64>,
}

impl InvalidationSubscriber {
    /// Waits until the subscriber has subscribed `times` times in total (1 = the first
    /// subscription; more after reconnections).
    pub async fn subscribed(&self, times: u64) {
        let mut watcher = self.watcher.clone();
        // Err only when the task ended, which `Drop` alone does.
        let _ = watcher.wait_for(|count| *count >= times).await;
    }
}

impl Drop for InvalidationSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn publish(
    conn: RedisConnection,
    origin: Arc<str>,
    mut pending: mpsc::UnboundedReceiver<InvalidationCommand>,
) {
    let channel = conn.key(CHANNEL);
    let mut batch = Vec::new();
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let message = Message {
            origin: origin.to_string(),
            commands: std::mem::take(&mut batch),
        };
        let payload = match serde_json::to_string(&message) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "invalidation could not be encoded");
                continue;
            }
        };
        let mut delays = PUBLISH_RETRIES.iter();
        loop {
            let mut manager = conn.manager();
            let sent: Result<i64, _> = conn
                .bounded(
                    redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(&payload)
                        .query_async(&mut manager),
                )
                .await;
            match (sent, delays.next()) {
                (Ok(_), _) => break,
                (Err(error), Some(delay)) => {
                    tracing::debug!(%error, "invalidation publish failed; retrying");
                    tokio::time::sleep(*delay).await;
                }
                (Err(error), None) => {
                    tracing::warn!(%error, commands = message.commands.len(), "invalidation not published; other replicas rely on cache TTLs");
                    break;
                }
            }
        }
    }
}

async fn subscribe(
    conn: RedisConnection,
    origin: Arc<str>,
    local: Arc<dyn CacheInvalidator>,
    subscribed: watch::Sender<u64>,
) {
    let channel = conn.key(CHANNEL);
    loop {
        match listen(&conn, &channel, &origin, local.as_ref(), &subscribed).await {
            Ok(()) => tracing::warn!("invalidation subscription ended; resubscribing"),
            Err(error) => tracing::warn!(%error, "invalidation subscription failed; retrying"),
        }
        tokio::time::sleep(RESUBSCRIBE_EVERY).await;
    }
}

/// One subscription: applies messages until the connection is lost.
async fn listen(
    conn: &RedisConnection,
    channel: &str,
    origin: &str,
    local: &dyn CacheInvalidator,
    subscribed: &watch::Sender<u64>,
) -> Result<(), super::RedisStoreError> {
    let mut pubsub = conn.bounded(conn.client().get_async_pubsub()).await?;
    conn.bounded(pubsub.subscribe(channel)).await?;
    if *subscribed.borrow() > 0 {
        tracing::warn!("resubscribed to cache invalidations; commands published meanwhile were missed (cache TTLs apply)");
    }
    subscribed.send_modify(|count| *count += 1);
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload: String = match message.get_payload() {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "unreadable invalidation message");
                continue;
            }
        };
        match serde_json::from_str::<Message>(&payload) {
            Ok(message) if message.origin == origin => {}
            Ok(message) => {
                for command in &message.commands {
                    local.invalidate(command);
                }
            }
            Err(error) => tracing::warn!(%error, "malformed invalidation message"),
        }
    }
    Ok(())
}
