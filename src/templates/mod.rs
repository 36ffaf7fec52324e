//! Message templates: `messages/<name>.<channel>.hbs`, handlebars in strict mode.
//!
//! Strict mode turns a misspelt variable into an error that `loa check` reports with its line,
//! instead of a resident reading "Kính gửi ," at send time. Each channel has its own registry
//! because escaping differs: Telegram's HTML parse mode needs `&`, `<`, `>`, `"` escaped in
//! every inserted value; an SMS is plain text and must not be escaped.
//!
//! A template may start with a settings comment, e.g. `{{!-- loa: max_segments=2 unaccented --}}`:
//! the SMS budget in parts, and whether the SMS goes without diacritics (GSM-7).
//!
//! Zalo sends only templates approved on its side: its messages are `messages/<name>.zalo.toml`
//! files naming the approved template and filling its parameters (see [`zalo`]).

pub mod staff;
pub mod zalo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonValue, Output, RenderContext,
    RenderError, RenderErrorReason, ScopedJson, handlebars_helper,
};
use serde::Serialize;
use unicode_normalization::is_nfc;

pub use crate::channel::format::{DEFAULT_SMS_MAX_SEGMENTS, TELEGRAM_MAX_CHARS};
use crate::channel::{BodySettings, ChannelKind, ChannelSet, Descriptor};
use crate::config::{AreaKind, AreaName, Config};
use crate::diagnostics::{Problem, Problems};
pub use crate::text::telegram_html::{self, escape as escape_telegram_html};
pub use crate::text::{SmsEncoding, SmsSize, sms_size, unaccent, vietnamese_date};

/// The longest official theme (the gender-equality month's, 2021–2024): a template that fits
/// with it fits with any year's.
pub const SAMPLE_THEME: &str = "Đảm bảo an sinh xã hội, tăng quyền năng và tạo cơ hội cho phụ nữ và trẻ em gái nhằm thực hiện bình đẳng giới và xóa bỏ bạo lực trên cơ sở giới";

/// What a template says about itself in its first-line comment: its SMS budget in parts and
/// whether it goes without diacritics.
pub type TemplateSettings = BodySettings;

/// What a template can use. Names are English; values are Vietnamese.
#[derive(Debug, Clone, Serialize)]
pub struct MessageContext {
    pub person: PersonVars,
    pub area: AreaVars,
    /// The observance's name, e.g. "Ngày Quốc tế Phụ nữ 8/3".
    pub observance: String,
    /// The observance's official theme for the message's year, or empty when none is known:
    /// templates write `{{#if theme}}…{{/if}}` and never a slogan of their own.
    pub theme: String,
    /// The observance's (first) day this time round, as `2023-03-08`.
    pub observance_date: String,
    /// The occurrence's local date in words: "ngày 8 tháng 3 năm 2023".
    pub date: String,
    /// The same date as `2023-03-08`, for the `vn_date` and `days_until` helpers.
    pub date_iso: String,
    pub campaign: CampaignVars,
    pub support: SupportVars,
    /// People and units honoured this year, as staff entered them.
    pub honours: Vec<HonourVars>,
    pub sms: SmsVars,
}

/// What an SMS must say besides its message.
#[derive(Debug, Clone, Serialize)]
pub struct SmsVars {
    /// How to stop: "Từ chối nhận tin: soạn TC gửi 8079". Every campaign SMS ends with it.
    pub opt_out: String,
}

impl SmsVars {
    /// The opt-out line for someone in `area_code`: text `TC` to `sms.reply_number`, or, where
    /// no number receives replies, tell the commune's People's Committee (its office keeps the
    /// contact point; its full title would take a third of an SMS).
    pub fn for_area(config: &Config, area_code: &str) -> Self {
        let place = config.areas.get(area_code).map_or_else(
            || config.campaign.sender.clone(),
            |a| format!("UBND {}", a.in_sentence),
        );
        SmsVars::new(config.sms.reply_number.as_deref(), &place)
    }

    /// `office`: who to tell when no number receives replies, e.g. "UBND xã Thường Thắng".
    fn new(reply_number: Option<&str>, office: &str) -> Self {
        SmsVars {
            opt_out: match reply_number {
                Some(number) => format!("Từ chối nhận tin: soạn TC gửi {number}"),
                None => format!("Từ chối nhận tin: báo {office}"),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonVars {
    pub name: String,
    /// How a message greets them: "Kính gửi ông/bà Nguyễn Thị Lan" when they gave that name,
    /// "Kính gửi ông/bà" when all Loa has is a Telegram display name, "Kính gửi: <title>" for an
    /// organisation.
    pub salutation: String,
}

impl PersonVars {
    fn new(name: &str, kind: &str, name_given: bool) -> Self {
        let salutation = match (kind, name_given) {
            ("organisation", _) => format!("Kính gửi: {name}"),
            (_, true) if !name.trim().is_empty() => format!("Kính gửi ông/bà {name}"),
            _ => "Kính gửi ông/bà".to_string(),
        };
        PersonVars {
            name: name.to_string(),
            salutation,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AreaVars {
    pub code: String,
    /// Standing alone, capitalised: "Xã Thường Thắng" (a heading, a greeting line).
    pub name: String,
    /// Inside a sentence: "bà con xã Thường Thắng".
    pub in_sentence: String,
    /// "trưởng thôn" in a xã, "tổ trưởng tổ dân phố" in a thị trấn or phường.
    pub local_leader: String,
    /// "công an xã", "công an thị trấn", "công an phường".
    pub police: String,
}

impl AreaVars {
    /// The variables of an area `name`d as configured, of `kind` (else read from the name).
    pub fn new(code: &str, name: &str, kind: Option<AreaKind>) -> Self {
        let name = AreaName::new(kind, name);
        AreaVars {
            code: code.to_string(),
            local_leader: name.local_leader().to_string(),
            police: name.police(),
            name: name.full,
            in_sentence: name.in_sentence,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CampaignVars {
    pub name: String,
    /// Who speaks: "UBND huyện Hiệp Hòa".
    pub sender: String,
}

/// Where people affected by violence can get help.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SupportVars {
    /// Every line, in file order.
    pub hotlines: Vec<HotlineVars>,
    /// Lines for adults facing violence; empty until an operator configures one.
    pub adults: Vec<HotlineVars>,
    /// The child-protection line.
    pub children: Vec<HotlineVars>,
    /// Police and ambulance.
    pub emergency: Vec<HotlineVars>,
    /// The person's commune contact point (or the nearest one up the area tree).
    pub contact_point: String,
}

impl SupportVars {
    fn new(support: &crate::config::Support, contact_point: String) -> Self {
        use crate::config::Serves;
        let lines = |serves| support.lines(serves).map(HotlineVars::from).collect();
        SupportVars {
            hotlines: support.hotlines.iter().map(HotlineVars::from).collect(),
            adults: lines(Serves::Adults),
            children: lines(Serves::Children),
            emergency: lines(Serves::Emergency),
            contact_point,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HotlineVars {
    pub name: String,
    /// Printed beside the number: "bảo vệ trẻ em".
    pub label: String,
    pub number: String,
    pub hours: String,
    pub free: bool,
    /// The number with its label, as an SMS prints it: "111 (bảo vệ trẻ em)".
    pub labelled: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HonourVars {
    pub name: String,
    pub unit: String,
    pub achievement: String,
}

/// The parts of a context that do not depend on the person: checking uses them with sample
/// person data.
#[derive(Debug, Clone)]
pub struct SampleData {
    pub campaign: CampaignVars,
    /// Each area variable at its longest among the areas configured (the name of one, the
    /// local leader of another): a text that fits with them fits everywhere.
    pub area: AreaVars,
    pub support: SupportVars,
    pub honours: Vec<HonourVars>,
    /// The longest opt-out line any area gets.
    pub sms: SmsVars,
}

impl SampleData {
    /// Sample data from the configuration: its campaign, hotlines, honours (or a sample honour
    /// when none is entered yet) and its longest area variables.
    pub fn from_config(config: &Config) -> Self {
        let all: Vec<AreaVars> = config
            .areas
            .iter()
            .map(|a| AreaVars::new(&a.code, &a.name, a.kind))
            .collect();
        let longest = |field: fn(&AreaVars) -> &String| {
            all.iter()
                .map(field)
                .max_by_key(|v| v.chars().count())
                .cloned()
                .unwrap_or_default()
        };
        let longest_area = AreaVars {
            code: "mau".to_string(),
            name: longest(|a| &a.name),
            in_sentence: longest(|a| &a.in_sentence),
            local_leader: longest(|a| &a.local_leader),
            police: longest(|a| &a.police),
        };
        let longest_contact = config
            .areas
            .iter()
            .filter_map(|a| a.contact_point.clone())
            .max_by_key(|c| c.chars().count())
            .unwrap_or_default();
        let mut honours: Vec<HonourVars> = config.honours.iter().map(HonourVars::from).collect();
        if honours.is_empty() {
            honours.push(HonourVars {
                name: "Bà Nguyễn Thị Phương Thảo".to_string(),
                unit: "Chi hội Phụ nữ thôn Mẫu".to_string(),
                achievement: "có thành tích xuất sắc trong công tác bình đẳng giới".to_string(),
            });
        }
        SampleData {
            sms: config
                .areas
                .iter()
                .map(|a| SmsVars::for_area(config, &a.code))
                .max_by_key(|v| v.opt_out.chars().count())
                .unwrap_or_else(|| SmsVars::new(config.sms.reply_number.as_deref(), "UBND")),
            campaign: CampaignVars::new(config, 2023),
            area: longest_area,
            support: SupportVars::new(&config.support, longest_contact),
            honours,
        }
    }
}

impl CampaignVars {
    /// The campaign as a message of `year` names it.
    pub fn new(config: &Config, year: i32) -> Self {
        CampaignVars {
            name: config.campaign.name_in(year),
            sender: config.campaign.sender.clone(),
        }
    }
}

impl From<&crate::config::Hotline> for HotlineVars {
    fn from(h: &crate::config::Hotline) -> Self {
        HotlineVars {
            name: h.name.clone(),
            label: h.label.clone(),
            number: h.number.clone(),
            hours: h.hours.clone(),
            free: h.free,
            labelled: format!("{} ({})", h.number, h.label),
        }
    }
}

impl From<&crate::config::Honour> for HonourVars {
    fn from(h: &crate::config::Honour) -> Self {
        HonourVars {
            name: h.name.clone(),
            unit: h.unit.clone(),
            achievement: h.achievement.clone(),
        }
    }
}

/// Who a message goes to and what it is about: the per-delivery part of a context.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    pub person_name: &'a str,
    /// `resident` or `organisation`.
    pub person_kind: &'a str,
    /// Whether `person_name` is a name they gave, not a Telegram display name.
    pub name_given: bool,
    pub area_code: &'a str,
    pub area_name: &'a str,
    pub observance: &'a str,
    /// The observance's theme for the year, `""` when none is known.
    pub theme: &'a str,
    /// The observance's first day; the message's own date when unknown.
    pub observance_date: Option<NaiveDate>,
    /// The local date the message is for.
    pub date: NaiveDate,
}

impl MessageContext {
    /// The context of one delivery: the recipient, plus what the configuration says about
    /// support services and honours for that year.
    pub fn for_recipient(config: &Config, r: &Recipient<'_>) -> Self {
        use chrono::Datelike;
        MessageContext {
            person: PersonVars::new(r.person_name, r.person_kind, r.name_given),
            area: AreaVars::new(
                r.area_code,
                r.area_name,
                config.areas.get(r.area_code).and_then(|a| a.kind),
            ),
            observance: r.observance.to_string(),
            theme: r.theme.to_string(),
            observance_date: r.observance_date.unwrap_or(r.date).to_string(),
            date: vietnamese_date(r.date),
            date_iso: r.date.to_string(),
            campaign: CampaignVars::new(config, r.date.year()),
            support: SupportVars::new(
                &config.support,
                config
                    .areas
                    .contact_point(r.area_code)
                    .unwrap_or_default()
                    .to_string(),
            ),
            honours: config
                .honours
                .iter()
                .filter(|h| h.year == r.date.year())
                .map(HonourVars::from)
                .collect(),
            sms: SmsVars::for_area(config, r.area_code),
        }
    }

    /// A plausible, deliberately long context for checking templates without a database.
    pub fn sample(observance: &str, data: &SampleData) -> Self {
        let date = NaiveDate::from_ymd_opt(2023, 3, 6).expect("valid date");
        MessageContext {
            person: PersonVars::new("Nguyễn Thị Phương Thảo", "resident", true),
            area: data.area.clone(),
            observance: observance.to_string(),
            theme: SAMPLE_THEME.to_string(),
            observance_date: "2023-03-08".to_string(),
            date: vietnamese_date(date),
            date_iso: date.to_string(),
            campaign: data.campaign.clone(),
            support: data.support.clone(),
            honours: data.honours.clone(),
            sms: data.sms.clone(),
        }
    }
}

handlebars_helper!(vn_date: |iso: str| {
    NaiveDate::parse_from_str(iso, "%Y-%m-%d").map(vietnamese_date).unwrap_or_else(|_| iso.to_string())
});

handlebars_helper!(unaccent_helper: |s: str| unaccent(s));

/// `{{days_until observance_date}}`: whole days from the message's date (or from a second date
/// given) to the first date; 0 on the day itself.
fn days_until(
    h: &Helper,
    _: &Handlebars,
    ctx: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let date = |i: usize, what: &str| -> Result<NaiveDate, RenderErrorReason> {
        let value = match h.param(i) {
            Some(p) => p.value().as_str().map(str::to_string),
            None => ctx
                .data()
                .get("date_iso")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        };
        value
            .and_then(|v| NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                RenderErrorReason::Other(format!(
                    "days_until: {what} must be a date like 2023-10-20"
                ))
            })
    };
    let to = date(0, "the first parameter")?;
    let from = date(1, "the second parameter (default date_iso)")?;
    out.write(&(to - from).num_days().to_string())?;
    Ok(())
}

/// `{{#if (before date_iso "2023-07-01")}}…{{else}}…{{/if}}`: whether the first date comes
/// before the second, both written like `2023-07-01` (so a message can speak of a law as coming
/// until the day it takes effect). Used as a subexpression it gives a boolean; anything but
/// such a date, or a variable strict mode does not find, is an error with the template's line.
struct Before;

impl HelperDef for Before {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        if h.params().len() != 2 {
            return Err(RenderErrorReason::Other(
                "before: give two dates, e.g. (before date_iso \"2023-07-01\")".to_string(),
            )
            .into());
        }
        let date = |i: usize| -> Result<NaiveDate, RenderErrorReason> {
            let param = h.param(i).expect("two parameters");
            if r.strict_mode() && param.is_value_missing() {
                return Err(RenderErrorReason::MissingVariable(
                    param.relative_path().cloned(),
                ));
            }
            param
                .value()
                .as_str()
                .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
                .ok_or_else(|| {
                    RenderErrorReason::Other(format!(
                        "before: {} is not a date like 2023-07-01",
                        param.value()
                    ))
                })
        };
        Ok(ScopedJson::Derived(JsonValue::Bool(date(0)? < date(1)?)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no template {name:?} for channel {channel}")]
    Missing { name: String, channel: ChannelKind },
    #[error("{0}")]
    Render(String),
}

const SETTINGS_PREFIX: &str = "{{!-- loa:";

/// The settings line's settings, and the template body without that line.
fn split_settings(source: &str) -> Result<(TemplateSettings, &str, usize), String> {
    let mut settings = TemplateSettings::default();
    let Some((first, rest)) = source
        .starts_with(SETTINGS_PREFIX)
        .then(|| source.split_once('\n').unwrap_or((source, "")))
    else {
        return Ok((settings, source, 0));
    };
    let body = first
        .trim_end()
        .strip_prefix(SETTINGS_PREFIX)
        .and_then(|b| b.strip_suffix("--}}"))
        .ok_or("the settings line must end with --}}")?;
    for word in body.split_whitespace() {
        match word.split_once('=') {
            Some(("max_segments", n)) => {
                settings.max_segments = n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("max_segments={n} is not a positive number"))?
            }
            None if word == "unaccented" => settings.unaccented = true,
            _ => {
                return Err(format!(
                    "unknown setting {word:?} (known: max_segments=N, unaccented)"
                ));
            }
        }
    }
    Ok((settings, rest, 1))
}

/// A rendered message as it will be sent, with its SMS size.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    /// For SMS: encoding, units and parts.
    pub sms: Option<SmsSize>,
}

#[derive(Debug, Clone)]
struct Loaded {
    path: PathBuf,
    settings: TemplateSettings,
    /// Lines before the template body (the settings line), added to handlebars' line numbers.
    line_offset: usize,
}

/// Every template under `messages/`, one registry per channel (each escapes values its
/// channel's way).
pub struct Templates {
    channels: ChannelSet,
    registries: BTreeMap<ChannelKind, Handlebars<'static>>,
    loaded: BTreeMap<(String, ChannelKind), Loaded>,
    /// The `.zalo.toml` files (channels whose format is ZNS): approved templates and how their
    /// parameters are filled; their values are in the channel's registry.
    zns: BTreeMap<(String, ChannelKind), zalo::ZnsFile>,
    /// Per ZNS channel, the approved template that carries staff's own words (`{{text}}`).
    staff_templates: BTreeMap<ChannelKind, String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("loaded", &self.loaded.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn registry(channel: &Descriptor) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    let format = channel.format;
    hb.register_escape_fn(move |value| format.escape(value));
    hb.register_helper("vn_date", Box::new(vn_date));
    hb.register_helper("unaccent", Box::new(unaccent_helper));
    hb.register_helper("days_until", Box::new(days_until));
    hb.register_helper("before", Box::new(Before));
    hb
}

impl Templates {
    /// Reads `dir/<name>.<channel>.hbs` for each of `channels`; every file that does not parse
    /// is a problem.
    pub fn load(dir: &Path, channels: &ChannelSet) -> Result<Templates, Problems> {
        let mut problems = Problems::default();
        let mut templates = Templates {
            channels: channels.clone(),
            registries: channels.iter().map(|d| (d.kind, registry(d))).collect(),
            loaded: BTreeMap::new(),
            zns: BTreeMap::new(),
            staff_templates: BTreeMap::new(),
        };
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "hbs" || e == "toml"))
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
            if path.extension().is_some_and(|e| e == "toml") {
                templates.load_zns(&path, &mut problems);
                continue;
            }
            let stem = file_name.trim_end_matches(".hbs");
            let Some((name, kind)) = stem
                .rsplit_once('.')
                .and_then(|(name, channel)| channels.parse(channel).map(|k| (name.to_string(), k)))
                .filter(|(_, kind)| !is_zns(channels, *kind))
            else {
                problems.push(Problem::new(
                    &path,
                    None,
                    format!(
                        "file name must be <name>.<channel>.hbs with channel one of {} (Zalo: <name>.zalo.toml)",
                        channels
                            .iter()
                            .filter(|d| !is_zns(channels, d.kind))
                            .map(|d| d.kind.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
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
            let (settings, body, line_offset) = match split_settings(&source) {
                Ok(split) => split,
                Err(e) => {
                    problems.push(Problem::new(&path, Some(1), e));
                    continue;
                }
            };
            // Trailing newlines of the file are not part of the message.
            let registry = templates
                .registries
                .get_mut(&kind)
                .expect("one registry per kind");
            if let Err(e) = registry.register_template_string(&name, body.trim_end()) {
                let line = e.pos().map(|(line, _)| line + line_offset);
                problems.push(Problem::new(
                    &path,
                    line,
                    format!("template does not parse: {}", e.reason()),
                ));
                continue;
            }
            templates.loaded.insert(
                (name, kind),
                Loaded {
                    path,
                    settings,
                    line_offset,
                },
            );
        }
        problems.into_result(templates)
    }

    pub fn has(&self, name: &str, kind: ChannelKind) -> bool {
        self.loaded.contains_key(&(name.to_string(), kind))
    }

    pub fn file(&self, name: &str, kind: ChannelKind) -> Option<&Path> {
        self.get(name, kind).map(|l| l.path.as_path())
    }

    /// A campaign template for a channel whose messages must say how to stop
    /// ([`Descriptor::opt_out_line`]) that does not end with `{{sms.opt_out}}`: the problem,
    /// naming the file and its last line.
    pub fn missing_opt_out(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Option<Problem> {
        let loaded = self.get(name, kind)?;
        if !self.channels.get(kind)?.opt_out_line {
            return None;
        }
        let text = self.render(name, kind, context).ok()?;
        // An unaccented template sends its opt-out line unaccented too.
        if unaccent(text.trim_end()).ends_with(&unaccent(&context.sms.opt_out)) {
            return None;
        }
        let lines = std::fs::read_to_string(&loaded.path)
            .map(|s| s.lines().count())
            .ok();
        Some(Problem::new(
            &loaded.path,
            lines,
            "a campaign SMS must end with {{sms.opt_out}} (how to stop receiving messages)",
        ))
    }

    fn get(&self, name: &str, kind: ChannelKind) -> Option<&Loaded> {
        self.loaded.get(&(name.to_string(), kind))
    }

    pub fn settings(&self, name: &str, kind: ChannelKind) -> TemplateSettings {
        self.get(name, kind).map(|l| l.settings).unwrap_or_default()
    }

    /// The channels templates are loaded for, with their formats.
    pub fn channels(&self) -> &ChannelSet {
        &self.channels
    }

    fn descriptor(&self, kind: ChannelKind) -> Result<&Descriptor, TemplateError> {
        self.channels
            .get(kind)
            .ok_or_else(|| TemplateError::Render(format!("no channel {kind}")))
    }

    /// `(name, channel)` of every loaded template.
    pub fn names(&self) -> impl Iterator<Item = (&str, ChannelKind)> {
        self.loaded.keys().map(|(n, k)| (n.as_str(), *k))
    }

    /// The text to send: rendered, NFC, and for an `unaccented` SMS template without marks.
    pub fn render(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Result<String, TemplateError> {
        self.preview(name, kind, context).map(|r| r.text)
    }

    /// The text to send, with its size in parts where its channel counts them.
    pub fn preview(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Result<Rendered, TemplateError> {
        let loaded = self.get(name, kind).ok_or_else(|| TemplateError::Missing {
            name: name.to_string(),
            channel: kind,
        })?;
        let format = self.descriptor(kind)?.format;
        if let Some(payload) = self.zns_payload(name, kind, context, None) {
            let payload = payload.map_err(|p| TemplateError::Render(p.message))?;
            return Ok(Rendered {
                text: payload.to_json(),
                sms: None,
            });
        }
        let text = self.registries[&kind]
            .render(name, context)
            .map_err(|e| TemplateError::Render(render_message(&e)))?;
        let text = format.finish(text, &loaded.settings);
        Ok(Rendered {
            sms: format.size(&text),
            text,
        })
    }

    /// Renders with `context` and reports what a resident or the provider would suffer: a
    /// missing variable, or what the channel's format refuses (HTML Telegram rejects, a text
    /// over Telegram's limit, an SMS over its segment budget).
    pub fn check(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Option<Problem> {
        let loaded = self.get(name, kind)?;
        let path = loaded.path.as_path();
        let sample_text = self
            .text_param_limit(name, kind)
            .map(|_| "Nội dung do cán bộ soạn");
        if let Some(payload) = self.zns_payload(name, kind, context, sample_text) {
            return match payload {
                Err(problem) => Some(Problem::new(
                    path,
                    problem.line,
                    format!("{} (with sample data)", problem.message),
                )),
                Ok(payload) => {
                    let format = self.channels.get(kind)?.format;
                    format
                        .check(&payload.to_json(), &loaded.settings)
                        .err()
                        .map(|problem| Problem::new(path, None, problem.to_string()))
                }
            };
        }
        if let Err(e) = self.registries[&kind].render(name, context) {
            let line = e.line_no.map(|l| l + loaded.line_offset);
            return Some(Problem::new(path, line, render_message(&e)));
        }
        let rendered = self.preview(name, kind, context).ok()?;
        if let Some(problem) = unlabelled_number(&rendered.text, &context.support) {
            // The line that prints a number: `{{number}}`, or the number typed in.
            let line = std::fs::read_to_string(path).ok().and_then(|source| {
                source
                    .lines()
                    .position(|l| l.contains("number}}") || l.contains(problem.number))
                    .map(|i| i + 1)
            });
            return Some(Problem::new(path, line, problem.message));
        }
        let format = self.channels.get(kind)?.format;
        format
            .check(&rendered.text, &loaded.settings)
            .err()
            .map(|problem| match problem {
                crate::channel::FormatProblem::TooManyParts { .. } => Problem::new(
                    path,
                    None,
                    format!("{problem} with sample data (max_segments in the settings line)"),
                ),
                other => Problem::new(path, None, other.to_string()),
            })
    }
}

struct Unlabelled<'a> {
    number: &'a str,
    message: String,
}

/// A support line's number printed without what it is: its label or name must stand near it
/// (on the same line, within a few words), or a reader in distress dials the ambulance for a
/// counsellor.
fn unlabelled_number<'a>(text: &str, support: &'a SupportVars) -> Option<Unlabelled<'a>> {
    const NEAR: usize = 60;
    for line in text.lines() {
        for h in &support.hotlines {
            let mut from = 0;
            while let Some(at) = line[from..].find(&h.number) {
                let at = from + at;
                let end = at + h.number.len();
                from = end;
                // The number itself, not part of a longer one.
                let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
                if digit(line[..at].chars().last()) || digit(line[end..].chars().next()) {
                    continue;
                }
                let start = line[..at]
                    .char_indices()
                    .rev()
                    .nth(NEAR)
                    .map_or(0, |(i, _)| i);
                let stop = line[end..]
                    .char_indices()
                    .nth(NEAR)
                    .map_or(line.len(), |(i, _)| end + i);
                let near = &line[start..stop];
                if !near.contains(&h.label) && !near.contains(&h.name) {
                    return Some(Unlabelled {
                        number: &h.number,
                        message: format!(
                            "lists {} without saying what it is: print {{{{labelled}}}} (\"{}\"), {{{{label}}}} or {{{{name}}}} beside it",
                            h.number, h.labelled
                        ),
                    });
                }
            }
        }
    }
    None
}

fn render_message(e: &handlebars::RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(var)) => format!(
            "unknown variable {var:?} (known: person.name, person.salutation, theme, area.name, area.in_sentence, area.local_leader, area.police, area.code, observance, observance_date, date, date_iso, campaign.name, campaign.sender, support.hotlines, support.contact_point, honours, sms.opt_out)"
        ),
        reason => reason.to_string(),
    }
}

/// Whether `kind` sends approved ZNS templates (`.zalo.toml`) rather than handlebars texts.
fn is_zns(channels: &ChannelSet, kind: ChannelKind) -> bool {
    channels.get(kind).is_some_and(|d| d.format.name() == "zns")
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
        let t = Templates::load(dir.path(), &ChannelSet::builtin());
        (dir, t)
    }

    fn data() -> SampleData {
        SampleData {
            sms: SmsVars::new(Some("8079"), "UBND xã Hoàng Lương"),
            campaign: CampaignVars {
                name: "Kế hoạch".into(),
                sender: "UBND huyện".into(),
            },
            area: AreaVars::new("hoang-luong", "Xã Hoàng Lương", None),
            support: SupportVars::new(
                &crate::config::Support {
                    hotlines: vec![crate::config::Hotline {
                        serves: crate::config::Serves::Children,
                        name: "Tổng đài quốc gia bảo vệ trẻ em".into(),
                        label: "bảo vệ trẻ em".into(),
                        number: "111".into(),
                        hours: "24/7".into(),
                        free: true,
                    }],
                },
                "Hội LHPN xã".into(),
            ),
            honours: vec![],
        }
    }

    fn sample() -> MessageContext {
        MessageContext::sample("8/3", &data())
    }

    #[test]
    fn telegram_escapes_values_and_sms_does_not() {
        let (_d, t) = load(&[
            ("a.telegram.hbs", "<b>{{person.name}}</b>"),
            ("a.sms.hbs", "{{person.name}}"),
        ]);
        let t = t.unwrap();
        let mut ctx = sample();
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
        let (_d, t) = load(&[
            ("a.telegram.hbs", "Kính gửi\n{{person.nam}}"),
            (
                "b.sms.hbs",
                "{{!-- loa: max_segments=2 --}}\nKính gửi\n{{person.nam}}",
            ),
        ]);
        let t = t.unwrap();
        let p = t.check("a", ChannelKind::Telegram, &sample()).unwrap();
        assert_eq!(p.line, Some(2));
        assert!(p.message.contains("person.nam"), "{}", p.message);
        assert!(t.render("a", ChannelKind::Telegram, &sample()).is_err());
        let p = t.check("b", ChannelKind::Sms, &sample()).unwrap();
        assert_eq!(p.line, Some(3), "lines count the settings line");
    }

    #[test]
    fn parse_errors_and_bad_names_are_problems() {
        let (_d, t) = load(&[
            ("a.telegram.hbs", "line one\n{{#if x}}never closed"),
            ("b.fax.hbs", "x"),
            ("c.sms.hbs", "{{!-- loa: max_parts=2 --}}\nx"),
        ]);
        let err = t.unwrap_err().to_string();
        assert!(err.contains("a.telegram.hbs:"), "{err}");
        assert!(err.contains("b.fax.hbs: file name"), "{err}");
        assert!(err.contains("c.sms.hbs:1: unknown setting"), "{err}");
    }

    #[test]
    fn decomposed_text_is_refused() {
        use unicode_normalization::UnicodeNormalization;
        let decomposed: String = "Hòa".nfd().collect();
        let (_d, t) = load(&[("a.sms.hbs", &format!("ok\n{decomposed}"))]);
        let err = t.unwrap_err().to_string();
        assert!(err.contains("a.sms.hbs:2: text is not NFC"), "{err}");
    }

    #[test]
    fn helpers() {
        let (_d, t) = load(&[
            ("d.sms.hbs", "{{vn_date date_iso}}"),
            (
                "u.sms.hbs",
                "{{unaccent area.name}}; còn {{days_until observance_date}} ngày",
            ),
        ]);
        let t = t.unwrap();
        assert_eq!(
            t.render("d", ChannelKind::Sms, &sample()).unwrap(),
            "ngày 6 tháng 3 năm 2023"
        );
        assert_eq!(
            t.render("u", ChannelKind::Sms, &sample()).unwrap(),
            "Xa Hoang Luong; còn 2 ngày"
        );
    }

    #[test]
    fn before_compares_dates_and_speaks_of_a_law_as_coming_until_it_takes_effect() {
        let (_d, t) = load(&[
            (
                "l.sms.hbs",
                "{{#if (before date_iso \"2023-07-01\")}}có hiệu lực từ ngày 1/7/2023{{else}}đang có hiệu lực{{/if}}",
            ),
            (
                "m.sms.hbs",
                "x\n{{#if (before dat_iso \"2023-07-01\")}}a{{/if}}",
            ),
            ("n.sms.hbs", "{{#if (before date \"2023-07-01\")}}a{{/if}}"),
            ("o.sms.hbs", "{{#if (before date_iso)}}a{{/if}}"),
        ]);
        let t = t.unwrap();
        let on = |day: &str| {
            let mut ctx = sample();
            ctx.date_iso = day.to_string();
            t.render("l", ChannelKind::Sms, &ctx).unwrap()
        };
        assert_eq!(on("2023-05-10"), "có hiệu lực từ ngày 1/7/2023");
        assert_eq!(on("2023-06-30"), "có hiệu lực từ ngày 1/7/2023");
        assert_eq!(
            on("2023-07-01"),
            "đang có hiệu lực",
            "on the day it is in force"
        );
        assert_eq!(on("2024-05-10"), "đang có hiệu lực");
        // Strict mode still finds a misspelt variable, with its line.
        let p = t.check("m", ChannelKind::Sms, &sample()).unwrap();
        assert_eq!(p.line, Some(2), "{p}");
        assert!(p.message.contains("dat_iso"), "{p}");
        // A date in words is not compared as if it were one.
        let p = t.check("n", ChannelKind::Sms, &sample()).unwrap();
        assert!(p.message.contains("not a date like 2023-07-01"), "{p}");
        let p = t.check("o", ChannelKind::Sms, &sample()).unwrap();
        assert!(p.message.contains("give two dates"), "{p}");
    }

    #[test]
    fn unaccented_sms_goes_as_gsm7() {
        let (_d, t) = load(&[(
            "a.sms.hbs",
            "{{!-- loa: unaccented --}}\nChúc mừng {{area.name}}",
        )]);
        let rendered = t
            .unwrap()
            .preview("a", ChannelKind::Sms, &sample())
            .unwrap();
        assert_eq!(rendered.text, "Chuc mung Xa Hoang Luong");
        assert_eq!(rendered.sms.unwrap().encoding, SmsEncoding::Gsm7);
    }

    #[test]
    fn check_catches_bad_html_and_overlong_sms() {
        let long = "Bình đẳng giới ".repeat(20);
        let (_d, t) = load(&[
            ("h.telegram.hbs", "<b>{{person.name}}</i> & bạn"),
            (
                "s.sms.hbs",
                &format!("{{{{!-- loa: max_segments=2 --}}}}\n{long}"),
            ),
        ]);
        let t = t.unwrap();
        let html = t.check("h", ChannelKind::Telegram, &sample()).unwrap();
        assert!(html.message.contains("Telegram would reject"), "{html}");
        let sms = t.check("s", ChannelKind::Sms, &sample()).unwrap();
        assert!(sms.message.contains("budget is 2"), "{sms}");
    }
}
