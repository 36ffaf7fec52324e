//! What the campaign spends, against each channel's yearly budget (`[budget]` in `loa.toml`),
//! and the occurrences that would go over it.
//!
//! Every delivery carries its cost in đồng: estimated at the fan-out from the message rendered
//! for the person's commune (`deliveries.cost`), and the actual one once the provider accepted
//! it (`deliveries.spent`, written by the dispatcher). A channel's year is then three sums:
//! spent, committed (deliveries still on their way) and held (waiting for an admin).
//!
//! # Layout
//! * this file — [`Message`] (what an occurrence sends), [`Pricer`] (one message's cost on a
//!   channel for a commune), [`year`] (spent, committed and held per channel; spent and
//!   messages that reached their person per month).
//! * [`hold`] — at the fan-out: each delivery's estimated cost, and the hold when an occurrence
//!   would take a channel over its budget.
//! * [`decide`] — an admin's decision on a held occurrence: send anyway, cancel, or send to the
//!   subset that fits (the unreached first, then the communes furthest below the band, each
//!   person by their cheapest channel).

pub mod decide;
pub mod hold;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::Row;

use crate::channel::{BodySettings, ChannelKind, ChannelSet, Price};
use crate::config::Config;
use crate::delivery::Status;
use crate::store::{Sql, to_epoch};
use crate::templates::{MessageContext, Recipient, Templates};

/// What an occurrence sends, as far as its price goes: its template, or the staff's own words
/// per channel, and what fills them in.
#[derive(Debug, Clone)]
pub struct Message {
    pub template: String,
    pub observance: String,
    pub theme: String,
    pub observance_date: NaiveDate,
    /// The local date it is sent for.
    pub date: NaiveDate,
    /// Queued content's own words per channel; a channel without them renders `template`.
    pub bodies: BTreeMap<ChannelKind, String>,
}

/// The name a priced text is rendered with: longer than nearly every Vietnamese full name.
const LONG_NAME: &str = "Nguyễn Thị Hồng Phương Thảo Nguyên Ngọc";

/// One message's cost on a channel, rendered as a resident of the commune would get it.
#[derive(Clone)]
pub struct Pricer {
    config: Arc<Config>,
    templates: Arc<Templates>,
}

impl Pricer {
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Self {
        Pricer { config, templates }
    }

    pub fn channels(&self) -> &ChannelSet {
        &self.config.channels
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// In đồng: the channel's price, by the parts of the text rendered for `area_code` where it
    /// is priced by the part (a text that cannot be rendered counts one part: the dispatcher
    /// will refuse it, not pay for it).
    pub fn each(&self, message: &Message, channel: ChannelKind, area_code: &str) -> f64 {
        let Some(descriptor) = self.config.channels.get(channel) else {
            return 0.0;
        };
        let parts = match descriptor.price {
            Price::Free => return 0.0,
            Price::PerMessage(each) => return each,
            Price::PerSegment(_) => {
                let area_name = self
                    .config
                    .areas
                    .get(area_code)
                    .map(|a| a.name.as_str())
                    .unwrap_or(area_code);
                // A text that names its reader is priced for a long name: the estimate is
                // what the budget is checked against, and must not fall short of the bill.
                [("", false), (LONG_NAME, true)]
                    .into_iter()
                    .filter_map(|(person_name, name_given)| {
                        let context = MessageContext::for_recipient(
                            &self.config,
                            &Recipient {
                                person_name,
                                person_kind: "resident",
                                name_given,
                                area_code,
                                area_name,
                                observance: &message.observance,
                                theme: &message.theme,
                                observance_date: Some(message.observance_date),
                                date: message.date,
                            },
                        );
                        let text = match message.bodies.get(&channel) {
                            Some(body) => self
                                .templates
                                .staff_body(descriptor, body, &context, &BodySettings::default())
                                .ok(),
                            None => self
                                .templates
                                .render(&message.template, channel, &context)
                                .ok(),
                        };
                        text.and_then(|t| descriptor.format.size(&t))
                            .map(|s| s.segments)
                    })
                    .max()
            }
        };
        descriptor.price.cost(parts).unwrap_or(0.0)
    }
}

impl Pricer {
    /// The dearest of [`Pricer::each`] over the communes of `areas` (every commune when
    /// empty): an estimate made before the fan-out knows who is where.
    pub fn each_at_most(&self, message: &Message, channel: ChannelKind, areas: &[String]) -> f64 {
        let tree = &self.config.areas;
        let communes: Vec<String> = if areas.is_empty() {
            tree.leaves().map(|a| a.code.clone()).collect()
        } else {
            areas
                .iter()
                .flat_map(|a| tree.subtree(a))
                .filter(|a| tree.is_leaf(&a.code))
                .map(|a| a.code.clone())
                .collect()
        };
        communes
            .iter()
            .map(|code| self.each(message, channel, code))
            .fold(0.0, f64::max)
    }
}

/// Serialises, until the transaction ends, everything that reads what a budget has left and
/// then commits spending (the fan-out's hold check, an admin's decision): on PostgreSQL two of
/// them at once would each see the same amount left. SQLite's transactions already take the
/// one write lock before they read (their first statement writes).
pub async fn lock(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        // Any fixed key: Loa takes no other advisory lock.
        sqlx::query("SELECT pg_advisory_xact_lock(7260470)")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A channel's year, in đồng.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSpend {
    pub channel: ChannelKind,
    pub channel_label: &'static str,
    /// `None`: no limit.
    pub budget: Option<f64>,
    /// Accepted by the provider.
    pub spent: f64,
    /// Still on their way (pending or being sent), at their estimate.
    pub committed: f64,
    /// Waiting for an admin's decision, at their estimate.
    pub held: f64,
    /// Spent, by the month of the occurrence (January first).
    pub spent_by_month: [f64; 12],
    /// Messages that reached their person on this channel, by the month of the occurrence: the
    /// channel split the dashboard draws beside the cost.
    pub reached_by_month: [u64; 12],
}

impl ChannelSpend {
    /// What the budget leaves once what is spent and on its way is paid.
    pub fn left(&self) -> Option<f64> {
        self.budget.map(|b| b - self.spent - self.committed)
    }
}

/// Each channel of `channels` in `year` (local), from the deliveries of that year's
/// occurrences.
pub async fn year(
    conn: &mut sqlx::AnyConnection,
    channels: &ChannelSet,
    tz: Tz,
    year: i32,
) -> Result<Vec<ChannelSpend>, sqlx::Error> {
    let month_start = |y: i32, m: u32| {
        to_epoch(crate::calendar::local_midnight(
            NaiveDate::from_ymd_opt(y, m, 1).expect("a month"),
            tz,
        ))
    };
    let mut sql = Sql::new("SELECT d.channel, CASE");
    for month in 1..12u32 {
        sql.push(" WHEN o.fire_at < ")
            .bind(month_start(year, month + 1))
            .push(&format!(" THEN {}", month - 1));
    }
    sql.push(&format!(
        " ELSE 11 END AS month,
           COALESCE(SUM(d.spent), 0.0),
           COALESCE(SUM(CASE WHEN d.status IN {waiting} AND d.spent IS NULL THEN d.cost ELSE 0.0 END), 0.0),
           COALESCE(SUM(CASE WHEN d.status = {held} THEN d.cost ELSE 0.0 END), 0.0),
           COUNT(d.reached_at)
         FROM deliveries d JOIN occurrences o ON o.id = d.occurrence_id
         WHERE o.fire_at >= ",
        waiting = Status::sql_list(&[Status::Pending, Status::Sending]),
        held = Status::Held.sql(),
    ))
    .bind(month_start(year, 1))
    .push(" AND o.fire_at < ")
    .bind(month_start(year + 1, 1))
    .push(" GROUP BY d.channel, month");
    let mut out: Vec<ChannelSpend> = channels
        .iter()
        .map(|d| ChannelSpend {
            channel: d.kind,
            channel_label: d.label,
            budget: d.yearly_budget,
            spent: 0.0,
            committed: 0.0,
            held: 0.0,
            spent_by_month: [0.0; 12],
            reached_by_month: [0; 12],
        })
        .collect();
    for row in sql.query()?.fetch_all(&mut *conn).await? {
        let channel: String = row.try_get(0)?;
        let Some(spend) = out.iter_mut().find(|s| s.channel.as_str() == channel) else {
            continue;
        };
        let month = (row.try_get::<i64, _>(1)?.clamp(0, 11)) as usize;
        let spent: f64 = row.try_get(2)?;
        spend.spent += spent;
        spend.spent_by_month[month] += spent;
        spend.committed += row.try_get::<f64, _>(3)?;
        spend.held += row.try_get::<f64, _>(4)?;
        spend.reached_by_month[month] += row.try_get::<i64, _>(5)?.max(0) as u64;
    }
    Ok(out)
}
