//! The HTTP side of `loa run`: today `/healthz`; staff pages, the dashboard and the gateways'
//! callbacks mount here as they arrive.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::store::Db;

#[derive(Clone)]
struct WebState {
    db: Db,
}

pub fn router(db: Db) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(WebState { db })
}

/// 200 when the database answers, 503 when it does not: what a load balancer or an operator's
/// `curl` needs to know.
async fn healthz(State(state): State<WebState>) -> (StatusCode, Json<serde_json::Value>) {
    if state.db.ping().await {
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok"})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "database": "unreachable"})),
        )
    }
}
