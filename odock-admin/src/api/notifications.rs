//! `/api/organisations/{organisationId}/notification-channels` (webhooks and e-mail that alerts go
//! to, with a test send) and `/api/organisations/{organisationId}/alerts` (what was raised and
//! what became of each delivery). Webhook secrets are write-only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use http::StatusCode;
use serde_json::json;

use crate::services::notifications::{
    self, Alert, ChannelType, NewNotificationChannel, NotificationChannel, NotificationChannelPatch,
};
use crate::services::Page;

use super::error::ApiError;
use super::extract::{AdminJson, AdminQuery, ListParams};
use super::AdminState;

/// Wakes the server's notifier when a delivery is queued from the API (a test send), so it goes
/// out at once instead of at the next poll. Optional: without it the poll finds it.
#[derive(Clone, Debug, Default)]
pub struct AlertWaker(pub Arc<tokio::sync::Notify>);

/// `POST /api/organisations/{organisationId}/notification-channels`: add a WEBHOOK (signed with
/// secret, write-only) or EMAIL channel for alerts. Access: ORG_ADMIN.
pub async fn create(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewNotificationChannel>,
) -> Result<(StatusCode, Json<NotificationChannel>), ApiError> {
    if let (ChannelType::Webhook, Some(url)) = (input.channel_type, &input.url) {
        state.host.check_url("url", url)?;
    }
    let channel = notifications::create(&state.pool, &state.master_key, &org, input).await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

/// `GET /api/organisations/{organisationId}/notification-channels`: list the organisation's
/// notification channels. Access: ORG_ADMIN.
pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<NotificationChannel>>, ApiError> {
    Ok(Json(
        notifications::list(&state.pool, &org, &params.page()).await?,
    ))
}

/// `GET /api/organisations/{organisationId}/notification-channels/{id}`: read a notification
/// channel (never its secret). Access: ORG_ADMIN.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<NotificationChannel>, ApiError> {
    Ok(Json(notifications::get(&state.pool, &org, &id).await?))
}

/// `PATCH /api/organisations/{organisationId}/notification-channels/{id}`: update a notification
/// channel (`secret: null` removes the signature). Access: ORG_ADMIN.
pub async fn update(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<NotificationChannelPatch>,
) -> Result<Json<NotificationChannel>, ApiError> {
    if let Some(url) = &patch.url {
        state.host.check_url("url", url)?;
    }
    Ok(Json(
        notifications::update(&state.pool, &state.master_key, &org, &id, patch).await?,
    ))
}

/// `DELETE /api/organisations/{organisationId}/notification-channels/{id}`: delete a notification
/// channel (its alert history stays). Access: ORG_ADMIN.
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    notifications::delete(&state.pool, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a `notification.test` alert for this channel only (even when disabled) and answers it;
/// `GET …/alerts/{id}` shows whether it was delivered.
pub async fn test(
    State(state): State<AdminState>,
    waker: Option<Extension<AlertWaker>>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Alert>, ApiError> {
    let channel = notifications::get(&state.pool, &org, &id).await?;
    let key = format!("test:{}", odock_core::new_object_id());
    let data = json!({"channelId": channel.id, "message": "Test notification from Odock"});
    let alert_id = notifications::raise(
        &state.pool,
        &org,
        notifications::TEST,
        &key,
        &data,
        Some(&channel.id),
    )
    .await?
    .ok_or(ApiError::Internal)?;
    if let Some(Extension(waker)) = waker {
        waker.0.notify_one();
    }
    Ok(Json(
        notifications::get_alert(&state.pool, &org, &alert_id).await?,
    ))
}

/// `GET /api/organisations/{organisationId}/alerts`: alerts raised for the organisation
/// (thresholds, expiring keys, tests) and their deliveries. Access: ORG_ADMIN.
pub async fn list_alerts(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<Alert>>, ApiError> {
    Ok(Json(
        notifications::list_alerts(&state.pool, &org, &params.page()).await?,
    ))
}

/// `GET /api/organisations/{organisationId}/alerts/{id}`: read an alert and its deliveries. Access:
/// ORG_ADMIN.
pub async fn get_alert(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Alert>, ApiError> {
    Ok(Json(
        notifications::get_alert(&state.pool, &org, &id).await?,
    ))
}
