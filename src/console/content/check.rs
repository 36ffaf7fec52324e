//! Checking what staff typed before it is stored, and the live preview: each channel rendered
//! as its recipients will read it, with its size, cost and audience.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};

use super::{AreaCount, ChannelPreview, ContentInput, Preview};
use crate::audience;
use crate::calendar::{Audience, Unreached};
use crate::channel::format::TELEGRAM_MAX_CHARS;
use crate::channel::{BodySettings, ChannelKind, Descriptor, FormatProblem};
use crate::console::{Actor, Console, ConsoleError, Permission, typed_text};
use crate::templates::{MessageContext, Recipient, Rendered, staff};

/// Parts a free-text SMS may take: beyond this it costs more than a district would pay for one
/// message per person.
pub const MAX_FREE_SMS_SEGMENTS: usize = 5;
/// Characters staff may type for Telegram (Telegram's own limit).
pub const MAX_TELEGRAM_TEXT_CHARS: usize = TELEGRAM_MAX_CHARS;
/// Characters staff may type for SMS: more than five parts hold in any encoding.
pub const MAX_SMS_TEXT_CHARS: usize = 1000;
/// A title, as the queue and the audit log show it.
pub const MAX_TITLE_CHARS: usize = 200;
/// Tags an audience may require, and the length of each.
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;

/// Validated input, ready to store.
#[derive(Debug, Clone)]
pub(super) struct Valid {
    pub(super) title: String,
    pub(super) template: Option<String>,
    /// The staff's texts of the channels chosen (none when a template is used).
    pub(super) texts: BTreeMap<ChannelKind, String>,
    pub(super) areas: Vec<String>,
    pub(super) tags: Vec<String>,
    pub(super) channels: Vec<ChannelKind>,
    pub(super) observance: Option<String>,
    pub(super) send_at: DateTime<Utc>,
    pub(super) unreached: Option<Unreached>,
    pub(super) below_band: bool,
}

pub(super) fn split(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn non_empty(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// A format's refusal, in the console's words.
fn problem_vi(label: &str, problem: FormatProblem) -> String {
    match problem {
        // Only a template of `messages/` can carry markup: staff text is escaped.
        FormatProblem::Markup(_) => {
            format!("Mẫu tin có lỗi định dạng {label}; xin báo quản trị viên.")
        }
        FormatProblem::TooLong { characters, most } => {
            format!("Tin {label} dài {characters} ký tự; tối đa {most}.")
        }
        FormatProblem::TooManyParts { size, most } => {
            format!(
                "Tin {label} chiếm {} tin nhắn; tối đa {most}.",
                size.segments
            )
        }
    }
}

impl Console {
    /// Parses a send time: local `YYYY-MM-DDTHH:MM[:SS]` in the campaign time zone, or RFC 3339.
    pub fn parse_send_at(&self, text: &str) -> Result<DateTime<Utc>, ConsoleError> {
        let text = text.trim();
        // No date is longer; a longer text is not worth parsing.
        let text = if text.len() > 40 { "" } else { text };
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(at.to_utc());
        }
        let tz = self.config.campaign.time_zone;
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .and_then(|local| tz.from_local_datetime(&local).earliest())
            .map(|at| at.to_utc())
            .ok_or_else(|| {
                ConsoleError::invalid(
                    "send_at",
                    "Thời điểm gửi không hợp lệ (dạng 2026-12-01T08:00, giờ Việt Nam).",
                )
            })
    }

    fn channels_of(&self, input: &ContentInput) -> Result<Vec<ChannelKind>, ConsoleError> {
        let mut channels = Vec::new();
        for c in &input.channels {
            let kind = self.config.channels.parse(c.trim()).ok_or_else(|| {
                ConsoleError::invalid("channels", format!("Kênh không hợp lệ: {c:?}."))
            })?;
            if !channels.contains(&kind) {
                channels.push(kind);
            }
        }
        if channels.is_empty() {
            return Err(ConsoleError::invalid(
                "channels",
                "Chọn ít nhất một kênh gửi.",
            ));
        }
        Ok(channels)
    }

    /// The audience areas an actor may address: their own area when they name none.
    fn audience_areas(
        &self,
        actor: &Actor,
        input: &ContentInput,
    ) -> Result<Vec<String>, ConsoleError> {
        let areas = &self.config.areas;
        let mut codes: Vec<String> = input
            .areas
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        codes.sort();
        codes.dedup();
        if let Some(unknown) = codes.iter().find(|c| !areas.contains(c)) {
            return Err(ConsoleError::invalid(
                "areas",
                format!("Không có địa bàn {unknown:?}."),
            ));
        }
        if codes.is_empty()
            && let Some(own) = &actor.area
        {
            codes.push(own.clone());
        }
        if !actor.covers(&codes, areas) {
            return Err(ConsoleError::Forbidden(
                "the audience reaches outside the account's area".to_string(),
            ));
        }
        Ok(codes)
    }

    fn tags_of(input: &ContentInput) -> Result<Vec<String>, ConsoleError> {
        let mut tags: Vec<String> = input
            .tags
            .iter()
            .flat_map(|t| split(t))
            .map(|t| t.to_lowercase())
            .collect();
        tags.sort();
        tags.dedup();
        if tags.len() > MAX_TAGS {
            return Err(ConsoleError::invalid(
                "tags",
                format!("Tối đa {MAX_TAGS} nhãn."),
            ));
        }
        if let Some(bad) = tags.iter().find(|t| {
            t.len() > MAX_TAG_CHARS
                || !t
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        }) {
            return Err(ConsoleError::invalid(
                "tags",
                format!(
                    "Nhãn {bad:?} chỉ được gồm chữ a–z, số, '-' hoặc '_', tối đa {MAX_TAG_CHARS} ký tự."
                ),
            ));
        }
        Ok(tags)
    }

    fn observance_of(&self, input: &ContentInput) -> Result<Option<String>, ConsoleError> {
        match non_empty(&input.observance) {
            None => Ok(None),
            Some(id) if self.calendar.observances().iter().any(|o| o.id == id) => Ok(Some(id)),
            Some(id) => Err(ConsoleError::invalid(
                "observance",
                format!("Không có sự kiện {id:?} trong lịch."),
            )),
        }
    }

    /// The context a preview renders with: a sample person in the area of the audience whose
    /// name is longest — its name and its opt-out line are the longest any recipient gets, so
    /// a text that fits there fits everywhere it goes.
    fn preview_context(
        &self,
        areas: &[String],
        observance: Option<&str>,
        at: DateTime<Utc>,
    ) -> MessageContext {
        let config = &self.config;
        let tz = config.campaign.time_zone;
        let date = at.with_timezone(&tz).date_naive();
        let audience: Vec<&crate::config::Area> = if areas.is_empty() {
            config.areas.iter().collect()
        } else {
            areas.iter().flat_map(|c| config.areas.subtree(c)).collect()
        };
        let area = audience
            .into_iter()
            .max_by_key(|a| a.in_sentence.chars().count())
            .or_else(|| config.areas.leaves().next());
        let observance =
            observance.and_then(|id| self.calendar.observances().iter().find(|o| o.id == id));
        MessageContext::for_recipient(
            config,
            &Recipient {
                person_name: "Nguyễn Thị Lan",
                person_kind: "resident",
                name_given: true,
                area_code: area.map(|a| a.code.as_str()).unwrap_or(""),
                area_name: area.map(|a| a.name.as_str()).unwrap_or(""),
                observance: observance.map(|o| o.name.as_str()).unwrap_or(""),
                theme: observance
                    .and_then(|o| o.themes.get(&o.date_for(date).year()))
                    .map_or("", String::as_str),
                observance_date: observance.map(|o| o.date_for(date)),
                date,
            },
        )
    }

    fn descriptor(&self, kind: ChannelKind) -> Result<&Descriptor, String> {
        self.config
            .channels
            .get(kind)
            .ok_or_else(|| format!("Không có kênh {}.", self.config.channels.label(kind)))
    }

    /// Renders one channel of content; the error is Vietnamese, for the form.
    fn render_channel(
        &self,
        template: Option<&str>,
        text: Option<&str>,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Result<Rendered, String> {
        let channel = self.descriptor(kind)?;
        let (rendered, settings) = match (template, text) {
            (Some(name), _) => {
                if !self.templates.has(name, kind) {
                    return Err(format!(
                        "Mẫu {name:?} không có bản cho kênh {}.",
                        channel.label
                    ));
                }
                if self
                    .templates
                    .missing_opt_out(name, kind, context)
                    .is_some()
                {
                    return Err(format!(
                        "Mẫu {name:?} không kết thúc bằng dòng hướng dẫn từ chối nhận tin nên không gửi qua {} được.",
                        channel.label
                    ));
                }
                let rendered = self
                    .templates
                    .preview(name, kind, context)
                    .map_err(|e| format!("Không hiển thị được nội dung: {e}"))?;
                // A template's budget in parts is `loa check`'s to enforce.
                let settings = BodySettings {
                    max_segments: usize::MAX,
                    ..self.templates.settings(name, kind)
                };
                (rendered, settings)
            }
            (None, Some(text)) => {
                let Some(most) = self.templates.staff_limit(channel) else {
                    return Err(no_staff_template(channel.label));
                };
                if text.chars().count() > most {
                    return Err(format!("Nội dung dài quá {most} ký tự."));
                }
                if let Some(unknown) = staff::unknown_placeholders(text).first() {
                    let known: Vec<String> =
                        staff::Placeholder::ALL.iter().map(|p| p.token()).collect();
                    return Err(format!(
                        "Không có mục chèn {unknown}. Chỉ dùng được: {}.",
                        known.join(", ")
                    ));
                }
                // The staff's words: placeholders filled in, everything else literal.
                let settings = BodySettings {
                    max_segments: MAX_FREE_SMS_SEGMENTS,
                    unaccented: false,
                };
                let text = self
                    .templates
                    .staff_body(channel, text, context, &settings)
                    .map_err(|e| format!("Không hiển thị được nội dung: {e}"))?;
                let rendered = Rendered {
                    sms: channel.format.size(&text),
                    text,
                };
                (rendered, settings)
            }
            (None, None) if self.templates.staff_limit(channel).is_none() => {
                return Err(no_staff_template(channel.label));
            }
            (None, None) => return Err("Chưa có nội dung cho kênh này.".to_string()),
        };
        channel
            .format
            .check(&rendered.text, &settings)
            .map_err(|problem| problem_vi(channel.label, problem))?;
        Ok(rendered)
    }

    /// Whether staff's own words can go by `kind` (a ZNS channel needs its staff template).
    fn carries_staff_text(&self, kind: ChannelKind) -> bool {
        self.config
            .channels
            .get(kind)
            .is_some_and(|d| self.templates.staff_limit(d).is_some())
    }

    pub(super) fn validate(
        &self,
        actor: &Actor,
        input: &ContentInput,
    ) -> Result<Valid, ConsoleError> {
        let channels = self.channels_of(input)?;
        typed_text("title", &input.title)?;
        for &kind in &channels {
            typed_text(
                &format!("{kind}_text"),
                &input.text(kind).unwrap_or_default(),
            )?;
        }
        let title = input.title.trim().to_string();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(ConsoleError::invalid(
                "title",
                format!("Tiêu đề cần từ 1 đến {MAX_TITLE_CHARS} ký tự."),
            ));
        }
        let areas = self.audience_areas(actor, input)?;
        let tags = Self::tags_of(input)?;
        let observance = self.observance_of(input)?;
        let send_at = self.parse_send_at(&input.send_at)?;
        let unreached = Self::unreached_of(input, observance.as_deref())?;
        let template = non_empty(&input.template);
        let context = self.preview_context(&areas, observance.as_deref(), send_at);
        let mut texts = BTreeMap::new();
        for &kind in &channels {
            let text = input.text(kind);
            if template.is_none() && !self.carries_staff_text(kind) {
                // Its people get the content's next channel (the scheduler leaves it out).
                continue;
            }
            let field = match &template {
                Some(_) => "template".to_string(),
                None => format!("{kind}_text"),
            };
            self.render_channel(template.as_deref(), text.as_deref(), kind, &context)
                .map_err(|message| ConsoleError::invalid(&field, message))?;
            if let (None, Some(text)) = (&template, text) {
                texts.insert(kind, text);
            }
        }
        Ok(Valid {
            title,
            template,
            texts,
            areas,
            tags,
            channels,
            observance,
            send_at,
            unreached,
            below_band: input.below_band,
        })
    }

    /// The span whose reached people are left out, as chosen; the observance's round needs an
    /// observance.
    fn unreached_of(
        input: &ContentInput,
        observance: Option<&str>,
    ) -> Result<Option<Unreached>, ConsoleError> {
        let Some(name) = input
            .unreached
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return Ok(None);
        };
        let span = Unreached::parse(name).ok_or_else(|| {
            ConsoleError::invalid(
                "unreached",
                "Khoảng thời gian không hợp lệ; chọn: năm, quý, tháng hoặc đợt sự kiện.",
            )
        })?;
        if span == Unreached::Observance && observance.is_none() {
            return Err(ConsoleError::invalid(
                "unreached",
                "Muốn bỏ qua người đã nhận tin trong đợt sự kiện, cần chọn sự kiện (ngày lễ, tháng hành động) ở mục “Thuộc sự kiện”.",
            ));
        }
        Ok(Some(span))
    }

    /// What each channel would send, its size and cost, and how many persons it reaches —
    /// for the form's live preview. Never fails on the content itself: problems come back
    /// per channel.
    pub async fn preview(
        &self,
        actor: &Actor,
        input: &ContentInput,
    ) -> Result<Preview, ConsoleError> {
        actor.require(Permission::ViewQueue)?;
        let channels = self.channels_of(input)?;
        let areas = self.audience_areas(actor, input)?;
        let tags = Self::tags_of(input)?;
        let observance = self.observance_of(input)?;
        let at = self
            .parse_send_at(&input.send_at)
            .unwrap_or_else(|_| self.clock.now());
        let context = self.preview_context(&areas, observance.as_deref(), at);
        let audience = Audience {
            areas,
            tags,
            // A span not understood counts everyone here; saving names the field.
            unreached: Self::unreached_of(input, observance.as_deref())
                .ok()
                .flatten(),
            below_band: input.below_band,
        };
        let local = at
            .with_timezone(&self.config.campaign.time_zone)
            .date_naive();
        let year = local.year();
        let observance_date = observance
            .as_deref()
            .and_then(|id| self.calendar.observances().iter().find(|o| o.id == id))
            .map_or(local, |o| o.date_for(local));
        let template = non_empty(&input.template);
        // Staff's own words skip a channel that cannot carry them: its people are counted on
        // their next channel.
        let sending: Vec<ChannelKind> = channels
            .iter()
            .copied()
            .filter(|&k| template.is_some() || self.carries_staff_text(k))
            .collect();
        let filter = {
            let mut conn = self.db.pool.acquire().await?;
            crate::reach::audience_filter(
                &mut conn,
                &audience,
                &sending,
                &self.config.areas,
                self.config.campaign.target,
                local,
                observance_date,
            )
            .await?
        };
        let split = audience::count_filtered(&self.db, &filter).await?;
        let counted = audience::count_by_area(&self.db, &filter).await?;
        let tree = &self.config.areas;
        let by_area: Vec<AreaCount> = tree
            .leaves()
            .filter(|a| {
                audience.areas.is_empty()
                    || audience
                        .areas
                        .iter()
                        .any(|code| tree.subtree(code).iter().any(|x| x.code == a.code))
            })
            .map(|a| AreaCount {
                code: a.code.clone(),
                name: a.name.clone(),
                recipients: counted.get(&a.code).copied().unwrap_or(0),
            })
            .collect();
        let mut out = Vec::new();
        for &kind in &channels {
            // `channels_of` keeps only configured channels.
            let Some(channel) = self.config.channels.get(kind) else {
                continue;
            };
            let recipients = split.get(&kind).copied().unwrap_or(0);
            let text = input.text(kind);
            let rendered =
                self.render_channel(template.as_deref(), text.as_deref(), kind, &context);
            out.push(match rendered {
                Ok(r) => {
                    let segments = r.sms.map(|s| s.segments);
                    ChannelPreview {
                        channel: kind,
                        channel_label: channel.label,
                        characters: channel.format.visible(&r.text).chars().count(),
                        sms_segments: segments,
                        sms_encoding: r.sms.map(|s| s.encoding.to_string()),
                        cost_vnd: channel
                            .price
                            .cost(segments)
                            .map(|each| each * recipients as f64),
                        rich: channel.format.rich(&r.text),
                        // What the resident reads: a ZNS payload shows its template's wording.
                        text: Some(match channel.format.rich(&r.text) {
                            Some(_) => r.text,
                            None => channel.format.visible(&r.text),
                        }),
                        recipients,
                        error: None,
                        budget_left: None,
                        over_budget: false,
                    }
                }
                Err(e) => ChannelPreview::failed(kind, channel.label, recipients, e),
            });
        }
        let mut conn = self.db.pool.acquire().await?;
        let spends = crate::budget::year(
            &mut conn,
            &self.config.channels,
            self.config.campaign.time_zone,
            year,
        )
        .await?;
        for c in &mut out {
            c.budget_left = spends
                .iter()
                .find(|s| s.channel == c.channel)
                .and_then(|s| s.left());
            c.over_budget =
                matches!((c.cost_vnd, c.budget_left), (Some(cost), Some(left)) if cost > left);
        }
        Ok(Preview {
            recipients: split.values().sum(),
            channels: out,
            by_area,
        })
    }
}

impl ChannelPreview {
    fn failed(
        channel: ChannelKind,
        channel_label: &'static str,
        recipients: i64,
        error: String,
    ) -> ChannelPreview {
        ChannelPreview {
            channel,
            channel_label,
            text: None,
            rich: None,
            characters: 0,
            sms_segments: None,
            sms_encoding: None,
            cost_vnd: None,
            recipients,
            error: Some(error),
            budget_left: None,
            over_budget: false,
        }
    }
}

/// Why staff's own words cannot go by a channel that sends only approved templates.
fn no_staff_template(label: &str) -> String {
    format!(
        "{label} chỉ gửi được mẫu tin đã đăng ký và được {label} duyệt; hiện chưa có mẫu dành cho \
         nội dung tự soạn. Vì vậy, người dân thường nhận tin qua {label} sẽ nhận nội dung này qua \
         kênh kế tiếp trong danh sách kênh đã chọn. Nếu muốn gửi qua {label}, xin chọn một mẫu ở ô \
         “Dùng mẫu tin có sẵn”."
    )
}
