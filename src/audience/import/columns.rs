//! Which column holds what: headers as communes write them, in Vietnamese or as Loa's own
//! exports write them, found in the first rows (a list often has a title or two above its
//! header), and the optional columns read into what Loa keeps.
//!
//! | Field      | Headers (case, diacritics and punctuation aside)                       |
//! |------------|------------------------------------------------------------------------|
//! | name       | Họ và tên, Họ tên, Tên, name                                           |
//! | phone      | Số điện thoại, SĐT, Điện thoại, Di động, Số di động, phone             |
//! | area       | Xã, Phường, Thị trấn, Xã/Phường, Địa bàn, Đơn vị, area                  |
//! | tags       | Nhãn, Nhóm, tags                                                       |
//! | gender     | Giới tính, gender                                                      |
//! | birth year | Năm sinh, Ngày sinh, birth_year                                        |
//! | family name| Họ, Họ đệm, Họ và tên đệm (beside a "Tên" column: the name is both)      |
//!
//! Other columns (STT, Địa chỉ, Ghi chú) are left alone and named in the summary.

use crate::audience::Said;
// Headers are folded as area names are: no diacritics, lower case, punctuation and `_` as
// spaces.
use crate::audience::area_match::fold;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Phone,
    Area,
    Tags,
    Gender,
    BirthYear,
    /// Family and middle names, when a list splits them from the given name ("Họ và tên
    /// đệm" | "Tên"): the name is both, joined.
    FamilyName,
}

impl Field {
    /// Headers this field is known by, folded (see [`fold`]).
    fn headers(self) -> &'static [&'static str] {
        match self {
            Field::Name => &["ho va ten", "ho ten", "ten", "name", "full name"],
            // Best first: a header further down the list gives way to one above it.
            Field::Phone => &[
                "so dien thoai",
                "sdt",
                "so dt",
                "dien thoai",
                "di dong",
                "so di dong",
                "phone",
                "dt",
            ],
            Field::Area => &[
                "xa",
                "phuong",
                "thi tran",
                "xa phuong",
                "xa thi tran",
                "phuong xa",
                "dia ban",
                "don vi",
                "area",
            ],
            Field::Tags => &["nhan", "nhom", "tags", "tag"],
            Field::Gender => &["gioi tinh", "gender"],
            Field::BirthYear => &["nam sinh", "ngay sinh", "ngay thang nam sinh", "birth year"],
            Field::FamilyName => &["ho", "ho dem", "ho va ten dem", "ho va chu dem"],
        }
    }

    const ALL: [Field; 7] = [
        Field::Name,
        Field::Phone,
        Field::Area,
        Field::Tags,
        Field::Gender,
        Field::BirthYear,
        Field::FamilyName,
    ];
}

/// Where each field is, in the header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// Index of the header row among the table's rows.
    pub header_index: usize,
    positions: [Option<usize>; 7],
    /// Headers of the columns left alone, as written.
    pub unused: Vec<String>,
}

impl Columns {
    pub fn of(&self, field: Field) -> Option<usize> {
        self.positions[field as usize]
    }

    /// The row's name: the name cell, after the family-name cell when the list splits them.
    pub fn name(&self, cells: &[String]) -> String {
        let given = self.get(cells, Field::Name);
        match self.get(cells, Field::FamilyName) {
            "" => given.to_string(),
            family if given.is_empty() => family.to_string(),
            family => format!("{family} {given}"),
        }
    }

    /// A row's cell for `field`, empty when the column or the cell is missing.
    pub fn get<'r>(&self, cells: &'r [String], field: Field) -> &'r str {
        self.of(field)
            .and_then(|i| cells.get(i))
            .map_or("", String::as_str)
    }
}

/// How many rows from the top a header row is looked for.
pub const HEADER_SEARCH_ROWS: usize = 10;

/// The header row: the first of the top rows naming both a name and a phone column. `None`
/// when there is none.
pub fn find(rows: &[Vec<String>]) -> Option<Columns> {
    rows.iter()
        .take(HEADER_SEARCH_ROWS)
        .enumerate()
        .find_map(|(index, cells)| {
            let columns = read_header(index, cells);
            (columns.of(Field::Name).is_some() && columns.of(Field::Phone).is_some())
                .then_some(columns)
        })
}

fn read_header(header_index: usize, cells: &[String]) -> Columns {
    // For each field, the column whose header comes first in its list: "SĐT" is a phone
    // number wherever it is, "ĐT" only when nothing says so better (it can be "Dân tộc").
    let mut best: [Option<(usize, usize)>; 7] = [None; 7];
    for (i, cell) in cells.iter().enumerate() {
        let folded = fold(cell);
        for f in Field::ALL {
            if let Some(rank) = f.headers().iter().position(|h| *h == folded)
                && best[f as usize].is_none_or(|(r, _)| rank < r)
            {
                best[f as usize] = Some((rank, i));
            }
        }
    }
    let positions = best.map(|b| b.map(|(_, i)| i));
    let unused = cells
        .iter()
        .enumerate()
        .filter(|(i, c)| !c.trim().is_empty() && !positions.contains(&Some(*i)))
        .map(|(_, c)| c.trim().to_string())
        .collect();
    Columns {
        header_index,
        positions,
        unused,
    }
}

/// Tags a list may give at most per person, and the longest tag (as content audiences allow).
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;

/// A "Nhãn" cell's tags as content audiences name them: without diacritics, lower case, words
/// joined by `-` ("Hội Phụ nữ" → `hoi-phu-nu`), separated by `;` or `,`. `thanh-nien` is left
/// to the birth year when the row gives one. Returns the tags and what was left out.
pub fn tags(cell: &str, has_birth_year: bool) -> (Vec<String>, Vec<Said>) {
    let mut out: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for typed in cell
        .split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let tag = fold(typed).replace(' ', "-");
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            notes.push(Said::new(
                format!("tag {typed:?} left out (1–{MAX_TAG_CHARS} letters)"),
                format!("bỏ nhãn \"{typed}\" (nhãn dài 1–{MAX_TAG_CHARS} chữ)"),
            ));
        } else if tag == crate::audience::TAG_YOUTH && has_birth_year {
            notes.push(Said::new(
                format!(
                    "tag {typed:?} left out: {} follows from the birth year",
                    crate::audience::TAG_YOUTH
                ),
                format!("bỏ nhãn \"{typed}\": nhóm thanh niên được tính theo năm sinh"),
            ));
        } else if out.len() == MAX_TAGS {
            notes.push(Said::new(
                format!("tag {typed:?} left out: at most {MAX_TAGS} tags"),
                format!("bỏ nhãn \"{typed}\": mỗi người tối đa {MAX_TAGS} nhãn"),
            ));
        } else if !out.contains(&tag) {
            out.push(tag);
        }
    }
    (out, notes)
}

/// The other gender tag, which a row's gender replaces.
pub fn other_gender(tag: &str) -> Option<&'static str> {
    match tag {
        TAG_WOMEN => Some(TAG_MEN),
        TAG_MEN => Some(TAG_WOMEN),
        _ => None,
    }
}

/// Tag for women and for men, from a "Giới tính" cell.
pub const TAG_WOMEN: &str = "phu-nu";
pub const TAG_MEN: &str = "nam";

/// The tag a gender cell means: "Nữ"/"nu"/"F" → `phu-nu`, "Nam"/"M" → `nam`; `Err` with
/// the cell when it says something else, `Ok(None)` when empty.
pub fn gender_tag(cell: &str) -> Result<Option<&'static str>, Said> {
    match fold(cell).as_str() {
        "" => Ok(None),
        "nu" | "f" | "female" | "phu nu" => Ok(Some(TAG_WOMEN)),
        "nam" | "m" | "male" => Ok(Some(TAG_MEN)),
        _ => Err(Said::new(
            format!("gender {cell:?} is neither Nam nor Nữ; left out"),
            format!("giới tính \"{cell}\" không phải Nam hoặc Nữ; bỏ qua"),
        )),
    }
}

/// The birth year in a "Năm sinh" or "Ngày sinh" cell: `1990`, `1990.0`, `12/05/1990`,
/// `1990-05-12`. `Err` when the cell holds something else or a year outside
/// 1900..=`this_year`, `Ok(None)` when empty.
pub fn birth_year(cell: &str, this_year: i32) -> Result<Option<i32>, Said> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let whole = cell.strip_suffix(".0").unwrap_or(cell);
    let year = if digits(whole) && whole.len() == 4 {
        whole.parse().ok()
    } else {
        // A date: the year is its four-digit part, first (ISO) or last (dd/mm/yyyy).
        let parts: Vec<&str> = cell.split(['/', '-', '.']).map(str::trim).collect();
        match parts.as_slice() {
            [y, m, d] | [d, m, y]
                if digits(y) && y.len() == 4 && digits(m) && digits(d) && d.len() <= 2 =>
            {
                y.parse().ok()
            }
            _ => None,
        }
    };
    match year {
        Some(y) if (1900..=this_year).contains(&y) => Ok(Some(y)),
        _ => Err(Said::new(
            format!("birth year {cell:?} is not a year (1900–{this_year}); left out"),
            format!("năm sinh \"{cell}\" không hợp lệ (1900–{this_year}); bỏ qua"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn vietnamese_headers_below_a_title() {
        let rows = vec![
            row(&["UBND XÃ ĐOAN BÁI", "", ""]),
            row(&["DANH SÁCH NGƯỜI DÂN ĐĂNG KÝ NHẬN TIN"]),
            row(&[
                "STT",
                "Họ và tên",
                "SĐT",
                "Xã/Phường",
                "Giới tính",
                "Năm sinh",
                "Ghi chú",
            ]),
        ];
        let columns = find(&rows).unwrap();
        assert_eq!(columns.header_index, 2);
        assert_eq!(columns.of(Field::Name), Some(1));
        assert_eq!(columns.of(Field::Phone), Some(2));
        assert_eq!(columns.of(Field::Area), Some(3));
        assert_eq!(columns.of(Field::Gender), Some(4));
        assert_eq!(columns.of(Field::BirthYear), Some(5));
        assert_eq!(columns.of(Field::Tags), None);
        assert_eq!(columns.unused, ["STT", "Ghi chú"]);
        // "ĐT" (it can be "Dân tộc") gives way to "SĐT" wherever that is.
        let ethnic = find(&[row(&["Họ và tên", "ĐT", "SĐT", "Xã"])]).unwrap();
        assert_eq!(ethnic.of(Field::Phone), Some(2));
        assert_eq!(ethnic.unused, ["ĐT"]);
        assert_eq!(
            tags("Hội Phụ nữ; Đoàn viên, thanh niên,,", true),
            (
                vec!["hoi-phu-nu".to_string(), "doan-vien".to_string()],
                vec![Said::new(
                    "tag \"thanh niên\" left out: thanh-nien follows from the birth year",
                    "bỏ nhãn \"thanh niên\": nhóm thanh niên được tính theo năm sinh"
                )]
            )
        );
        let split = find(&[row(&["Họ và tên đệm", "Tên", "SĐT"])]).unwrap();
        assert_eq!(
            split.name(&row(&["Nguyễn Thị", "Lan", "0912345678"])),
            "Nguyễn Thị Lan"
        );
        for (header, field) in [
            ("Họ tên", Field::Name),
            ("Tên", Field::Name),
            ("Số điện thoại", Field::Phone),
            ("Điện thoại", Field::Phone),
            ("Di động", Field::Phone),
            ("Địa bàn", Field::Area),
            ("Đơn vị", Field::Area),
            ("Phường", Field::Area),
            ("Nhóm", Field::Tags),
            ("Nhãn", Field::Tags),
            ("NGÀY SINH", Field::BirthYear),
        ] {
            let others = match field {
                Field::Name => ["SĐT", "Xã"],
                Field::Phone => ["Họ và tên", "Xã"],
                _ => ["Họ và tên", "SĐT"],
            };
            let columns = find(&[row(&[others[0], others[1], header])]).unwrap();
            assert_eq!(columns.of(field), Some(2), "{header}");
        }
        assert_eq!(
            find(&[row(&["name", "phone", "area", "tags"])])
                .unwrap()
                .of(Field::Tags),
            Some(3)
        );
        assert_eq!(find(&[row(&["Họ và tên", "Địa chỉ"])]), None);
    }

    #[test]
    fn gender_and_birth_year_as_typed() {
        assert_eq!(gender_tag("Nữ"), Ok(Some(TAG_WOMEN)));
        assert_eq!(gender_tag("NU"), Ok(Some(TAG_WOMEN)));
        assert_eq!(gender_tag("Nam"), Ok(Some(TAG_MEN)));
        assert_eq!(gender_tag(""), Ok(None));
        assert_eq!(
            gender_tag("x").unwrap_err().vi,
            "giới tính \"x\" không phải Nam hoặc Nữ; bỏ qua"
        );
        assert_eq!(birth_year("1990", 2026), Ok(Some(1990)));
        assert_eq!(birth_year("1990.0", 2026), Ok(Some(1990)));
        assert_eq!(birth_year("12/05/1990", 2026), Ok(Some(1990)));
        assert_eq!(birth_year("1990-05-12", 2026), Ok(Some(1990)));
        assert_eq!(birth_year("", 2026), Ok(None));
        assert!(birth_year("2030", 2026).is_err());
        assert!(birth_year("90", 2026).is_err());
        assert!(birth_year("0912345678", 2026).is_err());
    }
}
