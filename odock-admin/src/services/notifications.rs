//! Notification channels (`/api/organisations/{id}/notification-channels`), the alerts raised for
//! an organisation (`/api/organisations/{id}/alerts`) and the delivery queue the server's notifier
//! works through.
//!
//! An alert is stored once per organisation and `dedupe_key` (a budget window and threshold, a
//! key's expiry), whoever raises it and however often, and fans out into one delivery per enabled
//! channel subscribed to its event. Deliveries are claimed with a lease (so two replicas never send
//! the same one at once, and one whose sender died is retried), marked delivered, retried later or
//! given up. A webhook's secret is sealed with the master key and never returned.

use std::fmt;

use chrono::{DateTime, Utc};
use odock_core::new_object_id;
use odock_store::crypto::MasterKey;
use odock_store::db::{from_ms, now_ms, Db, DbRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use super::{list_page, required_text, AdminError, Page, PageRequest};

/// The events a channel may subscribe to (DECISIONS.md "Observability names").
pub const EVENTS: &[&str] = &[
    BUDGET_THRESHOLD,
    QUOTA_THRESHOLD,
    APIKEY_EXPIRING,
    PROVIDER_UNHEALTHY,
];
/// The event raised when spend crosses one of a budget's thresholds.
pub const BUDGET_THRESHOLD: &str = "budget.threshold";
/// The event raised when usage crosses one of a quota's thresholds.
pub const QUOTA_THRESHOLD: &str = "quota.threshold";
/// The event raised when an active API key is about to expire.
pub const APIKEY_EXPIRING: &str = "apikey.expiring";
/// The event raised when a provider is found unhealthy.
pub const PROVIDER_UNHEALTHY: &str = "provider.unhealthy";
/// A test send (`POST …/notification-channels/{id}/test`): goes to that channel only.
pub const TEST: &str = "notification.test";

/// Most addresses of one EMAIL channel.
const MAX_EMAILS: usize = 20;

/// How a notification channel delivers alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChannelType {
    /// Alerts are POSTed as JSON to the channel's `url` (signed when it has a secret).
    Webhook,
    /// Alerts are e-mailed to the channel's `emails`.
    Email,
}

impl ChannelType {
    /// The stored and wire name: `WEBHOOK` or `EMAIL`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChannelType::Webhook => "WEBHOOK",
            ChannelType::Email => "EMAIL",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "WEBHOOK" => Some(ChannelType::Webhook),
            "EMAIL" => Some(ChannelType::Email),
            _ => None,
        }
    }
}

/// A channel as the API returns it (the secret never; only whether one is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationChannel {
    /// The channel's id.
    pub id: String,
    /// The organisation the channel belongs to.
    pub organisation_id: String,
    /// A display name.
    pub name: String,
    /// How alerts are delivered: `WEBHOOK` or `EMAIL`.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// WEBHOOK: where alerts are POSTed; `null` for EMAIL channels.
    #[schema(required = true)]
    pub url: Option<String>,
    /// EMAIL: the addresses alerts go to; empty for WEBHOOK channels.
    pub emails: Vec<String>,
    /// Whether a webhook signing secret is set (the secret itself is never returned).
    pub has_secret: bool,
    /// Subscribed events (all of [`EVENTS`] when created without a list).
    pub events: Vec<String>,
    /// Whether alerts are delivered to the channel (test sends go regardless).
    pub enabled: bool,
    /// When the channel was created.
    pub created_at: DateTime<Utc>,
    /// When the channel was last changed.
    pub updated_at: DateTime<Utc>,
}

/// `POST …/notification-channels`. `Debug` hides the secret.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewNotificationChannel {
    /// A display name (trimmed, 1–200 characters).
    pub name: String,
    /// `WEBHOOK` (needs `url`) or `EMAIL` (needs `emails`); cannot be changed later.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// WEBHOOK: where alerts are POSTed (egress policy applies).
    #[serde(default)]
    pub url: Option<String>,
    /// EMAIL: 1 to 20 addresses alerts go to.
    #[serde(default)]
    pub emails: Option<Vec<String>>,
    /// Signs webhook bodies (`X-Odock-Signature`); write-only.
    #[serde(default)]
    #[schema(write_only)]
    pub secret: Option<String>,
    /// Events to subscribe to (see `EVENTS`); absent or empty: every event.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Whether alerts are delivered to the channel; default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl fmt::Debug for NewNotificationChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewNotificationChannel")
            .field("name", &self.name)
            .field("type", &self.channel_type)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `PATCH …/notification-channels/{id}` (absent = unchanged; `secret: null` removes it).
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationChannelPatch {
    /// A new display name (trimmed, 1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// WEBHOOK: a new URL (http(s), no credentials, at most 2048 characters).
    #[serde(default)]
    pub url: Option<String>,
    /// EMAIL: new addresses (1 to 20), replacing the old ones.
    #[serde(default)]
    pub emails: Option<Vec<String>>,
    /// WEBHOOK: a new signing secret (16–512 characters); `null` removes it. Write-only.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(write_only)]
    pub secret: Option<Option<String>>,
    /// New subscribed events, replacing the old ones; empty: every event.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Enables or disables delivery to the channel.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl fmt::Debug for NotificationChannelPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationChannelPatch")
            .field("name", &self.name)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

const COLUMNS: &str = "id, organisation_id, name, channel_type, url, emails, \
    secret_envelope IS NOT NULL AS has_secret, events, enabled, created_at, updated_at";

/// A stored JSON list (events, e-mails). Written only by this module; should a row ever hold
/// something else, the channel is shown (and delivers) with an empty list, and the log says why.
fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|error| {
        tracing::warn!(%error, "a notification channel's stored list is not a JSON list of strings");
        Vec::new()
    })
}

fn decode(row: &DbRow) -> Result<NotificationChannel, sqlx::Error> {
    let kind: String = row.try_get("channel_type")?;
    Ok(NotificationChannel {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        channel_type: ChannelType::parse(&kind).unwrap_or(ChannelType::Webhook),
        url: row.try_get("url")?,
        emails: json_list(&row.try_get::<String, _>("emails")?),
        has_secret: row
            .try_get::<bool, _>("has_secret")
            .or_else(|_| row.try_get::<i64, _>("has_secret").map(|v| v != 0))?,
        events: json_list(&row.try_get::<String, _>("events")?),
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

fn check_events(events: Vec<String>) -> Result<Vec<String>, AdminError> {
    if events.is_empty() {
        return Ok(EVENTS.iter().map(|e| (*e).to_owned()).collect());
    }
    let mut checked = Vec::new();
    for event in events {
        if !EVENTS.contains(&event.as_str()) {
            return Err(AdminError::field(
                "events",
                format!(
                    "unknown event `{event}` (expected one of {})",
                    EVENTS.join(", ")
                ),
            ));
        }
        if !checked.contains(&event) {
            checked.push(event);
        }
    }
    Ok(checked)
}

fn check_emails(emails: Vec<String>) -> Result<Vec<String>, AdminError> {
    if emails.is_empty() || emails.len() > MAX_EMAILS {
        return Err(AdminError::field(
            "emails",
            format!("an EMAIL channel needs 1 to {MAX_EMAILS} addresses"),
        ));
    }
    emails
        .into_iter()
        .map(|email| {
            let email = email.trim().to_owned();
            let valid = email.len() <= 254
                && !email.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ','
                })
                && email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && domain.contains('.') && !domain.contains('@')
                });
            if valid {
                Ok(email)
            } else {
                Err(AdminError::field("emails", "not an e-mail address"))
            }
        })
        .collect()
}

/// A webhook URL: http(s), a host, no credentials, at most 2,048 characters. Whether the host may
/// be reached is the egress policy's call (checked by the API at write time for literal addresses
/// and by the sender at connect time for every address).
fn check_url(url: &str) -> Result<String, AdminError> {
    let url = url.trim();
    if url.len() > 2048 {
        return Err(AdminError::field("url", "url is too long"));
    }
    let parsed = reqwest_url(url).ok_or_else(|| AdminError::field("url", "not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(AdminError::field("url", "expected http(s)://host/path"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(AdminError::field(
            "url",
            "url must not carry credentials (use secret)",
        ));
    }
    Ok(url.to_owned())
}

fn reqwest_url(url: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(url).ok()
}

fn check_secret(secret: &str) -> Result<&str, AdminError> {
    let secret = secret.trim();
    if secret.len() < 16 || secret.len() > 512 {
        return Err(AdminError::field(
            "secret",
            "secret must be 16 to 512 characters",
        ));
    }
    Ok(secret)
}

/// Creates a channel, sealing a webhook secret with `master_key`. Errors (400): a bad name,
/// unknown events, a WEBHOOK without a valid `url` or with `emails`, an EMAIL channel without
/// 1–20 addresses or with `url`/`secret`, a secret outside 16–512 characters.
pub async fn create(
    pool: &Db,
    master_key: &MasterKey,
    organisation_id: &str,
    input: NewNotificationChannel,
) -> Result<NotificationChannel, AdminError> {
    super::organisations::ensure_exists(pool, organisation_id).await?;
    let name = required_text("name", &input.name, 200)?;
    let events = check_events(input.events.unwrap_or_default())?;
    let (url, emails, envelope) = match input.channel_type {
        ChannelType::Webhook => {
            let url = check_url(
                input
                    .url
                    .as_deref()
                    .ok_or_else(|| AdminError::field("url", "a WEBHOOK channel needs url"))?,
            )?;
            if input.emails.is_some() {
                return Err(AdminError::field("emails", "emails are for EMAIL channels"));
            }
            let envelope = match &input.secret {
                Some(secret) => Some(
                    master_key
                        .seal(check_secret(secret)?)
                        .map_err(|_| AdminError::field("secret", "secret could not be sealed"))?,
                ),
                None => None,
            };
            (Some(url), Vec::new(), envelope)
        }
        ChannelType::Email => {
            if input.url.is_some() || input.secret.is_some() {
                return Err(AdminError::field(
                    "url",
                    "url and secret are for WEBHOOK channels",
                ));
            }
            let emails = check_emails(input.emails.unwrap_or_default())?;
            (None, emails, None)
        }
    };
    let now = now_ms();
    let id = new_object_id();
    sqlx::query(
        "INSERT INTO notification_channels (id, organisation_id, name, channel_type, url, emails, \
         secret_envelope, events, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&name)
    .bind(input.channel_type.as_str())
    .bind(url)
    .bind(serde_json::to_string(&emails).unwrap_or_else(|_| "[]".into()))
    .bind(envelope)
    .bind(serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(input.enabled.unwrap_or(true)))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    get(pool, organisation_id, &id).await
}

/// The channel `id` of the organisation; 404 when it is not there.
pub async fn get(
    pool: &Db,
    organisation_id: &str,
    id: &str,
) -> Result<NotificationChannel, AdminError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notification_channels WHERE id = $1 AND organisation_id = $2"
    );
    match sqlx::query(&sql)
        .bind(id)
        .bind(organisation_id)
        .fetch_optional(pool)
        .await?
    {
        Some(row) => Ok(decode(&row)?),
        None => Err(AdminError::NotFound("notification channel")),
    }
}

/// One page of the organisation's channels.
pub async fn list(
    pool: &Db,
    organisation_id: &str,
    page: &PageRequest,
) -> Result<Page<NotificationChannel>, AdminError> {
    let select = format!("SELECT {COLUMNS} FROM notification_channels");
    list_page(
        pool,
        &select,
        &[("organisation_id", Some(organisation_id))],
        page,
        decode,
        |c| c.id.as_str(),
    )
    .await
}

/// Applies `patch` (absent fields stay; the type never changes); 404 when the channel is not in
/// the organisation, 400 on the same checks as [`create`].
pub async fn update(
    pool: &Db,
    master_key: &MasterKey,
    organisation_id: &str,
    id: &str,
    patch: NotificationChannelPatch,
) -> Result<NotificationChannel, AdminError> {
    let current = get(pool, organisation_id, id).await?;
    let name = match &patch.name {
        Some(name) => required_text("name", name, 200)?,
        None => current.name.clone(),
    };
    let events = match patch.events {
        Some(events) => check_events(events)?,
        None => current.events.clone(),
    };
    let (url, emails) = match current.channel_type {
        ChannelType::Webhook => {
            if patch.emails.is_some() {
                return Err(AdminError::field("emails", "emails are for EMAIL channels"));
            }
            let url = match &patch.url {
                Some(url) => Some(check_url(url)?),
                None => current.url.clone(),
            };
            (url, Vec::new())
        }
        ChannelType::Email => {
            if patch.url.is_some() || matches!(patch.secret, Some(Some(_))) {
                return Err(AdminError::field(
                    "url",
                    "url and secret are for WEBHOOK channels",
                ));
            }
            let emails = match patch.emails {
                Some(emails) => check_emails(emails)?,
                None => current.emails.clone(),
            };
            (None, emails)
        }
    };
    let enabled = patch.enabled.unwrap_or(current.enabled);
    // Checked and sealed before anything is written: a bad secret must not leave the rest applied.
    let replace_secret = patch.secret.is_some();
    let envelope = match patch.secret.flatten() {
        Some(secret) => Some(
            master_key
                .seal(check_secret(&secret)?)
                .map_err(|_| AdminError::field("secret", "secret could not be sealed"))?,
        ),
        None => None,
    };
    let now = now_ms();
    sqlx::query(
        "UPDATE notification_channels SET name = $1, url = $2, emails = $3, events = $4, enabled = $5, \
         updated_at = $6, \
         secret_envelope = CASE WHEN $9 = 1 THEN $10 ELSE secret_envelope END \
         WHERE id = $7 AND organisation_id = $8",
    )
    .bind(&name)
    .bind(url)
    .bind(serde_json::to_string(&emails).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(enabled))
    .bind(now)
    .bind(id)
    .bind(organisation_id)
    .bind(i64::from(replace_secret))
    .bind(envelope)
    .execute(pool)
    .await?;
    get(pool, organisation_id, id).await
}

/// Deletes the channel; 404 when it is not in the organisation.
pub async fn delete(pool: &Db, organisation_id: &str, id: &str) -> Result<(), AdminError> {
    let deleted =
        sqlx::query("DELETE FROM notification_channels WHERE id = $1 AND organisation_id = $2")
            .bind(id)
            .bind(organisation_id)
            .execute(pool)
            .await?;
    if deleted.rows_affected() == 0 {
        return Err(AdminError::NotFound("notification channel"));
    }
    Ok(())
}

/// One alert with what happened to it on each channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// The alert's id.
    pub id: String,
    /// The organisation the alert was raised for.
    pub organisation_id: String,
    /// What happened: one of `EVENTS` (or `notification.test` for a test send).
    pub event: String,
    /// The event's details (event-specific JSON).
    pub data: Value,
    /// When the alert was raised.
    pub occurred_at: DateTime<Utc>,
    /// One delivery per channel the alert was queued for.
    pub deliveries: Vec<AlertDelivery>,
}

/// One channel's delivery of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertDelivery {
    /// The delivery's id.
    pub id: String,
    /// The channel the alert is delivered to.
    pub channel_id: String,
    /// `WEBHOOK` or `EMAIL`.
    pub channel_type: String,
    /// `PENDING`, `SENDING`, `DELIVERED` or `FAILED`.
    pub status: String,
    /// Sending attempts made so far.
    pub attempts: i64,
    /// The error of the last failed attempt (at most 500 characters); `null` after success.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When the alert reached the channel; `null` until then.
    #[schema(required = true)]
    pub delivered_at: Option<DateTime<Utc>>,
}

fn decode_alert(row: &DbRow) -> Result<Alert, sqlx::Error> {
    Ok(Alert {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        event: row.try_get("event")?,
        data: serde_json::from_str(&row.try_get::<String, _>("data")?).unwrap_or(Value::Null),
        occurred_at: from_ms(row.try_get("occurred_at")?),
        deliveries: Vec::new(),
    })
}

fn decode_delivery(row: &DbRow) -> Result<(String, AlertDelivery), sqlx::Error> {
    Ok((
        row.try_get("alert_id")?,
        AlertDelivery {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            channel_type: row.try_get("channel_type")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            delivered_at: row.try_get::<Option<i64>, _>("delivered_at")?.map(from_ms),
        },
    ))
}

const ALERT_COLUMNS: &str = "id, organisation_id, event, data, occurred_at";
const DELIVERY_COLUMNS: &str =
    "id, alert_id, channel_id, channel_type, status, attempts, last_error, delivered_at";

/// `GET …/alerts`: the organisation's alerts (oldest first, by id) with their deliveries.
pub async fn list_alerts(
    pool: &Db,
    organisation_id: &str,
    page: &PageRequest,
) -> Result<Page<Alert>, AdminError> {
    let select = format!("SELECT {ALERT_COLUMNS} FROM alerts");
    let mut page = list_page(
        pool,
        &select,
        &[("organisation_id", Some(organisation_id))],
        page,
        decode_alert,
        |a| a.id.as_str(),
    )
    .await?;
    for alert in &mut page.data {
        alert.deliveries = deliveries_of(pool, &alert.id).await?;
    }
    Ok(page)
}

async fn deliveries_of(pool: &Db, alert_id: &str) -> Result<Vec<AlertDelivery>, AdminError> {
    let sql =
        format!("SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE alert_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql).bind(alert_id).fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(decode_delivery)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// The alert `id` of the organisation with its deliveries; 404 when it is not there.
pub async fn get_alert(pool: &Db, organisation_id: &str, id: &str) -> Result<Alert, AdminError> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1 AND organisation_id = $2");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(organisation_id)
        .fetch_optional(pool)
        .await?
        .ok_or(AdminError::NotFound("alert"))?;
    let mut alert = decode_alert(&row)?;
    alert.deliveries = deliveries_of(pool, id).await?;
    Ok(alert)
}

/// Records an alert once per organisation and `dedupe_key` and queues one delivery per enabled
/// channel subscribed to `event` (only `only_channel` when given: a test send). Returns the new
/// alert's id, or `None` when it was already raised (nothing is queued again).
pub async fn raise(
    pool: &Db,
    organisation_id: &str,
    event: &str,
    dedupe_key: &str,
    data: &Value,
    only_channel: Option<&str>,
) -> Result<Option<String>, AdminError> {
    let now = now_ms();
    let id = new_object_id();
    let inserted = sqlx::query(
        "INSERT INTO alerts (id, organisation_id, event, dedupe_key, data, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (organisation_id, dedupe_key) DO NOTHING",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(event)
    .bind(dedupe_key)
    .bind(data.to_string())
    .bind(now)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    let sql = "SELECT id, channel_type, events, enabled FROM notification_channels WHERE organisation_id = $1";
    let rows = sqlx::query(sql)
        .bind(organisation_id)
        .fetch_all(pool)
        .await?;
    for row in rows {
        let channel_id: String = row.try_get("id")?;
        let subscribed = match only_channel {
            Some(only) => only == channel_id,
            None => {
                row.try_get::<i64, _>("enabled")? != 0
                    && json_list(&row.try_get::<String, _>("events")?)
                        .iter()
                        .any(|e| e == event)
            }
        };
        if !subscribed {
            continue;
        }
        sqlx::query(
            "INSERT INTO alert_deliveries (id, alert_id, channel_id, channel_type, status, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'PENDING', 0, $5, $6)",
        )
        .bind(new_object_id())
        .bind(&id)
        .bind(&channel_id)
        .bind(row.try_get::<String, _>("channel_type")?)
        .bind(now)
        .bind(now)
        .execute(pool)
        .await?;
    }
    Ok(Some(id))
}

/// Where a delivery goes, read when it is sent (so an edited channel is honoured). Holds the
/// webhook secret's envelope, never the secret.
#[derive(Clone)]
pub struct ChannelTarget {
    /// The channel's id.
    pub id: String,
    /// How to deliver.
    pub channel_type: ChannelType,
    /// WEBHOOK: where to POST.
    pub url: Option<String>,
    /// EMAIL: where to send.
    pub emails: Vec<String>,
    /// The sealed webhook secret (open with [`open_secret`]); `None` when there is none.
    pub secret_envelope: Option<String>,
}

impl fmt::Debug for ChannelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelTarget")
            .field("id", &self.id)
            .field("type", &self.channel_type)
            .finish()
    }
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The delivery's id.
    pub id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The alert to deliver.
    pub alert: Alert,
    /// `None` when the channel was deleted since.
    pub channel: Option<ChannelTarget>,
}

/// Claims up to `limit` deliveries due at `now` (PENDING, or SENDING whose claim ran out: its
/// sender died) until `now + lease_ms`. A delivery another replica claimed first is skipped.
pub async fn claim_due(
    pool: &Db,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<DueDelivery>, AdminError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, next_attempt_at FROM alert_deliveries \
         WHERE status IN ('PENDING', 'SENDING') AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut claimed = Vec::new();
    for row in rows {
        let (alert_id, delivery) = decode_delivery(&row)?;
        let due_at: i64 = row.try_get("next_attempt_at")?;
        let won = sqlx::query(
            "UPDATE alert_deliveries SET status = 'SENDING', next_attempt_at = $1 \
             WHERE id = $2 AND status = $3 AND next_attempt_at = $4",
        )
        .bind(now + lease_ms)
        .bind(&delivery.id)
        .bind(&delivery.status)
        .bind(due_at)
        .execute(pool)
        .await?;
        if won.rows_affected() == 0 {
            continue;
        }
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1");
        let Some(alert) = sqlx::query(&sql)
            .bind(&alert_id)
            .fetch_optional(pool)
            .await?
        else {
            continue;
        };
        let alert = decode_alert(&alert)?;
        let channel = sqlx::query(
            "SELECT id, channel_type, url, emails, secret_envelope FROM notification_channels \
             WHERE id = $1 AND organisation_id = $2",
        )
        .bind(&delivery.channel_id)
        .bind(&alert.organisation_id)
        .fetch_optional(pool)
        .await?
        .map(|row| -> Result<ChannelTarget, sqlx::Error> {
            Ok(ChannelTarget {
                id: row.try_get("id")?,
                channel_type: ChannelType::parse(&row.try_get::<String, _>("channel_type")?)
                    .unwrap_or(ChannelType::Webhook),
                url: row.try_get("url")?,
                emails: json_list(&row.try_get::<String, _>("emails")?),
                secret_envelope: row.try_get("secret_envelope")?,
            })
        })
        .transpose()?;
        claimed.push(DueDelivery {
            id: delivery.id,
            attempts: delivery.attempts,
            alert,
            channel,
        });
    }
    Ok(claimed)
}

/// The delivery reached its channel.
pub async fn mark_delivered(pool: &Db, id: &str, now: i64) -> Result<(), AdminError> {
    sqlx::query(
        "UPDATE alert_deliveries SET status = 'DELIVERED', attempts = attempts + 1, delivered_at = $1, \
         last_error = NULL WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The attempt failed: try again at `retry_at`, or give up (`retry_at: None`).
pub async fn mark_failed_attempt(
    pool: &Db,
    id: &str,
    error: &str,
    retry_at: Option<i64>,
) -> Result<(), AdminError> {
    let error: String = error.chars().take(500).collect();
    match retry_at {
        Some(at) => sqlx::query(
            "UPDATE alert_deliveries SET status = 'PENDING', attempts = attempts + 1, next_attempt_at = $1, \
             last_error = $2 WHERE id = $3",
        )
        .bind(at)
        .bind(&error)
        .bind(id),
        None => sqlx::query(
            "UPDATE alert_deliveries SET status = 'FAILED', attempts = attempts + 1, last_error = $1 \
             WHERE id = $2",
        )
        .bind(&error)
        .bind(id),
    }
    .execute(pool)
    .await?;
    Ok(())
}

/// The earliest time a queued delivery is due (to sleep until then), if any.
pub async fn next_due(pool: &Db) -> Result<Option<i64>, AdminError> {
    let row = sqlx::query(
        "SELECT MIN(next_attempt_at) AS due FROM alert_deliveries WHERE status IN ('PENDING', 'SENDING')",
    )
    .fetch_one(pool)
    .await?;
    Ok(row.try_get::<Option<i64>, _>("due")?)
}

/// The organisation and name of provider `id`, for its health alerts (`None`: it is gone).
pub async fn provider_owner(pool: &Db, id: &str) -> Result<Option<(String, String)>, AdminError> {
    let row = sqlx::query("SELECT organisation_id, name FROM providers WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(|row| Ok((row.try_get("organisation_id")?, row.try_get("name")?)))
        .transpose()
        .map_err(|e: sqlx::Error| AdminError::from(e))
}

/// Unrevoked keys of every organisation expiring after `now` and at the latest at `until` (unix
/// ms): `(organisation, key id, key name, expires_at ms)`.
pub async fn keys_expiring(
    pool: &Db,
    now: i64,
    until: i64,
) -> Result<Vec<(String, String, String, i64)>, AdminError> {
    let rows = sqlx::query(
        "SELECT organisation_id, id, name, expires_at FROM api_keys \
         WHERE revoked = 0 AND expires_at IS NOT NULL AND expires_at > $1 AND expires_at <= $2",
    )
    .bind(now)
    .bind(until)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("organisation_id")?,
                row.try_get("id")?,
                row.try_get("name")?,
                row.try_get("expires_at")?,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(AdminError::from)
}

/// Opens a channel's webhook secret (for signing).
pub fn open_secret(master_key: &MasterKey, target: &ChannelTarget) -> Option<odock_core::Secret> {
    target
        .secret_envelope
        .as_deref()
        .and_then(|envelope| master_key.open(envelope).ok())
}
