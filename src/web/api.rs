//! The JSON API: everything the console pages do, for scripts and other systems, with a
//! bearer token (`loa token create`) or a session plus `X-CSRF-Token`. Described by the
//! OpenAPI document at `/api/openapi.json`, which `tests/console.rs` checks against the routes.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::auth::{Auth, authenticate};
use super::error::ApiError;
use super::paging::{Paged, Paging, bad_query, cursor_flag, cursor_parts};
use super::state::WebState;
use crate::console::activities::{self, ActivityInput};
use crate::console::content::{Content, ContentInput, QueueKey, Transition};
use crate::console::dashboard::DashboardQuery;
use crate::console::{ConsoleError, Permission, audit};
use crate::inbound::inbox;

pub const OPENAPI: &str = include_str!("openapi.json");

/// The caller of a JSON API route. A session's non-GET calls must send `X-CSRF-Token`.
struct ApiAuth(Auth);

impl FromRequestParts<WebState> for ApiAuth {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let auth = authenticate(state, &parts.headers)
            .await
            .map_err(|e| ApiError::Console(e).into_response())?
            .ok_or_else(|| ApiError::Console(ConsoleError::Unauthorized).into_response())?;
        // The one-time password opens only the page that replaces it.
        if auth
            .session
            .as_ref()
            .is_some_and(|s| s.user.must_change_password)
        {
            return Err(ApiError::Console(ConsoleError::Forbidden(
                "change the one-time password first (/account/password)".to_string(),
            ))
            .into_response());
        }
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let given = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            auth.check_csrf(given)
                .map_err(|e| ApiError::Console(e).into_response())?;
        }
        Ok(ApiAuth(auth))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A request's body as bytes; too large (413) or unreadable (400) answered in the API's JSON.
struct Body(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
                _ => ApiError::BadRequest(e.body_text()),
            })
    }
}

/// A JSON body: 400 when it is not JSON, 422 when it is JSON of the wrong shape.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = format!("request body: {e}");
        if e.is_data() {
            ApiError::Console(ConsoleError::invalid("body", message))
        } else {
            ApiError::BadRequest(message)
        }
    })
}

fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))
}

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/me", get(me))
        .route("/api/dashboard", get(dashboard))
        .route("/api/calendar", get(calendar))
        .route("/api/projection", get(projection))
        .route("/api/budget", get(budget))
        .route("/api/holds/{id}/decision", post(decide_hold))
        .route("/api/contents", get(list_contents).post(create_content))
        .route("/api/contents/{id}", get(get_content).put(update_content))
        .route("/api/contents/{id}/{step}", post(content_transition))
        .route("/api/preview", post(preview))
        .route("/api/activities", get(list_activities).post(add_activity))
        .route("/api/audit", get(audit_log))
        .route("/api/inbox", get(list_inbox))
        .route("/api/inbox/counts", get(inbox_counts))
        .route("/api/inbox/{id}", get(open_inbox_item))
        .route("/api/inbox/{id}/answer", post(answer_inbox_item))
        .route("/api/inbox/{id}/state", post(set_inbox_state))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn me(ApiAuth(auth): ApiAuth) -> Json<serde_json::Value> {
    Json(json!({
        "id": auth.actor.id,
        "name": auth.actor.name,
        "role": auth.actor.role,
        "area": auth.actor.area,
        "csrf_token": auth.csrf(),
    }))
}

async fn dashboard(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    uri: axum::http::Uri,
) -> ApiResult<crate::console::dashboard::Dashboard> {
    let q: DashboardQuery = query(uri.query())?;
    Ok(Json(state.console().dashboard(&auth.actor, &q).await?))
}

/// This year's outlook per commune within the caller's area.
async fn projection(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
) -> ApiResult<crate::console::projection::Projection> {
    Ok(Json(state.console().projection(&auth.actor).await?))
}

/// This year's spending per channel against its budget, and the occurrences held over it.
async fn budget(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
) -> ApiResult<crate::console::budget::BudgetView> {
    Ok(Json(state.console().budget(&auth.actor).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldDecision {
    decision: crate::budget::decide::Decision,
}

/// An admin's decision on an occurrence held over budget.
async fn decide_hold(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> ApiResult<crate::budget::decide::Decided> {
    auth.actor.require(Permission::DecideBudget)?;
    let input: HoldDecision = body(&bytes)?;
    Ok(Json(
        state
            .console()
            .decide_hold(&auth.actor, content_id(&id)?, input.decision)
            .await?,
    ))
}

async fn calendar(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
) -> ApiResult<Vec<crate::console::upcoming::Upcoming>> {
    Ok(Json(state.console().upcoming(&auth.actor).await?))
}

/// The queue within the caller's area, a page at a time; cursor `<finished>.<send_at>.<id>`.
async fn list_contents(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    uri: axum::http::Uri,
) -> Result<Paged<Content>, ApiError> {
    let paging = Paging::from_query(uri.query())?;
    let after = paging.after(QueueKey::parse)?;
    let items = state
        .console()
        .contents_page(&auth.actor, after, paging.limit + 1)
        .await?;
    Ok(Paged::new(items, &paging, &uri, |c| {
        QueueKey::of(c).cursor()
    }))
}

async fn create_content(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Body(bytes): Body,
) -> Result<(StatusCode, Json<crate::console::content::Content>), ApiError> {
    // The role first: a caller who may not write learns nothing from the body's checks.
    auth.actor.require(Permission::EditContent)?;
    let input: ContentInput = body(&bytes)?;
    let content = state.console().create_content(&auth.actor, &input).await?;
    Ok((StatusCode::CREATED, Json(content)))
}

async fn get_content(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<crate::console::content::Content> {
    Ok(Json(
        state
            .console()
            .content(&auth.actor, content_id(&id)?)
            .await?,
    ))
}

fn content_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::Console(ConsoleError::NotFound))
}

async fn update_content(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> ApiResult<crate::console::content::Content> {
    auth.actor.require(Permission::EditContent)?;
    let input: ContentInput = body(&bytes)?;
    Ok(Json(
        state
            .console()
            .update_content(&auth.actor, content_id(&id)?, &input)
            .await?,
    ))
}

/// The version the caller was shown: required to approve, optional otherwise.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Seen {
    version: Option<i64>,
}

/// `submit`, `approve` or `cancel`, of the version in the body (`{"version": 3}`).
async fn content_transition(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Path((id, step)): Path<(String, String)>,
    Body(bytes): Body,
) -> ApiResult<crate::console::content::Content> {
    let step = Transition::parse(&step).ok_or(ApiError::Console(ConsoleError::NotFound))?;
    // The role first: a caller who may not take this step learns nothing from the body's checks.
    auth.actor.require(step.permission())?;
    let seen: Seen = if bytes.iter().all(u8::is_ascii_whitespace) {
        Seen::default()
    } else {
        body(&bytes)?
    };
    Ok(Json(
        state
            .console()
            .apply(&auth.actor, content_id(&id)?, step, seen.version)
            .await?,
    ))
}

async fn preview(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Body(bytes): Body,
) -> ApiResult<crate::console::content::Preview> {
    auth.actor.require(Permission::ViewQueue)?;
    let input: ContentInput = body(&bytes)?;
    Ok(Json(state.console().preview(&auth.actor, &input).await?))
}

/// Activities of a period, latest first, a page at a time; cursor `<date>.<id>`.
async fn list_activities(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    uri: axum::http::Uri,
) -> Result<Paged<activities::Activity>, ApiError> {
    let q: DashboardQuery = query(uri.query())?;
    let paging = Paging::from_query(uri.query())?;
    let after = paging.after(|text| {
        let parts = cursor_parts(text, 2)?;
        Some((
            NaiveDate::parse_from_str(parts[0], "%Y-%m-%d").ok()?,
            parts[1].parse().ok()?,
        ))
    })?;
    let console = state.console();
    let (_, _, from, to) = console.resolve_period(&q)?;
    let items = activities::page(
        &state.db,
        &state.config.areas,
        &auth.actor,
        (from, to),
        after,
        Some(paging.read()),
    )
    .await?;
    Ok(Paged::new(items, &paging, &uri, |a| {
        format!("{}.{}", a.date.format("%Y-%m-%d"), a.id)
    }))
}

async fn add_activity(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Body(bytes): Body,
) -> Result<(StatusCode, Json<activities::Activity>), ApiError> {
    auth.actor.require(Permission::EnterActivities)?;
    let input: ActivityInput = body(&bytes)?;
    let activity = activities::add(
        &state.db,
        &state.config.areas,
        &auth.actor,
        &input,
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(activity)))
}

#[derive(Deserialize)]
struct Offset {
    offset: Option<String>,
}

/// The audit log, latest first, a page at a time; cursor: the last entry's id. `offset`, from
/// before lists had cursors, still works for a first page.
async fn audit_log(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    uri: axum::http::Uri,
) -> Result<Paged<audit::Entry>, ApiError> {
    auth.actor.require(Permission::ViewAudit)?;
    let paging = Paging::from_query(uri.query())?;
    let before = paging.after(|text| text.parse::<i64>().ok())?;
    let offset = match query::<Offset>(uri.query())?.offset {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad_query("offset", "a whole number from 0".to_string()))?,
        ),
    };
    let entries = match offset {
        Some(_) if paging.has_after() => {
            return Err(bad_query(
                "offset",
                "give either offset or after, not both".to_string(),
            ));
        }
        Some(offset) => audit::latest(&state.db, paging.read(), offset).await,
        None => audit::older_than(&state.db, before, paging.read()).await,
    }
    .map_err(ConsoleError::from)?;
    Ok(Paged::new(entries, &paging, &uri, |e| e.id.to_string()))
}

/// Residents' texts of the caller's area, urgent first, then new, then the latest, a page at
/// a time; cursor `<urgent>.<new>.<at>.<id>`.
async fn list_inbox(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    uri: axum::http::Uri,
) -> Result<Paged<inbox::Item>, ApiError> {
    auth.actor.require(Permission::ReadInbox)?;
    let paging = Paging::from_query(uri.query())?;
    let after = paging.after(|text| {
        let parts = cursor_parts(text, 4)?;
        Some(inbox::ListKey {
            urgent: cursor_flag(parts[0])?,
            new: cursor_flag(parts[1])?,
            at: parts[2].parse().ok()?,
            id: parts[3].parse().ok()?,
        })
    })?;
    let items = inbox::page(&state.db, &state.config, &auth.actor, after, paging.read()).await?;
    Ok(Paged::new(items, &paging, &uri, |item| {
        let k = inbox::ListKey::of(item);
        format!(
            "{}.{}.{}.{}",
            u8::from(k.urgent),
            u8::from(k.new),
            k.at,
            k.id
        )
    }))
}

async fn inbox_counts(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
) -> ApiResult<inbox::Counts> {
    Ok(Json(
        inbox::counts(&state.db, &state.config, &auth.actor).await?,
    ))
}

/// One text with its sender's full number; a new one becomes read.
async fn open_inbox_item(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Path(id): Path<String>,
) -> ApiResult<inbox::Item> {
    Ok(Json(
        inbox::open(
            &state.db,
            &state.config,
            &auth.actor,
            content_id(&id)?,
            state.clock.now(),
        )
        .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerInput {
    text: String,
}

async fn answer_inbox_item(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> ApiResult<inbox::Item> {
    auth.actor.require(Permission::ReadInbox)?;
    let input: AnswerInput = body(&bytes)?;
    Ok(Json(
        inbox::answer(
            &state.db,
            &state.config,
            &auth.actor,
            content_id(&id)?,
            &input.text,
            state.clock.now(),
        )
        .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateInput {
    state: String,
}

async fn set_inbox_state(
    State(state): State<WebState>,
    ApiAuth(auth): ApiAuth,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> ApiResult<inbox::Item> {
    auth.actor.require(Permission::ReadInbox)?;
    let input: StateInput = body(&bytes)?;
    let wanted = inbox::State::parse(&input.state).ok_or_else(|| {
        ConsoleError::invalid(
            "state",
            "one of new, read, forwarded (answered comes with an answer)",
        )
    })?;
    Ok(Json(
        inbox::set_state(
            &state.db,
            &state.config,
            &auth.actor,
            content_id(&id)?,
            wanted,
            state.clock.now(),
        )
        .await?,
    ))
}
