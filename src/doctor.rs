//! `loa doctor`: everything that can be checked before a campaign morning, each as one line —
//! ok, warning or failing — with what to do. Configuration, schedules and templates (as `loa
//! check`); the database (reachable, migrated, writable, its clock against Loa's); Telegram
//! (the token by `getMe`, the webhook by `getWebhookInfo`); the SMS gateway; the public URL the
//! gateways call back; the time zone; free disk; what waits, what died in the last day, the last
//! delivery report; the channels that are down.
//!
//! Nothing here changes anything: the write check rolls back, and a SQLite file that does not
//! exist yet is reported, not created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::app::Setup;
use crate::backup::sqlite_file;
use crate::channels::describe_http_error;
use crate::config::{Config, SmsGateway};
use crate::delivery::Status;
use crate::store::{Db, from_epoch, redact_url, to_epoch};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Failing,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// What was checked: `database`, `telegram`, …
    pub topic: &'static str,
    pub text: String,
    /// What to do about it, for warnings and failures.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(topic: &'static str, text: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            topic,
            text: text.into(),
            fix: None,
        }
    }

    fn warning(topic: &'static str, text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Warning,
            topic,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }

    fn failing(topic: &'static str, text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Failing,
            topic,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The database's clock may differ from Loa's by this much before it is a failure.
const MAX_SKEW: chrono::Duration = chrono::Duration::seconds(5);

/// Every check on a configuration that loaded; `now` is Loa's clock.
pub async fn examine(setup: &Setup, now: DateTime<Utc>) -> Vec<Finding> {
    let config = &setup.config;
    let mut findings = vec![Finding::ok(
        "configuration",
        format!(
            "{}: {} schedules, {} templates, {} areas",
            config.path.display(),
            setup.calendar.schedules().len(),
            setup.templates.names().count(),
            config.areas.len()
        ),
    )];
    for warning in &setup.warnings {
        findings.push(Finding::warning(
            "configuration",
            warning.to_string(),
            "see `loa check`; the campaign runs meanwhile",
        ));
    }
    let tz = config.campaign.time_zone;
    findings.push(Finding::ok(
        "time zone",
        format!(
            "campaign time zone {tz}: it is {} there",
            now.with_timezone(&tz).format("%H:%M on %d/%m/%Y")
        ),
    ));
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let db = database(config, now, &mut findings).await;
    findings.extend(telegram(config, &client).await);
    findings.extend(sms_gateway(config, &client).await);
    findings.push(disk(config));
    if let Some(db) = db {
        findings.extend(public_url(config, &db, &client).await);
        findings.extend(deliveries(&db, now).await);
        db.close().await;
    }
    findings
}

/// Reachable, migrated, writable, and on time; the database for the later checks.
async fn database(config: &Config, now: DateTime<Utc>, findings: &mut Vec<Finding>) -> Option<Db> {
    const TOPIC: &str = "database";
    let url = redact_url(&config.database_url);
    if let Some(file) = sqlite_file(&config.database_url)
        && !file.exists()
    {
        findings.push(Finding::warning(
            TOPIC,
            format!("{} does not exist yet", file.display()),
            "`loa run` or `loa migrate` creates it",
        ));
        return None;
    }
    let db = match Db::connect(&config.database_url).await {
        Ok(db) if db.ping().await => db,
        Ok(_) | Err(_) => {
            findings.push(Finding::failing(
                TOPIC,
                format!("cannot reach {url}"),
                "check LOA_DATABASE_URL and that the database server runs and lets Loa in",
            ));
            return None;
        }
    };
    match db.pending_migrations().await {
        Ok(pending) if pending.is_empty() => {}
        Ok(pending) => findings.push(Finding::warning(
            TOPIC,
            format!(
                "{} migration(s) not applied yet (the first: {} {})",
                pending.len(),
                pending[0].0,
                pending[0].1
            ),
            "`loa migrate` (or `loa run`, which applies them at start); `loa migrate --dry-run` lists them",
        )),
        Err(e) => findings.push(Finding::failing(
            TOPIC,
            format!("cannot read the migrations applied: {e}"),
            "check the database's permissions",
        )),
    }
    match writable(&db).await {
        Ok(()) => findings.push(Finding::ok(TOPIC, format!("{url}: reachable and writable"))),
        Err(e) => findings.push(Finding::failing(
            TOPIC,
            format!("{url} refuses writes: {e}"),
            "check the file's owner and permissions (SQLite) or the role's grants (PostgreSQL), and free disk",
        )),
    }
    let sql = format!("SELECT {}", db.backend.now_millis());
    match sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(&db.pool)
        .await
    {
        Ok(millis) => {
            let skew = chrono::Duration::milliseconds(millis - now.timestamp_millis());
            let seconds = skew.num_milliseconds() as f64 / 1000.0;
            if skew.abs() > MAX_SKEW {
                findings.push(Finding::failing(
                    TOPIC,
                    format!("the database's clock is {seconds:+.1} s from Loa's"),
                    "synchronise both machines' clocks (timedatectl set-ntp true): schedules fire \
                     by Loa's clock, and workers judge each other alive by the database's",
                ));
            } else {
                findings.push(Finding::ok(
                    TOPIC,
                    format!("its clock agrees with Loa's ({seconds:+.1} s)"),
                ));
            }
        }
        Err(e) => findings.push(Finding::failing(
            TOPIC,
            format!("cannot read its clock: {e}"),
            "check the database",
        )),
    }
    Some(db)
}

/// A write that is rolled back: the database takes writes from this account.
async fn writable(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("INSERT INTO scheduler_state (name, at) VALUES ('loa-doctor', 0)")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await
}

/// The token (`getMe`) and where updates go (`getWebhookInfo`).
async fn telegram(config: &Config, client: &reqwest::Client) -> Vec<Finding> {
    const TOPIC: &str = "telegram";
    let Some(telegram) = &config.telegram else {
        return vec![Finding::warning(
            TOPIC,
            "no bot token: Telegram messages go to the log",
            "set TELEGRAM_BOT_TOKEN (from @BotFather)",
        )];
    };
    let call = |method: &str| {
        let url = format!(
            "{}/bot{}/{method}",
            telegram.api_url.trim_end_matches('/'),
            telegram.token
        );
        let request = client.post(url).json(&serde_json::json!({}));
        async move {
            // Never `{e}`: the URL carries the token.
            let response = request.send().await.map_err(|e| describe_http_error(&e))?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Ok::<(u16, Value), String>((status.as_u16(), body))
        }
    };
    let mut findings = Vec::new();
    match call("getMe").await {
        Ok((200, me)) if me["ok"] == true => findings.push(Finding::ok(
            TOPIC,
            format!(
                "the token is the bot @{}",
                me["result"]["username"].as_str().unwrap_or("?")
            ),
        )),
        Ok((status @ (401 | 404), _)) => {
            findings.push(Finding::failing(
                TOPIC,
                format!("Telegram refuses the bot token ({status})"),
                "set TELEGRAM_BOT_TOKEN to the token @BotFather gave (revoked tokens stop working)",
            ));
            return findings;
        }
        Ok((status, body)) => {
            findings.push(Finding::failing(
                TOPIC,
                format!(
                    "getMe answered {status}: {}",
                    body["description"]
                        .as_str()
                        .unwrap_or("not the Bot API's answer")
                ),
                "check telegram.api_url / TELEGRAM_API_URL",
            ));
            return findings;
        }
        Err(why) => {
            findings.push(Finding::failing(
                TOPIC,
                format!(
                    "cannot reach the Bot API at {}: {why}",
                    origin(&telegram.api_url)
                ),
                "check the server's Internet access, DNS and any proxy",
            ));
            return findings;
        }
    }
    let Ok((200, info)) = call("getWebhookInfo").await else {
        findings.push(Finding::warning(
            TOPIC,
            "getWebhookInfo did not answer",
            "try again; Telegram may be slow",
        ));
        return findings;
    };
    let info = &info["result"];
    let url = info["url"].as_str().unwrap_or_default();
    let expected = config
        .public_url
        .as_deref()
        .map(|p| format!("{}/webhooks/telegram", p.trim_end_matches('/')));
    match (&telegram.webhook_secret, url, &expected) {
        (Some(_), "", _) => findings.push(Finding::warning(
            TOPIC,
            "no webhook registered yet",
            "`loa run` registers it at start",
        )),
        (Some(_), url, Some(expected)) if url != expected => findings.push(Finding::failing(
            TOPIC,
            format!("the webhook points at {url}, not at this Loa ({expected})"),
            "another service may hold this bot's token; `loa run` registers its own webhook at start",
        )),
        (None, url, _) if !url.is_empty() => findings.push(Finding::failing(
            TOPIC,
            format!("a webhook is set ({url}), so long polling receives nothing"),
            "another service may hold this bot's token; `loa run` deletes the webhook at start, or set telegram.webhook_secret to use one",
        )),
        _ => findings.push(Finding::ok(
            TOPIC,
            if url.is_empty() {
                "updates by long polling".to_string()
            } else {
                format!("webhook at {url}")
            },
        )),
    }
    let pending = info["pending_update_count"].as_i64().unwrap_or(0);
    if pending > 100 {
        findings.push(Finding::warning(
            TOPIC,
            format!("{pending} updates wait at Telegram"),
            "residents' messages are not being received: is `loa run` running?",
        ));
    }
    if let Some(error) = info["last_error_message"].as_str() {
        let at = info["last_error_date"]
            .as_i64()
            .map(|t| from_epoch(t).format(" (%d/%m/%Y %H:%M UTC)").to_string())
            .unwrap_or_default();
        findings.push(Finding::warning(
            TOPIC,
            format!("Telegram's last error delivering updates{at}: {error}"),
            "check that LOA_PUBLIC_URL reaches Loa through the reverse proxy, with a valid certificate",
        ));
    }
    findings
}

/// The SMS gateway answers (Kannel: and takes the credentials).
async fn sms_gateway(config: &Config, client: &reqwest::Client) -> Vec<Finding> {
    const TOPIC: &str = "sms";
    let (url, request) = match &config.sms.gateway {
        None => {
            return vec![Finding::warning(
                TOPIC,
                "no SMS gateway: SMS go to the log",
                "set LOA_KANNEL_URL (with LOA_KANNEL_USERNAME and LOA_KANNEL_PASSWORD) or [sms.http]",
            )];
        }
        // No receiver: Kannel checks the credentials and refuses to send anything.
        Some(SmsGateway::Kannel {
            url,
            username,
            password,
        }) => (
            url,
            client
                .get(url)
                .query(&[("username", username), ("password", password)]),
        ),
        Some(SmsGateway::Http(http)) => (&http.url, client.head(&http.url)),
    };
    let shown = origin(url);
    match request.send().await {
        Err(e) => vec![Finding::failing(
            TOPIC,
            format!(
                "cannot reach the gateway at {shown}: {}",
                describe_http_error(&e)
            ),
            "check that Kannel (bearerbox and smsbox) or the provider's API runs and that this server may reach it",
        )],
        Ok(r) if r.status() == 403 || r.status() == 401 => vec![Finding::failing(
            TOPIC,
            format!(
                "the gateway at {shown} refuses the credentials ({})",
                r.status()
            ),
            "check LOA_KANNEL_USERNAME / LOA_KANNEL_PASSWORD against the sendsms-user of kannel.conf",
        )],
        Ok(r) if r.status().is_server_error() => vec![Finding::failing(
            TOPIC,
            format!("the gateway at {shown} answers {}", r.status()),
            "check the gateway's own status (Kannel: its SMS centre link)",
        )],
        Ok(r) => vec![Finding::ok(
            TOPIC,
            format!("the gateway at {shown} answers ({})", r.status()),
        )],
    }
}

/// Where a URL points, and no more: its scheme, host and port (a user, a password, a key in
/// the path or the query stay out of the report).
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "(the configured URL, which is not a URL)".into(),
    }
}

/// `LOA_PUBLIC_URL` answers `/healthz`: gateways and Telegram can call back.
async fn public_url(config: &Config, db: &Db, client: &reqwest::Client) -> Vec<Finding> {
    const TOPIC: &str = "public URL";
    let Some(public) = &config.public_url else {
        return if config.sms.gateway.is_some() {
            vec![Finding::warning(
                TOPIC,
                "LOA_PUBLIC_URL is not set: no delivery reports come back, so no SMS counts as reaching anyone",
                "set LOA_PUBLIC_URL to the address the gateway can reach Loa at",
            )]
        } else {
            Vec::new()
        };
    };
    if crate::dispatch::live_workers(db).await.unwrap_or(0) == 0 {
        return vec![Finding::warning(
            TOPIC,
            format!("{public} not checked: Loa is not running"),
            "run `loa doctor` again while `loa run` runs",
        )];
    }
    let url = format!("{}/healthz", public.trim_end_matches('/'));
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => vec![Finding::ok(TOPIC, format!("{url} answers"))],
        Ok(r) => vec![Finding::failing(
            TOPIC,
            format!("{url} answers {}", r.status()),
            "check the reverse proxy's route to Loa",
        )],
        Err(e) => vec![Finding::failing(
            TOPIC,
            format!("{url} cannot be reached: {}", describe_http_error(&e)),
            "check DNS, the firewall and the reverse proxy: gateways call back there",
        )],
    }
}

/// Free space where the database lives (or the working folder).
fn disk(config: &Config) -> Finding {
    const TOPIC: &str = "disk";
    let folder: PathBuf = sqlite_file(&config.database_url)
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let folder = if folder.exists() {
        folder
    } else {
        PathBuf::from(".")
    };
    match free_megabytes(&folder) {
        Some(mb) if mb < 100 => Finding::failing(
            TOPIC,
            format!("{mb} MB free in {}", folder.display()),
            "free space now: the database stops taking writes when the disk is full",
        ),
        Some(mb) if mb < 1024 => Finding::warning(
            TOPIC,
            format!("{mb} MB free in {}", folder.display()),
            "a year of deliveries and the daily backups need a few GB",
        ),
        Some(mb) => Finding::ok(
            TOPIC,
            format!("{:.1} GB free in {}", mb as f64 / 1024.0, folder.display()),
        ),
        None => Finding::warning(
            TOPIC,
            format!("cannot tell the free space in {}", folder.display()),
            "check with `df -h`",
        ),
    }
}

/// Megabytes free in the file system of `folder`, from POSIX `df`.
fn free_megabytes(folder: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(folder)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    let available_kb: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(available_kb / 1024)
}

/// What waits, what died in the last day, the last delivery report, the channels down.
async fn deliveries(db: &Db, now: DateTime<Utc>) -> Vec<Finding> {
    const TOPIC: &str = "deliveries";
    let mut findings = Vec::new();
    match crate::delivery::waiting(db).await {
        Ok(rows) => {
            let total: i64 = rows.iter().map(|(_, _, n)| n).sum();
            findings.push(Finding::ok(TOPIC, format!("{total} waiting or in flight")));
        }
        Err(e) => findings.push(Finding::failing(
            TOPIC,
            format!("cannot count them: {e}"),
            "run `loa migrate`",
        )),
    }
    let day_ago = to_epoch(now - chrono::Duration::days(1));
    let dead = sqlx::query_as::<_, (i64, Option<String>)>(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*), MAX(last_error) FROM deliveries WHERE status = {} AND updated_at >= $1",
        Status::Dead.sql()
    )))
    .bind(day_ago)
    .fetch_one(&db.pool)
    .await;
    if let Ok((n, reason)) = dead
        && n > 0
    {
        findings.push(Finding::warning(
            TOPIC,
            format!(
                "{n} dead in the last day (e.g. {})",
                reason.unwrap_or_default()
            ),
            "read the delivery log (console, /exports/deliveries.csv) for their reasons",
        ));
    }
    let report: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT MAX(delivered_at) FROM deliveries")
            .fetch_one(&db.pool)
            .await;
    if let Ok(Some(at)) = report {
        findings.push(Finding::ok(
            TOPIC,
            format!(
                "last SMS delivery report: {}",
                from_epoch(at).format("%d/%m/%Y %H:%M UTC")
            ),
        ));
    }
    match crate::dispatch::current_outages(db).await {
        Ok(outages) => {
            for o in outages {
                findings.push(Finding::failing(
                    "channels",
                    format!(
                        "{} is down since {}: {}",
                        o.channel,
                        o.since.format("%d/%m/%Y %H:%M UTC"),
                        o.reason
                    ),
                    "its messages wait and a probe tries it every few minutes; check the gateway",
                ));
            }
        }
        Err(e) => findings.push(Finding::failing(
            "channels",
            format!("cannot read their state: {e}"),
            "run `loa migrate`",
        )),
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_gateway_url_are_not_shown() {
        for url in [
            "http://sms.example/send?key=SECRET",
            "https://user:SECRET@sms.example/send",
            "http://sms.example/api/SECRET/send",
        ] {
            let shown = origin(url);
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("sms.example"), "{shown}");
        }
    }
}
