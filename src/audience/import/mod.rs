//! `loa import contacts FILE` and the console's import: residents with phone numbers from the
//! list a commune sends — an Excel or LibreOffice workbook or a CSV file in whatever encoding
//! it was saved ([`sheet`]), headers in Vietnamese found below any title rows ([`columns`]),
//! communes by name ([`super::area_match`]), numbers as they were typed years ago
//! ([`super::phone_cell`]).
//!
//! # Layout
//! * [`sheet`] — bytes into rows of NFC text, with their line or row numbers.
//! * [`columns`] — the header row, which column holds what; gender and birth year cells.
//! * this file — each row checked into a [`ValidRow`] or a [`Rejected`] with its reason, and
//!   the [`ImportReport`]: counts per area, rows read differently, the rejected rows as a CSV
//!   file to fix and import again.
//! * `write` — the rows into the database, in batches.
//!
//! One leading `'`, the mark Loa's exports put on text that looks like a formula, is taken off
//! every cell. A second import of the same file changes nothing: a number already known
//! updates its person. A dry run reads and checks everything, and looks up which numbers are
//! known, without writing.

pub mod columns;
pub mod sheet;
mod write;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};

use super::Said;
use super::area_match::{AreaMatch, find_area};
use super::phone::MobileNumber;
use crate::config::AreaTree;
use crate::export::{Cell, excel_csv, guard, unguard};
use crate::store::Db;
use columns::{Columns, Field};
pub use sheet::{Encoding, Format, SheetError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {source}; nothing was imported")]
    Sheet { file: String, source: SheetError },
    #[error(
        "{file}: no header row in the first {} rows: a column for the name (Họ và tên, or name) and one for the phone number (Số điện thoại, SĐT, or phone) are needed; nothing was imported",
        columns::HEADER_SEARCH_ROWS
    )]
    Header { file: String },
    #[error(
        "{file}:{line}: no column for the area (Xã, Phường, Địa bàn, or area): add one, or name the area of every row with --area; nothing was imported"
    )]
    NoArea { file: String, line: u64 },
    #[error("--area: {0}")]
    DefaultArea(String),
    #[error("{file}: cannot write the rejected rows to {path}: {source}")]
    WriteRejected {
        file: String,
        path: String,
        source: std::io::Error,
    },
    #[error("reading the file stopped: {0}")]
    Crashed(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// How to read the file and what to do with it.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Read and check, report what would happen, write nothing to the database.
    pub dry_run: bool,
    /// A workbook's sheet; the first when `None`.
    pub sheet: Option<String>,
    /// A CSV file's encoding; detected when `None`.
    pub encoding: Option<Encoding>,
    /// The area of rows that name none (a commune's own list often has no commune column):
    /// a code or a name.
    pub default_area: Option<String>,
    /// The areas the importing account may write into (each with its subtree); `None`: all.
    pub scope: Option<Vec<String>>,
}

/// One row that did not go in, or went in read differently from how it was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    /// In English, for the terminal.
    pub reason: String,
    /// In Vietnamese, for the console and the rejected rows' file.
    pub vi: String,
}

impl Rejected {
    fn new(line: u64, said: &Said) -> Rejected {
        Rejected {
            line,
            reason: said.en.clone(),
            vi: said.vi.clone(),
        }
    }
}

/// Per area: what the import did there.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AreaCounts {
    pub added: usize,
    pub updated: usize,
    /// Rows imported with an old 11-digit prefix converted.
    pub converted: usize,
    pub rejected: usize,
}

/// The area key of rows whose area could not be told.
pub const NO_AREA: &str = "";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// How the file was read ("CSV, Windows-1258, ';'-separated", "sheet \"Xã Đoan Bái\"").
    pub format: Option<Format>,
    /// Columns left alone, by their header.
    pub unused_columns: Vec<String>,
    pub dry_run: bool,
    pub added: usize,
    pub updated: usize,
    pub rejected: Vec<Rejected>,
    /// Rows imported after their number (or gender, birth year) was read differently from how
    /// it was typed: an old 11-digit prefix converted, a dropped leading zero put back, a
    /// second number left out — each with what was done, for the operator to see.
    pub adjusted: Vec<Rejected>,
    /// Counts per area code ([`NO_AREA`] for rejected rows whose area is unknown).
    pub by_area: BTreeMap<String, AreaCounts>,
    /// The first rows that go in, as they will be stored, for a preview.
    pub preview: Vec<PreviewRow>,
    /// The rejected rows as a CSV file (the header row, then each row as it was with its
    /// reason in a last column), ready to fix and import again; `None` when none was rejected.
    pub rejected_csv: Option<Vec<u8>>,
}

/// A row as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRow {
    pub line: u64,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub area: String,
    pub tags: Vec<String>,
    pub birth_year: Option<i32>,
}

/// Rows in [`ImportReport::preview`].
pub const PREVIEW_ROWS: usize = 10;

impl ImportReport {
    /// Rows that would go in or went in.
    pub fn imported(&self) -> usize {
        self.added + self.updated
    }
}

/// A row that passed validation.
#[derive(Debug, Clone)]
pub(crate) struct ValidRow {
    /// Its index among the table's rows.
    index: usize,
    name: String,
    phone: MobileNumber,
    area: String,
    tags: Vec<String>,
    /// The gender tag the row gives: an update takes the other one off.
    gender: Option<&'static str>,
    birth_year: Option<i32>,
    converted: bool,
}

/// The file's rows read and checked: what would go in, what would not.
struct Checked {
    table: sheet::Table,
    header_index: usize,
    valid: Vec<ValidRow>,
    /// Rows refused: index among the table's rows, area key, reason.
    refused: Vec<(usize, String, Said)>,
    report: ImportReport,
}

/// Where the rejected rows of `file` go: beside it, `danh-sach.xlsx` → `danh-sach.rejected.csv`.
pub fn rejected_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "import".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}.rejected.csv"))
}

/// Imports the file at `path`; `progress(done, total)` is called as rows are written.
pub async fn import_file(
    db: &Db,
    areas: &AreaTree,
    path: &Path,
    options: &ImportOptions,
    now: DateTime<Utc>,
    progress: impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        file: file.clone(),
        source,
    })?;
    import_bytes(db, areas, &file, bytes, options, now, progress).await
}

/// Imports a file's bytes (`file` names it in messages).
pub async fn import_bytes(
    db: &Db,
    areas: &AreaTree,
    file: &str,
    bytes: Vec<u8>,
    options: &ImportOptions,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    // Reading and checking is work for a processor, seconds for a district's list: off the
    // threads that answer requests, and at most two at a time.
    let permit = CHECKING.acquire().await.expect("never closed");
    let checked = {
        let (areas, file, options) = (areas.clone(), file.to_string(), options.clone());
        tokio::task::spawn_blocking(move || check(&areas, &file, &bytes, &options, now))
            .await
            .map_err(|e| ImportError::Crashed(e.to_string()))?
    };
    drop(permit);
    let Checked {
        table,
        header_index,
        valid,
        mut refused,
        mut report,
    } = checked?;
    let scope = scope_codes(areas, options);
    // The consent of the persons it names says which file: its name, not where it lay.
    let file_name = Path::new(file)
        .file_name()
        .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned());
    let total = valid.len() as u64;
    let mut done = 0;
    for batch in valid.chunks(write::BATCH) {
        let outcomes = if options.dry_run {
            let numbers: Vec<&str> = batch.iter().map(|r| r.phone.as_str()).collect();
            let known = write::known(&db.pool, &numbers).await?;
            write::outcomes(batch, &known, scope.as_ref())
        } else {
            write::write_batch(db, batch, scope.as_ref(), &file_name, now).await?
        };
        for (row, outcome) in batch.iter().zip(outcomes) {
            let counts = report.by_area.entry(row.area.clone()).or_default();
            match outcome {
                write::Outcome::Add => {
                    counts.added += 1;
                    report.added += 1;
                }
                write::Outcome::Update(_) => {
                    counts.updated += 1;
                    report.updated += 1;
                }
                write::Outcome::Outside => {
                    counts.rejected += 1;
                    // Which area, and whether this exact number: not this account's to learn.
                    refused.push((
                        row.index,
                        row.area.clone(),
                        Said::new(
                            "phone: this number is registered in another area; only that area's staff or an admin can change its person",
                            "Số điện thoại: số này đã đăng ký ở địa bàn khác; chỉ cán bộ địa bàn đó hoặc quản trị viên được sửa",
                        ),
                    ));
                    continue;
                }
            }
            counts.converted += usize::from(row.converted);
        }
        done += batch.len() as u64;
        progress(done, total);
    }
    refused.sort_by_key(|(index, _, _)| *index);
    let refused_lines: HashSet<u64> = refused
        .iter()
        .map(|(i, _, _)| table.rows[*i].line)
        .collect();
    // A row refused after its number was read says so once, as refused.
    report.adjusted.retain(|a| !refused_lines.contains(&a.line));
    report.rejected = refused
        .iter()
        .map(|(i, _, reason)| Rejected::new(table.rows[*i].line, reason))
        .collect();
    report.rejected_csv = rejected_csv(&table, header_index, &refused);
    Ok(report)
}

/// Files being read and checked at once, in all of this process.
static CHECKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Reads every row and checks it; nothing touches the database.
fn check(
    areas: &AreaTree,
    file: &str,
    bytes: &[u8],
    options: &ImportOptions,
    now: DateTime<Utc>,
) -> Result<Checked, ImportError> {
    let table =
        sheet::read(bytes, options.sheet.as_deref(), options.encoding).map_err(|source| {
            ImportError::Sheet {
                file: file.to_string(),
                source,
            }
        })?;
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .take(columns::HEADER_SEARCH_ROWS)
        .map(|r| r.cells.iter().map(|c| unguard(c).to_string()).collect())
        .collect();
    let Some(columns) = columns::find(&cells) else {
        return Err(ImportError::Header {
            file: file.to_string(),
        });
    };
    let header = &table.rows[columns.header_index];
    let default_area = match &options.default_area {
        None => None,
        Some(wanted) => match find_area(areas, wanted) {
            AreaMatch::Found(area) => Some(area.code.clone()),
            other => {
                return Err(ImportError::DefaultArea(
                    other.problem(wanted).unwrap_or_default(),
                ));
            }
        },
    };
    if columns.of(Field::Area).is_none() && default_area.is_none() {
        return Err(ImportError::NoArea {
            file: file.to_string(),
            line: header.line,
        });
    }
    let scope = scope_codes(areas, options);
    let mut checker = RowChecker {
        areas,
        columns: &columns,
        default_area,
        scope,
        this_year: now.year(),
        area_cache: HashMap::new(),
        seen: HashSet::new(),
    };
    let mut report = ImportReport {
        format: Some(table.format.clone()),
        unused_columns: columns.unused.clone(),
        dry_run: options.dry_run,
        ..ImportReport::default()
    };
    let mut valid = Vec::new();
    let mut refused = Vec::new();
    for (index, row) in table.rows.iter().enumerate().skip(columns.header_index + 1) {
        let cells: Vec<String> = row
            .cells
            .iter()
            .map(|c| unguard(c).trim().to_string())
            .collect();
        match checker.check(&cells) {
            Ok((mut valid_row, notes)) => {
                if !notes.is_empty() {
                    report.adjusted.push(Rejected {
                        line: row.line,
                        reason: notes
                            .iter()
                            .map(|n| n.en.as_str())
                            .collect::<Vec<_>>()
                            .join("; "),
                        vi: notes
                            .iter()
                            .map(|n| n.vi.as_str())
                            .collect::<Vec<_>>()
                            .join("; "),
                    });
                }
                valid_row.index = index;
                if report.preview.len() < PREVIEW_ROWS {
                    report.preview.push(PreviewRow {
                        line: row.line,
                        name: valid_row.name.clone(),
                        phone: valid_row.phone.as_str().to_string(),
                        area: valid_row.area.clone(),
                        tags: valid_row.tags.clone(),
                        birth_year: valid_row.birth_year,
                    });
                }
                valid.push(valid_row);
            }
            Err((area, reason)) => {
                report.by_area.entry(area.clone()).or_default().rejected += 1;
                refused.push((index, area, reason));
            }
        }
    }
    Ok(Checked {
        header_index: columns.header_index,
        table,
        valid,
        refused,
        report,
    })
}

/// The area codes `options.scope` allows, each area's subtree included.
fn scope_codes(areas: &AreaTree, options: &ImportOptions) -> Option<HashSet<String>> {
    options.scope.as_ref().map(|codes| {
        codes
            .iter()
            .flat_map(|c| areas.subtree(c).into_iter().map(|a| a.code.clone()))
            .collect()
    })
}

/// The header row, then each refused row as it was with its reason in a last column.
fn rejected_csv(
    table: &sheet::Table,
    header_index: usize,
    refused: &[(usize, String, Said)],
) -> Option<Vec<u8>> {
    if refused.is_empty() {
        return None;
    }
    let header = &table.rows[header_index].cells;
    // The header came from the file too: guarded like every cell.
    let mut head: Vec<String> = header.iter().map(|h| guard(h).into_owned()).collect();
    head.push(REASON_HEADER.to_string());
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let rows = refused.iter().map(|(index, _, reason)| {
        let mut out: Vec<Cell<'_>> = table.rows[*index]
            .cells
            .iter()
            .map(|c| Cell::text(c.as_str()))
            .collect();
        out.resize(header.len(), Cell::text(""));
        out.push(Cell::text(reason.vi.as_str()));
        out
    });
    // CSV written into memory cannot fail.
    excel_csv(&head, rows).ok()
}

/// The longest cell read: a name, a number, a commune fit many times over; a longer one is a
/// pasted document, and its row is refused rather than matched against every area name.
pub const MAX_CELL_CHARS: usize = 1000;

/// A name as it is stored: line breaks, tabs and other control characters as spaces, runs of
/// spaces as one (a quoted CSV cell can hold "Lan\nThị").
fn clean_name(name: &str) -> String {
    name.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last column of the rejected rows' file: why each row was refused. An import of the
/// fixed file leaves it alone, as any column it does not know.
pub const REASON_HEADER: &str = "Lý do không nhập được";

/// Checks rows one by one, remembering the numbers seen and the areas already matched.
struct RowChecker<'a> {
    areas: &'a AreaTree,
    columns: &'a Columns,
    default_area: Option<String>,
    scope: Option<HashSet<String>>,
    this_year: i32,
    area_cache: HashMap<String, Result<String, Said>>,
    seen: HashSet<MobileNumber>,
}

impl RowChecker<'_> {
    /// The row, and what was read differently; or its area code (if known) and why not.
    fn check(&mut self, cells: &[String]) -> Result<(ValidRow, Vec<Said>), (String, Said)> {
        if let Some(long) = cells.iter().find(|c| c.chars().count() > MAX_CELL_CHARS) {
            let n = long.chars().count();
            return Err((
                NO_AREA.to_string(),
                Said::new(
                    format!("a cell holds {n} characters; at most {MAX_CELL_CHARS} are read"),
                    format!("có ô dài {n} ký tự; mỗi ô tối đa {MAX_CELL_CHARS} ký tự"),
                ),
            ));
        }
        let get = |field| self.columns.get(cells, field);
        let name = clean_name(&self.columns.name(cells));
        // The area first: every rejection is counted under its area when it has one.
        let area_cell = get(Field::Area);
        let area = if area_cell.is_empty() {
            self.default_area
                .clone()
                .ok_or_else(|| Said::new("area: empty", "Chưa ghi xã, thị trấn"))
        } else {
            self.area(area_cell)
        };
        let area_key = area.clone().unwrap_or_else(|_| NO_AREA.to_string());
        let reject = |reason: Said| (area_key.clone(), reason);
        let area = area.map_err(&reject)?;
        if let Some(scope) = &self.scope
            && !scope.contains(&area)
        {
            let name = self
                .areas
                .get(&area)
                .map_or(area.as_str(), |a| a.name.as_str());
            return Err(reject(Said::new(
                format!("area: {name} is outside the areas this account manages"),
                format!("{name} không thuộc địa bàn tài khoản này quản lý"),
            )));
        }
        if name.is_empty() {
            return Err(reject(Said::new("name is empty", "Chưa ghi họ và tên")));
        }
        if name.chars().count() > super::MAX_NAME_CHARS {
            let (n, max) = (name.chars().count(), super::MAX_NAME_CHARS);
            return Err(reject(Said::new(
                format!("name has {n} characters; at most {max} are kept"),
                format!("họ và tên dài {n} ký tự; tối đa {max} ký tự"),
            )));
        }
        let mut notes = Vec::new();
        let read = super::phone_cell::read_cell(get(Field::Phone))
            .map_err(|e| reject(e.said().prefixed("phone: ", "Số điện thoại ")))?;
        if !read.notes.is_empty() {
            let join =
                |f: fn(&Said) -> &str| read.notes.iter().map(f).collect::<Vec<_>>().join("; ");
            notes.push(
                Said::new(join(|n| &n.en), join(|n| &n.vi)).prefixed("phone: ", "Số điện thoại: "),
            );
        }
        let converted = read.converted();
        let phone = read.number;
        if !self.seen.insert(phone.clone()) {
            return Err(reject(Said::new(
                format!("phone: {phone} appears earlier in the file"),
                format!("Số điện thoại {phone} đã có ở dòng trên trong tệp"),
            )));
        }
        let birth_year = match columns::birth_year(get(Field::BirthYear), self.this_year) {
            Ok(year) => year,
            Err(note) => {
                notes.push(note);
                None
            }
        };
        let (mut tags, tag_notes) = columns::tags(get(Field::Tags), birth_year.is_some());
        notes.extend(tag_notes);
        let gender = match columns::gender_tag(get(Field::Gender)) {
            Ok(gender) => gender,
            Err(note) => {
                notes.push(note);
                None
            }
        };
        if let Some(g) = gender
            && !tags.iter().any(|t| t == g)
        {
            tags.push(g.to_string());
        }
        Ok((
            ValidRow {
                index: 0,
                name,
                phone,
                area,
                tags,
                gender,
                birth_year,
                converted,
            },
            notes,
        ))
    }

    /// The area code a cell names, or why it names none (memoised: a list repeats its
    /// commune on every row).
    fn area(&mut self, cell: &str) -> Result<String, Said> {
        if let Some(known) = self.area_cache.get(cell) {
            return known.clone();
        }
        let found = match find_area(self.areas, cell) {
            AreaMatch::Found(area) => Ok(area.code.clone()),
            other => Err(other
                .said(cell)
                .unwrap_or_else(|| Said::new("", ""))
                .prefixed("area: ", "Xã, thị trấn: ")),
        };
        self.area_cache.insert(cell.to_string(), found.clone());
        found
    }
}
