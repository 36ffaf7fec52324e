//! The content queue: messages staff write in the console, sent once an approver who wrote
//! none of it approves the version they saw.
//!
//! draft → awaiting_approval → approved → sending → done, or cancelled before sending. Every
//! edit is a new version, and sends anything but a draft back to draft: what was approved is
//! exactly what goes out. At its send time the scheduler turns approved content into an
//! occurrence carrying its texts as approved (`occurrence_bodies`), in the same transaction as
//! the state change, so a restart can neither lose nor repeat it.
//!
//! Text typed by staff is kept per channel (`texts`), as typed; placeholders are filled in at
//! sending (`templates::staff`), never compiled.
//!
//! # Layout
//!
//! * this file — the types: [`State`], [`Transition`], [`ContentInput`], [`Content`],
//!   [`Preview`].
//! * `check` — validating input, rendering each channel, the live preview.
//! * `workflow` — creating, editing, submitting, approving, cancelling.
//! * `store` — the tables `contents`, `content_versions`, `content_texts`, and what the
//!   scheduler asks of them.

mod check;
mod store;
mod workflow;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Permission;
use crate::calendar::{Audience, Unreached};
use crate::channel::ChannelKind;
use crate::templates::staff;
use crate::text::telegram_html::RichNode;

pub use check::{
    MAX_FREE_SMS_SEGMENTS, MAX_SMS_TEXT_CHARS, MAX_TAG_CHARS, MAX_TAGS, MAX_TELEGRAM_TEXT_CHARS,
    MAX_TITLE_CHARS,
};
pub use store::{due, mark_done, mark_sending};

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

    pub const fn as_str(self) -> &'static str {
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

    /// As a SQL literal: `'draft'`.
    pub fn sql(self) -> String {
        format!("'{}'", self.as_str())
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
    /// The staff's own text per channel: `{"telegram": "…", "sms": "…"}`.
    #[serde(default)]
    pub texts: BTreeMap<String, String>,
    /// Area codes; empty: the whole district (or the account's own area).
    #[serde(default)]
    pub areas: Vec<String>,
    /// A person must carry every tag.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Channel names, in order of preference.
    #[serde(default)]
    pub channels: Vec<String>,
    /// An observance id of `schedules/`, for reports.
    #[serde(default)]
    pub observance: Option<String>,
    /// Local time, `2026-12-01T08:00`, or RFC 3339.
    #[serde(default)]
    pub send_at: String,
    /// Only people not yet reached in this span: `year`, `quarter`, `month`, `observance`
    /// (the chosen observance's round); none or `""`: everyone.
    #[serde(default)]
    pub unreached: Option<String>,
    /// Only the communes whose reach this year is still below the target band.
    #[serde(default)]
    pub below_band: bool,
    /// Texts also come as `<channel>_text` (`telegram_text`, `sms_text`), as the console's form
    /// names its fields; see [`ContentInput::text`].
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl ContentInput {
    /// What was typed for `channel`, from `texts` or `<channel>_text`; blank is nothing.
    pub fn text(&self, channel: ChannelKind) -> Option<String> {
        let typed = self.texts.get(channel.as_str()).cloned().or_else(|| {
            match self.other.get(&format!("{channel}_text")) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                _ => None,
            }
        });
        typed.filter(|t| !t.trim().is_empty())
    }

    /// Sets the text typed for `channel`.
    pub fn set_text(&mut self, channel: ChannelKind, text: impl Into<String>) {
        self.other.remove(&format!("{channel}_text"));
        self.texts.insert(channel.as_str().to_string(), text.into());
    }

    /// Every text as it was given, for the form to show again: name of the field → value.
    pub fn typed_fields(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .other
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_suffix("_text")?.to_string(),
                    v.as_str()?.to_string(),
                ))
            })
            .collect();
        out.extend(self.texts.clone());
        out
    }
}

/// Content as stored.
/// `"year"`, `"quarter"`, …, or null.
fn unreached_name<S: serde::Serializer>(u: &Option<Unreached>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_some(u.as_str()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Content {
    pub id: i64,
    pub title: String,
    pub template: Option<String>,
    /// The staff's own text per channel, as typed.
    pub texts: BTreeMap<ChannelKind, String>,
    pub areas: Vec<String>,
    pub tags: Vec<String>,
    pub channels: Vec<ChannelKind>,
    pub observance: Option<String>,
    pub send_at: DateTime<Utc>,
    /// Only people not yet reached in this span.
    #[serde(serialize_with = "unreached_name")]
    pub unreached: Option<Unreached>,
    /// Only the communes still below the target band.
    pub below_band: bool,
    pub state: State,
    pub author: String,
    pub approver: Option<String>,
    /// Bumped by every edit; an approval names the version it approves.
    pub version: i64,
    pub occurrence_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where an item stands in the queue's order (unfinished first, then by send time): a page
/// of the JSON API starts after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueKey {
    /// Done or cancelled.
    pub finished: bool,
    pub send_at: i64,
    pub id: i64,
}

impl QueueKey {
    pub fn of(content: &Content) -> QueueKey {
        QueueKey {
            finished: matches!(content.state, State::Done | State::Cancelled),
            send_at: crate::store::to_epoch(content.send_at),
            id: content.id,
        }
    }

    /// As a page's address carries it: `<finished>.<send_at>.<id>`.
    pub fn cursor(&self) -> String {
        format!("{}.{}.{}", u8::from(self.finished), self.send_at, self.id)
    }

    /// A [`QueueKey::cursor`] read back; `None` for anything else.
    pub fn parse(text: &str) -> Option<QueueKey> {
        let mut parts = text.split('.');
        let finished = match parts.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let key = QueueKey {
            finished,
            send_at: parts.next()?.parse().ok()?,
            id: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(key)
    }
}

impl Content {
    pub fn audience(&self) -> Audience {
        Audience {
            areas: self.areas.clone(),
            tags: self.tags.clone(),
            unreached: self.unreached,
            below_band: self.below_band,
        }
    }

    /// The key of its occurrence: content is sent once.
    pub fn schedule_id(&self) -> String {
        format!("content:{}", self.id)
    }

    /// The staff's own text for `kind`, as typed (placeholders are filled in at sending, never
    /// compiled), or `None` when a template of `messages/` is used.
    pub fn body(&self, kind: ChannelKind) -> Option<String> {
        match (&self.template, self.texts.get(&kind)) {
            (None, Some(text)) => Some(staff::normalise(text)),
            _ => None,
        }
    }

    /// The input that would store it again: for the form.
    pub fn input(&self, send_at_local: String) -> ContentInput {
        ContentInput {
            title: self.title.clone(),
            template: self.template.clone(),
            texts: self
                .texts
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect(),
            areas: self.areas.clone(),
            tags: self.tags.clone(),
            channels: self
                .channels
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            observance: self.observance.clone(),
            send_at: send_at_local,
            unreached: self.unreached.map(|u| u.as_str().to_string()),
            below_band: self.below_band,
            other: BTreeMap::new(),
        }
    }
}

/// One channel of a preview.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChannelPreview {
    pub channel: ChannelKind,
    /// As the console names it: "Telegram", "SMS".
    pub channel_label: &'static str,
    /// As the recipient reads it (Telegram: the HTML as sent).
    pub text: Option<String>,
    /// For a format with markup (Telegram): the text as the reader sees it, the format's few
    /// tags kept through an allow-list and everything else as text, for the console to build
    /// without inserting HTML.
    pub rich: Option<Vec<RichNode>>,
    pub characters: usize,
    pub sms_segments: Option<usize>,
    pub sms_encoding: Option<String>,
    /// Price of one message × recipients on this channel (VND), where it has a price.
    pub cost_vnd: Option<f64>,
    /// Persons this channel would reach (each person gets one channel).
    pub recipients: i64,
    pub error: Option<String>,
    /// What the channel's yearly budget has left (spent and on their way deducted); `None`:
    /// no budget.
    pub budget_left: Option<f64>,
    /// Its cost is more than that: sent, it will wait for an admin's decision.
    pub over_budget: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Preview {
    pub recipients: i64,
    pub channels: Vec<ChannelPreview>,
    /// Recipients per commune of the audience, before sending (a commune none would get is
    /// listed with 0: in the band already, say).
    pub by_area: Vec<AreaCount>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AreaCount {
    pub code: String,
    pub name: String,
    pub recipients: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_as_a_map_or_as_the_forms_fields() {
        let input: ContentInput = serde_json::from_value(serde_json::json!({
            "title": "x",
            "texts": {"telegram": "Xin chào"},
            "sms_text": "Xin chao",
            "fax_text": 3,
        }))
        .unwrap();
        assert_eq!(
            input.text(ChannelKind::Telegram).as_deref(),
            Some("Xin chào")
        );
        assert_eq!(input.text(ChannelKind::Sms).as_deref(), Some("Xin chao"));
        assert_eq!(input.text(ChannelKind::new("fax")), None);
        let mut input = input;
        input.set_text(ChannelKind::Sms, "  ");
        assert_eq!(input.text(ChannelKind::Sms), None, "blank is nothing");
    }
}
