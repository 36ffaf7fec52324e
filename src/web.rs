//! The HTTP side of `loa run`: `/healthz` and `/metrics` today; staff pages, the dashboard and
//! the gateways' callbacks mount here as they arrive.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::Row;

use crate::metrics::Metrics;
use crate::store::Db;

#[derive(Clone)]
struct WebState {
    db: Db,
    metrics: Arc<Metrics>,
    /// (channel, transport) pairs, e.g. ("telegram", "log").
    channels: Arc<Vec<(String, String)>>,
}

pub fn router(db: Db, metrics: Arc<Metrics>, channels: Vec<(String, String)>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(WebState {
            db,
            metrics,
            channels: Arc::new(channels),
        })
}

/// 200 when the database answers, 503 when it does not, with the transport behind each
/// channel: what a load balancer or an operator's `curl` needs to know.
async fn healthz(State(state): State<WebState>) -> (StatusCode, Json<serde_json::Value>) {
    let channels: serde_json::Map<String, serde_json::Value> = state
        .channels
        .iter()
        .map(|(kind, transport)| (kind.clone(), json!(transport)))
        .collect();
    if state.db.ping().await {
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok", "channels": channels})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "database": "unreachable", "channels": channels})),
        )
    }
}

/// Prometheus text: deliveries waiting and in flight (read from the database through its
/// status index), then the send path's counters and latency histogram.
async fn metrics_text(State(state): State<WebState>) -> impl IntoResponse {
    let mut out = String::from(
        "# HELP loa_deliveries Deliveries waiting or in flight, by channel and status.\n# TYPE loa_deliveries gauge\n",
    );
    let rows = sqlx::query(
        "SELECT channel, status, COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')
         GROUP BY channel, status ORDER BY channel, status",
    )
    .fetch_all(&state.db.pool)
    .await;
    match rows {
        Ok(rows) => {
            for row in rows {
                let (channel, status, n): (String, String, i64) = (
                    row.try_get(0).unwrap_or_default(),
                    row.try_get(1).unwrap_or_default(),
                    row.try_get(2).unwrap_or_default(),
                );
                out.push_str(&format!(
                    "loa_deliveries{{channel=\"{channel}\",status=\"{status}\"}} {n}\n"
                ));
            }
        }
        Err(e) => tracing::warn!("metrics: cannot count deliveries: {e}"),
    }
    out.push_str(&state.metrics.encode());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}
