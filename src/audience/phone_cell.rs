//! A phone number as a commune's spreadsheet holds it: typed years ago with an 11-digit prefix
//! retired in 2018, its leading zero dropped by Excel, stored as a float (`912345678.0`,
//! `9.12345678E8`), in full-width digits or with non-breaking spaces, `+84 (0) 912…`, or two
//! numbers in one cell. [`read_cell`] reads what was meant and says what it changed, so the
//! import can report every converted row.

use unicode_normalization::UnicodeNormalization;

use super::Said;
use super::phone::{MobileNumber, PhoneError};

/// The 2018 renumbering of 11-digit mobile prefixes (Ministry of Information and
/// Communications): old prefix → new.
const OLD_PREFIXES: [(&str, &str); 21] = [
    ("0162", "032"),
    ("0163", "033"),
    ("0164", "034"),
    ("0165", "035"),
    ("0166", "036"),
    ("0167", "037"),
    ("0168", "038"),
    ("0169", "039"),
    ("0120", "070"),
    ("0121", "079"),
    ("0122", "077"),
    ("0126", "076"),
    ("0128", "078"),
    ("0123", "083"),
    ("0124", "084"),
    ("0125", "085"),
    ("0127", "081"),
    ("0129", "082"),
    ("0186", "056"),
    ("0188", "058"),
    ("0199", "059"),
];

/// A number read from a cell, and what was done to read it (for the import report).
#[derive(Debug, Clone, PartialEq)]
pub struct CellNumber {
    pub number: MobileNumber,
    /// Empty when the cell held the number as Loa writes it.
    pub notes: Vec<Said>,
}

impl CellNumber {
    /// Whether an old 11-digit prefix was converted.
    pub fn converted(&self) -> bool {
        self.notes.iter().any(|n| n.en.starts_with("converted"))
    }
}

/// The cell's mobile number. A cell with several numbers gives its first mobile one.
pub fn read_cell(cell: &str) -> Result<CellNumber, PhoneError> {
    // Full-width digits and non-breaking spaces become ASCII digits and spaces.
    let cell: String = cell.nfkc().collect();
    let parts: Vec<&str> = cell
        .split([',', ';', '/', '\n', '|'])
        .flat_map(|p| p.split(" hoặc ").flat_map(|q| q.split(" or ")))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let mut first_error = None;
    for part in &parts {
        match read_one(part) {
            Ok(mut found) => {
                if parts.len() > 1 {
                    found.notes.push(Said::new(
                        format!(
                            "the cell holds {} numbers; the first mobile one, {}, was taken",
                            parts.len(),
                            found.number
                        ),
                        format!(
                            "ô có {} số; đã lấy số di động đầu tiên, {}",
                            parts.len(),
                            found.number
                        ),
                    ));
                }
                return Ok(found);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| PhoneError::NotANumber(cell.trim().to_string())))
}

fn read_one(input: &str) -> Result<CellNumber, PhoneError> {
    let mut notes = Vec::new();
    let mut text = input.trim().to_string();
    // A number a spreadsheet stored as a number: "912345678.0", "9.12345678E8".
    if let Some(float) = spreadsheet_float(&text) {
        notes.push(Said::new(
            format!("read {text:?} as {float}"),
            format!("đọc \"{text}\" thành {float}"),
        ));
        text = float;
    }
    // "+84 (0) 912 …": the trunk zero in brackets is not dialled after the country code.
    let text = text.replace("(0)", "");
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
        .collect();
    let (plus, bare) = match digits.strip_prefix('+') {
        Some(rest) => (true, rest.to_string()),
        None => (false, digits.clone()),
    };
    if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_digit()) {
        return Err(PhoneError::NotANumber(input.to_string()));
    }
    if bare.starts_with("1900") || bare.starts_with("1800") {
        return Err(PhoneError::Service(input.to_string()));
    }
    // The national form, for the prefix table: 84… and +84… become 0….
    let national = match bare.strip_prefix("84") {
        Some(rest) if plus || rest.len() >= 9 => format!("0{rest}"),
        _ if plus => {
            return MobileNumber::parse(&digits).map(|number| CellNumber { number, notes });
        }
        _ => bare.clone(),
    };
    // Excel drops the leading zero: 9 digits (today's numbers) or 10 starting with 1 (old ones).
    let national = if (national.len() == 9 && !national.starts_with('0'))
        || (national.len() == 10 && national.starts_with('1'))
    {
        notes.push(Said::new(
            "its leading zero, dropped by the spreadsheet, was put back",
            "đã thêm lại số 0 ở đầu (bảng tính làm mất)",
        ));
        format!("0{national}")
    } else {
        national
    };
    let national = match OLD_PREFIXES
        .iter()
        .find(|(old, _)| national.len() == 11 && national.starts_with(old))
    {
        Some((old, new)) => {
            let converted = format!("{new}{}", &national[old.len()..]);
            notes.push(Said::new(
                format!("converted from the pre-2018 number {national} to {converted}"),
                format!("đã đổi số cũ {national} sang đầu số mới {converted}"),
            ));
            converted
        }
        None => national,
    };
    MobileNumber::parse(&national).map(|number| CellNumber { number, notes })
}

/// `Some(integer digits)` for a number a spreadsheet wrote as a float.
fn spreadsheet_float(text: &str) -> Option<String> {
    let looks_float = text.contains(['.', 'e', 'E'])
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+'));
    // "091.234.5678" is a number written with dots, not a float.
    if !looks_float || text.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    (value.fract() == 0.0 && (1e8..1e12).contains(&value)).then(|| format!("{value:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(cell: &str) -> String {
        read_cell(cell)
            .map(|c| c.number.as_str().to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn every_old_prefix_converts() {
        for (old, new) in OLD_PREFIXES {
            let cell = format!("{old}2345678");
            let expected = format!("+84{}2345678", &new[1..]);
            let read = read_cell(&cell).unwrap_or_else(|e| panic!("{cell}: {e}"));
            assert_eq!(read.number.as_str(), expected, "{cell}");
            assert!(read.converted(), "{cell}: {:?}", read.notes);
            // And with the leading zero Excel dropped.
            assert_eq!(self::read(&cell[1..]), expected, "{}", &cell[1..]);
        }
    }

    #[test]
    fn cells_as_spreadsheets_hold_them() {
        for cell in [
            "912345678",
            "912345678.0",
            "9.12345678E8",
            "０９１２３４５６７８",
            "0912\u{a0}345\u{a0}678",
            "+84 (0) 912 345 678",
            "84912345678",
            "0912345678 / 0204 3871 234",
            "02043871234, 0912345678",
        ] {
            assert_eq!(read(cell), "+84912345678", "{cell:?}");
        }
        let two = read_cell("02043871234, 0912345678").unwrap();
        assert!(
            two.notes.iter().any(|n| n.en.contains("2 numbers")),
            "{two:?}"
        );
        assert!(read_cell("0912345678").unwrap().notes.is_empty());
    }

    #[test]
    fn landlines_short_codes_and_service_numbers_are_refused_with_the_reason() {
        assert!(
            read("02043871234").contains("landline"),
            "{}",
            read("02043871234")
        );
        for cell in ["113", "8079"] {
            assert!(read(cell).starts_with("error:"), "{cell}: {}", read(cell));
        }
        for cell in ["19001234", "1900 969 680", "18001567"] {
            assert!(
                read(cell).contains("service number"),
                "{cell}: {}",
                read(cell)
            );
        }
    }
}
