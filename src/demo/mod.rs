//! `loa demo`: the year of the plan in about a minute, on a throwaway database.
//!
//! Nothing here simulates Loa: the real scheduler, fan-out, dispatch, webhooks and reach code
//! run on a virtual clock that the demo moves from one fire time to the next, against the
//! in-process fake Telegram Bot API, fake Zalo ZNS and fake Kannel. What is made up is the
//! population — sample names marked "(mẫu)", numbers in the unassigned +84 10 range — and what
//! happens to messages: some residents blocked the bot, most numbers have Zalo but some have
//! none and a few refuse the OA (they get SMS), some SMS fail or are never confirmed, some
//! people opt out during the year; about a third of Telegram readers tap "Tôi đã đọc", and new
//! residents subscribe through the communes' posters as the year goes on. SMS and Zalo have a
//! yearly budget (unless `loa.toml` gives one). The district sends its routine messages by
//! Telegram and Zalo and keeps SMS for top-ups: on 1 July it reviews the projection and queues
//! an SMS top-up to the unreached of the communes below the band ([`midyear`]).

mod midyear;

pub use midyear::MidYear;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;

use crate::app::{self, Application, Engine, Overrides, Setup};
use crate::calendar::local_midnight;
use crate::clock::{Clock, SharedClock, VirtualClock};
use crate::config::{ChannelKind, Config, SmsGateway, TelegramConfig, ZaloConfig};
use crate::fakes::kannel::FakeKannel;
use crate::fakes::telegram::FakeTelegram;
use crate::fakes::zalo::{FakeZalo, Reachability, ZaloApp};
use crate::reach::{self, ReachReport};
use crate::store::{Db, to_epoch};

const DEMO_TOKEN: &str = "100000001:DEMO";
const DEMO_SECRET: &str = "demo-webhook-secret";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub year: i32,
    /// Sample residents.
    pub people: usize,
    /// Virtual days per real second; 0: as fast as the machine goes.
    pub speed: f64,
    /// Seed of the sample population and of what happens to messages.
    pub seed: u64,
    /// Where the throwaway database goes.
    pub dir: PathBuf,
}

/// One occurrence as the demo saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOccurrence {
    pub at: DateTime<Utc>,
    pub schedule: String,
    pub observance: String,
    pub template: String,
    pub recipients: u64,
}

#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub database: PathBuf,
    pub occurrences: Vec<DemoOccurrence>,
    pub report: ReachReport,
    pub telegram_sent: usize,
    pub zalo_sent: usize,
    pub sms_sent: usize,
    /// Each channel's year: messages sent, people reached, what it cost.
    pub channels: Vec<ChannelYear>,
    /// What the mid-year review found and queued.
    pub mid_year: Option<MidYear>,
}

/// One channel's year in the demo.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelYear {
    pub label: &'static str,
    /// Messages the provider accepted.
    pub sent: u64,
    /// Of those, confirmed to have reached their person.
    pub reached: u64,
    /// In đồng, what the providers accepted at the configured prices (SMS by parts).
    pub cost_vnd: f64,
    /// Its yearly budget, in đồng.
    pub budget: Option<f64>,
}

/// What the demo prints as it goes.
pub trait DemoProgress {
    fn occurrence(&mut self, line: &str);
    /// `sent`: messages so far per channel, Telegram, Zalo, SMS.
    fn status(&mut self, virtual_now: DateTime<Utc>, occurrences: usize, sent: [usize; 3]);
}

/// A population spread over the communes, with each commune's population scaled so the sample
/// stands for it at a density between 30 and 80 %: the report then shows communes below, within
/// and above the target band.
fn scaled_config(
    config: &Config,
    people: usize,
    rng: &mut StdRng,
) -> (Config, Vec<(String, usize)>) {
    let mut config = config.clone();
    let leaves: Vec<String> = config.areas.leaves().map(|a| a.code.clone()).collect();
    let total: u64 = leaves
        .iter()
        .map(|c| config.areas.population(c))
        .sum::<u64>()
        .max(1);
    let mut plan = Vec::new();
    let mut scaled = BTreeMap::new();
    for code in &leaves {
        let share = config.areas.population(code) as f64 / total as f64;
        let residents = ((people as f64) * share).round().max(1.0) as usize;
        let density: f64 = rng.random_range(0.30..0.80);
        scaled.insert(
            code.clone(),
            ((residents as f64) / density).round().max(1.0) as u64,
        );
        plan.push((code.clone(), residents));
    }
    config.areas = config.areas.with_populations(&scaled);
    (config, plan)
}

const FAMILY: [&str; 14] = [
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
    "Dương", "Lý",
];
const MIDDLE: [&str; 8] = ["Thị", "Văn", "Minh", "Thu", "Hồng", "Đức", "Ngọc", "Quang"];
const GIVEN: [&str; 12] = [
    "Lan", "Hoa", "Hùng", "Mai", "Nam", "Hương", "Dũng", "Yến", "Tuấn", "Thảo", "Hải", "Linh",
];

/// A made-up Vietnamese name, marked as a sample.
fn sample_name(rng: &mut StdRng) -> String {
    format!(
        "{} {} {} (mẫu)",
        FAMILY[rng.random_range(0..FAMILY.len())],
        MIDDLE[rng.random_range(0..MIDDLE.len())],
        GIVEN[rng.random_range(0..GIVEN.len())]
    )
}

/// How a sample resident can be reached, and what will go wrong for them.
#[derive(Debug, Clone)]
struct Resident {
    person_id: i64,
    telegram: Option<i64>,
}

async fn seed(
    db: &Db,
    plan: &[(String, usize)],
    rng: &mut StdRng,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Resident>> {
    let mut residents = Vec::new();
    let mut tx = db.pool.begin().await?;
    let mut n: u64 = 0;
    for (area, count) in plan {
        for _ in 0..*count {
            n += 1;
            let name = sample_name(rng);
            let person_id: i64 = sqlx::query("INSERT INTO persons (name, area_code, created_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(&name)
                .bind(area)
                .bind(to_epoch(now))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            // One in four is young (`thanh-nien`), for the youth's summer messages.
            if n.is_multiple_of(4) {
                sqlx::query("INSERT INTO person_tags (person_id, tag) VALUES ($1, $2)")
                    .bind(person_id)
                    .bind("thanh-nien")
                    .execute(&mut *tx)
                    .await?;
            }
            // 45 % Telegram only, 35 % SMS only, 20 % both.
            let roll: f64 = rng.random();
            let telegram = (roll < 0.65).then(|| 7_000_000_000 + n as i64);
            // +84 10…: a range no carrier assigns, so no real phone can be hit.
            let phone = (roll >= 0.45).then(|| format!("+8410{:07}", n));
            if let Some(chat) = telegram {
                add_contact(&mut tx, person_id, "telegram", &chat.to_string(), now).await?;
            }
            if let Some(phone) = &phone {
                add_contact(&mut tx, person_id, "sms", phone, now).await?;
            }
            residents.push(Resident {
                person_id,
                telegram,
            });
        }
    }
    tx.commit().await?;
    Ok(residents)
}

async fn add_contact(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    person_id: i64,
    channel: &str,
    address: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO contacts (person_id, channel, address, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(person_id)
    .bind(channel)
    .bind(address)
    .bind(to_epoch(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Plays the year. `setup` is the loaded configuration; the demo's own database, fakes and
/// web server are made here and the real `data/loa.db` is never touched.
pub async fn run(
    setup: &Setup,
    options: &DemoOptions,
    progress: &mut dyn DemoProgress,
) -> anyhow::Result<DemoOutcome> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    std::fs::create_dir_all(&options.dir)
        .with_context(|| format!("cannot create {}", options.dir.display()))?;
    let database = options.dir.join("loa-demo.db");
    let _ = std::fs::remove_file(&database);
    let telegram = FakeTelegram::start(DEMO_TOKEN).await?;
    let kannel = FakeKannel::start().await?;
    let zalo_app = ZaloApp {
        app_id: "1000000000000000001".into(),
        secret_key: "demo-app-secret".into(),
        refresh_token: "demo-refresh-token".into(),
        oa_secret: "demo-oa-secret".into(),
    };
    let zalo = FakeZalo::start(zalo_app.clone()).await?;
    // Zalo approved the templates the messages folder names, with their parameters' limits.
    for (id, params) in setup.templates.zns_requirements() {
        let params: Vec<(&str, usize)> = params.iter().map(|(n, m)| (n.as_str(), *m)).collect();
        zalo.register_template(&id, &params);
    }
    // Most numbers have Zalo; 15 % have none and 3 % refuse the OA: those get SMS.
    let zalo_seed: u64 = rng.random();
    zalo.set_reachability(move |phone| {
        match StdRng::seed_from_u64(zalo_seed ^ fxhash(phone)).random_range(0..100) {
            0..82 => Reachability::OnZalo,
            82..97 => Reachability::NotOnZalo,
            _ => Reachability::BlockedOa,
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let web_url = format!("http://{}", listener.local_addr()?);

    let (mut config, plan) = scaled_config(&setup.config, options.people, &mut rng);
    config.database_url = format!("sqlite://{}", database.display());
    config.telegram = Some(TelegramConfig {
        token: DEMO_TOKEN.to_string(),
        api_url: telegram.api_url(),
        admins: Vec::new(),
        webhook_secret: None,
        paid_broadcast: false,
    });
    config.sms.gateway = Some(SmsGateway::Kannel {
        url: kannel.sendsms_url(),
        username: "demo".into(),
        password: "demo".into(),
    });
    if config.sms.from.is_empty() {
        config.sms.from = "LOA DEMO".into();
    }
    config.zalo = Some(ZaloConfig {
        app_id: zalo_app.app_id.clone(),
        secret_key: zalo_app.secret_key.clone(),
        refresh_token: zalo_app.refresh_token.clone(),
        oa_secret: zalo_app.oa_secret.clone(),
        api_url: zalo.api_url(),
        oauth_url: zalo.oauth_url(),
    });
    let zalo_webhook = format!("{web_url}/webhooks/zalo");
    config.public_url = Some(web_url);
    config.webhook_secret = Some(DEMO_SECRET.into());
    // A yearly budget for the paid channels, unless the configuration gives one: about what
    // the year's messages cost for the sample, with room for a top-up.
    for (kind, per_person) in [(ChannelKind::Sms, 2_500.0), (ChannelKind::Zalo, 3_000.0)] {
        if let Some(channel) = config.channels.get_mut(kind)
            && channel.yearly_budget.is_none()
        {
            channel.yearly_budget = Some(per_person * options.people as f64);
        }
    }
    // Telegram's 30/s may all go at one instant of the stepped clock.
    config.limits.burst = config
        .channels
        .get(ChannelKind::Telegram)
        .map_or(1, |t| t.limits.per_second);
    let config = Arc::new(config);
    // The demo's district sends its routine messages by Telegram and Zalo, and keeps SMS for
    // the people those cannot reach, in targeted top-ups.
    let setup = Setup {
        config: Arc::clone(&config),
        calendar: Arc::new(setup.calendar.without_channel(ChannelKind::Sms)),
        ..setup.clone()
    };

    let start = local_midnight(
        NaiveDate::from_ymd_opt(options.year, 1, 1).context("year")?,
        config.campaign.time_zone,
    );
    let end = local_midnight(
        NaiveDate::from_ymd_opt(options.year + 1, 1, 1).context("year")?,
        config.campaign.time_zone,
    );
    let clock = Arc::new(VirtualClock::frozen(start));
    let shared: SharedClock = clock.clone();

    // The configuration points at the fakes, so the transports built from it send to them.
    // The residents here are scripted rather than chatting, so the bot is not run.
    let Application {
        setup,
        engine:
            Engine {
                db,
                mut scheduler,
                dispatcher,
            },
        web,
        listener,
        ..
    } = Application::build_with(
        setup,
        shared,
        Overrides {
            listener: Some(listener),
            ..Overrides::default()
        },
    )
    .await?;
    let residents = seed(&db, &plan, &mut rng, start).await?;
    let console = web.console();
    let server = tokio::spawn(app::serve_web(web, listener, std::future::pending()));

    // What goes wrong during the year: 6 % of Telegram users blocked the bot; 3 % of everyone
    // opts out on a day of the year; of SMS, 88 % are reported delivered, 4 % failed, 8 % never
    // confirmed.
    for r in &residents {
        if let Some(chat) = r.telegram
            && rng.random_bool(0.06)
        {
            telegram.block(chat);
        }
    }
    let year_seconds = (end - start).num_seconds();
    let mut opt_outs: Vec<(DateTime<Utc>, &Resident)> = Vec::new();
    for r in &residents {
        if rng.random_bool(0.03) {
            opt_outs.push((
                start + Duration::seconds(rng.random_range(0..year_seconds)),
                r,
            ));
        }
    }
    opt_outs.sort_by_key(|(at, _)| *at);
    let outcome_seed: u64 = rng.random();
    let sms_outcome = move |sms: &crate::fakes::kannel::SentSms| {
        // Stable per message, whatever the order the reports are played in.
        let mut h = StdRng::seed_from_u64(outcome_seed ^ fxhash(&sms.to) ^ fxhash(&sms.text));
        match h.random_range(0..100) {
            0..88 => Some(1),
            88..92 => Some(2),
            _ => None,
        }
    };

    let mut fire_times: Vec<(DateTime<Utc>, String, String)> = setup
        .calendar
        .fire_times(start - Duration::seconds(1), end - Duration::seconds(1))
        .into_iter()
        .map(|f| {
            (
                f.at.to_utc(),
                f.schedule.observance.clone(),
                f.schedule.template.clone(),
            )
        })
        .collect();
    // The mid-year review on 1 July; the top-up it queues goes on 3 July at 09:00.
    let review_at = local_midnight(
        NaiveDate::from_ymd_opt(options.year, 7, 1).context("year")?,
        config.campaign.time_zone,
    );
    let top_up_after = Duration::hours(2 * 24 + 9);
    fire_times.push((
        review_at + top_up_after,
        "Tin bổ sung cho các xã, thị trấn dưới mục tiêu".into(),
        midyear::TOP_UP_TEMPLATE.into(),
    ));
    fire_times.sort_by_key(|f| f.0);
    let mut mid_year = None;
    let real_start = Instant::now();
    let mut occurrences = Vec::new();
    let mut next_opt_out = 0;
    for (at, observance, template) in fire_times {
        pace(options.speed, real_start, start, at).await;
        // Opt-outs that happened before this fire time, as a reply "TC" or the bot's /stop
        // records them. (The sample numbers are unassigned, so they cannot come through the
        // SMS webhook, which accepts real numbers only.)
        while next_opt_out < opt_outs.len() && opt_outs[next_opt_out].0 < at {
            let (when, r) = opt_outs[next_opt_out];
            crate::audience::opt_out(&db, r.person_id, when).await?;
            next_opt_out += 1;
        }
        if mid_year.is_none() && at >= review_at {
            clock.set(review_at);
            mid_year = Some(midyear::review(&console, top_up_after, progress).await?);
        }
        clock.set(at);
        let created = scheduler.tick().await?;
        midyear::decide_holds(&console, progress).await?;
        for o in created.created {
            let recipients = o.recipients;
            let local = at.with_timezone(&config.campaign.time_zone);
            progress.occurrence(&format!(
                "{}  {:<58} {:<24} {:>6} recipients",
                local.format("%Y-%m-%d %H:%M"),
                truncate(&observance, 58),
                template,
                recipients
            ));
            occurrences.push(DemoOccurrence {
                at,
                schedule: o.schedule_id.clone(),
                observance: observance.clone(),
                template: template.clone(),
                recipients,
            });
        }
        // Send everything due, one step per second of the clock, as the channels' limits allow.
        loop {
            let step = dispatcher.step().await?;
            if step.claimed == 0
                && pending_before(&db, clock.now() + Duration::hours(2)).await? == 0
            {
                break;
            }
            clock.advance(Duration::seconds(1));
        }
        kannel.settle_reports(sms_outcome).await;
        zalo.deliver_receipts(&zalo_webhook).await;
        engage(&db, &mut rng, config.campaign.time_zone, clock.now()).await?;
        poster_subscriptions(&db, &plan, &mut rng, options.people, clock.now()).await?;
        progress.status(
            clock.now(),
            occurrences.len(),
            [
                telegram.sent().len(),
                zalo.sent().len(),
                kannel.sent().len(),
            ],
        );
    }
    clock.set(end - Duration::seconds(1));
    dispatcher.step().await?;
    kannel.settle_reports(sms_outcome).await;
    zalo.deliver_receipts(&zalo_webhook).await;

    let report = reach::report(
        &db,
        &config.areas,
        config.campaign.target,
        NaiveDate::from_ymd_opt(options.year, 1, 1).context("year")?,
        NaiveDate::from_ymd_opt(options.year, 12, 31).context("year")?,
    )
    .await?;
    let sms_texts: Vec<String> = kannel
        .sent()
        .into_iter()
        .filter(|m| m.dlr_url.is_some())
        .map(|m| m.text)
        .collect();
    let channels = channel_years(&db, &config).await?;
    dispatcher.retire().await?;
    server.abort();
    db.close().await;
    Ok(DemoOutcome {
        database,
        occurrences,
        report,
        telegram_sent: telegram.sent().len(),
        zalo_sent: zalo.sent().len(),
        sms_sent: sms_texts.len(),
        channels,
        mid_year,
    })
}

/// Each configured channel's year from the deliveries: accepted, reached, what it cost (what
/// the providers accepted, SMS by parts) and its budget.
async fn channel_years(db: &Db, config: &Config) -> anyhow::Result<Vec<ChannelYear>> {
    let rows = sqlx::query(
        "SELECT channel, COUNT(*), COUNT(reached_at), COALESCE(SUM(spent), 0.0) FROM deliveries
         WHERE status IN ('sent', 'delivered', 'buffered') OR reached_at IS NOT NULL
         GROUP BY channel",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut counts: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
    for row in rows {
        let (sent, reached): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
        counts.insert(
            row.try_get(0)?,
            (sent as u64, reached as u64, row.try_get(3)?),
        );
    }
    Ok(config
        .channels
        .iter()
        .map(|d| {
            let (sent, reached, cost_vnd) =
                counts.get(d.kind.as_str()).copied().unwrap_or_default();
            ChannelYear {
                label: d.label,
                sent,
                reached,
                cost_vnd,
                budget: d.yearly_budget,
            }
        })
        .collect())
}

/// "Tôi đã đọc": about a third of the Telegram messages not yet tapped are, within the hour.
async fn engage(
    db: &Db,
    rng: &mut StdRng,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let sent = sqlx::query(
        "SELECT d.occurrence_id, d.person_id, p.area_code FROM deliveries d
         JOIN persons p ON p.id = d.person_id
         WHERE d.channel = 'telegram' AND d.status = 'sent'
           AND NOT EXISTS (SELECT 1 FROM engagements e
                           WHERE e.occurrence_id = d.occurrence_id AND e.person_id = d.person_id)
           AND d.occurrence_id = (SELECT MAX(id) FROM occurrences)",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut tx = db.pool.begin().await?;
    for row in sent {
        if !rng.random_bool(0.35) {
            continue;
        }
        let at = now + Duration::minutes(rng.random_range(1..60));
        sqlx::query(
            "INSERT INTO engagements (occurrence_id, person_id, area_code, day, at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (occurrence_id, person_id) DO NOTHING",
        )
        .bind(row.try_get::<i64, _>(0)?)
        .bind(row.try_get::<i64, _>(1)?)
        .bind(row.try_get::<String, _>(2)?)
        .bind(at.with_timezone(&tz).date_naive().to_string())
        .bind(to_epoch(at))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// New residents who scanned a commune's poster and confirmed, a few at each fire time, in
/// proportion to the communes' sample sizes.
async fn poster_subscriptions(
    db: &Db,
    plan: &[(String, usize)],
    rng: &mut StdRng,
    people: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let newcomers = (people / 150).max(1);
    let total: usize = plan.iter().map(|(_, n)| n).sum::<usize>().max(1);
    let mut tx = db.pool.begin().await?;
    for _ in 0..newcomers {
        let mut pick = rng.random_range(0..total);
        let area = plan
            .iter()
            .find(|(_, n)| {
                let here = pick < *n;
                pick = pick.saturating_sub(*n);
                here
            })
            .map_or(plan[0].0.as_str(), |(a, _)| a.as_str());
        let name = sample_name(rng);
        let person: i64 = sqlx::query(
            "INSERT INTO persons (name, area_code, created_at, name_given, consent_via, consent_at, consent_detail)
             VALUES ($1, $2, $3, 0, 'poster', $3, $2) RETURNING id",
        )
        .bind(&name)
        .bind(area)
        .bind(to_epoch(now))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let chat = 8_000_000_000 + person;
        add_contact(&mut tx, person, "telegram", &chat.to_string(), now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deliveries still to send that are due before `until` (a retry later in the day counts; one
/// postponed to tomorrow does not hold up today's occurrence).
async fn pending_before(db: &Db, until: DateTime<Utc>) -> anyhow::Result<i64> {
    Ok(crate::delivery::overdue(db, until).await?)
}

/// Waits so that `speed` virtual days pass per real second.
async fn pace(speed: f64, real_start: Instant, start: DateTime<Utc>, at: DateTime<Utc>) {
    if speed <= 0.0 {
        return;
    }
    let days = (at - start).num_seconds() as f64 / 86_400.0;
    let due = StdDuration::from_secs_f64(days / speed);
    if let Some(wait) = due.checked_sub(real_start.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// A small stable hash (FNV-1a) for per-message outcomes.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
