//! Embedded mode decides budgets, quotas and rate limits in this process's memory, so it must be
//! the only gateway on its database: a second one would keep counters of its own and both would
//! admit up to every limit. [`SingleWriter::claim`] makes that a start-up error instead of a silent
//! overspend — several replicas need `ODOCK_REDIS_URL`, which shares the counters.
//!
//! - SQLite: an exclusive lock on `<database>.lock` beside the file.
//! - PostgreSQL: a session-level advisory lock keyed by the schema, held on a connection of its
//!   own for the process's lifetime (so replicas of other deployments in other schemas of the same
//!   database are not affected).
//!
//! Both are released by the operating system or PostgreSQL when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use sqlx::Connection;

use crate::config::Config;

/// What to tell an operator who started a second embedded-mode server on one database.
const SECOND_WRITER: &str = "another odock-server without Redis already uses this database: \
     in embedded mode one process decides budgets, quotas and rate limits, and two would each \
     admit up to every limit. Stop it, or set ODOCK_REDIS_URL on every replica to share them";

/// Held while this process is the database's only embedded-mode gateway.
#[derive(Debug)]
pub enum SingleWriter {
    /// Redis shares the counters (or the database is in memory): nothing to hold.
    NotNeeded,
    /// The exclusive lock on `<database>.lock` (SQLite).
    SqliteLock(File),
    /// The connection holding the advisory lock (PostgreSQL).
    PostgresLock(sqlx::AnyConnection),
}

impl SingleWriter {
    /// Claims the database for this process, or explains why it cannot.
    pub async fn claim(config: &Config) -> Result<Self, String> {
        if config.redis_url.is_some() {
            return Ok(Self::NotNeeded);
        }
        if let Some(path) = config.sqlite_path() {
            return lock_file(&path).map(Self::SqliteLock);
        }
        match odock_store::db::Backend::of_url(&config.database_url) {
            Some(odock_store::db::Backend::Postgres) => lock_schema(&config.database_url)
                .await
                .map(Self::PostgresLock),
            _ => Ok(Self::NotNeeded),
        }
    }
}

fn lock_file(database: &Path) -> Result<File, String> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&name)
        .map_err(|error| format!("lock file {}: {error}", Path::new(&name).display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(SECOND_WRITER.to_owned()),
        Err(TryLockError::Error(error)) => {
            Err(format!("lock file {}: {error}", Path::new(&name).display()))
        }
    }
}

async fn lock_schema(url: &str) -> Result<sqlx::AnyConnection, String> {
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .map_err(|error| format!("database: {error}"))?;
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtext('odock-embedded:' || current_schema()))",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|error| format!("database: {error}"))?;
    if locked {
        Ok(conn)
    } else {
        Err(SECOND_WRITER.to_owned())
    }
}
