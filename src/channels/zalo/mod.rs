//! Zalo Notification Service (ZNS): approved templates to the Zalo account of a phone number.
//!
//! A delivery's body is a [`ZnsPayload`] (see `channel::zns`); this sends its template id and
//! parameters to `POST {api}/message/template` with the OA's access token, Loa's delivery id as
//! `tracking_id`, and reads Zalo's answer — always HTTP 200 with an `error` code — into the
//! [`SendError`] taxonomy ([`classify`]):
//!
//! * no Zalo account, cannot receive ZNS, refused the OA or this kind of message → `Recipient`
//!   (the contact is deactivated and the same delivery goes by the next channel: SMS);
//! * the OA's daily quota used up → `RateLimited` until the next quota day (midnight in
//!   Vietnam), without spending attempts; later sends wait without asking Zalo;
//! * the template or a parameter refused → `Message` (the delivery fails with Zalo's reason);
//! * the balance used up, the app or OA misconfigured, the refresh token refused → `Account`
//!   (the channel is down at once, the admins told, until an operator acts);
//! * an expired or replaced access token → renewed ([`token`]) and sent once more;
//! * anything else (an unknown code, a 5xx from a gateway in front) → temporary.
//!
//! Receipts come back by the webhook (`web::callbacks`, `user_received_message`): a ZNS message
//! reaches its person when received, like an SMS at its delivery report.

mod answer;
pub mod receipt;
pub mod token;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

pub use answer::{Verdict, classify, next_quota_day};
pub use token::{TokenError, TokenStatus, ZaloTokens};

use super::http::read_answer;
use super::{Channel, Outbound, Receipt, Secrets, SendError, describe_http_error, mask_address};
use crate::channel::ZnsPayload;
use crate::clock::SharedClock;
use crate::config::ZaloConfig;
use crate::store::Db;

/// Connecting to Zalo may take this long before the send counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One send, answer included.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct ZaloChannel {
    client: reqwest::Client,
    send_url: reqwest::Url,
    tokens: Arc<ZaloTokens>,
    secrets: Secrets,
    clock: SharedClock,
    time_zone: Tz,
    /// The daily quota ran out: until then sends wait without asking Zalo.
    quota_until: Mutex<Option<DateTime<Utc>>>,
}

impl std::fmt::Debug for ZaloChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZaloChannel")
            .field("api", &self.send_url.origin().ascii_serialization())
            .finish_non_exhaustive()
    }
}

impl ZaloChannel {
    pub fn new(
        config: &ZaloConfig,
        db: Db,
        clock: SharedClock,
        time_zone: Tz,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .build()
            .expect("a TLS backend is compiled in");
        let send_url = reqwest::Url::parse(&format!(
            "{}/message/template",
            config.api_url.trim_end_matches('/')
        ))
        .map_err(|_| format!("zalo api_url {:?} is not a URL", config.api_url))?;
        let tokens = ZaloTokens::new(
            db,
            client.clone(),
            &config.oauth_url,
            &config.app_id,
            &config.secret_key,
            &config.refresh_token,
        )?;
        Ok(ZaloChannel {
            secrets: Secrets::new(tokens.secret_values()),
            client,
            send_url,
            tokens: Arc::new(tokens),
            clock,
            time_zone,
            quota_until: Mutex::new(None),
        })
    }

    async fn post(
        &self,
        token: &str,
        phone: &str,
        payload: &ZnsPayload,
        tracking_id: i64,
    ) -> Result<(u16, String), SendError> {
        let body = json!({
            "phone": phone,
            "template_id": payload.template_id,
            "template_data": payload.template_data,
            "tracking_id": tracking_id.to_string(),
        });
        let response = self
            .client
            .post(self.send_url.clone())
            .header("access_token", token)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                let what = self.secrets.hide(&describe_http_error(&e));
                if e.is_builder() {
                    SendError::Retryable(format!("zalo request cannot be made: {what}"))
                } else {
                    SendError::Unavailable(format!("zalo unreachable: {what}"))
                }
            })?;
        let status = response.status().as_u16();
        let answer = read_answer(response).await;
        if let Some(e) = &answer.broken {
            return Err(SendError::Unavailable(format!(
                "zalo unreachable: the answer ({status}) broke off: {}",
                self.secrets.hide(&describe_http_error(e))
            )));
        }
        Ok((
            status,
            self.secrets.hide(&answer.text).replace(token, "[token]"),
        ))
    }
}

fn token_error(e: TokenError) -> SendError {
    match e {
        TokenError::Refused(why) => SendError::Account(why),
        TokenError::Unavailable(why) => SendError::Unavailable(why),
    }
}

#[async_trait]
impl Channel for ZaloChannel {
    fn name(&self) -> &'static str {
        "zalo"
    }

    fn reports_delivery(&self) -> bool {
        true
    }

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError> {
        let now = self.clock.now();
        if let Some(until) = *self.quota_until.lock().expect("quota lock")
            && until > now
        {
            return Err(SendError::RateLimited {
                retry_after: (until - now).to_std().unwrap_or_default(),
            });
        }
        let payload = ZnsPayload::parse(message.text).map_err(SendError::Message)?;
        // Zalo takes the international form without `+`: 84…
        let phone = message.address.trim_start_matches('+');
        if !phone.starts_with("84") || !phone.chars().all(|c| c.is_ascii_digit()) {
            return Err(SendError::Recipient(format!(
                "{} is not a Vietnamese mobile number",
                mask_address(message.address)
            )));
        }
        let mut token = self.tokens.access_token().await.map_err(token_error)?;
        let mut renewed = false;
        loop {
            let (status, body) = self
                .post(&token, phone, &payload, message.delivery_id)
                .await?;
            match classify(status, &body, now, self.time_zone) {
                Verdict::Sent { msg_id, quota } => {
                    if let Some((remaining, daily)) = quota
                        && let Err(e) = self.tokens.note_quota(remaining, Some(daily)).await
                    {
                        tracing::warn!("zalo: cannot keep the quota: {e}");
                    }
                    return Ok(Receipt {
                        provider_message_id: msg_id,
                    });
                }
                Verdict::TokenRefused if !renewed => {
                    renewed = true;
                    token = self.tokens.renew(&token).await.map_err(token_error)?;
                }
                Verdict::TokenRefused => {
                    return Err(SendError::Retryable(
                        "zalo refused a freshly renewed access token".to_string(),
                    ));
                }
                Verdict::QuotaUntil(until) => {
                    *self.quota_until.lock().expect("quota lock") = Some(until);
                    if let Err(e) = self.tokens.note_quota(0, None).await {
                        tracing::warn!("zalo: cannot keep the quota: {e}");
                    }
                    return Err(SendError::RateLimited {
                        retry_after: (until - now).to_std().unwrap_or_default(),
                    });
                }
                Verdict::Failed(error) => return Err(error),
            }
        }
    }
}
