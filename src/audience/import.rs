//! `loa import contacts FILE.csv`: residents with phone numbers from a spreadsheet.
//!
//! Columns `name,phone,area[,tags]` (UTF-8, with or without the BOM Excel writes; tags separated
//! by `;`). One leading `'`, the mark Loa's exports put on text that looks like a formula, is
//! taken off every field. Valid rows go in, each invalid row is reported with its line number
//! and reason, and a second import of the same file changes nothing: a number already known
//! updates its person.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::phone::MobileNumber;
use crate::config::AreaTree;
use crate::export::unguard;
use crate::store::{Db, to_epoch};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "{file}:1: the header must be name,phone,area[,tags] (found {found:?}); nothing was imported"
    )]
    Header { file: String, found: String },
    #[error("{file}: not a CSV file: {source}")]
    Csv { file: String, source: csv::Error },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One row that did not go in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    pub rejected: Vec<Rejected>,
    /// Rows imported after their number was read differently from how it was typed (an old
    /// 11-digit prefix converted, a dropped leading zero put back, a second number left out):
    /// each with what was done, for the operator to see.
    pub adjusted: Vec<Rejected>,
}

/// A row that passed validation.
#[derive(Debug, Clone)]
struct ValidRow {
    name: String,
    phone: MobileNumber,
    area: String,
    tags: Vec<String>,
}

/// Reads and checks every row; `progress` is called with the number of rows read so far.
pub async fn import_contacts(
    db: &Db,
    areas: &AreaTree,
    path: &Path,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        file: file.clone(),
        source,
    })?;
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|source| ImportError::Csv {
            file: file.clone(),
            source,
        })?
        .iter()
        .map(|h| h.to_lowercase())
        .collect();
    let has_tags = match header
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["name", "phone", "area"] => false,
        ["name", "phone", "area", "tags"] => true,
        _ => {
            return Err(ImportError::Header {
                file,
                found: header.join(","),
            });
        }
    };
    let mut report = ImportReport::default();
    let mut valid = Vec::new();
    let mut seen = HashSet::new();
    for (i, record) in reader.records().enumerate() {
        progress(i as u64 + 1);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(i as u64 + 2, |p| p.line());
                report.rejected.push(Rejected {
                    line,
                    reason: format!("unreadable: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(i as u64 + 2, |p| p.line());
        // A list exported by Loa (or saved from Excel) marks cells that look like formulas with
        // a leading `'`: one is taken off, so such a list imports as it was.
        let field = |n: usize| {
            unguard(record.get(n).unwrap_or("").trim())
                .trim()
                .to_string()
        };
        let (name, phone, area) = (field(0), field(1), field(2));
        let reject = |reason: String| Rejected { line, reason };
        if record.len() < 3 || record.len() > 3 + usize::from(has_tags) {
            report.rejected.push(reject(format!(
                "expected {} columns, found {}",
                3 + usize::from(has_tags),
                record.len()
            )));
            continue;
        }
        if name.is_empty() {
            report.rejected.push(reject("name is empty".into()));
            continue;
        }
        if name.chars().count() > super::MAX_NAME_CHARS {
            report.rejected.push(reject(format!(
                "name has {} characters; at most {} are kept",
                name.chars().count(),
                super::MAX_NAME_CHARS
            )));
            continue;
        }
        let phone = match super::phone_cell::read_cell(&phone) {
            Ok(read) => {
                if !read.notes.is_empty() {
                    report.adjusted.push(Rejected {
                        line,
                        reason: format!("phone: {}", read.notes.join("; ")),
                    });
                }
                read.number
            }
            Err(e) => {
                report.rejected.push(reject(format!("phone: {e}")));
                continue;
            }
        };
        // A code, or a name as communes write it ("Xã Đoan Bái", "xa doan bai").
        let area = match super::area_match::find_area(areas, &area) {
            super::area_match::AreaMatch::Found(found) => found.code.clone(),
            other => {
                let problem = other.problem(&area).unwrap_or_default();
                report.rejected.push(reject(format!("area: {problem}")));
                continue;
            }
        };
        if !seen.insert(phone.clone()) {
            report.rejected.push(reject(format!(
                "phone: {phone} appears earlier in the file"
            )));
            continue;
        }
        let tags = if has_tags {
            field(3)
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        valid.push(ValidRow {
            name,
            phone,
            area,
            tags,
        });
    }
    // A row refused after its number was read says so once, as refused.
    let refused: HashSet<u64> = report.rejected.iter().map(|r| r.line).collect();
    report.adjusted.retain(|a| !refused.contains(&a.line));
    // Batches in transactions: a crash leaves whole batches, and a re-run completes the rest.
    for batch in valid.chunks(1000) {
        let mut tx = db.pool.begin().await?;
        for row in batch {
            let existing = sqlx::query(
                "SELECT person_id FROM contacts WHERE channel = 'sms' AND address = $1",
            )
            .bind(row.phone.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let person_id: i64 = match existing {
                Some(r) => {
                    let id: i64 = r.try_get(0)?;
                    sqlx::query("UPDATE persons SET name = $1, area_code = $2 WHERE id = $3")
                        .bind(&row.name)
                        .bind(&row.area)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    report.updated += 1;
                    id
                }
                None => {
                    let id: i64 = sqlx::query("INSERT INTO persons (name, area_code, created_at) VALUES ($1, $2, $3) RETURNING id")
                        .bind(&row.name)
                        .bind(&row.area)
                        .bind(to_epoch(now))
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                    sqlx::query("INSERT INTO contacts (person_id, channel, address, created_at) VALUES ($1, 'sms', $2, $3)")
                        .bind(id)
                        .bind(row.phone.as_str())
                        .bind(to_epoch(now))
                        .execute(&mut *tx)
                        .await?;
                    report.added += 1;
                    id
                }
            };
            for tag in &row.tags {
                sqlx::query("INSERT INTO person_tags (person_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(person_id)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(report)
}
