//! The database: one sqlx pool over SQLite (the embedded default) or PostgreSQL (several
//! processes), migrations, and the few statements that differ between the two.
//!
//! Queries go through sqlx's `Any` driver so each module writes its SQL once; columns are
//! limited to what both speak (integers, text). Times are UTC seconds since the epoch.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Arguments;
use sqlx::any::{AnyArguments, AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Migrations edited in place after they were released, before an upgrade test could catch
/// it: (backend, version, SHA-384 of the text first released). 20261129000008 as released in
/// f1e8526 made `deliveries_reached` whole; 4fac3b7 made it partial in the same file, and
/// 20261204000020 now makes it partial for everyone. Never edit a released migration again:
/// `tests/upgrade.rs` fails when one changes.
const EDITED_AFTER_RELEASE: [(Backend, i64, &str); 2] = [
    (
        Backend::Sqlite,
        20261129000008,
        "24658b2f8a733a1ca51ca55cff9609f26e8b9e3174b97f3274c8639fd56ca0e38fed370b68bb6a1e3b208a9d3e7a6c18",
    ),
    (
        Backend::Postgres,
        20261129000008,
        "dc99d3a802df7a38804a81777a6fcd921228e7586763fa2e996bc921c14c883ce1a4e1009d9506808364de33a56dc744",
    ),
];

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn migrator(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Every migration of this version, oldest first: (version, description).
    pub fn migrations(self) -> Vec<(i64, String)> {
        self.migrator()
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    }

    /// The database's own clock in milliseconds since the epoch, as an SQL expression: for what
    /// must not depend on a clock one process can move or freeze (a worker's liveness).
    pub fn now_millis(self) -> &'static str {
        match self {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: expected sqlite:… or postgres://…")]
    Unsupported(String),
}

/// A pool and which database it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// Opens (and for SQLite creates, with its folder) the database at `url`.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let file = path.split('?').next().unwrap_or_default();
            if let Some(parent) = Path::new(file)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            // mode=rwc: create the file on first run.
            let url = if path.contains("mode=") {
                url.to_string()
            } else if path.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else {
            return Err(StoreError::Unsupported(url.to_string()));
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(30));
        let options = if backend == Backend::Sqlite {
            // An embedded file does not go away between queries: no ping before each one (a
            // round trip through sqlx's SQLite worker thread, a third of a transaction's cost).
            options
                .test_before_acquire(false)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // WAL lets the web server read while a worker writes; NORMAL is safe with WAL.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        Ok(())
                    })
                })
        } else {
            options
        };
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_url(&url),
                source,
            })?;
        Ok(Db { pool, backend })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = self.migrator();
        self.accept_edited_migrations(migrator)
            .await
            .map_err(|e| StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)))?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        self.backend.migrator()
    }

    /// A database that applied a migration's first released text records that text's checksum,
    /// which sqlx would refuse as "modified": the record is moved to today's text, and a later
    /// migration makes the schema what today's text makes (see [`EDITED_AFTER_RELEASE`]).
    async fn accept_edited_migrations(
        &self,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<(), sqlx::Error> {
        for (backend, version, released) in EDITED_AFTER_RELEASE {
            if backend != self.backend {
                continue;
            }
            let Some(today) = migrator.iter().find(|m| m.version == version) else {
                continue;
            };
            let updated = sqlx::query(
                "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2 AND checksum = $3",
            )
            .bind(today.checksum.to_vec())
            .bind(version)
            .bind(from_hex(released))
            .execute(&self.pool)
            .await;
            match updated {
                Ok(done) if done.rows_affected() > 0 => tracing::info!(
                    version,
                    "migration {version} was applied as first released; accepted as today's"
                ),
                Ok(_) => {}
                // A new database: nothing applied, nothing to accept.
                Err(e) if e.to_string().contains("_sqlx_migrations") => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The migrations of this version not applied to the database yet, oldest first:
    /// (version, description).
    pub async fn pending_migrations(&self) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let migrator = self.migrator();
        // A database never migrated has no table yet: everything is pending.
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await
            {
                Ok(versions) => versions,
                Err(e) if e.to_string().contains("_sqlx_migrations") => Vec::new(),
                Err(e) => return Err(e),
            };
        Ok(migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// `SELECT 1`, for `/healthz`.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A URL fit for logs: the password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A statement whose placeholders are numbered as values are bound — `$1`, `$2`, … in the
/// order of [`Sql::bind`] — so no caller counts them by hand, however many rows a `VALUES`
/// list or an `IN (…)` holds.
pub struct Sql {
    text: String,
    args: Result<AnyArguments, sqlx::error::BoxDynError>,
    count: usize,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: Ok(AnyArguments::default()),
            count: 0,
        }
    }

    /// Appends SQL text. Only text written in the code: values go through [`Sql::bind`].
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn bind<'t, T>(&mut self, value: T) -> &mut Sql
    where
        T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.count += 1;
        self.text.push('$');
        self.text.push_str(&self.count.to_string());
        if let Ok(args) = &mut self.args
            && let Err(e) = args.add(value)
        {
            self.args = Err(e);
        }
        self
    }

    /// `(v, v, …)` for each item: `row` binds one item's values, separated by commas.
    pub fn tuples<I, F>(&mut self, items: I, mut row: F) -> &mut Sql
    where
        I: IntoIterator,
        F: FnMut(&mut Tuple<'_>, I::Item),
    {
        for (i, item) in items.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            row(
                &mut Tuple {
                    sql: self,
                    first: true,
                },
                item,
            );
            self.push(")");
        }
        self
    }

    /// `v, v, …`: each item bound, separated by commas (for `IN (…)`).
    pub fn list<'t, I, T>(&mut self, items: I) -> &mut Sql
    where
        I: IntoIterator<Item = T>,
        T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(item);
        }
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The query to run; a value that could not be encoded is the error.
    pub fn query(
        self,
    ) -> Result<sqlx::query::Query<'static, sqlx::Any, AnyArguments>, sqlx::Error> {
        let args = self.args.map_err(sqlx::Error::Encode)?;
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.text), args))
    }
}

/// The values of one row of [`Sql::tuples`].
pub struct Tuple<'a> {
    sql: &'a mut Sql,
    first: bool,
}

impl Tuple<'_> {
    pub fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        if !std::mem::take(&mut self.first) {
            self.sql.push(", ");
        }
        self.sql.bind(value);
        self
    }

    /// A literal written in the code (a state's spelling), not a value.
    pub fn literal(&mut self, text: &str) -> &mut Self {
        if !std::mem::take(&mut self.first) {
            self.sql.push(", ");
        }
        self.sql.push(text);
        self
    }
}

pub fn to_epoch(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

pub fn from_epoch(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact_url("postgres://loa:secret@db:5432/loa"),
            "postgres://loa:***@db:5432/loa"
        );
        assert_eq!(redact_url("sqlite://data/loa.db"), "sqlite://data/loa.db");
    }

    #[test]
    fn placeholders_are_numbered_as_values_are_bound() {
        let mut sql = Sql::new("INSERT INTO t (a, b, c) VALUES ");
        sql.tuples([(1_i64, "x"), (2, "y")], |row, (a, b)| {
            row.bind(a).bind(b).literal("'pending'");
        });
        sql.push(" WHERE a IN (").list([5_i64, 6, 7]).push(")");
        assert_eq!(
            sql.text(),
            "INSERT INTO t (a, b, c) VALUES ($1, $2, 'pending'), ($3, $4, 'pending') WHERE a IN ($5, $6, $7)"
        );
    }

    #[tokio::test]
    async fn sqlite_file_and_folder_are_created_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/loa.db", dir.path().display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        assert!(dir.path().join("nested/loa.db").exists());
        assert!(db.ping().await);
    }
}
