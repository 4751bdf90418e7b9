//! One keyset-paged query for the record tables, `usage_records` and `mcp_usage_records`: both
//! lists filter on columns of the same kind, order by one integer key and the id, and hand out the
//! same cursor, so the SQL and the cursor format are written here once ([`RecordQuery`]).

use chrono::{DateTime, Utc};

use crate::db::{to_ms, Db, DbRow, SqlBuilder};

/// The largest page a record list returns.
pub const MAX_LIST_LIMIT: u32 = 1_000;

const INVALID_CURSOR: &str = "invalid usage record cursor";

/// Whether `error` is a record list's answer to a malformed cursor.
pub fn is_invalid_cursor(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::InvalidArgument(message) if message == INVALID_CURSOR)
}

/// Position after the last record of a page: `<sort value>:<id>` (the sort value is the
/// `created_at` milliseconds in the default order). Clients keep these between pages, so the format
/// is fixed.
pub(crate) struct Cursor {
    /// The sort key's value (named for the default order, time).
    pub(crate) created_at: i64,
    pub(crate) id: String,
}

impl Cursor {
    pub(crate) fn parse(text: &str) -> Result<Self, sqlx::Error> {
        let invalid = || sqlx::Error::InvalidArgument(INVALID_CURSOR.to_owned());
        let (created_at, id) = text.split_once(':').ok_or_else(invalid)?;
        let created_at = created_at.parse().map_err(|_| invalid())?;
        if id.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }

    pub(crate) fn encode(&self) -> String {
        format!("{}:{}", self.created_at, self.id)
    }
}

/// One record list's query: what it selects, which rows match, and its order.
pub(crate) struct RecordQuery<'a> {
    /// `SELECT <columns> FROM <table>` (from code, never from clients).
    pub select: String,
    /// `column = value` conditions, each applied when its value is set.
    pub equal: &'a [(&'static str, &'a Option<String>)],
    /// HTTP status of the request.
    pub status: Option<u16>,
    /// Inclusive lower bound on `created_at`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `created_at`.
    pub to: Option<DateTime<Utc>>,
    /// The integer sort expression (from an allow-list), ties broken by id in the same direction.
    pub order_by: &'static str,
    pub descending: bool,
}

impl RecordQuery<'_> {
    /// One page after `cursor` (a value an earlier page returned; malformed, an
    /// [`sqlx::Error::InvalidArgument`], see [`is_invalid_cursor`]) of at most `limit` rows
    /// (clamped to `1..=`[`MAX_LIST_LIMIT`]), and the cursor of the next page (`None` on the last).
    /// `key` is a record's value of the sort expression, and its id.
    pub(crate) async fn page<T>(
        &self,
        pool: &Db,
        cursor: Option<&str>,
        limit: u32,
        decode: impl Fn(&DbRow) -> Result<T, sqlx::Error>,
        key: impl Fn(&T) -> (i64, &str),
    ) -> Result<(Vec<T>, Option<String>), sqlx::Error> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let after = cursor.map(Cursor::parse).transpose()?;
        let mut builder = SqlBuilder::new(format!("{} WHERE 1 = 1", self.select));
        for (column, value) in self.equal {
            if let Some(value) = value {
                builder
                    .push(&format!(" AND {column} = "))
                    .push_bind(value.clone());
            }
        }
        if let Some(status) = self.status {
            builder
                .push(" AND http_status = ")
                .push_bind(i64::from(status));
        }
        if let Some(from) = self.from {
            builder.push(" AND created_at >= ").push_bind(to_ms(from));
        }
        if let Some(to) = self.to {
            builder.push(" AND created_at < ").push_bind(to_ms(to));
        }
        // Keyset paging on (sort value, id): the cursor is the last row's pair, so a page resumes
        // strictly after it in either direction. (A cursor belongs to the sort it was issued for.)
        let expression = self.order_by;
        let (beyond, direction) = if self.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(after) = &after {
            builder
                .push(&format!(" AND ({expression} {beyond} "))
                .push_bind(after.created_at)
                .push(&format!(" OR ({expression} = "))
                .push_bind(after.created_at)
                .push(&format!(" AND id {beyond} "))
                .push_bind(after.id.clone())
                .push("))");
        }
        builder
            .push(&format!(
                " ORDER BY {expression} {direction}, id {direction} LIMIT "
            ))
            .push_bind(i64::from(limit) + 1);
        let mut records = builder
            .query()
            .fetch_all(pool)
            .await?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if records.len() > limit as usize {
            records.truncate(limit as usize);
            records.last().map(|record| {
                let (value, id) = key(record);
                Cursor {
                    created_at: value,
                    id: id.to_owned(),
                }
                .encode()
            })
        } else {
            None
        };
        Ok((records, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_no_page_returned() {
        let cursor = Cursor::parse("1700000000000:abc").unwrap();
        assert_eq!(
            (cursor.created_at, cursor.id.as_str()),
            (1_700_000_000_000, "abc")
        );
        assert_eq!(cursor.encode(), "1700000000000:abc");
        // A negative key (ascending sorts never produce one, but the format carries any i64).
        assert_eq!(Cursor::parse("-5:x").unwrap().encode(), "-5:x");
        for bad in ["", "abc", "12:", "x:1", ":id"] {
            let error = Cursor::parse(bad).err().unwrap();
            assert!(is_invalid_cursor(&error), "{bad}");
        }
    }
}
