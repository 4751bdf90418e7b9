//! `GET|PUT /apikeys/{id}/routing` (the key's routing policies) and `GET /provider-health` (the
//! circuit breakers of this replica for the organisation's providers and provider keys).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use odock_core::routing::{
    BreakerKey, BreakerStatus, CircuitBreakers, CircuitState, KeyOut, KeyPools, RoutingDocument,
};
use odock_core::{CacheKind, ProviderId, ProviderKeyId};
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::AdminJson;
use super::AdminState;
use crate::services::routing;

/// The gateway's circuit breakers and key pools, handed to the admin router as an extension by
/// the server.
#[derive(Clone, Debug)]
pub struct ProviderHealth {
    /// The circuit breakers of providers and provider keys.
    pub breakers: Arc<CircuitBreakers>,
    /// The key pools of providers.
    pub pools: Arc<KeyPools>,
}

/// `GET /api/organisations/{organisationId}/apikeys/{id}/routing`: the API key's routing policies
/// (one per model type). Access: ORG_ADMIN, the team's MANAGER (TEAM key) or the owner (USER key).
pub async fn get(
    State(state): State<AdminState>,
    Path((org, api_key)): Path<(String, String)>,
) -> Result<Json<RoutingDocument>, ApiError> {
    Ok(Json(routing::get(&state.pool, &org, &api_key).await?))
}

/// Replaces the key's routing document; the gateway sees it on the next request.
pub async fn put(
    State(state): State<AdminState>,
    Path((org, api_key)): Path<(String, String)>,
    AdminJson(document): AdminJson<RoutingDocument>,
) -> Result<Json<RoutingDocument>, ApiError> {
    let document = routing::put(&state.pool, &org, &api_key, document).await?;
    state.invalidate(CacheKind::ApiKey, &api_key);
    Ok(Json(document))
}

/// After a write that can strand routing candidates (a model changed or went, a provider went with
/// its models, a grant was revoked): drops them from the organisation's routing documents and
/// evicts the keys whose document changed. The write itself has succeeded, so a failure here is
/// logged, not answered: the gateway skips such candidates anyway, only `GET` would still show them.
pub(crate) async fn prune_after_write(state: &AdminState, organisation_id: &str) {
    match routing::prune(&state.pool, organisation_id).await {
        Ok(changed) => {
            for api_key in changed {
                state.invalidate(CacheKind::ApiKey, &api_key);
            }
        }
        Err(error) => {
            tracing::warn!(%error, organisation_id, "routing documents could not be pruned");
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    state: CircuitState,
    since: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
}

impl From<Option<&BreakerStatus>> for Health {
    fn from(status: Option<&BreakerStatus>) -> Self {
        match status {
            Some(s) => Health {
                state: s.state,
                since: Some(s.since),
                consecutive_failures: s.consecutive_failures,
                last_error: s.last_error.clone(),
                last_error_at: s.last_error_at,
            },
            None => Health {
                state: CircuitState::Closed,
                since: None,
                consecutive_failures: 0,
                last_error: None,
                last_error_at: None,
            },
        }
    }
}

/// Every provider of the organisation and each of its keys with the circuit state this replica
/// holds (`closed` and no `since` for one that never failed).
pub async fn provider_health(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    health: Option<Extension<ProviderHealth>>,
) -> Result<Json<Value>, ApiError> {
    let providers: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, name, type FROM providers WHERE organisation_id = $1 ORDER BY name, id",
    )
    .bind(&org)
    .fetch_all(&state.pool)
    .await
    .map_err(crate::services::AdminError::from)?;
    let keys: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT k.id, k.provider_id, k.name, k.revoked FROM provider_api_keys k \
         JOIN providers p ON p.id = k.provider_id WHERE p.organisation_id = $1 ORDER BY k.name, k.id",
    )
    .bind(&org)
    .fetch_all(&state.pool)
    .await
    .map_err(crate::services::AdminError::from)?;
    let (snapshot, rotation): (
        HashMap<BreakerKey, BreakerStatus>,
        HashMap<ProviderKeyId, KeyOut>,
    ) = match health {
        Some(Extension(h)) => (
            h.breakers.snapshot().into_iter().collect(),
            h.pools.snapshot(),
        ),
        None => Default::default(),
    };
    let data: Vec<Value> = providers
        .into_iter()
        .map(|(id, name, provider_type)| {
            let provider_health =
                Health::from(snapshot.get(&BreakerKey::Provider(ProviderId::new(id.as_str()))));
            let provider_keys: Vec<Value> = keys
                .iter()
                .filter(|(_, provider, _, _)| *provider == id)
                .map(|(key_id, _, key_name, revoked)| {
                    let health = Health::from(snapshot.get(&BreakerKey::ProviderKey(
                        ProviderKeyId::new(key_id.as_str()),
                    )));
                    let out = rotation.get(&ProviderKeyId::new(key_id.as_str()));
                    json!({"providerKeyId": key_id, "name": key_name, "revoked": *revoked != 0,
                           "health": health, "rotation": out})
                })
                .collect();
            json!({"providerId": id, "name": name, "type": provider_type,
                   "health": provider_health, "keys": provider_keys})
        })
        .collect();
    Ok(Json(json!({"data": data, "nextCursor": null})))
}
