//! `POST /message/template`: the checks, in the order the fake applies them, and the answer.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Reachability, Shared, ZnsMessage, codes, epoch_millis, lock, unavailable, zns_error};

pub(super) async fn handle(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = lock(&state);
    state.requests += 1;
    if state.down {
        return unavailable();
    }
    let now = Instant::now();
    let token = headers
        .get("access_token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !state.access_token_valid(token, now) {
        return zns_error(codes::ACCESS_TOKEN_INVALID);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return zns_error(codes::BODY_INVALID);
    };
    let phone = text(body.get("phone"));
    if !valid_phone(&phone) {
        return zns_error(codes::PHONE_INVALID);
    }
    let template_id = text(body.get("template_id"));
    let Some(params) = state.templates.get(&template_id) else {
        return zns_error(codes::TEMPLATE_INVALID);
    };
    let data = match body.get("template_data") {
        Some(Value::Object(data)) => data.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return zns_error(codes::TEMPLATE_DATA_INVALID),
    };
    if data.is_empty() {
        return zns_error(codes::TEMPLATE_DATA_EMPTY);
    }
    if !data_fits(&data, params) {
        return zns_error(codes::TEMPLATE_DATA_INVALID);
    }
    if state.remaining_quota == 0 {
        return zns_error(codes::DAILY_QUOTA_EXCEEDED);
    }
    if state.balance == Some(0) {
        return zns_error(codes::OUT_OF_QUOTA);
    }
    match state.reachability(&phone) {
        Reachability::OnZalo => {}
        Reachability::NotOnZalo => return zns_error(codes::NOT_ON_ZALO),
        Reachability::BlockedOa => return zns_error(codes::USER_REJECTED_OA),
    }
    state.remaining_quota -= 1;
    if let Some(balance) = state.balance.as_mut() {
        *balance -= 1;
    }
    let msg_id = state.mint("msg", 32);
    let tracking_id = match body.get("tracking_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(text(Some(v))),
    };
    state.sent.push(ZnsMessage {
        phone,
        template_id,
        template_data: data,
        tracking_id,
        msg_id: msg_id.clone(),
        received_at: now,
    });
    let answer = json!({
        "error": 0,
        "message": "Success",
        "data": {
            "msg_id": msg_id,
            "sent_time": epoch_millis().to_string(),
            "quota": {
                "dailyQuota": state.daily_quota.to_string(),
                "remainingQuota": state.remaining_quota.to_string(),
            },
        },
    });
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// A JSON string as is, a number as its decimal text (Zalo takes ids either way), else empty.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `84` then 8 to 11 digits, nothing else (no `+`, no spaces, no trunk `0`).
fn valid_phone(phone: &str) -> bool {
    phone.starts_with("84")
        && phone.bytes().all(|b| b.is_ascii_digit())
        && (10..=13).contains(&phone.len())
}

/// Exactly the template's parameters, each a string or number no longer than its limit in
/// characters (not bytes).
fn data_fits(data: &Map<String, Value>, params: &[(String, usize)]) -> bool {
    data.len() == params.len()
        && params.iter().all(|(name, max)| match data.get(name) {
            Some(Value::String(s)) => s.chars().count() <= *max,
            Some(Value::Number(n)) => n.to_string().chars().count() <= *max,
            _ => false,
        })
}
