//! The console's import of a commune's list: upload, a dry run shown as a preview (the first
//! rows as they will be stored, every rejection with its reason, counts per area), then the
//! clerk's confirmation, audited. The same import as `loa import contacts`
//! ([`crate::audience::import`]), limited to the account's area: a commune's account adds and
//! updates only people of its own commune, and cannot move or rename anyone else's.
//!
//! Owns the table `pending_imports`: the uploaded bytes between preview and confirmation, one
//! per account, for [`PENDING_FOR`].

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::{Actor, Console, ConsoleError, Permission, audit};
use crate::audience::import::{ImportError, ImportOptions, ImportReport, import_bytes};
use crate::store::{Db, to_epoch};

/// How long an uploaded list waits for its confirmation (and its rejected rows stay
/// downloadable).
pub const PENDING_FOR: Duration = Duration::hours(1);

/// An uploaded list and what importing it does (or did).
#[derive(Debug, Clone)]
pub struct ImportRun {
    /// Names the upload for its confirmation and its rejected rows' file.
    pub token: String,
    pub file_name: String,
    pub report: ImportReport,
}

struct Pending {
    file_name: String,
    sheet: Option<String>,
    bytes: Vec<u8>,
}

impl Console {
    /// Reads and checks an uploaded list without importing it, and keeps it for
    /// [`Console::confirm_import`] (replacing the account's previous upload).
    pub async fn preview_import(
        &self,
        actor: &Actor,
        file_name: &str,
        sheet: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<ImportRun, ConsoleError> {
        actor.require(Permission::ImportContacts)?;
        let file_name = clean_file_name(file_name);
        let sheet = sheet.map(str::trim).filter(|s| !s.is_empty());
        let report = self
            .run(actor, &file_name, sheet, bytes.clone(), true)
            .await?;
        let now = self.clock.now();
        purge_expired(&self.db, now).await.map_err(internal)?;
        let token = super::accounts::random_token();
        let mut tx = self.db.pool.begin().await.map_err(internal)?;
        sqlx::query("DELETE FROM pending_imports WHERE account = $1")
            .bind(&actor.id)
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        sqlx::query(
            "INSERT INTO pending_imports (token, account, file_name, sheet, bytes, rejected, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token)
        .bind(&actor.id)
        .bind(&file_name)
        .bind(sheet)
        .bind(bytes)
        .bind(report.rejected_csv.clone())
        .bind(to_epoch(now))
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(ImportRun {
            token,
            file_name,
            report,
        })
    }

    /// Imports the list this account uploaded as `token`, once; audited.
    pub async fn confirm_import(
        &self,
        actor: &Actor,
        token: &str,
    ) -> Result<ImportRun, ConsoleError> {
        actor.require(Permission::ImportContacts)?;
        let now = self.clock.now();
        // Claimed before the import: a double click imports once.
        let claimed = sqlx::query(
            "UPDATE pending_imports SET confirmed_at = $1
             WHERE token = $2 AND account = $3 AND confirmed_at IS NULL AND created_at >= $4",
        )
        .bind(to_epoch(now))
        .bind(token)
        .bind(&actor.id)
        .bind(to_epoch(now - PENDING_FOR))
        .execute(&self.db.pool)
        .await
        .map_err(internal)?
        .rows_affected();
        if claimed == 0 {
            return Err(ConsoleError::Conflict(
                "Không xác nhận được: danh sách này đã được nhập, đã quá 1 giờ kể từ khi tải lên, hoặc do tài khoản khác tải lên. Nếu danh sách chưa được nhập, xin tải tệp lên lại.".into(),
            ));
        }
        let pending = self.pending(actor, token, now).await?;
        let report = match self
            .run(
                actor,
                &pending.file_name,
                pending.sheet.as_deref(),
                pending.bytes,
                false,
            )
            .await
        {
            Ok(report) => report,
            Err(e) => {
                // Not imported (or only some batches, which a second confirmation completes
                // as updates): the clerk may confirm again.
                sqlx::query("UPDATE pending_imports SET confirmed_at = NULL WHERE token = $1")
                    .bind(token)
                    .execute(&self.db.pool)
                    .await
                    .map_err(internal)?;
                return Err(e);
            }
        };
        // The rows refused as imported (a number another area took in between, say).
        sqlx::query("UPDATE pending_imports SET rejected = $1 WHERE token = $2")
            .bind(report.rejected_csv.clone())
            .bind(token)
            .execute(&self.db.pool)
            .await
            .map_err(internal)?;
        let detail = format!(
            "{}: {} added, {} updated, {} rejected",
            pending.file_name,
            report.added,
            report.updated,
            report.rejected.len()
        );
        audit::record(
            &self.db.pool,
            now,
            &actor.id,
            "contacts.import",
            Some(&pending.file_name),
            Some(&detail),
        )
        .await
        .map_err(internal)?;
        Ok(ImportRun {
            token: token.to_string(),
            file_name: pending.file_name,
            report,
        })
    }

    /// The rejected rows of this account's upload `token`, as a CSV file to fix and import
    /// again; `None` when no row was rejected.
    pub async fn rejected_rows(
        &self,
        actor: &Actor,
        token: &str,
    ) -> Result<Option<(String, Vec<u8>)>, ConsoleError> {
        actor.require(Permission::ImportContacts)?;
        let row = sqlx::query(
            "SELECT file_name, rejected FROM pending_imports
             WHERE token = $1 AND account = $2 AND created_at >= $3",
        )
        .bind(token)
        .bind(&actor.id)
        .bind(to_epoch(self.clock.now() - PENDING_FOR))
        .fetch_optional(&self.db.pool)
        .await
        .map_err(internal)?
        .ok_or(ConsoleError::NotFound)?;
        let file_name: String = row.try_get(0).map_err(internal)?;
        let rejected: Option<Vec<u8>> = row.try_get(1).map_err(internal)?;
        let name = crate::audience::import::rejected_path(std::path::Path::new(&file_name))
            .display()
            .to_string();
        Ok(rejected.map(|csv| (name, csv)))
    }

    async fn pending(
        &self,
        actor: &Actor,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Pending, ConsoleError> {
        let row = sqlx::query(
            "SELECT file_name, sheet, bytes FROM pending_imports
             WHERE token = $1 AND account = $2 AND created_at >= $3",
        )
        .bind(token)
        .bind(&actor.id)
        .bind(to_epoch(now - PENDING_FOR))
        .fetch_optional(&self.db.pool)
        .await
        .map_err(internal)?
        .ok_or(ConsoleError::NotFound)?;
        Ok(Pending {
            file_name: row.try_get(0).map_err(internal)?,
            sheet: row.try_get(1).map_err(internal)?,
            bytes: row.try_get(2).map_err(internal)?,
        })
    }

    async fn run(
        &self,
        actor: &Actor,
        file_name: &str,
        sheet: Option<&str>,
        bytes: Vec<u8>,
        dry_run: bool,
    ) -> Result<ImportReport, ConsoleError> {
        let areas = &self.config.areas;
        let options = ImportOptions {
            dry_run,
            sheet: sheet.map(str::to_string),
            encoding: None,
            // A commune's account: its own list needs no commune column.
            default_area: actor.area.clone().filter(|a| areas.is_leaf(a)),
            scope: actor.area.clone().map(|a| vec![a]),
        };
        import_bytes(
            &self.db,
            &self.config.areas,
            file_name,
            bytes,
            &options,
            self.clock.now(),
            |_, _| {},
        )
        .await
        .map_err(|e| match e {
            ImportError::Database(e) => internal(e),
            ImportError::Crashed(e) => ConsoleError::Internal(anyhow::anyhow!(e)),
            other => ConsoleError::Invalid {
                field: "file".into(),
                message: vietnamese(&other),
            },
        })
    }
}

/// Deletes uploads past [`PENDING_FOR`]: residents' lists are not kept longer than their
/// preview needs. Called by each upload and by the dispatcher's hourly upkeep.
pub async fn purge_expired(db: &Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM pending_imports WHERE created_at < $1")
            .bind(to_epoch(now - PENDING_FOR))
            .execute(&db.pool)
            .await?
            .rows_affected(),
    )
}

/// Why a file cannot be imported, as the clerk is told it (the technical detail after it).
fn vietnamese(e: &ImportError) -> String {
    use crate::audience::import::SheetError;
    tracing::info!("an uploaded list was refused: {e}");
    match e {
        ImportError::Header { .. } => format!(
            "Không tìm thấy dòng tiêu đề trong {} dòng đầu: danh sách cần một cột \"Họ và tên\" và một cột \"Số điện thoại\".",
            crate::audience::import::columns::HEADER_SEARCH_ROWS
        ),
        ImportError::NoArea { .. } => "Danh sách không có cột \"Xã\" (hoặc \"Thị trấn\", \"Địa bàn\"): xin thêm cột này và ghi xã, thị trấn của từng người.".into(),
        ImportError::Sheet { source, .. } => match source {
            SheetError::NoSuchSheet { wanted, sheets } => format!(
                "Không có trang tính tên \"{wanted}\". Tệp có các trang: {}.",
                sheets.join(", ")
            ),
            SheetError::NoSheet => "Tệp không có trang tính nào.".into(),
            SheetError::TooLarge => "Tệp quá lớn khi giải nén. Xin chia nhỏ danh sách hoặc lưu thành CSV.".into(),
            SheetError::SheetOfCsv => "Tệp CSV chỉ có một trang: xin để trống ô \"Trang tính\".".into(),
            SheetError::Encoding { .. } => "Tệp có ký tự bị lỗi mã hóa. Xin mở tệp và lưu lại dạng \"CSV UTF-8\" hoặc Excel.".into(),
            SheetError::Csv { line, .. } => format!("Dòng {line} của tệp CSV bị lỗi định dạng."),
            SheetError::Workbook(_) => "Không đọc được tệp này. Xin lưu lại thành Excel (.xlsx) hoặc CSV rồi tải lên.".into(),
        },
        _ => "Không đọc được tệp. Xin lưu lại thành Excel (.xlsx) hoặc CSV rồi tải lên.".into(),
    }
}

/// The name an upload is shown and audited by: its last path part, printable, at most 100
/// characters (a browser sends what the client chose).
fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(100).collect();
    if clean.trim().is_empty() {
        "danh-sach".into()
    } else {
        clean
    }
}

fn internal(e: sqlx::Error) -> ConsoleError {
    ConsoleError::Internal(e.into())
}
