//! The content queue: messages staff write in the console, sent once an approver other than
//! the author approves them. Owns the table `contents`.
//!
//! draft → awaiting_approval → approved → sending → done, or cancelled before sending. Editing
//! content that is awaiting approval or approved sends it back to draft: what was approved is
//! exactly what goes out. At its send time the scheduler turns approved content into an
//! occurrence carrying the text as approved (`occurrences.body_*`), in the same transaction as
//! the state change, so a restart can neither lose nor repeat it.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use super::{Actor, Console, ConsoleError, Permission, audit};
use crate::audience;
use crate::calendar::Audience;
use crate::config::ChannelKind;
use crate::store::{from_epoch, to_epoch};
use crate::templates::telegram_html::{self, RichNode};
use crate::templates::{MessageContext, Recipient, Rendered, TELEGRAM_MAX_CHARS, sms_size, staff};

/// Parts a free-text SMS may take: beyond this it costs more than a district would pay for one
/// message per person.
pub const MAX_FREE_SMS_SEGMENTS: usize = 5;
/// Characters staff may type for Telegram (Telegram's own limit; placeholders are counted again
/// once filled in).
pub const MAX_TELEGRAM_TEXT_CHARS: usize = TELEGRAM_MAX_CHARS;
/// Characters staff may type for SMS: more than five parts hold in any encoding.
pub const MAX_SMS_TEXT_CHARS: usize = 1000;
/// A title, as the queue and the audit log show it.
pub const MAX_TITLE_CHARS: usize = 200;
/// Tags an audience may require, and the length of each.
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    AwaitingApproval,
    Approved,
    Sending,
    Done,
    Cancelled,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Draft,
        State::AwaitingApproval,
        State::Approved,
        State::Sending,
        State::Done,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::AwaitingApproval => "awaiting_approval",
            State::Approved => "approved",
            State::Sending => "sending",
            State::Done => "done",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Draft => "Bản nháp",
            State::AwaitingApproval => "Chờ duyệt",
            State::Approved => "Đã duyệt, chờ gửi",
            State::Sending => "Đang gửi",
            State::Done => "Đã gửi xong",
            State::Cancelled => "Đã hủy",
        }
    }

    /// Whether staff may still change or cancel it.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            State::Draft | State::AwaitingApproval | State::Approved
        )
    }
}

/// A step of the approval workflow, as the console's buttons and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Submit,
    Approve,
    Cancel,
}

impl Transition {
    pub fn parse(s: &str) -> Option<Transition> {
        match s {
            "submit" => Some(Transition::Submit),
            "approve" => Some(Transition::Approve),
            "cancel" => Some(Transition::Cancel),
            _ => None,
        }
    }

    /// What the actor needs to take this step at all (more is checked with the content).
    pub fn permission(self) -> Permission {
        match self {
            Transition::Submit | Transition::Cancel => Permission::EditContent,
            Transition::Approve => Permission::Approve,
        }
    }
}

/// What the form or the API sends. Texts are typed by people: placeholders in double braces
/// (`{{area.name}}`) are filled in, anything else is sent as written.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct ContentInput {
    #[serde(default)]
    pub title: String,
    /// A template of `messages/` instead of free text.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub telegram_text: Option<String>,
    #[serde(default)]
    pub sms_text: Option<String>,
    /// Area codes; empty: the whole district (or the account's own area).
    #[serde(default)]
    pub areas: Vec<String>,
    /// A person must carry every tag.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `telegram`, `sms`, in order of preference.
    #[serde(default)]
    pub channels: Vec<String>,
    /// An observance id of `schedules/`, for reports.
    #[serde(default)]
    pub observance: Option<String>,
    /// Local time, `2026-12-01T08:00`, or RFC 3339.
    #[serde(default)]
    pub send_at: String,
}

/// Content as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Content {
    pub id: i64,
    pub title: String,
    pub template: Option<String>,
    pub telegram_text: Option<String>,
    pub sms_text: Option<String>,
    pub areas: Vec<String>,
    pub tags: Vec<String>,
    pub channels: Vec<ChannelKind>,
    pub observance: Option<String>,
    pub send_at: DateTime<Utc>,
    pub state: State,
    pub author: String,
    pub approver: Option<String>,
    /// Bumped by every edit; an approval names the version it approves.
    pub version: i64,
    pub occurrence_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Content {
    pub fn audience(&self) -> Audience {
        Audience {
            areas: self.areas.clone(),
            tags: self.tags.clone(),
        }
    }

    /// The key of its occurrence: content is sent once.
    pub fn schedule_id(&self) -> String {
        format!("content:{}", self.id)
    }

    /// The staff's own text for `kind`, as typed (placeholders are filled in at sending, never
    /// compiled), or `None` when a template of `messages/` is used.
    pub fn body(&self, kind: ChannelKind) -> Option<String> {
        let text = match kind {
            ChannelKind::Telegram => self.telegram_text.as_deref(),
            ChannelKind::Sms => self.sms_text.as_deref(),
        };
        match (&self.template, text) {
            (None, Some(text)) => Some(staff::normalise(text)),
            _ => None,
        }
    }
}

/// One channel of a preview.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChannelPreview {
    pub channel: ChannelKind,
    /// As the recipient reads it (Telegram: the HTML as sent).
    pub text: Option<String>,
    /// Telegram: the text as the reader sees it, Telegram's few tags kept through an allow-list
    /// and everything else as text, for the console to build without inserting HTML.
    pub rich: Option<Vec<RichNode>>,
    pub characters: usize,
    pub sms_segments: Option<usize>,
    pub sms_encoding: Option<String>,
    /// Price of one message × recipients on this channel (VND), SMS only.
    pub cost_vnd: Option<f64>,
    /// Persons this channel would reach (each person gets one channel).
    pub recipients: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Preview {
    pub recipients: i64,
    pub channels: Vec<ChannelPreview>,
}

/// Validated input, ready to store.
#[derive(Debug, Clone)]
struct Valid {
    title: String,
    template: Option<String>,
    telegram_text: Option<String>,
    sms_text: Option<String>,
    areas: Vec<String>,
    tags: Vec<String>,
    channels: Vec<ChannelKind>,
    observance: Option<String>,
    send_at: DateTime<Utc>,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl Valid {
    /// Binds $1…$9 of the insert and the update, in the columns' order.
    fn bind_fields<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        let channels: Vec<&str> = self.channels.iter().map(|c| c.as_str()).collect();
        query
            .bind(self.title.clone())
            .bind(self.template.clone())
            .bind(self.telegram_text.clone())
            .bind(self.sms_text.clone())
            .bind(join(&self.areas))
            .bind(join(&self.tags))
            .bind(channels.join(","))
            .bind(self.observance.clone())
            .bind(to_epoch(self.send_at))
    }
}

fn join(items: &[String]) -> String {
    items.join(",")
}

fn split(text: &str) -> Vec<String> {
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

    fn channels_of(input: &ContentInput) -> Result<Vec<ChannelKind>, ConsoleError> {
        let mut channels = Vec::new();
        for c in &input.channels {
            let kind = ChannelKind::parse(c.trim()).ok_or_else(|| {
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

    /// The context a preview renders with: a sample person in the first area of the audience.
    fn preview_context(
        &self,
        areas: &[String],
        observance: Option<&str>,
        at: DateTime<Utc>,
    ) -> MessageContext {
        let config = &self.config;
        let tz = config.campaign.time_zone;
        let date = at.with_timezone(&tz).date_naive();
        let area = areas
            .first()
            .and_then(|c| config.areas.get(c))
            .or_else(|| config.areas.leaves().next());
        let observance =
            observance.and_then(|id| self.calendar.observances().iter().find(|o| o.id == id));
        MessageContext::for_recipient(
            config,
            &Recipient {
                person_name: "Nguyễn Thị Lan",
                area_code: area.map(|a| a.code.as_str()).unwrap_or(""),
                area_name: area.map(|a| a.name.as_str()).unwrap_or(""),
                observance: observance.map(|o| o.name.as_str()).unwrap_or(""),
                observance_date: observance.map(|o| o.date_for(date)),
                date,
            },
        )
    }

    /// Renders one channel of content; the error is Vietnamese, for the form.
    fn render_channel(
        &self,
        template: Option<&str>,
        text: Option<&str>,
        kind: ChannelKind,
        context: &MessageContext,
    ) -> Result<Rendered, String> {
        let rendered = match (template, text) {
            (Some(name), _) => {
                if !self.templates.has(name, kind) {
                    return Err(format!("Mẫu {name:?} không có bản cho kênh {kind}."));
                }
                self.templates
                    .preview(name, kind, context)
                    .map_err(|e| format!("Không hiển thị được nội dung: {e}"))?
            }
            (None, Some(text)) => {
                let most = match kind {
                    ChannelKind::Telegram => MAX_TELEGRAM_TEXT_CHARS,
                    ChannelKind::Sms => MAX_SMS_TEXT_CHARS,
                };
                if text.chars().count() > most {
                    return Err(format!("Nội dung dài quá {most} ký tự."));
                }
                if let Some(unknown) = staff::unknown_placeholders(text).first() {
                    let known: Vec<String> =
                        staff::Placeholder::ALL.iter().map(|p| p.token()).collect();
                    return Err(format!(
                        "Không có chỗ điền {unknown}; chỉ dùng được: {}.",
                        known.join(", ")
                    ));
                }
                // The staff's words: placeholders filled in, everything else literal.
                let text = staff::fill(text, kind, context);
                Rendered {
                    sms: (kind == ChannelKind::Sms).then(|| sms_size(&text)),
                    text,
                }
            }
            (None, None) => return Err("Chưa có nội dung cho kênh này.".to_string()),
        };
        match kind {
            ChannelKind::Telegram => {
                telegram_html::validate(&rendered.text)
                    .map_err(|e| format!("Telegram sẽ từ chối nội dung này: {e}"))?;
                let visible = telegram_html::visible_text(&rendered.text).chars().count();
                if visible > TELEGRAM_MAX_CHARS {
                    return Err(format!(
                        "Tin Telegram dài {visible} ký tự; tối đa {TELEGRAM_MAX_CHARS}."
                    ));
                }
            }
            ChannelKind::Sms => {
                let parts = rendered.sms.map(|s| s.segments).unwrap_or(1);
                if template.is_none() && parts > MAX_FREE_SMS_SEGMENTS {
                    return Err(format!(
                        "Tin SMS chiếm {parts} tin nhắn; tối đa {MAX_FREE_SMS_SEGMENTS}."
                    ));
                }
            }
        }
        Ok(rendered)
    }

    fn validate(&self, actor: &Actor, input: &ContentInput) -> Result<Valid, ConsoleError> {
        for (field, text) in [
            ("title", Some(&input.title)),
            ("telegram_text", input.telegram_text.as_ref()),
            ("sms_text", input.sms_text.as_ref()),
        ] {
            super::typed_text(field, text.map_or("", |t| t.as_str()))?;
        }
        let title = input.title.trim().to_string();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(ConsoleError::invalid(
                "title",
                format!("Tiêu đề cần từ 1 đến {MAX_TITLE_CHARS} ký tự."),
            ));
        }
        let channels = Self::channels_of(input)?;
        let areas = self.audience_areas(actor, input)?;
        let tags = Self::tags_of(input)?;
        let observance = self.observance_of(input)?;
        let send_at = self.parse_send_at(&input.send_at)?;
        let template = non_empty(&input.template);
        let telegram_text = non_empty(&input.telegram_text);
        let sms_text = non_empty(&input.sms_text);
        let context = self.preview_context(&areas, observance.as_deref(), send_at);
        for &kind in &channels {
            let text = match kind {
                ChannelKind::Telegram => telegram_text.as_deref(),
                ChannelKind::Sms => sms_text.as_deref(),
            };
            let field = match (&template, kind) {
                (Some(_), _) => "template",
                (None, ChannelKind::Telegram) => "telegram_text",
                (None, ChannelKind::Sms) => "sms_text",
            };
            self.render_channel(template.as_deref(), text, kind, &context)
                .map_err(|message| ConsoleError::invalid(field, message))?;
        }
        Ok(Valid {
            title,
            template,
            telegram_text,
            sms_text,
            areas,
            tags,
            channels,
            observance,
            send_at,
        })
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
        let channels = Self::channels_of(input)?;
        let areas = self.audience_areas(actor, input)?;
        let tags = Self::tags_of(input)?;
        let observance = self.observance_of(input)?;
        let at = self
            .parse_send_at(&input.send_at)
            .unwrap_or_else(|_| self.clock.now());
        let context = self.preview_context(&areas, observance.as_deref(), at);
        let audience = Audience { areas, tags };
        let split =
            audience::count_by_channel(&self.db, &audience, &channels, &self.config.areas).await?;
        let template = non_empty(&input.template);
        let price = self.config.sms.price_per_segment;
        let mut out = Vec::new();
        for &kind in &channels {
            let text = match kind {
                ChannelKind::Telegram => non_empty(&input.telegram_text),
                ChannelKind::Sms => non_empty(&input.sms_text),
            };
            let recipients = split.get(&kind).copied().unwrap_or(0);
            let preview =
                match self.render_channel(template.as_deref(), text.as_deref(), kind, &context) {
                    Ok(r) => ChannelPreview {
                        channel: kind,
                        characters: match kind {
                            ChannelKind::Telegram => {
                                telegram_html::visible_text(&r.text).chars().count()
                            }
                            ChannelKind::Sms => r.text.chars().count(),
                        },
                        sms_segments: r.sms.map(|s| s.segments),
                        sms_encoding: r.sms.map(|s| s.encoding.to_string()),
                        cost_vnd: r.sms.map(|s| s.segments as f64 * price * recipients as f64),
                        rich: (kind == ChannelKind::Telegram).then(|| telegram_html::rich(&r.text)),
                        text: Some(r.text),
                        recipients,
                        error: None,
                    },
                    Err(e) => ChannelPreview {
                        channel: kind,
                        text: None,
                        rich: None,
                        characters: 0,
                        sms_segments: None,
                        sms_encoding: None,
                        cost_vnd: None,
                        recipients,
                        error: Some(e),
                    },
                };
            out.push(preview);
        }
        Ok(Preview {
            recipients: split.values().sum(),
            channels: out,
        })
    }

    pub async fn create_content(
        &self,
        actor: &Actor,
        input: &ContentInput,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let valid = self.validate(actor, input)?;
        let now = self.clock.now();
        let mut tx = self.db.pool.begin().await?;
        let id: i64 = valid
            .bind_fields(sqlx::query(
                "INSERT INTO contents (title, template, telegram_text, sms_text, areas, tags, channels,
                     observance, send_at, state, author, created_at, updated_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft', $10, $11, $11, 1) RETURNING id",
            ))
        .bind(&actor.id)
        .bind(to_epoch(now))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        record_version(&mut tx, id, 1, &actor.id, now).await?;
        audit::record(
            &mut *tx,
            now,
            &actor.id,
            "content.create",
            Some(&format!("content:{id}")),
            Some(&valid.title),
        )
        .await?;
        tx.commit().await?;
        self.content(actor, id).await
    }

    /// Changes content: a new version, written by `actor`. Anything but a draft goes back to
    /// draft and needs approving again — by someone who wrote none of it.
    pub async fn update_content(
        &self,
        actor: &Actor,
        id: i64,
        input: &ContentInput,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let before = self.content(actor, id).await?;
        if !before.state.is_open() {
            return Err(ConsoleError::Conflict(format!(
                "Nội dung ở trạng thái \"{}\" không sửa được nữa.",
                before.state.label()
            )));
        }
        let valid = self.validate(actor, input)?;
        let now = self.clock.now();
        let version = before.version + 1;
        let mut tx = self.db.pool.begin().await?;
        let updated = valid
            .bind_fields(sqlx::query(
                "UPDATE contents SET title = $1, template = $2, telegram_text = $3, sms_text = $4, areas = $5,
                     tags = $6, channels = $7, observance = $8, send_at = $9, state = 'draft', approver = NULL,
                     updated_at = $10, version = $11
                 WHERE id = $12 AND state = $13 AND version = $14",
            ))
        .bind(to_epoch(now))
        .bind(version)
        .bind(id)
        .bind(before.state.as_str())
        .bind(before.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(changed_meanwhile());
        }
        record_version(&mut tx, id, version, &actor.id, now).await?;
        let detail = if before.state == State::Draft {
            format!("version {version}")
        } else {
            format!("version {version}; {} -> draft", before.state.as_str())
        };
        audit::record(
            &mut *tx,
            now,
            &actor.id,
            "content.edit",
            Some(&format!("content:{id}")),
            Some(&detail),
        )
        .await?;
        tx.commit().await?;
        self.content(actor, id).await
    }

    /// Moves `content`, as the actor saw it, to `to`: nothing happens (409) if it changed state
    /// or version since.
    async fn transition(
        &self,
        actor: &Actor,
        content: &Content,
        to: State,
        action: &str,
    ) -> Result<Content, ConsoleError> {
        let now = self.clock.now();
        let approving = to == State::Approved;
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE contents SET state = $1, updated_at = $2,
                 approver = CASE WHEN $3 = 1 THEN $4 ELSE approver END,
                 approved_version = CASE WHEN $3 = 1 THEN version ELSE approved_version END
             WHERE id = $5 AND state = $6 AND version = $7",
        )
        .bind(to.as_str())
        .bind(to_epoch(now))
        .bind(i64::from(approving))
        .bind(&actor.id)
        .bind(content.id)
        .bind(content.state.as_str())
        .bind(content.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(changed_meanwhile());
        }
        audit::record(
            &mut *tx,
            now,
            &actor.id,
            action,
            Some(&format!("content:{}", content.id)),
            Some(&format!("version {}: {}", content.version, content.title)),
        )
        .await?;
        tx.commit().await?;
        self.content(actor, content.id).await
    }

    /// Submits, approves or cancels content. `seen` is the version the actor was shown: an
    /// approval must name it, and nothing is done to a version other than the one seen.
    pub async fn apply(
        &self,
        actor: &Actor,
        id: i64,
        step: Transition,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        actor.require(step.permission())?;
        match step {
            Transition::Submit => self.submit_content(actor, id, seen).await,
            Transition::Approve => {
                let seen = seen.ok_or_else(|| {
                    ConsoleError::invalid(
                        "version",
                        "Cần ghi rõ phiên bản nội dung được duyệt (version).",
                    )
                })?;
                self.approve_content(actor, id, seen).await
            }
            Transition::Cancel => self.cancel_content(actor, id, seen).await,
        }
    }

    /// The content as the actor saw it: 409 when it has changed since.
    async fn as_seen(
        &self,
        actor: &Actor,
        id: i64,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        let content = self.content(actor, id).await?;
        match seen {
            Some(v) if v != content.version => Err(ConsoleError::Conflict(format!(
                "Nội dung đã được sửa (phiên bản {} thay cho {v}); xin xem lại trước khi thao tác.",
                content.version
            ))),
            _ => Ok(content),
        }
    }

    pub async fn submit_content(
        &self,
        actor: &Actor,
        id: i64,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let content = self.as_seen(actor, id, seen).await?;
        if content.state != State::Draft {
            return Err(ConsoleError::Conflict(
                "Chỉ gửi duyệt được bản nháp.".to_string(),
            ));
        }
        self.transition(actor, &content, State::AwaitingApproval, "content.submit")
            .await
    }

    /// Approves version `seen`: the approver wrote none of it (neither the author nor anyone
    /// who edited it since it was created or last approved).
    pub async fn approve_content(
        &self,
        actor: &Actor,
        id: i64,
        seen: i64,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::Approve)?;
        let content = self.content(actor, id).await?;
        if self.writers(&content).await?.contains(&actor.id) {
            return Err(ConsoleError::Forbidden(
                "Không thể duyệt nội dung do chính mình soạn hoặc sửa.".to_string(),
            ));
        }
        let content = self.as_seen(actor, id, Some(seen)).await?;
        if content.state != State::AwaitingApproval {
            return Err(ConsoleError::Conflict(
                "Chỉ duyệt được nội dung đang chờ duyệt.".to_string(),
            ));
        }
        self.transition(actor, &content, State::Approved, "content.approve")
            .await
    }

    /// Who may not approve `content`: its author, and everyone who wrote a version of it since
    /// it was created or last approved.
    pub async fn writers(&self, content: &Content) -> Result<Vec<String>, ConsoleError> {
        let rows = sqlx::query(
            "SELECT DISTINCT v.editor FROM content_versions v JOIN contents c ON c.id = v.content_id
             WHERE v.content_id = $1 AND v.version > COALESCE(c.approved_version, 0)",
        )
        .bind(content.id)
        .fetch_all(&self.db.pool)
        .await?;
        let mut writers = vec![content.author.clone()];
        for row in rows {
            let editor: String = row.try_get(0)?;
            if !writers.contains(&editor) {
                writers.push(editor);
            }
        }
        Ok(writers)
    }

    /// Staff cancel their own content; approvers anyone's. Only before sending starts.
    pub async fn cancel_content(
        &self,
        actor: &Actor,
        id: i64,
        seen: Option<i64>,
    ) -> Result<Content, ConsoleError> {
        actor.require(Permission::EditContent)?;
        let content = self.as_seen(actor, id, seen).await?;
        if content.author != actor.id && !Permission::Approve.allows(actor.role) {
            return Err(ConsoleError::Forbidden(
                "only the author or an approver may cancel".to_string(),
            ));
        }
        if !content.state.is_open() {
            return Err(ConsoleError::Conflict(format!(
                "Nội dung ở trạng thái \"{}\" không hủy được.",
                content.state.label()
            )));
        }
        self.transition(actor, &content, State::Cancelled, "content.cancel")
            .await
    }

    /// One item, if the actor's area covers its audience.
    pub async fn content(&self, actor: &Actor, id: i64) -> Result<Content, ConsoleError> {
        actor.require(Permission::ViewQueue)?;
        let row = sqlx::query(AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or(ConsoleError::NotFound)?;
        let content = from_row(&row)?;
        if !actor.covers(&content.areas, &self.config.areas) {
            return Err(ConsoleError::NotFound);
        }
        Ok(content)
    }

    /// The queue as the actor may see it, soonest first; cancelled and done last.
    pub async fn contents(&self, actor: &Actor) -> Result<Vec<Content>, ConsoleError> {
        actor.require(Permission::ViewQueue)?;
        self.contents_in_scope(actor).await
    }

    /// Every item whose audience lies within the actor's area, whatever their role may see.
    pub(super) async fn contents_in_scope(
        &self,
        actor: &Actor,
    ) -> Result<Vec<Content>, ConsoleError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{SELECT} ORDER BY CASE WHEN state IN ('done', 'cancelled') THEN 1 ELSE 0 END, send_at, id"
        )))
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let content = from_row(&row)?;
            if actor.covers(&content.areas, &self.config.areas) {
                out.push(content);
            }
        }
        Ok(out)
    }
}

const SELECT: &str =
    "SELECT id, title, template, telegram_text, sms_text, areas, tags, channels, observance,
    send_at, state, author, approver, occurrence_id, created_at, updated_at, version FROM contents";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Content, ConsoleError> {
    let state: String = r.try_get(10)?;
    let channels: String = r.try_get(7)?;
    Ok(Content {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        template: r.try_get(2)?,
        telegram_text: r.try_get(3)?,
        sms_text: r.try_get(4)?,
        areas: split(&r.try_get::<String, _>(5)?),
        tags: split(&r.try_get::<String, _>(6)?),
        channels: split(&channels)
            .iter()
            .filter_map(|c| ChannelKind::parse(c))
            .collect(),
        observance: r.try_get(8)?,
        send_at: from_epoch(r.try_get(9)?),
        state: State::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown content state {state:?}"))?,
        author: r.try_get(11)?,
        approver: r.try_get(12)?,
        occurrence_id: r.try_get(13)?,
        created_at: from_epoch(r.try_get(14)?),
        updated_at: from_epoch(r.try_get(15)?),
        version: r.try_get(16)?,
    })
}

fn changed_meanwhile() -> ConsoleError {
    ConsoleError::Conflict("Nội dung vừa được người khác thay đổi; xin tải lại trang.".to_string())
}

/// Records who wrote `version` of content `id`, in the transaction that stores it.
async fn record_version(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    version: i64,
    editor: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO content_versions (content_id, version, editor, at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(version)
    .bind(editor)
    .bind(to_epoch(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Approved content whose send time has come, for the scheduler.
pub async fn due(db: &crate::store::Db, now: DateTime<Utc>) -> Result<Vec<Content>, ConsoleError> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{SELECT} WHERE state = 'approved' AND send_at <= $1 ORDER BY send_at, id"
    )))
    .bind(to_epoch(now))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Marks approved content as sending, with its occurrence; false when someone else got there
/// first (edited, cancelled, or another instance sent it). Part of the scheduler's transaction.
pub async fn mark_sending(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    occurrence_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE contents SET state = 'sending', occurrence_id = $1, updated_at = $2 WHERE id = $3 AND state = 'approved'",
    )
    .bind(occurrence_id)
    .bind(to_epoch(now))
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Content whose every delivery has finished is done.
pub async fn mark_done(db: &crate::store::Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE contents SET state = 'done', updated_at = $1
         WHERE state = 'sending' AND NOT EXISTS (
             SELECT 1 FROM deliveries d WHERE d.occurrence_id = contents.occurrence_id
                 AND d.status IN ('pending', 'sending'))",
    )
    .bind(to_epoch(now))
    .execute(&db.pool)
    .await?
    .rows_affected())
}

/// (id, title) of content that has gone out, for the dashboard's campaign filter.
pub async fn sent(db: &crate::store::Db) -> Result<Vec<(i64, String)>, ConsoleError> {
    let rows = sqlx::query(
        "SELECT id, title FROM contents WHERE state IN ('sending', 'done') ORDER BY send_at DESC, id DESC",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}
