//! Importing a commune's list from the console: upload (`/import`), a preview of what would
//! happen, confirmation (`/import/confirm`), and the rejected rows as a CSV file to fix
//! (`/import/{token}/rejected.csv`). Uploads take the exports' limits (16 MiB, 10 minutes).

use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{PageAuth, PageResult};
use crate::audience::import::{NO_AREA, columns::HEADER_SEARCH_ROWS};
use crate::console::imports::ImportRun;
use crate::console::{ConsoleError, Permission};
use crate::web::auth::Auth;
use crate::web::error::PageError;
use crate::web::state::WebState;
use crate::web::views::{number_vi, page};

/// Refused rows listed on the page; the rest are in the CSV file.
const SHOWN_REJECTIONS: usize = 200;

fn import_page(
    state: &WebState,
    auth: &Auth,
    status: StatusCode,
    run: Option<(&ImportRun, bool)>,
    error: Option<String>,
) -> PageResult {
    let scope = auth
        .actor
        .area
        .as_ref()
        .and_then(|code| state.config.areas.get(code))
        .map(|a| a.name.clone());
    Ok(page(
        state,
        Some(auth),
        status,
        "Nhập danh sách người nhận tin",
        "import",
        json!({
            "csrf": auth.csrf(),
            "error": error,
            "scope": scope,
            "commune_account": auth.actor.area.as_deref().is_some_and(|a| state.config.areas.is_leaf(a)),
            "header_rows": HEADER_SEARCH_ROWS,
            "run": run.map(|(run, done)| run_view(state, run, done)),
        }),
    ))
}

fn run_view(state: &WebState, run: &ImportRun, done: bool) -> Value {
    let r = &run.report;
    let areas = &state.config.areas;
    let area_name = |code: &str| {
        if code == NO_AREA {
            "(không nhận ra xã)".to_string()
        } else {
            areas.get(code).map_or(code.to_string(), |a| a.name.clone())
        }
    };
    let by_area: Vec<Value> = areas
        .iter()
        .map(|a| a.code.as_str())
        .chain([NO_AREA])
        .filter_map(|code| {
            r.by_area.get(code).map(|c| {
                json!({
                    "name": area_name(code),
                    "added": number_vi(c.added as u64),
                    "updated": number_vi(c.updated as u64),
                    "converted": number_vi(c.converted as u64),
                    "rejected": number_vi(c.rejected as u64),
                })
            })
        })
        .collect();
    json!({
        "done": done,
        "token": run.token,
        "file_name": run.file_name,
        "format": r.format.as_ref().map(|f| f.vietnamese()),
        "unused": r.unused_columns.join(", "),
        "added": number_vi(r.added as u64),
        "updated": number_vi(r.updated as u64),
        "rejected_count": number_vi(r.rejected.len() as u64),
        "importable": r.imported() > 0,
        "imported": number_vi(r.imported() as u64),
        "by_area": by_area,
        "preview": r.preview.iter().map(|p| json!({
            "line": p.line,
            "name": p.name,
            // Masked as numbers are wherever people read them; the clerk's file has them.
            "phone": crate::channels::mask_address(&p.phone),
            "area": area_name(&p.area),
            "tags": p.tags.join(", "),
            "birth_year": p.birth_year,
        })).collect::<Vec<_>>(),
        "adjusted": r.adjusted.iter().map(|a| json!({"line": a.line, "reason": a.vi})).collect::<Vec<_>>(),
        "rejected": r.rejected.iter().take(SHOWN_REJECTIONS).map(|a| json!({"line": a.line, "reason": a.vi})).collect::<Vec<_>>(),
        "more_rejected": r.rejected.len().checked_sub(SHOWN_REJECTIONS).filter(|n| *n > 0).map(|n| number_vi(n as u64)),
    })
}

pub(super) async fn import_form(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
) -> PageResult {
    auth.actor.require(Permission::ImportContacts)?;
    import_page(&state, &auth, StatusCode::OK, None, None)
}

/// The upload: read and checked, nothing imported yet.
pub(super) async fn upload(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    mut form: Multipart,
) -> PageResult {
    auth.actor.require(Permission::ImportContacts)?;
    let (mut csrf, mut sheet, mut file) = (None, None, None);
    while let Some(field) = form.next_field().await.map_err(bad_upload)? {
        match field.name() {
            Some("_csrf") => csrf = Some(field.text().await.map_err(bad_upload)?),
            Some("sheet") => sheet = Some(field.text().await.map_err(bad_upload)?),
            Some("file") => {
                let name = field.file_name().unwrap_or("danh-sach").to_string();
                file = Some((name, field.bytes().await.map_err(bad_upload)?.to_vec()));
            }
            _ => {}
        }
    }
    auth.check_csrf(csrf.as_deref())?;
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return import_page(
            &state,
            &auth,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Xin chọn tệp danh sách (Excel, LibreOffice hoặc CSV).".into()),
        );
    };
    match state
        .console()
        .preview_import(&auth.actor, &name, sheet.as_deref(), bytes)
        .await
    {
        Ok(run) => import_page(&state, &auth, StatusCode::OK, Some((&run, false)), None),
        Err(ConsoleError::Invalid { message, .. }) => import_page(
            &state,
            &auth,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(message),
        ),
        Err(e) => Err(e.into()),
    }
}

fn bad_upload(e: axum::extract::multipart::MultipartError) -> PageError {
    PageError(ConsoleError::Invalid {
        field: "file".into(),
        message: {
            tracing::info!("an upload could not be read: {e}");
            "Tệp tải lên không trọn vẹn hoặc quá lớn (tối đa 16 MB). Xin thử tải lên lại.".into()
        },
    })
}

#[derive(Deserialize)]
pub(super) struct ConfirmForm {
    #[serde(default)]
    _csrf: String,
    token: String,
}

pub(super) async fn confirm(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    axum::Form(form): axum::Form<ConfirmForm>,
) -> PageResult {
    auth.check_csrf(Some(&form._csrf))?;
    match state
        .console()
        .confirm_import(&auth.actor, &form.token)
        .await
    {
        Ok(run) => import_page(&state, &auth, StatusCode::OK, Some((&run, true)), None),
        Err(ConsoleError::Conflict(message)) => {
            import_page(&state, &auth, StatusCode::CONFLICT, None, Some(message))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn rejected_csv(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Path(token): Path<String>,
) -> PageResult {
    let (name, bytes) = state
        .console()
        .rejected_rows(&auth.actor, &token)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", ascii_file_name(&name)),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A file name safe in a header: the uploaded name without diacritics, only letters, digits,
/// `.`, `-` and `_`.
fn ascii_file_name(name: &str) -> String {
    crate::text::unaccent(name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect()
}
