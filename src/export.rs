//! CSV files people open in Excel: UTF-8 with a byte-order mark (or Excel shows Vietnamese as
//! mojibake), and text that came from people kept from being read as a formula.
//!
//! A resident's Telegram name, a group's title or a note typed by staff can begin with `=`,
//! `+`, `-` or `@`; Excel (and LibreOffice) would evaluate such a cell when the file is opened
//! (CSV injection). Those cells get a leading `'`, which spreadsheets show as a text marker;
//! [`unguard`] takes it off again when such a file comes back through `loa import contacts`.
//! Numbers and Loa's own masked phone numbers (`+849…78`) are written as they are.

use std::borrow::Cow;

/// One cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// Text that came from people (names, titles, texts, notes): guarded against formulas.
    Text(Cow<'a, str>),
    /// Numbers, dates, codes and masked numbers Loa wrote itself: written as they are.
    Plain(Cow<'a, str>),
}

impl<'a> Cell<'a> {
    pub fn text(s: impl Into<Cow<'a, str>>) -> Cell<'a> {
        Cell::Text(s.into())
    }

    pub fn plain(s: impl Into<Cow<'a, str>>) -> Cell<'a> {
        Cell::Plain(s.into())
    }

    pub fn number(n: impl std::fmt::Display) -> Cell<'a> {
        Cell::Plain(Cow::Owned(n.to_string()))
    }

    fn as_written(&self) -> Cow<'_, str> {
        match self {
            Cell::Text(s) => guard(s),
            Cell::Plain(s) => Cow::Borrowed(s.as_ref()),
        }
    }
}

/// Characters that make a spreadsheet read a cell as a formula (or shift it into one).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `text`, with a leading `'` when a spreadsheet would otherwise read it as a formula.
pub fn guard(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A cell read back from such a file: one leading `'` taken off.
pub fn unguard(text: &str) -> &str {
    text.strip_prefix('\'').unwrap_or(text)
}

/// A CSV file for Excel: byte-order mark, a header row, then the rows.
pub fn excel_csv<'a>(
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<Cell<'a>>>,
) -> Result<Vec<u8>, csv::Error> {
    write_csv(vec![0xEF, 0xBB, 0xBF], header, rows)
}

/// The same cells, guarded the same way, without the byte-order mark: for CSV a command prints
/// (`loa report reach --format csv`), where a BOM would stick to the first header of every
/// script reading the output, and which is as likely to end up in a spreadsheet.
pub fn guarded_csv<'a>(
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<Cell<'a>>>,
) -> Result<String, csv::Error> {
    let bytes = write_csv(Vec::new(), header, rows)?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 strings is UTF-8"))
}

/// The opening of a CSV file for Excel (byte-order mark and header row), for an export sent in
/// chunks as its rows are read: [`csv_rows`] writes each chunk after it. Together they give the
/// same bytes as [`excel_csv`].
pub fn excel_csv_start(header: &[&str]) -> Result<Vec<u8>, csv::Error> {
    write_csv(vec![0xEF, 0xBB, 0xBF], header, std::iter::empty())
}

/// Rows guarded as [`excel_csv`] guards them, without header or byte-order mark: one chunk of
/// a streamed export.
pub fn csv_rows<'a>(rows: impl IntoIterator<Item = Vec<Cell<'a>>>) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    write_rows(&mut writer, rows)?;
    writer.into_inner().map_err(|e| e.into_error().into())
}

fn write_csv<'a>(
    start: Vec<u8>,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<Cell<'a>>>,
) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(start);
    writer.write_record(header)?;
    write_rows(&mut writer, rows)?;
    writer.into_inner().map_err(|e| e.into_error().into())
}

fn write_rows<'a>(
    writer: &mut csv::Writer<Vec<u8>>,
    rows: impl IntoIterator<Item = Vec<Cell<'a>>>,
) -> Result<(), csv::Error> {
    for row in rows {
        let cells: Vec<Cow<'_, str>> = row.iter().map(Cell::as_written).collect();
        writer.write_record(cells.iter().map(|c| c.as_bytes()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_from_people_are_defused_and_come_back() {
        for evil in [
            "=HYPERLINK(\"x\")",
            "+84 lừa đảo",
            "-1+1",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            let guarded = guard(evil);
            assert!(guarded.starts_with('\''), "{evil:?}");
            assert_eq!(unguard(&guarded), evil);
        }
        assert_eq!(guard("Nguyễn Thị Lan"), "Nguyễn Thị Lan");
        assert_eq!(unguard("Lan"), "Lan");
    }

    #[test]
    fn numbers_and_masked_phones_are_written_as_they_are() {
        let bytes = excel_csv(
            &["Tên", "Số", "Điện thoại"],
            [vec![
                Cell::text("=1+1"),
                Cell::number(-3),
                Cell::plain("+849…78"),
            ]],
        )
        .unwrap();
        assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        assert_eq!(text, "Tên,Số,Điện thoại\n'=1+1,-3,+849…78\n");
    }

    #[test]
    fn a_file_written_in_chunks_is_the_file_written_whole() {
        let row = |n: i64| vec![Cell::text(format!("=A{n}")), Cell::number(n)];
        let mut chunked = excel_csv_start(&["Tên", "Số"]).unwrap();
        chunked.extend(csv_rows((0..3).map(row)).unwrap());
        chunked.extend(csv_rows((3..5).map(row)).unwrap());
        assert_eq!(chunked, excel_csv(&["Tên", "Số"], (0..5).map(row)).unwrap());
    }

    #[test]
    fn printed_csv_is_guarded_the_same_without_a_byte_order_mark() {
        let text = guarded_csv(
            &["name", "reached"],
            [vec![Cell::text("@Xã Bắc Lý"), Cell::number(-1)]],
        )
        .unwrap();
        assert_eq!(text, "name,reached\n'@Xã Bắc Lý,-1\n");
    }
}
