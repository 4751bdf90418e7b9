//! Routing policies of an API key (`GET|PUT /apikeys/{id}/routing`), stored as the key's
//! `routing` document. PUT replaces the whole document; every candidate must be a model of the
//! key's organisation, of the policy's model type, granted to the key — else 400 naming it.

use std::collections::{HashMap, HashSet};

use odock_core::routing::RoutingDocument;
use odock_store::db::{now_ms, Db};

use super::{ensure_in_org, from_json_text, to_json_text, AdminError};

/// The key's routing document (no policies when none was ever set).
pub async fn get(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
) -> Result<RoutingDocument, AdminError> {
    ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
    let text: Option<Option<String>> =
        sqlx::query_scalar("SELECT routing FROM api_keys WHERE id = $1 AND organisation_id = $2")
            .bind(api_key_id)
            .bind(organisation_id)
            .fetch_optional(pool)
            .await?;
    Ok(from_json_text(text.flatten())?)
}

/// Checks and stores `document` as the key's whole routing document.
pub async fn put(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
    document: RoutingDocument,
) -> Result<RoutingDocument, AdminError> {
    ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
    document
        .check_shape()
        .map_err(|(message, field)| AdminError::field(field, message))?;
    for policy in &document.policies {
        for candidate in &policy.candidates {
            let id = candidate.model_id.as_str();
            let row: Option<(String, i64)> = sqlx::query_as(
                "SELECT m.type, (SELECT COUNT(*) FROM api_key_model_access g \
                   WHERE g.api_key_id = $3 AND g.model_id = m.id) \
                 FROM models m WHERE m.id = $1 AND m.organisation_id = $2",
            )
            .bind(id)
            .bind(organisation_id)
            .bind(api_key_id)
            .fetch_optional(pool)
            .await?;
            let Some((model_type, granted)) = row else {
                return Err(AdminError::field(
                    "candidates",
                    format!("model `{id}` is not in this organisation"),
                ));
            };
            if model_type != policy.model_type.as_str() {
                return Err(AdminError::field(
                    "candidates",
                    format!(
                        "model `{id}` is of type `{model_type}`, not `{}`",
                        policy.model_type
                    ),
                ));
            }
            if granted == 0 {
                return Err(AdminError::field(
                    "candidates",
                    format!("model `{id}` is not granted to this API key"),
                ));
            }
        }
    }
    let text = to_json_text(&document)?;
    sqlx::query(
        "UPDATE api_keys SET routing = $1, updated_at = $2 WHERE id = $3 AND organisation_id = $4",
    )
    .bind(text)
    .bind(now_ms())
    .bind(api_key_id)
    .bind(organisation_id)
    .execute(pool)
    .await?;
    Ok(document)
}

/// Brings the organisation's routing documents back in line with what [`put`] accepts after a
/// model, provider or grant changed: a candidate whose model is gone, is now of another type or
/// is no longer granted to the key is dropped, and so is a policy left invalid (no candidate, or
/// no positive weight). Without it a deleted model would linger in `GET` and make the next `PUT`
/// of the same document fail. Returns the keys whose document changed (their caches must be
/// invalidated). A document a concurrent `PUT` replaced meanwhile is left to that `PUT`.
pub async fn prune(pool: &Db, organisation_id: &str) -> Result<Vec<String>, AdminError> {
    let documents: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, routing FROM api_keys WHERE organisation_id = $1 AND routing IS NOT NULL",
    )
    .bind(organisation_id)
    .fetch_all(pool)
    .await?;
    if documents.is_empty() {
        return Ok(Vec::new());
    }
    let model_types: HashMap<String, String> =
        sqlx::query_as("SELECT id, type FROM models WHERE organisation_id = $1")
            .bind(organisation_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let grants: HashSet<(String, String)> = sqlx::query_as(
        "SELECT g.api_key_id, g.model_id FROM api_key_model_access g \
         JOIN api_keys k ON k.id = g.api_key_id \
         WHERE k.organisation_id = $1 AND k.routing IS NOT NULL",
    )
    .bind(organisation_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();

    let mut changed = Vec::new();
    for (api_key_id, text) in documents {
        let Ok(mut document) = serde_json::from_str::<RoutingDocument>(&text) else {
            continue; // not written by `put`; the gateway ignores it too
        };
        let before = document.clone();
        for policy in &mut document.policies {
            let model_type = policy.model_type.as_str();
            policy.candidates.retain(|candidate| {
                let id = candidate.model_id.as_str();
                model_types.get(id).is_some_and(|t| t == model_type)
                    && grants.contains(&(api_key_id.clone(), id.to_owned()))
            });
        }
        document
            .policies
            .retain(|policy| policy.check_shape().is_ok());
        if document == before {
            continue;
        }
        let result = sqlx::query(
            "UPDATE api_keys SET routing = $1, updated_at = $2 \
             WHERE id = $3 AND organisation_id = $4 AND routing = $5",
        )
        .bind(to_json_text(&document)?)
        .bind(now_ms())
        .bind(&api_key_id)
        .bind(organisation_id)
        .bind(&text)
        .execute(pool)
        .await?;
        if result.rows_affected() > 0 {
            changed.push(api_key_id);
        }
    }
    Ok(changed)
}
