//! The CSV exports for Excel: reach per commune, and the delivery log (audited, addresses
//! masked).

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};

use super::common::{PageAuth, PageResult, split_columns};
use crate::console::ConsoleError;
use crate::console::dashboard::DashboardQuery;
use crate::export::{Cell, excel_csv};
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

/// The delivery log: it names persons and their (masked) contacts, so taking it is audited.
pub(super) async fn export_deliveries(
    State(state): State<WebState>,
    PageAuth(auth): PageAuth,
    Query(q): Query<DashboardQuery>,
) -> PageResult {
    let log = state.console().delivery_log(&auth.actor, &q).await?;
    let (from, to, lines) = (log.from, log.to, log.lines);
    let tz = state.config.campaign.time_zone;
    let at = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let rows = lines.iter().map(|l| {
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
            Cell::text(l.last_error.clone().unwrap_or_default()),
        ]
    });
    csv_response(
        &format!("loa-nhat-ky-gui-{from}-{to}.csv"),
        &[
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
        ],
        rows,
    )
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
