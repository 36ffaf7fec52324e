//! The calendar page: what goes out in the next days, from `schedules/` and from the queue,
//! each with its audience and how it splits across channels.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::content::State;
use super::{Actor, Console, ConsoleError, Permission};
use crate::audience;
use crate::budget::{Message, Pricer};
use crate::calendar::Audience;
use crate::channel::ChannelKind;

/// An audience as counted: areas (narrowed to the actor's), tags, channels, the span whose
/// reached people are left out, below the band only, and the day (when someone is left out).
type AudienceKey = (
    Vec<String>,
    Vec<String>,
    Vec<ChannelKind>,
    Option<&'static str>,
    bool,
    Option<NaiveDate>,
);

/// How far ahead the calendar looks.
pub const CALENDAR_DAYS: i64 = 90;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Upcoming {
    /// RFC 3339 in the campaign time zone.
    pub at: String,
    /// `schedule` or `content`.
    pub source: &'static str,
    /// The schedule id, or `content:<id>`.
    pub id: String,
    pub title: String,
    pub template: Option<String>,
    pub channels: Vec<ChannelKind>,
    pub areas: Vec<String>,
    pub tags: Vec<String>,
    /// Persons it would reach today (within the actor's area), per channel.
    pub recipients: i64,
    pub by_channel: BTreeMap<ChannelKind, i64>,
    /// For queued content: its state.
    pub state: Option<State>,
    /// Its estimated cost per channel, in đồng (SMS by the parts of its text in the commune
    /// where it is longest): the split above at each channel's price.
    pub cost_by_channel: BTreeMap<ChannelKind, f64>,
    pub cost_vnd: f64,
    /// Whether, after everything before it on the calendar (those held excepted), it would take
    /// a channel over its yearly budget: it will then wait for an admin's decision.
    pub over_budget: bool,
}

/// The split's cost on each channel at `message`'s price there.
fn priced(
    pricer: &Pricer,
    message: &Message,
    areas: &[String],
    split: &BTreeMap<ChannelKind, i64>,
) -> BTreeMap<ChannelKind, f64> {
    split
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(&kind, &n)| (kind, pricer.each_at_most(message, kind, areas) * n as f64))
        .filter(|(_, cost)| *cost > 0.0)
        .collect()
}

impl Console {
    pub async fn upcoming(&self, actor: &Actor) -> Result<Vec<Upcoming>, ConsoleError> {
        actor.require(Permission::ViewFigures)?;
        let tz = self.config.campaign.time_zone;
        let now = self.clock.now();
        let end = now + Duration::days(CALENDAR_DAYS);
        let today = now.with_timezone(&tz).date_naive();
        let mut entries = Vec::new();
        let pricer = self.pricer();
        // One count per distinct audience: a schedule fires several times in 90 days.
        let mut counted: HashMap<AudienceKey, BTreeMap<ChannelKind, i64>> = HashMap::new();
        let mut count = async |audience: &Audience,
                               channels: &[ChannelKind],
                               date: NaiveDate,
                               observance_date: NaiveDate|
               -> Result<Option<BTreeMap<ChannelKind, i64>>, ConsoleError> {
            let Some(narrowed) = actor.narrow(&audience.areas, &self.config.areas) else {
                return Ok(None);
            };
            let key = (
                narrowed.clone(),
                audience.tags.clone(),
                channels.to_vec(),
                audience.unreached.map(|u| u.as_str()),
                audience.below_band,
                // Who is unreached depends on the day it goes.
                audience.unreached.map(|_| date),
            );
            if let Some(split) = counted.get(&key) {
                return Ok(Some(split.clone()));
            }
            let narrowed = Audience {
                areas: narrowed,
                ..audience.clone()
            };
            let filter = {
                let mut conn = self.db.pool.acquire().await?;
                crate::reach::audience_filter(
                    &mut conn,
                    &narrowed,
                    channels,
                    &self.config.areas,
                    self.config.campaign.target,
                    date,
                    observance_date,
                )
                .await?
            };
            let split = audience::count_filtered(&self.db, &filter).await?;
            counted.insert(key, split.clone());
            Ok(Some(split))
        };
        for fire in self
            .calendar
            .plan(today, (end.with_timezone(&tz)).date_naive(), tz)
            .into_iter()
            // What actually goes out: moved fire times at their new time, skipped ones not at all.
            .filter(|fire| fire.fires())
        {
            let Some(schedule) = self.calendar.get(&fire.schedule) else {
                continue;
            };
            let at = DateTime::parse_from_rfc3339(&fire.at)
                .map_err(|e| anyhow::anyhow!("plan time: {e}"))?;
            if at.to_utc() < now {
                continue;
            }
            let Some(split) = count(
                &schedule.audience,
                &schedule.channels,
                at.date_naive(),
                schedule.observance_date(at.to_utc()),
            )
            .await?
            else {
                continue;
            };
            let local_date = at.date_naive();
            let message = Message {
                template: schedule.template.clone(),
                observance: schedule.observance.clone(),
                theme: schedule.theme(at.to_utc()).unwrap_or_default().to_string(),
                observance_date: schedule.observance_date(at.to_utc()),
                date: local_date,
                bodies: BTreeMap::new(),
            };
            let cost_by_channel = priced(&pricer, &message, &schedule.audience.areas, &split);
            entries.push((
                at.to_utc(),
                Upcoming {
                    cost_vnd: cost_by_channel.values().sum(),
                    cost_by_channel,
                    over_budget: false,
                    at: fire.at.clone(),
                    source: "schedule",
                    id: schedule.id.clone(),
                    title: schedule.observance.clone(),
                    template: Some(schedule.template.clone()),
                    channels: schedule.channels.clone(),
                    areas: schedule.audience.areas.clone(),
                    tags: schedule.audience.tags.clone(),
                    recipients: split.values().sum(),
                    by_channel: split,
                    state: None,
                },
            ));
        }
        // Content approved for sending is on everyone's calendar; drafts and content awaiting
        // approval only on the calendars of those who work the queue.
        let sees_queue = Permission::ViewQueue.allows(actor.role);
        for item in self.contents_in_scope(actor).await? {
            let scheduled = matches!(item.state, State::Approved | State::Sending);
            if !(scheduled || sees_queue && item.state.is_open()) {
                continue;
            }
            if item.send_at > end
                || (item.state != State::Sending && item.send_at < now - Duration::days(2))
            {
                continue;
            }
            let date = item.send_at.with_timezone(&tz).date_naive();
            let observance_date = item
                .observance
                .as_deref()
                .and_then(|id| self.calendar.observances().iter().find(|o| o.id == id))
                .map_or(date, |o| o.date_for(date));
            let Some(split) =
                count(&item.audience(), &item.channels, date, observance_date).await?
            else {
                continue;
            };
            let message = Message {
                template: item.template.clone().unwrap_or_else(|| item.schedule_id()),
                observance: item.title.clone(),
                theme: String::new(),
                observance_date: date,
                date,
                bodies: item
                    .channels
                    .iter()
                    .filter_map(|&k| item.body(k).map(|b| (k, b)))
                    .collect(),
            };
            let cost_by_channel = if item.state == State::Sending {
                // Sent already: its cost is among the year's spent and committed.
                BTreeMap::new()
            } else {
                priced(&pricer, &message, &item.areas, &split)
            };
            entries.push((
                item.send_at,
                Upcoming {
                    cost_vnd: cost_by_channel.values().sum(),
                    cost_by_channel,
                    over_budget: false,
                    at: item.send_at.with_timezone(&tz).to_rfc3339(),
                    source: "content",
                    id: item.schedule_id(),
                    title: item.title.clone(),
                    template: item.template.clone(),
                    channels: item.channels.clone(),
                    areas: item.areas.clone(),
                    tags: item.tags.clone(),
                    recipients: split.values().sum(),
                    by_channel: split,
                    state: Some(item.state),
                },
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        // The budget is the district's: weighed against the whole calendar, not one commune's.
        if actor.area.is_none() {
            self.mark_over_budget(&mut entries).await?;
        }
        Ok(entries
            .into_iter()
            .map(|(_, e): (DateTime<Utc>, Upcoming)| e)
            .collect())
    }
}

impl Console {
    /// Walks the calendar in time order, taking each entry's cost from what each channel's
    /// budget has left in its year, and marks the entries that would go over.
    async fn mark_over_budget(
        &self,
        entries: &mut [(DateTime<Utc>, Upcoming)],
    ) -> Result<(), ConsoleError> {
        if self
            .config
            .channels
            .iter()
            .all(|d| d.yearly_budget.is_none())
        {
            return Ok(());
        }
        let tz = self.config.campaign.time_zone;
        let mut left: HashMap<(i32, ChannelKind), f64> = HashMap::new();
        let mut conn = self.db.pool.acquire().await?;
        for (at, entry) in entries.iter_mut() {
            let year = at.with_timezone(&tz).year();
            if !left.keys().any(|(y, _)| *y == year) {
                for spend in crate::budget::year(&mut conn, &self.config.channels, tz, year).await?
                {
                    if let Some(l) = spend.left() {
                        left.insert((year, spend.channel), l);
                    }
                }
            }
            entry.over_budget = entry
                .cost_by_channel
                .iter()
                .any(|(kind, cost)| left.get(&(year, *kind)).is_some_and(|room| cost > room));
            // A held occurrence spends nothing until an admin decides.
            if !entry.over_budget {
                for (kind, cost) in &entry.cost_by_channel {
                    if let Some(room) = left.get_mut(&(year, *kind)) {
                        *room -= cost;
                    }
                }
            }
        }
        Ok(())
    }
}
