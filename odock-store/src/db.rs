//! Connecting to the database (SQLite or PostgreSQL) and running migrations.
//!
//! Every repository takes a [`Db`], an sqlx `Any` pool, and writes SQL both backends run unchanged:
//! `$n` placeholders, INTEGER/BIGINT for integers, booleans (0/1) and unix-millisecond timestamps,
//! TEXT for JSON. The few places where the dialects differ ask [`backend`] which one they talk to.

use std::fmt::Write as _;
use std::sync::Once;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::query::Query;
use sqlx::{Any, Executor};

/// The pool every repository takes, and its row and write-result types. Code names these, never a
/// backend's own types, so the same repository code serves SQLite and PostgreSQL.
pub type Db = sqlx::AnyPool;
/// A row read through [`Db`].
pub type DbRow = sqlx::any::AnyRow;
/// What a write through [`Db`] reports (rows affected).
pub type DbQueryResult = sqlx::any::AnyQueryResult;
/// One connection of [`Db`], for transactions and per-connection work.
pub type DbConnection = sqlx::AnyConnection;

/// Why a database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL `{0}` (expected sqlite://... or postgres://...)")]
    UnsupportedUrl(String),
    /// The driver failed (connecting or querying).
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file (or its directory) could not be created.
    #[error("cannot create the database file {path}: {source}")]
    CreateFile {
        /// The file that could not be created.
        path: std::path::PathBuf,
        /// Why the file system refused.
        source: std::io::Error,
    },
}

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, through a `sqlite://` URL.
    Sqlite,
    /// PostgreSQL, through a `postgres://` URL.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The backend's name in logs and metrics (`sqlite`, `postgres`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The backend of a connection.
pub fn connection_backend(conn: &DbConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// The backend of a pool (from its connection URL).
pub fn backend(pool: &Db) -> Backend {
    Backend::of_url(pool.connect_options().database_url.as_str()).unwrap_or(Backend::Sqlite)
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections the pool opens (default 8).
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing (default 10 s).
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

fn install_drivers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(sqlx::any::install_default_drivers);
}

/// SQLite settings every connection gets: WAL (readers never wait for the writer), foreign keys,
/// a busy timeout so writers queue instead of failing, and a 1 MiB page cache per connection (the
/// operating system caches the file too; the writer's hot pages are the right edges of the usage
/// indexes, a few dozen pages).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -1024;";

/// The page cache a report's connection gets while it runs: SQLite sorts a `GROUP BY` in memory
/// only up to the page cache's size and spills to temporary files beyond it, which made grouped
/// reports over tens of thousands of rollup rows several times slower.
const SQLITE_REPORT_CACHE: &str = "PRAGMA cache_size = -32768";
const SQLITE_DEFAULT_CACHE: &str = "PRAGMA cache_size = -1024";

/// A pooled connection for a report (large reads and sorts): on SQLite its page cache is raised
/// to 32 MiB until [`end_report`] sets it back. A report cancelled in between leaves one pooled
/// connection with the larger cache until its next report ends, which costs memory, never
/// correctness.
pub async fn report_connection(
    pool: &Db,
) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if backend(pool) == Backend::Sqlite {
        sqlx::query(SQLITE_REPORT_CACHE).execute(&mut *conn).await?;
    }
    Ok(conn)
}

/// Gives a [`report_connection`]'s page cache back (the pages beyond the default are freed).
pub async fn end_report(
    mut conn: sqlx::pool::PoolConnection<sqlx::Any>,
) -> Result<(), sqlx::Error> {
    if connection_backend(&conn) == Backend::Sqlite {
        sqlx::query(SQLITE_DEFAULT_CACHE)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Opens the database at `url` (`sqlite://path` — created if missing — or `postgres://...`) and
/// applies every migration of its backend.
pub async fn connect(url: &str, options: &DbOptions) -> Result<Db, DbError> {
    install_drivers();
    let backend = Backend::of_url(url).ok_or_else(|| DbError::UnsupportedUrl(url.to_owned()))?;
    let pool_options = AnyPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout);
    let pool = match backend {
        Backend::Sqlite => {
            if let Some(path) = sqlite_file(url) {
                create_private(&path)?;
            }
            pool_options
                .after_connect(|conn, _| {
                    Box::pin(async move { conn.execute(SQLITE_PRAGMAS).await.map(|_| ()) })
                })
                .connect(&sqlite_create_url(url))
                .await?
        }
        Backend::Postgres => pool_options.connect(url).await?,
    };
    migrate(&pool).await?;
    Ok(pool)
}

/// A fresh in-memory SQLite database with the schema applied (tests, examples).
pub async fn connect_in_memory() -> Result<Db, DbError> {
    install_drivers();
    // One connection, never recycled: every connection to `:memory:` is a different database.
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(|conn, _| {
            Box::pin(async move { conn.execute("PRAGMA foreign_keys = ON;").await.map(|_| ()) })
        })
        .connect("sqlite::memory:")
        .await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies the migrations of the pool's backend.
pub async fn migrate(pool: &Db) -> Result<(), DbError> {
    match backend(pool) {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(pool).await?,
    }
    Ok(())
}

/// The file behind a `sqlite://path` / `sqlite:path` URL; `None` for in-memory databases.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path.is_empty() || path.contains(":memory:") || query.contains("mode=memory");
    (!in_memory).then(|| std::path::PathBuf::from(path))
}

/// Creates a missing SQLite file readable by its owner only (0600, whatever the umask), before
/// SQLite opens it: SQLite gives the `-wal` and `-shm` files it creates the main file's mode, so
/// they are private too. An existing file is left as it is, with a warning when others may read it.
fn create_private(path: &std::path::Path) -> Result<(), DbError> {
    let failed = |source| DbError::CreateFile {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(file) => {
            // The mode given at creation is masked by the umask; set it outright.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(failed)?;
            }
            drop(file);
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "the database file is readable by other users; `chmod 600` it (and its -wal/-shm files)");
                    }
                }
            }
            Ok(())
        }
        Err(error) => Err(failed(error)),
    }
}

/// `sqlite://path` with `mode=rwc` so a missing database file is created.
fn sqlite_create_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// A value bound to a [`SqlBuilder`] placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A text value; `None` binds NULL.
    Text(Option<String>),
    /// An integer value (also booleans and timestamps in ms); `None` binds NULL.
    Int(Option<i64>),
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(Some(value.to_owned()))
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(Some(value))
    }
}

impl From<Option<&str>> for Param {
    fn from(value: Option<&str>) -> Self {
        Param::Text(value.map(str::to_owned))
    }
}

impl From<Option<String>> for Param {
    fn from(value: Option<String>) -> Self {
        Param::Text(value)
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Int(Some(value))
    }
}

impl From<Option<i64>> for Param {
    fn from(value: Option<i64>) -> Self {
        Param::Int(value)
    }
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Param::Int(Some(i64::from(value)))
    }
}

/// Builds a statement with a variable shape (optional filters, multi-row inserts) whose
/// placeholders are numbered `$1, $2, …` — the spelling both backends accept. (sqlx's own
/// `QueryBuilder` writes `?` under `Any`, which PostgreSQL refuses.)
///
/// SQLite looks numbered and named parameters (`?1`, `$1`) up linearly when parsing and binding,
/// so a statement with thousands of them takes quadratic time; [`SqlBuilder::for_backend`] makes
/// it write plain positional `?` there instead (the builder binds in order of appearance).
#[derive(Debug, Default, Clone)]
pub struct SqlBuilder {
    sql: String,
    params: Vec<Param>,
    positional: bool,
}

impl SqlBuilder {
    /// A builder starting with `sql`, numbering placeholders `$1, $2, …`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
            positional: false,
        }
    }

    /// Writes placeholders in the spelling `backend` handles fastest (`?` on SQLite, `$n` on
    /// PostgreSQL). Use for statements with many placeholders (multi-row inserts); text pushed
    /// into such a builder must not contain placeholders of its own.
    pub fn for_backend(mut self, backend: Backend) -> Self {
        self.positional = backend == Backend::Sqlite;
        self
    }

    /// Appends SQL text (from code, never from clients).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn push_bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.params.push(value.into());
        if self.positional {
            self.sql.push('?');
        } else {
            // Writing to a String cannot fail.
            let _ = write!(self.sql, "${}", self.params.len());
        }
        self
    }

    /// Appends `(p, p, …)` with one placeholder per value: a row of a multi-row INSERT or an IN list.
    pub fn push_tuple<I>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Into<Param>,
    {
        self.sql.push('(');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.push_bind(value);
        }
        self.sql.push(')');
        self
    }

    /// The statement written so far.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// How many values are bound so far.
    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    /// The statement with every value bound, ready to execute or fetch.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        self.params
            .iter()
            .fold(sqlx::query(&self.sql), |query, param| match param {
                Param::Text(text) => query.bind(text.as_deref()),
                Param::Int(int) => query.bind(*int),
            })
    }
}

/// Timestamps are stored as unix milliseconds.
pub fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The instant a stored unix-millisecond timestamp stands for (the epoch for one out of range).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The current time in unix milliseconds, as stored.
pub fn now_ms() -> i64 {
    to_ms(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_and_its_wal_and_shm_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odock.db");
        let pool = connect(
            &format!("sqlite://{}", path.display()),
            &DbOptions::default(),
        )
        .await
        .unwrap();
        // A write, so the WAL and shared-memory files exist.
        sqlx::query("INSERT INTO sign_in_throttle (scope, failures, window_start, locked_until, updated_at) VALUES ('x', 1, 0, 0, 0)")
            .execute(&pool)
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("odock.db{suffix}"));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}: {mode:o}", file.display());
        }
        pool.close().await;
        assert_eq!(
            sqlite_file("sqlite://data/odock.db?mode=rwc"),
            Some("data/odock.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(
            sqlite_file("sqlite://file.db?mode=memory&cache=shared"),
            None
        );
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[test]
    fn builder_numbers_placeholders_in_order() {
        let mut sql = SqlBuilder::new("SELECT id FROM t WHERE a = ");
        sql.push_bind("x")
            .push(" AND b IN ")
            .push_tuple([1_i64, 2, 3]);
        assert_eq!(
            sql.sql(),
            "SELECT id FROM t WHERE a = $1 AND b IN ($2, $3, $4)"
        );
        assert_eq!(sql.param_count(), 4);
        let mut sql = SqlBuilder::new("VALUES ").for_backend(Backend::Sqlite);
        sql.push_tuple(["a", "b"]);
        assert_eq!(sql.sql(), "VALUES (?, ?)");
    }

    #[test]
    fn urls_name_their_backend() {
        assert_eq!(Backend::of_url("sqlite://odock.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("mysql://u@h/db"), None);
        assert_eq!(sqlite_create_url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
    }

    #[tokio::test]
    async fn in_memory_sqlite_has_the_schema_and_knows_its_backend() {
        let pool = connect_in_memory().await.unwrap();
        assert_eq!(backend(&pool), Backend::Sqlite);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organisations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(count, 0);
    }
}
