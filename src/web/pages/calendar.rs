//! The calendar: what goes out in the coming days, from the schedules and the queue.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::DateTime;
use serde_json::{Value, json};

use super::common::{PageAuth, PageResult, channel_label};
use crate::web::state::WebState;
use crate::web::views::{local, number_vi, page};

pub(super) async fn calendar(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
) -> PageResult {
    let entries = state.console().upcoming(&auth.actor).await?;
    let views: Vec<Value> = entries
        .iter()
        .map(|e| {
            let at = DateTime::parse_from_rfc3339(&e.at).map(|a| a.to_utc());
            json!({
                "id": e.id,
                "when": at.map(|a| local(&state, a)).unwrap_or_else(|_| e.at.clone()),
                "title": e.title,
                "template": e.template.clone().unwrap_or_else(|| "(tự soạn)".to_string()),
                "source_text": if e.source == "schedule" { "Lịch cố định" } else { "Hàng đợi" },
                "state_text": e.state.map(|s| s.label()),
                "recipients_text": number_vi(e.recipients.max(0) as u64),
                "cost_text": (e.cost_vnd > 0.0).then(|| crate::text::dong(e.cost_vnd)),
                "over_budget": e.over_budget,
                "split_text": e.channels.iter().map(|c| format!("{}: {}", channel_label(&state, *c), number_vi(e.by_channel.get(c).copied().unwrap_or(0).max(0) as u64))).collect::<Vec<_>>().join(" · "),
            })
        })
        .collect();
    let area = auth
        .actor
        .area
        .as_deref()
        .and_then(|c| state.config.areas.get(c))
        .map(|a| a.name.clone());
    Ok(page(
        &state,
        Some(&auth),
        StatusCode::OK,
        "Lịch gửi tin",
        "calendar",
        json!({
            "entries": views, "days": crate::console::upcoming::CALENDAR_DAYS, "area": area,
        }),
    ))
}
