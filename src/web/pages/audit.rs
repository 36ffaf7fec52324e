//! The audit log, newest first, a hundred entries a page.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::common::{PageAuth, PageResult};
use crate::console::{ConsoleError, Permission, audit};
use crate::web::state::WebState;
use crate::web::views::{local, page};

#[derive(Deserialize)]
pub(super) struct OffsetQuery {
    offset: Option<i64>,
}

pub(super) async fn audit_page(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<OffsetQuery>,
) -> PageResult {
    auth.actor.require(Permission::ViewAudit)?;
    const PAGE: i64 = 100;
    let offset = q.offset.unwrap_or(0).max(0);
    let entries = audit::latest(&state.db, PAGE, offset)
        .await
        .map_err(ConsoleError::from)?;
    Ok(page(
        &state,
        Some(&auth),
        StatusCode::OK,
        "Nhật ký thao tác",
        "audit",
        json!({
            "entries": entries.iter().map(|e| json!({
                "when": local(&state, e.at), "actor": e.actor, "action": e.action, "subject": e.subject, "detail": e.detail,
                "repeats_text": (e.repeats > 1).then(|| format!("(lặp lại {} lần, lần cuối lúc {})", e.repeats, e.last_at.map(|t| local(&state, t)).unwrap_or_default())),
            })).collect::<Vec<_>>(),
            "newer": (offset > 0).then(|| (offset - PAGE).max(0).to_string()),
            "older": (entries.len() as i64 == PAGE).then(|| (offset + PAGE).to_string()),
        }),
    ))
}
