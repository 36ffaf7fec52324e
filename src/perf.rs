//! The benchmark harness behind `cargo bench --bench pipeline`, in the library so a test can
//! run it at a tiny size and keep it working.
//!
//! Every figure is printed beside the limit it chases, measured in the same run: fan-out
//! against a plain batched INSERT of the same rows, dispatch against the sink's own capacity,
//! the shared rate limit against Telegram's 30/s, the reach report against a naive
//! `COUNT(DISTINCT)` over deliveries.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use sqlx::{AssertSqlSafe, Row};

use crate::app::{Engine, Setup};
use crate::clock::{SharedClock, VirtualClock};
use crate::config::{ChannelKind, Config, TelegramConfig};
use crate::delivery::Status;
use crate::fakes::telegram::{EnforcedLimits, FakeTelegram};
use crate::reach;
use crate::store::{Db, to_epoch};

const TOKEN: &str = "200000002:BENCH";

#[derive(Debug, Clone)]
pub struct PerfOptions {
    /// Population sizes for fan-out and the reach report.
    pub sizes: Vec<usize>,
    /// Messages sent end to end in the dispatch figure.
    pub dispatch_messages: usize,
    /// Length of each limit-hugging run.
    pub hug_seconds: u64,
    /// Occurrences behind the reach report (deliveries = persons × occurrences).
    pub report_occurrences: usize,
    /// Where the databases go.
    pub dir: std::path::PathBuf,
    /// PostgreSQL server for the runs that have a PostgreSQL variant.
    pub postgres_url: Option<String>,
    /// Run one part only: `sizes` (fan-out and report), `fanout` (without the report's
    /// synthetic year: a national run's would need ~50 GB), `dispatch` or `hug`; `None`: all.
    pub only: Option<String>,
}

impl PerfOptions {
    fn runs(&self, part: &str) -> bool {
        match self.only.as_deref() {
            None => true,
            Some("sizes") => matches!(part, "sizes" | "report"),
            Some("fanout") => part == "sizes",
            Some(only) => only == part,
        }
    }
}

/// One printed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// What it is measured against, e.g. "raw insert 812,000 rows/s, ratio 0.61".
    pub against: String,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<44} {:>14.1} {:<10} {}",
            self.name, self.value, self.unit, self.against
        )
    }
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Starts a new peak for [`peak_rss_mb`] (Linux: writing 5 to `clear_refs` resets `VmHWM`), so
/// each phase reports its own.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The shipped configuration on a database of its own, with a frozen clock at 8 March 2023.
async fn setup_for(
    base: &Setup,
    url: &str,
    telegram_url: &str,
    unlimited: bool,
) -> anyhow::Result<(Setup, Db, Arc<VirtualClock>)> {
    let mut config: Config = (*base.config).clone();
    config.database_url = url.to_string();
    config.telegram = Some(TelegramConfig {
        token: TOKEN.into(),
        api_url: telegram_url.into(),
        admins: Vec::new(),
        webhook_secret: None,
        paid_broadcast: false,
    });
    config.sms.gateway = None;
    config.dispatch.quiet_hours = None;
    config.dispatch.max_per_person_per_day = 1000;
    if unlimited {
        if let Some(telegram) = config.channels.get_mut(ChannelKind::Telegram) {
            telegram.limits.per_second = 1_000_000;
        }
        config.limits.burst = 1_000_000;
        config.dispatch.batch_size = 1000;
    }
    let setup = Setup {
        config: Arc::new(config),
        ..base.clone()
    };
    let db = setup.open_database().await?;
    let clock = Arc::new(VirtualClock::frozen(
        DateTime::parse_from_rfc3339("2023-03-08T08:00:00+07:00")?.to_utc(),
    ));
    Ok((setup, db, clock))
}

/// `n` sample persons ("Cư dân mẫu …") over the communes, each with a Telegram chat whose id is
/// derived from the person id, inserted set-wise. Tests seed with it too.
pub async fn seed(db: &Db, config: &Config, n: usize) -> anyhow::Result<()> {
    let communes: Vec<String> = config.areas.leaves().map(|a| a.code.clone()).collect();
    let mut tx = db.pool.begin().await?;
    for start in (0..n).step_by(1000) {
        let end = n.min(start + 1000);
        let values: Vec<String> = (start..end)
            .map(|i| format!("('Cư dân mẫu {i}', '{}', 0)", communes[i % communes.len()]))
            .collect();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO persons (name, area_code, created_at) VALUES {}",
            values.join(", ")
        )))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO contacts (person_id, channel, address, created_at)
         SELECT id, 'telegram', CAST(1000000 + id AS TEXT), 0 FROM persons
         WHERE name LIKE 'Cư dân mẫu %'
           AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.person_id = persons.id)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

fn database_url(options: &PerfOptions, name: &str) -> String {
    let path = options.dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    format!("sqlite://{}", path.display())
}

/// Runs every figure and returns them (also printing each as it comes).
pub async fn run(base: &Setup, options: &PerfOptions) -> anyhow::Result<Vec<Figure>> {
    std::fs::create_dir_all(&options.dir)?;
    let mut figures = Vec::new();
    let mut emit = |f: Figure| {
        println!("{f}");
        figures.push(f);
    };
    let telegram = FakeTelegram::start(TOKEN).await?;

    let sizes: &[usize] = if options.runs("sizes") {
        &options.sizes
    } else {
        &[]
    };
    for &n in sizes {
        reset_peak_rss();
        // ---- fan-out: one occurrence to everyone, against a plain batched INSERT ----
        let url = database_url(options, &format!("fanout-{n}"));
        let (setup, db, clock) = setup_for(base, &url, &telegram.api_url(), true).await?;
        seed(&db, &setup.config, n).await?;
        let engine = Engine::new(
            &setup,
            db.clone(),
            clock.clone() as SharedClock,
            setup.transports()?,
        );
        let schedule = setup
            .calendar
            .get("quoc-te-phu-nu-8-3")
            .context("the 8 March schedule")?;
        let started = Instant::now();
        let created = engine
            .scheduler
            .create_occurrence(schedule, clock_now(&clock))
            .await?
            .context("a new occurrence")?;
        let fanout = started.elapsed();
        let raw = raw_insert_rate(&db, n).await?;
        let rate = created.recipients as f64 / fanout.as_secs_f64();
        emit(Figure {
            name: format!("fan-out {n} (SQLite)"),
            value: rate,
            unit: "rows/s",
            against: format!(
                "{:.2} s; raw batched INSERT {:.0} rows/s; ratio {:.2}",
                fanout.as_secs_f64(),
                raw,
                rate / raw
            ),
        });
        emit(Figure {
            name: "peak memory after fan-out".into(),
            value: peak_rss_mb().unwrap_or(0.0),
            unit: "MB",
            against: "target ≤ 150 MB".into(),
        });

        // ---- reach report over persons × occurrences deliveries ----
        if !options.runs("report") {
            db.close().await;
            continue;
        }
        let deliveries = synthesise_year(&db, options.report_occurrences).await?;
        let c = &setup.config;
        let from = "2023-01-01".parse()?;
        let to = "2023-12-31".parse()?;
        let started = Instant::now();
        let report = reach::report(&db, &c.areas, c.campaign.target, from, to).await?;
        let report_time = started.elapsed();
        let started = Instant::now();
        let naive: i64 = sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(DISTINCT person_id) FROM deliveries WHERE status = {}",
            Status::Sent.sql()
        )))
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
        let naive_time = started.elapsed();
        anyhow::ensure!(
            naive as u64 == report.total.reached,
            "the report and the naive count disagree"
        );
        emit(Figure {
            name: format!("reach report {n} persons / {deliveries} deliveries"),
            value: report_time.as_secs_f64() * 1000.0,
            unit: "ms",
            against: format!(
                "naive COUNT(DISTINCT) {:.0} ms; ratio {:.2}; target ≤ 100 ms",
                naive_time.as_secs_f64() * 1000.0,
                report_time.as_secs_f64() / naive_time.as_secs_f64()
            ),
        });
        db.close().await;
    }

    // ---- dispatch end to end, limits off, against the sink's own capacity ----
    if options.runs("dispatch") {
        figures.extend(dispatch_figures(base, options, &telegram).await?);
    }

    // ---- limit-hugging: Telegram's limits on, against a fake enforcing them ----
    if options.runs("hug") {
        let hug = StdDuration::from_secs(options.hug_seconds);
        for processes in [1, 2] {
            // A fake of its own per run: the previous run's last second must not count.
            let strict = FakeTelegram::start(TOKEN).await?;
            strict.enforce_limits(EnforcedLimits {
                per_second: 30,
                per_chat_per_second: 1,
            });
            let figure = hug_limits(base, options, &strict, hug, processes).await?;
            println!("{figure}");
            figures.push(figure);
        }
    }
    Ok(figures)
}

/// Messages per second end to end with the limits off, and the sink's own capacity.
async fn dispatch_figures(
    base: &Setup,
    options: &PerfOptions,
    telegram: &FakeTelegram,
) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut emit = |f: Figure| {
        println!("{f}");
        figures.push(f);
    };
    reset_peak_rss();
    let m = options.dispatch_messages;
    let url = database_url(options, "dispatch");
    let (setup, db, _) = setup_for(base, &url, &telegram.api_url(), true).await?;
    seed(&db, &setup.config, m).await?;
    let clock: SharedClock = Arc::new(VirtualClock::running(
        DateTime::parse_from_rfc3339("2023-03-08T08:00:00+07:00")?.to_utc(),
        1.0,
    ));
    let mut engine = Engine::new(&setup, db.clone(), Arc::clone(&clock), setup.transports()?);
    engine.scheduler.tick().await?;
    let before = telegram.accepted();
    let started = Instant::now();
    loop {
        let step = engine.dispatcher.step().await?;
        // A minimal sink: it counts, it does not keep what it got.
        telegram.forget_sent();
        if step.claimed == 0 {
            break;
        }
    }
    let dispatch_time = started.elapsed();
    let sent = telegram.accepted() - before;
    let dispatch_peak = peak_rss_mb().unwrap_or(0.0);
    let sink = sink_capacity(telegram, m, setup.config.dispatch.concurrency).await?;
    telegram.forget_sent();
    let rate = sent as f64 / dispatch_time.as_secs_f64();
    emit(Figure {
        name: format!("dispatch {sent} messages (SQLite)"),
        value: rate,
        unit: "msg/s",
        against: format!(
            "sink alone {sink:.0} msg/s; ratio {:.2}; target ≥ 0.5",
            rate / sink
        ),
    });
    emit(Figure {
        name: "peak memory during dispatch".into(),
        value: dispatch_peak,
        unit: "MB",
        against: "target ≤ 150 MB".into(),
    });
    db.close().await;
    Ok(figures)
}

fn clock_now(clock: &VirtualClock) -> DateTime<Utc> {
    use crate::clock::Clock;
    clock.now()
}

/// Rows per second of a plain batched INSERT of delivery-shaped rows, in one transaction.
async fn raw_insert_rate(db: &Db, n: usize) -> anyhow::Result<f64> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS raw_insert (occurrence_id BIGINT, person_id BIGINT, contact_id BIGINT,
            channel TEXT, status TEXT, due_at BIGINT, expires_at BIGINT, updated_at BIGINT)",
    )
    .execute(&db.pool)
    .await?;
    let started = Instant::now();
    let mut tx = db.pool.begin().await?;
    for start in (0..n).step_by(1000) {
        let end = n.min(start + 1000);
        let values: Vec<String> = (start..end)
            .map(|i| {
                format!(
                    "(1, {i}, {i}, 'telegram', {}, 0, 0, 0)",
                    Status::Pending.sql()
                )
            })
            .collect();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO raw_insert VALUES {}",
            values.join(", ")
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Fills a year of history set-wise: `occurrences` occurrences sent to everyone, their
/// deliveries `sent`, and the reach rows the dispatcher would have written. Returns the number
/// of deliveries.
pub async fn synthesise_year(db: &Db, occurrences: usize) -> anyhow::Result<i64> {
    // One transaction per occurrence, as the dispatcher would have written them over a year.
    for k in 0..occurrences {
        let mut tx = db.pool.begin().await?;
        // One occurrence a month from January, at 08:00 +07:00.
        let month = (k % 12) as u32 + 1;
        let day = chrono::NaiveDate::from_ymd_opt(2023, month, 10).context("date")?;
        let at = day.and_hms_opt(1, 0, 0).context("time")?.and_utc();
        let id: i64 = sqlx::query(
            "INSERT INTO occurrences (schedule_id, fire_at, template, observance, channels, expires_at, created_at)
             VALUES ($1, $2, 'phap-luat-01-binh-dang-gioi', 'Truyền thông', 'telegram', $3, $2) RETURNING id",
        )
        .bind(format!("bench-{k}"))
        .bind(to_epoch(at))
        .bind(to_epoch(at + Duration::hours(12)))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO deliveries (occurrence_id, person_id, contact_id, channel, status, due_at, expires_at, sent_at, updated_at)
             SELECT $1, c.person_id, c.id, 'telegram', {}, $2, $3, $2, $2 FROM contacts c",
            Status::Sent.sql()
        )))
        .bind(id)
        .bind(to_epoch(at))
        .bind(to_epoch(at + Duration::hours(12)))
        .execute(&mut *tx)
        .await?;
        for period in reach::periods_of(day) {
            sqlx::query(
                "INSERT INTO reach (period, person_id, area_code, channel, first_at, kind)
                 SELECT $1, p.id, p.area_code, 'telegram', $2, 'resident' FROM persons p WHERE true
                 ON CONFLICT (period, person_id) DO NOTHING",
            )
            .bind(period)
            .bind(to_epoch(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    // The per-area counts the dispatcher keeps as it goes, rebuilt set-wise.
    sqlx::query("DELETE FROM reach_counts")
        .execute(&db.pool)
        .await?;
    sqlx::query(
        "INSERT INTO reach_counts (period, kind, area_code, persons)
         SELECT period, kind, area_code, COUNT(*) FROM reach GROUP BY period, kind, area_code",
    )
    .execute(&db.pool)
    .await?;
    Ok(sqlx::query("SELECT COUNT(*) FROM deliveries")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?)
}

/// Messages per second a plain client loop gets from the sink, `concurrency` at a time.
async fn sink_capacity(
    telegram: &FakeTelegram,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let url = format!("{}/bot{TOKEN}/sendMessage", telegram.api_url());
    let started = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                client
                    .post(&url)
                    .json(&serde_json::json!({"chat_id": 9_000_000 + i as i64, "text": "Bình đẳng giới"}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    anyhow::ensure!(results.iter().all(|ok| *ok), "the sink refused a request");
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `processes` engines sharing one bot token and one database send for `duration` against a
/// fake enforcing Telegram's limits: messages per second achieved, and 429s provoked.
async fn hug_limits(
    base: &Setup,
    options: &PerfOptions,
    fake: &FakeTelegram,
    duration: StdDuration,
    processes: usize,
) -> anyhow::Result<Figure> {
    let (url, backend) = match &options.postgres_url {
        Some(pg) if processes > 1 => (fresh_postgres_database(pg).await?, "PostgreSQL"),
        _ => (database_url(options, &format!("hug-{processes}")), "SQLite"),
    };
    let (setup, db, _) = setup_for(base, &url, &fake.api_url(), false).await?;
    sqlx::query("DELETE FROM dispatch_workers")
        .execute(&db.pool)
        .await?;
    // Enough recipients to keep sending for the whole run.
    let recipients = (duration.as_secs() as usize + 5) * 31;
    let existing: i64 = sqlx::query("SELECT COUNT(*) FROM persons")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    if (existing as usize) < recipients {
        seed(&db, &setup.config, recipients - existing as usize).await?;
    }
    let clock: SharedClock = Arc::new(VirtualClock::running(
        DateTime::parse_from_rfc3339("2023-03-08T08:00:00+07:00")?.to_utc(),
        1.0,
    ));
    let mut engines: Vec<Engine> = (0..processes)
        .map(|_| {
            Engine::new(
                &setup,
                db.clone(),
                Arc::clone(&clock),
                setup.transports().expect("transports"),
            )
        })
        .collect();
    engines[0].scheduler.tick().await?;
    for e in &engines {
        e.dispatcher.heartbeat().await?;
    }
    let before_sent = fake.sent().len();
    let before_429 = fake.too_many_requests();
    let started = Instant::now();
    // Past the join hold, then send until the time is up.
    let runs = engines.iter().map(|e| async move {
        while started.elapsed() < duration {
            match e.dispatcher.step().await {
                Ok(step) if step.claimed > 0 => {}
                _ => tokio::time::sleep(StdDuration::from_millis(50)).await,
            }
        }
        e.dispatcher.request_stop();
    });
    futures::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let times: Vec<Instant> = fake.sent()[before_sent..]
        .iter()
        .map(|m| m.received_at)
        .collect();
    let sent = times.len();
    // The rate while sending: from the first message to the last.
    let sending = match (times.first(), times.last()) {
        (Some(first), Some(last)) if sent > 1 => last.duration_since(*first).as_secs_f64(),
        _ => elapsed,
    };
    let too_many = fake.too_many_requests() - before_429;
    for e in &engines {
        e.dispatcher.retire().await?;
    }
    db.close().await;
    Ok(Figure {
        name: format!("limit-hugging, {processes} process(es), {backend}"),
        value: (sent.saturating_sub(1)) as f64 / sending,
        unit: "msg/s",
        against: format!(
            "{sent} messages, {too_many} × 429, busiest sliding second {}; Telegram 30/s; target ≥ 29 with no 429",
            crate::fakes::telegram::max_in_window(&times, StdDuration::from_secs(1))
        ),
    })
}

/// An empty database on the server of `admin_url`, for one run.
async fn fresh_postgres_database(admin_url: &str) -> anyhow::Result<String> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let name = format!(
        "loa_bench_{}_{}",
        std::process::id(),
        Utc::now().timestamp_subsec_nanos()
    );
    let mut admin = sqlx::AnyConnection::connect(admin_url).await?;
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .context("a PostgreSQL URL ends with /database")?;
    Ok(format!("{base}/{name}"))
}
