//! A contact list as a commune sends it, read into rows of text: an Excel workbook (`.xlsx`,
//! `.xls`), a LibreOffice one (`.ods`), or a CSV file saved by whatever was at hand — UTF-8
//! with or without a byte-order mark, Windows-1258 (Vietnamese Windows' own code page, which
//! Excel still uses for "CSV"), or the tab-separated UTF-16 that Excel calls "Unicode text".
//!
//! The format is read from the bytes, not the file's name (a clerk renames files); a CSV's
//! encoding is detected unless named, and its separator (`,`, `;` as Vietnamese regional
//! settings write, or a tab) is the one its first lines use most. Every text comes out NFC:
//! Windows-1258 spells most Vietnamese letters as a base letter and a combining mark, and a
//! name must compare equal however it was typed.

use std::io::Cursor;

use calamine::{Data, Reader};
use unicode_normalization::UnicodeNormalization;

/// The encoding of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// UTF-16, little-endian unless the byte-order mark says otherwise.
    Utf16,
    Windows1258,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf16 => "UTF-16",
            Encoding::Windows1258 => "Windows-1258",
        }
    }
}

/// What the file turned out to be, for the summary ("read as …").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Csv { encoding: Encoding, separator: char },
    Workbook { sheet: String },
}

impl Format {
    /// As the console shows it to a clerk.
    pub fn vietnamese(&self) -> String {
        match self {
            Format::Csv {
                encoding,
                separator,
            } => {
                let separator = match separator {
                    '\t' => "dấu tab".to_string(),
                    ',' => "dấu phẩy".to_string(),
                    ';' => "dấu chấm phẩy".to_string(),
                    c => format!("dấu \"{c}\""),
                };
                format!("CSV, mã {}, phân cách bằng {separator}", encoding.as_str())
            }
            Format::Workbook { sheet } => format!("trang tính \"{sheet}\""),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Csv {
                encoding,
                separator,
            } => {
                let separator = match separator {
                    '\t' => "tab".to_string(),
                    c => format!("'{c}'"),
                };
                write!(f, "CSV, {}, {separator}-separated", encoding.as_str())
            }
            Format::Workbook { sheet } => write!(f, "sheet {sheet:?}"),
        }
    }
}

/// One row of the file: its line (CSV) or row number (a workbook, as the spreadsheet shows
/// it), and its cells as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: u64,
    pub cells: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub format: Format,
    pub rows: Vec<Row>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SheetError {
    #[error("no sheet named {wanted:?}; the workbook has {}", list(.sheets))]
    NoSuchSheet { wanted: String, sheets: Vec<String> },
    #[error("the workbook has no sheet")]
    NoSheet,
    #[error("not a workbook Loa can read: {0}")]
    Workbook(String),
    #[error(
        "the workbook unpacks to more than {} MB; split the list, or save it as CSV",
        MAX_UNPACKED / 1_000_000
    )]
    TooLarge,
    #[error("--sheet is for workbooks (.xlsx, .xls, .ods); this is a CSV file")]
    SheetOfCsv,
    #[error("not {} text: {detail}", .encoding.as_str())]
    Encoding { encoding: Encoding, detail: String },
    #[error("line {line}: {detail}")]
    Csv { line: u64, detail: String },
}

fn list(sheets: &[String]) -> String {
    sheets
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The start of a ZIP archive (`.xlsx`, `.ods`) and of an OLE compound file (`.xls`).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Reads a file's bytes: a workbook's sheet (`sheet`, or the first), or a CSV file in
/// `encoding` (detected when `None`).
pub fn read(
    bytes: &[u8],
    sheet: Option<&str>,
    encoding: Option<Encoding>,
) -> Result<Table, SheetError> {
    if bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(OLE_MAGIC) {
        read_workbook(bytes, sheet)
    } else if sheet.is_some() {
        Err(SheetError::SheetOfCsv)
    } else {
        read_csv(bytes, encoding)
    }
}

/// The most a workbook (`.xlsx`, `.ods`: a ZIP archive) may unpack to, as its archive declares:
/// a district's 300,000 rows take about a tenth of it; a small upload that unpacks to gigabytes
/// (a "zip bomb") is refused before it is read.
pub const MAX_UNPACKED: u128 = 400_000_000;

fn read_workbook(bytes: &[u8], sheet: Option<&str>) -> Result<Table, SheetError> {
    if bytes.starts_with(ZIP_MAGIC) {
        let archive = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| SheetError::Workbook(e.to_string()))?;
        if archive.decompressed_size().is_none_or(|n| n > MAX_UNPACKED) {
            return Err(SheetError::TooLarge);
        }
    }
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|e| SheetError::Workbook(e.to_string()))?;
    let names = book.sheet_names();
    let name = match sheet {
        None => names.first().cloned().ok_or(SheetError::NoSheet)?,
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .or_else(|| names.iter().find(|n| same_name(n, wanted)))
            .cloned()
            .ok_or_else(|| SheetError::NoSuchSheet {
                wanted: wanted.to_string(),
                sheets: names.clone(),
            })?,
    };
    let rows = match &mut book {
        calamine::Sheets::Xlsx(xlsx) => xlsx_rows(xlsx, &name)?,
        other => {
            let range = other
                .worksheet_range(&name)
                .map_err(|e| SheetError::Workbook(e.to_string()))?;
            // Row numbers as the spreadsheet shows them: the range starts at its first cell.
            let first_row = range.start().map_or(0, |(row, _)| u64::from(row));
            range
                .rows()
                .enumerate()
                .map(|(i, cells)| Row {
                    line: first_row + i as u64 + 1,
                    cells: cells.iter().take(MAX_COLUMNS).map(cell_text).collect(),
                })
                .filter(|row| row.cells.iter().any(|c| !c.is_empty()))
                .collect()
        }
    };
    Ok(Table {
        format: Format::Workbook { sheet: name },
        rows,
    })
}

/// Columns read from a workbook: a list has a handful; cells further right are left alone.
pub const MAX_COLUMNS: usize = 256;

/// An `.xlsx` sheet's rows from the cells it holds, one by one. A rectangle from the first
/// to the last cell (what `worksheet_range` builds) would let one far cell (XFD1048576) in a
/// 5 KB file ask for hundreds of gigabytes; here only cells with a value take room.
fn xlsx_rows<RS: std::io::Read + std::io::Seek>(
    xlsx: &mut calamine::Xlsx<RS>,
    name: &str,
) -> Result<Vec<Row>, SheetError> {
    let mut reader = xlsx
        .worksheet_cells_reader(name)
        .map_err(|e| SheetError::Workbook(e.to_string()))?;
    let mut rows: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| SheetError::Workbook(e.to_string()))?
    {
        let (row, column) = cell.get_position();
        let column = column as usize;
        if column >= MAX_COLUMNS {
            continue;
        }
        let text = cell_text(&Data::from(cell.get_value().clone()));
        if text.is_empty() {
            continue;
        }
        let cells = rows.entry(row).or_default();
        if cells.len() <= column {
            cells.resize(column + 1, String::new());
        }
        cells[column] = text;
    }
    Ok(rows
        .into_iter()
        .map(|(row, cells)| Row {
            line: u64::from(row) + 1,
            cells,
        })
        .collect())
}

/// A sheet's name as a clerk types it on the command line: case and spacing aside.
fn same_name(a: &str, b: &str) -> bool {
    let fold = |s: &str| -> String {
        s.nfc()
            .flat_map(char::to_lowercase)
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    fold(a) == fold(b)
}

/// A cell as text: whole numbers without a decimal point (a phone number Excel stored as a
/// number is `912345678`, not `912345678.0`), dates as `YYYY-MM-DD`.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.nfc().collect::<String>().trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => d
            .as_datetime()
            .map(|d| d.date().to_string())
            .unwrap_or_else(|| d.as_f64().to_string()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e}"),
    }
}

fn read_csv(bytes: &[u8], encoding: Option<Encoding>) -> Result<Table, SheetError> {
    let (text, encoding) = decode(bytes, encoding)?;
    let text: String = text.nfc().collect();
    let separator = separator(&text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(separator as u8)
        .from_reader(text.as_bytes());
    // Lines counted from the record's byte offset: the reader's own count is off after "\r\n"
    // (Excel's line ends) and blank lines.
    let mut lines = LineCounter::new(&text);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| SheetError::Csv {
            line: e.position().map_or(0, |p| lines.at(p.byte())),
            detail: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| lines.at(p.byte()));
        let cells: Vec<String> = record.iter().map(|c| c.trim().to_string()).collect();
        if cells.iter().any(|c| !c.is_empty()) {
            rows.push(Row { line, cells });
        }
    }
    Ok(Table {
        format: Format::Csv {
            encoding,
            separator,
        },
        rows,
    })
}

/// The line of a byte offset, for offsets that only grow.
struct LineCounter<'t> {
    text: &'t [u8],
    offset: usize,
    line: u64,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record the reader says starts at `byte` (it may point at the line end
    /// before it, or at blank lines: those are skipped).
    fn at(&mut self, byte: u64) -> u64 {
        let mut byte = (byte as usize).min(self.text.len());
        while self
            .text
            .get(byte)
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            byte += 1;
        }
        if byte >= self.offset {
            self.line += self.text[self.offset..byte]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.offset = byte;
        }
        self.line
    }
}

/// The text of a CSV file, and the encoding it was read in.
fn decode(bytes: &[u8], named: Option<Encoding>) -> Result<(String, Encoding), SheetError> {
    let encoding = named.unwrap_or_else(|| detect(bytes));
    // UTF-8 with a byte or two damaged (a file cut and pasted, a bad copy) would read as
    // Windows-1258 and turn every name into mojibake: say where the damage is instead.
    if named.is_none()
        && encoding == Encoding::Windows1258
        && let Some(line) = damaged_utf8(bytes)
    {
        return Err(SheetError::Encoding {
            encoding: Encoding::Utf8,
            detail: format!(
                "line {line} has a damaged character, the rest of the file is UTF-8; fix that line, or name the encoding with --encoding"
            ),
        });
    }
    let text = match encoding {
        Encoding::Utf8 => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            String::from_utf8(bytes.to_vec()).map_err(|e| SheetError::Encoding {
                encoding,
                detail: format!(
                    "invalid byte at offset {}; if Excel saved it as plain \"CSV\", try --encoding windows-1258",
                    e.utf8_error().valid_up_to()
                ),
            })?
        }
        Encoding::Utf16 => {
            let big_endian = bytes.starts_with(b"\xFE\xFF")
                || (!bytes.starts_with(b"\xFF\xFE") && looks_utf16(bytes) == Some(true));
            let codec = if big_endian {
                encoding_rs::UTF_16BE
            } else {
                encoding_rs::UTF_16LE
            };
            let (text, had_errors) = codec.decode_with_bom_removal(bytes);
            if had_errors {
                return Err(SheetError::Encoding {
                    encoding,
                    detail: "odd length or unpaired surrogates".into(),
                });
            }
            text.into_owned()
        }
        // Every byte means something in Windows-1258: it cannot fail, only be the wrong guess,
        // which a clerk sees in the summary ("read as …") and fixes with --encoding.
        Encoding::Windows1258 => encoding_rs::WINDOWS_1258
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    };
    Ok((text, encoding))
}

/// UTF-8 with or without its mark, UTF-16 by its mark or its zero bytes, else Windows-1258.
fn detect(bytes: &[u8]) -> Encoding {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        Encoding::Utf16
    } else if std::str::from_utf8(bytes).is_ok() {
        Encoding::Utf8
    } else if looks_utf16(bytes).is_some() {
        Encoding::Utf16
    } else {
        Encoding::Windows1258
    }
}

/// The line of the first invalid byte of a file that is otherwise clearly UTF-8 (at least ten
/// well-formed multi-byte characters for each invalid byte); `None` for any other file.
fn damaged_utf8(bytes: &[u8]) -> Option<u64> {
    let (mut good, mut bad, mut first_bad) = (0usize, 0usize, None);
    for chunk in bytes.utf8_chunks() {
        good += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        if !chunk.invalid().is_empty() {
            bad += 1;
            if first_bad.is_none() {
                let offset = chunk.invalid().as_ptr() as usize - bytes.as_ptr() as usize;
                first_bad = Some(offset);
            }
        }
    }
    let offset = first_bad?;
    (good >= 10 * bad).then(|| 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count() as u64)
}

/// UTF-16 without a mark: text with many ASCII letters has a zero byte in every other place.
/// `Some(true)` when the zeros come first (big-endian).
fn looks_utf16(bytes: &[u8]) -> Option<bool> {
    let head = &bytes[..bytes.len().min(4096) & !1];
    let pairs = head.len() / 2;
    if pairs < 2 {
        return None;
    }
    let even = head.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd = head.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    if odd * 10 >= pairs * 3 && even * 10 < pairs {
        Some(false)
    } else if even * 10 >= pairs * 3 && odd * 10 < pairs {
        Some(true)
    } else {
        None
    }
}

/// The separator the first lines use most (outside quotes): tab, `;` or `,`.
fn separator(text: &str) -> char {
    let mut counts = [0usize; 3];
    let candidates = ['\t', ';', ','];
    let mut quoted = false;
    for c in text.lines().take(20).flat_map(|l| l.chars().chain(['\n'])) {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = candidates.iter().position(|&s| s == c) {
            counts[i] += 1;
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], i)).unwrap_or(2);
    if counts[best] == 0 {
        ','
    } else {
        candidates[best]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1258_comes_out_nfc() {
        // "Đoan Bái" in Windows-1258: Đ is 0xD0, "á" is "a" and the combining acute 0xEC.
        let bytes = b"name,phone,area\nL\xea Th\xfa,0912345678,\xd0oan Ba\xeci\n";
        let table = read(bytes, None, None).unwrap();
        assert_eq!(
            table.format,
            Format::Csv {
                encoding: Encoding::Windows1258,
                separator: ','
            }
        );
        assert_eq!(table.rows[1].cells[2], "Đoan Bái");
        assert!(
            table.rows[1].cells[2].chars().count() == 8,
            "NFC: one char per letter"
        );
    }

    #[test]
    fn utf16_unicode_text_with_tabs() {
        let text = "Họ và tên\tSĐT\tXã\r\nNguyễn Thị Lan\t0912345678\tXã Đoan Bái\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let table = read(&bytes, None, None).unwrap();
        assert_eq!(
            table.format,
            Format::Csv {
                encoding: Encoding::Utf16,
                separator: '\t'
            }
        );
        assert_eq!(
            table.rows[1].cells,
            ["Nguyễn Thị Lan", "0912345678", "Xã Đoan Bái"]
        );
        // Without its mark, by its zero bytes.
        let table = read(&bytes[2..], None, None).unwrap();
        assert_eq!(table.rows[0].cells[0], "Họ và tên");
    }

    #[test]
    fn semicolons_and_quoted_commas() {
        let table = read(
            "\u{feff}Họ tên;SĐT;Xã\n\"Lan, Thị\";0912345678;Đoan Bái\n".as_bytes(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(table.rows[1].cells[0], "Lan, Thị");
        assert_eq!(
            table.rows[0].cells[0], "Họ tên",
            "the mark is not part of the header"
        );
    }

    #[test]
    fn a_named_encoding_that_does_not_fit_says_so() {
        let err = read(b"name\n\xd0oan\n", None, Some(Encoding::Utf8)).unwrap_err();
        assert!(err.to_string().contains("windows-1258"), "{err}");
        assert_eq!(
            read(b"a,b\n", Some("Sheet1"), None),
            Err(SheetError::SheetOfCsv)
        );
    }

    #[test]
    fn utf8_with_a_damaged_byte_is_not_read_as_windows_1258() {
        let mut bytes = "Họ và tên,SĐT,Xã\nNguyễn Thị Lan,0912345678,Xã Đoan Bái\n"
            .as_bytes()
            .to_vec();
        bytes.extend(b"L\xea Hoa,0912345679,Xa Doan Bai\n");
        let err = read(&bytes, None, None).unwrap_err();
        assert!(
            err.to_string().contains("line 3 has a damaged character"),
            "{err}"
        );
        // Named, it is read as named.
        assert!(read(&bytes, None, Some(Encoding::Windows1258)).is_ok());
    }

    #[test]
    fn a_workbook_that_unpacks_to_gigabytes_is_refused_unread() {
        use std::io::Write;
        let mut bomb = Vec::new();
        {
            let mut zip = zip::ZipWriter::new(Cursor::new(&mut bomb));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
            zip.write_all(b"<x/>").unwrap();
            zip.finish().unwrap();
        }
        assert!(
            read(&bomb, None, None) != Err(SheetError::TooLarge),
            "small is fine"
        );
        // The central directory declares 4 GB unpacked (its size field is 24 bytes in).
        let at = bomb.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        bomb[at + 24..at + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&bomb, None, None), Err(SheetError::TooLarge));
    }

    #[test]
    fn lines_as_an_editor_numbers_them() {
        let table = read(b"Ho ten,SDT,Xa\r\nBinh,123,a\r\nHoa,124,a\r\n", None, None).unwrap();
        let lines: Vec<u64> = table.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 3]);
        let table = read(b"T\n\nHo ten,SDT,Xa\n\nBinh,123,a\nHoa,124,a\n", None, None).unwrap();
        let lines: Vec<u64> = table.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 3, 5, 6]);
    }

    #[test]
    fn cells_as_a_clerk_sees_them() {
        assert_eq!(cell_text(&Data::Float(912345678.0)), "912345678");
        assert_eq!(cell_text(&Data::Float(1.5)), "1.5");
        assert_eq!(cell_text(&Data::Int(1990)), "1990");
        assert_eq!(cell_text(&Data::String(" Lan ".into())), "Lan");
    }
}
