//! The ways out: one trait, one implementation per transport.
//!
//! A channel sends one rendered text to one address and says what went wrong in the terms
//! dispatch acts on — wait and retry, give up on this message, or give up on this contact. It
//! knows nothing of deliveries, leases or the database.

pub mod log;
pub mod sms;
pub mod telegram;

use std::time::Duration;

use async_trait::async_trait;

use crate::channel::ChannelKind;

/// One message on its way to one contact.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    /// Loa's delivery id: a request id for gateways that deduplicate, and the key of
    /// delivery reports.
    pub delivery_id: i64,
    pub kind: ChannelKind,
    /// A Telegram chat id or an E.164 phone number.
    pub address: &'a str,
    pub text: &'a str,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    /// The provider's id for the message, when it gives one.
    pub provider_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The provider asked us to slow down: wait exactly this long. Not a failure.
    #[error("rate limited: retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Worth trying again later: 5xx, timeouts, connection errors, answers that do not parse.
    #[error("temporary failure: {0}")]
    Retryable(String),
    /// This contact cannot be reached any more (blocked the bot, account deleted, no such
    /// chat): stop sending to it.
    #[error("recipient unreachable: {0}")]
    Recipient(String),
    /// This message cannot be sent as it is (too long, malformed); the contact is fine.
    #[error("message refused: {0}")]
    Message(String),
}

#[async_trait]
pub trait Channel: Send + Sync {
    /// The transport's name for logs and the delivery log: `telegram`, `log`, …
    fn name(&self) -> &'static str;

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError>;

    /// Whether acceptance is only a hand-over and a delivery report will follow (SMS
    /// gateways); otherwise an accepted message counts as delivered.
    fn reports_delivery(&self) -> bool {
        false
    }
}

/// An address fit for logs: enough to tell contacts apart, not enough to contact anyone.
pub fn mask_address(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    let n = chars.len();
    if n <= 4 {
        return "*".repeat(n);
    }
    let keep_start = if address.starts_with('+') {
        4.min(n / 3)
    } else {
        2
    };
    let keep_end = 2;
    let mut out: String = chars[..keep_start].iter().collect();
    out.push_str(&"*".repeat(n - keep_start - keep_end));
    out.extend(&chars[n - keep_end..]);
    out
}

/// Text fit for a log line or a stored error, whatever produced it: every URL is cut to its
/// scheme, host and port (paths carry bot tokens, query strings carry gateway passwords,
/// numbers, texts and the webhook secret in `dlr-url`, user info carries passwords), and
/// anything shaped like a Telegram bot token (`bot<id>:<secret>`, or a bare 35-character one)
/// is blanked. A safety net: transports describe their own failures without URLs first.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        // Back over the scheme (`https`, `postgres`, …).
        let start = rest[..sep]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(sep, |(i, _)| i);
        out.push_str(&rest[..start]);
        let url = &rest[start..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(url.len());
        // Closing punctuation belongs to the sentence around the URL.
        let span = url[..end].trim_end_matches([')', ']', '.', ',', ';', ':']);
        let authority_start = sep - start + 3;
        let authority_end = span[authority_start.min(span.len())..]
            .find(['/', '?', '#'])
            .map_or(span.len(), |i| authority_start + i);
        let authority = &span[authority_start.min(span.len())..authority_end];
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        out.push_str(&span[..authority_start.min(span.len())]);
        out.push_str(host);
        if authority_end < span.len() {
            out.push_str("/…");
        }
        out.push_str(&url[span.len()..end]);
        rest = &url[end..];
    }
    out.push_str(rest);
    blank_bot_tokens(&out)
}

/// `bot123:ABC…` → `bot<token>`; a bare `123456:<35 or more token characters>` likewise.
fn blank_bot_tokens(text: &str) -> String {
    let token_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let prefixed = text[at..].starts_with("bot");
        let digits_from = if prefixed { i + 3 } else { i };
        // A token starts at a word boundary: not inside another word or number.
        let boundary = i == 0 || !token_char(chars[i - 1].1);
        let digits = chars[digits_from.min(chars.len())..]
            .iter()
            .take_while(|(_, c)| c.is_ascii_digit())
            .count();
        let colon = digits_from + digits;
        if boundary && digits >= 3 && chars.get(colon).is_some_and(|(_, c)| *c == ':') {
            let secret = chars[colon + 1..]
                .iter()
                .take_while(|(_, c)| token_char(*c))
                .count();
            if (prefixed && secret > 0) || (digits >= 5 && secret >= 35) {
                out.push_str(if prefixed { "bot<token>" } else { "<token>" });
                i = colon + 1 + secret;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A transport failure described without its request URL (which carries credentials, the
/// recipient and the text): the kind of failure and the chain of its causes.
pub fn describe_http_error(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "the answer could not be read"
    } else if error.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    let mut out = what.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    redact(&out)
}

/// What may be quoted from a gateway's answer in a log line or a stored error: a short excerpt,
/// with the recipient, the text and anything that looks like a phone number masked (a provider
/// may echo the request), and URLs and tokens redacted.
pub fn excerpt(body: &str, message: &Outbound<'_>) -> String {
    const MAX_CHARS: usize = 80;
    let mut text = redact(body.trim());
    let national = message.address.replacen("+84", "0", 1);
    let bare = message.address.trim_start_matches('+');
    let mut echoed = vec![message.address, national.as_str(), bare, message.text];
    let escaped = serde_json::to_string(message.text).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    echoed.push(escaped);
    // Providers that quote the text often quote it cut short: any long line of it counts.
    echoed.extend(
        message
            .text
            .lines()
            .map(str::trim)
            .filter(|l| l.chars().count() >= 12),
    );
    echoed.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for value in echoed.iter().filter(|v| v.len() >= 6) {
        text = text.replace(value, "…");
    }
    let text = mask_digit_runs(&text);
    let mut cut: String = text.chars().take(MAX_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Runs of seven digits or more (a `+` in front kept with them): masked as addresses are.
fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        if digits >= 7 {
            out.push_str(&mask_address(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_only_their_origin() {
        assert_eq!(
            redact(
                "error sending request for url (http://127.0.0.1:13013/cgi-bin/sendsms?username=u&password=p&to=%2B84912345678)"
            ),
            "error sending request for url (http://127.0.0.1:13013/…)"
        );
        assert_eq!(
            redact("https://user:pass@api.telegram.org/bot123:ABC/SendMessage: refused"),
            "https://api.telegram.org/…: refused"
        );
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("http://host"), "http://host");
    }

    #[test]
    fn bot_tokens_are_blanked_wherever_they_are() {
        assert_eq!(
            redact("Cannot POST /bot123456:TEST-token/SendMessage"),
            "Cannot POST /bot<token>/SendMessage"
        );
        let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawA";
        assert_eq!(
            redact(&format!("token {token} leaked")),
            "token <token> leaked"
        );
        // Times and ordinary words stay.
        assert_eq!(redact("at 10:30, robot 12:5"), "at 10:30, robot 12:5");
    }

    #[test]
    fn excerpts_mask_what_a_provider_echoes() {
        let message = Outbound {
            delivery_id: 7,
            kind: ChannelKind::Sms,
            address: "+84912345678",
            text: "Chúc mừng ngày 8/3, kính chúc chị em sức khỏe",
        };
        let quoted = excerpt(
            r#"{"Phone":"0912345678","Content":"Chúc mừng ngày 8/3, kính chúc chị em sức khỏe","Other":"84987654321"}"#,
            &message,
        );
        assert!(!quoted.contains("912345678"), "{quoted}");
        assert!(!quoted.contains("Chúc mừng"), "{quoted}");
        assert!(!quoted.contains("987654321"), "{quoted}");
        assert!(quoted.contains("Phone"), "{quoted}");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long, &message).chars().count(), 81);
    }

    #[test]
    fn masks_hide_the_middle() {
        assert_eq!(mask_address("123456789"), "12*****89");
        assert_eq!(mask_address("+84912345678"), "+849******78");
        assert_eq!(mask_address("123"), "***");
    }
}
