//! The residents' Telegram bot: subscribe by commune, stop, find help; the "Tôi đã đọc" button;
//! admin commands; organisations' group chats.
//!
//! One handler schema (teloxide's `dptree`) serves both ways updates arrive — long polling
//! ([`Poller`], run by [`LongPolling`]) and the webhook (`/webhooks/telegram`) — so both behave
//! the same. Replies are in Vietnamese, short, and every echoed value is escaped for HTML parse
//! mode.
//!
//! Residents subscribe, share their number and choose their commune in a private chat only: a
//! group chat never becomes a resident. A group is an organisation once Loa's admins register
//! it (`/tochuc`); then only the group's administrators (as Telegram's `getChatMember` says) or
//! Loa's admins may stop it or move it to another commune. Every button acts for the chat of
//! the message it is under, and a commune button must name a commune of `loa.toml`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::Row;
use teloxide::dispatching::{HandlerExt, UpdateFilterExt, UpdateHandler};
use teloxide::prelude::*;
use teloxide::types::{
    CallbackQuery, Chat, InlineKeyboardButton, InlineKeyboardMarkup, Me, ParseMode, Update, User,
};
use teloxide::utils::command::BotCommands;
use unicode_normalization::UnicodeNormalization;

use crate::audience::consent::{self, ConsentSource};
use crate::calendar::Calendar;
use crate::channel::ChannelKind;
use crate::channels::{mask_address, redact};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::inbound::{alerts, inbox};
use crate::reach::{self, BandStatus};
use crate::store::{Db, to_epoch};
use crate::templates::escape_telegram_html as esc;

/// Communes per page of the choice keyboard: a page fits a phone screen.
const AREAS_PER_PAGE: usize = 8;

/// Gửi tin tuyên truyền về bình đẳng giới. Các lệnh:
#[derive(BotCommands, Clone, Debug, PartialEq)]
#[command(
    rename_rule = "lowercase",
    description = "Kênh thông tin về bình đẳng giới. Các lệnh:"
)]
pub enum Command {
    /// `/start`, or `/start <area>` from a commune's poster link (`t.me/<bot>?start=<area>`).
    #[command(description = "đăng ký nhận tin theo xã, thị trấn")]
    Start(String),
    #[command(description = "dừng nhận tin")]
    Stop,
    #[command(description = "đổi xã, thị trấn nhận tin")]
    Khuvuc,
    #[command(description = "đường dây nóng và nơi hỗ trợ khi bị bạo lực")]
    Hotro,
    #[command(
        description = "cho biết họ tên để tin nhắn ghi đúng tên ông/bà, ví dụ: /ten Nguyễn Thị Lan"
    )]
    Ten(String),
    #[command(description = "xem hướng dẫn này")]
    Help,
}

/// Commands for the Telegram user ids in `telegram.admins`.
#[derive(BotCommands, Clone, Debug, PartialEq)]
#[command(rename_rule = "lowercase", description = "Lệnh quản trị:")]
pub enum AdminCommand {
    #[command(description = "tỷ lệ tiếp cận năm nay và năm xã xa mục tiêu nhất")]
    Reach,
    #[command(description = "10 lần gửi tin sắp tới")]
    Upcoming,
    #[command(description = "đăng ký nhóm này là tổ chức của một xã: /tochuc <mã xã>")]
    Tochuc(String),
}

/// What the handlers share.
pub struct BotState {
    pub db: Db,
    pub config: Arc<Config>,
    pub calendar: Arc<Calendar>,
    pub clock: SharedClock,
}

type State = Arc<BotState>;

/// The one schema both polling and the webhook feed.
pub fn schema() -> UpdateHandler<anyhow::Error> {
    let messages = Update::filter_message()
        .branch(
            dptree::entry()
                .filter_command::<Command>()
                .endpoint(on_command),
        )
        .branch(
            dptree::entry()
                .filter_command::<AdminCommand>()
                .endpoint(on_admin_command),
        )
        .branch(dptree::filter(|m: Message| m.contact().is_some()).endpoint(on_contact))
        .branch(dptree::endpoint(on_text));
    let callbacks = Update::filter_callback_query().endpoint(on_callback);
    dptree::entry().branch(messages).branch(callbacks)
}

/// Handles one update, whichever way it came.
pub async fn handle(bot: &Bot, me: &Me, state: &State, update: Update) {
    let deps = dptree::deps![update, bot.clone(), me.clone(), Arc::clone(state)];
    match schema().dispatch(deps).await {
        // teloxide's errors can quote a proxy's page that echoes `/bot<TOKEN>/…`.
        std::ops::ControlFlow::Break(Err(e)) => {
            tracing::error!("bot: {}", redact(&format!("{e:#}")))
        }
        std::ops::ControlFlow::Break(Ok(())) | std::ops::ControlFlow::Continue(_) => {}
    }
}

/// Tells Telegram the resident commands, so clients show them in the menu.
pub async fn register_commands(bot: &Bot) -> anyhow::Result<()> {
    // The Bot API documents commands as 1–32 of a-z, 0-9 and _: without the slash.
    let commands = Command::bot_commands().into_iter().map(|c| {
        teloxide::types::BotCommand::new(c.command.trim_start_matches('/'), c.description)
    });
    bot.set_my_commands(commands).await?;
    Ok(())
}

/// Updates posted by Telegram to `/webhooks/telegram`; Telegram echoes `secret` in
/// `X-Telegram-Bot-Api-Secret-Token`.
pub struct Webhook {
    pub bot: Bot,
    pub me: Me,
    pub state: State,
    pub secret: String,
}

impl Webhook {
    /// Whether the header carries the configured secret (compared in constant time).
    pub fn authorised(&self, header: Option<&str>) -> bool {
        header.is_some_and(|given| {
            given.len() == self.secret.len()
                && given
                    .bytes()
                    .zip(self.secret.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    pub async fn handle(&self, update: Update) {
        handle(&self.bot, &self.me, &self.state, update).await;
    }
}

/// Long polling, one `getUpdates` at a time.
pub struct Poller {
    bot: Bot,
    me: Me,
    state: State,
    offset: i32,
}

impl Poller {
    pub async fn new(bot: Bot, state: State) -> anyhow::Result<Poller> {
        let me = bot.get_me().await?;
        register_commands(&bot).await?;
        // Telegram refuses getUpdates while a webhook is set.
        bot.delete_webhook().await?;
        Ok(Poller {
            bot,
            me,
            state,
            offset: 0,
        })
    }

    /// Fetches what is waiting (waiting up to `timeout` seconds for something) and handles it;
    /// returns how many updates there were.
    pub async fn poll_once(&mut self, timeout: u32) -> anyhow::Result<usize> {
        let updates = self
            .bot
            .get_updates()
            .offset(self.offset)
            .timeout(timeout)
            .await?;
        for update in &updates {
            // Confirm it even if handling fails: a poisonous update must not block the rest.
            self.offset = update.id.as_offset();
            handle(&self.bot, &self.me, &self.state, update.clone()).await;
        }
        Ok(updates.len())
    }
}

/// The bot as `loa run` polls for it: starts when Telegram answers, then polls until stopped.
/// Holds no connection until [`LongPolling::run`] (or [`LongPolling::start`]) is called.
pub struct LongPolling {
    bot: Bot,
    state: State,
}

impl LongPolling {
    /// How long to wait before trying to start again while Telegram cannot be reached.
    const START_RETRY: Duration = Duration::from_secs(10);
    /// Seconds a `getUpdates` waits for something to arrive.
    const POLL_TIMEOUT: u32 = 25;
    /// The pause after a failed `getUpdates`, so a broken proxy is not hammered.
    const ERROR_PAUSE: Duration = Duration::from_secs(3);

    pub fn new(bot: Bot, state: State) -> LongPolling {
        LongPolling { bot, state }
    }

    /// What the handlers share (the webhook of a test can share it too).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// One attempt to start: `getMe`, the command list, the webhook removed.
    pub async fn start(&self) -> anyhow::Result<Poller> {
        Poller::new(self.bot.clone(), Arc::clone(&self.state)).await
    }

    /// Starts, retrying every 10 s while Telegram cannot be reached, then polls until `stop`
    /// resolves. Telegram being unreachable at start must not keep the scheduler and the SMS
    /// side down, so this never fails: it logs (redacted: a proxy's page can echo the token)
    /// and tries again.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut poller = loop {
            tokio::select! {
                started = self.start() => match started {
                    Ok(poller) => break poller,
                    Err(e) => {
                        tracing::warn!(
                            "Telegram bot cannot start yet: {}; retrying in 10 s",
                            redact(&format!("{e:#}"))
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(Self::START_RETRY) => {}
                            _ = &mut stop => return,
                        }
                    }
                },
                _ = &mut stop => return,
            }
        };
        tracing::info!("Telegram bot: long polling");
        loop {
            tokio::select! {
                result = poller.poll_once(Self::POLL_TIMEOUT) => {
                    if let Err(e) = result {
                        tracing::warn!("telegram getUpdates: {}", redact(&format!("{e:#}")));
                        tokio::select! {
                            _ = tokio::time::sleep(Self::ERROR_PAUSE) => {}
                            _ = &mut stop => return,
                        }
                    }
                }
                _ = &mut stop => return,
            }
        }
    }
}

/// The person a chat belongs to.
struct ChatPerson {
    id: i64,
    area: String,
    /// `resident` or `organisation`.
    kind: String,
}

impl ChatPerson {
    fn is_organisation(&self) -> bool {
        self.kind == "organisation"
    }
}

async fn person_of_chat(db: &Db, chat: ChatId) -> anyhow::Result<Option<ChatPerson>> {
    let row = sqlx::query(
        "SELECT p.id, p.area_code, p.kind FROM contacts c JOIN persons p ON p.id = c.person_id
         WHERE c.channel = 'telegram' AND c.address = $1",
    )
    .bind(chat.0.to_string())
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        Some(r) => Some(ChatPerson {
            id: r.try_get(0)?,
            area: r.try_get(1)?,
            kind: r.try_get(2)?,
        }),
        None => None,
    })
}

async fn reply(bot: &Bot, chat: ChatId, html: String) -> anyhow::Result<()> {
    bot.send_message(chat, html)
        .parse_mode(ParseMode::Html)
        .await?;
    Ok(())
}

fn help_text() -> String {
    esc(&Command::descriptions().to_string())
}

/// The commune a poster's link names (`/start doan-bai`): a leaf area's code, as the link
/// carries it.
fn poster_area<'a>(config: &'a Config, parameter: &str) -> Option<&'a crate::config::Area> {
    let code = parameter.trim();
    config
        .areas
        .get(code)
        .filter(|a| config.areas.is_leaf(&a.code))
}

/// The consent text for someone who came by a commune's poster: the commune already chosen.
fn poster_consent_text(state: &BotState, area: &crate::config::Area) -> String {
    format!(
        "{}\n\nNơi nhận tin: <b>{}</b>. Xin bấm nút dưới đây để đồng ý nhận tin:",
        consent_intro(state),
        esc(&area.name)
    )
}

/// The consent text of `/start`: what it is, then the choice of commune.
fn consent_text(state: &BotState) -> String {
    format!(
        "{}\n\nXin chọn xã, thị trấn nơi ông/bà sinh sống để đồng ý nhận tin:",
        consent_intro(state)
    )
}

/// What a resident agrees to: what, how often (counted from this year's calendar), how to stop.
fn consent_intro(state: &BotState) -> String {
    let config = &state.config;
    let tz = config.campaign.time_zone;
    let year = state.clock.now().with_timezone(&tz).year();
    let most = most_in_a_month(&state.calendar, year, tz);
    let quiet = match config.dispatch.quiet_hours {
        Some((from, to)) => format!(
            ", không gửi từ {} đến {}",
            from.format("%H:%M"),
            to.format("%H:%M")
        ),
        None => String::new(),
    };
    format!(
        "<b>{}</b>\n\nÔng/bà sẽ nhận tin tuyên truyền về bình đẳng giới và phòng, chống bạo lực gia đình của {}: \
         nhiều nhất {most} tin trong một tháng, \
         phần lớn các tháng ít hơn{quiet}. Gửi /stop bất cứ lúc nào để dừng.",
        esc(&config.campaign.name_in(year)),
        esc(&config.campaign.sender)
    )
}

/// The most campaign messages one person can get in a month of `year`: every schedule that
/// goes out counted, whatever its audience, so the consent text never understates.
fn most_in_a_month(calendar: &Calendar, year: i32, tz: chrono_tz::Tz) -> usize {
    let (Some(from), Some(to)) = (
        chrono::NaiveDate::from_ymd_opt(year, 1, 1),
        chrono::NaiveDate::from_ymd_opt(year, 12, 31),
    ) else {
        return 0;
    };
    let mut per_month = [0usize; 12];
    for fire in calendar.plan(from, to, tz).iter().filter(|f| f.fires()) {
        // `at` is RFC 3339: YYYY-MM-…
        if let Some(month) = fire.at.get(5..7).and_then(|m| m.parse::<usize>().ok()) {
            per_month[month.clamp(1, 12) - 1] += 1;
        }
    }
    per_month.into_iter().max().unwrap_or(0)
}

/// Pages of the commune keyboard.
fn area_pages(config: &Config) -> usize {
    config
        .areas
        .leaves()
        .count()
        .div_ceil(AREAS_PER_PAGE)
        .max(1)
}

/// Leaf areas, a page at a time, with paging buttons.
fn area_keyboard(config: &Config, page: usize) -> InlineKeyboardMarkup {
    let leaves: Vec<_> = config.areas.leaves().collect();
    let pages = area_pages(config);
    let page = page.min(pages - 1);
    let mut rows: Vec<Vec<InlineKeyboardButton>> = leaves
        .iter()
        .skip(page * AREAS_PER_PAGE)
        .take(AREAS_PER_PAGE)
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|pair| {
            pair.iter()
                .map(|a| InlineKeyboardButton::callback(a.name.clone(), format!("area:{}", a.code)))
                .collect()
        })
        .collect();
    let mut nav = Vec::new();
    if page > 0 {
        nav.push(InlineKeyboardButton::callback(
            "‹ Trước",
            format!("page:{}", page - 1),
        ));
    }
    if page + 1 < pages {
        nav.push(InlineKeyboardButton::callback(
            "Sau ›",
            format!("page:{}", page + 1),
        ));
    }
    if !nav.is_empty() {
        rows.push(nav);
    }
    InlineKeyboardMarkup::new(rows)
}

async fn on_command(
    bot: Bot,
    me: Me,
    msg: Message,
    cmd: Command,
    state: State,
) -> anyhow::Result<()> {
    if !msg.chat.is_private() {
        return on_group_command(&bot, &me, &msg, cmd, &state).await;
    }
    let config = &state.config;
    match cmd {
        Command::Start(from_poster) => match poster_area(config, &from_poster) {
            // A commune's poster link: the consent with that commune chosen, one button.
            Some(area) => {
                bot.send_message(msg.chat.id, poster_consent_text(&state, area))
                    .parse_mode(ParseMode::Html)
                    .reply_markup(InlineKeyboardMarkup::new([[
                        InlineKeyboardButton::callback(
                            "✅ Đồng ý nhận tin",
                            format!("poster:{}", area.code),
                        ),
                    ]]))
                    .await?;
            }
            None => {
                bot.send_message(msg.chat.id, consent_text(&state))
                    .parse_mode(ParseMode::Html)
                    .reply_markup(area_keyboard(config, 0))
                    .await?;
            }
        },
        Command::Khuvuc => {
            bot.send_message(msg.chat.id, "Xin chọn xã, thị trấn mới:")
                .parse_mode(ParseMode::Html)
                .reply_markup(area_keyboard(config, 0))
                .await?;
        }
        Command::Stop => stop(&bot, &state, msg.chat.id).await?,
        Command::Ten(name) => {
            let text = give_name(&state, msg.chat.id, &name).await?;
            reply(&bot, msg.chat.id, text).await?;
        }
        Command::Hotro => {
            // Nothing about who asked is stored: only a lookup of their commune, if known.
            let area = person_of_chat(&state.db, msg.chat.id)
                .await?
                .map(|p| p.area);
            reply(&bot, msg.chat.id, support_text(config, area.as_deref())).await?;
        }
        Command::Help => reply(&bot, msg.chat.id, help_text()).await?,
    }
    Ok(())
}

/// How a group becomes an organisation (HTML).
const GROUP_NOT_REGISTERED: &str = "Nhóm này chưa được đăng ký nhận tin. Để đăng ký, xin liên hệ \
     cán bộ phụ trách truyền thông của UBND huyện.";

const GROUP_STOPPED: &str = "Nhóm đã dừng nhận tin. Để nhận tin trở lại, xin liên hệ cán bộ phụ \
     trách truyền thông của UBND huyện.";

/// Commands in a group chat. Help and support lines answer anyone; subscribing is for private
/// chats; stopping or moving an organisation is for those who may act for the group.
async fn on_group_command(
    bot: &Bot,
    me: &Me,
    msg: &Message,
    cmd: Command,
    state: &State,
) -> anyhow::Result<()> {
    let chat = msg.chat.id;
    let config = &state.config;
    let organisation = person_of_chat(&state.db, chat).await?;
    match cmd {
        Command::Help => reply(bot, chat, help_text()).await,
        // A group's name is its title, set when it is registered.
        Command::Ten(_) => Ok(()),
        Command::Hotro => {
            let area = organisation.map(|p| p.area);
            reply(bot, chat, support_text(config, area.as_deref())).await
        }
        // Residents subscribe in a private chat, never in a group: one short pointer there.
        Command::Start(_) => {
            let text = format!(
                "Để đăng ký nhận tin, xin mời ông/bà nhắn riêng cho @{} và gửi lệnh /start.",
                esc(me.username())
            );
            reply(bot, chat, text).await
        }
        Command::Stop => {
            if !sender_may_act_for_group(bot, config, msg).await {
                // Without names or ids: who sent it is the group's business, not the log's.
                tracing::info!(
                    "/stop in a group from a member who is not its administrator: ignored"
                );
                return Ok(());
            }
            match organisation {
                Some(person) => {
                    crate::audience::opt_out(&state.db, person.id, state.clock.now()).await?;
                    reply(bot, chat, GROUP_STOPPED.into()).await
                }
                None => reply(bot, chat, GROUP_NOT_REGISTERED.into()).await,
            }
        }
        Command::Khuvuc => match organisation {
            Some(person) if person.is_organisation() => {
                if !sender_may_act_for_group(bot, config, msg).await {
                    tracing::info!(
                        "/khuvuc in a group from a member who is not its administrator: ignored"
                    );
                    return Ok(());
                }
                bot.send_message(chat, "Chọn xã, thị trấn của tổ chức:")
                    .reply_markup(area_keyboard(config, 0))
                    .await?;
                Ok(())
            }
            _ => reply(bot, chat, GROUP_NOT_REGISTERED.into()).await,
        },
    }
}

async fn sender_may_act_for_group(bot: &Bot, config: &Config, msg: &Message) -> bool {
    let (user, sender_chat) = (msg.from.as_ref(), msg.sender_chat.as_ref());
    may_act_for_group(bot, config, &msg.chat, user, sender_chat).await
}

/// Whether someone may stop or move the organisation of group `chat`: one of Loa's admins, an
/// anonymous administrator (Telegram sends their messages as the group itself), or an
/// administrator or the creator of the group as `getChatMember` says. Fails closed.
async fn may_act_for_group(
    bot: &Bot,
    config: &Config,
    chat: &Chat,
    user: Option<&User>,
    sender_chat: Option<&Chat>,
) -> bool {
    if sender_chat.is_some_and(|s| s.id == chat.id) {
        return true;
    }
    let Some(user) = user else {
        return false;
    };
    if is_loa_admin(config, user) {
        return true;
    }
    match bot.get_chat_member(chat.id, user.id).await {
        Ok(member) => member.kind.is_privileged(),
        Err(e) => {
            tracing::warn!(
                "cannot ask Telegram who administers a group: {}",
                redact(&e.to_string())
            );
            false
        }
    }
}

async fn stop(bot: &Bot, state: &State, chat: ChatId) -> anyhow::Result<()> {
    let now = state.clock.now();
    match person_of_chat(&state.db, chat).await? {
        Some(person) => {
            crate::audience::opt_out(&state.db, person.id, now).await?;
            reply(
                bot,
                chat,
                "Ông/bà đã dừng nhận tin. Cảm ơn ông/bà đã theo dõi. Gửi /start nếu muốn nhận lại."
                    .into(),
            )
            .await
        }
        None => {
            reply(
                bot,
                chat,
                "Ông/bà chưa đăng ký nhận tin. Gửi /start để đăng ký.".into(),
            )
            .await
        }
    }
}

/// The emergency lines as one says them: "113 (công an) hoặc 115 (cấp cứu)".
fn emergency_numbers(config: &Config) -> String {
    let lines: Vec<String> = config
        .support
        .lines(crate::config::Serves::Emergency)
        .map(|h| format!("<b>{}</b> ({})", esc(&h.number), esc(&h.label)))
        .collect();
    if lines.is_empty() {
        "<b>113</b> (công an) hoặc <b>115</b> (cấp cứu)".into()
    } else {
        lines.join(" hoặc ")
    }
}

fn support_text(config: &Config, area: Option<&str>) -> String {
    use crate::config::Serves;
    let mut text = String::from("<b>Cần giúp đỡ khi bị bạo lực?</b>\n\n");
    // The nearest help first: the commune's own contact point.
    let point = area
        .and_then(|a| config.areas.contact_point(a))
        .or_else(|| {
            config
                .areas
                .roots()
                .find_map(|r| r.contact_point.as_deref())
        });
    if let Some(point) = point {
        text.push_str(&format!("• Tại địa phương: {}\n", esc(point)));
    }
    // Emergency lines first: this list also follows a call for help.
    for serves in [Serves::Emergency, Serves::Adults, Serves::Children] {
        for h in config.support.lines(serves) {
            let cost = if h.free {
                "miễn phí"
            } else {
                "có tính cước"
            };
            let prefix = match serves {
                Serves::Adults => String::new(),
                Serves::Children => "Trẻ em bị bạo lực, xâm hại – ".to_string(),
                Serves::Emergency => format!("Khẩn cấp – {}: ", esc(&h.label)),
            };
            let name = match serves {
                Serves::Emergency => String::new(),
                _ => format!("{}: ", esc(&h.name)),
            };
            text.push_str(&format!(
                "• {prefix}{name}<b>{}</b> ({}, {cost})\n",
                esc(&h.number),
                esc(&h.hours)
            ));
        }
    }
    text.push_str("\nNgười báo tin được giữ bí mật theo quy định của pháp luật.");
    text
}

/// One of the Telegram users in `telegram.admins`.
fn is_loa_admin(config: &Config, user: &User) -> bool {
    config
        .telegram
        .as_ref()
        .is_some_and(|t| t.admins.contains(&(user.id.0 as i64)))
}

fn is_admin(config: &Config, msg: &Message) -> bool {
    msg.from.as_ref().is_some_and(|u| is_loa_admin(config, u))
}

async fn on_admin_command(
    bot: Bot,
    msg: Message,
    cmd: AdminCommand,
    state: State,
) -> anyhow::Result<()> {
    let config = &state.config;
    if !is_admin(config, &msg) {
        // The user id is a private chat's id: masked, as chat ids are wherever people read them.
        let user = msg.from.as_ref().map(|u| mask_address(&u.id.0.to_string()));
        // The command's name only: its argument is whatever they typed.
        let command = match cmd {
            AdminCommand::Reach => "reach",
            AdminCommand::Upcoming => "upcoming",
            AdminCommand::Tochuc(_) => "tochuc",
        };
        tracing::warn!(user = ?user, command, "admin command from a non-admin");
        return reply(&bot, msg.chat.id, help_text()).await;
    }
    let now = state.clock.now();
    let tz = config.campaign.time_zone;
    match cmd {
        AdminCommand::Reach => {
            let year = now.with_timezone(&tz).year();
            let from = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid");
            let to = NaiveDate::from_ymd_opt(year, 12, 31).expect("valid");
            let report =
                reach::report(&state.db, &config.areas, config.campaign.target, from, to).await?;
            let t = &report.total;
            let mut text = format!(
                "<b>Tiếp cận năm {year}</b>\n{}: {} / {} người ({}), mục tiêu {:.0}–{:.0} %\n",
                esc(&t.name),
                t.reached,
                t.population,
                t.percent.map_or("–".into(), |p| format!("{p:.1} %")),
                report.target_low_percent,
                report.target_high_percent
            );
            let mut below: Vec<_> = report
                .areas
                .iter()
                .filter(|r| r.status == Some(BandStatus::Below) && config.areas.is_leaf(&r.code))
                .collect();
            below.sort_by(|a, b| {
                a.percent
                    .partial_cmp(&b.percent)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            if below.is_empty() {
                text.push_str("\nKhông xã nào dưới mục tiêu.");
            } else {
                text.push_str("\n<b>Xa mục tiêu nhất:</b>\n");
                for r in below.iter().take(5) {
                    text.push_str(&format!(
                        "• {}: {:.1} % ({} / {})\n",
                        esc(&r.name),
                        r.percent.unwrap_or(0.0),
                        r.reached,
                        r.population
                    ));
                }
            }
            let (informed, registered) = reach::organisations(&state.db, from, to).await?;
            text.push_str(&format!("\nTổ chức đã nhận tin: {informed} / {registered}"));
            reply(&bot, msg.chat.id, text).await
        }
        AdminCommand::Upcoming => {
            let fires = state
                .calendar
                .fire_times(now, now + chrono::Duration::days(400));
            let mut text = String::from("<b>10 lần gửi tin sắp tới</b>\n");
            for f in fires.iter().take(10) {
                text.push_str(&format!(
                    "• {} — {} ({})\n",
                    f.at.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
                    esc(&f.schedule.observance),
                    esc(&f.schedule.template)
                ));
            }
            reply(&bot, msg.chat.id, text).await
        }
        AdminCommand::Tochuc(code) => {
            let code = code.trim();
            if msg.chat.id.0 >= 0 {
                return reply(
                    &bot,
                    msg.chat.id,
                    "Hãy gửi lệnh này trong nhóm của tổ chức.".into(),
                )
                .await;
            }
            if !config.areas.contains(code) {
                return reply(&bot, msg.chat.id, format!("Không có mã xã {}.", esc(code))).await;
            }
            let title = crate::audience::clip_name(msg.chat.title().unwrap_or("Tổ chức"));
            register_organisation(&state.db, msg.chat.id, &title, code, now).await?;
            let area = &config.areas.get(code).expect("checked").in_sentence;
            reply(
                &bot,
                msg.chat.id,
                format!(
                    "Đã đăng ký nhóm {} là tổ chức của {}.",
                    esc(&title),
                    esc(area)
                ),
            )
            .await
        }
    }
}

async fn register_organisation(
    db: &Db,
    chat: ChatId,
    title: &str,
    area: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut tx = db.pool.begin().await?;
    let existing =
        sqlx::query("SELECT person_id FROM contacts WHERE channel = 'telegram' AND address = $1")
            .bind(chat.0.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    let id = match existing {
        Some(r) => {
            let id: i64 = r.try_get(0)?;
            sqlx::query("UPDATE persons SET name = $1, area_code = $2, kind = 'organisation', opted_out_at = NULL, opted_out_via = NULL WHERE id = $3")
                .bind(title)
                .bind(area)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            id
        }
        None => {
            let id: i64 = sqlx::query(
                "INSERT INTO persons (name, area_code, created_at, kind) VALUES ($1, $2, $3, 'organisation') RETURNING id",
            )
            .bind(title)
            .bind(area)
            .bind(to_epoch(now))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            sqlx::query("INSERT INTO contacts (person_id, channel, address, created_at) VALUES ($1, 'telegram', $2, $3)")
                .bind(id)
                .bind(chat.0.to_string())
                .bind(to_epoch(now))
                .execute(&mut *tx)
                .await?;
            id
        }
    };
    consent::record(&mut *tx, id, ConsentSource::Organisation, Some(area), now).await?;
    tx.commit().await?;
    Ok(())
}

/// Free text in a private chat (group chatter is never read, nor kept). In order: a call for
/// help (`inbound::urgent`) goes to the inbox as urgent and is forwarded to the contact point
/// and the admins, the hotlines answering the first one of the day — whatever word it starts
/// with; a stop word first ("Dừng nhận tin", "huỷ", "TC"; see `text::stop_words`) stops; a
/// subscribe word points to /start; anything else goes to the inbox and gets the help.
async fn on_text(bot: Bot, msg: Message, state: State) -> anyhow::Result<()> {
    // A photo's caption is read like a text ("cứu em" under a picture).
    let Some(text) = msg.text().or(msg.caption()) else {
        return Ok(());
    };
    if !msg.chat.is_private() {
        return Ok(());
    }
    let chat = msg.chat.id;
    let now = state.clock.now();
    let config = &state.config;
    if crate::inbound::urgent::is_urgent(text) {
        let address = chat.0.to_string();
        let raised = alerts::raise(
            &state.db,
            config,
            ChannelKind::Telegram,
            &address,
            text,
            now,
        )
        .await?;

        let first =
            alerts::first_hotlines_today(&state.db, config, ChannelKind::Telegram, &address, now)
                .await?;
        // What to do now comes first, every time; then only what is true of the forward.
        let mut answer = format!(
            "Nếu ông/bà đang gặp nguy hiểm, xin gọi ngay {}.\n",
            emergency_numbers(config)
        );
        answer.push_str(if raised.alerts > 0 {
            "Tin nhắn của ông/bà đã được chuyển tới cán bộ phụ trách."
        } else {
            "Tin nhắn của ông/bà đã được ghi nhận."
        });
        if first {
            let area = person_of_chat(&state.db, chat).await?.map(|p| p.area);
            answer.push_str("\n\n");
            answer.push_str(&support_text(config, area.as_deref()));
        }
        return reply(&bot, chat, answer).await;
    }
    if crate::text::stop_words::is_stop_phrase(text) {
        return stop(&bot, &state, chat).await;
    }
    if crate::text::stop_words::is_start_phrase(text) {
        return reply(&bot, chat, help_text()).await;
    }
    inbox::record(
        &state.db,
        ChannelKind::Telegram,
        &chat.0.to_string(),
        text,
        false,
        now,
    )
    .await?;
    let answer = format!(
        "Cảm ơn ông/bà đã nhắn tin. Tin nhắn đã được chuyển tới cán bộ phụ trách; nếu cần trao \
         đổi thêm, cán bộ sẽ trả lời ông/bà tại đây.\n\n{}",
        help_text()
    );
    reply(&bot, chat, answer).await
}

/// A shared phone number: a person imported with that number gets this chat as a second
/// contact — one person, two ways to reach them.
async fn on_contact(bot: Bot, msg: Message, state: State) -> anyhow::Result<()> {
    let Some(contact) = msg.contact() else {
        return Ok(());
    };
    // In a group, members share contacts with each other, not with the bot: a group chat is
    // never joined to anyone's number, and answering each card would be noise.
    if !msg.chat.is_private() {
        return Ok(());
    }
    // Only one's own number counts.
    if contact.user_id.map(|u| u.0 as i64) != msg.from.as_ref().map(|u| u.id.0 as i64) {
        return reply(
            &bot,
            msg.chat.id,
            "Xin ông/bà chia sẻ số điện thoại của chính mình.".into(),
        )
        .await;
    }
    let Ok(number) = crate::audience::phone::MobileNumber::parse(&contact.phone_number) else {
        return reply(
            &bot,
            msg.chat.id,
            "Số điện thoại này không phải số di động Việt Nam.".into(),
        )
        .await;
    };
    let now = state.clock.now();
    let known =
        sqlx::query("SELECT person_id FROM contacts WHERE channel = 'sms' AND address = $1")
            .bind(number.as_str())
            .fetch_optional(&state.db.pool)
            .await?;
    match known {
        Some(row) => {
            let person: i64 = row.try_get(0)?;
            let chat = msg.chat.id.0.to_string();
            // The chat may already belong to a person made by /start: merge into the known one.
            sqlx::query(
                "UPDATE contacts SET person_id = $1, active = 1 WHERE channel = 'telegram' AND address = $2",
            )
            .bind(person)
            .bind(&chat)
            .execute(&state.db.pool)
            .await?;
            crate::audience::add_contact(
                &state.db,
                person,
                crate::channel::ChannelKind::Telegram,
                &chat,
                now,
            )
            .await?;
            reply(
                &bot,
                msg.chat.id,
                "Cảm ơn ông/bà. Tin nhắn sẽ được gửi qua Telegram thay cho SMS.".into(),
            )
            .await
        }
        None => {
            reply(
                &bot,
                msg.chat.id,
                "Cảm ơn ông/bà. Gửi /start để chọn xã, thị trấn và đăng ký nhận tin.".into(),
            )
            .await
        }
    }
}

async fn on_callback(bot: Bot, q: CallbackQuery, state: State) -> anyhow::Result<()> {
    let data = q.data.clone().unwrap_or_default();
    let config = &state.config;
    // A button acts for the chat of the message it is under, and nothing else: inline-mode
    // buttons (no message) do nothing.
    let Some(message) = q.message.as_ref() else {
        bot.answer_callback_query(q.id).await?;
        return Ok(());
    };
    let chat = message.chat();
    if let Some(page) = data.strip_prefix("page:") {
        let page = page
            .parse::<usize>()
            .ok()
            .filter(|&p| p < area_pages(config));
        let allowed =
            chat.is_private() || may_act_for_group(&bot, config, chat, Some(&q.from), None).await;
        bot.answer_callback_query(q.id.clone()).await?;
        if let (Some(page), true) = (page, allowed) {
            bot.edit_message_reply_markup(chat.id, message.id())
                .reply_markup(area_keyboard(config, page))
                .await?;
        }
    } else if let Some(code) = data.strip_prefix("area:") {
        let Some(area) = config
            .areas
            .get(code)
            .filter(|a| config.areas.is_leaf(&a.code))
        else {
            bot.answer_callback_query(q.id)
                .text("Xã này không còn trong danh sách.")
                .await?;
            return Ok(());
        };
        if chat.is_private() {
            choose_commune(&bot, &state, &q, chat.id, area, ConsentSource::Bot).await?;
        } else {
            move_organisation(&bot, &state, &q, chat, area).await?;
        }
    } else if let Some(code) = data.strip_prefix("poster:") {
        // The one button under a poster link's consent: private chats only.
        match poster_area(config, code) {
            Some(area) if chat.is_private() => {
                choose_commune(&bot, &state, &q, chat.id, area, ConsentSource::Poster).await?;
            }
            _ => {
                bot.answer_callback_query(q.id).await?;
            }
        }
    } else if let Some(delivery) = data.strip_prefix("read:") {
        let recorded = match delivery.parse::<i64>() {
            Ok(delivery) => record_engagement(&state, delivery, chat.id).await?,
            Err(_) => false,
        };
        let text = if recorded {
            "Cảm ơn ông/bà đã đọc tin!"
        } else {
            "Xin cảm ơn!"
        };
        bot.answer_callback_query(q.id).text(text).await?;
    } else {
        bot.answer_callback_query(q.id).await?;
    }
    Ok(())
}

/// A resident chose their commune in their private chat: subscribed there.
async fn choose_commune(
    bot: &Bot,
    state: &State,
    q: &CallbackQuery,
    chat: ChatId,
    area: &crate::config::Area,
    source: ConsentSource,
) -> anyhow::Result<()> {
    // Only the user of a private chat presses its buttons; anything else is forged.
    if chat.0 != q.from.id.0 as i64 {
        bot.answer_callback_query(q.id.clone()).await?;
        return Ok(());
    }
    let name = crate::audience::clip_name(
        &[
            q.from.first_name.as_str(),
            q.from.last_name.as_deref().unwrap_or(""),
        ]
        .join(" "),
    );
    subscribe(state, chat, &name, &area.code, source).await?;
    bot.answer_callback_query(q.id.clone()).await?;
    reply(
        bot,
        chat,
        format!(
            "Ông/bà đã đăng ký nhận tin dành cho <b>{}</b>. Gửi /khuvuc để đổi xã, thị trấn; /hotro khi cần giúp đỡ; /stop để dừng nhận tin.",
            esc(&area.in_sentence)
        ),
    )
    .await
}

/// A commune pressed in a group: moves its organisation, when it is one and the presser may act
/// for the group. The answer to a refused press shows to the presser alone.
async fn move_organisation(
    bot: &Bot,
    state: &State,
    q: &CallbackQuery,
    chat: &Chat,
    area: &crate::config::Area,
) -> anyhow::Result<()> {
    let organisation = person_of_chat(&state.db, chat.id)
        .await?
        .filter(ChatPerson::is_organisation);
    let Some(organisation) = organisation else {
        bot.answer_callback_query(q.id.clone())
            .text("Nhóm này chưa được đăng ký nhận tin.")
            .await?;
        return Ok(());
    };
    if !may_act_for_group(bot, &state.config, chat, Some(&q.from), None).await {
        tracing::info!(
            "commune chosen in a group by a member who is not its administrator: ignored"
        );
        bot.answer_callback_query(q.id.clone())
            .text("Chỉ quản trị viên nhóm mới được đổi xã, thị trấn nhận tin của tổ chức.")
            .await?;
        return Ok(());
    }
    sqlx::query("UPDATE persons SET area_code = $1 WHERE id = $2 AND kind = 'organisation'")
        .bind(&area.code)
        .bind(organisation.id)
        .execute(&state.db.pool)
        .await?;
    bot.answer_callback_query(q.id.clone()).await?;
    reply(
        bot,
        chat.id,
        format!(
            "Tổ chức đã chuyển sang nhận tin dành cho <b>{}</b>.",
            esc(&area.in_sentence)
        ),
    )
    .await
}

/// Creates the person and their Telegram contact, or moves them to `area` and subscribes them
/// again if they had stopped.
/// `/ten <name>`: the name messages greet this subscriber by. The answer, in HTML.
async fn give_name(state: &State, chat: ChatId, typed: &str) -> anyhow::Result<String> {
    let name: String = typed
        .nfc()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        return Ok("Xin gửi họ tên kèm lệnh, ví dụ: /ten Nguyễn Thị Lan".to_string());
    }
    if name.chars().count() > 100 {
        return Ok("Họ tên dài quá 100 ký tự; xin gửi lại.".to_string());
    }
    let Some(person) = person_of_chat(&state.db, chat).await? else {
        return Ok("Ông/bà chưa đăng ký nhận tin. Gửi /start để đăng ký.".to_string());
    };
    sqlx::query("UPDATE persons SET name = $1, name_given = 1 WHERE id = $2")
        .bind(&name)
        .bind(person.id)
        .execute(&state.db.pool)
        .await?;
    Ok(format!(
        "Cảm ơn ông/bà. Từ nay tin nhắn sẽ được gửi tới ông/bà <b>{}</b>.",
        esc(&name)
    ))
}

async fn subscribe(
    state: &State,
    chat: ChatId,
    name: &str,
    area: &str,
    source: ConsentSource,
) -> anyhow::Result<()> {
    let now = state.clock.now();
    let person = match person_of_chat(&state.db, chat).await? {
        Some(person) => {
            sqlx::query("UPDATE persons SET area_code = $1, opted_out_at = NULL, opted_out_via = NULL WHERE id = $2")
                .bind(area)
                .bind(person.id)
                .execute(&state.db.pool)
                .await?;
            sqlx::query("UPDATE contacts SET active = 1, inactive_reason = NULL WHERE channel = 'telegram' AND address = $1")
                .bind(chat.0.to_string())
                .execute(&state.db.pool)
                .await?;
            person.id
        }
        None => {
            let name = if name.is_empty() { "Cư dân" } else { name };
            let person =
                crate::audience::add_person(&state.db, &state.config.areas, name, area, &[], now)
                    .await?;
            // A Telegram display name is not a name the person gave: messages greet them
            // without it until they send /ten.
            sqlx::query("UPDATE persons SET name_given = 0 WHERE id = $1")
                .bind(person)
                .execute(&state.db.pool)
                .await?;
            crate::audience::add_contact(
                &state.db,
                person,
                crate::channel::ChannelKind::Telegram,
                &chat.0.to_string(),
                now,
            )
            .await?;
            person
        }
    };
    // A person imported or subscribed by SMS before keeps the consent they gave first.
    consent::record(&state.db.pool, person, source, Some(area), now).await?;
    Ok(())
}

/// One engagement per person per occurrence; only the chat the message went to can record it.
async fn record_engagement(state: &State, delivery: i64, chat: ChatId) -> anyhow::Result<bool> {
    let now = state.clock.now();
    let Some(row) = sqlx::query(
        "SELECT d.occurrence_id, d.person_id, p.area_code FROM deliveries d
         JOIN contacts c ON c.id = d.contact_id JOIN persons p ON p.id = d.person_id
         WHERE d.id = $1 AND c.channel = 'telegram' AND c.address = $2",
    )
    .bind(delivery)
    .bind(chat.0.to_string())
    .fetch_optional(&state.db.pool)
    .await?
    else {
        return Ok(false);
    };
    let inserted = sqlx::query(
        "INSERT INTO engagements (occurrence_id, person_id, area_code, day, at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (occurrence_id, person_id) DO NOTHING",
    )
    .bind(row.try_get::<i64, _>(0)?)
    .bind(row.try_get::<i64, _>(1)?)
    .bind(row.try_get::<String, _>(2)?)
    .bind(now.with_timezone(&state.config.campaign.time_zone).date_naive().to_string())
    .bind(to_epoch(now))
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
