//! The console's pages: Vietnamese, rendered on the server with handlebars (`views/`, built
//! into the binary), one inline stylesheet, charts as inline SVG — nothing fetched from
//! elsewhere, so they work on an office network without internet. Forms post back here with
//! the session's CSRF token; the content form's live preview calls `/api/preview`.
//!
//! One file per page: [`sign_in`] (sign-in, sign-out, password), [`dashboard`](mod@dashboard)
//! (and the printable report), [`calendar`](mod@calendar), [`content`] (the queue and a
//! content's page), [`activities`], [`audit`], [`inbox`] (residents' texts), [`exports`] (CSV),
//! [`imports`] (residents' lists), [`posters`] (each commune's poster, subscriptions by how
//! they came); [`common`] holds what they
//! share, the `PageAuth` extractor first. This file only puts their routes together.

mod activities;
mod audit;
mod calendar;
mod common;
mod content;
mod dashboard;
mod exports;
mod holds;
mod imports;
mod inbox;
mod posters;
mod sign_in;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

use activities::{activities_page, add_activity};
use audit::audit_page;
use calendar::calendar;
use content::{content_action, create_content, new_content, queue, show_content, update_content};
use dashboard::{dashboard, report};
use exports::{export_deliveries, export_reach};
use inbox::{answer_item, inbox_page, set_item_state, show_item};
use posters::{poster, posters_page};
use sign_in::{change_password, login, login_form, logout, password_form};

use crate::web::state::WebState;

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
        .route("/holds/{id}", post(holds::decide_hold))
        .route("/activities", get(activities_page).post(add_activity))
        .route("/audit", get(audit_page))
        .route("/inbox", get(inbox_page))
        .route("/inbox/{id}", get(show_item))
        .route("/inbox/{id}/answer", post(answer_item))
        .route("/inbox/{id}/state", post(set_item_state))
        .route("/posters", get(posters_page))
        .route("/posters/{area}", get(poster))
}

/// The exports and the import of lists: long answers and large uploads, given more time and
/// room than the pages.
pub(super) fn export_routes() -> Router<WebState> {
    Router::new()
        .route("/exports/reach.csv", get(export_reach))
        .route("/exports/deliveries.csv", get(export_deliveries))
        .route("/import", get(imports::import_form).post(imports::upload))
        .route("/import/confirm", post(imports::confirm))
        .route("/import/{token}/rejected.csv", get(imports::rejected_csv))
}
