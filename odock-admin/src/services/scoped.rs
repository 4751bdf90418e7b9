//! The organisation-scoped row operations every repository shares.
//!
//! A repository describes its table once as a [`Scoped`] value; reading, listing and deleting one of
//! its rows then go through the same SQL, so "an object of another organisation is exactly a missing
//! one" ([`AdminError::NotFound`]) holds everywhere by construction.

use odock_store::db::Db;
use odock_store::db::{DbQueryResult, DbRow};

use super::organisations::ensure_exists;
use super::{list_page, AdminError, Page, PageRequest};

/// An organisation-scoped table and how to decode its API object.
pub(crate) struct Scoped<T> {
    /// The table name (from code, never from clients).
    pub table: &'static str,
    /// The column list of the API object.
    pub columns: &'static str,
    /// What a 404 says was looked for (`"team"`, `"API key"`).
    pub what: &'static str,
    pub decode: fn(&DbRow) -> Result<T, sqlx::Error>,
    pub id_of: fn(&T) -> &str,
}

impl<T> Scoped<T> {
    /// The row with this id in the organisation.
    pub async fn get(&self, pool: &Db, organisation_id: &str, id: &str) -> Result<T, AdminError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE id = $1 AND organisation_id = $2",
            self.columns, self.table
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(organisation_id)
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => Ok((self.decode)(&row)?),
            None => Err(AdminError::NotFound(self.what)),
        }
    }

    /// One page of the organisation's rows (every organisation's with `None`), after checking that
    /// the organisation exists; `filters` are further `column = value` conditions.
    pub async fn list(
        &self,
        pool: &Db,
        organisation_id: Option<&str>,
        filters: &[(&str, Option<&str>)],
        page: &PageRequest,
    ) -> Result<Page<T>, AdminError> {
        if let Some(org) = organisation_id {
            ensure_exists(pool, org).await?;
        }
        let select = format!("SELECT {} FROM {}", self.columns, self.table);
        let mut conditions = vec![("organisation_id", organisation_id)];
        conditions.extend_from_slice(filters);
        list_page(pool, &select, &conditions, page, self.decode, self.id_of).await
    }

    /// Deletes the row with this id in the organisation (dependants go by cascade).
    pub async fn delete(
        &self,
        pool: &Db,
        organisation_id: &str,
        id: &str,
    ) -> Result<(), AdminError> {
        let sql = format!(
            "DELETE FROM {} WHERE id = $1 AND organisation_id = $2",
            self.table
        );
        let result = sqlx::query(&sql)
            .bind(id)
            .bind(organisation_id)
            .execute(pool)
            .await?;
        self.touched(&result)
    }

    /// 404 unless an UPDATE or DELETE of one of its rows found the row.
    pub fn touched(&self, result: &DbQueryResult) -> Result<(), AdminError> {
        touched(result, self.what)
    }
}

/// 404 (`what`) unless the write found a row.
pub(crate) fn touched(result: &DbQueryResult, what: &'static str) -> Result<(), AdminError> {
    if result.rows_affected() == 0 {
        Err(AdminError::NotFound(what))
    } else {
        Ok(())
    }
}
