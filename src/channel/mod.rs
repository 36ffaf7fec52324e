//! What a channel is — the one place each way of reaching people is described.
//!
//! A [`Descriptor`] says everything the rest of Loa needs to know about a channel: its name
//! (its spelling in `loa.toml`, in template file names and in the database), its label in the
//! console, how a message's text is written for it ([`BodyFormat`]: escaping, size, what the
//! provider refuses), what its addresses are, whether it confirms delivery, whether staff may
//! type free text for it, its sending limits and its price. The configured channels form a
//! [`ChannelSet`]; bodies, reach splits, limits and prices are keyed by [`ChannelKind`].
//!
//! Adding a channel is a transport (the `channels` module), a descriptor, its config section
//! and its templates. The transports — how a message actually leaves — live in `channels`;
//! this module only describes.
//!
//! # Layout
//!
//! * this file — [`ChannelKind`], [`Descriptor`], [`ChannelSet`], limits and prices, and the
//!   built-in channels, [`TELEGRAM`], [`ZALO`] and [`SMS`].
//! * [`format`](mod@format) — [`BodyFormat`] and the built-in formats: Telegram's HTML and SMS text.
//! * [`zns`] — Zalo's: an approved template and its parameters ([`ZnsPayload`]).

pub mod format;
pub mod zns;

use std::fmt;

use serde::{Serialize, Serializer};

pub use format::{BodyFormat, BodySettings, FormatProblem, SMS_TEXT, TELEGRAM_HTML};
pub use zns::{ZNS_TEMPLATE, ZnsPayload};

/// A way a message reaches a person: `telegram`, `sms`, … Its name is its spelling everywhere
/// (`loa.toml`, `messages/<name>.<channel>.hbs`, the database). Compared and ordered by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKind(&'static str);

impl ChannelKind {
    /// The residents' Telegram bot.
    #[allow(non_upper_case_globals)]
    pub const Telegram: ChannelKind = ChannelKind("telegram");
    /// SMS through a gateway.
    #[allow(non_upper_case_globals)]
    pub const Sms: ChannelKind = ChannelKind("sms");
    /// Zalo Notification Service: approved templates to a phone number that has Zalo.
    #[allow(non_upper_case_globals)]
    pub const Zalo: ChannelKind = ChannelKind("zalo");

    /// A channel of this name: lowercase ASCII letters, digits and `-` (checked when the
    /// program is compiled, for a `const`).
    pub const fn new(name: &'static str) -> ChannelKind {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "a channel needs a name");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
                "a channel's name is lowercase ASCII letters, digits and '-'"
            );
            i += 1;
        }
        ChannelKind(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for ChannelKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// What a channel's contacts' addresses are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// A Telegram chat id: positive for a person, negative for a group.
    ChatId,
    /// A mobile number in E.164 form.
    PhoneNumber,
}

/// How fast a channel may send; the overall rate belongs to the account (bot token, gateway
/// login) and is shared by every `loa run` on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Messages per second to different addresses.
    pub per_second: u32,
    /// Messages per second to one address (Telegram: about 1 to one chat).
    pub per_address_per_second: Option<u32>,
    /// Messages per minute to one group (Telegram: 20).
    pub per_group_per_minute: Option<u32>,
}

/// What one message costs (VND), for previews and budgets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Price {
    Free,
    /// Per SMS part, counted from the rendered text.
    PerSegment(f64),
    PerMessage(f64),
}

impl Price {
    /// The cost of one message of `size` parts (when the format counts parts); `None` for a
    /// free channel.
    pub fn cost(self, segments: Option<usize>) -> Option<f64> {
        match self {
            Price::Free => None,
            Price::PerSegment(price) => Some(price * segments.unwrap_or(1) as f64),
            Price::PerMessage(price) => Some(price),
        }
    }
}

/// Everything Loa knows of a channel. The built-in ones are [`TELEGRAM`] and [`SMS`]; the
/// configuration adjusts their limits and prices.
#[derive(Clone, Copy)]
pub struct Descriptor {
    pub kind: ChannelKind,
    /// As the console shows it: "Telegram", "SMS".
    pub label: &'static str,
    /// How a text is written for it.
    pub format: &'static dyn BodyFormat,
    pub address: AddressKind,
    /// Whether the provider reports delivery after accepting a message (reach is counted at
    /// the report); a transport configured without a callback says otherwise.
    pub confirms_delivery: bool,
    /// Whether staff may type free text for it in the console (a channel that sends only
    /// pre-approved templates cannot).
    pub staff_text: bool,
    /// Whether every campaign message on it ends with how to stop (`{{sms.opt_out}}`): where
    /// the reader has no button or command to leave by, as on SMS.
    pub opt_out_line: bool,
    pub limits: ChannelLimits,
    pub price: Price,
    /// A channel whose addresses are another channel's: Zalo reaches the phone numbers Loa
    /// has for SMS, so every active SMS contact is also a Zalo contact until Zalo says the
    /// number has no account (`audience::mirror_contacts`).
    pub addresses_of: Option<ChannelKind>,
    /// What the district may spend on it in a year, in đồng (`[budget]`): an occurrence that
    /// would go over it waits for an admin's decision (`budget::hold`). `None`: no limit.
    pub yearly_budget: Option<f64>,
}

impl fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Descriptor")
            .field("kind", &self.kind)
            .field("format", &self.format.name())
            .field("limits", &self.limits)
            .field("price", &self.price)
            .finish_non_exhaustive()
    }
}

/// Telegram: HTML parse mode, a chat per contact, 30 messages/s for the bot, 1/s per chat and
/// 20/min per group, free.
pub const TELEGRAM: Descriptor = Descriptor {
    kind: ChannelKind::Telegram,
    label: "Telegram",
    format: &TELEGRAM_HTML,
    address: AddressKind::ChatId,
    confirms_delivery: false,
    staff_text: true,
    opt_out_line: false,
    limits: ChannelLimits {
        per_second: 30,
        per_address_per_second: Some(1),
        per_group_per_minute: Some(20),
    },
    price: Price::Free,
    addresses_of: None,
    yearly_budget: None,
};

/// SMS: plain text in GSM-7 or UCS-2 parts, a mobile number per contact, the gateway's rate,
/// a price per part.
pub const SMS: Descriptor = Descriptor {
    kind: ChannelKind::Sms,
    label: "SMS",
    format: &SMS_TEXT,
    address: AddressKind::PhoneNumber,
    confirms_delivery: true,
    staff_text: true,
    opt_out_line: true,
    limits: ChannelLimits {
        per_second: 10,
        per_address_per_second: None,
        per_group_per_minute: None,
    },
    price: Price::PerSegment(0.0),
    addresses_of: None,
    yearly_budget: None,
};

/// Zalo (ZNS): an approved template and its parameters to a phone number's Zalo account; the
/// delivery webhook confirms it was received. Staff's own words only through a template
/// configured for them (`zalo.staff_template`). A price per message.
pub const ZALO: Descriptor = Descriptor {
    kind: ChannelKind::Zalo,
    label: "Zalo",
    format: &ZNS_TEMPLATE,
    address: AddressKind::PhoneNumber,
    confirms_delivery: true,
    staff_text: false,
    opt_out_line: false,
    limits: ChannelLimits {
        per_second: 10,
        per_address_per_second: None,
        per_group_per_minute: None,
    },
    price: Price::PerMessage(0.0),
    addresses_of: Some(ChannelKind::Sms),
    yearly_budget: None,
};

/// The channels a deployment knows, in the order they were added (the console shows them in
/// this order).
#[derive(Debug, Clone)]
pub struct ChannelSet {
    channels: Vec<Descriptor>,
}

impl Default for ChannelSet {
    fn default() -> Self {
        ChannelSet::builtin()
    }
}

impl ChannelSet {
    /// Telegram, Zalo and SMS.
    pub fn builtin() -> ChannelSet {
        ChannelSet {
            channels: vec![TELEGRAM, ZALO, SMS],
        }
    }

    /// The set with `descriptor` added (or replacing the channel of the same name).
    pub fn with(mut self, descriptor: Descriptor) -> ChannelSet {
        match self.channels.iter_mut().find(|d| d.kind == descriptor.kind) {
            Some(existing) => *existing = descriptor,
            None => self.channels.push(descriptor),
        }
        self
    }

    /// The set with only the channels of `kinds`, in this set's order.
    pub fn only(&self, kinds: &[ChannelKind]) -> ChannelSet {
        ChannelSet {
            channels: self
                .channels
                .iter()
                .filter(|d| kinds.contains(&d.kind))
                .copied()
                .collect(),
        }
    }

    pub fn get(&self, kind: ChannelKind) -> Option<&Descriptor> {
        self.channels.iter().find(|d| d.kind == kind)
    }

    pub fn get_mut(&mut self, kind: ChannelKind) -> Option<&mut Descriptor> {
        self.channels.iter_mut().find(|d| d.kind == kind)
    }

    /// The channel of this name, as written in a file, a form or the database.
    pub fn parse(&self, name: &str) -> Option<ChannelKind> {
        self.channels
            .iter()
            .find(|d| d.kind.as_str() == name)
            .map(|d| d.kind)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Descriptor> {
        self.channels.iter()
    }

    pub fn kinds(&self) -> impl Iterator<Item = ChannelKind> + '_ {
        self.channels.iter().map(|d| d.kind)
    }

    /// `telegram, sms`: for messages that list what is known.
    pub fn names(&self) -> String {
        self.kinds()
            .map(ChannelKind::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The label of a channel, or its name when it is not in the set.
    pub fn label(&self, kind: ChannelKind) -> &'static str {
        self.get(kind).map_or(kind.as_str(), |d| d.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_found_by_name_and_keep_their_order() {
        const FAX: ChannelKind = ChannelKind::new("fax");
        let set = ChannelSet::builtin().with(Descriptor {
            kind: FAX,
            label: "Fax",
            ..SMS
        });
        assert_eq!(set.parse("sms"), Some(ChannelKind::Sms));
        assert_eq!(set.parse("fax"), Some(FAX));
        assert_eq!(set.parse("zalo"), Some(ChannelKind::Zalo));
        assert_eq!(set.parse("viber"), None);
        assert_eq!(set.names(), "telegram, zalo, sms, fax");
        assert_eq!(set.label(FAX), "Fax");
        assert_eq!(serde_json::to_string(&FAX).unwrap(), "\"fax\"");
    }

    #[test]
    fn prices_count_parts_where_a_format_has_them() {
        assert_eq!(Price::PerSegment(350.0).cost(Some(3)), Some(1050.0));
        assert_eq!(Price::PerMessage(200.0).cost(Some(3)), Some(200.0));
        assert_eq!(Price::Free.cost(Some(3)), None);
    }
}
