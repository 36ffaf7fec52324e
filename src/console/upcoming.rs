//! The calendar page: what goes out in the next days, from `schedules/` and from the queue,
//! each with its audience and how it splits across channels.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Serialize;

use super::content::State;
use super::{Actor, Console, ConsoleError, Permission};
use crate::audience;
use crate::calendar::Audience;
use crate::channel::ChannelKind;

/// An audience as counted: areas (narrowed to the actor's), tags, channels.
type AudienceKey = (Vec<String>, Vec<String>, Vec<ChannelKind>);

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
}

impl Console {
    pub async fn upcoming(&self, actor: &Actor) -> Result<Vec<Upcoming>, ConsoleError> {
        actor.require(Permission::ViewFigures)?;
        let tz = self.config.campaign.time_zone;
        let now = self.clock.now();
        let end = now + Duration::days(CALENDAR_DAYS);
        let today = now.with_timezone(&tz).date_naive();
        let mut entries = Vec::new();
        // One count per distinct audience: a schedule fires several times in 90 days.
        let mut counted: HashMap<AudienceKey, BTreeMap<ChannelKind, i64>> = HashMap::new();
        let mut count = async |areas: &[String],
                               tags: &[String],
                               channels: &[ChannelKind]|
               -> Result<Option<BTreeMap<ChannelKind, i64>>, ConsoleError> {
            let Some(narrowed) = actor.narrow(areas, &self.config.areas) else {
                return Ok(None);
            };
            let key = (narrowed.clone(), tags.to_vec(), channels.to_vec());
            if let Some(split) = counted.get(&key) {
                return Ok(Some(split.clone()));
            }
            let audience = Audience {
                areas: narrowed,
                tags: tags.to_vec(),
                ..Audience::default()
            };
            let split = audience::count_by_channel(
                &self.db,
                &audience,
                channels,
                &self.config.areas,
                today.year(),
            )
            .await?;
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
                &schedule.audience.areas,
                &schedule.audience.tags,
                &schedule.channels,
            )
            .await?
            else {
                continue;
            };
            entries.push((
                at.to_utc(),
                Upcoming {
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
            let Some(split) = count(&item.areas, &item.tags, &item.channels).await? else {
                continue;
            };
            entries.push((
                item.send_at,
                Upcoming {
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
        Ok(entries
            .into_iter()
            .map(|(_, e): (DateTime<Utc>, Upcoming)| e)
            .collect())
    }
}
