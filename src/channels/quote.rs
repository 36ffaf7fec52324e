//! What of a failure may be quoted in a log line, a stored error or an export: never a
//! credential, a recipient's number or the text sent to them.

use super::{Outbound, mask_address};

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
        if !boundary {
            out.push(c);
            i += 1;
            continue;
        }
        if digits >= 3 && chars.get(colon).is_some_and(|(_, c)| *c == ':') {
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
        // Not a token: nothing inside this run of digits starts one either (each position follows
        // a digit), so it is copied whole; one pass, however long the run.
        let end = colon.max(i + 1).min(chars.len());
        for (_, c) in &chars[i..end] {
            out.push(*c);
        }
        i = end;
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

/// The credentials a transport was configured with (passwords, API keys, header values, the
/// callback secret): blanked wherever they appear in what a gateway answers, in the forms a
/// gateway may echo them (as typed, URL-encoded, JSON-escaped).
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Values shorter than four characters are left out: blanking them would blank ordinary
    /// words, and the credential-shaped parameters around them are blanked anyway.
    pub fn new<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut all = Vec::new();
        for value in values {
            let value = value.as_ref();
            if value.chars().count() < 4 {
                continue;
            }
            let json = serde_json::to_string(value).unwrap_or_default();
            // As `reqwest`'s `query` writes it: `a=` stripped from `a=<encoded>`.
            let encoded = serde_urlencoded::to_string([("a", value)]).unwrap_or_default();
            let encoded = encoded.trim_start_matches("a=").to_string();
            let json = json.trim_matches('"').to_string();
            // PHP's json_encode writes `/` as `\/`; percent-escapes come in either case.
            let php = json.replace('/', "\\/");
            // Compared with the answer's escapes lower-cased (see `hide`).
            let encoded = lowercase_escapes(&encoded);
            all.extend([value.to_string(), json, php, encoded]);
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Secrets(all)
    }

    /// `text` with every one of these values blanked.
    pub fn hide(&self, text: &str) -> String {
        // `%2F` and `%2f` are one escape: compare with every escape in lower case.
        let text = lowercase_escapes(text);
        self.0
            .iter()
            .fold(text, |text, secret| text.replace(secret, "<secret>"))
    }
}

/// `%2F` → `%2f`: the other spelling of the same URL-encoding.
fn lowercase_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

/// Parameter names that carry credentials, compared without case or separators
/// (`password`, `api_key`, `ApiKey`, `SecretKey`, `access-token`, …).
fn names_a_credential(name: &str) -> bool {
    let name: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "signature",
        "username",
        "user",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The value of every credential-shaped parameter blanked: `password=…` in a query string or
/// form, `"ApiKey":"…"` in JSON, `token: …` in a sentence.
fn blank_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['=', ':']) {
        let before = &rest[..at];
        let name_start = before
            .trim_end_matches('"')
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .last()
            .map_or(before.len(), |(i, _)| i);
        let name = before[name_start..].trim_matches('"');
        out.push_str(&rest[..=at]);
        let after = &rest[at + 1..];
        if name.is_empty() || !names_a_credential(name) {
            rest = after;
            continue;
        }
        let lead = after.len() - after.trim_start_matches([' ', '"']).len();
        out.push_str(&after[..lead]);
        let value = &after[lead..];
        let end = value
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | ',' | '}' | ';' | '<'))
            .unwrap_or(value.len());
        if end > 0 {
            out.push_str("<secret>");
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// What may be quoted from a gateway's answer in a log line or a stored error: a short excerpt,
/// with the transport's secrets and credential-shaped parameters blanked, the recipient, the
/// text and anything that looks like a phone number masked (a provider may echo the request),
/// and URLs and tokens redacted.
pub fn excerpt(body: &str, message: &Outbound<'_>, secrets: &Secrets) -> String {
    const MAX_CHARS: usize = 80;
    // Only the head of a long answer is ever quoted: clean that, not megabytes of it.
    const HEAD_CHARS: usize = 2048;
    let body = body.trim();
    let head = body
        .char_indices()
        .nth(HEAD_CHARS)
        .map_or(body, |(i, _)| &body[..i]);
    let mut text = redact(&blank_credentials(&secrets.hide(head)));
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
    use crate::channel::ChannelKind;

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
        let none = Secrets::default();
        let quoted = excerpt(
            r#"{"Phone":"0912345678","Content":"Chúc mừng ngày 8/3, kính chúc chị em sức khỏe","Other":"84987654321"}"#,
            &message,
            &none,
        );
        assert!(!quoted.contains("912345678"), "{quoted}");
        assert!(!quoted.contains("Chúc mừng"), "{quoted}");
        assert!(!quoted.contains("987654321"), "{quoted}");
        assert!(quoted.contains("Phone"), "{quoted}");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long, &message, &none).chars().count(), 81);
    }

    #[test]
    fn secrets_and_credential_parameters_are_never_quoted() {
        let message = Outbound {
            delivery_id: 7,
            kind: ChannelKind::Sms,
            address: "+84912345678",
            text: "Xin chao",
        };
        let secrets = Secrets::new(["matkhau 9/b", "abc"]);
        let quoted = excerpt(
            "Bad Request: /cgi-bin/sendsms?username=loa&password=matkhau+9%2Fb&from=UBND",
            &message,
            &secrets,
        );
        assert_eq!(
            quoted,
            "Bad Request: /cgi-bin/sendsms?username=<secret>&password=<secret>&from=UBND"
        );
        let quoted = excerpt(
            r#"{"Code":"101","Req":{"ApiKey":"K-1","SecretKey": "S-2","Brand":"UBND"}}"#,
            &message,
            &Secrets::default(),
        );
        assert!(
            !quoted.contains("K-1") && !quoted.contains("S-2"),
            "{quoted}"
        );
        assert!(quoted.contains(r#""Brand":"UBND""#), "{quoted}");
        // A configured secret is blanked wherever it stands, named or not.
        let quoted = excerpt("echo: matkhau 9/b", &message, &secrets);
        assert_eq!(quoted, "echo: <secret>");
        // Ordinary answers are untouched.
        let plain = "0: Accepted for delivery";
        assert_eq!(excerpt(plain, &message, &secrets), plain);
    }

    #[test]
    fn masks_hide_the_middle() {
        assert_eq!(mask_address("123456789"), "12*****89");
        assert_eq!(mask_address("+84912345678"), "+849******78");
        assert_eq!(mask_address("123"), "***");
    }
}
