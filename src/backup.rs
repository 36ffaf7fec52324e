//! Copies of the database: `loa backup FILE` while Loa runs, `loa restore FILE` while it does
//! not, and the daily copy `loa run` makes when `[backup] dir` is set.
//!
//! SQLite: `VACUUM INTO` writes a consistent copy from one read transaction while the workers
//! go on writing (WAL), into a `.partial` file renamed when complete, so a copy that exists is
//! whole. PostgreSQL: `pg_dump --format=custom`, the tool the server's own version ships; when
//! it is not installed the error says what to install or run. A backup never overwrites a
//! file.
//!
//! A restore refuses while any worker has stamped itself alive on the database in the last
//! seconds (`dispatch::live_workers`): replacing a database under a running process would lose
//! what it writes next and could send everything twice. The database it replaces is kept
//! beside it (`<file>.before-restore-<time>`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::BackupConfig;
use crate::store::{Backend, Db, to_epoch};

/// Why a backup or a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The caller's to fix: a file that exists, a file that is no backup, Loa running.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The SQLite file behind a `sqlite:` URL, `None` for PostgreSQL.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    Some(PathBuf::from(path.split('?').next().unwrap_or_default()))
}

/// Copies the database of `url` (open as `db`) to `file`, which must not exist. Returns the
/// copy's size in bytes.
pub async fn backup(db: &Db, url: &str, file: &Path) -> Result<u64, BackupError> {
    if file.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists: a backup never overwrites a file; choose a new name",
            file.display()
        )));
    }
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    let partial = partial_name(file);
    let _ = std::fs::remove_file(&partial);
    let written = match db.backend {
        Backend::Sqlite => match partial.to_str() {
            None => Err(BackupError::Refused(format!(
                "{} is not a UTF-8 path",
                file.display()
            ))),
            Some(target) => sqlx::query("VACUUM INTO $1")
                .bind(target)
                .execute(&db.pool)
                .await
                .map(|_| ())
                .with_context(|| format!("cannot write {}", partial.display()))
                .map_err(BackupError::from),
        },
        Backend::Postgres => pg_dump(url, &partial).await,
    };
    if let Err(e) = written {
        // Half a copy on a full disk would keep it full.
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, file)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), file.display()))?;
    Ok(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0))
}

fn partial_name(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A PostgreSQL URL without its password, and the password: the password goes to the tool by
/// `PGPASSWORD`, since any local user can read a process's arguments.
fn split_password(url: &str) -> (String, Option<String>) {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let password = parsed.password().map(percent_decode);
            let _ = parsed.set_password(None);
            (parsed.to_string(), password)
        }
        _ => (url.to_string(), None),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `tool` with the database named without its password (given in its environment).
fn pg_tool(tool: &str, url: &str) -> tokio::process::Command {
    let (url, password) = split_password(url);
    let mut command = tokio::process::Command::new(tool);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command.arg("--dbname").arg(url);
    command
}

async fn pg_dump(url: &str, file: &Path) -> Result<(), BackupError> {
    let output = pg_tool("pg_dump", url)
        .arg("--format=custom")
        .arg("--no-owner")
        .arg("--file")
        .arg(file)
        .output()
        .await;
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BackupError::Refused(
            "pg_dump is not installed: install the PostgreSQL client of the server's version \
             (Debian: apt-get install postgresql-client), or run \
             `pg_dump --format=custom --file FILE \"$LOA_DATABASE_URL\"` where it is"
                .into(),
        )),
        Err(e) => Err(anyhow::anyhow!("cannot run pg_dump: {e}").into()),
        Ok(out) if !out.status.success() => Err(anyhow::anyhow!(
            "pg_dump failed: {}",
            crate::store::redact_url(String::from_utf8_lossy(&out.stderr).trim())
        )
        .into()),
        Ok(_) => Ok(()),
    }
}

/// Puts the backup `file` in place of the database of `url`, which no worker may be using:
/// `db` is that database, open. The database it replaces is kept beside it; returns where.
pub async fn restore(db: Db, url: &str, file: &Path) -> Result<Option<PathBuf>, BackupError> {
    if !file.is_file() {
        return Err(BackupError::Refused(format!(
            "{}: no such backup file",
            file.display()
        )));
    }
    let live = running_workers(&db)
        .await
        .context("cannot tell whether Loa is running on this database")?;
    if live > 0 {
        return Err(BackupError::Refused(format!(
            "Loa is running on this database ({live} worker(s) stamped alive in the last seconds): \
             stop it first (systemctl stop loa), then restore"
        )));
    }
    match db.backend {
        Backend::Sqlite => {
            db.close().await;
            let target = sqlite_file(url).expect("a SQLite URL");
            restore_sqlite(file, &target).await
        }
        Backend::Postgres => {
            // What is replaced is kept, as for SQLite: beside the backup.
            let mut name = file.as_os_str().to_owned();
            name.push(format!(
                ".before-restore-{}.dump",
                Utc::now().format("%Y%m%dT%H%M%SZ")
            ));
            let kept = PathBuf::from(name);
            pg_dump(url, &kept).await?;
            // Into an empty schema: `--clean` drops only what the dump holds, and tables of a
            // later version than the backup's would stay and stop the next migration.
            let emptied = sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
                .execute(&db.pool)
                .await;
            db.close().await;
            emptied.with_context(|| {
                format!(
                    "cannot empty the database before restoring (nothing was changed; the current one is also in {})",
                    kept.display()
                )
            })?;
            pg_restore(url, file).await.map_err(|e| match e {
                BackupError::Refused(why) => BackupError::Refused(format!(
                    "{why}; the database is now empty: restore the previous one from {}",
                    kept.display()
                )),
                BackupError::Failed(e) => BackupError::Failed(e.context(format!(
                    "the database is now empty: restore the previous one from {}",
                    kept.display()
                ))),
            })?;
            Ok(Some(kept))
        }
    }
}

/// Workers alive on the database now: by their liveness stamps, or, on a database of a version
/// before them, by the rate share's heartbeat (Loa's clock, every second).
async fn running_workers(db: &Db) -> Result<i64, sqlx::Error> {
    match crate::dispatch::live_workers(db).await {
        Ok(n) => Ok(n),
        Err(e) if e.to_string().contains("alive_at") => {
            sqlx::query_scalar("SELECT COUNT(*) FROM dispatch_workers WHERE heartbeat_at >= $1")
                .bind(to_epoch(Utc::now()) - 10)
                .fetch_one(&db.pool)
                .await
        }
        // A database Loa never ran on.
        Err(e) if e.to_string().contains("dispatch_workers") => Ok(0),
        Err(e) => Err(e),
    }
}

async fn restore_sqlite(file: &Path, target: &Path) -> Result<Option<PathBuf>, BackupError> {
    // Checked on the copy about to take the database's place, never on the backup itself
    // (opening a SQLite file writes beside it).
    let partial = partial_name(target);
    std::fs::copy(file, &partial)
        .with_context(|| format!("cannot copy {} to {}", file.display(), partial.display()))?;
    if let Err(why) = check_sqlite_copy(&partial).await {
        remove_with_sides(&partial);
        return Err(BackupError::Refused(format!(
            "{}: {why}; nothing was restored",
            file.display()
        )));
    }
    let kept = if target.exists() {
        let mut name = target.as_os_str().to_owned();
        name.push(format!(
            ".before-restore-{}",
            Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        let kept = PathBuf::from(name);
        std::fs::rename(target, &kept)
            .with_context(|| format!("cannot move {} aside", target.display()))?;
        // Its write-ahead log goes with it (empty once Loa stopped cleanly, but not always).
        for suffix in ["-wal", "-shm"] {
            let (mut from, mut to) = (target.as_os_str().to_owned(), kept.as_os_str().to_owned());
            from.push(suffix);
            to.push(suffix);
            let _ = std::fs::rename(PathBuf::from(from), PathBuf::from(to));
        }
        Some(kept)
    } else {
        None
    };
    // The replaced database's write-ahead log must not be replayed into the restored one.
    remove_with_sides(target);
    std::fs::rename(&partial, target).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            target.display()
        )
    })?;
    Ok(kept)
}

/// A whole Loa database: it opens, passes SQLite's integrity check, has migrations recorded.
async fn check_sqlite_copy(copy: &Path) -> Result<(), String> {
    let db = Db::connect(&format!("sqlite://{}", copy.display()))
        .await
        .map_err(|e| format!("not a database ({e})"))?;
    let verdict: Result<(String, i64), sqlx::Error> = async {
        let ok: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&db.pool)
            .await?;
        let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&db.pool)
            .await?;
        Ok((ok, migrations))
    }
    .await;
    db.close().await;
    match verdict {
        Ok((ok, n)) if ok == "ok" && n > 0 => Ok(()),
        Ok((ok, _)) if ok != "ok" => Err(format!("the integrity check failed ({ok})")),
        Ok(_) => Err("not a Loa database (no migrations recorded)".into()),
        Err(e) => Err(format!("not a Loa database ({e})")),
    }
}

/// Deletes a SQLite file's write-ahead log and shared memory (the file itself only for
/// `.partial` copies, whose name ends so).
fn remove_with_sides(file: &Path) {
    for suffix in ["-wal", "-shm"] {
        let mut side = file.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    if file.extension().is_some_and(|e| e == "partial") {
        let _ = std::fs::remove_file(file);
    }
}

async fn pg_restore(url: &str, file: &Path) -> Result<(), BackupError> {
    let output = pg_tool("pg_restore", url)
        .args(["--no-owner", "--single-transaction"])
        .arg(file)
        .output()
        .await;
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BackupError::Refused(
            "pg_restore is not installed: install the PostgreSQL client of the server's version \
             (Debian: apt-get install postgresql-client)"
                .into(),
        )),
        Err(e) => Err(anyhow::anyhow!("cannot run pg_restore: {e}").into()),
        Ok(out) if !out.status.success() => Err(anyhow::anyhow!(
            "pg_restore failed: {}",
            crate::store::redact_url(String::from_utf8_lossy(&out.stderr).trim())
        )
        .into()),
        Ok(_) => Ok(()),
    }
}

/// The daily copy's name for a local day: `loa-2027-03-08.db` (SQLite) or `.dump`.
fn daily_name(day: chrono::NaiveDate, backend: Backend) -> String {
    let ext = match backend {
        Backend::Sqlite => "db",
        Backend::Postgres => "dump",
    };
    format!("loa-{}.{ext}", day.format("%Y-%m-%d"))
}

/// What the daily backup did at one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daily {
    /// Not configured, not yet time, or today's copy exists.
    Nothing,
    /// Wrote this copy and deleted these older ones.
    Made {
        file: PathBuf,
        removed: Vec<PathBuf>,
    },
}

/// Makes today's copy if `[backup] dir` is set, it is past `at` (campaign time) and it does
/// not exist yet; then keeps the last `keep` copies. Several processes on one machine see the
/// same file and make one.
pub async fn daily(
    db: &Db,
    url: &str,
    config: &BackupConfig,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Daily, BackupError> {
    let Some(dir) = &config.dir else {
        return Ok(Daily::Nothing);
    };
    let local = now.with_timezone(&tz);
    if local.time() < config.at {
        return Ok(Daily::Nothing);
    }
    let file = dir.join(daily_name(local.date_naive(), db.backend));
    if file.exists() {
        return Ok(Daily::Nothing);
    }
    backup(db, url, &file).await?;
    let mut copies: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            // Copies dated after today (a clock set wrong once) are left alone: sorted last,
            // they would make today's copy the oldest.
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(daily_date)
                .is_some_and(|day| day <= local.date_naive())
        })
        .collect();
    // The names sort by day.
    copies.sort();
    let surplus = copies.len().saturating_sub(config.keep as usize);
    let removed: Vec<PathBuf> = copies
        .into_iter()
        .filter(|p| *p != file)
        .take(surplus)
        .collect();
    for old in &removed {
        std::fs::remove_file(old).with_context(|| format!("cannot delete {}", old.display()))?;
    }
    Ok(Daily::Made { file, removed })
}

/// The day of a daily copy's name, `loa-YYYY-MM-DD.db` or `.dump`: only Loa's own daily copies
/// are ever deleted.
fn daily_date(name: &str) -> Option<chrono::NaiveDate> {
    let (day, ext) = name.strip_prefix("loa-")?.split_once('.')?;
    if !matches!(ext, "db" | "dump") {
        return None;
    }
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loas_daily_copies_are_candidates_for_deletion() {
        assert!(daily_date("loa-2027-03-08.db").is_some());
        assert!(daily_date("loa-2027-03-08.dump").is_some());
        for other in [
            "loa-2027-03-08.db.partial",
            "loa-2027-13-08.db",
            "loa.db",
            "loa-before-upgrade.db",
            "ke-hoach-2027.xlsx",
        ] {
            assert!(daily_date(other).is_none(), "{other}");
        }
    }

    #[test]
    fn a_password_goes_to_pg_tools_by_their_environment_not_their_arguments() {
        assert_eq!(
            split_password("postgres://loa:m%40t-kh%E1%BA%A9u@db:5432/loa"),
            (
                "postgres://loa@db:5432/loa".to_string(),
                Some("m@t-khẩu".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1:5432/test"),
            ("postgres://postgres@127.0.0.1:5432/test".to_string(), None)
        );
    }

    #[test]
    fn the_file_behind_a_sqlite_url() {
        assert_eq!(
            sqlite_file("sqlite://data/loa.db?mode=rwc"),
            Some(PathBuf::from("data/loa.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/loa/loa.db"),
            Some(PathBuf::from("/var/lib/loa/loa.db"))
        );
        assert_eq!(sqlite_file("postgres://loa@db/loa"), None);
    }
}
