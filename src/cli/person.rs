//! `loa person export|forget PHONE|CHAT`: a resident's right to see what Loa holds about them,
//! and to be forgotten (see `privacy`).

use std::path::Path;

use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Env};
use crate::app::Setup;
use crate::privacy::{self, PrivacyError, Who};

#[derive(Debug, Subcommand)]
pub enum PersonCommand {
    /// Print as JSON everything Loa holds about a person: their row, contacts, consent,
    /// deliveries, reach, engagement, texts and answers, and the audit entries naming them.
    /// It shows their number in full: give it to them only.
    Export {
        /// A mobile number in any form (0912 345 678, +84912345678) or a Telegram chat id
        /// (telegram:ID when it could be read as a number).
        who: String,
    },
    /// Erase a person: name, contacts, tags and texts deleted; their deliveries and reach kept
    /// under an anonymous person of their area, so every report stays the same. Without
    /// --yes, nothing is erased: it prints what would be and exits 1.
    Forget {
        /// A mobile number in any form or a Telegram chat id, as for export.
        who: String,
        /// Erase now. There is no undo.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(config: &Path, env: &Env, command: PersonCommand) -> Result<(), CliError> {
    match command {
        PersonCommand::Export { who } => export(config, env, &who).await,
        PersonCommand::Forget { who, yes } => forget(config, env, &who, yes).await,
    }
}

/// An unknown or unclear person is the caller's input (exit 1); a person being sent to right
/// now is a moment's wait (exit 2, try again).
fn privacy_error(e: PrivacyError) -> CliError {
    match e {
        PrivacyError::Database(e) => CliError::Other(e.into()),
        PrivacyError::Busy => CliError::Other(anyhow::anyhow!("{e}")),
        other => CliError::Input(other.to_string()),
    }
}

/// `loa person export`.
async fn export(config: &Path, env: &Env, who: &str) -> Result<(), CliError> {
    let who = Who::parse(who).map_err(privacy_error)?;
    let setup = Setup::load(config, env)?;
    let db = setup.open_database().await?;
    let tz = setup.config.campaign.time_zone;
    let exported = privacy::export(&db, tz, &who, "cli", Utc::now()).await;
    db.close().await;
    let exported = exported.map_err(privacy_error)?;
    let json = serde_json::to_string_pretty(&exported).map_err(|e| CliError::Other(e.into()))?;
    outln!("{json}");
    Ok(())
}

/// `loa person forget`.
async fn forget(config: &Path, env: &Env, who: &str, yes: bool) -> Result<(), CliError> {
    let who = Who::parse(who).map_err(privacy_error)?;
    let setup = Setup::load(config, env)?;
    let db = setup.open_database().await?;
    let report = privacy::forget(&db, &who, "cli", Utc::now(), !yes).await;
    db.close().await;
    let r = report.map_err(privacy_error)?;
    let what = format!(
        "{} contact(s), {} tag(s) and {} text(s) deleted; {} deliveries, {} reach rows and {} engagements kept under an anonymous person of {}",
        r.contacts, r.tags, r.texts, r.deliveries, r.reach_rows, r.engagements, r.area_code
    );
    if yes {
        outln!("person {} forgotten: {what}", r.person_id);
        Ok(())
    } else {
        outln!("would forget person {}: {what}", r.person_id);
        Err(CliError::Input(
            "nothing was erased: run again with --yes to erase (there is no undo)".into(),
        ))
    }
}
