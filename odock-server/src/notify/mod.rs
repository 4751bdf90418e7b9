//! Notifications: budget and quota threshold crossings, keys about to expire (and, once provider
//! health exists, failing upstreams) become alerts delivered to the organisation's channels —
//! webhooks signed with HMAC-SHA256, e-mail over SMTP — with retries and backoff.
//!
//! Nothing here runs on the request path or under a ledger lock: the ledgers report a crossing to
//! [`ServerAlerts`], which counts it, logs it and hands it to a channel (no await, no I/O). A task
//! stores it as an alert — once per organisation and window and threshold, enforced by the
//! database (`alerts.dedupe_key`), so replicas and restarts never raise it twice — together with one
//! queued delivery per subscribed channel. The deliverer claims due deliveries with a lease, sends
//! them, and marks them delivered, retried later (`base × 2^attempt`, at most an hour) or failed.
//!
//! **What a crash can lose or repeat:** a crossing reported but not yet stored (milliseconds
//! between the settlement and the insert) is lost; a delivery that reached its channel but was not
//! yet marked delivered is sent again once its claim expires (receivers dedupe on the alert `id`
//! and `X-Odock-Delivery`). Nothing delivered and marked is ever sent again.

pub mod email;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use odock_admin::services::notifications::{self as store, ChannelType, DueDelivery};
use odock_core::{BudgetAlerts, LogBudgetAlerts, ThresholdCrossing};
use odock_store::db::{now_ms, Db};
use odock_store::MasterKey;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::{mpsc, Notify};

use crate::metrics::Metrics;
use email::{html_escape, Mailer};

/// How long a claimed delivery stays claimed (a sender that died releases it after this).
const CLAIM_LEASE_MS: i64 = 60_000;
/// The longest the deliverer sleeps between looks at the queue.
const POLL: Duration = Duration::from_secs(5);
/// How often keys are checked for a coming expiry.
const EXPIRY_SCAN: Duration = Duration::from_secs(3_600);
/// Bound on one webhook call.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The signature header of webhook bodies.
pub const SIGNATURE_HEADER: &str = "x-odock-signature";

/// How the notifier retries and when it warns about keys.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// First retry delay of a failed delivery; it doubles with each attempt.
    pub retry_base: Duration,
    /// Delivery attempts before a notification is given up.
    pub max_attempts: u32,
    /// Warn this long before a key expires (`None`: never).
    pub key_expiry_warning: Option<Duration>,
}

/// Something worth telling an organisation about.
#[derive(Debug, Clone)]
pub struct AlertEvent {
    /// The organisation told.
    pub organisation_id: String,
    /// The event name (e.g. `apikey.expiring`).
    pub event: &'static str,
    /// One alert per organisation and key, however often it is raised.
    pub dedupe_key: String,
    /// The event's JSON payload.
    pub data: Value,
}

impl AlertEvent {
    /// A budget or quota window crossed a threshold.
    pub fn threshold(crossing: &ThresholdCrossing) -> Self {
        let window = crossing.window_start.to_rfc3339();
        match crossing.quota_metric {
            None => Self {
                organisation_id: crossing.organisation_id.clone(),
                event: store::BUDGET_THRESHOLD,
                dedupe_key: format!(
                    "budget:{}:{}:{}",
                    crossing.budget_id, window, crossing.threshold
                ),
                data: json!({
                    "budgetId": crossing.budget_id,
                    "budgetName": crossing.budget_name,
                    "windowId": format!("{}:{}", crossing.budget_id, window),
                    "windowStart": window,
                    "threshold": crossing.threshold,
                    "usedNanos": crossing.used_nanos,
                    "limitNanos": crossing.amount_nanos,
                }),
            },
            Some(metric) => Self {
                organisation_id: crossing.organisation_id.clone(),
                event: store::QUOTA_THRESHOLD,
                dedupe_key: format!(
                    "quota:{}:{}:{}",
                    crossing.budget_id, window, crossing.threshold
                ),
                data: json!({
                    "quotaId": crossing.budget_id,
                    "quotaName": crossing.budget_name,
                    "metric": metric.as_str(),
                    "windowId": format!("{}:{}", crossing.budget_id, window),
                    "windowStart": window,
                    "threshold": crossing.threshold,
                    "used": crossing.used_nanos,
                    "limit": crossing.amount_nanos,
                }),
            },
        }
    }

    /// An upstream provider is failing: its circuit opened (once per opening).
    pub fn provider_unhealthy(
        organisation_id: &str,
        provider_id: &str,
        provider_name: &str,
        since: chrono::DateTime<Utc>,
        detail: &str,
    ) -> Self {
        Self {
            organisation_id: organisation_id.to_owned(),
            event: store::PROVIDER_UNHEALTHY,
            dedupe_key: format!("provider:{provider_id}:{}", since.to_rfc3339()),
            data: json!({"providerId": provider_id, "providerName": provider_name,
                         "since": since.to_rfc3339(), "detail": detail}),
        }
    }
}

/// The circuit breakers' observer: when a provider's circuit opens, its organisation is told
/// (`provider.unhealthy`). The lookup of the provider's owner runs in a task of its own, off the
/// request path. Provider-key circuits are shown by the health API but raise no alert: a failing
/// key is usually one of several, and the provider's own circuit reports an outage.
pub fn circuit_alerts(pool: Db, alerter: Alerter) -> odock_core::routing::OnOpen {
    Arc::new(move |key, since, error| {
        let odock_core::routing::BreakerKey::Provider(provider) = key else {
            return;
        };
        let (pool, alerter) = (pool.clone(), alerter.clone());
        let (provider, detail) = (provider.to_string(), error.to_owned());
        tokio::spawn(async move {
            match store::provider_owner(&pool, &provider).await {
                Ok(Some((organisation, name))) => alerter.raise(AlertEvent::provider_unhealthy(
                    &organisation,
                    &provider,
                    &name,
                    since,
                    &detail,
                )),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not look up a failing provider"),
            }
        });
    })
}

/// A handle to raise alerts (cheap to clone; never blocks).
#[derive(Clone, Debug)]
pub struct Alerter {
    tx: mpsc::UnboundedSender<AlertEvent>,
}

impl Alerter {
    /// Queues `event` for storing and delivery. Never blocks; lost only if the notifier stopped.
    pub fn raise(&self, event: AlertEvent) {
        if self.tx.send(event).is_err() {
            tracing::warn!("notifier stopped: alert not raised");
        }
    }
}

/// The [`BudgetAlerts`] sink of the server: counts and logs every crossing and raises its alert.
pub struct ServerAlerts {
    metrics: Arc<Metrics>,
    alerter: Alerter,
}

impl ServerAlerts {
    /// Counts crossings in `metrics` and raises their alerts through `alerter`.
    pub fn new(metrics: Arc<Metrics>, alerter: Alerter) -> Self {
        Self { metrics, alerter }
    }
}

impl BudgetAlerts for ServerAlerts {
    fn threshold_crossed(&self, crossing: &ThresholdCrossing) {
        self.metrics.threshold_crossed(crossing);
        LogBudgetAlerts.threshold_crossed(crossing);
        self.alerter.raise(AlertEvent::threshold(crossing));
    }
}

/// The running notifier: raises alerts, delivers them, looks for expiring keys.
pub struct Notifier {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

struct Deliverer {
    pool: Db,
    master_key: Arc<MasterKey>,
    http: odock_providers::UpstreamClient,
    mailer: Option<Mailer>,
    settings: NotifySettings,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

impl Notifier {
    /// Starts the notifier's tasks; returns the handle to raise alerts with. `wake` is shared with
    /// the admin API (a test send wakes the deliverer).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        pool: Db,
        master_key: Arc<MasterKey>,
        http: odock_providers::UpstreamClient,
        mailer: Option<Mailer>,
        settings: NotifySettings,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> (Self, Alerter) {
        let (tx, rx) = mpsc::unbounded_channel();
        let alerter = Alerter { tx };
        let deliverer = Arc::new(Deliverer {
            pool: pool.clone(),
            master_key,
            http,
            mailer,
            settings: settings.clone(),
            metrics: metrics.clone(),
            wake: wake.clone(),
        });
        let mut tasks = vec![
            tokio::spawn(store_alerts(pool.clone(), rx, wake.clone(), metrics)),
            tokio::spawn(deliver_loop(deliverer)),
        ];
        if let Some(warning) = settings.key_expiry_warning {
            tasks.push(tokio::spawn(expiry_loop(pool, alerter.clone(), warning)));
        }
        (Self { tasks }, alerter)
    }

    /// Aborts the notifier's loops.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// The notifier's loops (alert store, delivery, expiry scan), for the app's
    /// [`Background`](odock_core::Background) to stop and await.
    pub fn take_tasks(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut self.tasks)
    }
}

/// Stores each raised alert (retrying while the database is away) and wakes the deliverer.
async fn store_alerts(
    pool: Db,
    mut rx: mpsc::UnboundedReceiver<AlertEvent>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    while let Some(event) = rx.recv().await {
        let mut delay = Duration::from_millis(200);
        for attempt in 0..8 {
            match store::raise(
                &pool,
                &event.organisation_id,
                event.event,
                &event.dedupe_key,
                &event.data,
                None,
            )
            .await
            {
                Ok(Some(_)) => {
                    metrics.alert_raised(event.event);
                    wake.notify_one();
                    break;
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, attempt, event = event.event, "could not store an alert; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Sends due deliveries; sleeps until the next one is due, a wake-up, or [`POLL`].
async fn deliver_loop(deliverer: Arc<Deliverer>) {
    loop {
        let now = now_ms();
        match store::claim_due(&deliverer.pool, now, CLAIM_LEASE_MS, 32).await {
            Ok(due) if !due.is_empty() => {
                let sends = due.into_iter().map(|delivery| {
                    let deliverer = deliverer.clone();
                    async move { deliverer.deliver(delivery).await }
                });
                futures::future::join_all(sends).await;
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not read the notification queue"),
        }
        let sleep = match store::next_due(&deliverer.pool).await {
            Ok(Some(due)) => {
                Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(POLL)
            }
            _ => POLL,
        };
        tokio::select! {
            () = deliverer.wake.notified() => {}
            () = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
        }
    }
}

impl Deliverer {
    async fn deliver(&self, delivery: DueDelivery) {
        let kind = delivery
            .channel
            .as_ref()
            .map_or("deleted", |c| match c.channel_type {
                ChannelType::Webhook => "webhook",
                ChannelType::Email => "email",
            });
        let result = match &delivery.channel {
            None => Err(("the channel was deleted".to_owned(), false)),
            Some(channel) => match channel.channel_type {
                ChannelType::Webhook => self.send_webhook(&delivery, channel).await,
                ChannelType::Email => self
                    .send_email(&delivery, channel)
                    .await
                    .map_err(|e| (e, true)),
            },
        };
        let outcome = match result {
            Ok(()) => match store::mark_delivered(&self.pool, &delivery.id, now_ms()).await {
                Ok(()) => "delivered",
                Err(error) => {
                    tracing::warn!(%error, "a delivered notification could not be marked");
                    "delivered"
                }
            },
            Err((error, retryable)) => {
                let attempt = u32::try_from(delivery.attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                let retry_at = (retryable && attempt < self.settings.max_attempts).then(|| {
                    let backoff = self
                        .settings
                        .retry_base
                        .saturating_mul(1u32 << (attempt - 1).min(20))
                        .min(Duration::from_secs(3_600));
                    now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX / 2)
                });
                tracing::warn!(alert = %delivery.alert.id, channel = kind, attempt, %error, retry = retry_at.is_some(), "notification not delivered");
                if let Err(error) =
                    store::mark_failed_attempt(&self.pool, &delivery.id, &error, retry_at).await
                {
                    tracing::warn!(%error, "a failed notification could not be marked");
                }
                if retry_at.is_some() {
                    "retried"
                } else {
                    "failed"
                }
            }
        };
        self.metrics.notification(kind, outcome);
    }

    /// POSTs the alert, signed when the channel has a secret. Every non-2xx answer is retried.
    async fn send_webhook(
        &self,
        delivery: &DueDelivery,
        channel: &store::ChannelTarget,
    ) -> Result<(), (String, bool)> {
        let url = channel
            .url
            .as_deref()
            .ok_or(("the webhook has no url".to_owned(), false))?;
        let body = webhook_body(&delivery.alert);
        let mut request = self
            .http
            .post(url)
            .map_err(|e| (odock_core::GatewayError::from(e).to_string(), false))?
            .timeout(WEBHOOK_TIMEOUT)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "odock-notifier")
            .header("x-odock-event", delivery.alert.event.as_str())
            .header("x-odock-delivery", delivery.id.as_str());
        if let Some(secret) = store::open_secret(&self.master_key, channel) {
            request = request.header(SIGNATURE_HEADER, sign(secret.expose().as_bytes(), &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| (transport_error(&e), true))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err((
                format!("the webhook answered HTTP {}", response.status().as_u16()),
                true,
            ))
        }
    }

    async fn send_email(
        &self,
        delivery: &DueDelivery,
        channel: &store::ChannelTarget,
    ) -> Result<(), String> {
        let mailer = self
            .mailer
            .as_ref()
            .ok_or_else(|| "e-mail is not configured (ODOCK_SMTP_URL)".to_owned())?;
        let (subject, text) = describe(&delivery.alert);
        let html = format!(
            "<p>{}</p><pre>{}</pre>",
            html_escape(&text),
            html_escape(&serde_json::to_string_pretty(&delivery.alert.data).unwrap_or_default())
        );
        let text = format!(
            "{text}\n\n{}\n\nAlert {} ({}) for organisation {}.",
            serde_json::to_string_pretty(&delivery.alert.data).unwrap_or_default(),
            delivery.alert.id,
            delivery.alert.event,
            delivery.alert.organisation_id
        );
        mailer.send(&channel.emails, &subject, text, html).await
    }
}

/// The webhook body: `{"id","event","organisationId","occurredAt","data"}`.
pub fn webhook_body(alert: &store::Alert) -> Vec<u8> {
    json!({
        "id": alert.id,
        "event": alert.event,
        "organisationId": alert.organisation_id,
        "occurredAt": alert.occurred_at.to_rfc3339(),
        "data": alert.data,
    })
    .to_string()
    .into_bytes()
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A transport failure without the URL (it may carry a tenant's token in its path).
fn transport_error(error: &reqwest::Error) -> String {
    if odock_providers::client::egress_refusal(error).is_some() {
        "the webhook address is not allowed (ODOCK_EGRESS_ALLOW)".to_owned()
    } else if error.is_timeout() {
        "the webhook timed out".to_owned()
    } else if error.is_connect() {
        "could not connect to the webhook".to_owned()
    } else {
        "the webhook call failed".to_owned()
    }
}

/// Subject and first line of an alert's e-mail.
fn describe(alert: &store::Alert) -> (String, String) {
    let data = &alert.data;
    let text = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let number = |key: &str| data.get(key).map(Value::to_string).unwrap_or_default();
    match alert.event.as_str() {
        store::BUDGET_THRESHOLD => (
            format!("Odock: budget \"{}\" reached {}%", text("budgetName"), number("threshold")),
            format!(
                "Budget \"{}\" has used {} of {} nanos USD in the window starting {} ({}% threshold).",
                text("budgetName"),
                number("usedNanos"),
                number("limitNanos"),
                text("windowStart"),
                number("threshold")
            ),
        ),
        store::QUOTA_THRESHOLD => (
            format!("Odock: quota \"{}\" reached {}%", text("quotaName"), number("threshold")),
            format!(
                "Quota \"{}\" ({}) has used {} of {} in the window starting {}.",
                text("quotaName"),
                text("metric"),
                number("used"),
                number("limit"),
                text("windowStart")
            ),
        ),
        store::APIKEY_EXPIRING => (
            format!("Odock: API key \"{}\" expires soon", text("apiKeyName")),
            format!("API key \"{}\" expires at {}.", text("apiKeyName"), text("expiresAt")),
        ),
        store::PROVIDER_UNHEALTHY => (
            format!("Odock: provider \"{}\" is failing", text("providerName")),
            format!(
                "Provider \"{}\" ({}) has failed repeatedly since {}; requests skip it until it recovers. Last error: {}",
                text("providerName"),
                text("providerId"),
                text("since"),
                text("detail")
            ),
        ),
        _ => ("Odock: test notification".to_owned(), "This is a test notification from Odock.".to_owned()),
    }
}

/// Raises `apikey.expiring` once per key and expiry, `warning` ahead of it.
async fn expiry_loop(pool: Db, alerter: Alerter, warning: Duration) {
    let mut every = tokio::time::interval(EXPIRY_SCAN);
    loop {
        every.tick().await;
        let now = now_ms();
        let until = now + i64::try_from(warning.as_millis()).unwrap_or(i64::MAX / 2);
        match store::keys_expiring(&pool, now, until).await {
            Ok(keys) => {
                for (organisation_id, key_id, name, expires_at) in keys {
                    let at = Utc
                        .timestamp_millis_opt(expires_at)
                        .single()
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default();
                    alerter.raise(AlertEvent {
                        organisation_id,
                        event: store::APIKEY_EXPIRING,
                        dedupe_key: format!("apikey:{key_id}:{expires_at}"),
                        data: json!({"apiKeyId": key_id, "apiKeyName": name, "expiresAt": at}),
                    });
                }
            }
            Err(error) => tracing::warn!(%error, "could not look for expiring keys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_documented_header() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published vector.
        assert_eq!(
            sign(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
