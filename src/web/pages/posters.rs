//! Posters: each commune's A4 page of ways to subscribe (`poster`), and how many residents
//! came by each way, so officials see which works. An account limited to an area sees and
//! prints its communes only.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::Datelike;
use serde_json::json;

use super::common::{PageAuth, PageResult};
use crate::audience::consent::{ConsentSource, counts_by_area};
use crate::console::ConsoleError;
use crate::poster::{PosterLinks, render};
use crate::web::state::WebState;
use crate::web::views::page;

/// The ways of subscribing, in the table's order.
const SOURCES: [ConsentSource; 6] = [
    ConsentSource::Poster,
    ConsentSource::Bot,
    ConsentSource::Sms,
    ConsentSource::Import,
    ConsentSource::Organisation,
    ConsentSource::Legacy,
];

/// Short column heads (the full label is the cell's title).
fn head(source: ConsentSource) -> &'static str {
    match source {
        ConsentSource::Poster => "Áp phích",
        ConsentSource::Bot => "Telegram",
        ConsentSource::Sms => "SMS (DK)",
        ConsentSource::Import => "Danh sách",
        ConsentSource::Organisation => "Tổ chức",
        ConsentSource::Legacy => "Chưa rõ",
    }
}

pub(super) async fn posters_page(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
) -> PageResult {
    let areas = &state.config.areas;
    let scope = auth.actor.scope(areas);
    let counts = counts_by_area(&state.db)
        .await
        .map_err(ConsoleError::from)?;
    let mut by_area: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for (area, source, n) in &counts {
        *by_area
            .entry(area.as_str())
            .or_default()
            .entry(source.sql())
            .or_default() += n;
    }
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    let communes: Vec<_> = areas
        .leaves()
        .filter(|a| scope.as_ref().is_none_or(|s| s.contains(&a.code)))
        .map(|a| {
            let row = by_area.get(a.code.as_str());
            let cells: Vec<i64> = SOURCES
                .iter()
                .map(|s| row.and_then(|r| r.get(s.sql())).copied().unwrap_or(0))
                .collect();
            for (s, n) in SOURCES.iter().zip(&cells) {
                *totals.entry(s.sql()).or_default() += n;
            }
            json!({"code": a.code, "name": a.name, "counts": cells})
        })
        .collect();
    let any_links = areas
        .leaves()
        .next()
        .is_some_and(|a| !PosterLinks::for_area(&state.config, a).is_empty());
    Ok(page(
        &state,
        Some(&auth),
        StatusCode::OK,
        "Áp phích đăng ký nhận tin",
        "posters",
        json!({
            "heads": SOURCES.iter().map(|s| json!({"head": head(*s), "title": s.label()})).collect::<Vec<_>>(),
            "communes": communes,
            "totals": SOURCES.iter().map(|s| totals.get(s.sql()).copied().unwrap_or(0)).collect::<Vec<_>>(),
            "no_links": !any_links,
        }),
    ))
}

/// One commune's poster, as a whole printable document.
pub(super) async fn poster(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(code): Path<String>,
) -> PageResult {
    let areas = &state.config.areas;
    let Some(area) = areas.get(&code).filter(|a| areas.is_leaf(&a.code)) else {
        return Err(ConsoleError::NotFound.into());
    };
    if !auth.actor.covers(std::slice::from_ref(&area.code), areas) {
        return Err(ConsoleError::Forbidden("another area's poster".into()).into());
    }
    let year = state
        .clock
        .now()
        .with_timezone(&state.config.campaign.time_zone)
        .year();
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        render(&state.config, area, year),
    )
        .into_response())
}
