//! The CSV exports for Excel: reach per commune, and the delivery log (audited, addresses
//! masked).

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};

use super::common::{PageAuth, PageResult, split_columns};
use crate::console::dashboard::DashboardQuery;
use crate::console::{ConsoleError, DeliveryLogLine};
use crate::export::{Cell, csv_rows, excel_csv, excel_csv_start};
use crate::web::state::WebState;
use crate::web::views::status_text;

/// A CSV file for Excel as the answer (see [`crate::export`]).
fn csv_response<'a>(
    filename: &str,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<Cell<'a>>>,
) -> PageResult {
    let bytes = excel_csv(header, rows).map_err(|e| ConsoleError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

pub(super) async fn export_reach(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    // A commune per row: small, written whole; the slot only keeps one account from running
    // the dashboard's sums over and over in parallel.
    let _slot = state.exports.take(&auth.actor.id)?;
    let d = state.console().dashboard(&auth.actor, &q).await?;
    let columns = split_columns(&state);
    let rows = std::iter::once(&d.total).chain(d.communes.iter()).map(|l| {
        let mut row = vec![
            Cell::plain(l.code.as_str()),
            Cell::text(l.name.as_str()),
            Cell::number(l.population),
            Cell::number(l.reached),
        ];
        row.extend(
            columns
                .iter()
                .map(|(key, _)| Cell::number(l.split.get(key))),
        );
        row.extend([
            Cell::plain(l.percent.map(|p| format!("{p:.2}")).unwrap_or_default()),
            Cell::plain(status_text(l.status)),
            Cell::number(l.engaged),
            Cell::number(l.offline_estimate),
        ]);
        row
    });
    let split_headers: Vec<String> = columns.iter().map(|(_, label)| label.clone()).collect();
    let mut header: Vec<&str> = vec!["Mã địa bàn", "Địa bàn", "Dân số", "Đã tiếp cận"];
    header.extend(split_headers.iter().map(String::as_str));
    header.extend([
        "Tỷ lệ (%)",
        "Đánh giá",
        "Tương tác",
        "Hoạt động trực tiếp (ước tính, không cộng)",
    ]);
    csv_response(
        &format!("loa-tiep-can-{}-{}.csv", d.from, d.to),
        &header,
        rows,
    )
}

/// A phone number or chat id with most of it hidden: enough to recognise, not to misuse. A
/// chat id keeps only its last digits (and never its sign, which a spreadsheet would read as
/// the start of a formula).
fn mask(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    let tail = |n: usize| -> String { chars[chars.len().saturating_sub(n)..].iter().collect() };
    if address.starts_with('+') && chars.len() > 7 {
        let head: String = chars[..5].iter().collect();
        format!("{head}…{}", tail(3))
    } else {
        format!("…{}", tail(3))
    }
}

/// Lines written into one chunk of the download: some 100 KB.
const LINES_PER_CHUNK: usize = 512;

/// The delivery log: it names persons and their (masked) contacts, so taking it is audited.
/// It is sent as it is read, chunk by chunk, so a year of a district's deliveries takes no more
/// memory than a month's.
pub(super) async fn export_deliveries(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    let slot = state.exports.take(&auth.actor.id)?;
    let log = state.console().delivery_log(&auth.actor, &q).await?;
    let start = excel_csv_start(&[
        "Mã",
        "Thời điểm gửi theo lịch",
        "Lịch / nội dung",
        "Sự kiện",
        "Người nhận",
        "Địa bàn",
        "Kênh",
        "Địa chỉ",
        "Trạng thái",
        "Số lần gửi",
        "Đã gửi lúc",
        "Đã đến lúc",
        "Lỗi",
    ])
    .map_err(|e| ConsoleError::Internal(e.into()))?;
    let filename = format!("loa-nhat-ky-gui-{}-{}.csv", log.from, log.to);
    // The slot travels with the body: it is let go when the body ends, fails, or is dropped
    // because the client went away.
    let chunks = futures::stream::unfold(
        (log.lines, Some(start), Some(slot)),
        move |(mut lines, start, slot)| {
            let state = state.clone();
            async move {
                slot.as_ref()?;
                if let Some(start) = start {
                    return Some((Ok(Bytes::from(start)), (lines, None, slot)));
                }
                let mut batch = Vec::with_capacity(LINES_PER_CHUNK);
                if lines.recv_many(&mut batch, LINES_PER_CHUNK).await == 0 {
                    return None;
                }
                let written = batch
                    .into_iter()
                    .collect::<Result<Vec<DeliveryLogLine>, ConsoleError>>()
                    .map_err(|e| e.to_string())
                    .and_then(|batch| {
                        csv_rows(batch.iter().map(|l| log_row(&state, l)))
                            .map_err(|e| e.to_string())
                    });
                match written {
                    Ok(bytes) => Some((Ok(Bytes::from(bytes)), (lines, None, slot))),
                    Err(e) => {
                        // The answer has begun: all that is left is to cut it short, which a
                        // browser shows as a failed download rather than a whole-looking file.
                        tracing::error!("delivery log export cut short: {e}");
                        Some((Err(std::io::Error::other(e)), (lines, None, None)))
                    }
                }
            }
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// One line of the log as the file shows it: local times, the area's name, the address masked.
fn log_row<'a>(state: &WebState, l: &'a DeliveryLogLine) -> Vec<Cell<'a>> {
    let tz = state.config.campaign.time_zone;
    let at = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    vec![
        Cell::number(l.id),
        Cell::plain(at(Some(l.fire_at))),
        Cell::text(l.schedule_id.as_str()),
        Cell::text(l.observance.as_str()),
        // Residents' own Telegram names and groups' titles: anything can be in them.
        Cell::text(l.person_name.as_str()),
        Cell::text(
            state
                .config
                .areas
                .get(&l.area_code)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| l.area_code.clone()),
        ),
        Cell::plain(l.channel.as_str()),
        Cell::plain(mask(&l.address)),
        Cell::plain(l.status.as_str()),
        Cell::number(l.attempts),
        Cell::plain(at(l.sent_at)),
        Cell::plain(at(l.reached_at)),
        Cell::text(l.last_error.as_deref().unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_addresses_are_masked() {
        assert_eq!(mask("+84912345678"), "+8491…678");
        assert_eq!(mask("-1001234567890"), "…890");
        assert_eq!(mask("123456789"), "…789");
    }
}
