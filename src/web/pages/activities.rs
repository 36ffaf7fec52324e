//! Offline activities: meetings, loudspeaker broadcasts and the like, entered by staff; shown
//! beside reach, never added to it.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Datelike;
use serde::Deserialize;
use serde_json::json;

use super::common::{PageAuth, PageResult, activity_view};
use crate::console::activities::{self, ActivityInput};
use crate::console::{ConsoleError, Permission};
use crate::web::auth::Auth;
use crate::web::state::WebState;
use crate::web::views::page;

async fn activities_view(
    state: &WebState,
    auth: &Auth,
    status: StatusCode,
    error: Option<String>,
    notice: Option<&str>,
) -> PageResult {
    let tz = state.config.campaign.time_zone;
    let today = state.clock.now().with_timezone(&tz).date_naive();
    let year = today.year();
    let from = chrono::NaiveDate::from_ymd_opt(year, 1, 1).expect("valid date");
    let to = chrono::NaiveDate::from_ymd_opt(year, 12, 31).expect("valid date");
    let list = activities::list(&state.db, &state.config.areas, &auth.actor, from, to).await?;
    let scope = auth.actor.scope(&state.config.areas);
    Ok(page(
        state,
        Some(auth),
        status,
        "Hoạt động truyền thông trực tiếp",
        "activities",
        json!({
            "csrf": auth.csrf(),
            "error": error,
            "notice": notice,
            "can_enter": Permission::EnterActivities.allows(auth.actor.role),
            "today": today.to_string(),
            "year": year,
            "areas": state.config.areas.tree_order().into_iter()
                .filter(|(_, a)| scope.as_ref().is_none_or(|s| s.contains(&a.code)))
                .map(|(depth, a)| json!({"code": a.code, "name": format!("{}{}", "— ".repeat(depth), a.name)}))
                .collect::<Vec<_>>(),
            "kinds": activities::KINDS.iter().map(|(v, l)| json!({"value": v, "label": l})).collect::<Vec<_>>(),
            "activities": list.iter().map(|a| {
                let mut v = activity_view(a);
                v["entered_by"] = json!(a.entered_by.trim_start_matches("user:"));
                v
            }).collect::<Vec<_>>(),
        }),
    ))
}

pub(super) async fn activities_page(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
) -> PageResult {
    activities_view(&state, &auth, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
pub(super) struct ActivityForm {
    #[serde(default)]
    _csrf: String,
    #[serde(flatten)]
    input: ActivityInput,
}

pub(super) async fn add_activity(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Form(form): Form<ActivityForm>,
) -> PageResult {
    auth.check_csrf(Some(&form._csrf))?;
    match activities::add(
        &state.db,
        &state.config.areas,
        &auth.actor,
        &form.input,
        state.clock.now(),
    )
    .await
    {
        Ok(_) => {
            activities_view(
                &state,
                &auth,
                StatusCode::OK,
                None,
                Some("Đã ghi nhận hoạt động."),
            )
            .await
        }
        Err(ConsoleError::Invalid { message, .. }) => {
            activities_view(
                &state,
                &auth,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
