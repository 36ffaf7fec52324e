//! The one place a [`ConsoleError`] becomes an HTTP answer: its status ([`status_of`]), the
//! JSON API's body ([`ApiError`]) and the pages' ([`PageError`]), whose 401 is the sign-in form.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::views::{login_page, render};
use crate::console::ConsoleError;

/// A console error as JSON: `{"error": "invalid", "message": …, "field": …}`; or a request
/// that is not even well-formed (400).
#[derive(Debug)]
pub(super) enum ApiError {
    Console(ConsoleError),
    BadRequest(String),
    /// A query parameter out of its form or range: 400 naming it.
    BadQuery {
        field: &'static str,
        message: String,
    },
    /// The body is larger than the route's limit.
    TooLarge,
}

impl From<ConsoleError> for ApiError {
    fn from(e: ConsoleError) -> Self {
        ApiError::Console(e)
    }
}

fn status_of(e: &ConsoleError) -> (StatusCode, &'static str) {
    match e {
        ConsoleError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        ConsoleError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        ConsoleError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ConsoleError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        ConsoleError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        ConsoleError::Busy(_) => (StatusCode::TOO_MANY_REQUESTS, "busy"),
        ConsoleError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = match self {
            ApiError::BadRequest(message) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "bad_request", "message": message, "field": null})),
                )
                    .into_response();
            }
            ApiError::BadQuery { field, message } => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "bad_request", "message": format!("{field}: {message}"), "field": field})),
                )
                    .into_response();
            }
            ApiError::TooLarge => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Json(json!({"error": "too_large", "message": "request body too large", "field": null})),
                )
                    .into_response();
            }
            ApiError::Console(e) => e,
        };
        let (status, code) = status_of(&e);
        let (message, field) = match &e {
            ConsoleError::Invalid { field, message } => (message.clone(), Some(field.clone())),
            ConsoleError::Internal(e) => {
                tracing::error!("console API: {e:#}");
                ("internal error; see the server log".to_string(), None)
            }
            other => (other.to_string(), None),
        };
        let mut response = (
            status,
            Json(json!({"error": code, "message": message, "field": field})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A console error as a page.
pub(super) struct PageError(pub(super) ConsoleError);

impl From<ConsoleError> for PageError {
    fn from(e: ConsoleError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, _) = status_of(&self.0);
        let (heading, message) = match &self.0 {
            ConsoleError::Unauthorized => return login_page(status, "/dashboard", None),
            ConsoleError::Forbidden(_) => (
                "Không có quyền",
                "Tài khoản của bạn không được phép thực hiện thao tác này.".to_string(),
            ),
            ConsoleError::NotFound => (
                "Không tìm thấy",
                "Không có trang hoặc nội dung này.".to_string(),
            ),
            ConsoleError::Invalid { message, .. } => ("Thông tin chưa hợp lệ", message.clone()),
            ConsoleError::Conflict(message) => ("Không thực hiện được", message.clone()),
            ConsoleError::Busy(message) => ("Hệ thống đang bận", message.clone()),
            ConsoleError::Internal(e) => {
                tracing::error!("console page: {e:#}");
                (
                    "Lỗi hệ thống",
                    "Đã có lỗi; xin thử lại sau hoặc báo quản trị viên.".to_string(),
                )
            }
        };
        let body = render("error", &json!({"heading": heading, "message": message}));
        let layout = json!({"title": heading, "campaign": "", "body": body});
        (status, Html(render("layout", &layout))).into_response()
    }
}
