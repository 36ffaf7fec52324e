//! The inbox ("Tin nhắn đến"): every text a resident sends that is not a command, by SMS or in
//! a private Telegram chat, kept `inbox.keep_days` and then deleted. Owns the table `inbox`.
//!
//! Who sees what (the console's rules, used by its pages and its API alike): staff, approvers
//! and admins read and answer the texts of their area's subtree (an unknown sender has no area:
//! district-wide accounts only); officials see counts, never a text. Lists show the sender
//! masked; an item opened shows the number (staff of the area call back).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::channel::ChannelKind;
use crate::channels::mask_address;
use crate::config::{AreaTree, Config};
use crate::console::{Actor, ConsoleError, Permission, audit, typed_text};
use crate::store::{Db, Sql, from_epoch, to_epoch};

use super::outbox::{self, Kind};

/// Where a text is in its handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Nobody opened it yet.
    New,
    Read,
    /// A staff answer was queued to the sender.
    Answered,
    /// Staff passed it on (police, the Women's Union, a social worker) outside Loa.
    Forwarded,
}

impl State {
    pub const ALL: [State; 4] = [State::New, State::Read, State::Answered, State::Forwarded];

    /// Its one spelling in the database and the API.
    pub fn sql(self) -> &'static str {
        match self {
            State::New => "new",
            State::Read => "read",
            State::Answered => "answered",
            State::Forwarded => "forwarded",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.sql() == s)
    }

    /// As the console shows it.
    pub fn label(self) -> &'static str {
        match self {
            State::New => "Mới",
            State::Read => "Đã đọc",
            State::Answered => "Đã trả lời",
            State::Forwarded => "Đã chuyển xử lý",
        }
    }
}

/// One text as staff see it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub channel: ChannelKind,
    /// The number or chat id, masked: lists show only this.
    pub sender: String,
    /// The full number or chat id: filled in only for an item opened by someone who may read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub area_code: Option<String>,
    pub area_name: Option<String>,
    pub text: String,
    pub urgent: bool,
    pub state: State,
}

/// Counts by state, for everyone who may see figures.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub total: i64,
    pub urgent: i64,
    pub new: i64,
    pub urgent_new: i64,
    pub read: i64,
    pub answered: i64,
    pub forwarded: i64,
}

/// The person and area of a sender, if Loa knows them.
async fn sender_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    channel: ChannelKind,
    address: &str,
) -> anyhow::Result<(Option<i64>, Option<String>)> {
    let row = sqlx::query(
        "SELECT p.id, p.area_code FROM contacts c JOIN persons p ON p.id = c.person_id
         WHERE c.channel = $1 AND c.address = $2 ORDER BY c.active DESC, c.id LIMIT 1",
    )
    .bind(channel.as_str())
    .bind(address)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => (Some(r.try_get(0)?), Some(r.try_get(1)?)),
        None => (None, None),
    })
}

/// Keeps a text; returns its id and the sender's area, if known.
pub async fn record(
    db: &Db,
    channel: ChannelKind,
    address: &str,
    text: &str,
    urgent: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<(i64, Option<String>)> {
    let mut tx = db.pool.begin().await?;
    let recorded = record_in(&mut tx, channel, address, text, urgent, now).await?;
    tx.commit().await?;
    Ok(recorded)
}

/// The same in the caller's transaction (an urgent text is kept with its alerts, or not at all).
pub(super) async fn record_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    channel: ChannelKind,
    address: &str,
    text: &str,
    urgent: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<(i64, Option<String>)> {
    let (person, area) = sender_of(tx, channel, address).await?;
    // PostgreSQL refuses a NUL; nothing else a phone sends is dropped.
    let text: String = text.chars().filter(|c| *c != '\0').collect();
    let id: i64 = sqlx::query(
        "INSERT INTO inbox (at, channel, address, person_id, area_code, text, urgent, state, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $1) RETURNING id",
    )
    .bind(to_epoch(now))
    .bind(channel.as_str())
    .bind(address)
    .bind(person)
    .bind(area.clone())
    .bind(&text)
    .bind(i64::from(urgent))
    .bind(State::New.sql())
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    Ok((id, area))
}

/// Deletes texts that came before `before`, with what was queued for them, and queued messages
/// of that age: residents' words are kept only as long as configured.
pub async fn forget_before(db: &Db, before: DateTime<Utc>) -> anyhow::Result<u64> {
    let mut tx = db.pool.begin().await?;
    outbox::forget_before(&mut tx, before).await?;
    // The once-a-day marks of the hotlines (`alerts`) go with the texts they answered.
    sqlx::query("DELETE FROM inbox_hotline_replies WHERE at < $1")
        .bind(to_epoch(before))
        .execute(&mut *tx)
        .await?;
    // The automatic replies' once-a-day marks hold numbers too (`replies`).
    sqlx::query("DELETE FROM sms_auto_replies WHERE at < $1")
        .bind(to_epoch(before))
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM inbox WHERE at < $1")
        .bind(to_epoch(before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// `before` for a deployment keeping texts `keep_days`.
pub fn retention_cutoff(now: DateTime<Utc>, keep_days: u32) -> DateTime<Utc> {
    now - Duration::days(i64::from(keep_days))
}

/// The area condition of an actor's scope: `AND area_code IN (…)` (nothing for district-wide
/// accounts, who also see unknown senders).
fn scope_condition(sql: &mut Sql, actor: &Actor, areas: &AreaTree) {
    match actor.scope(areas) {
        None => {}
        Some(scope) if scope.is_empty() => {
            sql.push(" AND 1 = 0");
        }
        Some(scope) => {
            sql.push(" AND area_code IN (");
            sql.list(scope);
            sql.push(")");
        }
    }
}

fn item(row: &sqlx::any::AnyRow, config: &Config) -> anyhow::Result<Item> {
    let channel: String = row.try_get("channel")?;
    let state: String = row.try_get("state")?;
    let address: String = row.try_get("address")?;
    let area_code: Option<String> = row.try_get("area_code")?;
    Ok(Item {
        id: row.try_get("id")?,
        at: from_epoch(row.try_get("at")?),
        channel: config
            .channels
            .parse(&channel)
            .ok_or_else(|| anyhow::anyhow!("inbox: unknown channel {channel:?}"))?,
        sender: mask_address(&address),
        address: None,
        area_name: area_code
            .as_deref()
            .and_then(|c| config.areas.get(c))
            .map(|a| a.name.clone()),
        area_code,
        text: row.try_get("text")?,
        urgent: row.try_get::<i64, _>("urgent")? != 0,
        state: State::parse(&state).unwrap_or(State::New),
    })
}

const COLUMNS: &str = "id, at, channel, address, area_code, text, urgent, state";

/// The texts `actor` may read: urgent first, then new, then the latest; `limit` of them.
pub async fn list(
    db: &Db,
    config: &Config,
    actor: &Actor,
    limit: i64,
) -> Result<Vec<Item>, ConsoleError> {
    page(db, config, actor, None, limit).await
}

/// Where an item stands in the list's order (urgent first, then new, then the latest): a
/// page of the JSON API starts after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListKey {
    pub urgent: bool,
    pub new: bool,
    pub at: i64,
    pub id: i64,
}

impl ListKey {
    pub fn of(item: &Item) -> ListKey {
        ListKey {
            urgent: item.urgent,
            new: item.state == State::New,
            at: to_epoch(item.at),
            id: item.id,
        }
    }
}

/// Like [`list`], from after the item at `after`.
pub async fn page(
    db: &Db,
    config: &Config,
    actor: &Actor,
    after: Option<ListKey>,
    limit: i64,
) -> Result<Vec<Item>, ConsoleError> {
    actor.require(Permission::ReadInbox)?;
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM inbox WHERE 1 = 1"));
    scope_condition(&mut sql, actor, &config.areas);
    // The order's key, every part ascending: (not urgent, not new, -at, -id).
    let key = |sql: &mut Sql| {
        sql.push("(CASE WHEN urgent <> 0 THEN 0 ELSE 1 END, CASE WHEN state = ");
        sql.bind(State::New.sql());
        sql.push(" THEN 0 ELSE 1 END, 0 - at, 0 - id)");
    };
    if let Some(after) = after {
        sql.push(" AND ");
        key(&mut sql);
        sql.push(" > (");
        sql.bind(i64::from(!after.urgent));
        sql.push(", ");
        sql.bind(i64::from(!after.new));
        sql.push(", ");
        // A cursor is the caller's text: i64::MIN has no negation, so it saturates.
        sql.bind(after.at.saturating_neg());
        sql.push(", ");
        sql.bind(after.id.saturating_neg());
        sql.push(")");
    }
    sql.push(" ORDER BY urgent DESC, CASE WHEN state = ");
    sql.bind(State::New.sql());
    sql.push(" THEN 0 ELSE 1 END, at DESC, id DESC LIMIT ");
    sql.bind(limit);
    let rows = sql.query()?.fetch_all(&db.pool).await?;
    Ok(rows
        .iter()
        .map(|r| item(r, config))
        .collect::<anyhow::Result<_>>()?)
}

/// Counts of the texts of `actor`'s scope: for every role, officials included.
pub async fn counts(db: &Db, config: &Config, actor: &Actor) -> Result<Counts, ConsoleError> {
    actor.require(Permission::ViewFigures)?;
    let mut sql = Sql::new("SELECT state, urgent, COUNT(*) FROM inbox WHERE 1 = 1".to_string());
    scope_condition(&mut sql, actor, &config.areas);
    sql.push(" GROUP BY state, urgent");
    let mut counts = Counts::default();
    for row in sql.query()?.fetch_all(&db.pool).await? {
        let state: String = row.try_get(0)?;
        let urgent = row.try_get::<i64, _>(1)? != 0;
        let n: i64 = row.try_get(2)?;
        counts.total += n;
        if urgent {
            counts.urgent += n;
        }
        match State::parse(&state) {
            Some(State::New) => {
                counts.new += n;
                if urgent {
                    counts.urgent_new += n;
                }
            }
            Some(State::Read) => counts.read += n,
            Some(State::Answered) => counts.answered += n,
            Some(State::Forwarded) => counts.forwarded += n,
            None => {}
        }
    }
    Ok(counts)
}

/// One text, if `actor` may read it (another area's is "not found", as if it did not exist).
async fn find(db: &Db, config: &Config, actor: &Actor, id: i64) -> Result<Item, ConsoleError> {
    actor.require(Permission::ReadInbox)?;
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM inbox WHERE id = "));
    sql.bind(id);
    scope_condition(&mut sql, actor, &config.areas);
    let row = sql
        .query()?
        .fetch_optional(&db.pool)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let mut found = item(&row, config)?;
    found.address = Some(row.try_get("address")?);
    Ok(found)
}

/// Opens a text: with its sender's full number, marked read the first time (audited).
pub async fn open(
    db: &Db,
    config: &Config,
    actor: &Actor,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Item, ConsoleError> {
    let mut found = find(db, config, actor, id).await?;
    if found.state == State::New {
        change_state(db, actor, &found, State::Read, now).await?;
        found.state = State::Read;
    }
    Ok(found)
}

/// Marks a text read or forwarded (or new again), audited.
pub async fn set_state(
    db: &Db,
    config: &Config,
    actor: &Actor,
    id: i64,
    state: State,
    now: DateTime<Utc>,
) -> Result<Item, ConsoleError> {
    let mut found = find(db, config, actor, id).await?;
    if state == State::Answered {
        return Err(ConsoleError::invalid(
            "state",
            "Trạng thái \"đã trả lời\" chỉ có khi gửi câu trả lời.",
        ));
    }
    if found.state != state {
        change_state(db, actor, &found, state, now).await?;
        found.state = state;
    }
    Ok(found)
}

async fn change_state(
    db: &Db,
    actor: &Actor,
    found: &Item,
    state: State,
    now: DateTime<Utc>,
) -> Result<(), ConsoleError> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE inbox SET state = $1, updated_at = $2, updated_by = $3 WHERE id = $4")
        .bind(state.sql())
        .bind(to_epoch(now))
        .bind(&actor.id)
        .bind(found.id)
        .execute(&mut *tx)
        .await?;
    let subject = format!("inbox:{}", found.id);
    audit::record(
        &mut *tx,
        now,
        &actor.id,
        "inbox.state",
        Some(&subject),
        Some(state.sql()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Longest answer: two Telegram screens, or an SMS of a few parts.
pub const MAX_ANSWER_CHARS: usize = 480;

/// Answers a text on the channel it came by: queued for the dispatcher (its rate limits and
/// quiet hours apply), the text marked answered, audited in the same transaction. Staff's
/// words are sent as typed (never a template), after the campaign's sender name.
/// Answers one text may get.
pub const MAX_ANSWERS_PER_TEXT: i64 = 3;

pub async fn answer(
    db: &Db,
    config: &Config,
    actor: &Actor,
    id: i64,
    typed: &str,
    now: DateTime<Utc>,
) -> Result<Item, ConsoleError> {
    let mut found = find(db, config, actor, id).await?;
    typed_text("text", typed)?;
    let typed = typed.trim();
    if typed.is_empty() {
        return Err(ConsoleError::invalid("text", "Xin nhập nội dung trả lời."));
    }
    if typed.chars().count() > MAX_ANSWER_CHARS {
        return Err(ConsoleError::invalid(
            "text",
            format!("Câu trả lời dài quá {MAX_ANSWER_CHARS} ký tự."),
        ));
    }
    // One resident who wrote gets a reply, not a correspondence: a few answers per text (one
    // person's answer needs no second person, as a campaign message does; see README).
    let given: i64 =
        sqlx::query("SELECT COUNT(*) FROM inbox_outbox WHERE inbox_id = $1 AND kind = $2")
            .bind(found.id)
            .bind(Kind::Answer.sql())
            .fetch_one(&db.pool)
            .await?
            .try_get(0)?;
    if given >= MAX_ANSWERS_PER_TEXT {
        return Err(ConsoleError::Conflict(format!(
            "Tin nhắn này đã được trả lời {given} lần; xin liên hệ trực tiếp với người gửi nếu cần trao đổi thêm."
        )));
    }
    let address = found.address.clone().unwrap_or_default();
    let body = match found.channel {
        ChannelKind::Telegram => format!(
            "<b>{}</b> trả lời tin nhắn của ông/bà:\n\n{}",
            crate::templates::escape_telegram_html(&config.campaign.sender),
            crate::templates::escape_telegram_html(typed)
        ),
        _ => format!("{}: {typed}", config.campaign.sender),
    };
    let mut tx = db.pool.begin().await?;
    outbox::queue(
        &mut tx,
        Some(found.id),
        Kind::Answer,
        found.channel,
        &address,
        &body,
        now,
    )
    .await?;
    sqlx::query("UPDATE inbox SET state = $1, updated_at = $2, updated_by = $3 WHERE id = $4")
        .bind(State::Answered.sql())
        .bind(to_epoch(now))
        .bind(&actor.id)
        .bind(found.id)
        .execute(&mut *tx)
        .await?;
    let subject = format!("inbox:{}", found.id);
    let detail = format!(
        "channel={}, {} characters",
        found.channel,
        typed.chars().count()
    );
    audit::record(
        &mut *tx,
        now,
        &actor.id,
        "inbox.answer",
        Some(&subject),
        Some(&detail),
    )
    .await?;
    tx.commit().await?;
    found.state = State::Answered;
    Ok(found)
}

/// The answers queued for a text, oldest first: (when, status).
pub async fn answers(
    db: &Db,
    id: i64,
) -> Result<Vec<(DateTime<Utc>, String, String)>, ConsoleError> {
    Ok(outbox::answers_of(db, id).await?)
}
