//! The `log` channel: prints each message with its masked recipient instead of sending it, so
//! Loa runs on a fresh machine with no bot token and no SMS gateway.

use async_trait::async_trait;

use super::{Channel, Outbound, Receipt, SendError, mask_address};

#[derive(Debug, Default, Clone, Copy)]
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError> {
        tracing::info!(
            target: "loa::log_channel",
            delivery = message.delivery_id,
            "[{} → {}]\n{}\n",
            message.kind,
            mask_address(message.address),
            message.text
        );
        Ok(Receipt {
            provider_message_id: Some(format!("log-{}", message.delivery_id)),
        })
    }
}
