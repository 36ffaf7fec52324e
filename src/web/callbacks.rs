//! The gateways' callbacks and the operators' probes: `/healthz`, `/metrics`, the SMS
//! gateways' delivery reports (`/webhooks/sms/dlr`) and residents' messages
//! (`/webhooks/sms/mo`), both behind the shared secret ([`Callback`]), and the Telegram
//! webhook (`/webhooks/telegram`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequest, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::state::WebState;
use crate::channel::ChannelKind;
use crate::channels::zalo::TokenStatus;
use crate::inbound::{self, ReportOutcome, record_delivery_report};

/// A callback's parameters: the query string, plus a form or JSON body.
fn parameters(query: HashMap<String, String>, body: &str) -> HashMap<String, String> {
    let mut all = query;
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            all.insert(k, v);
        }
    } else if let Ok(form) = serde_urlencoded::from_str::<Vec<(String, String)>>(body) {
        all.extend(form);
    }
    all
}

/// The shared secret, from `?secret=` (Kannel cannot set headers) or `X-Loa-Webhook-Secret`.
/// With no secret configured every callback is refused: an open webhook would let anyone
/// mark messages delivered or opt people out.
fn authorised(state: &WebState, params: &HashMap<String, String>, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.config.webhook_secret else {
        tracing::warn!("SMS webhook called but LOA_WEBHOOK_SECRET is not set: refused");
        return false;
    };
    let given = params.get("secret").map(String::as_str).or_else(|| {
        headers
            .get("x-loa-webhook-secret")
            .and_then(|v| v.to_str().ok())
    });
    // Compare in constant time: the secret is the webhook's only protection.
    given.is_some_and(|g| {
        g.len() == expected.len()
            && g.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// A gateway callback's parameters (query string, plus a form or JSON body), once its shared
/// secret has checked out; 401 otherwise.
pub(super) struct Callback(HashMap<String, String>);

impl FromRequest<WebState> for Callback {
    type Rejection = axum::response::Response;

    async fn from_request(
        req: axum::extract::Request,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let query: HashMap<String, String> = req
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let headers = req.headers().clone();
        // Too large (413) or not text (400): the extractor's own answer says which.
        let body = String::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let params = parameters(query, &body);
        if !authorised(state, &params, &headers) {
            return Err((StatusCode::UNAUTHORIZED, "unauthorised").into_response());
        }
        Ok(Callback(params))
    }
}

/// A delivery report: `id` (Loa's delivery id) or `message_id` (the provider's), and `status`
/// as Kannel's DLR type (1 delivered, 2 failed, 4 buffered, 8 submitted, 16 rejected).
pub(super) async fn sms_report(
    State(state): State<WebState>,
    Callback(params): Callback,
) -> (StatusCode, &'static str) {
    let Some(status) = params
        .get("status")
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "status: expected a DLR type (1, 2, 4, 8, 16)",
        );
    };
    let id = match (params.get("id"), params.get("message_id")) {
        (Some(id), _) => id.trim().parse::<i64>().ok(),
        (None, Some(provider_id)) => {
            inbound::delivery_of_provider_message(&state.db, provider_id.trim())
                .await
                .ok()
                .flatten()
        }
        (None, None) => None,
    };
    let Some(id) = id else {
        // Not the parameters themselves: they carry the shared secret.
        tracing::warn!(
            id = params.get("id").map(String::as_str),
            message_id = params.get("message_id").map(String::as_str),
            "delivery report for an unknown message"
        );
        return (StatusCode::NOT_FOUND, "unknown delivery");
    };
    let now = state.clock.now();
    match record_delivery_report(&state.db, &state.config, ChannelKind::Sms, id, status, now).await
    {
        Ok(ReportOutcome::UnknownDelivery) => {
            tracing::warn!(delivery = id, "delivery report for an unknown delivery");
            (StatusCode::NOT_FOUND, "unknown delivery")
        }
        Ok(_) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(delivery = id, "cannot record a delivery report: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

/// A message from a resident: `from` (their number) and `text`.
pub(super) async fn sms_inbound(
    State(state): State<WebState>,
    Callback(params): Callback,
) -> (StatusCode, &'static str) {
    let (Some(from), Some(text)) = (params.get("from"), params.get("text")) else {
        return (StatusCode::BAD_REQUEST, "from and text are required");
    };
    match state.inbound.handle(from, text, state.clock.now()).await {
        Ok(outcome) => {
            tracing::info!(?outcome, "inbound SMS");
            (StatusCode::OK, "ok")
        }
        // A sender that is no Vietnamese mobile is refused for good; anything else (the
        // database away) asks the gateway to try again, so no resident's text is lost.
        Err(e) if crate::audience::phone::MobileNumber::parse(from).is_err() => {
            tracing::warn!("inbound SMS not handled: {e:#}");
            (StatusCode::BAD_REQUEST, "not handled")
        }
        Err(e) => {
            tracing::error!("inbound SMS not handled, the gateway will retry: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

/// 200 when the database answers, 503 when it does not, with the transport behind each
/// channel: what a load balancer or an operator's `curl` needs to know.
pub(super) async fn healthz(
    State(state): State<WebState>,
) -> (StatusCode, Json<serde_json::Value>) {
    let channels: serde_json::Map<String, serde_json::Value> = state
        .channels
        .iter()
        .map(|(kind, transport)| (kind.clone(), json!(transport)))
        .collect();
    let Ok(outages) = crate::dispatch::current_outages(&state.db).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "database": "unreachable", "channels": channels})),
        );
    };
    // A channel that is down is the gateway's fault, not this process's: still 200, so a
    // supervisor does not restart a healthy Loa, with `degraded` and what is down since when.
    let down: serde_json::Map<String, serde_json::Value> = outages
        .iter()
        .map(|o| {
            (
                o.channel.clone(),
                json!({
                    // Not the gateway's error text: /healthz answers anyone (`loa doctor`
                    // and the admins' notice say why).
                    "since": o.since.to_rfc3339(),
                    "next_probe": o.next_probe.to_rfc3339(),
                    "probes": o.probes,
                }),
            )
        })
        .collect();
    let mut status = if down.is_empty() { "ok" } else { "degraded" };
    let mut answer = json!({"database": "ok", "channels": channels, "down": down});
    if state.config.zalo.is_some() {
        let zalo = zalo_health(&state).await;
        if zalo["token"] == "refused" {
            status = "degraded";
        }
        answer["zalo"] = zalo;
    }
    answer["status"] = json!(status);
    (StatusCode::OK, Json(answer))
}

/// The Zalo OA's token and daily quota, as the last refresh and send left them.
async fn zalo_health(state: &WebState) -> serde_json::Value {
    match TokenStatus::read(&state.db).await {
        Ok(None) => json!({"token": "none yet"}),
        Ok(Some(t)) => {
            let token = match (&t.failure, t.access_left_ms) {
                (Some(_), _) => "refused",
                (None, Some(left)) if left > 0 => "valid",
                (None, Some(_)) => "expired",
                (None, None) => "none yet",
            };
            json!({
                "token": token,
                // Loa's own words (the refresh token blanked): what the operator must do.
                "problem": t.failure,
                "token_expires_in_s": t.access_left_ms.map(|ms| ms / 1000),
                "quota_remaining": t.quota_remaining,
                "quota_daily": t.quota_daily,
            })
        }
        Err(_) => json!({"token": "unknown"}),
    }
}

/// Prometheus text: deliveries waiting and in flight (read from the database through its
/// status index), then the send path's counters and latency histogram.
pub(super) async fn metrics_text(State(state): State<WebState>) -> impl IntoResponse {
    let mut out = String::from(
        "# HELP loa_deliveries Deliveries waiting or in flight, by channel and status.\n# TYPE loa_deliveries gauge\n",
    );
    match crate::delivery::waiting(&state.db).await {
        Ok(rows) => {
            for (channel, status, n) in rows {
                out.push_str(&format!(
                    "loa_deliveries{{channel=\"{channel}\",status=\"{status}\"}} {n}\n"
                ));
            }
        }
        Err(e) => tracing::warn!("metrics: cannot count deliveries: {e}"),
    }
    match crate::dispatch::current_outages(&state.db).await {
        Ok(outages) => {
            out.push_str(
                "# HELP loa_channel_down Whether the channel's transport is marked down (1) or not (0).\n# TYPE loa_channel_down gauge\n",
            );
            for (kind, _) in state.channels.iter() {
                let down = outages.iter().any(|o| &o.channel == kind);
                out.push_str(&format!(
                    "loa_channel_down{{channel=\"{kind}\"}} {}\n",
                    u8::from(down)
                ));
            }
            out.push_str(
                "# HELP loa_channel_down_since_seconds When a channel that is down went down (Unix time, Loa's clock).\n# TYPE loa_channel_down_since_seconds gauge\n",
            );
            for o in &outages {
                out.push_str(&format!(
                    "loa_channel_down_since_seconds{{channel=\"{}\"}} {}\n",
                    o.channel,
                    o.since.timestamp()
                ));
            }
        }
        Err(e) => tracing::warn!("metrics: cannot read channel outages: {e}"),
    }
    if state.config.zalo.is_some()
        && let Ok(Some(t)) = TokenStatus::read(&state.db).await
    {
        let valid = t.failure.is_none() && t.access_left_ms.is_some_and(|ms| ms > 0);
        out.push_str(&format!(
            "# HELP loa_zalo_token_valid Whether the Zalo OA's access token is valid (1) or not (0).\n# TYPE loa_zalo_token_valid gauge\nloa_zalo_token_valid {}\n",
            u8::from(valid)
        ));
        if let Some(remaining) = t.quota_remaining {
            out.push_str(&format!(
                "# HELP loa_zalo_quota_remaining ZNS messages left in the OA's daily quota, as the last send saw it.\n# TYPE loa_zalo_quota_remaining gauge\nloa_zalo_quota_remaining {remaining}\n"
            ));
        }
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

/// An update from Telegram in webhook mode: handled by the same schema as long polling.
/// Without the right `X-Telegram-Bot-Api-Secret-Token`: 401, and the update is ignored.
pub(super) async fn telegram_update(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, &'static str) {
    let Some(webhook) = &state.telegram else {
        return (StatusCode::NOT_FOUND, "webhook mode is off");
    };
    let secret = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok());
    if !webhook.authorised(secret) {
        tracing::warn!("telegram webhook call without the right secret token: ignored");
        return (StatusCode::UNAUTHORIZED, "unauthorised");
    }
    match serde_json::from_str::<teloxide::types::Update>(&body) {
        Ok(update) => {
            webhook.handle(update).await;
            (StatusCode::OK, "ok")
        }
        Err(e) => {
            // 200 all the same: Telegram would resend an update we can never read.
            tracing::warn!("unreadable telegram update: {e}");
            (StatusCode::OK, "ignored")
        }
    }
}
