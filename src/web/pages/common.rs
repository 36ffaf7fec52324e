//! What the pages share: who is calling ([`PageAuth`]), the answer a page gives
//! ([`PageResult`]), and the small views more than one page shows.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::ChannelKind;
use crate::console::activities::Activity;
use crate::web::auth::{Auth, authenticate};
use crate::web::error::PageError;
use crate::web::state::WebState;
use crate::web::views::{login_page, number_vi};

/// The caller of a page. A user who still has the one-time password is sent to choose one.
pub(super) struct PageAuth(pub(super) Auth);

impl FromRequestParts<WebState> for PageAuth {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let auth = match authenticate(state, &parts.headers).await {
            Ok(Some(auth)) => auth,
            Ok(None) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                return Err(login_page(StatusCode::UNAUTHORIZED, next, None));
            }
            Err(e) => return Err(PageError(e).into_response()),
        };
        let must_change = auth
            .session
            .as_ref()
            .is_some_and(|s| s.user.must_change_password);
        if must_change && parts.uri.path() != "/account/password" && parts.uri.path() != "/logout" {
            return Err((
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/account/password")],
            )
                .into_response());
        }
        Ok(PageAuth(auth))
    }
}

pub(super) type PageResult = Result<Response, PageError>;

pub(super) fn activity_view(a: &Activity) -> Value {
    json!({
        "date_text": a.date.format("%d/%m/%Y").to_string(),
        "area_name": a.area_name,
        "kind_label": a.kind_label,
        "audience_text": number_vi(a.audience.max(0) as u64),
        "note": a.note,
        "entered_by": a.entered_by,
    })
}

pub(super) fn channel_label(state: &WebState, kind: ChannelKind) -> &'static str {
    state.config.channels.label(kind)
}

/// The columns of the channel split: every set of channels a person can be reached by, with
/// its label ("Telegram", "Telegram + SMS").
pub(super) fn split_columns(state: &WebState) -> Vec<(String, String)> {
    let channels = &state.config.channels;
    crate::reach::channel_set_keys(channels)
        .into_iter()
        .map(|key| {
            let labels: Vec<&str> = key
                .split('+')
                .map(|name| channels.parse(name).map_or(name, |k| channels.label(k)))
                .collect();
            // Each column counts the persons reached by exactly these channels.
            let label = match labels.as_slice() {
                [one] => format!("Chỉ {one}"),
                [init @ .., last] => format!("Cả {} và {last}", init.join(", ")),
                [] => String::new(),
            };
            (key, label)
        })
        .collect()
}
