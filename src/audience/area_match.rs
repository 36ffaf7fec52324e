//! An area as people write it in a spreadsheet: its code, or its name with or without its kind
//! word ("Xã", "Thị trấn", "TT."), in any case, with or without diacritics, with odd spacing.
//! "Xã Đoan Bái", "xa doan bai" and "Đoan Bái" are all `doan-bai`.

use unicode_normalization::UnicodeNormalization;

use crate::config::{Area, AreaTree};
use crate::text::unaccent;

/// Kind words as they are typed, already folded (no diacritics, lower case), longest first so
/// "thi xa" is not read as "thi …"; abbreviations ("tt", "tp") included.
const KIND_WORDS: [&str; 12] = [
    "thanh pho",
    "thi tran",
    "thi xa",
    "dac khu",
    "phuong",
    "huyen",
    "quan",
    "tinh",
    "xa",
    "tt",
    "tp",
    "p",
];

/// What an input names.
#[derive(Debug, PartialEq)]
pub enum AreaMatch<'a> {
    Found(&'a Area),
    /// No area by that name; the closest names, best first (maybe none).
    Unknown(Vec<&'a Area>),
    /// A bare name that fits several areas (two communes of one name in a province).
    Ambiguous(Vec<&'a Area>),
}

/// Folded text: NFC, no diacritics, lower case, punctuation as spaces, single spaces.
pub(crate) fn fold(text: &str) -> String {
    let text: String = text.nfc().collect();
    unaccent(&text)
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The folded name without its leading kind word, and that kind word if there was one.
fn key(text: &str) -> (Option<&'static str>, String) {
    let folded = fold(text);
    for word in KIND_WORDS {
        if let Some(rest) = folded.strip_prefix(word)
            && let Some(rest) = rest.strip_prefix(' ')
            && !rest.is_empty()
        {
            let kind = match word {
                "tt" => "thi tran",
                "tp" => "thanh pho",
                "p" => "phuong",
                other => other,
            };
            return (Some(kind), rest.to_string());
        }
    }
    (None, folded)
}

/// The area `input` names: a code as configured, else a name.
pub fn find_area<'a>(areas: &'a AreaTree, input: &str) -> AreaMatch<'a> {
    if let Some(area) = areas.get(input.trim()) {
        return AreaMatch::Found(area);
    }
    let (kind, name) = key(input);
    let mut found: Vec<&Area> = areas.iter().filter(|a| key(&a.name).1 == name).collect();
    // A kind typed with the name tells two communes of one name apart.
    if found.len() > 1 && kind.is_some() {
        found.retain(|a| key(&a.name).0 == kind);
    }
    match found.len() {
        1 => AreaMatch::Found(found[0]),
        0 => {
            let mut scored: Vec<(f64, &Area)> = areas
                .iter()
                .map(|a| (strsim::normalized_levenshtein(&key(&a.name).1, &name), a))
                // A typo is a letter or two in a name of eight or more: closer than 0.75.
                // Lower, unrelated short names ("khong co", "dong lo") start to look alike.
                .filter(|(score, _)| *score >= 0.75)
                .collect();
            scored.sort_by(|x, y| y.0.total_cmp(&x.0));
            AreaMatch::Unknown(scored.into_iter().take(3).map(|(_, a)| a).collect())
        }
        _ => AreaMatch::Ambiguous(found),
    }
}

impl AreaMatch<'_> {
    /// Why `input` is refused, in both languages (names only in Vietnamese: a clerk knows no
    /// codes); `None` when it names one area.
    pub fn said(&self, input: &str) -> Option<crate::audience::Said> {
        let en = self.problem(input)?;
        let names = |areas: &[&Area], joiner: &str| {
            areas
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(joiner)
        };
        let vi = match self {
            AreaMatch::Found(_) => return None,
            AreaMatch::Unknown(closest) if closest.is_empty() => {
                format!("không có xã, thị trấn nào tên \"{input}\" trong huyện")
            }
            AreaMatch::Unknown(closest) => format!(
                "không nhận ra \"{input}\"; có phải là {}?",
                names(closest, " hoặc ")
            ),
            AreaMatch::Ambiguous(all) => format!(
                "\"{input}\" trùng tên: {}; xin ghi rõ \"xã\" hay \"thị trấn\"",
                names(all, " và ")
            ),
        };
        Some(crate::audience::Said::new(en, vi))
    }

    /// Why `input` is refused, for an import report; `None` when it names one area.
    pub fn problem(&self, input: &str) -> Option<String> {
        let names = |areas: &[&Area], joiner: &str| {
            areas
                .iter()
                .map(|a| format!("{} ({})", a.name, a.code))
                .collect::<Vec<_>>()
                .join(joiner)
        };
        match self {
            AreaMatch::Found(_) => None,
            AreaMatch::Unknown(closest) if closest.is_empty() => Some(format!(
                "unknown area {input:?} (neither a code nor a name in loa.toml)"
            )),
            AreaMatch::Unknown(closest) => Some(format!(
                "unknown area {input:?}; did you mean {}?",
                names(closest, " or ")
            )),
            AreaMatch::Ambiguous(all) => Some(format!(
                "{input:?} fits {}: give the code, or the name with its kind",
                names(all, " and ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Env};

    fn areas(extra: &str) -> AreaTree {
        let toml = format!(
            "[campaign]\nname = \"x\"\nsender = \"y\"\n\
             [[areas]]\ncode = \"tinh\"\nname = \"Tỉnh Bắc Ninh\"\n\
             [[areas]]\ncode = \"doan-bai\"\nname = \"Xã Đoan Bái\"\nparent = \"tinh\"\npopulation = 1\n\
             [[areas]]\ncode = \"tt-thang\"\nname = \"Thị trấn Thắng\"\nparent = \"tinh\"\npopulation = 1\n{extra}"
        );
        Config::parse(std::path::Path::new("loa.toml"), &toml, &Env::default())
            .unwrap_or_else(|p| panic!("{p}"))
            .areas
    }

    fn code(areas: &AreaTree, input: &str) -> Option<String> {
        match find_area(areas, input) {
            AreaMatch::Found(a) => Some(a.code.clone()),
            _ => None,
        }
    }

    #[test]
    fn names_as_people_type_them() {
        let areas = areas("");
        for input in [
            "doan-bai",
            "Xã Đoan Bái",
            "xa doan bai",
            "Đoan Bái",
            "  XÃ   ĐOAN  BÁI ",
            "Xa\u{0303} Đoan Ba\u{0301}i", // NFD, as Windows-1258 decodes
        ] {
            assert_eq!(
                code(&areas, input).as_deref(),
                Some("doan-bai"),
                "{input:?}"
            );
        }
        for input in ["TT. Thắng", "tt thang", "Thị trấn Thắng", "thang"] {
            assert_eq!(
                code(&areas, input).as_deref(),
                Some("tt-thang"),
                "{input:?}"
            );
        }
    }

    #[test]
    fn unknown_names_get_the_closest_and_twins_get_both() {
        let areas = areas(
            "[[areas]]\ncode = \"hoa-son\"\nname = \"Xã Hòa Sơn\"\nparent = \"tinh\"\npopulation = 1\n\
             [[areas]]\ncode = \"p-hoa-son\"\nname = \"Phường Hòa Sơn\"\nparent = \"tinh\"\npopulation = 1\n",
        );
        let typo = find_area(&areas, "Xã Đoan Bai x");
        assert_eq!(
            typo.problem("Xã Đoan Bai x").unwrap(),
            "unknown area \"Xã Đoan Bai x\"; did you mean Xã Đoan Bái (doan-bai)?"
        );
        assert!(
            find_area(&areas, "Phường Nguyễn Trung Trực")
                .problem("Phường Nguyễn Trung Trực")
                .unwrap()
                .contains("neither a code nor a name")
        );
        let twins = find_area(&areas, "Hòa Sơn");
        assert_eq!(
            twins.problem("Hòa Sơn").unwrap(),
            "\"Hòa Sơn\" fits Xã Hòa Sơn (hoa-son) and Phường Hòa Sơn (p-hoa-son): give the code, or the name with its kind"
        );
        assert_eq!(code(&areas, "Phường Hòa Sơn").as_deref(), Some("p-hoa-son"));
        assert_eq!(code(&areas, "xa hoa son").as_deref(), Some("hoa-son"));
    }
}
