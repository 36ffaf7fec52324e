//! The queue's tables: `contents` (one row per item), `content_versions` (who wrote each
//! version), `content_texts` (the staff's text per channel of the current version). And what
//! the scheduler asks of them: approved content due, marking it sending, then done.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use super::check::{Valid, split};
use super::{Content, QueueKey, State};
use crate::channel::{ChannelKind, ChannelSet};
use crate::console::ConsoleError;
use crate::delivery::Status;
use crate::store::{Db, Sql, from_epoch, to_epoch};

const SELECT: &str = "SELECT id, title, template, areas, tags, channels, observance, send_at,
    state, author, approver, occurrence_id, created_at, updated_at, version, unreached,
    below_band FROM contents";

/// Content rows as `SELECT` reads them, with their texts (one more query for all of them).
pub(super) async fn load<'c, E>(
    executor: E,
    channels: &ChannelSet,
    filter: &str,
    bind: Option<i64>,
) -> Result<Vec<Content>, ConsoleError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any> + Copy,
{
    let sql = format!("{SELECT} {filter}");
    let query = sqlx::query(AssertSqlSafe(sql));
    let query = match bind {
        Some(value) => query.bind(value),
        None => query,
    };
    let rows = query.fetch_all(executor).await?;
    with_texts(executor, channels, &rows).await
}

/// The contents of `rows` (as [`SELECT`] reads them), with their texts.
async fn with_texts<'c, E>(
    executor: E,
    channels: &ChannelSet,
    rows: &[sqlx::any::AnyRow],
) -> Result<Vec<Content>, ConsoleError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any> + Copy,
{
    let mut contents = rows
        .iter()
        .map(|row| from_row(row, channels))
        .collect::<Result<Vec<Content>, ConsoleError>>()?;
    if contents.is_empty() {
        return Ok(contents);
    }
    let mut texts =
        Sql::new("SELECT content_id, channel, text FROM content_texts WHERE content_id IN (");
    texts.list(contents.iter().map(|c| c.id)).push(")");
    let mut by_content: BTreeMap<i64, BTreeMap<ChannelKind, String>> = BTreeMap::new();
    for row in texts.query()?.fetch_all(executor).await? {
        let channel: String = row.try_get(1)?;
        if let Some(kind) = channels.parse(&channel) {
            by_content
                .entry(row.try_get(0)?)
                .or_default()
                .insert(kind, row.try_get(2)?);
        }
    }
    for content in &mut contents {
        content.texts = by_content.remove(&content.id).unwrap_or_default();
    }
    Ok(contents)
}

fn from_row(r: &sqlx::any::AnyRow, channels: &ChannelSet) -> Result<Content, ConsoleError> {
    let state: String = r.try_get(8)?;
    let kinds: String = r.try_get(5)?;
    Ok(Content {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        template: r.try_get(2)?,
        texts: BTreeMap::new(),
        areas: split(&r.try_get::<String, _>(3)?),
        tags: split(&r.try_get::<String, _>(4)?),
        channels: split(&kinds)
            .iter()
            .filter_map(|c| channels.parse(c))
            .collect(),
        observance: r.try_get(6)?,
        send_at: from_epoch(r.try_get(7)?),
        state: State::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown content state {state:?}"))?,
        author: r.try_get(9)?,
        approver: r.try_get(10)?,
        occurrence_id: r.try_get(11)?,
        created_at: from_epoch(r.try_get(12)?),
        updated_at: from_epoch(r.try_get(13)?),
        version: r.try_get(14)?,
        unreached: r
            .try_get::<Option<String>, _>(15)?
            .as_deref()
            .and_then(crate::calendar::Unreached::parse),
        below_band: r.try_get::<i64, _>(16)? != 0,
    })
}

/// A new draft of `valid`, written by `author`: its id.
pub(super) async fn insert(
    tx: &mut sqlx::AnyConnection,
    valid: &Valid,
    author: &str,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let mut sql = Sql::new(
        "INSERT INTO contents (title, template, areas, tags, channels, observance, send_at,
             unreached, below_band, state, author, created_at, updated_at, version) VALUES (",
    );
    bind_fields(&mut sql, valid);
    sql.push(", ")
        .bind(State::Draft.as_str())
        .push(", ")
        .bind(author.to_string())
        .push(", ")
        .bind(to_epoch(now))
        .push(", ")
        .bind(to_epoch(now))
        .push(", 1) RETURNING id");
    let id: i64 = sql.query()?.fetch_one(&mut *tx).await?.try_get(0)?;
    write_texts(tx, id, valid).await?;
    Ok(id)
}

/// Replaces content `id`, seen at `version` in state `state`, by `valid` as a new draft of
/// `version + 1`; false when it changed meanwhile.
pub(super) async fn update(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    seen: (State, i64),
    valid: &Valid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut sql = Sql::new(
        "UPDATE contents SET (title, template, areas, tags, channels, observance, send_at,
             unreached, below_band) = (",
    );
    bind_fields(&mut sql, valid);
    sql.push("), state = ")
        .bind(State::Draft.as_str())
        .push(", approver = NULL, updated_at = ")
        .bind(to_epoch(now))
        .push(", version = ")
        .bind(seen.1 + 1)
        .push(" WHERE id = ")
        .bind(id)
        .push(" AND state = ")
        .bind(seen.0.as_str())
        .push(" AND version = ")
        .bind(seen.1);
    if sql.query()?.execute(&mut *tx).await?.rows_affected() == 0 {
        return Ok(false);
    }
    write_texts(tx, id, valid).await?;
    Ok(true)
}

/// The stored columns of `valid`, in the order `insert` and `update` name them.
fn bind_fields(sql: &mut Sql, valid: &Valid) {
    let channels: Vec<&str> = valid.channels.iter().map(|c| c.as_str()).collect();
    sql.bind(valid.title.clone())
        .push(", ")
        .bind(valid.template.clone())
        .push(", ")
        .bind(valid.areas.join(","))
        .push(", ")
        .bind(valid.tags.join(","))
        .push(", ")
        .bind(channels.join(","))
        .push(", ")
        .bind(valid.observance.clone())
        .push(", ")
        .bind(to_epoch(valid.send_at))
        .push(", ")
        .bind(valid.unreached.map(|u| u.as_str()))
        .push(", ")
        .bind(i64::from(valid.below_band));
}

/// The texts of the current version: the previous ones go.
async fn write_texts(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    valid: &Valid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM content_texts WHERE content_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if valid.texts.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("INSERT INTO content_texts (content_id, channel, text) VALUES ");
    sql.tuples(&valid.texts, |row, (channel, text)| {
        row.bind(id).bind(channel.as_str()).bind(text.clone());
    });
    sql.query()?.execute(&mut *tx).await?;
    Ok(())
}

/// Records who wrote `version` of content `id`, in the transaction that stores it.
pub(super) async fn record_version(
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

/// Who wrote a version of content `id` since it was created or last approved.
pub(super) async fn editors_since_approval(db: &Db, id: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(
        "SELECT DISTINCT v.editor FROM content_versions v JOIN contents c ON c.id = v.content_id
         WHERE v.content_id = $1 AND v.version > COALESCE(c.approved_version, 0)",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect()
}

/// Moves content `id`, seen at `version` in state `from`, to `to`; an approval records its
/// approver and the version approved. False when it changed meanwhile — and, for an approval,
/// when the approver wrote the content or a version of it since its last approval: checked in
/// the same statement, so no edit can slip between the check and the approval.
pub(super) async fn transition(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    (from, version): (State, i64),
    to: State,
    approver: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE contents SET state = $1, updated_at = $2,
             approver = CASE WHEN $3 = 1 THEN $4 ELSE approver END,
             approved_version = CASE WHEN $3 = 1 THEN version ELSE approved_version END
         WHERE id = $5 AND state = $6 AND version = $7
           AND ($3 = 0 OR (author <> $4 AND NOT EXISTS (
               SELECT 1 FROM content_versions v
               WHERE v.content_id = contents.id AND v.editor = $4
                 AND v.version > COALESCE(contents.approved_version, 0))))",
    )
    .bind(to.as_str())
    .bind(to_epoch(now))
    .bind(i64::from(approver.is_some()))
    .bind(approver.unwrap_or_default())
    .bind(id)
    .bind(from.as_str())
    .bind(version)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// The queue in the order it is shown: soonest first; done and cancelled last.
pub(super) async fn all(db: &Db, channels: &ChannelSet) -> Result<Vec<Content>, ConsoleError> {
    static ORDER: LazyLock<String> = LazyLock::new(|| {
        format!(
            "ORDER BY CASE WHEN state IN ({}, {}) THEN 1 ELSE 0 END, send_at, id",
            State::Done.sql(),
            State::Cancelled.sql()
        )
    });
    load(&db.pool, channels, &ORDER, None).await
}

/// The queue in [`all`]'s order, from after the item whose key is `after`, at most `limit`.
pub(super) async fn page(
    db: &Db,
    channels: &ChannelSet,
    after: Option<QueueKey>,
    limit: i64,
) -> Result<Vec<Content>, ConsoleError> {
    let finished = |sql: &mut Sql| {
        sql.push("CASE WHEN state IN (");
        sql.list([State::Done.sql(), State::Cancelled.sql()]);
        sql.push(") THEN 1 ELSE 0 END");
    };
    let mut sql = Sql::new(format!("{SELECT} WHERE 1 = 1"));
    if let Some(after) = after {
        sql.push(" AND (");
        finished(&mut sql);
        sql.push(", send_at, id) > (");
        sql.bind(i64::from(after.finished));
        sql.push(", ");
        sql.bind(after.send_at);
        sql.push(", ");
        sql.bind(after.id);
        sql.push(")");
    }
    sql.push(" ORDER BY ");
    finished(&mut sql);
    sql.push(", send_at, id LIMIT ");
    sql.bind(limit);
    let rows = sql.query()?.fetch_all(&db.pool).await?;
    with_texts(&db.pool, channels, &rows).await
}

pub(super) async fn one(
    db: &Db,
    channels: &ChannelSet,
    id: i64,
) -> Result<Option<Content>, ConsoleError> {
    Ok(load(&db.pool, channels, "WHERE id = $1", Some(id))
        .await?
        .pop())
}

/// Approved content whose send time has come, for the scheduler.
pub async fn due(
    db: &Db,
    channels: &ChannelSet,
    now: DateTime<Utc>,
) -> Result<Vec<Content>, ConsoleError> {
    static DUE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WHERE state = {} AND send_at <= $1 ORDER BY send_at, id",
            State::Approved.sql()
        )
    });
    load(&db.pool, channels, &DUE, Some(to_epoch(now))).await
}

/// Marks approved content as sending, with its occurrence; false when someone else got there
/// first (edited, cancelled, or another instance sent it). `version` is the version whose texts
/// the scheduler rendered: if the item was edited and approved again since, the texts in hand
/// are not the approved ones, and nothing is marked. Part of the scheduler's transaction.
pub async fn mark_sending(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    version: i64,
    occurrence_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    static SENDING: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE contents SET state = {}, occurrence_id = $1, updated_at = $2
             WHERE id = $3 AND state = {} AND version = $4 AND approved_version = $4",
            State::Sending.sql(),
            State::Approved.sql()
        )
    });
    let updated = sqlx::query(AssertSqlSafe(SENDING.as_str()))
        .bind(occurrence_id)
        .bind(to_epoch(now))
        .bind(id)
        .bind(version)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// Content whose every delivery has finished is done.
pub async fn mark_done(db: &Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    static DONE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE contents SET state = {done}, updated_at = $1
             WHERE state = {sending} AND NOT EXISTS (
                 SELECT 1 FROM deliveries d WHERE d.occurrence_id = contents.occurrence_id
                     AND d.status IN {waiting})",
            done = State::Done.sql(),
            sending = State::Sending.sql(),
            waiting = Status::sql_list(&Status::WAITING),
        )
    });
    Ok(sqlx::query(AssertSqlSafe(DONE.as_str()))
        .bind(to_epoch(now))
        .execute(&db.pool)
        .await?
        .rows_affected())
}
