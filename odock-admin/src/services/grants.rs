//! Grants: which API keys may call which targets, managed from either side. `GrantTable` is the
//! logic for any grant table and `GrantKind` names one (its table and its request body), so the
//! API's handlers are written once over the kind; this module also holds model grants
//! (`ModelGrants`: `api_key_model_access`, `/apikeys/{id}/model-access`,
//! `/models/{id}/api-key-access`); MCP grants are `McpGrants`, the same logic
//! over `api_key_mcp_access`. Granting is idempotent.

use chrono::{DateTime, Utc};
use odock_store::db::Db;
use odock_store::db::DbRow;
use serde::de::DeserializeOwned;
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
    /// The API key that may call the model.
    pub api_key_id: String,
    /// The API key's name.
    pub api_key_name: String,
    /// The model the key may call.
    pub model_id: String,
    /// The model's name.
    pub model_name: String,
    /// When the grant was made.
    pub created_at: DateTime<Utc>,
}

/// `POST .../apikeys/{id}/model-access`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantModels {
    /// Models to grant the key (ids of this organisation, at most 1000; duplicates ignored).
    pub model_ids: Vec<String>,
}

/// `POST .../models/{id}/api-key-access`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantApiKeys {
    /// API keys to grant the target (ids of this organisation, at most 1000; duplicates ignored).
    pub api_key_ids: Vec<String>,
}

/// One kind of grant target (models, MCP servers): the table logic and the body of a request
/// granting a key targets. What differs between model and MCP grants is only this, so the
/// services and the API handlers take the kind as a type parameter instead of being written twice.
pub(crate) trait GrantKind: Send + Sync + 'static {
    /// One grant, as returned by the API.
    type Grant: Serialize + Send;
    /// The body granting a key targets (`{"modelIds": [...]}`).
    type Targets: DeserializeOwned + Send;
    const TABLE: GrantTable<Self::Grant>;
    /// The target ids a [`Self::Targets`] body names.
    fn target_ids(targets: &Self::Targets) -> &[String];
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

/// Model grants (`api_key_model_access`).
pub(crate) struct ModelGrants;

impl GrantKind for ModelGrants {
    type Grant = ModelGrant;
    type Targets = GrantModels;
    const TABLE: GrantTable<ModelGrant> = MODEL_GRANTS;
    fn target_ids(targets: &GrantModels) -> &[String] {
        &targets.model_ids
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use odock_core::ApiKeyType;

    use super::*;
    use crate::services::test_support::{org, pool};
    use crate::services::{api_keys, models};

    /// One kind's grants from both sides, through the one table logic: `targets` are two targets of
    /// organisation `a` (`names`, read from a grant by `name`), `foreign` one of organisation `b`.
    pub(crate) async fn from_both_sides<K: GrantKind>(
        pool: &Db,
        (a, b): (&str, &str),
        targets: [&str; 2],
        foreign: &str,
        names: [&str; 2],
        name: fn(&K::Grant) -> &str,
    ) {
        let table = K::TABLE;
        let key = api_keys::create(pool, a, api_keys::tests::new(ApiKeyType::Organisation))
            .await
            .unwrap()
            .api_key;
        let other_key = api_keys::create(pool, b, api_keys::tests::new(ApiKeyType::Organisation))
            .await
            .unwrap()
            .api_key;

        let ids = vec![targets[0].to_owned(), targets[0].to_owned()];
        let grants = table.grant_targets(pool, a, &key.id, &ids).await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(name(&grants[0]), names[0]);
        // Idempotent.
        let again = table.grant_targets(pool, a, &key.id, &ids).await.unwrap();
        assert_eq!(again.len(), 1);

        for missing in ["nope", foreign] {
            let refused = table
                .grant_targets(pool, a, &key.id, &[missing.to_owned()])
                .await;
            assert!(
                matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == table.target_field)
            );
        }
        let refused = table
            .grant_api_keys(pool, a, targets[1], std::slice::from_ref(&other_key.id))
            .await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "apiKeyIds")
        );

        let for_second = table
            .grant_api_keys(pool, a, targets[1], std::slice::from_ref(&key.id))
            .await
            .unwrap();
        assert_eq!(for_second.len(), 1);
        assert_eq!(table.for_api_key(pool, a, &key.id).await.unwrap().len(), 2);

        table.revoke(pool, a, &key.id, targets[0]).await.unwrap();
        assert!(matches!(
            table.revoke(pool, a, &key.id, targets[0]).await,
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            table.for_target(pool, b, targets[1]).await,
            Err(AdminError::NotFound(_))
        ));
        let left = table.for_api_key(pool, a, &key.id).await.unwrap();
        assert_eq!(left.iter().map(name).collect::<Vec<_>>(), [names[1]]);
    }

    #[tokio::test]
    async fn grants_from_both_sides() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let (in_a, in_b) = (
            models::tests::provider(&pool, &a).await,
            models::tests::provider(&pool, &b).await,
        );
        let fast = models::tests::new("fast", &in_a);
        let fast = models::create(&pool, &a, fast).await.unwrap().id;
        let smart = models::tests::new("smart", &in_a);
        let smart = models::create(&pool, &a, smart).await.unwrap().id;
        let foreign = models::tests::new("fast", &in_b);
        let foreign = models::create(&pool, &b, foreign).await.unwrap().id;
        from_both_sides::<ModelGrants>(
            &pool,
            (&a, &b),
            [&fast, &smart],
            &foreign,
            ["fast", "smart"],
            |grant| grant.model_name.as_str(),
        )
        .await;
    }
}
