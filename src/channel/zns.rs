//! Zalo ZNS: a message is an approved template and its parameters, not a text.
//!
//! Zalo sends only templates its staff approved, each parameter with its own length limit. What
//! Loa renders for the `zalo` channel is therefore a [`ZnsPayload`] as JSON: the approved
//! template's id, its parameters (each rendered from Loa's variables by
//! `messages/<name>.zalo.toml`, or the staff's words put into the one parameter configured for
//! them), and the text the resident will read — the approved wording with the parameters in
//! place — for previews, the delivery log and counting characters. The transport sends only
//! the id and the parameters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::format::{BodyFormat, BodySettings, FormatProblem};

/// Characters a ZNS message may show at most (the approved wording with its parameters).
pub const ZNS_MAX_CHARS: usize = 400;

/// One ZNS message, as rendered for a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZnsPayload {
    /// The template id Zalo gave the approved template.
    pub template_id: String,
    /// Parameter name → value, each within the approved template's limit.
    pub template_data: BTreeMap<String, String>,
    /// What the resident reads: the approved wording with the values in place.
    pub text: String,
}

impl ZnsPayload {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }

    pub fn parse(body: &str) -> Result<ZnsPayload, String> {
        serde_json::from_str(body).map_err(|e| format!("not a ZNS payload: {e}"))
    }
}

/// The approved wording with `<param>` placeholders (as Zalo's template editor writes them)
/// filled in; a placeholder without a value stays as it is.
pub fn fill_wording(wording: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(wording.len());
    let mut rest = wording;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close) if values.contains_key(&after[..close]) => {
                out.push_str(&values[&after[..close]]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `zalo` channel's format: values go in as they are (Zalo shows parameters as plain
/// text), the body is a [`ZnsPayload`].
pub struct ZnsTemplate;

pub static ZNS_TEMPLATE: ZnsTemplate = ZnsTemplate;

impl BodyFormat for ZnsTemplate {
    fn name(&self) -> &'static str {
        "zns"
    }

    fn escape(&self, value: &str) -> String {
        value.to_string()
    }

    fn finish(&self, text: String, _settings: &BodySettings) -> String {
        text.nfc().collect()
    }

    fn visible(&self, text: &str) -> String {
        ZnsPayload::parse(text).map_or_else(|_| text.to_string(), |p| p.text)
    }

    fn check(&self, text: &str, _settings: &BodySettings) -> Result<(), FormatProblem> {
        let payload = ZnsPayload::parse(text).map_err(FormatProblem::Markup)?;
        let characters = payload.text.chars().count();
        if characters > ZNS_MAX_CHARS {
            return Err(FormatProblem::TooLong {
                characters,
                most: ZNS_MAX_CHARS,
            });
        }
        Ok(())
    }

    fn typed_limit(&self) -> usize {
        ZNS_MAX_CHARS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wording_shows_the_values_and_the_payload_round_trips() {
        let values: BTreeMap<String, String> = [
            ("xa".to_string(), "Xã Đoan Bái".to_string()),
            ("ngay".to_string(), "8/3".to_string()),
        ]
        .into();
        let text = fill_wording("Kính gửi bà con <xa>: ngày <ngay>, <khac> a<b", &values);
        assert_eq!(text, "Kính gửi bà con Xã Đoan Bái: ngày 8/3, <khac> a<b");
        let payload = ZnsPayload {
            template_id: "412345".into(),
            template_data: values,
            text,
        };
        let json = payload.to_json();
        assert_eq!(ZnsPayload::parse(&json).unwrap(), payload);
        assert_eq!(ZNS_TEMPLATE.visible(&json), payload.text);
        assert!(ZNS_TEMPLATE.check(&json, &BodySettings::default()).is_ok());
        assert!(matches!(
            ZNS_TEMPLATE.check("plain words", &BodySettings::default()),
            Err(FormatProblem::Markup(_))
        ));
    }
}
