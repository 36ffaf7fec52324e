//! `loa import contacts FILE`: a commune's list into the database, with a summary a clerk can
//! act on — what was read differently, what was refused and why (also written to
//! `FILE.rejected.csv` to fix and import again), and the counts per area.

use std::path::{Path, PathBuf};

use chrono::Utc;
use clap::{Args, ValueEnum};

use super::{CliError, Env};
use crate::app::Setup;
use crate::audience::import::{
    Encoding, ImportError, ImportOptions, ImportReport, NO_AREA, import_file, rejected_path,
};
use crate::config::AreaTree;

/// `loa import contacts`' arguments.
#[derive(Debug, Args)]
pub struct ContactsArgs {
    /// The list: .xlsx, .xls, .ods or .csv. Headers in Vietnamese (Họ và tên, Số điện thoại,
    /// Xã; optional Nhãn, Giới tính, Năm sinh) or name,phone,area[,tags].
    pub file: PathBuf,
    /// Report what would happen, write nothing to the database.
    #[arg(long)]
    pub dry_run: bool,
    /// The workbook's sheet to read (default: the first).
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// A CSV file's encoding (default: detected).
    #[arg(long, value_enum)]
    pub encoding: Option<EncodingArg>,
    /// The area (code or name) of rows that name none, e.g. a commune's own list.
    #[arg(long, value_name = "AREA")]
    pub area: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EncodingArg {
    #[value(name = "utf-8")]
    Utf8,
    #[value(name = "utf-16")]
    Utf16,
    #[value(name = "windows-1258")]
    Windows1258,
}

impl From<EncodingArg> for Encoding {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Utf8 => Encoding::Utf8,
            EncodingArg::Utf16 => Encoding::Utf16,
            EncodingArg::Windows1258 => Encoding::Windows1258,
        }
    }
}

pub async fn contacts(config: &Path, env: &Env, args: ContactsArgs) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let db = setup.open_database().await?;
    let options = ImportOptions {
        dry_run: args.dry_run,
        sheet: args.sheet,
        encoding: args.encoding.map(Encoding::from),
        default_area: args.area,
        scope: None,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({eta})")
            .expect("valid template"),
    );
    let report = import_file(
        &db,
        &setup.config.areas,
        &args.file,
        &options,
        Utc::now(),
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    db.close().await;
    let report = report.map_err(|e| match e {
        ImportError::Database(e) => CliError::Other(e.into()),
        ImportError::Crashed(e) => CliError::Other(anyhow::anyhow!(e)),
        other => CliError::Input(other.to_string()),
    })?;
    print(&args.file, &report, &setup.config.areas);
    if let Some(csv) = &report.rejected_csv {
        let path = rejected_path(&args.file);
        write_atomically(&path, csv).map_err(|source| {
            CliError::Input(
                ImportError::WriteRejected {
                    file: args.file.display().to_string(),
                    path: path.display().to_string(),
                    source,
                }
                .to_string(),
            )
        })?;
        outln!(
            "The rejected rows are in {}, each with its reason: fix them there and import that file.",
            path.display()
        );
    }
    if report.rejected.is_empty() {
        Ok(())
    } else if report.dry_run {
        Err(CliError::Input(format!(
            "{} row(s) would be rejected",
            report.rejected.len()
        )))
    } else {
        Err(CliError::Input(format!(
            "{} row(s) rejected; the others were imported",
            report.rejected.len()
        )))
    }
}

/// The report as a clerk reads it.
fn print(file: &Path, report: &ImportReport, areas: &AreaTree) {
    let file = file.display();
    if let Some(format) = &report.format {
        outln!("{file}: read as {format}");
    }
    if !report.unused_columns.is_empty() {
        outln!(
            "{file}: columns not used: {}",
            report.unused_columns.join(", ")
        );
    }
    let verb = if report.dry_run {
        "would be imported"
    } else {
        "imported"
    };
    for r in &report.adjusted {
        outln!("{file}:{}: {verb}; {}", r.line, r.reason);
    }
    for r in &report.rejected {
        outln!("{file}:{}: {}", r.line, r.reason);
    }
    if !report.by_area.is_empty() {
        outln!();
        outln!(
            "{:<32} {:>8} {:>8} {:>9} {:>8}",
            "area",
            "added",
            "updated",
            "converted",
            "rejected"
        );
        // In the order of loa.toml, rows of no known area last.
        let order = areas
            .iter()
            .map(|a| (a.code.as_str(), a.name.as_str()))
            .chain([(NO_AREA, "(area not recognised)")]);
        for (code, name) in order {
            let Some(c) = report.by_area.get(code) else {
                continue;
            };
            outln!(
                "{:<32} {:>8} {:>8} {:>9} {:>8}",
                name,
                c.added,
                c.updated,
                c.converted,
                c.rejected
            );
        }
        outln!();
    }
    let adjusted = match report.adjusted.len() {
        0 => String::new(),
        n => format!("; {n} row(s) read differently from how they were typed (above)"),
    };
    let prefix = if report.dry_run {
        "Dry run, nothing written: would be "
    } else {
        ""
    };
    outln!(
        "{prefix}{} added, {} updated, {} rejected{adjusted}",
        report.added,
        report.updated,
        report.rejected.len()
    );
}

/// Writes `bytes` to `path` whole or not at all: a clerk may have the old file open.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
