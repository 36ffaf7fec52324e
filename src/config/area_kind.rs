//! The kind of an administrative unit (xã, phường, thị trấn, …) and how its name reads: alone,
//! with a capital ("Xã Thường Thắng", a heading or a table cell), and inside a sentence, in
//! lower case ("bà con xã Thường Thắng"), as Vietnamese writes it. Local roles follow the kind:
//! a xã has a trưởng thôn and a công an xã, a thị trấn or phường a tổ trưởng tổ dân phố and a
//! công an thị trấn / phường.

use std::fmt;
use std::str::FromStr;

/// The kinds of unit before and after the 2025 reorganisation (communes are now xã, phường and
/// đặc khu under a province; the 2023 district had xã and a thị trấn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaKind {
    Xa,
    Phuong,
    ThiTran,
    DacKhu,
    Huyen,
    Quan,
    ThiXa,
    ThanhPho,
    Tinh,
}

/// The kinds, longest word first, so "thị xã" is not read as a "thị…" something; a constant,
/// as the dispatcher reads every recipient's area name.
const LONGEST: [AreaKind; 9] = [
    AreaKind::ThanhPho,
    AreaKind::ThiTran,
    AreaKind::DacKhu,
    AreaKind::Phuong,
    AreaKind::ThiXa,
    AreaKind::Huyen,
    AreaKind::Quan,
    AreaKind::Tinh,
    AreaKind::Xa,
];

impl AreaKind {
    pub const ALL: [AreaKind; 9] = [
        AreaKind::Xa,
        AreaKind::Phuong,
        AreaKind::ThiTran,
        AreaKind::DacKhu,
        AreaKind::Huyen,
        AreaKind::Quan,
        AreaKind::ThiXa,
        AreaKind::ThanhPho,
        AreaKind::Tinh,
    ];

    /// The word as it stands inside a sentence: "thị trấn".
    pub fn word(self) -> &'static str {
        match self {
            AreaKind::Xa => "xã",
            AreaKind::Phuong => "phường",
            AreaKind::ThiTran => "thị trấn",
            AreaKind::DacKhu => "đặc khu",
            AreaKind::Huyen => "huyện",
            AreaKind::Quan => "quận",
            AreaKind::ThiXa => "thị xã",
            AreaKind::ThanhPho => "thành phố",
            AreaKind::Tinh => "tỉnh",
        }
    }

    /// The word at the start of a name standing alone: "Thị trấn".
    pub fn title(self) -> String {
        let word = self.word();
        let mut chars = word.chars();
        let first = chars.next().expect("kind words are not empty");
        first.to_uppercase().chain(chars).collect()
    }

    /// Who leads the smallest unit of residents: a village (thôn) in a xã or đặc khu, a
    /// residential group (tổ dân phố) in towns and wards.
    /// A unit above the commune (a message to a whole district or province) names both.
    pub fn local_leader(self) -> &'static str {
        match self {
            AreaKind::Xa | AreaKind::DacKhu => "trưởng thôn",
            AreaKind::Phuong | AreaKind::ThiTran | AreaKind::Quan => "tổ trưởng tổ dân phố",
            AreaKind::Huyen | AreaKind::ThiXa | AreaKind::ThanhPho | AreaKind::Tinh => {
                "trưởng thôn, tổ trưởng tổ dân phố"
            }
        }
    }

    /// The police residents go to: their commune's ("công an xã", "công an thị trấn"). Above
    /// the commune, still the commune's: district police were disbanded in 2025, and a resident
    /// reports to the police where they live.
    pub fn police(self) -> String {
        match self {
            AreaKind::Huyen => "công an xã, thị trấn".to_string(),
            AreaKind::Quan | AreaKind::ThiXa | AreaKind::ThanhPho | AreaKind::Tinh => {
                "công an xã, phường".to_string()
            }
            commune => format!("công an {}", commune.word()),
        }
    }

    /// The kind a full name starts with ("Xã Đoan Bái", "thị trấn Thắng"), with the bare name.
    pub fn split(name: &str) -> Option<(AreaKind, &str)> {
        let name = name.trim();
        LONGEST.into_iter().find_map(|kind| {
            let word = kind.word();
            let head: String = name.chars().take(word.chars().count()).collect();
            let rest = &name[head.len()..];
            (head.to_lowercase() == word && rest.starts_with(' '))
                .then(|| (kind, rest.trim_start()))
                .filter(|(_, bare)| !bare.is_empty())
        })
    }
}

impl fmt::Display for AreaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl FromStr for AreaKind {
    type Err = String;

    /// The word, in any case, with or without diacritics: "xã", "Thị trấn", "thi tran".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = crate::text::unaccent(s.trim()).to_lowercase();
        AreaKind::ALL
            .into_iter()
            .find(|k| {
                crate::text::unaccent(k.word()) == wanted || k.word() == s.trim().to_lowercase()
            })
            .ok_or_else(|| {
                let known: Vec<&str> = AreaKind::ALL.iter().map(|k| k.word()).collect();
                format!("unknown kind {s:?} (one of: {})", known.join(", "))
            })
    }
}

/// How an area's name reads, from its configured kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaName {
    pub kind: Option<AreaKind>,
    /// "Thường Thắng".
    pub bare: String,
    /// "Xã Thường Thắng": the name standing alone.
    pub full: String,
    /// "xã Thường Thắng": the name inside a sentence.
    pub in_sentence: String,
}

impl AreaName {
    /// `name` as configured, with `kind` when given: `kind = "xã", name = "Thường Thắng"`, or the
    /// older `name = "Xã Thường Thắng"` whose kind is read from its first word. A name of no
    /// known kind ("Khu dân cư số 3") reads the same everywhere.
    pub fn new(kind: Option<AreaKind>, name: &str) -> AreaName {
        let name = name.trim();
        let (kind, bare) = match (kind, AreaKind::split(name)) {
            (Some(kind), Some((found, bare))) if found == kind => (Some(kind), bare),
            (Some(kind), _) => (Some(kind), name),
            (None, Some((found, bare))) => (Some(found), bare),
            (None, None) => (None, name),
        };
        match kind {
            Some(kind) => AreaName {
                kind: Some(kind),
                bare: bare.to_string(),
                full: format!("{} {bare}", kind.title()),
                in_sentence: format!("{} {bare}", kind.word()),
            },
            None => AreaName {
                kind: None,
                bare: name.to_string(),
                full: name.to_string(),
                in_sentence: name.to_string(),
            },
        }
    }

    /// Who leads a village or residential group here; a unit of no known kind is spoken of as a
    /// xã would be.
    pub fn local_leader(&self) -> &'static str {
        self.kind.unwrap_or(AreaKind::Xa).local_leader()
    }

    pub fn police(&self) -> String {
        self.kind.unwrap_or(AreaKind::Xa).police()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_alone_and_in_a_sentence() {
        let town = AreaName::new(Some(AreaKind::ThiTran), "Thắng");
        assert_eq!(town.full, "Thị trấn Thắng");
        assert_eq!(town.in_sentence, "thị trấn Thắng");
        assert_eq!(town.local_leader(), "tổ trưởng tổ dân phố");
        assert_eq!(town.police(), "công an thị trấn");
        // The older form: the kind is the first word of the name.
        let commune = AreaName::new(None, "Xã Thường Thắng");
        assert_eq!(commune.kind, Some(AreaKind::Xa));
        assert_eq!(commune.bare, "Thường Thắng");
        assert_eq!(commune.in_sentence, "xã Thường Thắng");
        assert_eq!(commune.local_leader(), "trưởng thôn");
        assert_eq!(commune.police(), "công an xã");
        // Both given and agreeing: not "Xã Xã Đoan Bái".
        let both = AreaName::new(Some(AreaKind::Xa), "Xã Đoan Bái");
        assert_eq!(both.full, "Xã Đoan Bái");
        // "Thị xã" is its own kind, not a "thị…".
        let city = AreaName::new(None, "Thị xã Việt Yên");
        assert_eq!(city.kind, Some(AreaKind::ThiXa));
        assert_eq!(city.in_sentence, "thị xã Việt Yên");
        // A name of no known kind stays as written.
        let other = AreaName::new(None, "Khu dân cư số 3");
        assert_eq!(other.in_sentence, "Khu dân cư số 3");
        // A place called "Xã" alone is not split into nothing.
        assert_eq!(AreaName::new(None, "Xã").full, "Xã");
    }

    #[test]
    fn kind_words_are_tried_longest_first() {
        let lengths: Vec<usize> = LONGEST.iter().map(|k| k.word().chars().count()).collect();
        assert!(lengths.windows(2).all(|w| w[0] >= w[1]), "{lengths:?}");
        assert_eq!(LONGEST.len(), AreaKind::ALL.len());
    }

    #[test]
    fn kinds_parse_with_or_without_diacritics() {
        assert_eq!("Thị trấn".parse::<AreaKind>(), Ok(AreaKind::ThiTran));
        assert_eq!("thi tran".parse::<AreaKind>(), Ok(AreaKind::ThiTran));
        assert_eq!("đặc khu".parse::<AreaKind>(), Ok(AreaKind::DacKhu));
        assert!("thôn".parse::<AreaKind>().is_err());
    }
}
