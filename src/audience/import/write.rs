//! Rows into the database: who is known already (by number), then new persons and their
//! contacts and tags, in batches of one transaction each so a crash leaves whole batches and a
//! re-run completes the rest.
//!
//! Every step is one statement per batch: the lookup, the updates, the new persons (their ids
//! matched to rows as [`insert_persons`] explains), their contacts, the tags.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::ValidRow;
use crate::audience::consent::{self, ConsentSource};
use crate::store::{Db, Sql, to_epoch};

/// Rows per transaction (and per multi-row statement: 4 values a row stays far below both
/// databases' limits on bound values).
pub const BATCH: usize = 500;

/// A person already known by one of the numbers: their id and area.
#[derive(Debug, Clone)]
pub struct Known {
    pub person_id: i64,
    pub area_code: String,
    pub name: String,
}

/// The persons whose SMS contact is one of `numbers`.
pub async fn known<'c, E>(
    executor: E,
    numbers: &[&str],
) -> Result<HashMap<String, Known>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if numbers.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::new(
        "SELECT c.address, c.person_id, p.area_code, p.name FROM contacts c JOIN persons p ON p.id = c.person_id
         WHERE c.channel = 'sms' AND c.address IN (",
    );
    sql.list(numbers.iter().copied()).push(")");
    let mut out = HashMap::new();
    for row in sql.query()?.fetch_all(executor).await? {
        out.insert(
            row.try_get::<String, _>(0)?,
            Known {
                person_id: row.try_get(1)?,
                area_code: row.try_get(2)?,
                name: row.try_get(3)?,
            },
        );
    }
    Ok(out)
}

/// What a row does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new person.
    Add,
    /// The number's person, updated.
    Update(i64),
    /// The number's person lives outside the importing account's scope: not theirs to rename
    /// or move.
    Outside,
}

/// What each row does, given the persons already known by their numbers.
pub fn outcomes(
    rows: &[ValidRow],
    known: &HashMap<String, Known>,
    scope: Option<&HashSet<String>>,
) -> Vec<Outcome> {
    rows.iter()
        .map(|row| match known.get(row.phone.as_str()) {
            None => Outcome::Add,
            Some(k) if scope.is_some_and(|s| !s.contains(&k.area_code)) => Outcome::Outside,
            Some(k) => Outcome::Update(k.person_id),
        })
        .collect()
}

/// Writes one batch in one transaction: known numbers update their person, new ones add a
/// person with an SMS contact. Returns what each row did. A person the list names has their
/// consent recorded as imported from `file` (its name), unless they gave it another way first.
pub async fn write_batch(
    db: &Db,
    rows: &[ValidRow],
    scope: Option<&HashSet<String>>,
    file: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>, sqlx::Error> {
    // `now` is turned into epoch seconds below; consent keeps the instant.
    let at = now;
    let mut tx = db.pool.begin().await?;
    let numbers: Vec<&str> = rows.iter().map(|r| r.phone.as_str()).collect();
    let known = known(&mut *tx, &numbers).await?;
    let outcomes = outcomes(rows, &known, scope);
    let now = to_epoch(now);
    let mut person_of: Vec<Option<i64>> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Update(id) => Some(*id),
            _ => None,
        })
        .collect();
    let updates: Vec<(i64, &str, &ValidRow)> = rows
        .iter()
        .zip(&outcomes)
        .filter_map(|(row, o)| match o {
            Outcome::Update(id) => {
                let stored = known
                    .get(row.phone.as_str())
                    .map_or("", |k| k.name.as_str());
                Some((*id, kept_name(stored, &row.name), row))
            }
            _ => None,
        })
        .collect();
    update_persons(&mut tx, &updates).await?;
    // A gender given replaces the other one ("Nam" corrected to "Nữ").
    let regendered: Vec<(i64, &str)> = updates
        .iter()
        .filter_map(|(id, _, row)| {
            row.gender
                .and_then(super::columns::other_gender)
                .map(|g| (*id, g))
        })
        .collect();
    for chunk in regendered.chunks(BATCH) {
        let mut sql = Sql::new("DELETE FROM person_tags WHERE (person_id, tag) IN (VALUES ");
        sql.tuples(chunk, |t, (id, tag)| {
            t.bind(*id).bind(*tag);
        })
        .push(")");
        sql.query()?.execute(&mut *tx).await?;
    }
    let adding: Vec<usize> = (0..rows.len())
        .filter(|&i| outcomes[i] == Outcome::Add)
        .collect();
    let added: Vec<&ValidRow> = adding.iter().map(|&i| &rows[i]).collect();
    let ids = insert_persons(&mut tx, &added, now).await?;
    let mut new_contacts: Vec<(i64, &str)> = Vec::new();
    for (&i, id) in adding.iter().zip(ids) {
        person_of[i] = Some(id);
        new_contacts.push((id, rows[i].phone.as_str()));
    }
    let tags: Vec<(i64, &str)> = rows
        .iter()
        .zip(&person_of)
        .filter_map(|(row, id)| id.map(|id| (id, row)))
        .flat_map(|(id, row)| row.tags.iter().map(move |t| (id, t.as_str())))
        .collect();
    if !new_contacts.is_empty() {
        let mut sql =
            Sql::new("INSERT INTO contacts (person_id, channel, address, created_at) VALUES ");
        sql.tuples(&new_contacts, |t, (id, address)| {
            t.bind(*id).literal("'sms'").bind(*address).bind(now);
        });
        sql.query()?.execute(&mut *tx).await?;
    }
    for chunk in tags.chunks(BATCH * 2) {
        let mut sql = Sql::new("INSERT INTO person_tags (person_id, tag) VALUES ");
        sql.tuples(chunk, |t, (id, tag)| {
            t.bind(*id).bind(*tag);
        })
        .push(" ON CONFLICT DO NOTHING");
        sql.query()?.execute(&mut *tx).await?;
    }
    let named: Vec<i64> = person_of.iter().flatten().copied().collect();
    consent::record_many(&mut *tx, &named, ConsentSource::Import, Some(file), at).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// The name an update stores: the list's, unless it is the end of the name already known (a
/// list with only a "Tên" column must not turn "Nguyễn Thị Lan" into "Lan").
fn kept_name<'a>(stored: &'a str, typed: &'a str) -> &'a str {
    if stored.len() > typed.len() && stored.ends_with(&format!(" {typed}")) {
        stored
    } else {
        typed
    }
}

/// Known persons renamed (a name the list gives is one they gave), moved to the row's area,
/// given the row's birth year (a row without one leaves the one known): one statement.
async fn update_persons(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(i64, &str, &ValidRow)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    // VALUES columns are `column1`… on both databases (SQLite names no others).
    let mut sql = Sql::new(
        "UPDATE persons SET name = v.column2, name_given = 1, area_code = v.column3, birth_year = COALESCE(CAST(v.column4 AS INTEGER), persons.birth_year) FROM (VALUES ",
    );
    sql.tuples(rows, |t, (id, name, row)| {
        t.bind(*id)
            .bind(*name)
            .bind(row.area.as_str())
            .bind(row.birth_year);
    })
    .push(") AS v WHERE persons.id = v.column1");
    sql.query()?.execute(&mut **tx).await?;
    Ok(())
}

/// New persons in one statement; their ids in the rows' order.
///
/// One `INSERT` numbers its rows one after the other, in order — unless another process took
/// ids in between (PostgreSQL's sequence is shared by all sessions; SQLite's writer holds the
/// database). The ids returned are checked to be one unbroken run; otherwise those rows are
/// taken back and inserted one by one, each with its own `RETURNING id`.
async fn insert_persons(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[&ValidRow],
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new("INSERT INTO persons (name, area_code, birth_year, created_at) VALUES ");
    sql.tuples(rows, |t, row| {
        t.bind(row.name.as_str())
            .bind(row.area.as_str())
            .bind(row.birth_year)
            .bind(now);
    })
    .push(" RETURNING id");
    let mut ids: Vec<i64> = sql
        .query()?
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    ids.sort_unstable();
    let unbroken = ids.len() == rows.len()
        && ids
            .last()
            .zip(ids.first())
            .is_some_and(|(last, first)| last - first + 1 == rows.len() as i64);
    if unbroken {
        return Ok(ids);
    }
    let mut undo = Sql::new("DELETE FROM persons WHERE id IN (");
    undo.list(ids.iter().copied()).push(")");
    undo.query()?.execute(&mut **tx).await?;
    let mut one_by_one = Vec::with_capacity(rows.len());
    for row in rows {
        one_by_one.push(
            sqlx::query(
                "INSERT INTO persons (name, area_code, birth_year, created_at) VALUES ($1, $2, $3, $4)
                 RETURNING id",
            )
            .bind(&row.name)
            .bind(&row.area)
            .bind(row.birth_year)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?,
        );
    }
    Ok(one_by_one)
}
