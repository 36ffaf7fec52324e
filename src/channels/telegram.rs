//! Sending through the Telegram Bot API with teloxide.
//!
//! teloxide reads the JSON body whatever the HTTP status, so classification works on its
//! typed errors: `RetryAfter` carries the server's `retry_after`; `ApiError` names the
//! permanent refusals.

use std::time::Duration;

use async_trait::async_trait;
use teloxide::payloads::SendMessageSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, ParseMode};

/// The button under every campaign message.
pub const READ_BUTTON: &str = "✅ Tôi đã đọc";
use teloxide::{ApiError, Bot, RequestError};

use super::{Channel, Outbound, Receipt, SendError, describe_http_error, mask_address, redact};
use crate::config::TelegramConfig;

#[derive(Debug, thiserror::Error)]
pub enum TelegramSetupError {
    #[error("telegram.api_url {0:?} is not a URL")]
    ApiUrl(String),
}

#[derive(Clone)]
pub struct TelegramChannel {
    bot: Bot,
    /// Ask for Telegram's paid broadcast (up to 1000 messages/s, charged in Stars).
    paid_broadcast: bool,
}

impl TelegramChannel {
    pub fn new(config: &TelegramConfig) -> Result<Self, TelegramSetupError> {
        let url = reqwest::Url::parse(&config.api_url)
            .map_err(|_| TelegramSetupError::ApiUrl(config.api_url.clone()))?;
        Ok(TelegramChannel {
            bot: Bot::new(&config.token).set_api_url(url),
            paid_broadcast: false,
        })
    }

    pub fn with_paid_broadcast(mut self, paid: bool) -> Self {
        self.paid_broadcast = paid;
        self
    }

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
        let mut request = self
            .bot
            .send_message(ChatId(chat), message.text)
            .parse_mode(ParseMode::Html)
            .allow_paid_broadcast(self.paid_broadcast);
        if message.delivery_id > 0 {
            // "I have read it": one tap records an engagement (see `bot`).
            request = request.reply_markup(InlineKeyboardMarkup::new([[
                InlineKeyboardButton::callback(
                    READ_BUTTON,
                    format!("read:{}", message.delivery_id),
                ),
            ]]));
        }
        let sent = request.await.map_err(classify)?;
        Ok(Receipt {
            provider_message_id: Some(sent.id.0.to_string()),
        })
    }
}

/// What a teloxide error means for the delivery, in words fit for logs and the database: no
/// request URL (it carries the bot token), nothing quoted that could echo one.
pub fn classify(error: RequestError) -> SendError {
    match error {
        RequestError::RetryAfter(seconds) => SendError::RateLimited {
            retry_after: Duration::from_secs(u64::from(seconds.seconds())),
        },
        RequestError::Api(api) => match api {
            ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::ChatNotFound
            | ApiError::UserNotFound
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots
            | ApiError::GroupDeactivated => SendError::Recipient(api.to_string()),
            // A wrong token is the operator's to fix; keep the message until it is.
            ApiError::InvalidToken => SendError::Retryable(api.to_string()),
            ApiError::Unknown(text)
                if text.starts_with("Internal Server Error") || text.starts_with("Bad Gateway") =>
            {
                SendError::Unavailable(redact(&text))
            }
            other => SendError::Message(redact(&other.to_string())),
        },
        RequestError::MigrateToChatId(id) => {
            SendError::Recipient(format!("group moved to chat {id}"))
        }
        RequestError::Network(e) => {
            SendError::Unavailable(format!("network: {}", describe_http_error(&e)))
        }
        RequestError::InvalidJson { source, raw } => {
            // A proxy's error page may echo the request path, `/bot<TOKEN>/…`.
            let head: String = redact(&raw).chars().take(80).collect();
            SendError::Retryable(format!("answer is not Bot API JSON ({source}): {head:?}"))
        }
        RequestError::Io(e) => SendError::Retryable(format!("io: {e}")),
    }
}
