//! Campaign messages through the Telegram Bot API's `sendMessage`, by Loa's own HTTP call; the
//! residents' bot keeps teloxide for its dialogue ([`TelegramChannel::bot`]).
//!
//! Why not teloxide for campaign sends: on every 5xx it sleeps a fixed, private 10 s before
//! reading the answer, holding one of the dispatcher's send slots, and it folds the HTTP status
//! and the kind of transport failure into errors that cannot tell an outage (which the
//! dispatcher counts to mark the transport down) from a refusal. Here every answer is read
//! at once, bounded, and classified by [`classify`] into the [`SendError`] taxonomy.
//!
//! The request URL carries the bot token (`/bot<TOKEN>/sendMessage`), and reqwest's errors
//! quote the URL: no reqwest error is ever formatted with `{e}`, only described
//! (`describe_http_error`), and everything quoted from an answer goes through the token's
//! [`Secrets`] and `redact`.

mod answer;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use teloxide::Bot;

pub use answer::{FALLBACK_RETRY_AFTER, classify};

use super::http::read_answer;
use super::{Channel, Outbound, Receipt, Secrets, SendError, describe_http_error, mask_address};
use crate::config::TelegramConfig;

/// The button under every campaign message.
pub const READ_BUTTON: &str = "✅ Tôi đã đọc";

/// How long connecting to the Bot API may take before the send counts as unreachable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one `sendMessage`, answer included, may take. Telegram answers in well under a
/// second; a longer wait is an outage, and while it lasts the send holds one of the
/// dispatcher's `dispatch.concurrency` slots. Not shorter: a message Telegram took but
/// answered late is sent again on retry.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum TelegramSetupError {
    #[error("telegram.api_url {0:?} is not a URL")]
    ApiUrl(String),
    /// Not quoted: it is the credential.
    #[error("the Telegram bot token cannot be part of a URL")]
    Token,
}

#[derive(Clone)]
pub struct TelegramChannel {
    /// The dialogue's client (long polling or webhook replies, admin commands).
    bot: Bot,
    client: reqwest::Client,
    /// `{api_url}/bot{token}/sendMessage`: carries the token, so it is never formatted.
    send_url: reqwest::Url,
    /// The API's origin, for `Debug`.
    origin: String,
    /// The token, whole and its secret part: blanked wherever an answer echoes them.
    secrets: Secrets,
    /// Ask for Telegram's paid broadcast (up to 1000 messages/s, charged in Stars).
    paid_broadcast: bool,
}

/// Only the API's origin: teloxide's `Bot` would print the token.
impl std::fmt::Debug for TelegramChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramChannel")
            .field("api", &self.origin)
            .field("paid_broadcast", &self.paid_broadcast)
            .finish_non_exhaustive()
    }
}

fn client(connect: Duration, overall: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(overall)
        .build()
        .expect("a TLS backend is compiled in")
}

impl TelegramChannel {
    pub fn new(config: &TelegramConfig) -> Result<Self, TelegramSetupError> {
        let url = reqwest::Url::parse(&config.api_url)
            .map_err(|_| TelegramSetupError::ApiUrl(config.api_url.clone()))?;
        // As teloxide builds its method URLs, so both clients reach the same place.
        let send_url = url
            .join(&format!("/bot{}/sendMessage", config.token))
            .map_err(|_| TelegramSetupError::Token)?;
        let secret_part = config.token.split_once(':').map(|(_, secret)| secret);
        Ok(TelegramChannel {
            bot: Bot::new(&config.token).set_api_url(url.clone()),
            client: client(DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT),
            send_url,
            origin: url.origin().ascii_serialization(),
            secrets: Secrets::new(
                [Some(config.token.as_str()), secret_part]
                    .into_iter()
                    .flatten(),
            ),
            paid_broadcast: false,
        })
    }

    pub fn with_paid_broadcast(mut self, paid: bool) -> Self {
        self.paid_broadcast = paid;
        self
    }

    /// The same channel with other timeouts for `sendMessage` (tests provoke timeouts in
    /// milliseconds); the dialogue's client keeps teloxide's.
    pub fn with_timeouts(mut self, connect: Duration, overall: Duration) -> Self {
        self.client = client(connect, overall);
        self
    }

    /// The bot's dialogue client.
    pub fn bot(&self) -> &Bot {
        &self.bot
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn name(&self) -> &'static str {
        "telegram"
    }

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError> {
        let chat: i64 = message.address.parse().map_err(|_| {
            SendError::Recipient(format!(
                "{} is not a Telegram chat id",
                mask_address(message.address)
            ))
        })?;
        let mut body = json!({
            "chat_id": chat,
            "text": message.text,
            "parse_mode": "HTML",
        });
        if message.delivery_id > 0 {
            // "I have read it": one tap records an engagement (see `bot`).
            body["reply_markup"] = json!({"inline_keyboard": [[{
                "text": READ_BUTTON,
                "callback_data": format!("read:{}", message.delivery_id),
            }]]});
        }
        if self.paid_broadcast {
            body["allow_paid_broadcast"] = json!(true);
        }
        let response = self
            .client
            .post(self.send_url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let answer = read_answer(response).await;
        if let Some(e) = &answer.broken {
            // The connection dropped mid-answer: whether Telegram took the message is unknown,
            // as after a timeout, and retrying is the same bet.
            return Err(SendError::Unavailable(format!(
                "telegram unreachable: the answer ({status}) broke off: {}",
                self.secrets.hide(&describe_http_error(e))
            )));
        }
        classify(status, &answer.text, message, &self.secrets)
    }
}

impl TelegramChannel {
    /// No answer at all. A request that could not even be built is the configuration's fault;
    /// everything else (refused, reset, timed out, TLS) is the transport failing.
    fn unreachable(&self, error: &reqwest::Error) -> SendError {
        // Not `{error}`: reqwest's message quotes the URL, and the URL carries the token.
        let what = self.secrets.hide(&describe_http_error(error));
        if error.is_builder() {
            SendError::Retryable(format!("telegram request cannot be made: {what}"))
        } else {
            SendError::Unavailable(format!("telegram unreachable: {what}"))
        }
    }
}

#[cfg(test)]
mod tests;
