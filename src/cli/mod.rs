//! The `loa` command line. `main.rs` only calls [`main`]; each command here loads what it
//! needs and maps failures to exit codes: 0 success, 1 a problem with the input (config,
//! schedules, templates, arguments), 2 anything else (database unreachable, port taken, …).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand, ValueEnum};
use sqlx::Row;

use crate::app::{self, Setup};
use crate::calendar::PlanStatus;
use crate::clock::{SharedClock, SystemClock, VirtualClock};
use crate::config::Env;
use crate::console::accounts;
use crate::console::{ConsoleError, Role, audit};
use crate::demo::{DemoOptions, DemoProgress};
use crate::diagnostics::Problems;
use crate::reach;
use crate::store::Db;
use crate::templates::{MessageContext, Rendered, SampleData};

/// Writes to stdout; a closed pipe (`loa plan | head`) ends the command quietly instead of
/// panicking.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::emit(&format!($($arg)*)) };
}

macro_rules! outln {
    () => { $crate::cli::emit("\n") };
    ($($arg:tt)*) => { $crate::cli::emit(&format!("{}\n", format!($($arg)*))) };
}

mod database;
mod import;
mod person;
mod poster;
mod report;

#[derive(Debug, Parser)]
#[command(
    name = "loa",
    version,
    about = "Loa: campaign messages on a calendar, through Telegram and SMS, with reach counted"
)]
pub struct Cli {
    /// Configuration file; schedules/ and messages/ are read beside it.
    #[arg(long, global = true, default_value = "loa.toml", value_name = "PATH")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scheduler, dispatcher and web server in one process, until Ctrl-C or SIGTERM.
    Run {
        /// Start a virtual clock at this instant (RFC 3339, e.g. 2023-03-08T07:59:00+07:00).
        #[arg(long, value_name = "RFC3339")]
        clock: Option<String>,
        /// How many times faster than real time the virtual clock runs.
        #[arg(long, default_value_t = 1.0, value_name = "N", requires = "clock")]
        clock_speed: f64,
    },
    /// Every fire time on the dates FROM to TO (inclusive), in the campaign time zone.
    Plan {
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: NaiveDate,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: NaiveDate,
        #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
        format: PlanFormat,
    },
    /// Validate config, schedules and templates; exit 1 with `file:line: message` lines.
    Check,
    /// The plan's year in about a minute: sample residents, fake gateways, a throwaway database.
    Demo {
        /// Virtual days per real second (0: as fast as the machine goes).
        #[arg(long, default_value_t = 6.0)]
        speed: f64,
        /// Sample residents to create across the communes.
        #[arg(long, default_value_t = 2000)]
        people: usize,
        #[arg(long, default_value_t = 2023)]
        year: i32,
        /// Seed of the sample population and of what happens to messages.
        #[arg(long, default_value_t = 2023)]
        seed: u64,
    },
    /// Create or upgrade the database tables.
    Migrate {
        /// List the migrations that would run, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check everything that can be checked before a campaign: configuration, database,
    /// Telegram, the SMS gateway, the public URL, disk, deliveries; exit 1 if anything fails.
    Doctor {
        /// Check as if Loa's clock read this instant (RFC 3339), e.g. to see a clock skew.
        #[arg(long, value_name = "RFC3339")]
        clock: Option<String>,
    },
    /// Copy the database to FILE while Loa runs (SQLite: VACUUM INTO; PostgreSQL: pg_dump).
    Backup {
        /// Where to write the copy; must not exist.
        file: PathBuf,
    },
    /// Put a backup in place of the database; refused while Loa runs on it.
    Restore {
        /// A file written by `loa backup` (or the daily backup).
        file: PathBuf,
    },
    /// Render a template for every channel, as a resident would receive it.
    Preview {
        /// Template name, e.g. quoc-te-phu-nu (messages/<name>.<channel>.hbs).
        template: String,
        /// Area code of the sample recipient.
        #[arg(long)]
        area: Option<String>,
        /// Name of the sample recipient.
        #[arg(long, default_value = "Nguyễn Thị Lan")]
        name: String,
        /// Local date the message is for.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
        /// Observance id, for {{observance}} and its date (default: the first schedule using the template).
        #[arg(long)]
        observance: Option<String>,
    },
    /// Bring residents in from a file.
    Import {
        #[command(subcommand)]
        import: ImportCommand,
    },
    /// Reports from the database.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// Accounts of the web console.
    User {
        #[command(subcommand)]
        user: UserCommand,
    },
    /// Bearer tokens of the console's JSON API.
    Token {
        #[command(subcommand)]
        token: TokenCommand,
    },
    /// A resident's data: export it, or forget them.
    Person {
        #[command(subcommand)]
        person: person::PersonCommand,
    },
    /// A commune's A4 poster (HTML, QR codes inline): how residents subscribe by Telegram,
    /// Zalo and SMS. Printed from a browser.
    Poster {
        /// The commune: its code or its name (doan-bai, "Đoan Bái").
        area: String,
        /// Write it to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account and print its one-time password (the console asks for a new one at
    /// first sign-in).
    Add {
        /// Sign-in name: lowercase letters, digits, '.', '_', '-'.
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Limit the account to this area and everything under it (an area code of loa.toml).
        #[arg(long)]
        area: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (only its hash is kept: it cannot be shown again).
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// What the token is for, as the audit log names it; no two live tokens share a name.
        #[arg(long, default_value = "api")]
        name: String,
        /// Limit the token to this area and everything under it.
        #[arg(long)]
        area: Option<String>,
        /// The last day the token works; it expires at the end of that day in the campaign
        /// time zone.
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "expires_in")]
        expires: Option<NaiveDate>,
        /// The token works today and DAYS more days, to the end of the last one.
        #[arg(long, value_name = "DAYS")]
        expires_in: Option<u32>,
    },
    /// Every API token: name, role, area, expiry, last use and state (never the token itself).
    List,
    /// Stop a token from working, at once.
    Revoke {
        /// The token's id, as `loa token list` shows it.
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Staff,
    Approver,
    Official,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Staff => Role::Staff,
            RoleArg::Approver => Role::Approver,
            RoleArg::Official => Role::Official,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Credential {
    User,
    Token { expires_at: Option<DateTime<Utc>> },
}

/// Creates a console user or an API token, in the audit log as done from the command line;
/// returns the secret, to be printed once.
async fn create_credential(
    setup: &Setup,
    what: Credential,
    name: &str,
    role: Role,
    area: Option<&str>,
) -> Result<String, CliError> {
    let db = setup.open_database().await?;
    let (areas, now) = (&setup.config.areas, Utc::now());
    let tz = setup.config.campaign.time_zone;
    let (result, action, subject, more) = match what {
        Credential::User => (
            accounts::add_user(&db, areas, name, role, area, now).await,
            "user.add",
            format!("user:{name}"),
            Default::default(),
        ),
        Credential::Token { expires_at } => {
            let created =
                accounts::create_token_until(&db, areas, name, role, area, expires_at, now).await;
            // The id tells this token from others of the same name, before or after it.
            let (id, expires) = match &created {
                Ok(t) => (
                    format!("id {}, ", t.id),
                    format!(", expires {}", expiry_text(expires_at, tz)),
                ),
                Err(_) => Default::default(),
            };
            (
                created.map(|t| t.token),
                "token.create",
                format!("token:{name}"),
                (id, expires),
            )
        }
    };
    if result.is_ok() {
        let (id, expires) = more;
        let detail = format!(
            "{id}role {role}{}{expires}",
            area.map(|a| format!(", area {a}")).unwrap_or_default()
        );
        audit::record(&db.pool, now, "cli", action, Some(&subject), Some(&detail))
            .await
            .map_err(|e| CliError::Other(e.into()))?;
    }
    db.close().await;
    result.map_err(console_error)
}

/// When a token created now with `--expires DAY` or `--expires-in DAYS` stops working: at the end
/// of that local day in the campaign time zone. `None`: never.
fn token_expiry(
    expires: Option<NaiveDate>,
    expires_in: Option<u32>,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Option<DateTime<Utc>>, CliError> {
    let today = now.with_timezone(&tz).date_naive();
    let last_day = match (expires, expires_in) {
        (Some(day), _) if day < today => {
            return Err(CliError::Input(format!(
                "--expires {day} is in the past (today is {today} in {tz})"
            )));
        }
        (Some(day), _) => day,
        (None, Some(days)) => today
            .checked_add_days(chrono::Days::new(days.into()))
            .ok_or_else(|| CliError::Input(format!("--expires-in {days}: too far ahead")))?,
        (None, None) => return Ok(None),
    };
    let end = last_day
        .succ_opt()
        .ok_or_else(|| CliError::Input(format!("--expires {last_day}: too far ahead")))?;
    Ok(Some(crate::calendar::local_midnight(end, tz)))
}

/// A token's expiry as people read it, in the campaign time zone: `end of 2026-12-31` for the
/// expiries `loa token create` sets, the local time for any other.
fn expiry_text(expires_at: Option<DateTime<Utc>>, tz: Tz) -> String {
    let Some(at) = expires_at else {
        return "never".to_string();
    };
    let local = at.with_timezone(&tz);
    match local.date_naive().pred_opt() {
        Some(day) if crate::calendar::local_midnight(local.date_naive(), tz) == at => {
            format!("end of {day}")
        }
        _ => local_time(at, tz),
    }
}

fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// `loa token list`: one line per token, aligned; never the token or its hash (neither is
/// kept in a readable form anyway).
fn token_table(tokens: &[accounts::TokenInfo], now: DateTime<Utc>, tz: Tz) -> String {
    let mut rows = vec![
        [
            "id",
            "name",
            "role",
            "area",
            "created",
            "expires",
            "last used",
            "state",
        ]
        .map(String::from),
    ];
    for t in tokens {
        rows.push([
            t.id.to_string(),
            t.name.clone(),
            t.role.to_string(),
            t.area.clone().unwrap_or_else(|| "all".to_string()),
            local_time(t.created_at, tz),
            expiry_text(t.expires_at, tz),
            t.last_used_at
                .map_or_else(|| "never".to_string(), |at| local_time(at, tz)),
            t.state(now).as_str().to_string(),
        ]);
    }
    let mut widths = [0; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("times in {tz}\n"));
    out
}

/// A console error met on the command line: bad input is the caller's (exit 1).
fn console_error(e: ConsoleError) -> CliError {
    match e {
        ConsoleError::Internal(e) => CliError::Other(e),
        other => CliError::Input(other.to_string()),
    }
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Persons reached per area against the target band, rolled up the area tree.
    Reach {
        /// First local date (default: 1 January of the latest year with reach recorded).
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<NaiveDate>,
        /// Last local date, inclusive (default: 31 December of that year).
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// This year's outlook instead: per commune, reach so far, contactable people not yet
        /// reached, messages to come, projected year-end reach, what is missing to reach the
        /// band, and the cheapest top-up (table or json).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        projection: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Residents with phone numbers, from a commune's list (.xlsx, .xls, .ods or .csv). Valid
    /// rows go in; each rejected row is reported and written to FILE.rejected.csv; importing
    /// twice adds nobody twice.
    Contacts(import::ContactsArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Problems(#[from] Problems),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) | CliError::Problems(_) => 1,
            CliError::Other(_) => 2,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match LogFormat::from_env(std::env::var("LOA_LOG_FORMAT").ok().as_deref()) {
        Ok(format) => format,
        Err(e) => {
            // Before anything starts: a service manager shows the line and the unit fails at once,
            // rather than running with logs a shipper cannot read.
            eprintln!("loa: {e}");
            return ExitCode::from(1);
        }
    };
    init_tracing(
        matches!(cli.command, Command::Run { .. } | Command::Migrate { .. }),
        log_format,
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loa: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(cli, Env::from_process())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Problems(problems)) => {
            eprintln!("{problems}");
            eprintln!("loa: {} problem(s); nothing was started", problems.0.len());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("loa: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// How log lines are written: `LOA_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (unset, empty or `text`).
    Text,
    /// One JSON object per line (`json`), for journald or a log shipper.
    Json,
}

impl LogFormat {
    /// Reads the variable's value; an unknown one is an error naming the variable, so a typo is
    /// seen at start rather than as a shipper that silently drops every line.
    pub fn from_env(value: Option<&str>) -> Result<Self, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(format!(
                "LOA_LOG_FORMAT: {:?} is not a log format (text or json)",
                value.unwrap_or_default()
            )),
        }
    }
}

fn init_tracing(verbose: bool, format: LogFormat) {
    let default = if verbose { "info,sqlx=warn" } else { "warn" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LOA_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colours only on a terminal: a journal or a log file gets plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // The event's fields at the top level (`message`, not `fields.message`): what journald's
        // and most shippers' JSON parsers index without a mapping.
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Hands each command to its function; each loads what it needs.
pub async fn execute(cli: Cli, env: Env) -> Result<(), CliError> {
    let config = cli.config.as_path();
    match cli.command {
        Command::Check => check(config, &env),
        Command::Plan { from, to, format } => plan(config, &env, from, to, format),
        Command::Preview {
            template,
            area,
            name,
            date,
            observance,
        } => preview(config, &env, &template, area, &name, date, observance),
        Command::Import {
            import: ImportCommand::Contacts(args),
        } => import::contacts(config, &env, args).await,
        Command::Demo {
            speed,
            people,
            year,
            seed,
        } => demo(config, &env, speed, people, year, seed).await,
        Command::User {
            user: UserCommand::Add { name, role, area },
        } => user_add(config, &env, &name, role, area).await,
        Command::Token {
            token:
                TokenCommand::Create {
                    role,
                    name,
                    area,
                    expires,
                    expires_in,
                },
        } => token_create(config, &env, role, &name, area, expires, expires_in).await,
        Command::Token {
            token: TokenCommand::List,
        } => token_list(config, &env).await,
        Command::Token {
            token: TokenCommand::Revoke { id },
        } => token_revoke(config, &env, id).await,
        Command::Migrate { dry_run } => database::migrate(config, &env, dry_run).await,
        Command::Backup { file } => database::backup(config, &env, &file).await,
        Command::Doctor { clock } => database::doctor(config, &env, clock).await,
        Command::Restore { file } => database::restore(config, &env, &file).await,
        Command::Run { clock, clock_speed } => run(config, &env, clock, clock_speed).await,
        Command::Report {
            report:
                ReportCommand::Reach {
                    projection: true,
                    format,
                    ..
                },
        } => report::projection(config, &env, format).await,
        Command::Report {
            report: ReportCommand::Reach {
                from, to, format, ..
            },
        } => report_reach(config, &env, from, to, format).await,
        Command::Person { person } => person::run(config, &env, person).await,
        Command::Poster { area, out } => poster::run(config, &env, &area, out),
    }
}

/// `loa check`.
fn check(config: &Path, env: &Env) -> Result<(), CliError> {
    match Setup::load(config, env) {
        Ok(setup) => {
            outln!(
                "ok: {} — {} schedules, {} templates, {} areas",
                config.display(),
                setup.calendar.schedules().len(),
                setup.templates.names().count(),
                setup.config.areas.len()
            );
            for warning in &setup.warnings {
                outln!("{warning}");
            }
            out!("{}", sms_sizes(&setup));
            Ok(())
        }
        Err(problems) => {
            // The problems are the command's output.
            outln!("{problems}");
            Err(CliError::Input(format!(
                "{} problem(s) found",
                problems.0.len()
            )))
        }
    }
}

/// `loa plan`: every fire time from `from` to `to`.
fn plan(
    config: &Path,
    env: &Env,
    from: NaiveDate,
    to: NaiveDate,
    format: PlanFormat,
) -> Result<(), CliError> {
    if from > to {
        return Err(CliError::Input(format!("--from {from} is after --to {to}")));
    }
    let setup = Setup::load(config, env)?;
    let tz = setup.config.campaign.time_zone;
    let plan = setup.calendar.plan(from, to, tz);
    match format {
        PlanFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&plan).map_err(anyhow::Error::from)?
        ),
        PlanFormat::Table => {
            for fire in &plan {
                let channels: Vec<&str> = fire.channels.iter().map(|c| c.as_str()).collect();
                let line = format!(
                    "{}  {:<32} {:<24} {}",
                    fire.at,
                    fire.schedule,
                    fire.template,
                    channels.join(",")
                );
                match fire.note() {
                    Some(note) => outln!("{line}  {note}"),
                    None => outln!("{line}"),
                }
            }
            let count = |status: PlanStatus| plan.iter().filter(|f| f.status == status).count();
            let firing = plan.iter().filter(|f| f.fires()).count();
            let (moved, stopped) = (
                count(PlanStatus::Moved),
                count(PlanStatus::Skipped) + count(PlanStatus::Merged),
            );
            if moved + stopped == 0 {
                outln!("{firing} fire times from {from} to {to} ({tz})");
            } else {
                outln!(
                    "{firing} fire times from {from} to {to} ({tz}); public holidays moved {moved} to the next working day and stopped {stopped}"
                );
            }
        }
    }
    // On stderr, so the JSON stays clean for the tools that read it.
    for warning in setup.missing_themes(from.year()..=to.year()) {
        eprintln!("{warning}");
    }
    Ok(())
}

/// `loa preview TEMPLATE`.
fn preview(
    config: &Path,
    env: &Env,
    template: &str,
    area: Option<String>,
    name: &str,
    date: Option<NaiveDate>,
    observance: Option<String>,
) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    out!(
        "{}",
        render_preview(&setup, template, area, name, date, observance)?
    );
    Ok(())
}

/// `loa demo`: the year on a throwaway database, then the reach table.
async fn demo(
    config: &Path,
    env: &Env,
    speed: f64,
    people: usize,
    year: i32,
    seed: u64,
) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    if people == 0 {
        return Err(CliError::Input("--people must be at least 1".into()));
    }
    let dir = std::env::temp_dir().join(format!("loa-demo-{}", std::process::id()));
    outln!(
        "Demo of {year}: {people} sample residents, fake Telegram, Zalo and SMS gateways, virtual clock."
    );
    outln!(
        "Throwaway database: {} (data/loa.db is not touched)",
        dir.join("loa-demo.db").display()
    );
    outln!(
        "Commune populations are scaled to the sample; names marked (mẫu), numbers in the unassigned +84 10 range.\n"
    );
    let mut progress = TerminalProgress::new();
    let options = DemoOptions {
        year,
        people,
        speed,
        seed,
        dir,
    };
    let outcome = crate::demo::run(&setup, &options, &mut progress).await?;
    progress.finish();
    outln!("\n{} occurrences.\n", outcome.occurrences.len());
    outln!(
        "{:<10} {:>10} {:>10} {:>16} {:>16}",
        "Channel",
        "Sent",
        "Reached",
        "Cost (VND)",
        "Budget (VND)"
    );
    for c in &outcome.channels {
        outln!(
            "{:<10} {:>10} {:>10} {:>16.0} {:>16}",
            c.label,
            c.sent,
            c.reached,
            c.cost_vnd,
            c.budget.map_or("–".to_string(), |b| format!("{b:.0}"))
        );
    }
    outln!();
    out!("{}", outcome.report.to_table());
    if let Some(mid) = &outcome.mid_year {
        let in_band = outcome
            .report
            .areas
            .iter()
            .filter(|r| mid.below.contains(&r.name))
            .filter(|r| r.status != Some(crate::reach::BandStatus::Below))
            .count();
        outln!(
            "\nMid-year review: {} communes projected below the band on 1 July ({}); a top-up \
             to their unreached went on {}. By 31 December {in_band} of them are in the band or above.",
            mid.below.len(),
            mid.below.join(", "),
            mid.top_up_at
                .with_timezone(&setup.config.campaign.time_zone)
                .format("%Y-%m-%d %H:%M"),
        );
    }
    outln!(
        "\nThe demo database stays at {} for a look.",
        outcome.database.display()
    );
    Ok(())
}

/// `loa user add NAME --role ROLE`: the one-time password on stdout.
async fn user_add(
    config: &Path,
    env: &Env,
    name: &str,
    role: RoleArg,
    area: Option<String>,
) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let role = Role::from(role);
    let password = create_credential(&setup, Credential::User, name, role, area.as_deref()).await?;
    outln!("user {name} ({role}) created; one-time password (to be changed at first sign-in):");
    outln!("{password}");
    Ok(())
}

/// `loa token create`: the token on stdout, what it is on stderr.
async fn token_create(
    config: &Path,
    env: &Env,
    role: RoleArg,
    name: &str,
    area: Option<String>,
    expires: Option<NaiveDate>,
    expires_in: Option<u32>,
) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let tz = setup.config.campaign.time_zone;
    let expires_at = token_expiry(expires, expires_in, Utc::now(), tz)?;
    let role = Role::from(role);
    let token = create_credential(
        &setup,
        Credential::Token { expires_at },
        name,
        role,
        area.as_deref(),
    )
    .await?;
    // The token alone on stdout, so `TOKEN=$(loa token create …)` keeps working; what it is
    // and until when, for the person at the terminal, on stderr.
    let until = match expires_at {
        Some(_) => format!("expires at the {} ({tz})", expiry_text(expires_at, tz)),
        None => "never expires (loa token revoke stops it)".to_string(),
    };
    eprintln!("token {name} ({role}) created, {until}. Shown once: only its hash is kept.");
    outln!("{token}");
    Ok(())
}

/// `loa token list`.
async fn token_list(config: &Path, env: &Env) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let db = setup.open_database().await?;
    let tokens = accounts::list_tokens(&db).await;
    db.close().await;
    let tokens = tokens.map_err(console_error)?;
    if tokens.is_empty() {
        outln!("no API tokens yet (loa token create --role ROLE --name NAME makes one)");
    } else {
        out!(
            "{}",
            token_table(&tokens, Utc::now(), setup.config.campaign.time_zone)
        );
    }
    Ok(())
}

/// `loa token revoke ID`.
async fn token_revoke(config: &Path, env: &Env, id: i64) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let db = setup.open_database().await?;
    let revoked = accounts::revoke_token(&db, id, "cli", Utc::now()).await;
    db.close().await;
    let token = revoked.map_err(|e| match e {
        ConsoleError::NotFound => {
            CliError::Input(format!("no API token has id {id} (see loa token list)"))
        }
        other => console_error(other),
    })?;
    outln!(
        "token {id} ({}) revoked: it no longer authenticates",
        token.name
    );
    Ok(())
}

/// `loa migrate`.
/// `loa run`: on the system clock, or a virtual one from `--clock` at `--clock-speed`.
async fn run(
    config: &Path,
    env: &Env,
    clock: Option<String>,
    clock_speed: f64,
) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let clock: SharedClock = match clock {
        None => Arc::new(SystemClock),
        Some(at) => {
            let start = DateTime::parse_from_rfc3339(&at).map_err(|e| {
                CliError::Input(format!(
                    "--clock {at:?}: {e} (expected e.g. 2023-03-08T07:59:00+07:00)"
                ))
            })?;
            if !(clock_speed.is_finite() && clock_speed > 0.0) {
                return Err(CliError::Input(
                    "--clock-speed must be a positive number".into(),
                ));
            }
            Arc::new(VirtualClock::running(start.to_utc(), clock_speed))
        }
    };
    app::run(setup, clock, app::shutdown_signal()).await?;
    Ok(())
}

/// `loa report reach`: by default the latest year with reach recorded.
async fn report_reach(
    config: &Path,
    env: &Env,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    format: ReportFormat,
) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let db = setup.open_database().await?;
    let tz = setup.config.campaign.time_zone;
    let year = match (from, to) {
        (Some(f), _) => f.year(),
        (None, Some(t)) => t.year(),
        (None, None) => latest_reach_year(&db)
            .await?
            .unwrap_or_else(|| Utc::now().with_timezone(&tz).year()),
    };
    let from = from.unwrap_or_else(|| NaiveDate::from_ymd_opt(year, 1, 1).expect("valid"));
    let to = to.unwrap_or_else(|| NaiveDate::from_ymd_opt(from.year(), 12, 31).expect("valid"));
    if from > to {
        return Err(CliError::Input(format!("--from {from} is after --to {to}")));
    }
    let report = reach::report(
        &db,
        &setup.config.areas,
        setup.config.campaign.target,
        from,
        to,
    )
    .await
    .map_err(anyhow::Error::from)?;
    match format {
        ReportFormat::Table => out!("{}", report.to_table()),
        ReportFormat::Csv => out!("{}", report.to_csv().map_err(anyhow::Error::from)?),
        ReportFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?
        ),
    }
    db.close().await;
    Ok(())
}

/// A template rendered for every channel it has, with each SMS's size and price.
fn render_preview(
    setup: &Setup,
    template: &str,
    area: Option<String>,
    name: &str,
    date: Option<NaiveDate>,
    observance: Option<String>,
) -> Result<String, CliError> {
    let config = &setup.config;
    let area = match area {
        Some(code) => config
            .areas
            .get(&code)
            .ok_or_else(|| CliError::Input(format!("--area: unknown area code {code:?}")))?,
        None => config
            .areas
            .leaves()
            .next()
            .ok_or_else(|| CliError::Input("no areas configured".into()))?,
    };
    let schedule = setup
        .calendar
        .schedules()
        .iter()
        .find(|s| match &observance {
            Some(id) => &s.observance_id == id,
            None => s.template == template,
        });
    let observance_name = match (&observance, schedule) {
        (_, Some(s)) => s.observance.clone(),
        (Some(id), None) => {
            return Err(CliError::Input(format!(
                "--observance: unknown observance {id:?}"
            )));
        }
        (None, None) => String::new(),
    };
    let tz = config.campaign.time_zone;
    let date = date.unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive());
    let noon = crate::calendar::local_midnight(date, tz) + chrono::Duration::hours(12);
    let observance_date = schedule.map(|s| s.observance_date(noon));
    let theme = schedule.and_then(|s| s.theme(noon)).unwrap_or_default();
    let context = MessageContext::for_recipient(
        config,
        &crate::templates::Recipient {
            person_name: name,
            person_kind: "resident",
            name_given: true,
            area_code: &area.code,
            area_name: &area.name,
            observance: &observance_name,
            theme,
            observance_date,
            date,
        },
    );
    let mut out = String::new();
    for channel in config.channels.iter() {
        let kind = channel.kind;
        if !setup.templates.has(template, kind) {
            continue;
        }
        let rendered = setup
            .templates
            .preview(template, kind, &context)
            .map_err(|e| CliError::Input(e.to_string()))?;
        out.push_str(&format!(
            "── {kind} ──\n{}\n",
            channel.format.visible(&rendered.text)
        ));
        if let Ok(crate::channel::ZnsPayload { template_id, .. }) =
            crate::channel::ZnsPayload::parse(&rendered.text)
        {
            out.push_str(&format!(
                "(approved ZNS template {template_id}, {:.0} VND)\n",
                channel.price.cost(None).unwrap_or(0.0)
            ));
        }
        if let Some(size) = rendered.sms {
            out.push_str(&format!(
                "({} part(s), {} {} units, {:.0} VND)\n",
                size.segments,
                size.units,
                size.encoding,
                channel.price.cost(Some(size.segments)).unwrap_or(0.0)
            ));
        }
        out.push('\n');
    }
    if out.is_empty() {
        return Err(CliError::Input(format!(
            "no template {template:?} in {}",
            config.messages_dir.display()
        )));
    }
    Ok(out)
}

/// The demo's progress on a terminal: occurrence lines above a status line.
struct TerminalProgress {
    bar: indicatif::ProgressBar,
}

impl TerminalProgress {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{msg}").expect("valid template"));
        TerminalProgress { bar }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl DemoProgress for TerminalProgress {
    fn occurrence(&mut self, line: &str) {
        if self.bar.is_hidden() {
            outln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn status(&mut self, now: DateTime<Utc>, occurrences: usize, sent: [usize; 3]) {
        let [telegram, zalo, sms] = sent;
        self.bar.set_message(format!(
            "virtual {} · {occurrences} occurrences · Telegram {telegram} · Zalo {zalo} · SMS {sms}",
            now.format("%Y-%m-%d")
        ));
    }
}

/// Each SMS template's size with sample data: what one message costs in parts.
fn sms_sizes(setup: &Setup) -> String {
    let sample = MessageContext::sample(
        "Ngày Quốc tế Phụ nữ 8/3",
        &SampleData::from_config(&setup.config),
    );
    let mut out = String::from("SMS with sample data:\n");
    let width = setup
        .templates
        .names()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    for (name, kind) in setup.templates.names() {
        let Some(channel) = setup.config.channels.get(kind) else {
            continue;
        };
        if let Ok(Rendered {
            sms: Some(size), ..
        }) = setup.templates.preview(name, kind, &sample)
        {
            out.push_str(&format!(
                "  {name:<width$} {} part(s), {} {} units (budget {}), {:.0} VND per message\n",
                size.segments,
                size.units,
                size.encoding,
                setup.templates.settings(name, kind).max_segments,
                channel.price.cost(Some(size.segments)).unwrap_or(0.0)
            ));
        }
    }
    out
}

async fn latest_reach_year(db: &Db) -> anyhow::Result<Option<i32>> {
    let row = sqlx::query("SELECT MAX(period) FROM reach WHERE period LIKE 'Y%'")
        .fetch_one(&db.pool)
        .await?;
    let period: Option<String> = row.try_get(0)?;
    Ok(period.and_then(|p| p.trim_start_matches('Y').parse().ok()))
}

#[cfg(test)]
mod log_format_tests {
    use super::LogFormat;

    #[test]
    fn unset_empty_and_text_are_today_s_lines_json_is_json_and_a_typo_names_the_variable() {
        assert_eq!(LogFormat::from_env(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_env(Some("")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_env(Some("text")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_env(Some(" JSON ")), Ok(LogFormat::Json));
        let err = LogFormat::from_env(Some("jsn")).unwrap_err();
        assert!(
            err.contains("LOA_LOG_FORMAT") && err.contains("\"jsn\""),
            "{err}"
        );
    }
}
