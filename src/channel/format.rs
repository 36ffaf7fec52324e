//! How a message's text is written for a channel: what an inserted value must be escaped as,
//! what the reader sees, how big it is, and what the provider would refuse.
//!
//! Templates of `messages/` and text typed by staff both go through the channel's format:
//! values are escaped with it, finished with it, and checked against it before anything is
//! sent — a message the provider refuses would fail for every recipient at once.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::text::telegram_html::{self, RichNode};
use crate::text::{SmsSize, sms_size, unaccent};

/// Telegram's limit on a message's text, counted after entity parsing.
pub const TELEGRAM_MAX_CHARS: usize = 4096;
/// Parts an SMS may take unless its template says otherwise (3 UCS-2 parts: 201 characters).
pub const DEFAULT_SMS_MAX_SEGMENTS: usize = 3;

/// What a template (its first-line comment) or the console asks of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySettings {
    /// Parts the text may take, where the format counts parts.
    pub max_segments: usize,
    /// Send it without diacritics (SMS: GSM-7 — cheaper, and shown on any phone).
    pub unaccented: bool,
}

impl Default for BodySettings {
    fn default() -> Self {
        BodySettings {
            max_segments: DEFAULT_SMS_MAX_SEGMENTS,
            unaccented: false,
        }
    }
}

/// What a provider would refuse, or what costs more than allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatProblem {
    /// Markup the provider cannot parse.
    Markup(String),
    /// More characters than the provider takes.
    TooLong { characters: usize, most: usize },
    /// More parts than the budget.
    TooManyParts { size: SmsSize, most: usize },
}

impl fmt::Display for FormatProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatProblem::Markup(e) => write!(f, "Telegram would reject this HTML: {e}"),
            FormatProblem::TooLong { characters, most } => {
                write!(
                    f,
                    "rendered text has {characters} characters; {most} allowed"
                )
            }
            FormatProblem::TooManyParts { size, most } => write!(
                f,
                "SMS takes {} parts ({} {} units); its budget is {most}",
                size.segments, size.units, size.encoding
            ),
        }
    }
}

/// A channel's way of writing text. Implementations are stateless values with `'static`
/// lifetime, referred to by their channel's [`super::Descriptor`].
pub trait BodyFormat: Send + Sync + 'static {
    /// For logs and diagnostics: `telegram-html`, `sms`.
    fn name(&self) -> &'static str;

    /// A value inserted into a text (a template variable, a staff placeholder, or the staff's
    /// own words), written so that it reads as itself.
    fn escape(&self, value: &str) -> String;

    /// The rendered text as it will be sent: always NFC (values from the database may arrive
    /// decomposed), and whatever the settings ask of this format.
    fn finish(&self, text: String, _settings: &BodySettings) -> String {
        text.nfc().collect()
    }

    /// What the reader sees (markup removed): what "characters" counts.
    fn visible(&self, text: &str) -> String {
        text.to_string()
    }

    /// Encoding and parts, where the format is sent in parts (SMS).
    fn size(&self, _text: &str) -> Option<SmsSize> {
        None
    }

    /// The first thing the provider would refuse, or that breaks the budget.
    fn check(&self, text: &str, settings: &BodySettings) -> Result<(), FormatProblem>;

    /// The text as a tree of allowed markup, for previews of a format that has markup.
    fn rich(&self, _text: &str) -> Option<Vec<RichNode>> {
        None
    }

    /// Characters staff may type for it in the console (placeholders are measured again once
    /// filled in).
    fn typed_limit(&self) -> usize {
        TELEGRAM_MAX_CHARS
    }
}

/// Telegram's HTML parse mode.
pub struct TelegramHtml;

pub static TELEGRAM_HTML: TelegramHtml = TelegramHtml;

impl BodyFormat for TelegramHtml {
    fn name(&self) -> &'static str {
        "telegram-html"
    }

    fn escape(&self, value: &str) -> String {
        telegram_html::escape(value)
    }

    fn visible(&self, text: &str) -> String {
        telegram_html::visible_text(text)
    }

    fn check(&self, text: &str, _: &BodySettings) -> Result<(), FormatProblem> {
        telegram_html::validate(text).map_err(FormatProblem::Markup)?;
        let characters = self.visible(text).chars().count();
        if characters > TELEGRAM_MAX_CHARS {
            return Err(FormatProblem::TooLong {
                characters,
                most: TELEGRAM_MAX_CHARS,
            });
        }
        Ok(())
    }

    fn rich(&self, text: &str) -> Option<Vec<RichNode>> {
        Some(telegram_html::rich(text))
    }
}

/// SMS: plain text, GSM-7 or UCS-2, in parts.
pub struct SmsText;

pub static SMS_TEXT: SmsText = SmsText;

impl BodyFormat for SmsText {
    fn name(&self) -> &'static str {
        "sms"
    }

    fn escape(&self, value: &str) -> String {
        value.to_string()
    }

    fn finish(&self, text: String, settings: &BodySettings) -> String {
        let text: String = text.nfc().collect();
        if settings.unaccented {
            unaccent(&text)
        } else {
            text
        }
    }

    fn size(&self, text: &str) -> Option<SmsSize> {
        Some(sms_size(text))
    }

    /// More than five parts hold in any encoding: a longer text is not worth measuring.
    fn typed_limit(&self) -> usize {
        1000
    }

    fn check(&self, text: &str, settings: &BodySettings) -> Result<(), FormatProblem> {
        let size = sms_size(text);
        if size.segments > settings.max_segments {
            return Err(FormatProblem::TooManyParts {
                size,
                most: settings.max_segments,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_escapes_and_refuses_what_telegram_refuses() {
        assert_eq!(TELEGRAM_HTML.escape("<b> & \""), "&lt;b&gt; &amp; &quot;");
        let settings = BodySettings::default();
        assert!(TELEGRAM_HTML.check("<b>x</b>", &settings).is_ok());
        assert!(matches!(
            TELEGRAM_HTML.check("<b>x", &settings),
            Err(FormatProblem::Markup(_))
        ));
        assert!(matches!(
            TELEGRAM_HTML.check(&"x".repeat(4097), &settings),
            Err(FormatProblem::TooLong {
                characters: 4097,
                ..
            })
        ));
        assert_eq!(TELEGRAM_HTML.visible("<b>A &amp; B</b>"), "A & B");
    }

    #[test]
    fn sms_is_plain_counted_in_parts_and_unaccented_on_request() {
        assert_eq!(SMS_TEXT.escape("<b>"), "<b>");
        let unaccented = BodySettings {
            unaccented: true,
            ..BodySettings::default()
        };
        assert_eq!(SMS_TEXT.finish("Bắc Lý".into(), &unaccented), "Bac Ly");
        let two = BodySettings {
            max_segments: 2,
            ..BodySettings::default()
        };
        let long = "Bình đẳng giới ".repeat(20);
        assert!(matches!(
            SMS_TEXT.check(&long, &two),
            Err(FormatProblem::TooManyParts { most: 2, .. })
        ));
        assert_eq!(SMS_TEXT.size("abc").unwrap().segments, 1);
    }
}
