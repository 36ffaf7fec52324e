//! An urgent text, whichever way it came: kept in the inbox as urgent and forwarded at once to
//! the contact point of the sender's commune (its `telegram_chat`, else the nearest one up the
//! area tree) and to every admin in `telegram.admins`, queued for the dispatcher's next step.
//!
//! The forward carries the sender's full number: the contact point has to call back, and the
//! chat is the contact point's own. (The console's lists show it masked.) Nothing is forwarded
//! without Telegram: the `log` channel would print the number into the log.
//!
//! The hotlines go to the sender once a local day however many urgent texts they send
//! ([`first_hotlines_today`]); the caller sends them by its own channel.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::channel::ChannelKind;
use crate::config::Config;
use crate::store::{Db, to_epoch};
use crate::templates::escape_telegram_html as esc;

use super::inbox;
use super::outbox::{self, Kind};

/// What became of an urgent text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub inbox_id: i64,
    /// Forwards queued: the contact point's chat and the admins'.
    pub alerts: usize,
}

/// Where an urgent text from `area` is forwarded: the contact point's chat (the area's, else
/// the nearest up the tree; for an unknown sender, the top area's), then the admins, once each.
pub fn alert_chats(config: &Config, area: Option<&str>) -> Vec<i64> {
    if config.telegram.is_none() {
        return Vec::new();
    }
    let point = match area {
        Some(code) => config.areas.telegram_chat(code),
        None => config.areas.roots().find_map(|r| r.telegram_chat),
    };
    let mut chats: Vec<i64> = point.into_iter().collect();
    for admin in config.telegram.iter().flat_map(|t| &t.admins) {
        if !chats.contains(admin) {
            chats.push(*admin);
        }
    }
    chats
}

/// The shortest time between two forwards of one sender's urgent texts.
pub const FORWARD_GAP: chrono::Duration = chrono::Duration::minutes(10);

/// The most of a resident's text quoted in a forward: Telegram takes 4,096 characters.
const QUOTED_CHARS: usize = 2500;

/// Keeps an urgent text and queues its forwards, in one transaction; a sender whose text was
/// forwarded in the last [`FORWARD_GAP`] is not forwarded again (the contact point already
/// has the number and the page).
pub async fn raise(
    db: &Db,
    config: &Config,
    channel: ChannelKind,
    address: &str,
    text: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Raised> {
    let mut tx = db.pool.begin().await?;
    // One sender's burst is one forward per FORWARD_GAP (every text is in the inbox): a flood
    // from one phone must not hold up another resident's call behind it.
    let recent: i64 = sqlx::query(
        "SELECT COUNT(*) FROM inbox_outbox o JOIN inbox i ON i.id = o.inbox_id
         WHERE o.kind = $1 AND i.channel = $2 AND i.address = $3 AND o.created_at > $4",
    )
    .bind(Kind::Alert.sql())
    .bind(channel.as_str())
    .bind(address)
    .bind(to_epoch(now - FORWARD_GAP))
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    let (inbox_id, area) = inbox::record_in(&mut tx, channel, address, text, true, now).await?;
    let chats = if recent > 0 {
        Vec::new()
    } else {
        alert_chats(config, area.as_deref())
    };
    let body = alert_text(
        config,
        inbox_id,
        channel,
        address,
        area.as_deref(),
        text,
        now,
    );
    for chat in &chats {
        outbox::queue(
            &mut tx,
            Some(inbox_id),
            Kind::Alert,
            ChannelKind::Telegram,
            &chat.to_string(),
            &body,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    tracing::warn!(
        inbox = inbox_id,
        area = area.as_deref().unwrap_or("unknown"),
        forwards = chats.len(),
        "urgent text from a resident"
    );
    Ok(Raised {
        inbox_id,
        alerts: chats.len(),
    })
}

/// The text as quoted in a forward: on one line (a resident's line breaks cannot imitate the
/// forward's own lines), at most [`QUOTED_CHARS`] characters.
fn quoted(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= QUOTED_CHARS {
        flat
    } else {
        let cut: String = flat.chars().take(QUOTED_CHARS).collect();
        format!("{cut}… (xem đầy đủ tại mục Tin nhắn đến)")
    }
}

/// A number as people dial it: +84912345678 → 0912345678.
fn dialable(address: &str) -> String {
    match address.strip_prefix("+84") {
        Some(rest) => format!("0{rest}"),
        None => address.to_string(),
    }
}

/// The forward (Telegram HTML): where from, how to reach the sender, when, the words.
fn alert_text(
    config: &Config,
    inbox_id: i64,
    channel: ChannelKind,
    address: &str,
    area: Option<&str>,
    text: &str,
    now: DateTime<Utc>,
) -> String {
    let area_name = area
        .and_then(|code| config.areas.get(code))
        .map(|a| a.name.clone())
        .unwrap_or_else(|| "Chưa rõ địa bàn".to_string());
    let from = match channel {
        ChannelKind::Sms => format!("SMS từ số <b>{}</b>", esc(&dialable(address))),
        ChannelKind::Telegram => {
            "Telegram (không có số điện thoại; trả lời người gửi tại mục \"Tin nhắn đến\" trên trang quản lý Loa)".to_string()
        }
        other => esc(other.as_str()),
    };
    let local = now.with_timezone(&config.campaign.time_zone);
    let link = config
        .public_url
        .as_deref()
        .map(|url| {
            format!(
                "\nXem và ghi nhận xử lý: {}/inbox/{inbox_id}",
                url.trim_end_matches('/')
            )
        })
        .unwrap_or_default();
    format!(
        "🆘 <b>TIN NHẮN KHẨN CẤP</b> của người dân – {}\n\
         Qua: {from}\n\
         Lúc: {}\n\
         Nội dung: \"{}\"\n\n\
         Đề nghị liên hệ ngay với người gửi. Khi gọi lại, xin hỏi trước người gửi có nói chuyện \
         an toàn được không; không nói nội dung tin nhắn với người khác nghe máy. Hệ thống tự \
         động gửi các số đường dây nóng cho người gửi (mỗi ngày một lần).{}",
        esc(&area_name),
        local.format("%H:%M ngày %d/%m/%Y"),
        esc(&quoted(text)),
        esc(&link),
    )
}

/// Whether this is the sender's first urgent text today (campaign time zone): the hotlines go
/// with the first only.
pub async fn first_hotlines_today(
    db: &Db,
    config: &Config,
    channel: ChannelKind,
    address: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let day = now
        .with_timezone(&config.campaign.time_zone)
        .date_naive()
        .to_string();
    let inserted = sqlx::query(
        "INSERT INTO inbox_hotline_replies (channel, address, day, at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (channel, address, day) DO NOTHING",
    )
    .bind(channel.as_str())
    .bind(address)
    .bind(day)
    .bind(to_epoch(now))
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_given_as_people_dial_them() {
        assert_eq!(dialable("+84912345678"), "0912345678");
        assert_eq!(dialable("12345"), "12345");
    }
}
