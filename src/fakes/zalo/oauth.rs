//! `POST /v4/oa/access_token` with `grant_type=refresh_token`: single-use rotating refresh
//! tokens, answered as Zalo answers (HTTP 200; `expires_in` a string of seconds).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{IssuedToken, Shared, codes, lock, unavailable};

pub(super) async fn handle(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut state = lock(&state);
    if state.down {
        return unavailable();
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("app_id") != state.app.app_id {
        return oauth_error(codes::INVALID_APP_ID);
    }
    let secret = headers
        .get("secret_key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if secret != state.app.secret_key {
        return oauth_error(codes::INVALID_SECRET_KEY);
    }
    if field("grant_type") != "refresh_token" {
        return oauth_error(codes::INVALID_GRANT_TYPE);
    }
    let presented = field("refresh_token").to_string();
    if presented != state.current_refresh_token || state.refresh_revoked {
        if state.spent_refresh_tokens.contains(&presented) {
            state.spent_presented += 1;
        }
        return oauth_error(codes::INVALID_REFRESH_TOKEN);
    }

    let refresh_token = state.mint("refresh-token", 40);
    let spent = std::mem::replace(&mut state.current_refresh_token, refresh_token.clone());
    state.spent_refresh_tokens.insert(spent);
    if !state.keep_old_access_tokens {
        for token in state.access_tokens.values_mut() {
            token.dead = true;
        }
    }
    let access_token = state.mint("access-token", 48);
    let lifetime = state.access_token_lifetime;
    state.access_tokens.insert(
        access_token.clone(),
        IssuedToken {
            issued_at: Instant::now(),
            lifetime: Duration::from_secs(lifetime),
            dead: false,
        },
    );
    state.current_access_token = Some(access_token.clone());
    state.refreshes += 1;
    let answer = json!({
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_in": lifetime.to_string(),
    });
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// Zalo's OAuth error envelope, with HTTP 200.
fn oauth_error((code, name): (i64, &str)) -> Response {
    let answer = json!({
        "error": code,
        "error_name": name,
        "error_description": name,
        "error_reason": "",
        "ref_doc": "",
    });
    (StatusCode::OK, axum::Json(answer)).into_response()
}
