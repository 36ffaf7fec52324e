//! The console's pages: Vietnamese, rendered on the server with handlebars (`views/`, built
//! into the binary), one inline stylesheet, charts as inline SVG — nothing fetched from
//! elsewhere, so they work on an office network without internet. Forms post back here with
//! the session's CSRF token; the content form's live preview calls `/api/preview`.

use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebState;
use super::auth::{Auth, SESSION_COOKIE, authenticate, constant_time_eq, cookie};
use super::error::PageError;
use super::guard::{self, Peer};
use super::views::{
    LOGIN_COOKIE, bar_svg, local, login_page, number_vi, page, percent_vi, render, safe_next,
    status_text,
};
use crate::config::ChannelKind;
use crate::console::accounts::{self, MIN_PASSWORD_CHARS};
use crate::console::activities::{self, Activity, ActivityInput};
use crate::console::content::{Content, ContentInput, Preview, State as ContentState, Transition};
use crate::console::dashboard::{AreaLine, Dashboard, DashboardQuery};
use crate::console::{ConsoleError, Permission, audit};
use crate::export::{Cell, excel_csv};
use crate::templates::staff::Placeholder;
use crate::templates::telegram_html;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/account/password",
            get(password_form).post(change_password),
        )
        .route("/dashboard", get(dashboard))
        .route("/report", get(report))
        .route("/calendar", get(calendar))
        .route("/queue", get(queue).post(create_content))
        .route("/queue/new", get(new_content))
        .route("/queue/{id}", get(show_content).post(update_content))
        .route("/queue/{id}/{action}", post(content_action))
        .route("/activities", get(activities_page).post(add_activity))
        .route("/audit", get(audit_page))
}

/// The exports: long answers, given more time than the pages.
pub(super) fn export_routes() -> Router<WebState> {
    Router::new()
        .route("/exports/reach.csv", get(export_reach))
        .route("/exports/deliveries.csv", get(export_deliveries))
}

/// The caller of a page. A user who still has the one-time password is sent to choose one.
struct PageAuth(Auth);

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

type PageResult = Result<Response, PageError>;

fn line_view(l: &AreaLine, d: &Dashboard) -> Value {
    json!({
        "code": l.code,
        "name": l.name,
        "percent": l.percent,
        "status": l.status.map(|s| s.as_str()),
        "status_text": status_text(l.status),
        "population_text": number_vi(l.population),
        "reached_text": number_vi(l.reached),
        "telegram_text": number_vi(l.split.telegram_only),
        "sms_text": number_vi(l.split.sms_only),
        "both_text": number_vi(l.split.both),
        "percent_text": percent_vi(l.percent),
        "engaged_text": number_vi(l.engaged),
        "offline_text": number_vi(l.offline_estimate),
        "bar": bar_svg(l.percent, d.target_low_percent, d.target_high_percent, l.status),
    })
}

fn activity_view(a: &Activity) -> Value {
    json!({
        "date_text": a.date.format("%d/%m/%Y").to_string(),
        "area_name": a.area_name,
        "kind_label": a.kind_label,
        "audience_text": number_vi(a.audience.max(0) as u64),
        "note": a.note,
        "entered_by": a.entered_by,
    })
}

// ---- sign-in ----

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(Query(q): Query<NextQuery>) -> Response {
    login_page(
        StatusCode::OK,
        q.next.as_deref().unwrap_or("/dashboard"),
        None,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

fn session_cookie(state: &WebState, value: &str, max_age: i64) -> String {
    let secure = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

async fn login(
    State(state): State<WebState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let now = state.clock.now();
    // The form must come from a sign-in page Loa served to this browser (login CSRF): another
    // site must not sign a browser in to an account of its choosing.
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| constant_time_eq(c, &form._csrf)) {
        return Ok(login_page(
            StatusCode::FORBIDDEN,
            &form.next,
            Some("Trang đăng nhập đã cũ; xin đăng nhập lại."),
        ));
    }
    // What was typed, cut short: a pasted novel must not go into the log or the throttle.
    let typed: String = form.name.trim().chars().take(40).collect();
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = guard::client_address(peer, forwarded, &state.config.trusted_proxies);
    if let Some(wait) = state.throttle.refused(&typed, client, now) {
        let minutes = (wait.num_seconds() + 59) / 60;
        let mut page = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &form.next,
            Some(&format!(
                "Đăng nhập sai quá nhiều lần. Xin thử lại sau {minutes} phút."
            )),
        );
        let (name, value) = guard::retry_after(wait);
        page.headers_mut().insert(
            name,
            header::HeaderValue::from_str(&value).expect("digits are a header value"),
        );
        return Ok(page);
    }
    let Some(session) = accounts::sign_in(&state.db, &typed, &form.password, now).await? else {
        state.throttle.failed(&typed, client, now);
        let from = client.map(|ip| format!("from {ip}"));
        audit::record_repeated(
            &state.db,
            now,
            &format!("user:{typed}"),
            "session.sign_in_failed",
            None,
            from.as_deref(),
            guard::THROTTLE_WINDOW,
        )
        .await
        .map_err(ConsoleError::from)?;
        return Ok(login_page(
            StatusCode::UNAUTHORIZED,
            &form.next,
            Some("Tên đăng nhập hoặc mật khẩu không đúng."),
        ));
    };
    state.throttle.succeeded(&typed);
    let actor = session.user.actor();
    audit::record(
        &state.db.pool,
        now,
        &actor.id,
        "session.sign_in",
        None,
        None,
    )
    .await
    .map_err(ConsoleError::from)?;
    let to = if session.user.must_change_password {
        "/account/password"
    } else {
        safe_next(&form.next)
    };
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session_cookie(&state, &session.token, accounts::SESSION_HOURS * 3600),
            ),
            (header::LOCATION, to.to_string()),
        ],
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct CsrfForm {
    #[serde(default)]
    _csrf: String,
}

async fn logout(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    auth.check_csrf(Some(&form._csrf))?;
    let now = state.clock.now();
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        accounts::sign_out(&state.db, token, now).await?;
    }
    audit::record(
        &state.db.pool,
        now,
        &auth.actor.id,
        "session.sign_out",
        None,
        None,
    )
    .await
    .map_err(ConsoleError::from)?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(&state, "", 0)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response())
}

async fn password_form(State(state): State<WebState>, PageAuth(auth): PageAuth) -> PageResult {
    Ok(password_page(&state, &auth, None))
}

fn password_page(state: &WebState, auth: &Auth, error: Option<&str>) -> Response {
    let first_time = auth
        .session
        .as_ref()
        .is_some_and(|s| s.user.must_change_password);
    page(
        state,
        Some(auth),
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        "Đổi mật khẩu",
        "password",
        json!({"csrf": auth.csrf(), "error": error, "first_time": first_time, "min": MIN_PASSWORD_CHARS}),
    )
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

async fn change_password(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Form(form): Form<PasswordForm>,
) -> PageResult {
    auth.check_csrf(Some(&form._csrf))?;
    let Some(session) = &auth.session else {
        return Err(ConsoleError::Forbidden("API tokens have no password".to_string()).into());
    };
    match accounts::change_password(&state.db, session, &form.current, &form.new).await {
        Ok(()) => {
            audit::record(
                &state.db.pool,
                state.clock.now(),
                &auth.actor.id,
                "account.password",
                None,
                None,
            )
            .await
            .map_err(ConsoleError::from)?;
            Ok(Redirect::to("/dashboard").into_response())
        }
        Err(ConsoleError::Invalid { message, .. }) => {
            Ok(password_page(&state, &auth, Some(&message)))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- dashboard and report ----

fn dashboard_query_string(q: &DashboardQuery) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let mut push = |k: &'static str, v: &Option<String>| {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_string()));
        }
    };
    push("period", &q.period);
    push("from", &q.from);
    push("to", &q.to);
    push("observance", &q.observance);
    push("content", &q.content);
    push("tag", &q.tag);
    if let Some(y) = q.year {
        pairs.push(("year", y.to_string()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// What the figures are narrowed to, in words.
fn filters_text(state: &WebState, d: &Dashboard) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &d.filter_observance
        && let Some(o) = state.calendar.observances().iter().find(|o| &o.id == id)
    {
        parts.push(format!("Tin nhắn về: {}", o.name));
    }
    if let Some(id) = d.filter_content {
        parts.push(format!("Đợt truyền thông số {id}"));
    }
    if let Some(tag) = &d.filter_tag {
        parts.push(format!("Nhóm đối tượng: {tag}"));
    }
    parts.join(" · ")
}

async fn dashboard_data(
    state: &WebState,
    auth: &Auth,
    q: &DashboardQuery,
) -> Result<(Dashboard, Value), ConsoleError> {
    let console = state.console();
    let d = console.dashboard(&auth.actor, q).await?;
    let year = q.year.unwrap_or(d.from.year());
    let rows: Vec<Value> = d
        .communes
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut v = line_view(l, &d);
            v["index"] = json!(i + 1);
            v
        })
        .collect();
    let activities_audience: u64 = d.activities.iter().map(|a| a.audience.max(0) as u64).sum();
    let campaigns = crate::console::content::sent(&state.db).await?;
    let data = json!({
        "d": d,
        "rows": rows,
        "total_view": line_view(&d.total, &d),
        "band_text": format!("{:.0}–{:.0} %", d.target_low_percent, d.target_high_percent),
        "periods": console.period_options(year, &d.period),
        "custom": d.period == "custom",
        "year": year,
        "from_value": d.from.to_string(),
        "to_value": d.to.to_string(),
        "observances": state.calendar.observances().iter().map(|o| json!({
            "id": o.id, "name": o.name, "selected": d.filter_observance.as_deref() == Some(o.id.as_str()),
        })).collect::<Vec<_>>(),
        "campaigns": campaigns.iter().map(|(id, title)| json!({
            "id": id, "title": title, "selected": d.filter_content == Some(*id),
        })).collect::<Vec<_>>(),
        "tag": d.filter_tag,
        "filters_text": filters_text(state, &d),
        "activities": d.activities.iter().map(activity_view).collect::<Vec<_>>(),
        "activities_count": d.activities.len(),
        "activities_audience": number_vi(activities_audience),
        "query": dashboard_query_string(q),
        "can_export_deliveries": Permission::ExportDeliveries.allows(auth.actor.role),
        "sender_upper": state.config.campaign.sender.to_uppercase(),
    });
    Ok((d, data))
}

async fn dashboard(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    match dashboard_data(&state, &auth, &q).await {
        Ok((_, data)) => Ok(page(
            &state,
            Some(&auth),
            StatusCode::OK,
            "Kết quả truyền thông",
            "dashboard",
            data,
        )),
        Err(ConsoleError::Invalid { message, .. }) => {
            // Show the form again with the problem, over the default period.
            let (_, mut data) = dashboard_data(&state, &auth, &DashboardQuery::default()).await?;
            data["error"] = json!(message);
            Ok(page(
                &state,
                Some(&auth),
                StatusCode::UNPROCESSABLE_ENTITY,
                "Kết quả truyền thông",
                "dashboard",
                data,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

async fn report(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    let (_, mut data) = dashboard_data(&state, &auth, &q).await?;
    let today = state
        .clock
        .now()
        .with_timezone(&state.config.campaign.time_zone)
        .date_naive();
    let place = state
        .config
        .areas
        .roots()
        .next()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    data["place_date"] = json!(format!(
        "{}, ngày {} tháng {} năm {}",
        place
            .trim_start_matches("Huyện ")
            .trim_start_matches("huyện "),
        today.day(),
        today.month(),
        today.year()
    ));
    Ok(Html(render("report", &data)).into_response())
}

// ---- calendar ----

async fn calendar(State(state): State<WebState>, PageAuth(auth): PageAuth) -> PageResult {
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
                "split_text": e.channels.iter().map(|c| format!("{}: {}", channel_label(*c), number_vi(e.by_channel.get(c).copied().unwrap_or(0).max(0) as u64))).collect::<Vec<_>>().join(" · "),
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

fn channel_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Telegram => "Telegram",
        ChannelKind::Sms => "SMS",
    }
}

// ---- content queue ----

async fn queue(State(state): State<WebState>, PageAuth(auth): PageAuth) -> PageResult {
    let items = state.console().contents(&auth.actor).await?;
    let views: Vec<Value> = items
        .iter()
        .map(|c| json!({
            "id": c.id,
            "title": c.title,
            "when": local(&state, c.send_at),
            "channels_text": c.channels.iter().map(|k| channel_label(*k)).collect::<Vec<_>>().join(", "),
            "areas_text": areas_text(&state, &c.areas),
            "state": c.state,
            "state_text": c.state.label(),
            "author": c.author.trim_start_matches("user:"),
            "approver": c.approver.as_deref().map(|a| a.trim_start_matches("user:")),
        }))
        .collect();
    Ok(page(
        &state,
        Some(&auth),
        StatusCode::OK,
        "Hàng đợi nội dung",
        "queue",
        json!({"items": views}),
    ))
}

fn areas_text(state: &WebState, codes: &[String]) -> String {
    if codes.is_empty() {
        return "Toàn huyện".to_string();
    }
    codes
        .iter()
        .map(|c| {
            state
                .config
                .areas
                .get(c)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| c.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The form's fields, as posted (`areas` and `channels` repeat).
fn content_input(pairs: &[(String, String)]) -> (ContentInput, String) {
    let mut input = ContentInput::default();
    let mut csrf = String::new();
    for (k, v) in pairs {
        match k.as_str() {
            "_csrf" => csrf = v.clone(),
            "title" => input.title = v.clone(),
            "template" => input.template = Some(v.clone()).filter(|v| !v.is_empty()),
            "telegram_text" => input.telegram_text = Some(v.clone()),
            "sms_text" => input.sms_text = Some(v.clone()),
            "areas" => input.areas.push(v.clone()),
            "tags" => input.tags.push(v.clone()),
            "channels" => input.channels.push(v.clone()),
            "observance" => input.observance = Some(v.clone()).filter(|v| !v.is_empty()),
            "send_at" => input.send_at = v.clone(),
            _ => {}
        }
    }
    (input, csrf)
}

fn input_of(state: &WebState, c: &Content) -> ContentInput {
    ContentInput {
        title: c.title.clone(),
        template: c.template.clone(),
        telegram_text: c.telegram_text.clone(),
        sms_text: c.sms_text.clone(),
        areas: c.areas.clone(),
        tags: c.tags.clone(),
        channels: c.channels.iter().map(|k| k.as_str().to_string()).collect(),
        observance: c.observance.clone(),
        send_at: c
            .send_at
            .with_timezone(&state.config.campaign.time_zone)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
    }
}

fn preview_view(preview: &Preview) -> Value {
    json!({
        "recipients": number_vi(preview.recipients.max(0) as u64),
        "channels": preview.channels.iter().map(|c| {
            // Telegram: its few tags through the allow-list, everything else as text. SMS: text.
            let html = match (&c.rich, &c.text) {
                (Some(rich), _) => Some(telegram_html::rich_to_html(rich)),
                (None, Some(text)) => Some(handlebars::html_escape(text)),
                (None, None) => None,
            };
            let size_text = match (c.sms_segments, &c.sms_encoding) {
                (Some(parts), Some(enc)) => format!(
                    "{} ký tự · {parts} tin nhắn ({enc}) · chi phí ước tính {} đồng",
                    c.characters, number_vi(c.cost_vnd.unwrap_or(0.0).round() as u64)
                ),
                _ => format!("{} ký tự", c.characters),
            };
            json!({
                "channel": c.channel, "channel_label": channel_label(c.channel),
                "recipients": number_vi(c.recipients.max(0) as u64),
                "error": c.error, "html": html, "size_text": size_text,
            })
        }).collect::<Vec<_>>(),
    })
}

async fn content_page(
    state: &WebState,
    auth: &Auth,
    content: Option<&Content>,
    input: &ContentInput,
    status: StatusCode,
    error: Option<String>,
    notice: Option<&str>,
) -> PageResult {
    let console = state.console();
    let preview = match console.preview(&auth.actor, input).await {
        Ok(p) => Some(preview_view(&p)),
        Err(ConsoleError::Invalid { .. }) | Err(ConsoleError::Forbidden(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let mut template_names: Vec<&str> = state.templates.names().map(|(n, _)| n).collect();
    template_names.dedup();
    let scope = auth.actor.scope(&state.config.areas);
    let editable = content.is_none_or(|c| c.state.is_open())
        && Permission::EditContent.allows(auth.actor.role);
    let is_author = content.is_some_and(|c| c.author == auth.actor.id);
    // The author and everyone who edited it since the last approval may not approve it.
    let wrote_it = match content {
        Some(c) => console.writers(c).await?.contains(&auth.actor.id),
        None => false,
    };
    let channels = |k: &str| {
        input.channels.iter().any(|c| c == k) || (content.is_none() && input.channels.is_empty())
    };
    let data = json!({
        "id": content.map(|c| c.id),
        "state": content.map(|c| c.state),
        "state_text": content.map(|c| c.state.label()),
        "author": content.map(|c| c.author.trim_start_matches("user:").to_string()),
        "approver": content.and_then(|c| c.approver.as_deref()).map(|a| a.trim_start_matches("user:").to_string()),
        "csrf": auth.csrf(),
        "error": error,
        "notice": notice,
        "editable": editable,
        "approved_warning": content.is_some_and(|c| matches!(c.state, ContentState::AwaitingApproval | ContentState::Approved)),
        "can_submit": content.is_some_and(|c| c.state == ContentState::Draft) && Permission::EditContent.allows(auth.actor.role),
        "can_approve": content.is_some_and(|c| c.state == ContentState::AwaitingApproval) && !wrote_it && Permission::Approve.allows(auth.actor.role),
        "wrote_it": wrote_it && content.is_some_and(|c| c.state == ContentState::AwaitingApproval) && Permission::Approve.allows(auth.actor.role),
        "version": content.map(|c| c.version),
        "can_cancel": content.is_some_and(|c| c.state.is_open()) && (is_author || Permission::Approve.allows(auth.actor.role)),
        "title_value": input.title,
        "telegram_value": input.telegram_text,
        "sms_value": input.sms_text,
        "tags_value": input.tags.join(", "),
        "send_at_value": input.send_at,
        "ch_telegram": channels("telegram"),
        "ch_sms": channels("sms"),
        "own_area": auth.actor.area.as_deref().and_then(|c| state.config.areas.get(c)).map(|a| a.name.clone()),
        "templates": template_names.iter().map(|n| json!({"name": n, "selected": input.template.as_deref() == Some(*n)})).collect::<Vec<_>>(),
        "areas": state.config.areas.tree_order().into_iter()
            .filter(|(_, a)| scope.as_ref().is_none_or(|s| s.contains(&a.code)))
            .map(|(depth, a)| json!({"code": a.code, "name": format!("{}{}", "— ".repeat(depth), a.name), "selected": input.areas.contains(&a.code)}))
            .collect::<Vec<_>>(),
        "observances": state.calendar.observances().iter().map(|o| json!({"id": o.id, "name": o.name, "selected": input.observance.as_deref() == Some(o.id.as_str())})).collect::<Vec<_>>(),
        "preview": preview,
        "placeholders": Placeholder::ALL.iter().map(|p| json!({"token": p.token(), "label": p.label()})).collect::<Vec<_>>(),
    });
    let title = content
        .map(|c| c.title.clone())
        .unwrap_or_else(|| "Soạn nội dung mới".to_string());
    Ok(page(state, Some(auth), status, &title, "content", data))
}

async fn new_content(State(state): State<WebState>, PageAuth(auth): PageAuth) -> PageResult {
    auth.actor.require(Permission::EditContent)?;
    let tomorrow = state
        .clock
        .now()
        .with_timezone(&state.config.campaign.time_zone)
        .date_naive()
        + chrono::Duration::days(1);
    let input = ContentInput {
        send_at: format!("{tomorrow}T08:00"),
        channels: vec!["telegram".to_string(), "sms".to_string()],
        ..ContentInput::default()
    };
    content_page(&state, &auth, None, &input, StatusCode::OK, None, None).await
}

async fn create_content(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let (input, csrf) = content_input(&pairs);
    auth.check_csrf(Some(&csrf))?;
    match state.console().create_content(&auth.actor, &input).await {
        Ok(c) => Ok(Redirect::to(&format!("/queue/{}?saved=1", c.id)).into_response()),
        Err(ConsoleError::Invalid { message, .. }) => {
            content_page(
                &state,
                &auth,
                None,
                &input,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

fn parse_id(id: &str) -> Result<i64, PageError> {
    id.parse().map_err(|_| PageError(ConsoleError::NotFound))
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

async fn show_content(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(id): Path<String>,
    Query(q): Query<SavedQuery>,
) -> PageResult {
    let content = state.console().content(&auth.actor, parse_id(&id)?).await?;
    let input = input_of(&state, &content);
    let notice = q.saved.map(|_| "Đã lưu.");
    content_page(
        &state,
        &auth,
        Some(&content),
        &input,
        StatusCode::OK,
        None,
        notice,
    )
    .await
}

async fn update_content(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let id = parse_id(&id)?;
    let (input, csrf) = content_input(&pairs);
    auth.check_csrf(Some(&csrf))?;
    let console = state.console();
    match console.update_content(&auth.actor, id, &input).await {
        Ok(c) => Ok(Redirect::to(&format!("/queue/{}?saved=1", c.id)).into_response()),
        Err(ConsoleError::Invalid { message, .. }) => {
            content_again(
                &state,
                &auth,
                id,
                Some(input),
                StatusCode::UNPROCESSABLE_ENTITY,
                message,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The content's page again with what went wrong above the form, and the form as posted
/// (`input`) or as stored.
async fn content_again(
    state: &WebState,
    auth: &Auth,
    id: i64,
    input: Option<ContentInput>,
    status: StatusCode,
    message: String,
) -> PageResult {
    let content = state.console().content(&auth.actor, id).await?;
    let input = input.unwrap_or_else(|| input_of(state, &content));
    content_page(
        state,
        auth,
        Some(&content),
        &input,
        status,
        Some(message),
        None,
    )
    .await
}

/// A button of the content page: the CSRF token and the version the page showed.
#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    _csrf: String,
    version: Option<i64>,
}

async fn content_action(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let id = parse_id(&id)?;
    auth.check_csrf(Some(&form._csrf))?;
    let step = Transition::parse(&action).ok_or(PageError(ConsoleError::NotFound))?;
    let result = state
        .console()
        .apply(&auth.actor, id, step, form.version)
        .await;
    match result {
        Ok(c) => Ok(Redirect::to(&format!("/queue/{}", c.id)).into_response()),
        Err(ConsoleError::Conflict(message)) => {
            content_again(&state, &auth, id, None, StatusCode::CONFLICT, message).await
        }
        Err(e) => Err(e.into()),
    }
}

// ---- offline activities ----

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

async fn activities_page(State(state): State<WebState>, PageAuth(auth): PageAuth) -> PageResult {
    activities_view(&state, &auth, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
struct ActivityForm {
    #[serde(default)]
    _csrf: String,
    #[serde(flatten)]
    input: ActivityInput,
}

async fn add_activity(
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

// ---- audit log ----

#[derive(Deserialize)]
struct OffsetQuery {
    offset: Option<i64>,
}

async fn audit_page(
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
                "repeats_text": (e.repeats > 1).then(|| format!("× {} lần, lần cuối {}", e.repeats, e.last_at.map(|t| local(&state, t)).unwrap_or_default())),
            })).collect::<Vec<_>>(),
            "newer": (offset > 0).then(|| (offset - PAGE).max(0).to_string()),
            "older": (entries.len() as i64 == PAGE).then(|| (offset + PAGE).to_string()),
        }),
    ))
}

// ---- exports ----

/// A CSV file for Excel as the answer (see [`crate::export`]).
fn csv_response<'a>(
    filename: &str,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<Cell<'a>>>,
) -> PageResult {
    let bytes = excel_csv(header, rows).map_err(|e| ConsoleError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn export_reach(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    let d = state.console().dashboard(&auth.actor, &q).await?;
    let rows = std::iter::once(&d.total).chain(d.communes.iter()).map(|l| {
        vec![
            Cell::plain(l.code.as_str()),
            Cell::text(l.name.as_str()),
            Cell::number(l.population),
            Cell::number(l.reached),
            Cell::number(l.split.telegram_only),
            Cell::number(l.split.sms_only),
            Cell::number(l.split.both),
            Cell::plain(l.percent.map(|p| format!("{p:.2}")).unwrap_or_default()),
            Cell::plain(status_text(l.status)),
            Cell::number(l.engaged),
            Cell::number(l.offline_estimate),
        ]
    });
    csv_response(
        &format!("loa-tiep-can-{}-{}.csv", d.from, d.to),
        &[
            "Mã địa bàn",
            "Địa bàn",
            "Dân số",
            "Đã tiếp cận",
            "Chỉ Telegram",
            "Chỉ SMS",
            "Cả hai kênh",
            "Tỷ lệ (%)",
            "Đánh giá",
            "Tương tác",
            "Hoạt động trực tiếp (ước tính, không cộng)",
        ],
        rows,
    )
}

/// A phone number or chat id with most of it hidden: enough to recognise, not to misuse. A
/// chat id keeps only its last digits (and never its sign, which a spreadsheet would read as
/// the start of a formula).
fn mask(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    let tail = |n: usize| -> String { chars[chars.len().saturating_sub(n)..].iter().collect() };
    if address.starts_with('+') && chars.len() > 7 {
        let head: String = chars[..5].iter().collect();
        format!("{head}…{}", tail(3))
    } else {
        format!("…{}", tail(3))
    }
}

/// The delivery log: it names persons and their (masked) contacts, so taking it is audited.
async fn export_deliveries(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    auth.actor.require(Permission::ExportDeliveries)?;
    let console = state.console();
    let (_, _, from, to) = console.resolve_period(&q)?;
    let tz = state.config.campaign.time_zone;
    let lines = crate::dispatch::delivery_log(
        &state.db,
        crate::calendar::local_midnight(from, tz),
        crate::calendar::local_midnight(to + chrono::Duration::days(1), tz),
    )
    .await
    .map_err(ConsoleError::from)?;
    let scope = auth.actor.scope(&state.config.areas);
    let lines: Vec<_> = lines
        .iter()
        .filter(|l| scope.as_ref().is_none_or(|s| s.contains(&l.area_code)))
        .collect();
    audit::record(
        &state.db.pool,
        state.clock.now(),
        &auth.actor.id,
        "export.deliveries",
        None,
        Some(&format!("{from} – {to}: {} deliveries", lines.len())),
    )
    .await
    .map_err(ConsoleError::from)?;
    let at = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let rows = lines.iter().map(|l| {
        vec![
            Cell::number(l.id),
            Cell::plain(at(Some(l.fire_at))),
            Cell::text(l.schedule_id.as_str()),
            Cell::text(l.observance.as_str()),
            // Residents' own Telegram names and groups' titles: anything can be in them.
            Cell::text(l.person_name.as_str()),
            Cell::text(
                state
                    .config
                    .areas
                    .get(&l.area_code)
                    .map(|a| a.name.clone())
                    .unwrap_or_else(|| l.area_code.clone()),
            ),
            Cell::plain(l.channel.as_str()),
            Cell::plain(mask(&l.address)),
            Cell::plain(l.status.as_str()),
            Cell::number(l.attempts),
            Cell::plain(at(l.sent_at)),
            Cell::plain(at(l.reached_at)),
            Cell::text(l.last_error.clone().unwrap_or_default()),
        ]
    });
    csv_response(
        &format!("loa-nhat-ky-gui-{from}-{to}.csv"),
        &[
            "Mã",
            "Thời điểm gửi theo lịch",
            "Lịch / nội dung",
            "Sự kiện",
            "Người nhận",
            "Địa bàn",
            "Kênh",
            "Địa chỉ",
            "Trạng thái",
            "Số lần gửi",
            "Đã gửi lúc",
            "Đã đến lúc",
            "Lỗi",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_addresses_are_masked() {
        assert_eq!(mask("+84912345678"), "+8491…678");
        assert_eq!(mask("-1001234567890"), "…890");
        assert_eq!(mask("123456789"), "…789");
    }
}
