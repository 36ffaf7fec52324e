//! `loa report reach --projection`: this year's outlook per commune (see
//! `console::projection`), as a table or JSON.

use std::path::Path;

use chrono::Utc;

use super::{CliError, Env, ReportFormat};
use crate::app::Setup;
use crate::console::projection::{Projection, project};

pub async fn projection(config: &Path, env: &Env, format: ReportFormat) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let db = setup.open_database().await?;
    let projection = project(
        &db,
        &setup.config,
        &setup.calendar,
        &setup.templates,
        Utc::now(),
        None,
    )
    .await
    .map_err(anyhow::Error::from)?;
    db.close().await;
    match format {
        ReportFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&projection).map_err(anyhow::Error::from)?
        ),
        ReportFormat::Table => out!("{}", table(&projection)),
        ReportFormat::Csv => {
            return Err(CliError::Input(
                "--projection prints a table or json".to_string(),
            ));
        }
    }
    Ok(())
}

/// Thousands with a space, as a number on paper: 1 300 000.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn table(p: &Projection) -> String {
    let mut out = format!(
        "Outlook for {} as of {} (band {:.0}–{:.0} %), communes projected lowest first\n\n",
        p.year,
        p.as_of,
        p.band.0 * 100.0,
        p.band.1 * 100.0
    );
    out.push_str(&format!(
        "{:<24} {:>10} {:>9} {:>10} {:>6} {:>10} {:>7} {:>8}\n",
        "commune", "population", "reached", "unreached", "fires", "projected", "%", "missing"
    ));
    let mut top_ups = String::new();
    for c in &p.communes {
        out.push_str(&format!(
            "{:<24} {:>10} {:>9} {:>10} {:>6} {:>10} {:>7} {:>8}\n",
            c.name,
            grouped(c.population),
            grouped(c.reached),
            grouped(c.unreached),
            c.fires_left,
            grouped(c.outlook.projected),
            c.projected_share
                .map_or("–".to_string(), |s| format!("{:.1}", s * 100.0)),
            grouped(c.outlook.needed),
        ));
        if let Some(t) = &c.top_up {
            let parts: Vec<String> = t
                .by_channel
                .iter()
                .map(|part| match part.parts {
                    Some(n) => format!(
                        "{} by {} ({n} parts each)",
                        grouped(part.persons),
                        part.channel_label
                    ),
                    None => format!("{} by {}", grouped(part.persons), part.channel_label),
                })
                .collect();
            let budget = t
                .by_channel
                .iter()
                .filter(|p| p.cost_vnd > 0.0)
                .filter_map(|p| {
                    p.budget_left.map(|left| {
                        format!(
                            "{} budget left {}",
                            p.channel_label,
                            grouped(left.max(0.0).round() as u64)
                        )
                    })
                })
                .collect::<Vec<_>>();
            let budget = match (budget.is_empty(), t.within_budget) {
                (true, _) => String::new(),
                (false, true) => format!(" (within budget: {})", budget.join(", ")),
                (false, false) => format!(" (OVER budget: {})", budget.join(", ")),
            };
            top_ups.push_str(&format!(
                "- {}: send \"{}\" ({}) to the {} unreached: {}; {} đồng{budget}\n",
                c.name,
                t.template,
                t.observance,
                grouped(t.persons),
                parts.join(", "),
                grouped(t.cost_vnd.round() as u64)
            ));
        }
    }
    out.push_str(
        "\n\"unreached\": residents Loa can contact who have not been reached this year; \
         \"missing\": people the commune must still gain (subscribers) to reach the band's low end \
         even if every contactable one is reached; \"projected\": reached if the messages to come \
         reach every unreached person with a contact on their channels.\n",
    );
    if !top_ups.is_empty() {
        out.push_str(
            "\nCheapest top-ups (the next message, each person by their cheapest channel):\n",
        );
        out.push_str(&top_ups);
    }
    out
}
