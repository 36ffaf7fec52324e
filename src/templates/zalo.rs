//! `messages/<name>.zalo.toml`: how a Loa message goes by Zalo ZNS.
//!
//! ZNS sends only templates approved on Zalo's side, so a file names the approved template
//! (`template_id`), copies its approved wording (`wording`, with `<param>` where each value
//! goes — what previews and the delivery log show) and says how each parameter is filled from
//! Loa's variables (`[params.<name>]`: `value`, a handlebars template, and `max`, the
//! parameter's length limit on Zalo's side, in characters):
//!
//! ```toml
//! template_id = "412345"
//! wording = "<co_quan> thông báo: <noi_dung>"
//! [params.co_quan]
//! value = "{{campaign.sender}}"
//! max = 30
//! [params.noi_dung]
//! value = "Hưởng ứng {{observance}}, …"
//! max = 250
//! ```
//!
//! A value over its `max` would be refused by Zalo for every recipient: `loa check` renders
//! each file with sample data (the longest theme, the longest commune name) and names the
//! parameter and its line; at send time the same check fails the delivery before any request.
//! The template configured for staff's own words (`zalo.staff_template`) may use `{{text}}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{
    Loaded, MessageContext, TemplateError, TemplateSettings, Templates, first_non_nfc_line, is_zns,
    render_message, staff,
};
use crate::channel::zns::{ZnsPayload, fill_wording};
use crate::channel::{BodySettings, ChannelKind, Descriptor};
use crate::diagnostics::{Problem, Problems, from_toml_error, line_of_offset};

/// The variable that carries staff's own words in the staff template.
pub const STAFF_TEXT_VAR: &str = "text";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    template_id: Spanned<String>,
    wording: Spanned<String>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<RawParam>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    value: Spanned<String>,
    max: Spanned<usize>,
}

/// One parameter of an approved template.
#[derive(Debug, Clone)]
pub struct Param {
    /// Handlebars, rendered with the message's context.
    pub value: String,
    /// Characters Zalo accepts in it.
    pub max: usize,
    /// The line of its `value`, for problems.
    pub line: usize,
}

/// A `.zalo.toml` file, read and checked on its own.
#[derive(Debug, Clone)]
pub struct ZnsFile {
    pub path: PathBuf,
    pub template_id: String,
    pub wording: String,
    pub params: BTreeMap<String, Param>,
}

impl ZnsFile {
    /// Reads `source` (from `path`): every problem with its line.
    pub fn parse(path: &Path, source: &str) -> Result<ZnsFile, Problems> {
        let raw: RawFile = toml::from_str(source)
            .map_err(|e| Problems(vec![from_toml_error(path, source, &e)]))?;
        let mut problems = Problems::default();
        let line = |offset: usize| Some(line_of_offset(source, offset));
        let id = raw.template_id.get_ref().trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            problems.push(Problem::new(
                path,
                line(raw.template_id.span().start),
                format!(
                    "template_id: {id:?} is not a ZNS template id (the number Zalo shows for the approved template)"
                ),
            ));
        }
        let wording = raw.wording.get_ref().clone();
        let named: Vec<&str> = placeholders(&wording);
        for name in &named {
            if !raw.params.contains_key(*name) {
                problems.push(Problem::new(
                    path,
                    line(raw.wording.span().start),
                    format!("wording: <{name}> has no [params.{name}]"),
                ));
            }
        }
        let mut params = BTreeMap::new();
        for (name, param) in raw.params {
            let at = line_of_offset(source, param.span().start);
            if !named.contains(&name.as_str()) {
                problems.push(Problem::new(
                    path,
                    Some(at),
                    format!("params.{name}: the wording has no <{name}>"),
                ));
            }
            let param = param.into_inner();
            if *param.max.get_ref() == 0 {
                problems.push(Problem::new(
                    path,
                    line(param.max.span().start),
                    format!("params.{name}.max: must be at least 1"),
                ));
            }
            params.insert(
                name,
                Param {
                    line: line_of_offset(source, param.value.span().start),
                    value: param.value.into_inner(),
                    max: param.max.into_inner(),
                },
            );
        }
        problems.into_result(ZnsFile {
            path: path.to_path_buf(),
            template_id: id.to_string(),
            wording,
            params,
        })
    }

    /// The handlebars name of one parameter's value in the channel's registry.
    pub fn registered_name(template: &str, param: &str) -> String {
        format!("{template}\u{1f}{param}")
    }

    /// The payload from each parameter's rendered value (NFC, trimmed); a value over its
    /// limit is the error, naming the parameter and its line.
    pub fn payload(
        &self,
        mut render: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<ZnsPayload, ParamProblem> {
        let mut data = BTreeMap::new();
        for (name, param) in &self.params {
            let value = render(name).map_err(|message| ParamProblem {
                line: Some(param.line),
                message,
            })?;
            let value = value.trim().to_string();
            let characters = value.chars().count();
            if characters > param.max {
                return Err(ParamProblem {
                    line: Some(param.line),
                    message: format!(
                        "ZNS parameter {name} has {characters} characters; the approved template allows {}",
                        param.max
                    ),
                });
            }
            if value.is_empty() {
                return Err(ParamProblem {
                    line: Some(param.line),
                    message: format!("ZNS parameter {name} is empty; Zalo refuses empty values"),
                });
            }
            data.insert(name.clone(), value);
        }
        Ok(ZnsPayload {
            template_id: self.template_id.clone(),
            text: fill_wording(&self.wording, &data),
            template_data: data,
        })
    }
}

/// A parameter that cannot be sent as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    pub line: Option<usize>,
    pub message: String,
}

/// The `<name>` placeholders of a wording, in order, once each.
fn placeholders(wording: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut rest = wording;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close)
                if close > 0
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                if !out.contains(&&after[..close]) {
                    out.push(&after[..close]);
                }
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// The ZNS side of [`Templates`]: reading `.zalo.toml` files into the channel's registry,
/// rendering their payloads, and the staff template.
impl Templates {
    /// Reads one `<name>.<channel>.toml` (a channel whose format is ZNS) and registers its
    /// parameters' values.
    pub(super) fn load_zns(&mut self, path: &Path, problems: &mut Problems) {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some((name, kind)) = file_name
            .trim_end_matches(".toml")
            .rsplit_once('.')
            .and_then(|(name, channel)| self.channels.parse(channel).map(|k| (name.to_string(), k)))
            .filter(|(_, kind)| is_zns(&self.channels, *kind))
        else {
            problems.push(Problem::new(
                path,
                None,
                "file name must be <name>.zalo.toml (only Zalo's approved templates are .toml files)",
            ));
            return;
        };
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::new(path, None, format!("cannot read: {e}")));
                return;
            }
        };
        if let Some(line) = first_non_nfc_line(&source) {
            problems.push(Problem::new(
                path,
                Some(line),
                "text is not NFC-normalised (Vietnamese letters must be precomposed)",
            ));
        }
        let file = match ZnsFile::parse(path, &source) {
            Ok(file) => file,
            Err(found) => {
                problems.extend(found);
                return;
            }
        };
        let registry = self
            .registries
            .get_mut(&kind)
            .expect("one registry per kind");
        let mut parsed = true;
        for (param, p) in &file.params {
            let registered = ZnsFile::registered_name(&name, param);
            if let Err(e) = registry.register_template_string(&registered, p.value.trim()) {
                problems.push(Problem::new(
                    path,
                    Some(p.line),
                    format!("params.{param}.value does not parse: {}", e.reason()),
                ));
                parsed = false;
            }
        }
        if !parsed {
            return;
        }
        self.loaded.insert(
            (name.clone(), kind),
            Loaded {
                path: path.to_path_buf(),
                settings: TemplateSettings::default(),
                line_offset: 0,
            },
        );
        self.zns.insert((name, kind), file);
    }

    /// The ZNS payload of template `name`: each parameter rendered with `context` (and the
    /// staff's words as `{{text}}`, for the staff template), checked against its limit.
    pub(super) fn zns_payload(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
        text: Option<&str>,
    ) -> Option<Result<crate::channel::ZnsPayload, ParamProblem>> {
        let file = self.zns.get(&(name.to_string(), kind))?;
        let registry = &self.registries[&kind];
        let mut data = serde_json::to_value(context).expect("contexts serialise");
        if let (Some(text), Some(map)) = (text, data.as_object_mut()) {
            map.insert(STAFF_TEXT_VAR.to_string(), text.into());
        }
        Some(file.payload(|param| {
            registry
                .render(&ZnsFile::registered_name(name, param), &data)
                .map_err(|e| render_message(&e))
        }))
    }

    /// Staff's own words as the ZNS template `name` carries them (the template configured as
    /// `zalo.staff_template`): the payload as JSON.
    pub fn render_with_text(
        &self,
        name: &str,
        kind: ChannelKind,
        context: &MessageContext,
        text: &str,
    ) -> Result<String, TemplateError> {
        match self.zns_payload(name, kind, context, Some(text)) {
            Some(Ok(payload)) => Ok(payload.to_json()),
            Some(Err(problem)) => Err(TemplateError::Render(problem.message)),
            None => Err(TemplateError::Missing {
                name: name.to_string(),
                channel: kind,
            }),
        }
    }

    /// What the loaded `.zalo.toml` files ask of Zalo: each approved template id with its
    /// parameters' names and limits (the demo's fake ZNS approves exactly these).
    pub fn zns_requirements(&self) -> BTreeMap<String, Vec<(String, usize)>> {
        self.zns
            .values()
            .map(|f| {
                let params = f.params.iter().map(|(n, p)| (n.clone(), p.max)).collect();
                (f.template_id.clone(), params)
            })
            .collect()
    }

    /// Staff's words go by the ZNS channel `kind` as template `name` (`zalo.staff_template`):
    /// the problem when that template is not loaded or has no parameter for `{{text}}`.
    pub fn set_staff_template(&mut self, kind: ChannelKind, name: &str) -> Result<(), String> {
        match self.text_param_limit(name, kind) {
            Some(_) => {
                self.staff_templates.insert(kind, name.to_string());
                Ok(())
            }
            None if self.has(name, kind) => Err(format!(
                "{name}.{kind}.toml has no parameter whose value is {{{{{}}}}}: staff's words cannot go in it",
                STAFF_TEXT_VAR
            )),
            None => Err(format!(
                "no template {name}.{kind}.toml in the messages folder"
            )),
        }
    }

    /// Characters staff may type for `channel`: the format's limit, or on a ZNS channel the
    /// limit of the staff template's `{{text}}` parameter (`None`: staff cannot write for it).
    pub fn staff_limit(&self, channel: &Descriptor) -> Option<usize> {
        if !is_zns(&self.channels, channel.kind) {
            return Some(channel.format.typed_limit());
        }
        let name = self.staff_templates.get(&channel.kind)?;
        self.text_param_limit(name, channel.kind)
    }

    /// Staff's words (`text`, as stored) as `channel` sends them: placeholders filled in, the
    /// opt-out line where needed, finished by the format; on a ZNS channel, carried by its
    /// staff template.
    pub fn staff_body(
        &self,
        channel: &Descriptor,
        text: &str,
        context: &MessageContext,
        settings: &BodySettings,
    ) -> Result<String, TemplateError> {
        let composed = channel
            .format
            .finish(staff::compose(text, channel, context), settings);
        if !is_zns(&self.channels, channel.kind) {
            return Ok(composed);
        }
        let name = self.staff_templates.get(&channel.kind).ok_or_else(|| {
            TemplateError::Render(format!(
                "no approved {} template is configured for staff's own words",
                channel.label
            ))
        })?;
        self.render_with_text(name, channel.kind, context, &composed)
    }

    /// The limit of the parameter that carries `{{text}}` in ZNS template `name`, if any.
    pub fn text_param_limit(&self, name: &str, kind: ChannelKind) -> Option<usize> {
        let file = self.zns.get(&(name.to_string(), kind))?;
        file.params
            .values()
            .find(|p| p.value.contains(&format!("{{{{{}}}}}", STAFF_TEXT_VAR)))
            .map(|p| p.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"template_id = "412345"
wording = "<co_quan> thông báo: <noi_dung>"
[params.co_quan]
value = "{{campaign.sender}}"
max = 30
[params.noi_dung]
value = "{{observance}}"
max = 10
"#;

    #[test]
    fn a_file_names_its_template_and_each_parameter_s_limit() {
        let file = ZnsFile::parse(Path::new("m/a.zalo.toml"), FILE).unwrap();
        assert_eq!(file.template_id, "412345");
        assert_eq!(file.params["noi_dung"].max, 10);
        let ok = file
            .payload(|p| {
                Ok(if p == "co_quan" {
                    "UBND huyện"
                } else {
                    "Ngày 8/3"
                }
                .into())
            })
            .unwrap();
        assert_eq!(ok.text, "UBND huyện thông báo: Ngày 8/3");
        assert_eq!(ok.template_data["co_quan"], "UBND huyện");
        let long = file
            .payload(|p| {
                Ok(if p == "co_quan" {
                    "x"
                } else {
                    "Ngày Quốc tế"
                }
                .into())
            })
            .unwrap_err();
        assert_eq!(long.line, Some(7));
        assert!(
            long.message
                .contains("noi_dung has 12 characters; the approved template allows 10"),
            "{}",
            long.message
        );
    }

    #[test]
    fn mismatches_between_wording_and_parameters_name_their_line() {
        let bad = "template_id = \"\"\nwording = \"<a> <b>\"\n[params.a]\nvalue = \"x\"\nmax = 0\n[params.c]\nvalue = \"y\"\nmax = 3\n";
        let err = ZnsFile::parse(Path::new("m/b.zalo.toml"), bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("m/b.zalo.toml:1: template_id"), "{err}");
        assert!(
            err.contains("m/b.zalo.toml:2: wording: <b> has no [params.b]"),
            "{err}"
        );
        assert!(err.contains("m/b.zalo.toml:5: params.a.max"), "{err}");
        assert!(err.contains("params.c: the wording has no <c>"), "{err}");
        let unknown = ZnsFile::parse(
            Path::new("m/c.zalo.toml"),
            "template_id = \"1\"\nwording = \"\"\nid = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("m/c.zalo.toml:3:"), "{unknown}");
    }
}
