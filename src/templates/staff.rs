//! Text typed by staff in the console: never a template.
//!
//! Templates come only from `messages/` in the repository. What a person types is filled in by
//! plain substitution of the fixed list of [`Placeholder`]s; everything else — other braces,
//! handlebars helpers, blocks, partials, triple braces, HTML — is sent and shown literally. No
//! template engine ever sees it, so nothing typed can run a helper, recurse, or write markup.
//!
//! The list is defined once here and used by the substitution, the console's hint and the
//! README's table (a test keeps the README in step).

use unicode_normalization::UnicodeNormalization;

use super::MessageContext;
use crate::channel::{BodyFormat, Descriptor};

/// What staff may insert into a text they type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    PersonName,
    PersonSalutation,
    AreaName,
    AreaInSentence,
    SupportContactPoint,
    CampaignSender,
    SmsOptOut,
}

impl Placeholder {
    pub const ALL: [Placeholder; 7] = [
        Placeholder::PersonName,
        Placeholder::PersonSalutation,
        Placeholder::AreaName,
        Placeholder::AreaInSentence,
        Placeholder::SupportContactPoint,
        Placeholder::CampaignSender,
        Placeholder::SmsOptOut,
    ];

    /// The name between the braces: `person.name`.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::PersonName => "person.name",
            Placeholder::PersonSalutation => "person.salutation",
            Placeholder::AreaName => "area.name",
            Placeholder::AreaInSentence => "area.in_sentence",
            Placeholder::SupportContactPoint => "support.contact_point",
            Placeholder::CampaignSender => "campaign.sender",
            Placeholder::SmsOptOut => "sms.opt_out",
        }
    }

    /// As staff type it: `{{person.name}}`.
    pub fn token(self) -> String {
        format!("{{{{{}}}}}", self.name())
    }

    /// What it becomes, for the README.
    pub fn meaning(self) -> &'static str {
        match self {
            Placeholder::PersonName => "the recipient's name",
            Placeholder::PersonSalutation => {
                "the greeting: \"Kính gửi ông/bà <name>\" with a name the person gave, \"Kính gửi ông/bà\" with only a Telegram display name, \"Kính gửi: <title>\" for an organisation"
            }
            Placeholder::AreaName => {
                "the recipient's commune, standing alone (\"Xã Thường Thắng\")"
            }
            Placeholder::AreaInSentence => {
                "the recipient's commune inside a sentence (\"bà con xã Thường Thắng\")"
            }
            Placeholder::SupportContactPoint => {
                "the contact point for help in the recipient's commune (or the nearest one above it)"
            }
            Placeholder::CampaignSender => "who speaks, `campaign.sender` of `loa.toml`",
            Placeholder::SmsOptOut => {
                "how to stop receiving (texting `TC` to `sms.reply_number`); added at the end of an SMS that lacks it"
            }
        }
    }

    /// What it becomes, as the console explains it to staff.
    pub fn label(self) -> &'static str {
        match self {
            Placeholder::PersonName => "tên người nhận",
            Placeholder::PersonSalutation => {
                "lời chào: Kính gửi ông/bà …, hoặc Kính gửi: tên tổ chức"
            }
            Placeholder::AreaName => {
                "tên xã, thị trấn của người nhận, đứng riêng (Xã Thường Thắng)"
            }
            Placeholder::AreaInSentence => {
                "tên xã, thị trấn của người nhận, trong câu (bà con xã Thường Thắng)"
            }
            Placeholder::SupportContactPoint => "đầu mối hỗ trợ tại xã, thị trấn của người nhận",
            Placeholder::CampaignSender => "cơ quan gửi tin",
            Placeholder::SmsOptOut => "cách từ chối nhận tin (tự thêm vào cuối tin SMS)",
        }
    }

    fn parse(inner: &str) -> Option<Placeholder> {
        let inner = inner.trim();
        Placeholder::ALL.into_iter().find(|p| p.name() == inner)
    }

    fn value(self, context: &MessageContext) -> &str {
        match self {
            Placeholder::PersonName => &context.person.name,
            Placeholder::PersonSalutation => &context.person.salutation,
            Placeholder::AreaName => &context.area.name,
            Placeholder::AreaInSentence => &context.area.in_sentence,
            Placeholder::SupportContactPoint => &context.support.contact_point,
            Placeholder::CampaignSender => &context.campaign.sender,
            Placeholder::SmsOptOut => &context.sms.opt_out,
        }
    }
}

/// Staff text as stored: line endings unified, NFC, surrounding blank space trimmed.
pub fn normalise(text: &str) -> String {
    let text: String = text.replace("\r\n", "\n").nfc().collect();
    text.trim().to_string()
}

/// Staff text as `channel` sends it: on a channel whose campaign messages end with how to
/// stop, the `{{sms.opt_out}}` line is added when the author left it out, then the placeholders
/// are filled in ([`fill`]).
pub fn compose(text: &str, channel: &Descriptor, context: &MessageContext) -> String {
    if !channel.opt_out_line {
        return fill(text, channel.format, context);
    }
    // Wherever the author put it (first, twice, `{{ sms.opt_out }}`), it goes once, last.
    let body = fill(
        without(text, Placeholder::SmsOptOut).trim_end(),
        channel.format,
        context,
    );
    let mut line = fill(&Placeholder::SmsOptOut.token(), channel.format, context);
    // A text typed without diacritics goes as GSM-7, at half the price of UCS-2 per part: an
    // accented line would switch the whole message to UCS-2, so it follows the text.
    if channel
        .format
        .size(&body)
        .is_some_and(|size| size.encoding == crate::text::SmsEncoding::Gsm7)
    {
        line = crate::text::unaccent(&line);
    }
    format!("{body}\n{line}")
}

/// `text` without any spelling of `placeholder` (as [`fill`] would recognise it).
fn without(text: &str, placeholder: Placeholder) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if Placeholder::parse(&after[..end]) == Some(placeholder) => {
                out.push_str(&rest[..start]);
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str(&rest[..start + 1]);
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text to send in `format`: each placeholder replaced by its value, everything else as
/// typed — escaped for the channel (for Telegram's HTML parse mode `<b>` typed is shown as
/// `<b>`).
pub fn fill(text: &str, format: &dyn BodyFormat, context: &MessageContext) -> String {
    let escape = |s: &str| format.escape(s);
    let text = normalise(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&escape(&rest[..start]));
        let after = &rest[start + 2..];
        match after
            .find("}}")
            .and_then(|end| Placeholder::parse(&after[..end]).map(|p| (p, end)))
        {
            Some((placeholder, end)) => {
                out.push_str(&escape(placeholder.value(context)));
                rest = &after[end + 2..];
            }
            None => {
                // Not one of ours: the first brace is literal, and the search goes on from the
                // second, so `{{{person.name}}}` still fills the placeholder inside it.
                out.push('{');
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(&escape(rest));
    out.nfc().collect()
}

/// What looks like a placeholder but is none of ours (`{{ten_nguoi}}`, `{{area.nam}}`): almost
/// always a typo that would otherwise reach every recipient as typed. Only names are caught;
/// other text between braces is simply literal.
pub fn unknown_placeholders(text: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        let name_like = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && inner
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic());
        if name_like && Placeholder::parse(inner).is_none() {
            unknown.push(format!("{{{{{inner}}}}}"));
        }
        rest = &rest[start + 2..];
    }
    unknown
}

/// The README's table of placeholders, generated from the list.
pub fn readme_table() -> String {
    let mut out = String::from("| placeholder | becomes |\n|---|---|\n");
    for p in Placeholder::ALL {
        out.push_str(&format!("| `{}` | {} |\n", p.token(), p.meaning()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{SMS_TEXT, TELEGRAM_HTML};
    use crate::templates::{AreaVars, CampaignVars, SampleData, SmsVars, SupportVars};

    fn context() -> MessageContext {
        MessageContext::sample(
            "8/3",
            &SampleData {
                sms: SmsVars {
                    opt_out: "Từ chối nhận tin: soạn TC gửi 8079".into(),
                },
                campaign: CampaignVars {
                    name: "Kế hoạch".into(),
                    sender: "UBND huyện <Hiệp Hòa>".into(),
                },
                area: AreaVars::new("doan-bai", "Xã Đoan Bái", None),
                support: SupportVars {
                    contact_point: "Hội LHPN xã & Công an xã".into(),
                    ..SupportVars::default()
                },
                honours: vec![],
            },
        )
    }

    #[test]
    fn placeholders_are_filled_and_escaped_for_telegram() {
        let text = "Kính gửi {{person.name}} ({{ area.name }}): liên hệ {{support.contact_point}}. {{campaign.sender}}";
        assert_eq!(
            fill(text, &SMS_TEXT, &context()),
            "Kính gửi Nguyễn Thị Phương Thảo (Xã Đoan Bái): liên hệ Hội LHPN xã & Công an xã. UBND huyện <Hiệp Hòa>"
        );
        assert_eq!(
            fill(text, &TELEGRAM_HTML, &context()),
            "Kính gửi Nguyễn Thị Phương Thảo (Xã Đoan Bái): liên hệ Hội LHPN xã &amp; Công an xã. UBND huyện &lt;Hiệp Hòa&gt;"
        );
    }

    #[test]
    fn helpers_blocks_partials_and_triple_braces_stay_literal() {
        let xss = r#"{{{vn_date "<span autofocus onfocus=alert(1)>"}}}"#;
        assert_eq!(fill(xss, &SMS_TEXT, &context()), xss);
        assert_eq!(
            fill(xss, &TELEGRAM_HTML, &context()),
            r#"{{{vn_date &quot;&lt;span autofocus onfocus=alert(1)&gt;&quot;}}}"#
        );
        // Handlebars would recurse on this until the process aborts.
        let recursion = r#"{{#*inline "a"}}{{> a}}{{/inline}}{{> a}}"#;
        assert_eq!(fill(recursion, &SMS_TEXT, &context()), recursion);
        for literal in ["{{person.nam}}", "{{#if x}}y{{/if}}", "{{", "}}", "{{>"] {
            assert_eq!(fill(literal, &SMS_TEXT, &context()), literal);
        }
        assert_eq!(
            fill("{{{person.name}}}", &SMS_TEXT, &context()),
            "{Nguyễn Thị Phương Thảo}"
        );
        assert_eq!(
            fill("<b>Họp</b> & \"x\"", &TELEGRAM_HTML, &context()),
            "&lt;b&gt;Họp&lt;/b&gt; &amp; &quot;x&quot;"
        );
    }

    #[test]
    fn misspelt_placeholders_are_caught_and_nothing_else() {
        assert_eq!(
            unknown_placeholders("Chào {{ten_sai}} ở {{ area.nam }} và {{person.name}}"),
            ["{{ten_sai}}", "{{area.nam}}"]
        );
        assert!(
            unknown_placeholders(r#"{{{vn_date "x"}}} {{#if a}} {{> p}} {{ }} 1{{2}}"#).is_empty()
        );
    }

    #[test]
    fn text_is_nfc_and_trimmed() {
        let decomposed: String = "  Hòa\r\nbình  ".nfd().collect();
        assert_eq!(fill(&decomposed, &SMS_TEXT, &context()), "Hòa\nbình");
    }

    #[test]
    fn the_opt_out_line_goes_last_once_and_follows_the_text_s_alphabet() {
        let sms = &crate::channel::SMS;
        // Typed first and spaced: still once, and last.
        assert_eq!(
            compose("{{ sms.opt_out }} Moi ba con du hop.", sms, &context()),
            "Moi ba con du hop.\nTu choi nhan tin: soan TC gui 8079",
            "an unaccented text stays GSM-7: the line loses its marks"
        );
        assert_eq!(
            compose("Mời bà con dự họp.", sms, &context()),
            "Mời bà con dự họp.\nTừ chối nhận tin: soạn TC gửi 8079"
        );
        // Telegram has /stop: nothing is added.
        assert_eq!(
            compose("Mời bà con dự họp.", &crate::channel::TELEGRAM, &context()),
            "Mời bà con dự họp."
        );
    }

    #[test]
    fn the_readme_lists_exactly_these_placeholders() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        assert!(
            readme.contains(&readme_table()),
            "README.md must contain the placeholder table as generated:\n{}",
            readme_table()
        );
    }
}
