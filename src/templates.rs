//! Message templates: `messages/<name>.<channel>.hbs`, handlebars in strict mode.
//!
//! Strict mode turns a misspelt variable into an error that `loa check` reports with its line,
//! instead of a resident reading "Kính gửi ," at send time. Each channel has its own registry
//! because escaping differs: Telegram's HTML parse mode needs `&`, `<`, `>`, `"` escaped in
//! every inserted value; an SMS is plain text and must not be escaped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use handlebars::{Handlebars, handlebars_helper};
use serde::Serialize;
use unicode_normalization::{UnicodeNormalization, is_nfc};

use crate::config::ChannelKind;
use crate::diagnostics::{Problem, Problems};

/// Telegram's limit on a message's text.
pub const TELEGRAM_MAX_CHARS: usize = 4096;

/// What a template can use. Names are English; values are Vietnamese.
#[derive(Debug, Clone, Serialize)]
pub struct MessageContext {
    pub person: PersonVars,
    pub area: AreaVars,
    /// The observance's name, e.g. "Ngày Quốc tế Phụ nữ 8/3".
    pub observance: String,
    /// The occurrence's local date in words: "ngày 8 tháng 3 năm 2023".
    pub date: String,
    /// The same date as `2023-03-08`, for the `vn_date` helper and the like.
    pub date_iso: String,
    pub campaign: CampaignVars,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonVars {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AreaVars {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CampaignVars {
    pub name: String,
    /// Who speaks: "UBND huyện Hiệp Hòa".
    pub sender: String,
}

impl MessageContext {
    /// A plausible context for checking templates without a database.
    pub fn sample(observance: &str, campaign: CampaignVars) -> Self {
        let date = NaiveDate::from_ymd_opt(2023, 3, 8).expect("valid date");
        MessageContext {
            person: PersonVars {
                name: "Nguyễn Thị Mẫu".to_string(),
            },
            area: AreaVars {
                code: "mau".to_string(),
                name: "Xã Mẫu".to_string(),
            },
            observance: observance.to_string(),
            date: vietnamese_date(date),
            date_iso: date.to_string(),
            campaign,
        }
    }
}

/// "ngày 8 tháng 3 năm 2023", as official letters write dates.
pub fn vietnamese_date(date: NaiveDate) -> String {
    format!(
        "ngày {} tháng {} năm {}",
        date.day(),
        date.month(),
        date.year()
    )
}

handlebars_helper!(vn_date: |iso: str| {
    NaiveDate::parse_from_str(iso, "%Y-%m-%d").map(vietnamese_date).unwrap_or_else(|_| iso.to_string())
});

/// Escapes what Telegram's HTML parse mode would read as markup. Telegram knows only the named
/// entities `&lt; &gt; &amp; &quot;`, so handlebars' default (which also writes `&#x27;` …) is
/// not used.
pub fn escape_telegram_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no template {name:?} for channel {channel}")]
    Missing { name: String, channel: ChannelKind },
    #[error("{0}")]
    Render(String),
}

/// Every template under `messages/`, one registry per channel.
pub struct Templates {
    registries: BTreeMap<ChannelKind, Handlebars<'static>>,
    files: BTreeMap<(String, ChannelKind), PathBuf>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("files", &self.files)
            .finish()
    }
}

fn registry(kind: ChannelKind) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    match kind {
        ChannelKind::Telegram => hb.register_escape_fn(escape_telegram_html),
        ChannelKind::Sms => hb.register_escape_fn(handlebars::no_escape),
    }
    hb.register_helper("vn_date", Box::new(vn_date));
    hb
}

impl Templates {
    /// Reads `dir/<name>.<channel>.hbs`; every file that does not parse is a problem.
    pub fn load(dir: &Path) -> Result<Templates, Problems> {
        let mut problems = Problems::default();
        let mut templates = Templates {
            registries: ChannelKind::ALL
                .into_iter()
                .map(|k| (k, registry(k)))
                .collect(),
            files: BTreeMap::new(),
        };
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "hbs"))
                .collect(),
            Err(e) => {
                return Err(Problems(vec![Problem::new(
                    dir,
                    None,
                    format!("cannot read messages folder: {e}"),
                )]));
            }
        };
        paths.sort();
        for path in paths {
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let stem = file_name.trim_end_matches(".hbs");
            let Some((name, kind)) = stem.rsplit_once('.').and_then(|(name, channel)| {
                ChannelKind::parse(channel).map(|k| (name.to_string(), k))
            }) else {
                problems.push(Problem::new(
                    &path,
                    None,
                    "file name must be <name>.<channel>.hbs with channel telegram or sms",
                ));
                continue;
            };
            let source = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(Problem::new(&path, None, format!("cannot read: {e}")));
                    continue;
                }
            };
            if let Some(line) = first_non_nfc_line(&source) {
                problems.push(Problem::new(
                    &path,
                    Some(line),
                    "text is not NFC-normalised (Vietnamese letters must be precomposed)",
                ));
            }
            // Trailing newlines of the file are not part of the message.
            let body = source.trim_end();
            let registry = templates
                .registries
                .get_mut(&kind)
                .expect("one registry per kind");
            if let Err(e) = registry.register_template_string(&name, body) {
                let line = e.pos().map(|(line, _)| line);
                problems.push(Problem::new(
                    &path,
                    line,
                    format!("template does not parse: {}", e.reason()),
                ));
                continue;
            }
            templates.files.insert((name, kind), path);
        }
        problems.into_result(templates)
    }

    pub fn has(&self, name: &str, kind: ChannelKind) -> bool {
        self.files.contains_key(&(name.to_string(), kind))
    }

    pub fn file(&self, name: &str, kind: ChannelKind) -> Option<&Path> {
        self.files
            .get(&(name.to_string(), kind))
            .map(PathBuf::as_path)
    }

    /// `(name, channel)` of every loaded template.
    pub fn names(&self) -> impl Iterator<Item = (&str, ChannelKind)> {
        self.files.keys().map(|(n, k)| (n.as_str(), *k))
    }

    pub fn render(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Result<String, TemplateError> {
        if !self.has(name, kind) {
            return Err(TemplateError::Missing {
                name: name.to_string(),
                channel: kind,
            });
        }
        let registry = &self.registries[&kind];
        let text = registry
            .render(name, context)
            .map_err(|e| TemplateError::Render(render_message(&e)))?;
        // Values from the database may arrive decomposed; what is sent is always NFC.
        Ok(text.nfc().collect())
    }

    /// Renders with `context` and reports what a resident would suffer: a missing variable,
    /// or a text over the channel's limit.
    pub fn check(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Option<Problem> {
        let path = self.file(name, kind)?;
        let registry = &self.registries[&kind];
        match registry.render(name, context) {
            Err(e) => Some(Problem::new(path, e.line_no, render_message(&e))),
            Ok(text)
                if kind == ChannelKind::Telegram && text.chars().count() > TELEGRAM_MAX_CHARS =>
            {
                Some(Problem::new(
                    path,
                    None,
                    format!(
                        "rendered text has {} characters; Telegram allows {TELEGRAM_MAX_CHARS}",
                        text.chars().count()
                    ),
                ))
            }
            Ok(_) => None,
        }
    }
}

fn render_message(e: &handlebars::RenderError) -> String {
    match e.reason() {
        handlebars::RenderErrorReason::MissingVariable(Some(var)) => {
            format!(
                "unknown variable {var:?} (known: person.name, area.name, area.code, observance, date, date_iso, campaign.name, campaign.sender)"
            )
        }
        reason => reason.to_string(),
    }
}

fn first_non_nfc_line(source: &str) -> Option<usize> {
    source.lines().position(|l| !is_nfc(l)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Templates, Problems>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let t = Templates::load(dir.path());
        (dir, t)
    }

    fn campaign() -> CampaignVars {
        CampaignVars {
            name: "Kế hoạch".into(),
            sender: "UBND huyện".into(),
        }
    }

    #[test]
    fn telegram_escapes_values_and_sms_does_not() {
        let (_d, t) = load(&[
            ("a.telegram.hbs", "<b>{{person.name}}</b>"),
            ("a.sms.hbs", "{{person.name}}"),
        ]);
        let t = t.unwrap();
        let mut ctx = MessageContext::sample("8/3", campaign());
        ctx.person.name = "Lê <Văn> & \"Tý\"".into();
        assert_eq!(
            t.render("a", ChannelKind::Telegram, &ctx).unwrap(),
            "<b>Lê &lt;Văn&gt; &amp; &quot;Tý&quot;</b>"
        );
        assert_eq!(
            t.render("a", ChannelKind::Sms, &ctx).unwrap(),
            "Lê <Văn> & \"Tý\""
        );
    }

    #[test]
    fn missing_variable_is_a_problem_with_its_line() {
        let (_d, t) = load(&[("a.telegram.hbs", "Kính gửi\n{{person.nam}}")]);
        let t = t.unwrap();
        let p = t
            .check(
                "a",
                ChannelKind::Telegram,
                &MessageContext::sample("x", campaign()),
            )
            .unwrap();
        assert_eq!(p.line, Some(2));
        assert!(p.message.contains("person.nam"), "{}", p.message);
        assert!(
            t.render(
                "a",
                ChannelKind::Telegram,
                &MessageContext::sample("x", campaign())
            )
            .is_err()
        );
    }

    #[test]
    fn parse_errors_and_bad_names_are_problems() {
        let (_d, t) = load(&[
            ("a.telegram.hbs", "line one\n{{#if x}}never closed"),
            ("b.fax.hbs", "x"),
        ]);
        let err = t.unwrap_err().to_string();
        assert!(err.contains("a.telegram.hbs:"), "{err}");
        assert!(err.contains("b.fax.hbs: file name"), "{err}");
    }

    #[test]
    fn decomposed_text_is_refused() {
        let decomposed: String = "Hòa".nfd().collect();
        let (_d, t) = load(&[("a.sms.hbs", &format!("ok\n{decomposed}"))]);
        let err = t.unwrap_err().to_string();
        assert!(err.contains("a.sms.hbs:2: text is not NFC"), "{err}");
    }

    #[test]
    fn vietnamese_dates() {
        assert_eq!(
            vietnamese_date(NaiveDate::from_ymd_opt(2023, 3, 8).unwrap()),
            "ngày 8 tháng 3 năm 2023"
        );
        let (_d, t) = load(&[("a.sms.hbs", "{{vn_date date_iso}}")]);
        let out = t
            .unwrap()
            .render(
                "a",
                ChannelKind::Sms,
                &MessageContext::sample("x", campaign()),
            )
            .unwrap();
        assert_eq!(out, "ngày 8 tháng 3 năm 2023");
    }
}
