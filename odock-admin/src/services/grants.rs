//! Model grants: which API keys may call which models (`api_key_model_access`), managed from either
//! side (`/apikeys/{id}/model-access`, `/models/{id}/api-key-access`). Granting is idempotent.

use chrono::{DateTime, Utc};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{dedup, ensure_in_org, exists_in_org, touched, AdminError};
use odock_store::db::{from_ms, now_ms};

/// Most ids accepted in one grant request.
pub const MAX_IDS_PER_REQUEST: usize = 1_000;

/// One grant, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelGrant {
    pub api_key_id: String,
    pub api_key_name: String,
    pub model_id: String,
    pub model_name: String,
    pub created_at: DateTime<Utc>,
}

/// `POST .../apikeys/{id}/model-access`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantModels {
    pub model_ids: Vec<String>,
}

/// `POST .../models/{id}/api-key-access`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantApiKeys {
    pub api_key_ids: Vec<String>,
}

const SELECT: &str =
    "SELECT g.api_key_id, k.name AS api_key_name, g.model_id, m.name AS model_name, g.created_at \
                      FROM api_key_model_access g \
                      JOIN api_keys k ON k.id = g.api_key_id \
                      JOIN models m ON m.id = g.model_id";

fn decode(row: &DbRow) -> Result<ModelGrant, sqlx::Error> {
    Ok(ModelGrant {
        api_key_id: row.try_get("api_key_id")?,
        api_key_name: row.try_get("api_key_name")?,
        model_id: row.try_get("model_id")?,
        model_name: row.try_get("model_name")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

/// Every id must name a row of `table` in the organisation; else a 400 on `field`.
pub(crate) async fn check_ids(
    pool: &Db,
    table: &str,
    field: &str,
    organisation_id: &str,
    ids: &[String],
) -> Result<Vec<String>, AdminError> {
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(AdminError::field(
            field,
            format!("at most {MAX_IDS_PER_REQUEST} ids per request"),
        ));
    }
    let ids = dedup(ids);
    for id in &ids {
        if !exists_in_org(pool, table, organisation_id, id).await? {
            return Err(AdminError::field(
                field,
                format!("`{id}` is not in this organisation"),
            ));
        }
    }
    Ok(ids)
}

async fn insert(pool: &Db, pairs: impl Iterator<Item = (&str, &str)>) -> Result<(), AdminError> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    for (api_key_id, model_id) in pairs {
        sqlx::query(
            "INSERT INTO api_key_model_access (api_key_id, model_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (api_key_id, model_id) DO NOTHING",
        )
        .bind(api_key_id)
        .bind(model_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The models the key may call, by model name.
pub async fn list_for_api_key(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
) -> Result<Vec<ModelGrant>, AdminError> {
    ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
    let sql = format!(
        "{SELECT} WHERE g.api_key_id = $1 AND k.organisation_id = $2 ORDER BY m.name, g.model_id"
    );
    let rows = sqlx::query(&sql)
        .bind(api_key_id)
        .bind(organisation_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Grants the key every model in `model_ids` (all must be in the organisation); returns the key's
/// complete grant list.
pub async fn grant_models(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
    model_ids: &[String],
) -> Result<Vec<ModelGrant>, AdminError> {
    ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
    let model_ids = check_ids(pool, "models", "modelIds", organisation_id, model_ids).await?;
    insert(pool, model_ids.iter().map(|m| (api_key_id, m.as_str()))).await?;
    list_for_api_key(pool, organisation_id, api_key_id).await
}

/// Removes one grant; 404 when the key, the model or the grant does not exist.
pub async fn revoke_model(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
    model_id: &str,
) -> Result<(), AdminError> {
    ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
    ensure_in_org(pool, "models", organisation_id, model_id, "model").await?;
    let result =
        sqlx::query("DELETE FROM api_key_model_access WHERE api_key_id = $1 AND model_id = $2")
            .bind(api_key_id)
            .bind(model_id)
            .execute(pool)
            .await?;
    touched(&result, "model grant")?;
    Ok(())
}

/// The keys that may call the model, by key name.
pub async fn list_for_model(
    pool: &Db,
    organisation_id: &str,
    model_id: &str,
) -> Result<Vec<ModelGrant>, AdminError> {
    ensure_in_org(pool, "models", organisation_id, model_id, "model").await?;
    let sql = format!(
        "{SELECT} WHERE g.model_id = $1 AND m.organisation_id = $2 ORDER BY k.name, g.api_key_id"
    );
    let rows = sqlx::query(&sql)
        .bind(model_id)
        .bind(organisation_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Grants every key in `api_key_ids` (all must be in the organisation) the model; returns the
/// model's complete grant list.
pub async fn grant_api_keys(
    pool: &Db,
    organisation_id: &str,
    model_id: &str,
    api_key_ids: &[String],
) -> Result<Vec<ModelGrant>, AdminError> {
    ensure_in_org(pool, "models", organisation_id, model_id, "model").await?;
    let api_key_ids =
        check_ids(pool, "api_keys", "apiKeyIds", organisation_id, api_key_ids).await?;
    insert(pool, api_key_ids.iter().map(|k| (k.as_str(), model_id))).await?;
    list_for_model(pool, organisation_id, model_id).await
}

#[cfg(test)]
mod tests {
    use odock_core::ApiKeyType;

    use super::*;
    use crate::services::test_support::{org, pool};
    use crate::services::{api_keys, models};

    #[tokio::test]
    async fn grants_from_both_sides() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let provider = models::tests::provider(&pool, &a).await;
        let fast = models::create(&pool, &a, models::tests::new("fast", &provider))
            .await
            .unwrap();
        let smart = models::create(&pool, &a, models::tests::new("smart", &provider))
            .await
            .unwrap();
        let key = api_keys::create(&pool, &a, api_keys::tests::new(ApiKeyType::Organisation))
            .await
            .unwrap()
            .api_key;
        let other_key = api_keys::create(&pool, &b, api_keys::tests::new(ApiKeyType::Organisation))
            .await
            .unwrap()
            .api_key;

        let ids = vec![fast.id.clone(), fast.id.clone()];
        let grants = grant_models(&pool, &a, &key.id, &ids).await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].model_name, "fast");
        // Idempotent.
        assert_eq!(
            grant_models(&pool, &a, &key.id, &ids).await.unwrap().len(),
            1
        );

        let refused = grant_models(&pool, &a, &key.id, &["nope".into()]).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "modelIds")
        );
        let refused =
            grant_api_keys(&pool, &a, &smart.id, std::slice::from_ref(&other_key.id)).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "apiKeyIds")
        );

        let for_smart = grant_api_keys(&pool, &a, &smart.id, std::slice::from_ref(&key.id))
            .await
            .unwrap();
        assert_eq!(for_smart.len(), 1);
        assert_eq!(list_for_api_key(&pool, &a, &key.id).await.unwrap().len(), 2);

        revoke_model(&pool, &a, &key.id, &fast.id).await.unwrap();
        assert!(matches!(
            revoke_model(&pool, &a, &key.id, &fast.id).await,
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            list_for_model(&pool, &b, &smart.id).await,
            Err(AdminError::NotFound(_))
        ));
        let left = list_for_api_key(&pool, &a, &key.id).await.unwrap();
        assert_eq!(
            left.iter()
                .map(|g| g.model_name.as_str())
                .collect::<Vec<_>>(),
            ["smart"]
        );
    }
}
