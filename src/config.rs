//! `loa.toml` and the environment overrides of DESIGN.md, validated into a [`Config`].
//!
//! Validation collects every problem with the key it concerns and the line it sits on, so
//! nothing starts half-configured and the operator sees all mistakes at once.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Problem, Problems, from_toml_error, line_of_offset};

pub const DEFAULT_TIME_ZONE: &str = "Asia/Ho_Chi_Minh";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/loa.db";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";

pub use crate::channel::{ChannelKind, ChannelSet};
pub use area_kind::{AreaKind, AreaName};
pub use zalo::{DEFAULT_ZALO_API_URL, DEFAULT_ZALO_OAUTH_URL, ZaloConfig};

mod area_kind;
mod budget;
mod zalo;

/// The validated configuration every other part is built from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; schedule and message folders are relative to its folder.
    pub path: PathBuf,
    pub campaign: Campaign,
    pub schedules_dir: PathBuf,
    pub messages_dir: PathBuf,
    pub database_url: String,
    pub http_addr: SocketAddr,
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (sign-in throttling counts by
    /// client address); from anyone else the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// `None` when no bot token is configured: Telegram deliveries then go to the `log` channel.
    pub telegram: Option<TelegramConfig>,
    /// Zalo ZNS, when `LOA_ZALO_APP_ID` turns it on.
    pub zalo: Option<ZaloConfig>,
    /// The approved Zalo template that carries staff's own words (`zalo.staff_template`).
    pub zalo_staff_template: Option<String>,
    /// The bot's username (`telegram.username`, `TELEGRAM_BOT_USERNAME`): posters link to
    /// `t.me/<username>?start=<area>`.
    pub telegram_username: Option<String>,
    /// The Zalo Official Account's page (`zalo.oa_link`), for posters.
    pub zalo_oa_link: Option<String>,
    pub dispatch: DispatchConfig,
    pub limits: Limits,
    /// Every channel this deployment knows, with its limits and price as configured
    /// (`[limits.<channel>]`, `sms.price_per_segment`).
    pub channels: ChannelSet,
    pub areas: AreaTree,
    pub support: Support,
    /// People and units honoured, by year, for the honouring messages.
    pub honours: Vec<Honour>,
    pub sms: SmsConfig,
    /// Shared secret the SMS gateways' callbacks must carry (`LOA_WEBHOOK_SECRET`).
    pub webhook_secret: Option<String>,
    /// `[[holidays]]`: days off the government announced, per year, beyond what the calendar
    /// computes (see `calendar::holidays` for what an entry overrides).
    pub holidays: Vec<HolidayRange>,
    /// `[inbox]`: how long residents' texts are kept.
    pub inbox: InboxConfig,
    /// `[backup]`: the daily copy of the database `loa run` makes, if any.
    pub backup: BackupConfig,
    /// `[privacy]`: how long delivery attempts and audit details are kept.
    pub privacy: PrivacyConfig,
}

/// `[backup]`: with a folder (`dir`, or `LOA_BACKUP_DIR`), `loa run` copies the database there
/// once a day at `at` (campaign time) and keeps the last `keep` copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    pub dir: Option<PathBuf>,
    pub keep: u32,
    pub at: chrono::NaiveTime,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            keep: 7,
            at: chrono::NaiveTime::from_hms_opt(2, 30, 0).expect("a valid time"),
        }
    }
}

/// `[privacy]`: delivery attempts and the details of audit entries are deleted `keep_months`
/// after they happened (their counts stay); see `privacy::retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivacyConfig {
    pub keep_months: u32,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig { keep_months: 12 }
    }
}

/// `[inbox]`: residents' texts in the console's inbox are deleted `keep_days` after they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxConfig {
    pub keep_days: u32,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig { keep_days: 90 }
    }
}

/// One `[[holidays]]` entry: days off in `year`, `from` to `to` inclusive — the Tết break or
/// the National Day pair as the government set them that year, a compensatory day, a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayRange {
    pub year: i32,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// What residents would call it; without one the calendar names it after the holiday it
    /// overlaps.
    pub name: Option<String>,
}

impl HolidayRange {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(|d| *d <= self.to)
    }
}

/// Years a `[[holidays]]` entry may name: Loa's calendar looks no further (its lunar dates are
/// an astronomical approximation), so a year outside is a typo.
pub const HOLIDAY_YEARS: std::ops::RangeInclusive<i32> = 1900..=2199;

/// A government break is at most nine or ten days; a longer `[[holidays]]` range is a typo
/// (and would silence the campaign for a month).
pub const MAX_HOLIDAY_RANGE_DAYS: i64 = 31;

/// Sending SMS: the sender name, what a part costs, and the gateway (none: SMS deliveries
/// wait, or go to the `log` channel when nothing at all is configured).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SmsConfig {
    /// Brandname or number shown as the sender (`LOA_SMS_FROM`).
    pub from: String,
    pub gateway: Option<SmsGateway>,
    /// The number residents text `TC` to in order to stop (`LOA_SMS_REPLY_NUMBER`): a short
    /// code or a mobile number that reaches Loa's `/webhooks/sms/mo`. A brandname alone
    /// cannot receive replies; without one the opt-out line names the commune's contact point.
    pub reply_number: Option<String>,
}

#[derive(Clone, PartialEq)]
pub enum SmsGateway {
    /// Kannel's HTTP `sendsms` interface.
    Kannel {
        url: String,
        username: String,
        password: String,
    },
    /// An HTTP JSON API (eSMS, SpeedSMS, …) described in `[sms.http]`.
    Http(HttpGateway),
}

impl std::fmt::Debug for SmsGateway {
    // Credentials never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmsGateway::Kannel { url, username, .. } => f
                .debug_struct("Kannel")
                .field("url", url)
                .field("username", username)
                .finish_non_exhaustive(),
            SmsGateway::Http(h) => f
                .debug_struct("Http")
                .field("url", &h.url)
                .finish_non_exhaustive(),
        }
    }
}

/// A provider's JSON API: where to send, how to authenticate, the request body as a
/// handlebars template (`{{to}}`, `{{text}}`, `{{from}}`, `{{request_id}}`, JSON-escaped), and
/// where the answer says "accepted" and gives its message id.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGateway {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// Dotted path of the success code in the JSON answer, e.g. `CodeResult`.
    pub success_path: String,
    /// Its value when the message is accepted, e.g. `100`.
    pub success_value: String,
    /// Dotted path of the provider's message id, e.g. `SMSID`.
    pub message_id_path: Option<String>,
}

fn default_method() -> String {
    "POST".to_string()
}

/// Help for people affected by gender-based violence: national lines, and each area's contact
/// point (an area without one uses its parent's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Support {
    pub hotlines: Vec<Hotline>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hotline {
    /// Who the line is for: a woman facing violence at home is not pointed at the children's
    /// line or the ambulance.
    pub serves: Serves,
    /// Its full name: "Tổng đài quốc gia bảo vệ trẻ em".
    pub name: String,
    /// A few words printed beside the number wherever it appears, SMS included: "bảo vệ trẻ em".
    pub label: String,
    pub number: String,
    /// When it answers: "24/7", "7h30–17h, thứ Hai đến thứ Sáu".
    pub hours: String,
    /// Whether the call costs the caller nothing (1900 numbers are charged).
    pub free: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Serves {
    /// Adults facing violence: the national domestic-violence line, counselling lines, the
    /// province's and commune's own numbers.
    Adults,
    /// Children: the child-protection line 111.
    Children,
    /// Emergencies: police 113, ambulance 115.
    Emergency,
}

impl Support {
    /// The lines for `serves`, in file order.
    pub fn lines(&self, serves: Serves) -> impl Iterator<Item = &Hotline> {
        self.hotlines.iter().filter(move |h| h.serves == serves)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Honour {
    pub year: i32,
    pub name: String,
    pub unit: String,
    pub achievement: String,
}

#[derive(Debug, Clone)]
pub struct Campaign {
    /// The plan's name; `{year}` in it stands for the year of the message or report, so one
    /// configuration serves every year: "Kế hoạch … năm {year}".
    pub name: String,
    /// Who speaks in the messages, e.g. "UBND huyện Hiệp Hòa".
    pub sender: String,
    pub time_zone: Tz,
    pub target: TargetBand,
}

impl Campaign {
    /// The plan's name for `year`.
    pub fn name_in(&self, year: i32) -> String {
        self.name.replace("{year}", &year.to_string())
    }
}

/// The share of the population the plan aims to reach (40–60 % in the 2023 plan).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetBand {
    pub low: f64,
    pub high: f64,
}

impl TargetBand {
    /// The district plan's: 40–60 % of the population.
    pub const PLAN: TargetBand = TargetBand {
        low: 0.40,
        high: 0.60,
    };
}

#[derive(Clone)]
pub struct TelegramConfig {
    pub token: String,
    pub api_url: String,
    /// Telegram user ids allowed the admin commands.
    pub admins: Vec<i64>,
    /// Receive updates by webhook at `/webhooks/telegram` instead of long polling; the value is
    /// the `secret_token` Telegram must echo in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret: Option<String>,
    /// Pay for Telegram's paid broadcasts: up to 1000 messages per second, charged in Stars.
    pub paid_broadcast: bool,
}

impl std::fmt::Debug for TelegramConfig {
    // The token is a credential: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    /// Deliveries claimed per worker step.
    pub batch_size: u32,
    /// Sends in flight at once within a step.
    pub concurrency: usize,
    /// How long a claim holds a delivery; after a crash it is claimed again once this passes.
    pub lease_seconds: u32,
    /// Retryable failures (5xx, timeouts, bad answers) before a delivery is `dead`.
    pub max_attempts: u32,
    /// First retry delay; doubles with each failure.
    pub retry_base_seconds: u32,
    /// Pause of an idle worker, in real milliseconds.
    pub poll_interval_ms: u64,
    /// Local times between which nothing is sent (start inclusive, end exclusive); `None`: never
    /// quiet.
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
    /// Campaign messages one person may get on one local day, across channels.
    pub max_per_person_per_day: u32,
}

/// What holds for every channel's rate; each channel's own limits are in its descriptor
/// (`config.channels`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Messages that may leave at one instant. 1 (the default) keeps every sliding second within
    /// the rate, as a provider counts it; more lets a batch go at once (tests on a frozen clock).
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { burst: 1 }
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            batch_size: 100,
            concurrency: 16,
            lease_seconds: 120,
            max_attempts: 5,
            retry_base_seconds: 30,
            poll_interval_ms: 500,
            quiet_hours: Some((
                NaiveTime::from_hms_opt(21, 0, 0).expect("valid"),
                NaiveTime::from_hms_opt(7, 0, 0).expect("valid"),
            )),
            max_per_person_per_day: 2,
        }
    }
}

/// One administrative unit: a province, a district, a commune or a town.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    pub code: String,
    /// The name standing alone, its kind capitalised: "Xã Thường Thắng".
    pub name: String,
    /// The name inside a sentence: "xã Thường Thắng".
    pub in_sentence: String,
    /// Xã, phường, thị trấn, …: from `kind`, else from the name's first word.
    pub kind: Option<AreaKind>,
    pub parent: Option<String>,
    /// As configured; a unit without one takes the sum of its children.
    pub population: Option<u64>,
    /// Where residents get help locally, e.g. the commune's culture and social affairs officer,
    /// with its phone number when one is configured: "UBND xã Bắc Lý (…), ĐT 0204 3871 234".
    pub contact_point: Option<String>,
    /// The contact point's phone number (`contact_phone`), as configured.
    pub contact_phone: Option<String>,
    /// The contact point's Telegram chat (`telegram_chat`: a user or group chat id), where
    /// urgent texts from the area's residents are forwarded at once.
    pub telegram_chat: Option<i64>,
}

/// The areas of `loa.toml` as a tree, in file order.
#[derive(Debug, Clone, Default)]
pub struct AreaTree {
    areas: Vec<Area>,
    index: HashMap<String, usize>,
}

impl AreaTree {
    /// Builds the tree; the caller has checked codes are unique, parents exist and there is no
    /// cycle (see [`Config::load`]).
    fn new(areas: Vec<Area>) -> Self {
        let index = areas
            .iter()
            .enumerate()
            .map(|(i, a)| (a.code.clone(), i))
            .collect();
        AreaTree { areas, index }
    }

    pub fn get(&self, code: &str) -> Option<&Area> {
        self.index.get(code).map(|&i| &self.areas[i])
    }

    pub fn contains(&self, code: &str) -> bool {
        self.index.contains_key(code)
    }

    pub fn len(&self) -> usize {
        self.areas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    /// Every area, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Area> {
        self.areas.iter()
    }

    pub fn roots(&self) -> impl Iterator<Item = &Area> {
        self.areas.iter().filter(|a| a.parent.is_none())
    }

    pub fn children<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Area> + 'a {
        self.areas
            .iter()
            .filter(move |a| a.parent.as_deref() == Some(code))
    }

    pub fn is_leaf(&self, code: &str) -> bool {
        self.children(code).next().is_none()
    }

    /// Areas with nothing under them (communes, towns), in file order.
    pub fn leaves(&self) -> impl Iterator<Item = &Area> {
        self.areas.iter().filter(|a| self.is_leaf(&a.code))
    }

    /// The area and everything under it.
    pub fn subtree(&self, code: &str) -> Vec<&Area> {
        let mut out = Vec::new();
        if let Some(area) = self.get(code) {
            out.push(area);
            let mut i = 0;
            while i < out.len() {
                let parent = out[i].code.clone();
                out.extend(
                    self.areas
                        .iter()
                        .filter(|a| a.parent.as_deref() == Some(&parent)),
                );
                i += 1;
            }
        }
        out
    }

    /// Depth-first order from the roots: a parent, then its children.
    pub fn tree_order(&self) -> Vec<(usize, &Area)> {
        fn walk<'a>(
            tree: &'a AreaTree,
            area: &'a Area,
            depth: usize,
            out: &mut Vec<(usize, &'a Area)>,
        ) {
            out.push((depth, area));
            for child in tree.children(&area.code) {
                walk(tree, child, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        for root in self.roots() {
            walk(self, root, 0, &mut out);
        }
        out
    }

    /// The same tree with these areas' populations replaced; their ancestors then take the sum
    /// of their children (the demo scales populations to its sample this way).
    pub fn with_populations(&self, populations: &BTreeMap<String, u64>) -> AreaTree {
        let mut areas = self.areas.clone();
        let mut ancestors = std::collections::HashSet::new();
        for code in populations.keys() {
            let mut cursor = self.get(code).and_then(|a| a.parent.clone());
            while let Some(parent) = cursor {
                if !ancestors.insert(parent.clone()) {
                    break;
                }
                cursor = self.get(&parent).and_then(|a| a.parent.clone());
            }
        }
        for area in &mut areas {
            if let Some(p) = populations.get(&area.code) {
                area.population = Some(*p);
            } else if ancestors.contains(&area.code) {
                area.population = None;
            }
        }
        AreaTree::new(areas)
    }

    /// The area's contact point, else the nearest one up the tree.
    pub fn contact_point(&self, code: &str) -> Option<&str> {
        let mut cursor = self.get(code);
        let mut steps = 0;
        while let Some(area) = cursor {
            if let Some(point) = &area.contact_point {
                return Some(point);
            }
            steps += 1;
            if steps > self.areas.len() {
                return None;
            }
            cursor = area.parent.as_deref().and_then(|p| self.get(p));
        }
        None
    }

    /// The Telegram chat of the area's contact point, else the nearest one up the tree.
    pub fn telegram_chat(&self, code: &str) -> Option<i64> {
        let mut cursor = self.get(code);
        let mut steps = 0;
        while let Some(area) = cursor {
            if area.telegram_chat.is_some() {
                return area.telegram_chat;
            }
            steps += 1;
            if steps > self.areas.len() {
                return None;
            }
            cursor = area.parent.as_deref().and_then(|p| self.get(p));
        }
        None
    }

    /// Configured population, else the sum of the children's.
    pub fn population(&self, code: &str) -> u64 {
        match self.get(code) {
            Some(Area {
                population: Some(p),
                ..
            }) => *p,
            Some(area) => self
                .children(&area.code)
                .map(|c| self.population(&c.code))
                .sum(),
            None => 0,
        }
    }
}

/// Environment variables as read at start-up; tests pass their own instead of touching the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct Env(pub HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Env(std::env::vars().collect())
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    campaign: RawCampaign,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    telegram: RawTelegram,
    #[serde(default)]
    dispatch: RawDispatch,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    areas: Vec<RawArea>,
    #[serde(default)]
    support: RawSupport,
    #[serde(default)]
    honours: Vec<Honour>,
    #[serde(default)]
    sms: RawSms,
    #[serde(default)]
    zalo: zalo::RawZalo,
    #[serde(default)]
    holidays: Vec<RawHolidays>,
    #[serde(default)]
    inbox: RawInbox,
    #[serde(default)]
    backup: RawBackup,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(default)]
    budget: budget::RawBudget,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    keep_months: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInbox {
    keep_days: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    dir: Option<String>,
    keep: Option<Spanned<u32>>,
    at: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHolidays {
    year: Spanned<i32>,
    from: Spanned<String>,
    to: Spanned<String>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSms {
    from: Option<String>,
    reply_number: Option<Spanned<String>>,
    price_per_segment: Option<f64>,
    kannel: Option<RawKannel>,
    http: Option<HttpGateway>,
    webhook_secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKannel {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSupport {
    #[serde(default)]
    hotlines: Vec<Spanned<Hotline>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    name: String,
    sender: String,
    time_zone: Option<Spanned<String>>,
    target_band: Option<Spanned<Vec<f64>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    schedules: Option<String>,
    messages: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    addr: Option<Spanned<String>>,
    public_url: Option<String>,
    /// Addresses or networks: `["127.0.0.1", "10.0.0.0/8"]`.
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTelegram {
    token: Option<String>,
    username: Option<Spanned<String>>,
    api_url: Option<Spanned<String>>,
    #[serde(default)]
    admins: Vec<i64>,
    webhook_secret: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDispatch {
    batch_size: Option<Spanned<u32>>,
    concurrency: Option<Spanned<usize>>,
    lease_seconds: Option<Spanned<u32>>,
    max_attempts: Option<Spanned<u32>>,
    retry_base_seconds: Option<u32>,
    poll_interval_ms: Option<u64>,
    /// `["21:00", "07:00"]`, or `[]` for none.
    quiet_hours: Option<Spanned<Vec<String>>>,
    max_per_person_per_day: Option<Spanned<u32>>,
}

/// `[limits]`: `burst`, and a table per channel (`[limits.telegram]`, `[limits.sms]`, …).
#[derive(Deserialize, Default)]
struct RawLimits {
    burst: Option<Spanned<u32>>,
    #[serde(flatten)]
    channels: BTreeMap<String, RawChannelLimits>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChannelLimits {
    per_second: Option<u32>,
    per_chat_per_second: Option<u32>,
    per_group_per_minute: Option<u32>,
    /// Telegram only.
    paid_broadcast: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    code: Spanned<String>,
    name: String,
    kind: Option<Spanned<String>>,
    parent: Option<Spanned<String>>,
    population: Option<u64>,
    contact_point: Option<String>,
    contact_phone: Option<Spanned<String>>,
    telegram_chat: Option<Spanned<i64>>,
}

impl Config {
    /// Reads `path`, applies the environment, validates everything.
    pub fn load(path: &Path, env: &Env) -> Result<Config, Problems> {
        Config::load_with(path, env, ChannelSet::builtin())
    }

    /// Reads `path` for a deployment that knows `channels` (the built-in ones and any added).
    pub fn load_with(path: &Path, env: &Env, channels: ChannelSet) -> Result<Config, Problems> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem::new(
                path,
                None,
                format!("cannot read config: {e}"),
            )])
        })?;
        Config::parse_with(path, &source, env, channels)
    }

    pub fn parse(path: &Path, source: &str, env: &Env) -> Result<Config, Problems> {
        Config::parse_with(path, source, env, ChannelSet::builtin())
    }

    pub fn parse_with(
        path: &Path,
        source: &str,
        env: &Env,
        channels: ChannelSet,
    ) -> Result<Config, Problems> {
        let raw: RawConfig = toml::from_str(source)
            .map_err(|e| Problems(vec![from_toml_error(path, source, &e)]))?;
        let mut problems = Problems::default();
        let at = |offset: usize| Some(line_of_offset(source, offset));

        let time_zone = match &raw.campaign.time_zone {
            None => DEFAULT_TIME_ZONE.parse().expect("default time zone is valid"),
            Some(tz) => tz.get_ref().parse::<Tz>().unwrap_or_else(|_| {
                problems.push(Problem::new(
                    path,
                    at(tz.span().start),
                    format!("campaign.time_zone: unknown time zone {:?} (use an IANA name such as {DEFAULT_TIME_ZONE})", tz.get_ref()),
                ));
                chrono_tz::UTC
            }),
        };

        let target = match &raw.campaign.target_band {
            None => TargetBand::PLAN,
            Some(band) => match band.get_ref().as_slice() {
                [low, high]
                    if (0.0..=1.0).contains(low) && (0.0..=1.0).contains(high) && low <= high =>
                {
                    TargetBand {
                        low: *low,
                        high: *high,
                    }
                }
                _ => {
                    problems.push(Problem::new(
                        path,
                        at(band.span().start),
                        "campaign.target_band: expected two fractions [low, high] with 0 ≤ low ≤ high ≤ 1, e.g. [0.40, 0.60]",
                    ));
                    TargetBand::PLAN
                }
            },
        };
        if raw.campaign.name.trim().is_empty() {
            problems.push(Problem::new(path, None, "campaign.name: must not be empty"));
        }

        let base = path.parent().unwrap_or(Path::new("."));
        let schedules_dir = base.join(raw.paths.schedules.as_deref().unwrap_or("schedules"));
        let messages_dir = base.join(raw.paths.messages.as_deref().unwrap_or("messages"));

        let database_url = env
            .get("LOA_DATABASE_URL")
            .or_else(|| env.get("DATABASE_URL"))
            .map(str::to_string)
            .or(raw.database.url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            problems.push(Problem::new(
                path,
                None,
                "database.url (or LOA_DATABASE_URL): expected sqlite:… or postgres://…",
            ));
        }

        let http_addr = match env.get("LOA_HTTP_ADDR") {
            Some(addr) => addr.parse().unwrap_or_else(|_| {
                problems.push(Problem::new(
                    path,
                    None,
                    format!("LOA_HTTP_ADDR: {addr:?} is not an address like {DEFAULT_HTTP_ADDR}"),
                ));
                DEFAULT_HTTP_ADDR.parse().expect("valid default")
            }),
            None => match &raw.http.addr {
                Some(addr) => addr.get_ref().parse().unwrap_or_else(|_| {
                    problems.push(Problem::new(
                        path,
                        at(addr.span().start),
                        format!(
                            "http.addr: {:?} is not an address like {DEFAULT_HTTP_ADDR}",
                            addr.get_ref()
                        ),
                    ));
                    DEFAULT_HTTP_ADDR.parse().expect("valid default")
                }),
                None => DEFAULT_HTTP_ADDR.parse().expect("valid default"),
            },
        };
        let public_url = env
            .get("LOA_PUBLIC_URL")
            .map(str::to_string)
            .or(raw.http.public_url);
        // LOA_TRUSTED_PROXIES (comma-separated) replaces the file's list: a container is
        // configured by its environment alone.
        let proxies: Vec<(String, Option<usize>)> = match env.get("LOA_TRUSTED_PROXIES") {
            Some(list) => list
                .split(',')
                .map(|p| (p.trim().to_string(), None))
                .filter(|(p, _)| !p.is_empty())
                .collect(),
            None => raw
                .http
                .trusted_proxies
                .iter()
                .map(|p| (p.get_ref().trim().to_string(), Some(p.span().start)))
                .collect(),
        };
        let trusted_proxies = proxies
            .iter()
            .filter_map(|(text, offset)| {
                let parsed = text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
                parsed
                    .map_err(|_| {
                        let (key, line) = match offset {
                            Some(o) => ("http.trusted_proxies", at(*o)),
                            None => ("LOA_TRUSTED_PROXIES", None),
                        };
                        problems.push(Problem::new(
                            path,
                            line,
                            format!("{key}: {text:?} is not an address like 127.0.0.1 or a network like 10.0.0.0/8"),
                        ))
                    })
                    .ok()
            })
            .collect();

        // The bot's username, for posters' links: letters, digits and `_`, without the `@`.
        let telegram_username = match env
            .get("TELEGRAM_BOT_USERNAME")
            .map(str::to_string)
            .or(raw.telegram.username.as_ref().map(|u| u.get_ref().clone()))
            .map(|u| u.trim().trim_start_matches('@').to_string())
            .filter(|u| !u.is_empty())
        {
            Some(u) if u.len() >= 5 && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Some(u)
            }
            Some(u) => {
                problems.push(Problem::new(
                    path,
                    raw.telegram.username.as_ref().map(|x| line_of_offset(source, x.span().start)),
                    format!(
                        "telegram.username (or TELEGRAM_BOT_USERNAME): {u:?} is not a bot's username like hiephoa_binhdang_bot"
                    ),
                ));
                None
            }
            None => None,
        };
        let token = env
            .get("TELEGRAM_BOT_TOKEN")
            .map(str::to_string)
            .or(raw.telegram.token.filter(|t| !t.trim().is_empty()));
        let api_url = match env.get("TELEGRAM_API_URL") {
            Some(url) => url.to_string(),
            None => raw
                .telegram
                .api_url
                .as_ref()
                .map(|u| u.get_ref().clone())
                .unwrap_or_else(|| DEFAULT_TELEGRAM_API_URL.to_string()),
        };
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            let line = raw
                .telegram
                .api_url
                .as_ref()
                .map(|u| line_of_offset(source, u.span().start));
            problems.push(Problem::new(
                path,
                line,
                format!(
                    "telegram.api_url (or TELEGRAM_API_URL): {api_url:?} is not an http(s) URL"
                ),
            ));
        }
        // TELEGRAM_WEBHOOK_SECRET wins over the file, as the token does.
        let secret: Option<(String, Option<usize>)> = match env.get("TELEGRAM_WEBHOOK_SECRET") {
            Some(secret) => Some((secret.trim().to_string(), None)),
            None => raw
                .telegram
                .webhook_secret
                .as_ref()
                .map(|s| (s.get_ref().clone(), Some(s.span().start))),
        };
        let webhook_secret = match secret {
            Some((s, _)) if s.is_empty() => None,
            Some((s, offset)) => {
                let ok = s.len() <= 256
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    let (key, line) = match offset {
                        Some(o) => ("telegram.webhook_secret", at(o)),
                        None => ("TELEGRAM_WEBHOOK_SECRET", None),
                    };
                    problems.push(Problem::new(
                        path,
                        line,
                        format!(
                            "{key}: 1–256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)"
                        ),
                    ));
                }
                Some(s)
            }
            None => None,
        };
        let admins = raw.telegram.admins.clone();
        let paid_broadcast = raw
            .limits
            .channels
            .get(ChannelKind::Telegram.as_str())
            .and_then(|l| l.paid_broadcast)
            .unwrap_or(false);
        let telegram = token.map(|token| TelegramConfig {
            token,
            api_url,
            admins,
            webhook_secret,
            paid_broadcast,
        });

        let defaults = DispatchConfig::default();
        let mut positive = |value: &Option<Spanned<u32>>, key: &str, default: u32| match value {
            Some(v) if *v.get_ref() == 0 => {
                problems.push(Problem::new(
                    path,
                    at(v.span().start),
                    format!("{key}: must be at least 1"),
                ));
                default
            }
            Some(v) => *v.get_ref(),
            None => default,
        };
        let d = &raw.dispatch;
        let batch_size = positive(&d.batch_size, "dispatch.batch_size", defaults.batch_size);
        let lease_seconds = positive(
            &d.lease_seconds,
            "dispatch.lease_seconds",
            defaults.lease_seconds,
        );
        let max_attempts = positive(
            &d.max_attempts,
            "dispatch.max_attempts",
            defaults.max_attempts,
        );
        let max_per_person_per_day = positive(
            &d.max_per_person_per_day,
            "dispatch.max_per_person_per_day",
            defaults.max_per_person_per_day,
        );
        let limits = Limits {
            burst: positive(&raw.limits.burst, "limits.burst", Limits::default().burst),
        };
        let mut channels = channel_limits(
            path,
            source,
            env,
            channels,
            &raw.limits.channels,
            paid_broadcast,
            raw.sms.price_per_segment,
            &mut problems,
        );
        let zalo::Parsed {
            config: zalo,
            staff_template: zalo_staff_template,
            oa_link: zalo_oa_link,
        } = zalo::parse(path, source, env, raw.zalo, &mut channels, &mut problems);
        budget::apply(path, source, &raw.budget, &mut channels, &mut problems);
        let concurrency = match &d.concurrency {
            Some(v) if *v.get_ref() == 0 => {
                problems.push(Problem::new(
                    path,
                    at(v.span().start),
                    "dispatch.concurrency: must be at least 1",
                ));
                defaults.concurrency
            }
            Some(v) => *v.get_ref(),
            None => defaults.concurrency,
        };
        let quiet_hours = match &d.quiet_hours {
            None => defaults.quiet_hours,
            Some(q) => {
                let parsed: Vec<Option<NaiveTime>> = q
                    .get_ref()
                    .iter()
                    .map(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
                    .collect();
                match parsed.as_slice() {
                    [] => None,
                    [Some(from), Some(to)] if from != to => Some((*from, *to)),
                    _ => {
                        problems.push(Problem::new(
                            path,
                            at(q.span().start),
                            "dispatch.quiet_hours: expected [\"21:00\", \"07:00\"] (start, end; local time) or [] for none",
                        ));
                        defaults.quiet_hours
                    }
                }
            }
        };
        let dispatch = DispatchConfig {
            batch_size,
            concurrency,
            lease_seconds,
            max_attempts,
            retry_base_seconds: d.retry_base_seconds.unwrap_or(defaults.retry_base_seconds),
            poll_interval_ms: d.poll_interval_ms.unwrap_or(defaults.poll_interval_ms),
            quiet_hours,
            max_per_person_per_day,
        };

        let areas = validate_areas(path, source, &raw.areas, &mut problems);
        for spanned in &raw.support.hotlines {
            let hotline = spanned.get_ref();
            let empty = [
                ("name", &hotline.name),
                ("label", &hotline.label),
                ("number", &hotline.number),
                ("hours", &hotline.hours),
            ]
            .into_iter()
            .filter(|(_, v)| v.trim().is_empty())
            .map(|(k, _)| k)
            .collect::<Vec<_>>();
            if !empty.is_empty() {
                problems.push(Problem::new(
                    path,
                    Some(line_of_offset(source, spanned.span().start)),
                    format!(
                        "support.hotlines: the line {:?} has no {}",
                        if hotline.name.trim().is_empty() {
                            &hotline.number
                        } else {
                            &hotline.name
                        },
                        empty.join(", ")
                    ),
                ));
            }
        }

        let holidays = validate_holidays(path, source, &raw.holidays, &mut problems);
        let inbox = match &raw.inbox.keep_days {
            Some(days) if !(1..=3650).contains(days.get_ref()) => {
                problems.push(Problem::new(
                    path,
                    at(days.span().start),
                    "inbox.keep_days: residents' texts are kept 1 to 3650 days (default 90)",
                ));
                InboxConfig::default()
            }
            Some(days) => InboxConfig {
                keep_days: *days.get_ref(),
            },
            None => InboxConfig::default(),
        };
        let privacy = match &raw.privacy.keep_months {
            Some(months) if !(1..=120).contains(months.get_ref()) => {
                problems.push(Problem::new(
                    path,
                    at(months.span().start),
                    "privacy.keep_months: delivery attempts and audit details are kept 1 to 120 months (default 12)",
                ));
                PrivacyConfig::default()
            }
            Some(months) => PrivacyConfig {
                keep_months: *months.get_ref(),
            },
            None => PrivacyConfig::default(),
        };
        // Residents' own words are the most personal of all: never kept longer than the rest.
        if let Some(days) = &raw.inbox.keep_days
            && u64::from(*days.get_ref()) > u64::from(privacy.keep_months) * 31
        {
            problems.push(Problem::new(
                path,
                at(days.span().start),
                "inbox.keep_days: residents' texts are kept no longer than privacy.keep_months",
            ));
        }

        let mut backup = BackupConfig::default();
        let backup_dir = env
            .get("LOA_BACKUP_DIR")
            .or(raw.backup.dir.as_deref())
            .filter(|d| !d.trim().is_empty());
        backup.dir = backup_dir.map(|d| base.join(d));
        if let Some(keep) = &raw.backup.keep {
            if (1..=366).contains(keep.get_ref()) {
                backup.keep = *keep.get_ref();
            } else {
                problems.push(Problem::new(
                    path,
                    at(keep.span().start),
                    "backup.keep: keep 1 to 366 daily copies (default 7)",
                ));
            }
        }
        if let Some(time) = &raw.backup.at {
            match chrono::NaiveTime::parse_from_str(time.get_ref(), "%H:%M") {
                Ok(t) => backup.at = t,
                Err(_) => problems.push(Problem::new(
                    path,
                    at(time.span().start),
                    format!(
                        "backup.at: {:?} is not a time of day as HH:MM, e.g. \"02:30\"",
                        time.get_ref()
                    ),
                )),
            }
        }

        let raw_sms = raw.sms;
        let kannel_url = env
            .get("LOA_KANNEL_URL")
            .map(str::to_string)
            .or_else(|| raw_sms.kannel.as_ref().and_then(|k| k.url.clone()))
            .filter(|u| !u.trim().is_empty());
        let gateway = match (kannel_url, raw_sms.http) {
            (Some(url), _) => {
                let kannel = raw_sms.kannel.unwrap_or_default();
                Some(SmsGateway::Kannel {
                    url,
                    username: env
                        .get("LOA_KANNEL_USERNAME")
                        .map(str::to_string)
                        .or(kannel.username)
                        .unwrap_or_default(),
                    password: env
                        .get("LOA_KANNEL_PASSWORD")
                        .map(str::to_string)
                        .or(kannel.password)
                        .unwrap_or_default(),
                })
            }
            (None, Some(http)) => Some(SmsGateway::Http(http)),
            (None, None) => None,
        };
        let mut sms = SmsConfig {
            from: env
                .get("LOA_SMS_FROM")
                .map(str::to_string)
                .or(raw_sms.from)
                .unwrap_or_default(),
            gateway,
            reply_number: None,
        };
        let reply_line = raw_sms
            .reply_number
            .as_ref()
            .map(|n| line_of_offset(source, n.span().start));
        match env
            .get("LOA_SMS_REPLY_NUMBER")
            .map(str::to_string)
            .or(raw_sms.reply_number.map(Spanned::into_inner))
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
        {
            Some(n) if n.len() >= 3 && n.len() <= 15 && n.chars().all(|c| c.is_ascii_digit()) => {
                sms.reply_number = Some(n);
            }
            Some(n) => problems.push(Problem::new(
                path,
                reply_line,
                format!(
                    "sms.reply_number (or LOA_SMS_REPLY_NUMBER): {n:?} is not a number residents \
                     can text: 3 to 15 digits, e.g. 8079 or 0912345678"
                ),
            )),
            None => {}
        }
        if sms.gateway.is_some() && sms.from.trim().is_empty() {
            problems.push(Problem::new(
                path,
                None,
                "sms.from (or LOA_SMS_FROM): the sender name or number is needed to send SMS",
            ));
        }
        let webhook_secret = env
            .get("LOA_WEBHOOK_SECRET")
            .map(str::to_string)
            .or(raw_sms.webhook_secret)
            .filter(|s| !s.trim().is_empty());

        problems.into_result(Config {
            path: path.to_path_buf(),
            campaign: Campaign {
                name: raw.campaign.name,
                sender: raw.campaign.sender,
                time_zone,
                target,
            },
            schedules_dir,
            messages_dir,
            database_url,
            http_addr,
            public_url,
            trusted_proxies,
            telegram,
            zalo,
            zalo_staff_template,
            telegram_username,
            zalo_oa_link,
            dispatch,
            limits,
            channels,
            areas,
            support: Support {
                hotlines: raw
                    .support
                    .hotlines
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
            },
            honours: raw.honours,
            sms,
            webhook_secret,
            holidays,
            inbox,
            backup,
            privacy,
        })
    }
}

/// Each channel's limits and price: its descriptor's defaults, then `[limits.<channel>]`, the
/// SMS price and `LOA_SMS_RATE`. A table for a channel the deployment does not know is a
/// problem, named with its line.
#[allow(clippy::too_many_arguments)]
fn channel_limits(
    path: &Path,
    source: &str,
    env: &Env,
    mut channels: ChannelSet,
    raw: &BTreeMap<String, RawChannelLimits>,
    paid_broadcast: bool,
    sms_price: Option<f64>,
    problems: &mut Problems,
) -> ChannelSet {
    let line_of = |name: &str| {
        source
            .find(&format!("[limits.{name}]"))
            .or_else(|| source.find("[limits]"))
            .map(|offset| line_of_offset(source, offset))
    };
    let known = channels.names();
    for (name, given) in raw {
        let Some(descriptor) = channels.parse(name).and_then(|k| channels.get_mut(k)) else {
            problems.push(Problem::new(
                path,
                line_of(name),
                format!("limits.{name}: no such channel (known: {known})"),
            ));
            continue;
        };
        let mut positive = |value: Option<u32>, key: &str| match value {
            Some(0) => {
                problems.push(Problem::new(
                    path,
                    line_of(name),
                    format!("limits.{name}.{key}: must be at least 1"),
                ));
                None
            }
            other => other,
        };
        let limits = &mut descriptor.limits;
        if let Some(n) = positive(given.per_second, "per_second") {
            limits.per_second = n;
        }
        if let Some(n) = positive(given.per_chat_per_second, "per_chat_per_second") {
            limits.per_address_per_second = Some(n);
        }
        if let Some(n) = positive(given.per_group_per_minute, "per_group_per_minute") {
            limits.per_group_per_minute = Some(n);
        }
        if given.paid_broadcast.is_some() && descriptor.kind != ChannelKind::Telegram {
            problems.push(Problem::new(
                path,
                line_of(name),
                format!("limits.{name}.paid_broadcast: only Telegram has paid broadcasts"),
            ));
        }
    }
    if paid_broadcast && let Some(telegram) = channels.get_mut(ChannelKind::Telegram) {
        telegram.limits.per_second = 1000;
    }
    if let Some(sms) = channels.get_mut(ChannelKind::Sms) {
        if let Some(price) = sms_price {
            sms.price = crate::channel::Price::PerSegment(price);
        }
        if let Some(rate) = env.get("LOA_SMS_RATE") {
            match rate.parse::<u32>() {
                Ok(n) if n > 0 => sms.limits.per_second = n,
                _ => problems.push(Problem::new(
                    path,
                    None,
                    format!(
                        "LOA_SMS_RATE: {rate:?} is not a positive number of messages per second"
                    ),
                )),
            }
        }
    }
    channels
}

/// `[[holidays]]` entries: `year`, `from` and `to` as `MM-DD` of that year, `from` ≤ `to`
/// (a range never crosses the new year: the Tết break starts on 20 January at the earliest).
fn validate_holidays(
    path: &Path,
    source: &str,
    raw: &[RawHolidays],
    problems: &mut Problems,
) -> Vec<HolidayRange> {
    let mut out = Vec::new();
    for entry in raw {
        let year = *entry.year.get_ref();
        let line = Some(line_of_offset(source, entry.year.span().start));
        // Names the entry in every message: two entries of one year differ by their dates.
        let label = format!(
            "holidays (year {year}, {} to {}{})",
            entry.from.get_ref(),
            entry.to.get_ref(),
            entry
                .name
                .as_ref()
                .map(|n| format!(", {n:?}"))
                .unwrap_or_default()
        );
        let before = problems.0.len();
        if !HOLIDAY_YEARS.contains(&year) {
            problems.push(Problem::new(
                path,
                line,
                format!(
                    "{label}: year must be between {} and {}",
                    HOLIDAY_YEARS.start(),
                    HOLIDAY_YEARS.end()
                ),
            ));
            continue;
        }
        let mut date = |field: &str, value: &Spanned<String>| {
            let text = value.get_ref().trim();
            let parsed = text
                .split_once('-')
                .filter(|(m, d)| m.len() == 2 && d.len() == 2)
                .and_then(|(m, d)| Some((m.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
                .and_then(|(m, d)| NaiveDate::from_ymd_opt(year, m, d));
            if parsed.is_none() {
                problems.push(Problem::new(
                    path,
                    Some(line_of_offset(source, value.span().start)),
                    format!("{label}: {field}: {text:?} is not a date MM-DD of {year}"),
                ));
            }
            parsed
        };
        let (from, to) = (date("from", &entry.from), date("to", &entry.to));
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                problems.push(Problem::new(
                    path,
                    line,
                    format!(
                        "{label}: from is after to; a range stays within its year (write one entry per year)"
                    ),
                ));
            } else if (to - from).num_days() + 1 > MAX_HOLIDAY_RANGE_DAYS {
                problems.push(Problem::new(
                    path,
                    line,
                    format!(
                        "{label}: {} days off in a row; at most {MAX_HOLIDAY_RANGE_DAYS}",
                        (to - from).num_days() + 1
                    ),
                ));
            }
        }
        if let Some(name) = &entry.name
            && name.trim().is_empty()
        {
            problems.push(Problem::new(
                path,
                line,
                format!("{label}: name must not be empty (leave it out instead)"),
            ));
        }
        if let (Some(from), Some(to), true) = (from, to, problems.0.len() == before) {
            out.push(HolidayRange {
                year,
                from,
                to,
                name: entry.name.as_ref().map(|n| n.trim().to_string()),
            });
        }
    }
    out
}

fn validate_areas(path: &Path, source: &str, raw: &[RawArea], problems: &mut Problems) -> AreaTree {
    let at = |offset: usize| Some(line_of_offset(source, offset));
    if raw.is_empty() {
        problems.push(Problem::new(
            path,
            None,
            "areas: at least one [[areas]] entry is needed",
        ));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for area in raw {
        let code = area.code.get_ref().as_str();
        let line = at(area.code.span().start);
        if code.is_empty()
            || !code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            problems.push(Problem::new(
                path,
                line,
                format!("areas.code: {code:?} must be lowercase ASCII letters, digits and '-'"),
            ));
        }
        if let Some(first) = seen.insert(code, line.unwrap_or(0)) {
            problems.push(Problem::new(
                path,
                line,
                format!("areas.code: {code:?} is used twice (first on line {first})"),
            ));
        }
        if let Some(kind) = &area.kind {
            match kind.get_ref().parse::<AreaKind>() {
                Err(e) => problems.push(Problem::new(
                    path,
                    at(kind.span().start),
                    format!("areas.kind: {e}"),
                )),
                // "Xã Đoan Bái" with kind = "phường" would read "Phường Xã Đoan Bái".
                Ok(given) => {
                    if let Some((named, _)) = AreaKind::split(&area.name)
                        && named != given
                    {
                        problems.push(Problem::new(
                            path,
                            at(kind.span().start),
                            format!(
                                "areas.kind: area {code:?} is a {given} but its name {:?} says {named}",
                                area.name.trim()
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(phone) = &area.contact_phone {
            let digits = phone.get_ref().chars().filter(char::is_ascii_digit).count();
            let allowed = phone
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '+' | '(' | ')'));
            if !allowed || !(3..=15).contains(&digits) {
                problems.push(Problem::new(
                    path,
                    at(phone.span().start),
                    format!(
                        "areas.contact_phone: area {code:?}: {:?} is not a phone number",
                        phone.get_ref()
                    ),
                ));
            }
            if area.contact_point.is_none() {
                problems.push(Problem::new(
                    path,
                    at(phone.span().start),
                    format!("areas.contact_phone: area {code:?} has a phone but no contact_point"),
                ));
            }
        }
        if let Some(chat) = &area.telegram_chat
            && *chat.get_ref() == 0
        {
            problems.push(Problem::new(
                    path,
                    at(chat.span().start),
                    format!(
                        "areas.telegram_chat: area {code:?}: 0 is not a Telegram chat id (a user id, or a group's negative id)"
                    ),
                ));
        }
        if area.name.trim().is_empty() {
            problems.push(Problem::new(
                path,
                line,
                format!("areas.name: area {code:?} has no name"),
            ));
        }
    }
    for area in raw {
        if let Some(parent) = &area.parent
            && !seen.contains_key(parent.get_ref().as_str())
        {
            problems.push(Problem::new(
                path,
                at(parent.span().start),
                format!("areas.parent: unknown area code {:?}", parent.get_ref()),
            ));
        }
    }
    let areas: Vec<Area> = raw
        .iter()
        .map(|a| {
            (
                a,
                AreaName::new(
                    a.kind.as_ref().and_then(|k| k.get_ref().parse().ok()),
                    &a.name,
                ),
            )
        })
        .map(|(a, name)| Area {
            code: a.code.get_ref().clone(),
            name: name.full,
            in_sentence: name.in_sentence,
            kind: name.kind,
            parent: a.parent.as_ref().map(|p| p.get_ref().clone()),
            population: a.population,
            contact_point: a
                .contact_point
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(
                    |point| match a.contact_phone.as_ref().map(|p| p.get_ref().trim()) {
                        Some(phone) if !phone.is_empty() => format!("{point}, ĐT {phone}"),
                        _ => point.to_string(),
                    },
                ),
            contact_phone: a
                .contact_phone
                .as_ref()
                .map(|p| p.get_ref().trim().to_string())
                .filter(|p| !p.is_empty()),
            telegram_chat: a.telegram_chat.as_ref().map(|c| *c.get_ref()),
        })
        .collect();
    let tree = AreaTree::new(areas);
    // A parent chain longer than the number of areas can only be a cycle.
    for (area, raw_area) in tree.iter().zip(raw) {
        let mut steps = 0;
        let mut cursor = area.parent.as_deref();
        while let Some(code) = cursor {
            steps += 1;
            if steps > tree.len() {
                problems.push(Problem::new(
                    path,
                    at(raw_area.code.span().start),
                    format!("areas.parent: area {:?} is its own ancestor", area.code),
                ));
                break;
            }
            cursor = tree.get(code).and_then(|a| a.parent.as_deref());
        }
        if area.population.is_none() && tree.is_leaf(&area.code) {
            problems.push(Problem::new(
                path,
                at(raw_area.code.span().start),
                format!("areas.population: area {:?} has no population (needed for its reach percentage)", area.code),
            ));
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[campaign]
name = "Thử nghiệm"
sender = "UBND huyện"

[[areas]]
code = "huyen"
name = "Huyện"

[[areas]]
code = "xa-a"
name = "Xã A"
parent = "huyen"
population = 1000

[[areas]]
code = "xa-b"
name = "Xã B"
parent = "huyen"
population = 500
"#;

    fn parse(src: &str, env: &Env) -> Result<Config, Problems> {
        Config::parse(Path::new("loa.toml"), src, env)
    }

    #[test]
    fn a_container_sets_the_proxies_and_the_webhook_secret_by_environment() {
        let env = Env::default()
            .with("TELEGRAM_BOT_TOKEN", "123:ABC")
            .with("TELEGRAM_WEBHOOK_SECRET", "bi-mat_1")
            .with("LOA_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1");
        let config = parse(MINIMAL, &env).unwrap();
        assert_eq!(
            config.trusted_proxies,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "127.0.0.1/32".parse::<IpNet>().unwrap()
            ]
        );
        assert_eq!(
            config.telegram.unwrap().webhook_secret.as_deref(),
            Some("bi-mat_1")
        );
        let bad = Env::default()
            .with("TELEGRAM_BOT_TOKEN", "123:ABC")
            .with("TELEGRAM_WEBHOOK_SECRET", "có dấu")
            .with("LOA_TRUSTED_PROXIES", "proxy.local");
        let problems = parse(MINIMAL, &bad).unwrap_err().to_string();
        assert!(
            problems.contains("LOA_TRUSTED_PROXIES: \"proxy.local\""),
            "{problems}"
        );
        assert!(
            problems.contains("TELEGRAM_WEBHOOK_SECRET: 1–256"),
            "{problems}"
        );
    }

    #[test]
    fn defaults_and_rollup() {
        let config = parse(MINIMAL, &Env::default()).unwrap();
        assert_eq!(config.campaign.time_zone, chrono_tz::Asia::Ho_Chi_Minh);
        assert_eq!(
            config.campaign.target,
            TargetBand {
                low: 0.40,
                high: 0.60
            }
        );
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert!(config.telegram.is_none());
        assert_eq!(config.areas.population("huyen"), 1500);
        let subtree: Vec<_> = config
            .areas
            .subtree("huyen")
            .iter()
            .map(|a| a.code.clone())
            .collect();
        assert_eq!(subtree, ["huyen", "xa-a", "xa-b"]);
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = Env::default()
            .with("LOA_DATABASE_URL", "postgres://db/loa")
            .with("TELEGRAM_BOT_TOKEN", "123:ABC")
            .with("TELEGRAM_API_URL", "http://127.0.0.1:9999")
            .with("LOA_HTTP_ADDR", "0.0.0.0:9000");
        let config = parse(MINIMAL, &env).unwrap();
        assert_eq!(config.database_url, "postgres://db/loa");
        let telegram = config.telegram.unwrap();
        assert_eq!(telegram.token, "123:ABC");
        assert_eq!(telegram.api_url, "http://127.0.0.1:9999");
        assert_eq!(config.http_addr.port(), 9000);
    }

    #[test]
    fn invalid_values_name_their_key_and_line() {
        let src = MINIMAL.replace(
            "sender = \"UBND huyện\"",
            "sender = \"UBND huyện\"\ntime_zone = \"Asia/Hanoi-Nowhere\"\ntarget_band = [0.6, 0.4]",
        );
        let problems = parse(&src, &Env::default()).unwrap_err().to_string();
        assert!(
            problems.contains("loa.toml:5: campaign.time_zone"),
            "{problems}"
        );
        assert!(
            problems.contains("loa.toml:6: campaign.target_band"),
            "{problems}"
        );
    }

    #[test]
    fn holidays_are_read_per_year() {
        let src = format!(
            "{MINIMAL}\n[[holidays]]\nyear = 2024\nfrom = \"02-08\"\nto = \"02-14\"\n\n[[holidays]]\nyear = 2024\nfrom = \"09-03\"\nto = \"09-03\"\nname = \"Quốc khánh\"\n"
        );
        let config = parse(&src, &Env::default()).unwrap();
        let date = |m, d| NaiveDate::from_ymd_opt(2024, m, d).unwrap();
        assert_eq!(config.holidays.len(), 2);
        assert_eq!(
            (config.holidays[0].from, config.holidays[0].to),
            (date(2, 8), date(2, 14))
        );
        assert_eq!(config.holidays[0].name, None);
        assert_eq!(config.holidays[1].name.as_deref(), Some("Quốc khánh"));
        assert!(config.holidays[0].contains(date(2, 10)));
        assert_eq!(config.holidays[0].days().count(), 7);
    }

    #[test]
    fn bad_holidays_name_their_entry_and_line() {
        let entry = |year: &str, from: &str, to: &str| {
            format!("\n[[holidays]]\nyear = {year}\nfrom = \"{from}\"\nto = \"{to}\"\n")
        };
        let src = format!(
            "{MINIMAL}{}{}{}{}{}",
            entry("2024", "02-14", "02-08"),
            entry("2023", "02-29", "03-01"),
            entry("2024", "2024-02-08", "02-14"),
            entry("1066", "01-01", "01-01"),
            entry("2025", "01-01", "03-01"),
        );
        // The first entry's `year` line: after MINIMAL and a blank line and `[[holidays]]`.
        let first = MINIMAL.lines().count() + 3;
        let problems = parse(&src, &Env::default()).unwrap_err().to_string();
        for expected in [
            format!("loa.toml:{first}: holidays (year 2024, 02-14 to 02-08): from is after to"),
            format!(
                "loa.toml:{}: holidays (year 2023, 02-29 to 03-01): from: \"02-29\" is not a date MM-DD of 2023",
                first + 6
            ),
            format!(
                "loa.toml:{}: holidays (year 2024, 2024-02-08 to 02-14): from: \"2024-02-08\" is not a date MM-DD of 2024",
                first + 11
            ),
            format!(
                "loa.toml:{}: holidays (year 1066, 01-01 to 01-01): year must be between 1900 and 2199",
                first + 15
            ),
            format!(
                "loa.toml:{}: holidays (year 2025, 01-01 to 03-01): 60 days off in a row; at most 31",
                first + 20
            ),
        ] {
            assert!(problems.contains(&expected), "{expected}\nin:\n{problems}");
        }
    }

    #[test]
    fn unknown_parent_and_missing_population_are_reported() {
        let src = MINIMAL.replace("parent = \"huyen\"\npopulation = 500", "parent = \"tinh\"");
        let problems = parse(&src, &Env::default()).unwrap_err().to_string();
        assert!(
            problems.contains("areas.parent: unknown area code \"tinh\""),
            "{problems}"
        );
        assert!(
            problems.contains("areas.population: area \"xa-b\""),
            "{problems}"
        );
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let env = Env::default().with("LOA_HTTP_ADDR", "not-an-address");
        let problems = parse(MINIMAL, &env).unwrap_err().to_string();
        assert!(problems.contains("LOA_HTTP_ADDR"), "{problems}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let src = MINIMAL.replace("[campaign]", "[campaign]\ntimezone = \"UTC\"");
        let problems = parse(&src, &Env::default()).unwrap_err().to_string();
        assert!(problems.starts_with("loa.toml:3:"), "{problems}");
        assert!(problems.contains("timezone"), "{problems}");
    }
}
