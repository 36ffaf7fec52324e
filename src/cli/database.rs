//! `loa migrate`, `loa backup FILE`, `loa restore FILE`, `loa doctor`: the database's and the
//! server's life.

use std::path::Path;

use super::CliError;
use crate::app::Setup;
use crate::backup::{self, BackupError};
use crate::config::Env;
use crate::doctor::{self, Finding, Level};
use crate::store::{Db, redact_url};

impl From<BackupError> for CliError {
    fn from(e: BackupError) -> CliError {
        match e {
            BackupError::Refused(why) => CliError::Input(why),
            BackupError::Failed(e) => CliError::Other(e),
        }
    }
}

/// Applies the migrations this version has and the database lacks; with `dry_run`, lists them.
pub(super) async fn migrate(config: &Path, env: &Env, dry_run: bool) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    if !dry_run {
        setup.open_database().await?;
        outln!("database is up to date");
        return Ok(());
    }
    let url = redact_url(&setup.config.database_url);
    let pending = match backup::sqlite_file(&setup.config.database_url) {
        // No file yet: everything would run, and a dry run does not create one.
        Some(file) if !file.exists() => crate::store::Backend::Sqlite.migrations(),
        _ => {
            let db = Db::connect(&setup.config.database_url)
                .await
                .map_err(anyhow::Error::from)?;
            let pending = db.pending_migrations().await;
            db.close().await;
            pending.map_err(anyhow::Error::from)?
        }
    };
    if pending.is_empty() {
        outln!("{url}: up to date; nothing would run");
    } else {
        outln!("{url}: {} migration(s) would run:", pending.len());
        for (version, description) in pending {
            outln!("  {version}  {description}");
        }
    }
    Ok(())
}

/// The configured database as it is: not created, not migrated (a backup taken with a new
/// binary must not upgrade the database under the old one still running).
async fn existing_database(setup: &Setup) -> Result<Db, CliError> {
    if let Some(file) = backup::sqlite_file(&setup.config.database_url)
        && !file.exists()
    {
        return Err(CliError::Input(format!(
            "{}: no such database (check LOA_DATABASE_URL)",
            file.display()
        )));
    }
    Ok(Db::connect(&setup.config.database_url)
        .await
        .map_err(anyhow::Error::from)?)
}

pub(super) async fn backup(config: &Path, env: &Env, file: &Path) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let db = existing_database(&setup).await?;
    let bytes = backup::backup(&db, &setup.config.database_url, file).await;
    db.close().await;
    let bytes = bytes?;
    outln!(
        "backed up {} to {} ({:.1} MB)",
        redact_url(&setup.config.database_url),
        file.display(),
        bytes as f64 / 1e6
    );
    Ok(())
}

pub(super) async fn restore(config: &Path, env: &Env, file: &Path) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    if !file.is_file() {
        return Err(CliError::Input(format!(
            "{}: no such backup file",
            file.display()
        )));
    }
    let db = existing_database(&setup).await?;
    let kept = backup::restore(db, &setup.config.database_url, file).await?;
    // The copy may come from an older version: bring it up to this one now.
    setup.open_database().await?.close().await;
    outln!(
        "restored {} into {}",
        file.display(),
        redact_url(&setup.config.database_url)
    );
    if let Some(kept) = kept {
        outln!("the database it replaced is kept as {}", kept.display());
    }
    Ok(())
}

/// `loa doctor`: one line per check, what to do under each warning and failure; exit 1 when
/// anything fails.
pub(super) async fn doctor(
    config: &Path,
    env: &Env,
    clock: Option<String>,
) -> Result<(), CliError> {
    let now = match clock {
        None => chrono::Utc::now(),
        Some(at) => chrono::DateTime::parse_from_rfc3339(&at)
            .map_err(|e| {
                CliError::Input(format!(
                    "--clock {at:?}: {e} (expected e.g. 2027-03-08T07:00:00+07:00)"
                ))
            })?
            .to_utc(),
    };
    let findings = match Setup::load(config, env) {
        Ok(setup) => doctor::examine(&setup, now).await,
        Err(problems) => problems
            .0
            .iter()
            .map(|p| Finding {
                level: Level::Failing,
                topic: "configuration",
                text: p.to_string(),
                fix: Some("fix the file and line named; `loa check` says the same".into()),
            })
            .collect(),
    };
    for f in &findings {
        let level = match f.level {
            Level::Ok => "ok     ",
            Level::Warning => "warning",
            Level::Failing => "FAILING",
        };
        outln!("{level}  {}: {}", f.topic, f.text);
        if let Some(fix) = &f.fix {
            outln!("         → {fix}");
        }
    }
    let failing = findings
        .iter()
        .filter(|f| f.level == Level::Failing)
        .count();
    let warnings = findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .count();
    if failing > 0 {
        return Err(CliError::Input(format!(
            "{failing} check(s) failing, {warnings} warning(s)"
        )));
    }
    outln!("no check failing ({warnings} warning(s))");
    Ok(())
}
