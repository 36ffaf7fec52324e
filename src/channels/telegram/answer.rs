//! What an answer of `sendMessage` means for the delivery: the Bot API's envelope
//! (`{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5",
//! "parameters":{"retry_after":5}}`), or whatever a proxy in front of it said instead.

use std::time::Duration;

use serde_json::Value;

use crate::channels::{Outbound, Receipt, Secrets, SendError, excerpt};

/// The wait after a 429 that does not say how long: a few seconds, as Telegram usually asks.
pub const FALLBACK_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Telegram's words, in a 400 or 403, for a chat the bot cannot write to any more (blocked,
/// left, deleted, never started, no rights): the contact is dead, the message is fine.
const UNREACHABLE: &[&str] = &[
    "bot was blocked",
    "user is deactivated",
    "bot was kicked",
    "bot is not a member",
    "chat not found",
    "user not found",
    "have no rights to send",
    "not enough rights to send",
    "need administrator rights",
    "can't initiate conversation",
    "bot can't send messages to bots",
    "group chat was deactivated",
    "chat_write_forbidden",
    "peer_id_invalid",
    "channel_private",
];

/// `status` and `body` of a `sendMessage` answer, classified. What is quoted is an excerpt: the
/// token blanked (a proxy's error page may echo the request path, `/bot<TOKEN>/…`), the chat
/// id and the text masked.
pub fn classify(
    status: u16,
    body: &str,
    message: &Outbound<'_>,
    secrets: &Secrets,
) -> Result<Receipt, SendError> {
    let envelope = serde_json::from_str::<Value>(body)
        .ok()
        .filter(|v| v["ok"].is_boolean());
    let quoted = |text: &str| excerpt(text, message, secrets);
    let Some(envelope) = envelope else {
        // A proxy's or a load balancer's page: a 5xx is the service failing, anything else
        // is an answer we cannot read (the address is wrong, or something answers in
        // Telegram's place) and waits for a person to look.
        let page = quoted(&gist(body));
        return Err(if (500..=599).contains(&status) {
            SendError::Unavailable(format!("telegram server error {status}: {page:?}"))
        } else {
            SendError::Retryable(format!("answer is not Bot API JSON ({status}): {page:?}"))
        });
    };
    if envelope["ok"] == Value::Bool(true) {
        // Taken: whatever else the answer says, sending again would send twice.
        return Ok(Receipt {
            provider_message_id: envelope["result"]["message_id"]
                .as_i64()
                .map(|id| id.to_string()),
        });
    }
    let code = envelope["error_code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(status);
    let description = quoted(
        envelope["description"]
            .as_str()
            .unwrap_or("(no description)"),
    );
    let parameters = &envelope["parameters"];
    if (500..=599).contains(&status) || (500..=599).contains(&code) {
        return Err(SendError::Unavailable(format!(
            "telegram server error {code}: {description}"
        )));
    }
    if code == 429 || parameters["retry_after"].is_number() {
        let retry_after = parameters["retry_after"]
            .as_u64()
            .filter(|s| *s > 0)
            // An absurd wait (a proxy's garbage) would overflow the clock: an hour at most.
            .map_or(FALLBACK_RETRY_AFTER, |s| Duration::from_secs(s.min(3600)));
        return Err(SendError::RateLimited { retry_after });
    }
    if let Some(chat) = parameters["migrate_to_chat_id"].as_i64() {
        // The group became a supergroup under a new id: the old one reaches nobody. The new id
        // is what an officer needs to fix the contact.
        return Err(SendError::Recipient(format!(
            "the group moved to chat {chat}: {description}"
        )));
    }
    let lower = description.to_lowercase();
    match code {
        // The token is wrong or revoked: the operator's to fix, and the message waits.
        401 | 404 => Err(SendError::Retryable(format!(
            "telegram refused the bot token ({code}: {description}): check TELEGRAM_BOT_TOKEN"
        ))),
        403 => Err(SendError::Recipient(description)),
        400 if UNREACHABLE.iter().any(|words| lower.contains(words)) => {
            Err(SendError::Recipient(description))
        }
        400..=499 => Err(SendError::Message(format!(
            "telegram refused the message ({code}): {description}"
        ))),
        _ => Err(SendError::Retryable(format!(
            "telegram answered {code}: {description}"
        ))),
    }
}

/// What an HTML page says, for a person: its title, or else its text without the tags. Other
/// answers as they are.
fn gist(body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>"))
        && start + "<title>".len() <= end
    {
        return body[start + "<title>".len()..end].trim().to_string();
    }
    if !lower.trim_start().starts_with('<') {
        return body.to_string();
    }
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelKind;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA";

    fn message() -> Outbound<'static> {
        Outbound {
            delivery_id: 7,
            kind: ChannelKind::Telegram,
            address: "987654321",
            text: "Chúc mừng ngày Quốc tế Phụ nữ 8/3",
        }
    }

    fn secrets() -> Secrets {
        Secrets::new([TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA"])
    }

    fn envelope(code: u16, description: &str, parameters: Option<Value>) -> String {
        let mut v =
            serde_json::json!({"ok": false, "error_code": code, "description": description});
        if let Some(p) = parameters {
            v["parameters"] = p;
        }
        v.to_string()
    }

    fn verdict(status: u16, body: &str) -> Result<Receipt, SendError> {
        classify(status, body, &message(), &secrets())
    }

    /// The variant each answer lands in, by name: the table below reads as a table.
    fn kind(result: &Result<Receipt, SendError>) -> &'static str {
        match result {
            Ok(_) => "sent",
            Err(SendError::RateLimited { .. }) => "rate-limited",
            Err(SendError::Unavailable(_)) => "unavailable",
            Err(SendError::Retryable(_)) => "retryable",
            Err(SendError::Recipient(_)) => "recipient",
            Err(SendError::Message(_)) => "message",
            Err(SendError::Account(_)) => "account",
        }
    }

    #[test]
    fn the_bot_api_s_answers_are_classified() {
        let sent = r#"{"ok":true,"result":{"message_id":42,"date":1,"chat":{"id":987654321,"type":"private"},"text":"x"}}"#;
        let migrated = serde_json::json!({"migrate_to_chat_id": -1001234567890_i64});
        let table: &[(u16, String, &str)] = &[
            (200, sent.to_string(), "sent"),
            (
                429,
                envelope(
                    429,
                    "Too Many Requests: retry after 5",
                    Some(serde_json::json!({"retry_after": 5})),
                ),
                "rate-limited",
            ),
            (
                403,
                envelope(403, "Forbidden: bot was blocked by the user", None),
                "recipient",
            ),
            (
                403,
                envelope(403, "Forbidden: user is deactivated", None),
                "recipient",
            ),
            (
                403,
                envelope(403, "Forbidden: bot was kicked from the group chat", None),
                "recipient",
            ),
            (
                403,
                envelope(
                    403,
                    "Forbidden: bot can't initiate conversation with a user",
                    None,
                ),
                "recipient",
            ),
            (
                400,
                envelope(400, "Bad Request: chat not found", None),
                "recipient",
            ),
            (
                400,
                envelope(400, "Bad Request: user not found", None),
                "recipient",
            ),
            (
                400,
                envelope(400, "Bad Request: have no rights to send a message", None),
                "recipient",
            ),
            (
                400,
                envelope(400, "Bad Request: CHAT_WRITE_FORBIDDEN", None),
                "recipient",
            ),
            (
                400,
                envelope(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    Some(migrated),
                ),
                "recipient",
            ),
            (
                400,
                envelope(400, "Bad Request: message is too long", None),
                "message",
            ),
            (
                400,
                envelope(
                    400,
                    "Bad Request: can't parse entities: Unsupported start tag",
                    None,
                ),
                "message",
            ),
            (401, envelope(401, "Unauthorized", None), "retryable"),
            (404, envelope(404, "Not Found", None), "retryable"),
            (
                500,
                envelope(500, "Internal Server Error", None),
                "unavailable",
            ),
            (
                502,
                "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
                "unavailable",
            ),
            (503, String::new(), "unavailable"),
            (
                200,
                "<html><body>upstream error</body></html>".into(),
                "retryable",
            ),
            (
                404,
                "<html><body>Cannot POST /bot123:x/sendMessage</body></html>".into(),
                "retryable",
            ),
            (200, r#"{"result":"no envelope"}"#.into(), "retryable"),
            (
                409,
                envelope(409, "Conflict: something odd", None),
                "message",
            ),
        ];
        for (status, body, expected) in table {
            let result = verdict(*status, body);
            assert_eq!(kind(&result), *expected, "{status} {body}: {result:?}");
        }
    }

    #[test]
    fn a_429_waits_as_long_as_telegram_asks_or_a_few_seconds() {
        let asked = verdict(
            429,
            &envelope(
                429,
                "Too Many Requests: retry after 17",
                Some(serde_json::json!({"retry_after": 17})),
            ),
        );
        assert_eq!(
            asked,
            Err(SendError::RateLimited {
                retry_after: Duration::from_secs(17)
            })
        );
        let unsaid = verdict(429, &envelope(429, "Too Many Requests", None));
        assert_eq!(
            unsaid,
            Err(SendError::RateLimited {
                retry_after: FALLBACK_RETRY_AFTER
            })
        );
    }

    #[test]
    fn a_page_is_quoted_by_its_title_or_its_text() {
        let proxy = verdict(
            502,
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>",
        );
        assert_eq!(
            proxy,
            Err(SendError::Unavailable(
                "telegram server error 502: \"502 Bad Gateway\"".into()
            ))
        );
        let Err(SendError::Retryable(reason)) = verdict(
            404,
            "<html><body>Cannot POST /bot123:x/sendMessage</body></html>",
        ) else {
            panic!()
        };
        assert!(
            reason.contains("\"Cannot POST /bot<token>/sendMessage\""),
            "{reason}"
        );
    }

    #[test]
    fn a_moved_group_names_its_new_chat() {
        let result = verdict(
            400,
            &envelope(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                Some(serde_json::json!({"migrate_to_chat_id": -1001234567890_i64})),
            ),
        );
        let Err(SendError::Recipient(reason)) = result else {
            panic!("{result:?}")
        };
        assert!(reason.contains("-1001234567890"), "{reason}");
    }

    #[test]
    fn pages_echoing_the_request_quote_neither_the_token_nor_the_text() {
        for (status, body) in [
            (
                404,
                format!("<html>Cannot POST /bot{TOKEN}/sendMessage</html>"),
            ),
            (
                502,
                format!("<h1>Bad Gateway</h1> upstream /bot{TOKEN}/sendMessage"),
            ),
            (
                400,
                envelope(
                    400,
                    &format!("Bad Request: can't parse entities in {}", message().text),
                    None,
                ),
            ),
            (
                500,
                format!("token={} chat=987654321", TOKEN.replace(':', "%3A")),
            ),
        ] {
            let result = verdict(status, &body);
            let shown = format!("{result:?} {}", result.clone().unwrap_err());
            assert!(!shown.contains("AAHdqTcv"), "{shown}");
            assert!(!shown.contains("987654321"), "{shown}");
            assert!(!shown.contains("Quốc tế"), "{shown}");
        }
    }
}
