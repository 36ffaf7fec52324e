//! Rows into the database: who is known already (by number), then new persons and their
//! contacts and tags, in batches of one transaction each so a crash leaves whole batches and a
//! re-run completes the rest.
//!
//! Lookups, contacts and tags go one statement per batch; a new person is one `INSERT …
//! RETURNING id` each, because the order of a multi-row `RETURNING` is not defined on SQLite
//! and the id must be matched to its row.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::ValidRow;
use crate::store::{Db, Sql, to_epoch};

/// Rows per transaction (and per multi-row statement: 4 values a row stays far below both
/// databases' limits on bound values).
pub const BATCH: usize = 500;

/// A person already known by one of the numbers: their id and area.
#[derive(Debug, Clone)]
pub struct Known {
    pub person_id: i64,
    pub area_code: String,
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
        "SELECT c.address, c.person_id, p.area_code FROM contacts c JOIN persons p ON p.id = c.person_id
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
    /// The number's person lives in this area, outside the importing account's scope: not
    /// theirs to rename or move.
    Outside(String),
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
            Some(k) if scope.is_some_and(|s| !s.contains(&k.area_code)) => {
                Outcome::Outside(k.area_code.clone())
            }
            Some(k) => Outcome::Update(k.person_id),
        })
        .collect()
}

/// Writes one batch in one transaction: known numbers update their person, new ones add a
/// person with an SMS contact. Returns what each row did.
pub async fn write_batch(
    db: &Db,
    rows: &[ValidRow],
    scope: Option<&HashSet<String>>,
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let numbers: Vec<&str> = rows.iter().map(|r| r.phone.as_str()).collect();
    let outcomes = outcomes(rows, &known(&mut *tx, &numbers).await?, scope);
    let now = to_epoch(now);
    let mut new_contacts: Vec<(i64, &str)> = Vec::new();
    let mut tags: Vec<(i64, &str)> = Vec::new();
    for (row, outcome) in rows.iter().zip(&outcomes) {
        let person_id = match outcome {
            Outcome::Outside(_) => continue,
            &Outcome::Update(person_id) => {
                // A birth year not given leaves the one known.
                sqlx::query(
                    "UPDATE persons SET name = $1, area_code = $2, birth_year = COALESCE($3, birth_year)
                     WHERE id = $4",
                )
                .bind(&row.name)
                .bind(&row.area)
                .bind(row.birth_year)
                .bind(person_id)
                .execute(&mut *tx)
                .await?;
                person_id
            }
            Outcome::Add => {
                let id: i64 = sqlx::query(
                    "INSERT INTO persons (name, area_code, birth_year, created_at) VALUES ($1, $2, $3, $4)
                     RETURNING id",
                )
                .bind(&row.name)
                .bind(&row.area)
                .bind(row.birth_year)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                new_contacts.push((id, row.phone.as_str()));
                id
            }
        };
        tags.extend(row.tags.iter().map(|t| (person_id, t.as_str())));
    }
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
    tx.commit().await?;
    Ok(outcomes)
}
