//! The channel against servers that misbehave as a network does: every failure classified, none
//! quoting the token that travels in the request path.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::*;
use crate::channel::ChannelKind;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA";
const SECRET_PART: &str = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA";

fn config(api_url: String) -> TelegramConfig {
    TelegramConfig {
        token: TOKEN.into(),
        api_url,
        admins: vec![],
        webhook_secret: None,
        paid_broadcast: false,
    }
}

fn channel(api_url: String) -> TelegramChannel {
    TelegramChannel::new(&config(api_url))
        .unwrap()
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(300))
}

const MESSAGE: Outbound<'static> = Outbound {
    delivery_id: 9,
    kind: ChannelKind::Telegram,
    address: "987654321",
    text: "Chúc mừng ngày 8/3",
};

/// Every way the error can be shown (stored, logged, debugged) is free of the token.
fn assert_no_token(error: &SendError) {
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ] {
        assert!(!shown.contains(SECRET_PART), "{shown}");
        assert!(!shown.contains("123456789:"), "{shown}");
    }
}

/// Serves `app` on a loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A server answering every call with `status` and a page quoting the request's path, the bot
/// token in it, as misconfigured proxies do.
async fn echoing(status: StatusCode) -> String {
    serve(Router::new().route(
        "/{bot}/{method}",
        post(
            move |Path((bot, method)): Path<(String, String)>| async move {
                (
                    status,
                    format!("<html>{status}: no route for /{bot}/{method}</html>"),
                )
                    .into_response()
            },
        ),
    ))
    .await
}

#[tokio::test]
async fn pages_echoing_the_path_are_classified_without_the_token() {
    for (status, expected) in [
        (StatusCode::BAD_GATEWAY, "unavailable"),
        (StatusCode::INTERNAL_SERVER_ERROR, "unavailable"),
        (StatusCode::NOT_FOUND, "retryable"),
        (StatusCode::OK, "retryable"),
    ] {
        let url = echoing(status).await;
        let error = channel(url).send(&MESSAGE).await.unwrap_err();
        let kind = match &error {
            SendError::Unavailable(_) => "unavailable",
            SendError::Retryable(_) => "retryable",
            _ => "other",
        };
        assert_eq!(kind, expected, "{status}: {error}");
        // The page is still quoted, so an operator sees what answered.
        assert!(error.to_string().contains("no route for"), "{error}");
        assert_no_token(&error);
    }
}

#[tokio::test]
async fn a_closed_port_is_unavailable_without_the_token() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = channel(url).send(&MESSAGE).await.unwrap_err();
    assert!(
        matches!(&error, SendError::Unavailable(r) if r.contains("cannot connect")),
        "{error:?}"
    );
    assert_no_token(&error);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_the_channel_s_timeout() {
    let hanging =
        serve(Router::new().route("/{bot}/{method}", post(std::future::pending::<Response>))).await;
    let started = Instant::now();
    let error = channel(hanging).send(&MESSAGE).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&error, SendError::Unavailable(r) if r.contains("timed out")),
        "{error:?}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_no_token(&error);
}

#[tokio::test]
async fn a_connection_reset_before_the_answer_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            // Read the request's head, then hang up with a reset: no HTTP answer at all.
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    let error = channel(url).send(&MESSAGE).await.unwrap_err();
    assert!(matches!(&error, SendError::Unavailable(_)), "{error:?}");
    assert_no_token(&error);
}

#[tokio::test]
async fn the_request_carries_the_message_the_button_and_paid_broadcast() {
    let seen: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let url = serve(Router::new().route(
        "/{bot}/{method}",
        post(
            move |Path((bot, method)): Path<(String, String)>, body: String| async move {
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                record
                    .lock()
                    .unwrap()
                    .push((format!("/{bot}/{method}"), body));
                axum::Json(serde_json::json!({"ok": true, "result": {"message_id": 77}}))
            },
        ),
    ))
    .await;
    let receipt = channel(url.clone())
        .with_paid_broadcast(true)
        .send(&MESSAGE)
        .await
        .unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("77"));
    let plain = Outbound {
        delivery_id: 0,
        ..MESSAGE
    };
    channel(url).send(&plain).await.unwrap();
    let seen = seen.lock().unwrap();
    let (path, first) = &seen[0];
    assert_eq!(path, &format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(first["chat_id"], 987654321);
    assert_eq!(first["text"], MESSAGE.text);
    assert_eq!(first["parse_mode"], "HTML");
    assert_eq!(first["allow_paid_broadcast"], true);
    assert_eq!(
        first["reply_markup"]["inline_keyboard"][0][0],
        serde_json::json!({"text": READ_BUTTON, "callback_data": "read:9"})
    );
    // No delivery behind it (an outbox message): no button, and no paid broadcast unasked.
    let (_, second) = &seen[1];
    assert!(second.get("reply_markup").is_none(), "{second}");
    assert!(second.get("allow_paid_broadcast").is_none(), "{second}");
}

#[test]
fn debug_shows_the_origin_not_the_token() {
    let channel = channel("https://api.telegram.org".into());
    let shown = format!("{channel:?}");
    assert!(shown.contains("https://api.telegram.org"), "{shown}");
    assert!(!shown.contains(SECRET_PART), "{shown}");
}
