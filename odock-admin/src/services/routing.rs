//! Routing policies of an API key (`GET|PUT /apikeys/{id}/routing`), stored as the key's
//! `routing` document. PUT replaces the whole document; every candidate must be a model of the
//! key's organisation, of the policy's model type, granted to the key — else 400 naming it.

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
