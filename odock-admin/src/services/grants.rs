//! Grants: which API keys may call which targets, managed from either side. [`GrantTable`] is the
//! logic for any grant table; this module also holds model grants (`api_key_model_access`,
//! `/apikeys/{id}/model-access`, `/models/{id}/api-key-access`); MCP grants are
//! [`super::mcp_grants`], the same table logic over `api_key_mcp_access`. Granting is idempotent.

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelGrant {
    pub api_key_id: String,
    pub api_key_name: String,
    pub model_id: String,
    pub model_name: String,
    pub created_at: DateTime<Utc>,
}

/// `POST .../apikeys/{id}/model-access`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantModels {
    pub model_ids: Vec<String>,
}

/// `POST .../models/{id}/api-key-access`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantApiKeys {
    pub api_key_ids: Vec<String>,
}

/// One grant table: API keys on one side, one kind of target (models, MCP servers) on the other.
/// Model and MCP grants are the same logic over two tables; this is that logic, written once.
pub(crate) struct GrantTable<T> {
    /// The grant table (`api_key_model_access`).
    pub table: &'static str,
    /// Its column naming the target (`model_id`).
    pub target_column: &'static str,
    /// The targets' table (`models`).
    pub targets: &'static str,
    /// A target in errors (`model`).
    pub target_what: &'static str,
    /// The request field listing targets (`modelIds`).
    pub target_field: &'static str,
    /// A grant in errors (`model grant`).
    pub what: &'static str,
    /// Selects grants as `g`, joined with their key as `k` and their target as `t`.
    pub select: &'static str,
    pub decode: fn(&DbRow) -> Result<T, sqlx::Error>,
}

impl<T> GrantTable<T> {
    /// The targets the key may call, by target name.
    pub async fn for_api_key(
        &self,
        pool: &Db,
        organisation_id: &str,
        api_key_id: &str,
    ) -> Result<Vec<T>, AdminError> {
        ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
        let sql = format!(
            "{} WHERE g.api_key_id = $1 AND k.organisation_id = $2 ORDER BY t.name, g.{}",
            self.select, self.target_column
        );
        self.fetch(pool, &sql, api_key_id, organisation_id).await
    }

    /// The keys that may call the target, by key name.
    pub async fn for_target(
        &self,
        pool: &Db,
        organisation_id: &str,
        target_id: &str,
    ) -> Result<Vec<T>, AdminError> {
        self.ensure_target(pool, organisation_id, target_id).await?;
        let sql = format!(
            "{} WHERE g.{} = $1 AND t.organisation_id = $2 ORDER BY k.name, g.api_key_id",
            self.select, self.target_column
        );
        self.fetch(pool, &sql, target_id, organisation_id).await
    }

    /// Grants the key every target in `target_ids` (all must be in the organisation); returns
    /// the key's complete grant list.
    pub async fn grant_targets(
        &self,
        pool: &Db,
        organisation_id: &str,
        api_key_id: &str,
        target_ids: &[String],
    ) -> Result<Vec<T>, AdminError> {
        ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
        let ids = check_ids(
            pool,
            self.targets,
            self.target_field,
            organisation_id,
            target_ids,
        )
        .await?;
        self.insert(pool, ids.iter().map(|t| (api_key_id, t.as_str())))
            .await?;
        self.for_api_key(pool, organisation_id, api_key_id).await
    }

    /// Grants every key in `api_key_ids` (all must be in the organisation) the target; returns
    /// the target's complete grant list.
    pub async fn grant_api_keys(
        &self,
        pool: &Db,
        organisation_id: &str,
        target_id: &str,
        api_key_ids: &[String],
    ) -> Result<Vec<T>, AdminError> {
        self.ensure_target(pool, organisation_id, target_id).await?;
        let ids = check_ids(pool, "api_keys", "apiKeyIds", organisation_id, api_key_ids).await?;
        self.insert(pool, ids.iter().map(|k| (k.as_str(), target_id)))
            .await?;
        self.for_target(pool, organisation_id, target_id).await
    }

    /// Removes one grant; 404 when the key, the target or the grant does not exist.
    pub async fn revoke(
        &self,
        pool: &Db,
        organisation_id: &str,
        api_key_id: &str,
        target_id: &str,
    ) -> Result<(), AdminError> {
        ensure_in_org(pool, "api_keys", organisation_id, api_key_id, "API key").await?;
        self.ensure_target(pool, organisation_id, target_id).await?;
        let sql = format!(
            "DELETE FROM {} WHERE api_key_id = $1 AND {} = $2",
            self.table, self.target_column
        );
        let result = sqlx::query(&sql)
            .bind(api_key_id)
            .bind(target_id)
            .execute(pool)
            .await?;
        touched(&result, self.what)?;
        Ok(())
    }

    async fn ensure_target(
        &self,
        pool: &Db,
        organisation_id: &str,
        target_id: &str,
    ) -> Result<(), AdminError> {
        ensure_in_org(
            pool,
            self.targets,
            organisation_id,
            target_id,
            self.target_what,
        )
        .await
    }

    async fn fetch(
        &self,
        pool: &Db,
        sql: &str,
        id: &str,
        organisation_id: &str,
    ) -> Result<Vec<T>, AdminError> {
        let rows = sqlx::query(sql)
            .bind(id)
            .bind(organisation_id)
            .fetch_all(pool)
            .await?;
        Ok(rows.iter().map(self.decode).collect::<Result<_, _>>()?)
    }

    async fn insert(
        &self,
        pool: &Db,
        pairs: impl Iterator<Item = (&str, &str)>,
    ) -> Result<(), AdminError> {
        let sql = format!(
            "INSERT INTO {table} (api_key_id, {target}, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (api_key_id, {target}) DO NOTHING",
            table = self.table,
            target = self.target_column,
        );
        let now = now_ms();
        let mut tx = pool.begin().await?;
        for (api_key_id, target_id) in pairs {
            sqlx::query(&sql)
                .bind(api_key_id)
                .bind(target_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
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

const MODEL_GRANTS: GrantTable<ModelGrant> = GrantTable {
    table: "api_key_model_access",
    target_column: "model_id",
    targets: "models",
    target_what: "model",
    target_field: "modelIds",
    what: "model grant",
    select: "SELECT g.api_key_id, k.name AS api_key_name, g.model_id, t.name AS model_name, \
             g.created_at \
             FROM api_key_model_access g \
             JOIN api_keys k ON k.id = g.api_key_id \
             JOIN models t ON t.id = g.model_id",
    decode,
};

fn decode(row: &DbRow) -> Result<ModelGrant, sqlx::Error> {
    Ok(ModelGrant {
        api_key_id: row.try_get("api_key_id")?,
        api_key_name: row.try_get("api_key_name")?,
        model_id: row.try_get("model_id")?,
        model_name: row.try_get("model_name")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

/// The models the key may call, by model name.
pub async fn list_for_api_key(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
) -> Result<Vec<ModelGrant>, AdminError> {
    MODEL_GRANTS
        .for_api_key(pool, organisation_id, api_key_id)
        .await
}

/// Grants the key every model in `model_ids` (all must be in the organisation); returns the key's
/// complete grant list.
pub async fn grant_models(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
    model_ids: &[String],
) -> Result<Vec<ModelGrant>, AdminError> {
    MODEL_GRANTS
        .grant_targets(pool, organisation_id, api_key_id, model_ids)
        .await
}

/// Removes one grant; 404 when the key, the model or the grant does not exist.
pub async fn revoke_model(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
    model_id: &str,
) -> Result<(), AdminError> {
    MODEL_GRANTS
        .revoke(pool, organisation_id, api_key_id, model_id)
        .await
}

/// The keys that may call the model, by key name.
pub async fn list_for_model(
    pool: &Db,
    organisation_id: &str,
    model_id: &str,
) -> Result<Vec<ModelGrant>, AdminError> {
    MODEL_GRANTS
        .for_target(pool, organisation_id, model_id)
        .await
}

/// Grants every key in `api_key_ids` (all must be in the organisation) the model; returns the
/// model's complete grant list.
pub async fn grant_api_keys(
    pool: &Db,
    organisation_id: &str,
    model_id: &str,
    api_key_ids: &[String],
) -> Result<Vec<ModelGrant>, AdminError> {
    MODEL_GRANTS
        .grant_api_keys(pool, organisation_id, model_id, api_key_ids)
        .await
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
