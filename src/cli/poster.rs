//! `loa poster AREA [--out FILE]`: a commune's print-ready A4 poster (see `poster`).

use std::path::{Path, PathBuf};

use chrono::{Datelike, Utc};

use super::{CliError, Env};
use crate::app::Setup;
use crate::audience::area_match::{AreaMatch, find_area};

pub fn run(config: &Path, env: &Env, area: &str, out: Option<PathBuf>) -> Result<(), CliError> {
    let setup = Setup::load(config, env)?;
    let config = &setup.config;
    let area = match find_area(&config.areas, area) {
        AreaMatch::Found(area) if config.areas.is_leaf(&area.code) => area,
        AreaMatch::Found(area) => {
            return Err(CliError::Input(format!(
                "{} is not a commune: a poster is for one commune (xã, phường, thị trấn)",
                area.name
            )));
        }
        other => {
            return Err(CliError::Input(
                other
                    .problem(area)
                    .unwrap_or_else(|| format!("no area {area:?}")),
            ));
        }
    };
    let links = crate::poster::PosterLinks::for_area(config, area);
    if links.is_empty() {
        return Err(CliError::Input(
            "nothing to put on a poster: set telegram.username (TELEGRAM_BOT_USERNAME), \
             zalo.oa_link or sms.reply_number in loa.toml"
                .to_string(),
        ));
    }
    let year = Utc::now().with_timezone(&config.campaign.time_zone).year();
    let html = crate::poster::render(config, area, year);
    match out {
        Some(path) => {
            std::fs::write(&path, html)
                .map_err(|e| CliError::Input(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "poster of {} written to {}: open it in a browser and print on A4",
                area.name,
                path.display()
            );
        }
        None => outln!("{html}"),
    }
    Ok(())
}
