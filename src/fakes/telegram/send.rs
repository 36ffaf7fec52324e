//! `sendMessage`, the one method the fake spoils on demand.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::Fault;
use super::json::{as_i64, bot_user};
use super::{FakeState, Reply, Scripted, SentMessage, error};

/// `sendMessage`: a scripted answer first, then the fault mix's, then Telegram's limits and
/// refusals; only then is the message accepted.
pub(super) fn send_message(state: &mut FakeState, params: &Value) -> Reply {
    if let (Some(chat_id), Some(plan)) = (as_i64(&params["chat_id"]), state.faults.as_mut())
        && state.scripted.get(&chat_id).is_none_or(VecDeque::is_empty)
        && let Some(fault) = plan.next(chat_id)
    {
        return spoiled(fault, plan.mix.hang);
    }
    take_message(state, params).into()
}

fn spoiled(fault: Fault, hang: Duration) -> Reply {
    match fault {
        Fault::InternalError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            None,
        )
        .into(),
        Fault::BadGateway => (
            StatusCode::BAD_GATEWAY,
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad \
             Gateway</h1></center><hr><center>nginx</center></body></html>",
        )
            .into_response()
            .into(),
        Fault::Hang => Reply::Hang(hang),
        Fault::Reset => Reply::Reset,
        Fault::TooManyRequests { retry_after } => error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({"retry_after": retry_after})),
        )
        .into(),
    }
}

fn take_message(state: &mut FakeState, params: &Value) -> Response {
    let chat_id = as_i64(&params["chat_id"]);
    let Some(chat_id) = chat_id else {
        return error(StatusCode::BAD_REQUEST, "Bad Request: chat not found", None);
    };
    if let Some(next) = state
        .scripted
        .get_mut(&chat_id)
        .and_then(VecDeque::pop_front)
    {
        return match next {
            Scripted::TooManyRequests { retry_after } => error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too Many Requests: retry after {retry_after}"),
                Some(json!({"retry_after": retry_after})),
            ),
            Scripted::NotJson => {
                (StatusCode::OK, "<html><body>upstream error</body></html>").into_response()
            }
        };
    }
    if let Some(limits) = state.limits {
        let now = Instant::now();
        let second_ago = now.checked_sub(Duration::from_secs(1));
        let recent = |m: &&SentMessage| second_ago.is_none_or(|t| m.received_at > t);
        let overall = state.sent.iter().rev().take_while(|m| recent(m)).count();
        let to_chat = state
            .sent
            .iter()
            .rev()
            .take_while(|m| recent(m))
            .filter(|m| m.chat_id == chat_id)
            .count();
        if overall >= limits.per_second || to_chat >= limits.per_chat_per_second {
            state.too_many_requests += 1;
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests: retry after 1",
                Some(json!({"retry_after": 1})),
            );
        }
    }
    if state.blocked.contains(&chat_id) {
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden: bot was blocked by the user",
            None,
        );
    }
    let text = params["text"].as_str().unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message text is empty",
            None,
        );
    }
    if text.chars().count() > 4096 {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message is too long",
            None,
        );
    }
    state.next_message_id += 1;
    state.accepted += 1;
    let message_id = state.next_message_id;
    state.sent.push(SentMessage {
        chat_id,
        text: text.clone(),
        parse_mode: params["parse_mode"].as_str().map(str::to_string),
        message_id,
        received_at: Instant::now(),
        reply_markup: params.get("reply_markup").cloned(),
    });
    let date = chrono::Utc::now().timestamp();
    axum::Json(json!({
        "ok": true,
        "result": {
            "message_id": message_id,
            "from": bot_user(),
            "chat": {"id": chat_id, "type": "private", "first_name": "Cư dân"},
            "date": date,
            "text": text,
        }
    }))
    .into_response()
}
