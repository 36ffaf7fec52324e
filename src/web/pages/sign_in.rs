//! Signing in and out, and changing one's password (the first thing a user with a one-time
//! password may do).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::common::{PageAuth, PageResult};
use crate::console::accounts::{self, MIN_PASSWORD_CHARS};
use crate::console::{ConsoleError, audit};
use crate::web::auth::{Auth, SESSION_COOKIE, constant_time_eq, cookie};
use crate::web::guard::{self, Peer};
use crate::web::state::WebState;
use crate::web::views::{LOGIN_COOKIE, login_page, page, safe_next};

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

pub(super) async fn login_form(Query(q): Query<NextQuery>) -> Response {
    login_page(
        StatusCode::OK,
        q.next.as_deref().unwrap_or("/dashboard"),
        None,
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
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

pub(super) async fn login(
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
            Some(
                "Trang đăng nhập đã mở quá lâu nên hết hiệu lực. Xin nhập lại tên đăng nhập và mật khẩu.",
            ),
        ));
    }
    // What was typed, cut short, without control characters: a pasted novel or a NUL must
    // not go into the log, the throttle or the database.
    let typed: String = form
        .name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect();
    let forwarded = guard::forwarded_for(&headers);
    let client = guard::client_address(peer, forwarded.as_deref(), &state.config.trusted_proxies);
    if let Err(wait) = state.throttle.attempt(&typed, client, now) {
        let minutes = (wait.num_seconds() + 59) / 60;
        let mut page = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &form.next,
            Some(&format!(
                "Tài khoản này hoặc máy này đã nhập sai mật khẩu quá nhiều lần. Để bảo đảm an toàn, xin thử lại sau {minutes} phút."
            )),
        );
        let (name, value) = guard::retry_after(wait);
        page.headers_mut().insert(
            name,
            header::HeaderValue::from_str(&value).expect("digits are a header value"),
        );
        return Ok(page);
    }
    // A name with control characters is no account's: refused like a wrong password.
    let checked = if typed.chars().count() == form.name.trim().chars().count() {
        accounts::sign_in(&state.db, &typed, &form.password, now).await?
    } else {
        None
    };
    let Some(session) = checked else {
        let from = client.map(|ip| format!("từ địa chỉ {ip}"));
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
    state.throttle.succeeded(&typed, client, now);
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
pub(super) struct CsrfForm {
    #[serde(default)]
    _csrf: String,
}

pub(super) async fn logout(
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

pub(super) async fn password_form(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
) -> PageResult {
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
pub(super) struct PasswordForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

pub(super) async fn change_password(
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
