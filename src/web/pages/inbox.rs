//! "Tin nhắn đến": residents' texts. Staff, approvers and admins read the texts of their area
//! (urgent first, then new), open one (the number in full, marked read), answer it (sent back
//! on the channel it came by) and mark it handled; officials see the counts only. The rules are
//! `inbound::inbox`'s; this file turns them into pages.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{PageAuth, PageResult, channel_label};
use crate::console::{ConsoleError, Permission};
use crate::inbound::inbox::{self, Item, State as ItemState};
use crate::web::auth::Auth;
use crate::web::error::PageError;
use crate::web::state::WebState;
use crate::web::views::{local, page};

/// Texts a list shows at most.
const LIST_LIMIT: i64 = 300;
/// Characters of a text a list shows; the item's page shows all.
const EXCERPT_CHARS: usize = 160;

fn item_view(state: &WebState, item: &Item) -> Value {
    let excerpt: String = item.text.chars().take(EXCERPT_CHARS).collect();
    json!({
        "id": item.id,
        "at": local(state, item.at),
        "channel": channel_label(state, item.channel),
        "sender": item.sender,
        "address": item.address,
        "area_name": item.area_name.clone().unwrap_or_else(|| "Chưa rõ".to_string()),
        "excerpt": excerpt,
        "cut": item.text.chars().count() > EXCERPT_CHARS,
        "text": item.text,
        "urgent": item.urgent,
        "state": item.state.label(),
        "is_new": item.state == ItemState::New,
    })
}

pub(super) async fn inbox_page(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
) -> PageResult {
    let counts = inbox::counts(&state.db, &state.config, &auth.actor).await?;
    let can_read = Permission::ReadInbox.allows(auth.actor.role);
    let items = if can_read {
        inbox::list(&state.db, &state.config, &auth.actor, LIST_LIMIT).await?
    } else {
        Vec::new()
    };
    Ok(page(
        &state,
        Some(&auth),
        StatusCode::OK,
        "Tin nhắn đến",
        "inbox",
        json!({
            "can_read": can_read,
            "counts": counts,
            "keep_days": state.config.inbox.keep_days,
            "items": items.iter().map(|i| item_view(&state, i)).collect::<Vec<_>>(),
        }),
    ))
}

fn parse_id(id: &str) -> Result<i64, PageError> {
    id.parse().map_err(|_| PageError(ConsoleError::NotFound))
}

async fn item_page(
    state: &WebState,
    auth: &Auth,
    item: &Item,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let answers = inbox::answers(&state.db, item.id).await?;
    let mut view = item_view(state, item);
    view["csrf"] = json!(auth.csrf());
    view["error"] = json!(error);
    view["max_answer"] = json!(inbox::MAX_ANSWER_CHARS);
    // Answers wait out the quiet hours: the page says when, so no one expects an answer typed
    // at 22:00 to arrive at once.
    view["quiet"] = json!(state.config.dispatch.quiet_hours.map(|(from, to)| json!({
        "from": from.format("%H:%M").to_string(),
        "to": to.format("%H:%M").to_string(),
    })));
    view["answers"] = answers
        .iter()
        .map(|(at, status, text)| {
            json!({
                "at": local(state, *at),
                "status": match status.as_str() {
                    "sent" => "đã gửi",
                    "failed" => "không gửi được",
                    _ => "đang chờ gửi",
                },
                "text": text,
            })
        })
        .collect();
    Ok(page(
        state,
        Some(auth),
        status,
        "Tin nhắn đến",
        "inbox_item",
        view,
    ))
}

pub(super) async fn show_item(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id(&id)?;
    let item = inbox::open(&state.db, &state.config, &auth.actor, id, state.clock.now()).await?;
    item_page(&state, &auth, &item, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub(super) struct AnswerForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    text: String,
}

pub(super) async fn answer_item(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(id): Path<String>,
    Form(form): Form<AnswerForm>,
) -> PageResult {
    let id = parse_id(&id)?;
    auth.check_csrf(Some(&form._csrf))?;
    let now = state.clock.now();
    match inbox::answer(&state.db, &state.config, &auth.actor, id, &form.text, now).await {
        Ok(_) => Ok(Redirect::to(&format!("/inbox/{id}")).into_response()),
        Err(ConsoleError::Invalid { message, .. }) => {
            let item = inbox::open(&state.db, &state.config, &auth.actor, id, now).await?;
            item_page(
                &state,
                &auth,
                &item,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct StateForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    state: String,
}

pub(super) async fn set_item_state(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(id): Path<String>,
    Form(form): Form<StateForm>,
) -> PageResult {
    let id = parse_id(&id)?;
    auth.check_csrf(Some(&form._csrf))?;
    let wanted = ItemState::parse(&form.state)
        .ok_or_else(|| PageError(ConsoleError::invalid("state", "Trạng thái không hợp lệ.")))?;
    inbox::set_state(
        &state.db,
        &state.config,
        &auth.actor,
        id,
        wanted,
        state.clock.now(),
    )
    .await?;
    Ok(Redirect::to(&format!("/inbox/{id}")).into_response())
}
