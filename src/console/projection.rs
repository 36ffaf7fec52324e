//! Where each commune is heading this year, and what it would take to bring it into the band.
//!
//! Per commune: residents reached so far this year; residents Loa can contact who have not been
//! reached yet (an active contact, not opted out, no reach row this year); fire times still to
//! come; the projected year-end reach if the messages to come reach every unreached person they
//! can (those with a contact on their channels: someone known by SMS alone is not, when the
//! coming messages go by Telegram and Zalo); how many more people it must reach to get to the band's low end,
//! and how many more contactable people it needs for that (new subscribers: posters, lists);
//! and the cheapest top-up — the next message to come, sent to its unreached on each one's
//! cheapest channel, with what it costs (SMS by the parts of that template's text) and whether
//! that fits what each channel's yearly budget has left.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::audience::AudienceFilter;
use crate::calendar::{Audience, Calendar};
use crate::channel::{ChannelKind, ChannelSet};
use crate::config::{AreaTree, Config, TargetBand};
use crate::store::{Db, Sql};
use crate::templates::{MessageContext, SampleData, Templates};

/// The year-end arithmetic of one commune: pure, tested by its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outlook {
    /// Reached if the messages to come reach every unreached person they can (those with a
    /// contact on their channels; only when a message is to come).
    pub projected: u64,
    /// Still to reach to get to the band's low end.
    pub gap_now: u64,
    /// More contactable people needed, beyond all those Loa has, to get there by year's end.
    pub needed: u64,
}

/// The outlook of a commune of `population` with `reached` this year, `unreached` contactable
/// people not reached yet — `covered` of them on the channels of the `fires_left` messages still
/// to come — against the band's `low`.
pub fn outlook(
    population: u64,
    reached: u64,
    unreached: u64,
    covered: u64,
    fires_left: usize,
    low: f64,
) -> Outlook {
    let target = (low * population as f64).ceil() as u64;
    let (projected, reachable) = if fires_left > 0 {
        (reached + covered.min(unreached), reached + unreached)
    } else {
        (reached, reached)
    };
    Outlook {
        projected,
        gap_now: target.saturating_sub(reached),
        needed: target.saturating_sub(reachable),
    }
}

/// Part of a top-up: the unreached whose cheapest channel this is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopUpPart {
    pub channel: ChannelKind,
    pub channel_label: &'static str,
    pub persons: u64,
    /// SMS parts per message, for a channel priced by the part.
    pub parts: Option<usize>,
    pub cost_vnd: f64,
    /// What this channel's yearly budget has left (`None`: no budget).
    pub budget_left: Option<f64>,
}

/// The next message to come, sent to the commune's unreached on their cheapest channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopUp {
    pub template: String,
    pub observance: String,
    pub at: DateTime<Utc>,
    pub persons: u64,
    pub cost_vnd: f64,
    pub by_channel: Vec<TopUpPart>,
    /// Whether it fits what every channel's budget has left.
    pub within_budget: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommuneProjection {
    pub code: String,
    pub name: String,
    pub population: u64,
    pub reached: u64,
    /// Contactable residents not reached this year.
    pub unreached: u64,
    pub fires_left: usize,
    #[serde(flatten)]
    pub outlook: Outlook,
    /// Projected share of the population (0–1), when the population is known.
    pub projected_share: Option<f64>,
    /// Below the band's low end even if the messages to come reach everyone they can.
    pub projected_below: bool,
    pub top_up: Option<TopUp>,
    /// Residents reached by the end of each month of the year, cumulative (months still to
    /// come repeat the last figure).
    pub by_month: [u64; 12],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub year: i32,
    pub as_of: NaiveDate,
    pub band: (f64, f64),
    /// Communes, those projected furthest below the band first.
    pub communes: Vec<CommuneProjection>,
    /// The local dates of the year's fire times, past and to come.
    pub fire_dates: Vec<NaiveDate>,
}

/// Channels from the cheapest (one message, one part) to the dearest.
fn by_price(channels: &ChannelSet) -> Vec<ChannelKind> {
    let mut kinds: Vec<_> = channels
        .iter()
        .map(|d| (d.price.cost(Some(1)).unwrap_or(0.0), d.kind))
        .collect();
    kinds.sort_by(|a, b| a.0.total_cmp(&b.0));
    kinds.into_iter().map(|(_, k)| k).collect()
}

/// Per area, the contactable residents not reached in `year` who have a contact on one of
/// `coming` (the channels of the messages still to come).
async fn unreached_on(
    db: &Db,
    coming: &[ChannelKind],
    areas: &AreaTree,
    year: i32,
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    if coming.is_empty() {
        return Ok(BTreeMap::new());
    }
    let filter = AudienceFilter::new(&Audience::default(), coming, areas, year)
        .not_reached_in(vec![format!("Y{year}")]);
    let mut out = BTreeMap::new();
    for (area, n) in crate::audience::count_by_area(db, &filter).await? {
        out.insert(area, n.max(0) as u64);
    }
    Ok(out)
}

/// Per area, the contactable residents not reached in `year`, by their cheapest channel.
async fn unreached_by_channel(
    db: &Db,
    channels: &[ChannelKind],
    areas: &AreaTree,
    year: i32,
) -> Result<BTreeMap<String, BTreeMap<ChannelKind, u64>>, sqlx::Error> {
    let filter = AudienceFilter::new(&Audience::default(), channels, areas, year)
        .not_reached_in(vec![format!("Y{year}")]);
    let mut sql = Sql::new("SELECT p.area_code, picked.channel, COUNT(*) FROM (");
    filter.picks(&mut sql);
    sql.push(
        ") picked JOIN persons p ON p.id = picked.person_id WHERE p.kind = 'resident'
         GROUP BY p.area_code, picked.channel",
    );
    let mut out: BTreeMap<String, BTreeMap<ChannelKind, u64>> = BTreeMap::new();
    for row in sql.query()?.fetch_all(&db.pool).await? {
        let channel: String = row.try_get(1)?;
        let Some(kind) = channels.iter().find(|k| k.as_str() == channel) else {
            continue;
        };
        out.entry(row.try_get(0)?)
            .or_default()
            .insert(*kind, row.try_get::<i64, _>(2)?.max(0) as u64);
    }
    Ok(out)
}

/// Per area, residents reached in `year` by the end of each of its months (local), cumulative:
/// one row per area, counted by the database against the twelve month ends.
async fn cumulative_by_month(
    db: &Db,
    tz: chrono_tz::Tz,
    year: i32,
) -> Result<BTreeMap<String, [u64; 12]>, sqlx::Error> {
    let mut sql = Sql::new("SELECT area_code");
    for month in 1..=12u32 {
        let (y, m) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end =
            crate::calendar::local_midnight(NaiveDate::from_ymd_opt(y, m, 1).expect("a month"), tz);
        sql.push(", SUM(CASE WHEN first_at < ")
            .bind(crate::store::to_epoch(end))
            .push(" THEN 1 ELSE 0 END)");
    }
    sql.push(" FROM reach WHERE period = ")
        .bind(format!("Y{year}"))
        .push(" AND kind = 'resident' GROUP BY area_code");
    let mut out = BTreeMap::new();
    for row in sql.query()?.fetch_all(&db.pool).await? {
        let mut months = [0u64; 12];
        for (m, n) in months.iter_mut().enumerate() {
            *n = row.try_get::<i64, _>(m + 1)?.max(0) as u64;
        }
        out.insert(row.try_get(0)?, months);
    }
    Ok(out)
}

/// The projection of `year` as of `now`, for the communes in `scope` (all when `None`).
pub async fn project(
    db: &Db,
    config: &Config,
    calendar: &Calendar,
    templates: &Templates,
    now: DateTime<Utc>,
    scope: Option<&std::collections::BTreeSet<String>>,
) -> Result<Projection, sqlx::Error> {
    let tz = config.campaign.time_zone;
    let today = now.with_timezone(&tz).date_naive();
    let year = today.year();
    let band: TargetBand = config.campaign.target;
    let end = crate::calendar::local_midnight(
        NaiveDate::from_ymd_opt(year + 1, 1, 1).expect("a year"),
        tz,
    );
    let fires = calendar.fire_times(now, end - chrono::Duration::seconds(1));
    let channels = by_price(&config.channels);
    let unreached = unreached_by_channel(db, &channels, &config.areas, year).await?;
    // What the coming messages can reach: the unreached with a contact on their channels.
    let mut coming_channels: Vec<ChannelKind> = Vec::new();
    for fire in &fires {
        for &kind in &fire.schedule.channels {
            if !coming_channels.contains(&kind) && config.channels.get(kind).is_some() {
                coming_channels.push(kind);
            }
        }
    }
    let covered = unreached_on(db, &coming_channels, &config.areas, year).await?;
    let by_month = cumulative_by_month(db, tz, year).await?;
    let budget_left: BTreeMap<ChannelKind, f64> = {
        let mut conn = db.pool.acquire().await?;
        crate::budget::year(&mut conn, &config.channels, tz, year)
            .await?
            .into_iter()
            .filter_map(|s| s.left().map(|l| (s.channel, l)))
            .collect()
    };
    let start =
        crate::calendar::local_midnight(NaiveDate::from_ymd_opt(year, 1, 1).expect("a year"), tz);
    let fire_dates: Vec<NaiveDate> = calendar
        .fire_times(
            start - chrono::Duration::seconds(1),
            end - chrono::Duration::seconds(1),
        )
        .iter()
        .map(|f| f.at.date_naive())
        .collect();
    let sample = SampleData::from_config(config);
    let mut parts_of: BTreeMap<String, Option<usize>> = BTreeMap::new();
    let mut communes = Vec::new();
    for area in config.areas.leaves() {
        if scope.is_some_and(|s| !s.contains(&area.code)) {
            continue;
        }
        // The messages still to come that speak to this commune.
        let coming: Vec<_> = fires
            .iter()
            .filter(|f| {
                let areas = &f.schedule.audience.areas;
                areas.is_empty()
                    || areas
                        .iter()
                        .any(|a| config.areas.subtree(a).iter().any(|x| x.code == area.code))
            })
            .collect();
        let population = config.areas.population(&area.code);
        let months = by_month.get(&area.code).copied().unwrap_or([0; 12]);
        // Everyone reached this year was reached by the end of December.
        let reached_here = months[11];
        let split = unreached.get(&area.code).cloned().unwrap_or_default();
        let unreached_here: u64 = split.values().sum();
        let outlook = outlook(
            population,
            reached_here,
            unreached_here,
            covered.get(&area.code).copied().unwrap_or(0),
            coming.len(),
            band.low,
        );
        let top_up = match coming.first() {
            Some(next) if outlook.gap_now > 0 && unreached_here > 0 => {
                let template = next.schedule.template.clone();
                let parts = *parts_of.entry(template.clone()).or_insert_with(|| {
                    let context = MessageContext::sample(&next.schedule.observance, &sample);
                    templates
                        .preview(&template, ChannelKind::Sms, &context)
                        .ok()
                        .and_then(|r| r.sms.map(|s| s.segments))
                });
                let by_channel: Vec<TopUpPart> = channels
                    .iter()
                    .filter_map(|kind| {
                        let persons = *split.get(kind)?;
                        let descriptor = config.channels.get(*kind)?;
                        let part_count =
                            matches!(descriptor.price, crate::channel::Price::PerSegment(_))
                                .then_some(parts.unwrap_or(1));
                        let each = descriptor.price.cost(part_count).unwrap_or(0.0);
                        Some(TopUpPart {
                            channel: *kind,
                            channel_label: descriptor.label,
                            persons,
                            parts: part_count,
                            cost_vnd: each * persons as f64,
                            budget_left: budget_left.get(kind).copied(),
                        })
                    })
                    .collect();
                Some(TopUp {
                    within_budget: by_channel
                        .iter()
                        .all(|p| p.budget_left.is_none_or(|left| p.cost_vnd <= left)),
                    template,
                    observance: next.schedule.observance.clone(),
                    at: next.at.to_utc(),
                    persons: unreached_here,
                    cost_vnd: by_channel.iter().map(|p| p.cost_vnd).sum(),
                    by_channel,
                })
            }
            _ => None,
        };
        let projected_share =
            (population > 0).then(|| outlook.projected as f64 / population as f64);
        communes.push(CommuneProjection {
            code: area.code.clone(),
            name: area.name.clone(),
            population,
            reached: reached_here,
            unreached: unreached_here,
            fires_left: coming.len(),
            projected_below: projected_share.is_some_and(|s| s < band.low),
            projected_share,
            outlook,
            top_up,
            by_month: months,
        });
    }
    communes.sort_by(|a, b| {
        a.projected_share
            .unwrap_or(1.0)
            .total_cmp(&b.projected_share.unwrap_or(1.0))
            .then_with(|| a.code.cmp(&b.code))
    });
    Ok(Projection {
        year,
        as_of: today,
        band: (band.low, band.high),
        communes,
        fire_dates,
    })
}

impl super::Console {
    /// This year's projection for the communes within the actor's area.
    pub async fn projection(
        &self,
        actor: &super::Actor,
    ) -> Result<Projection, super::ConsoleError> {
        actor.require(super::Permission::ViewFigures)?;
        let scope = actor.scope(&self.config.areas);
        Ok(project(
            &self.db,
            &self.config,
            &self.calendar,
            &self.templates,
            self.clock.now(),
            scope.as_ref(),
        )
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_year_end_arithmetic() {
        // 1,000 people, 40 % is 400: 150 reached, 200 more contactable, messages to come.
        assert_eq!(
            outlook(1000, 150, 200, 200, 3, 0.40),
            Outlook {
                projected: 350,
                gap_now: 250,
                needed: 50
            }
        );
        // Only 50 of the 200 on the coming messages' channels (the rest by SMS alone, say):
        // the messages leave it at 200; a top-up to the others, at 350.
        assert_eq!(
            outlook(1000, 150, 200, 50, 3, 0.40),
            Outlook {
                projected: 200,
                gap_now: 250,
                needed: 50
            }
        );
        // No message left this year: the projection is what was reached.
        assert_eq!(outlook(1000, 150, 200, 200, 0, 0.40).projected, 150);
        assert_eq!(outlook(1000, 150, 200, 200, 0, 0.40).needed, 250);
        // Already in the band: nothing to close.
        assert_eq!(
            outlook(1000, 420, 10, 10, 1, 0.40),
            Outlook {
                projected: 430,
                gap_now: 0,
                needed: 0
            }
        );
        // 40 % of 1,001 people is 400.4: 401 people.
        assert_eq!(outlook(1001, 0, 0, 0, 1, 0.40).gap_now, 401);
        // No population known: no target.
        assert_eq!(outlook(0, 5, 5, 5, 1, 0.40).needed, 0);
    }
}
