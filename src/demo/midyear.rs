//! The demo's mid-year review, and the admin's decisions on what goes over budget.
//!
//! On 1 July the district reads the year's projection: the communes projected to end the year
//! below the band and what closing each gap would cost. A staff account then queues a top-up by
//! SMS — the message on the Law on Gender Equality, to the people not reached this year in the
//! communes below the band — and an approver approves it, as they would in the console. When
//! an occurrence would take a channel over its yearly budget, the demo's admin sends it to the
//! subset that fits.

use chrono::{DateTime, Duration, Utc};

use super::DemoProgress;
use crate::budget::decide::Decision;
use crate::console::content::ContentInput;
use crate::console::{Actor, Console, Role};
use crate::text::{dong, number_vi};

/// The message the top-up sends: basic knowledge of the law, what the plan's 40–60 % is about.
pub(super) const TOP_UP_TEMPLATE: &str = "phap-luat-01-binh-dang-gioi";

/// What the review found and queued.
#[derive(Debug, Clone, PartialEq)]
pub struct MidYear {
    /// The communes projected below the band on 1 July, by name.
    pub below: Vec<String>,
    /// What the projection's top-ups for those communes would cost, in đồng.
    pub gap_cost: f64,
    /// When the queued top-up goes.
    pub top_up_at: DateTime<Utc>,
}

fn actor(name: &str, role: Role) -> Actor {
    Actor {
        id: format!("user:{name}"),
        name: name.to_string(),
        role,
        area: None,
    }
}

/// Reads the projection as of now and queues the top-up, to go `after` from now.
pub(super) async fn review(
    console: &Console,
    after: Duration,
    progress: &mut dyn DemoProgress,
) -> anyhow::Result<MidYear> {
    let now = console.clock.now();
    let tz = console.config.campaign.time_zone;
    let projection = console
        .projection(&actor("demo-lanh-dao", Role::Official))
        .await?;
    let below: Vec<_> = projection
        .communes
        .iter()
        .filter(|c| c.projected_below)
        .collect();
    let gap_cost: f64 = below
        .iter()
        .filter_map(|c| c.top_up.as_ref())
        .map(|t| t.cost_vnd)
        .sum();
    progress.occurrence(&format!(
        "{}  Mid-year review: {} communes projected below {:.0} %; reaching their unreached by the cheapest way costs {}",
        now.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        below.len(),
        projection.band.0 * 100.0,
        dong(gap_cost),
    ));
    for c in &below {
        progress.occurrence(&format!(
            "                    {:<20} projected {:>5.1} %, {} unreached contactable{}",
            c.name,
            c.projected_share.unwrap_or(0.0) * 100.0,
            number_vi(c.unreached),
            c.top_up
                .as_ref()
                .map(|t| format!(", top-up {}", dong(t.cost_vnd)))
                .unwrap_or_default()
        ));
    }
    let top_up_at = now + after;
    let input = ContentInput {
        title: "Tin bổ sung: người chưa được tiếp cận ở các xã, thị trấn dưới mục tiêu".into(),
        template: Some(TOP_UP_TEMPLATE.into()),
        channels: vec!["sms".into()],
        send_at: top_up_at
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        unreached: Some("year".into()),
        below_band: true,
        ..ContentInput::default()
    };
    let staff = actor("demo-can-bo", Role::Staff);
    let preview = console.preview(&staff, &input).await?;
    let item = console.create_content(&staff, &input).await?;
    console
        .submit_content(&staff, item.id, Some(item.version))
        .await?;
    console
        .approve_content(&actor("demo-duyet", Role::Approver), item.id, item.version)
        .await?;
    progress.occurrence(&format!(
        "{}  Top-up queued and approved for {}: {} people not reached this year in the communes below the band",
        now.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        top_up_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        number_vi(preview.recipients.max(0) as u64),
    ));
    Ok(MidYear {
        below: below.iter().map(|c| c.name.clone()).collect(),
        gap_cost,
        top_up_at,
    })
}

/// The admin sends every undecided occurrence held over budget to the subset that fits.
pub(super) async fn decide_holds(
    console: &Console,
    progress: &mut dyn DemoProgress,
) -> anyhow::Result<()> {
    let admin = actor("demo-quan-tri", Role::Admin);
    let now = console.clock.now();
    let tz = console.config.campaign.time_zone;
    for held in console.budget(&admin).await?.held {
        if held.decision.is_some() || held.expires_at <= now {
            continue;
        }
        let decided = console
            .decide_hold(&admin, held.occurrence_id, Decision::Subset)
            .await?;
        let over: Vec<String> = held
            .over
            .iter()
            .map(|o| {
                format!(
                    "{} {} left of {}",
                    o.channel_label,
                    dong(o.left),
                    dong(o.budget)
                )
            })
            .collect();
        progress.occurrence(&format!(
            "{}  Over budget ({}): the admin sends to the {} that fit, {} left out",
            now.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            over.join(", "),
            number_vi(decided.sending),
            number_vi(decided.cancelled),
        ));
    }
    Ok(())
}
