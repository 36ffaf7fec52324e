//! Occurrences held over a channel's yearly budget, on the queue page, and the admin's
//! decision on one (`POST /holds/{id}`).

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::PageResult;
use crate::budget::decide::{Decision, Held};
use crate::console::Permission;
use crate::text::dong;
use crate::web::auth::Auth;
use crate::web::state::WebState;
use crate::web::views::{local, number_vi};

/// The held occurrences as the queue page lists them, with the decision buttons for an admin.
pub(super) fn held_views(state: &WebState, auth: &Auth, held: &[Held]) -> Vec<Value> {
    let now = state.clock.now();
    let can_decide = Permission::DecideBudget.allows(auth.actor.role);
    held.iter()
        .map(|h| {
            let expired = h.expires_at <= now;
            let status = match (h.decision, expired) {
                (Some(Decision::Send), _) => "Đã quyết định: vẫn gửi cho tất cả".to_string(),
                (Some(Decision::Cancel), _) => "Đã quyết định: hủy đợt gửi".to_string(),
                (Some(Decision::Subset), _) => {
                    "Đã quyết định: chỉ gửi trong phạm vi ngân sách còn lại".to_string()
                }
                (None, true) => "Quá hạn, chưa có quyết định: đợt gửi không được gửi".to_string(),
                (None, false) => {
                    format!(
                        "Đang chờ quyết định (hạn chót: {})",
                        local(state, h.expires_at)
                    )
                }
            };
            json!({
                "id": h.occurrence_id,
                "title": h.observance,
                "when": local(state, h.fire_at),
                "recipients_text": number_vi(h.recipients.max(0) as u64),
                "over": h.over.iter().map(|o| format!(
                    "{}: chi phí dự tính {}, ngân sách còn {} (cả năm {})",
                    o.channel_label, dong(o.estimate), dong(o.left), dong(o.budget)
                )).collect::<Vec<_>>(),
                "status": status,
                "by": h.decided_by.as_deref().map(|b| b.trim_start_matches("user:")),
                "open": h.decision.is_none() && !expired,
                "decisions": (can_decide && h.decision.is_none() && !expired).then(|| {
                    Decision::ALL.iter().map(|d| json!({
                        "value": d.as_str(),
                        "label": d.label(),
                        "secondary": *d != Decision::Subset,
                    })).collect::<Vec<_>>()
                }),
            })
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    _csrf: String,
    decision: String,
}

pub(super) async fn decide_hold(
    State(state): State<WebState>,
    super::common::PageAuth(auth): super::common::PageAuth,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    auth.check_csrf(Some(&form._csrf))?;
    let id: i64 = id
        .parse()
        .map_err(|_| crate::console::ConsoleError::NotFound)?;
    let decision = Decision::parse(&form.decision).ok_or_else(|| {
        crate::console::ConsoleError::invalid("decision", "Xin chọn một trong ba cách xử lý.")
    })?;
    state
        .console()
        .decide_hold(&auth.actor, id, decision)
        .await?;
    Ok(Redirect::to("/queue#held").into_response())
}
