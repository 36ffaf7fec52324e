//! Turns fire times into occurrences and occurrences into delivery rows.
//!
//! Owns the tables `occurrences` and (creating its rows) `deliveries`. Both inserts are keyed —
//! (schedule, fire time) and (occurrence, person) — and happen in one transaction, so any
//! number of restarts or instances can tick over the same instant: the second one finds the
//! occurrence there and does nothing.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::Row;

use crate::budget::{self, Message, Pricer};
use crate::calendar::{Audience, Calendar, Fire, Schedule};
use crate::channel::{ChannelKind, ChannelSet};
use crate::clock::SharedClock;
use crate::config::{AreaTree, TargetBand};
use crate::console::content;
use crate::delivery::Status;
use crate::store::{Db, Sql, from_epoch, to_epoch};

/// An occurrence this tick created, with its audience size.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedOccurrence {
    pub id: i64,
    pub schedule_id: String,
    pub fire_at: DateTime<Utc>,
    pub recipients: u64,
}

#[derive(Debug, Default)]
pub struct TickReport {
    pub created: Vec<CreatedOccurrence>,
    /// Expired before Loa could create them: recorded as `missed`, not sent.
    pub missed: Vec<CreatedOccurrence>,
}

/// How far back a restart looks for fire times it missed.
const MAX_CATCH_UP_DAYS: i64 = 366;

pub struct Scheduler {
    db: Db,
    calendar: Arc<Calendar>,
    areas: Arc<AreaTree>,
    clock: SharedClock,
    /// Fire times up to here have been handled by this process.
    cursor: Option<DateTime<Utc>>,
    /// The campaign's, for the local date of queued content.
    time_zone: Tz,
    channels: ChannelSet,
    /// The plan's band: an audience of the communes below it (`below_band`) is counted
    /// against it.
    target: TargetBand,
    /// Prices each occurrence's deliveries and holds one that would go over a channel's
    /// yearly budget; `None` leaves deliveries unpriced.
    pricer: Option<Pricer>,
    /// Telegram chats told when an occurrence is held over budget.
    admins: Vec<i64>,
}

/// How long queued content may wait to be sent (quiet hours, a gateway down) before it is
/// no longer worth sending.
const QUEUED_CONTENT_EXPIRES_AFTER: Duration = Duration::days(2);

/// What an occurrence is made from: a schedule's fire time, or queued content.
struct OccurrenceSpec<'a> {
    schedule_id: &'a str,
    template: &'a str,
    observance: &'a str,
    observance_date: NaiveDate,
    /// The observance's theme for that round, `""` when none is known.
    theme: &'a str,
    channels: &'a [ChannelKind],
    audience: &'a Audience,
    expires_after: Duration,
    /// Queued content's own text per channel; a channel without one renders `template`.
    bodies: Vec<(ChannelKind, String)>,
}

impl OccurrenceSpec<'_> {
    /// What it sends, for its price.
    fn message(&self, date: NaiveDate) -> Message {
        Message {
            template: self.template.to_string(),
            observance: self.observance.to_string(),
            theme: self.theme.to_string(),
            observance_date: self.observance_date,
            date,
            bodies: self.bodies.iter().cloned().collect(),
        }
    }
}

impl<'a> OccurrenceSpec<'a> {
    /// `rule_at`: when the schedule's rule put the fire time, which differs from the fire
    /// time when a holiday moved it; the observance it belongs to is the rule's.
    fn of_schedule(schedule: &'a Schedule, rule_at: DateTime<Utc>) -> Self {
        OccurrenceSpec {
            schedule_id: &schedule.id,
            template: &schedule.template,
            observance: &schedule.observance,
            observance_date: schedule.observance_date(rule_at),
            theme: schedule.theme(rule_at).unwrap_or_default(),
            channels: &schedule.channels,
            audience: &schedule.audience,
            expires_after: schedule.expires_after,
            bodies: Vec::new(),
        }
    }
}

impl Scheduler {
    pub fn new(db: Db, calendar: Arc<Calendar>, areas: Arc<AreaTree>, clock: SharedClock) -> Self {
        Scheduler {
            db,
            calendar,
            areas,
            clock,
            cursor: None,
            time_zone: chrono_tz::Asia::Ho_Chi_Minh,
            channels: ChannelSet::builtin(),
            target: TargetBand::PLAN,
            pricer: None,
            admins: Vec::new(),
        }
    }

    /// Prices every occurrence's deliveries and holds one that would take a channel over its
    /// yearly budget, telling `admins` (Telegram chats) it waits for them.
    pub fn with_budget(mut self, pricer: Pricer, admins: Vec<i64>) -> Self {
        self.pricer = Some(pricer);
        self.admins = admins;
        self
    }

    /// The plan's target band (40–60 % unless said otherwise).
    pub fn with_target(mut self, target: TargetBand) -> Self {
        self.target = target;
        self
    }

    /// The campaign time zone (queued content's observance date is a local date).
    pub fn with_time_zone(mut self, tz: Tz) -> Self {
        self.time_zone = tz;
        self
    }

    /// The channels Loa sends by (the built-in ones unless said otherwise): queued content may
    /// name them, and a schedule's channel not among them (Zalo on a deployment without it) is
    /// left out of its occurrences, so its people get their next channel.
    pub fn with_channels(mut self, channels: ChannelSet) -> Self {
        self.channels = channels;
        self
    }

    /// Creates the occurrences due since the last tick.
    ///
    /// After a restart it goes back to the last tick any instance recorded (at most a year):
    /// a fire time missed while Loa was down is still sent if it has not expired, and recorded
    /// as `missed` — never sent — if it has. On a database that never ticked, it looks back as
    /// far as each schedule's `expires_after`.
    pub async fn tick(&mut self) -> anyhow::Result<TickReport> {
        let now = self.clock.now();
        let since = match self.cursor {
            Some(cursor) => Some(cursor),
            None => self.recorded_tick().await?,
        }
        // A clock set back (a demo replaying a year) starts afresh.
        .filter(|since| *since <= now);
        let mut report = TickReport::default();
        let calendar = Arc::clone(&self.calendar);
        for schedule in calendar.schedules() {
            let after = since
                .unwrap_or(now - schedule.expires_after)
                .max(now - Duration::days(MAX_CATCH_UP_DAYS));
            // Holidays applied: the same fire times `loa plan` shows.
            for fire in schedule.fires(after, now).into_iter().filter(Fire::fires) {
                let (at, rule_at) = (fire.at.to_utc(), fire.rule_at().to_utc());
                if at + schedule.expires_after <= now {
                    if let Some(missed) = self.record_missed(schedule, at, rule_at).await? {
                        tracing::warn!(schedule = %missed.schedule_id, at = %at, "missed while Loa was down; not sent");
                        report.missed.push(missed);
                    }
                } else if let Some(created) =
                    self.create_occurrence_for(schedule, at, rule_at).await?
                {
                    tracing::info!(
                        schedule = %created.schedule_id,
                        at = %at,
                        recipients = created.recipients,
                        "occurrence created"
                    );
                    report.created.push(created);
                }
            }
        }
        report.created.extend(self.send_queued(now).await?);
        content::mark_done(&self.db, now).await?;
        self.cursor = Some(now);
        self.record_tick(now).await?;
        Ok(report)
    }

    /// Approved content from the console whose time has come: one occurrence each, fanned out
    /// in the same transaction that marks the content `sending`. Content approved after its
    /// send time goes at once.
    async fn send_queued(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<CreatedOccurrence>> {
        let mut created = Vec::new();
        for item in content::due(&self.db, &self.channels, now).await? {
            let fire_at = item.send_at.max(now);
            let local_date = fire_at.with_timezone(&self.time_zone).date_naive();
            let observance = item
                .observance
                .as_deref()
                .and_then(|id| self.calendar.observances().iter().find(|o| o.id == id));
            let schedule_id = item.schedule_id();
            let audience = item.audience();
            // Staff's own words go only by the channels they were written for (a channel
            // that sends only approved templates may have none): its people get the next.
            let channels: Vec<ChannelKind> = item
                .channels
                .iter()
                .copied()
                .filter(|&kind| item.template.is_some() || item.body(kind).is_some())
                .collect();
            let spec = OccurrenceSpec {
                schedule_id: &schedule_id,
                template: item.template.as_deref().unwrap_or(&schedule_id),
                observance: observance.map(|o| o.name.as_str()).unwrap_or(&item.title),
                observance_date: observance
                    .map(|o| o.date_for(local_date))
                    .unwrap_or(local_date),
                theme: observance
                    .and_then(|o| o.themes.get(&o.date_for(local_date).year()))
                    .map_or("", String::as_str),
                channels: &channels,
                audience: &audience,
                expires_after: QUEUED_CONTENT_EXPIRES_AFTER,
                bodies: item
                    .channels
                    .iter()
                    .filter_map(|&kind| item.body(kind).map(|body| (kind, body)))
                    .collect(),
            };
            let mut tx = self.db.pool.begin().await?;
            let Some((id, recipients)) = self.insert_and_fan_out(&mut tx, &spec, fire_at).await?
            else {
                continue;
            };
            if !content::mark_sending(&mut tx, item.id, item.version, id, now).await? {
                // Edited or cancelled since `due` read it: nothing is sent.
                tx.rollback().await?;
                continue;
            }
            tx.commit().await?;
            tracing::info!(
                content = item.id,
                recipients,
                "queued content sent to the dispatcher"
            );
            created.push(CreatedOccurrence {
                id,
                schedule_id,
                fire_at,
                recipients,
            });
        }
        Ok(created)
    }

    async fn recorded_tick(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let row = sqlx::query("SELECT at FROM scheduler_state WHERE name = 'last_tick'")
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0).map(from_epoch))
            .transpose()?)
    }

    async fn record_tick(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        // Several instances: keep the latest.
        sqlx::query(
            "INSERT INTO scheduler_state (name, at) VALUES ('last_tick', $1)
             ON CONFLICT (name) DO UPDATE SET at =
                 CASE WHEN excluded.at > scheduler_state.at THEN excluded.at ELSE scheduler_state.at END",
        )
        .bind(to_epoch(now))
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Records an occurrence that expired before Loa could create it: no deliveries.
    async fn record_missed(
        &self,
        schedule: &Schedule,
        fire_at: DateTime<Utc>,
        rule_at: DateTime<Utc>,
    ) -> anyhow::Result<Option<CreatedOccurrence>> {
        let now = self.clock.now();
        let mut conn = self.db.pool.acquire().await?;
        let spec = OccurrenceSpec::of_schedule(schedule, rule_at);
        let id = insert_occurrence(&mut conn, &spec, spec.channels, fire_at, now, "missed").await?;
        Ok(id.map(|id| CreatedOccurrence {
            id,
            schedule_id: schedule.id.clone(),
            fire_at,
            recipients: 0,
        }))
    }

    /// Inserts the occurrence and fans it out in one transaction; `None` when it already exists.
    pub async fn create_occurrence(
        &self,
        schedule: &Schedule,
        fire_at: DateTime<Utc>,
    ) -> anyhow::Result<Option<CreatedOccurrence>> {
        self.create_occurrence_for(schedule, fire_at, fire_at).await
    }

    /// The same for a fire time its rule put at `rule_at` (a holiday moved it to `fire_at`).
    async fn create_occurrence_for(
        &self,
        schedule: &Schedule,
        fire_at: DateTime<Utc>,
        rule_at: DateTime<Utc>,
    ) -> anyhow::Result<Option<CreatedOccurrence>> {
        let mut tx = self.db.pool.begin().await?;
        let spec = OccurrenceSpec::of_schedule(schedule, rule_at);
        let Some((id, recipients)) = self.insert_and_fan_out(&mut tx, &spec, fire_at).await? else {
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(CreatedOccurrence {
            id,
            schedule_id: schedule.id.clone(),
            fire_at,
            recipients,
        }))
    }

    /// Inserts the occurrence and its delivery rows within `tx`: (id, recipients), or `None`
    /// when the occurrence already exists.
    async fn insert_and_fan_out(
        &self,
        tx: &mut sqlx::AnyConnection,
        spec: &OccurrenceSpec<'_>,
        fire_at: DateTime<Utc>,
    ) -> anyhow::Result<Option<(i64, u64)>> {
        let now = self.clock.now();
        let expires_at = to_epoch(fire_at + spec.expires_after);
        let channels: Vec<ChannelKind> = spec
            .channels
            .iter()
            .copied()
            .filter(|&kind| self.channels.get(kind).is_some())
            .collect();
        let Some(id) =
            insert_occurrence(&mut *tx, spec, &channels, fire_at, now, "created").await?
        else {
            return Ok(None);
        };
        // A channel that reaches another's addresses (Zalo: the SMS numbers) has a contact for
        // each before the fan-out picks.
        for &kind in &channels {
            if let Some(source) = self.channels.get(kind).and_then(|d| d.addresses_of) {
                crate::audience::mirror_contacts(&mut *tx, kind, source, now).await?;
            }
        }
        let now = to_epoch(now);

        // One set-based insert: one row per person, through the contact whose channel the
        // schedule prefers most.
        let mut fan_out = Sql::new(
            "INSERT INTO deliveries (occurrence_id, person_id, contact_id, channel, status, due_at, expires_at, updated_at)
             SELECT ",
        );
        fan_out
            .bind(id)
            .push(&format!(
                ", person_id, contact_id, channel, {}, ",
                Status::Pending.sql()
            ))
            .bind(to_epoch(fire_at))
            .push(", ")
            .bind(expires_at)
            .push(", ")
            .bind(now)
            .push(" FROM (");
        let local = fire_at.with_timezone(&self.time_zone).date_naive();
        let year = local.year();
        let filter = crate::reach::audience_filter(
            &mut *tx,
            spec.audience,
            &channels,
            &self.areas,
            self.target,
            local,
            spec.observance_date,
        )
        .await?;
        filter.picks(&mut fan_out);
        // (`WHERE true`: SQLite needs a WHERE before an upsert's ON CONFLICT in INSERT … SELECT.)
        fan_out.push(") chosen WHERE true ON CONFLICT (occurrence_id, person_id) DO NOTHING");
        let recipients = fan_out.query()?.execute(&mut *tx).await?.rows_affected();
        sqlx::query("UPDATE occurrences SET recipients = $1 WHERE id = $2")
            .bind(recipients as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(pricer) = &self.pricer {
            budget::hold::estimate(&mut *tx, pricer, id, &spec.message(local)).await?;
            let over = budget::hold::check(&mut *tx, pricer, id, year).await?;
            if !over.is_empty() {
                tracing::warn!(
                    occurrence = id,
                    schedule = spec.schedule_id,
                    "held: over a channel's yearly budget"
                );
                self.tell_admins(&mut *tx, spec, &over).await?;
            }
        }
        Ok(Some((id, recipients)))
    }
}

impl Scheduler {
    /// Queues the admins' notice of an occurrence held over budget, in the fan-out's
    /// transaction.
    async fn tell_admins(
        &self,
        tx: &mut sqlx::AnyConnection,
        spec: &OccurrenceSpec<'_>,
        over: &[budget::hold::Over],
    ) -> Result<(), sqlx::Error> {
        if self.admins.is_empty() || self.channels.get(ChannelKind::Telegram).is_none() {
            return Ok(());
        }
        let text = budget::hold::notice(spec.observance, over);
        let now = self.clock.now();
        for admin in &self.admins {
            crate::inbound::outbox::queue(
                tx,
                None,
                crate::inbound::outbox::Kind::Notice,
                ChannelKind::Telegram,
                &admin.to_string(),
                &text,
                now,
            )
            .await?;
        }
        Ok(())
    }
}

/// Inserts an occurrence row with `status`; `None` when (schedule, fire time) is already there.
async fn insert_occurrence(
    conn: &mut sqlx::AnyConnection,
    spec: &OccurrenceSpec<'_>,
    channels: &[ChannelKind],
    fire_at: DateTime<Utc>,
    now: DateTime<Utc>,
    status: &str,
) -> anyhow::Result<Option<i64>> {
    let channels = channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let row = sqlx::query(
        "INSERT INTO occurrences (schedule_id, fire_at, template, observance, channels, expires_at, created_at,
             observance_date, status, theme)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (schedule_id, fire_at) DO NOTHING
         RETURNING id",
    )
    .bind(spec.schedule_id)
    .bind(to_epoch(fire_at))
    .bind(spec.template)
    .bind(spec.observance)
    .bind(channels)
    .bind(to_epoch(fire_at + spec.expires_after))
    .bind(to_epoch(now))
    .bind(spec.observance_date.to_string())
    .bind(status)
    .bind(spec.theme)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = row.map(|r| r.try_get::<i64, _>(0)).transpose()? else {
        return Ok(None);
    };
    if !spec.bodies.is_empty() {
        let mut bodies =
            Sql::new("INSERT INTO occurrence_bodies (occurrence_id, channel, body) VALUES ");
        bodies.tuples(&spec.bodies, |row, (channel, body)| {
            row.bind(id).bind(channel.as_str()).bind(body.as_str());
        });
        bodies.query()?.execute(&mut *conn).await?;
    }
    Ok(Some(id))
}

/// An occurrence as stored, for reports and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub id: i64,
    pub schedule_id: String,
    pub fire_at: DateTime<Utc>,
    pub recipients: i64,
    /// `created`, or `missed` when it expired while Loa was down.
    pub status: String,
}

pub async fn occurrences(db: &Db) -> Result<Vec<Occurrence>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, schedule_id, fire_at, recipients, status FROM occurrences ORDER BY fire_at, schedule_id")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Occurrence {
                id: r.try_get(0)?,
                schedule_id: r.try_get(1)?,
                fire_at: from_epoch(r.try_get(2)?),
                recipients: r.try_get(3)?,
                status: r.try_get(4)?,
            })
        })
        .collect()
}
