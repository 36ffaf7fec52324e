//! The HTTP side of `loa run`: `/healthz`, `/metrics`, the SMS gateways' callbacks
//! (`/webhooks/sms/dlr` delivery reports, `/webhooks/sms/mo` messages from residents), the
//! Telegram webhook, Zalo's events (`zalo`: ZNS receipts), and the staff console: its pages (`pages`) and JSON API ([`api`]), both
//! behind `auth`. The gateways' handlers are in `callbacks`.
//!
//! This file only puts the groups of routes together. Imports run one way, down from here:
//! the groups (`api`, `pages`, `callbacks`) → `error` (a console error as an answer) →
//! `views` (how pages look) → `auth` (who is calling) → `state` ([`WebState`]) → `guard`.

pub mod api;
mod auth;
mod callbacks;
mod error;
pub mod guard;
mod pages;
mod paging;
mod state;
mod views;
mod zalo;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use callbacks::{healthz, metrics_text, sms_inbound, sms_report, telegram_update};
pub use state::WebState;

/// Every route, each group with its own limits on body size and time, behind the cap on
/// requests in flight, every answer with the security headers.
pub fn router(state: WebState) -> Router {
    use guard::RouteLimits;
    let trusted = state.config.trusted_proxies.clone();
    let callbacks = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/webhooks/sms/dlr", get(sms_report).post(sms_report))
        .route("/webhooks/sms/mo", get(sms_inbound).post(sms_inbound))
        .route("/webhooks/zalo", axum::routing::post(zalo::zalo_event));
    let telegram = Router::new().route("/webhooks/telegram", axum::routing::post(telegram_update));
    let console = pages::routes()
        .merge(api::routes())
        .route("/assets/console.js", get(console_js));
    let app = Router::new()
        .merge(RouteLimits::CALLBACKS.apply(callbacks))
        .merge(RouteLimits::TELEGRAM.apply(telegram))
        .merge(RouteLimits::FORMS.apply(console))
        .merge(RouteLimits::EXPORTS.apply(pages::export_routes()))
        .with_state(state)
        .layer(axum::middleware::map_response(guard::security_headers));
    guard::per_client(
        guard::capped(app, guard::MAX_CONCURRENT_REQUESTS),
        trusted,
        guard::MAX_REQUESTS_PER_CLIENT,
    )
}

/// The console's one script (pages allow no inline script).
async fn console_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/console.js"),
    )
}
