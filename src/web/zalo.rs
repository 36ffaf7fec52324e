//! `POST /webhooks/zalo`: Zalo's events. A ZNS receipt (`user_received_message`) marks its
//! delivery delivered and counts the person reached. An event without Zalo's signature, or
//! with a wrong one, is refused with 401 and changes nothing.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};

use super::state::WebState;
use crate::channel::ChannelKind;
use crate::channels::zalo::receipt::{self, Event};
use crate::inbound::{ReportOutcome, record_delivery_report};

pub(super) async fn zalo_event(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, &'static str) {
    let Some(zalo) = &state.config.zalo else {
        return (StatusCode::NOT_FOUND, "zalo is not configured");
    };
    let signature = headers
        .get("x-zevent-signature")
        .and_then(|v| v.to_str().ok());
    let event = match receipt::verify(&body, signature, &zalo.app_id, &zalo.oa_secret) {
        Ok(event) => event,
        Err(e @ receipt::EventError::Unreadable(_)) => {
            tracing::warn!("zalo webhook: {e}");
            return (StatusCode::BAD_REQUEST, "not an event");
        }
        Err(e) => {
            tracing::warn!("zalo webhook refused: {e}");
            return (StatusCode::UNAUTHORIZED, "unauthorised");
        }
    };
    let received = match event {
        Event::Received(received) => received,
        Event::Other(name) => {
            tracing::debug!(event = %name, "zalo event not acted on");
            return (StatusCode::OK, "ok");
        }
    };
    let Some(id) = received.delivery_id else {
        tracing::warn!(msg_id = ?received.msg_id, "zalo receipt without Loa's tracking id");
        return (StatusCode::OK, "ignored");
    };
    // The tracking id is only Loa's delivery id: where Zalo's message id is known, it must be
    // the one this delivery was sent as (one OA serving two databases, staging and production,
    // would otherwise mark another's delivery 42).
    let known: Result<Option<Option<String>>, sqlx::Error> = sqlx::query_scalar(
        "SELECT provider_message_id FROM deliveries WHERE id = $1 AND channel = 'zalo'",
    )
    .bind(id)
    .fetch_optional(&state.db.pool)
    .await;
    match known {
        Ok(Some(Some(sent_as))) if received.msg_id.as_deref() != Some(sent_as.as_str()) => {
            tracing::warn!(
                delivery = id,
                "zalo receipt whose msg_id is not the delivery's: ignored"
            );
            return (StatusCode::OK, "ignored");
        }
        Err(e) => {
            tracing::error!(
                delivery = id,
                "cannot read a delivery for a zalo receipt: {e}"
            );
            return (StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
        _ => {}
    }
    let at = received
        .at_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .filter(|at| *at <= state.clock.now())
        .unwrap_or_else(|| state.clock.now());
    match record_delivery_report(&state.db, &state.config, ChannelKind::Zalo, id, 1, at).await {
        Ok(ReportOutcome::UnknownDelivery) => {
            // 200 all the same: Zalo would resend a receipt that can never match.
            tracing::warn!(delivery = id, "zalo receipt for an unknown delivery");
            (StatusCode::OK, "unknown delivery")
        }
        Ok(_) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(delivery = id, "cannot record a zalo receipt: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}
