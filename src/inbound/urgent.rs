//! Whether a resident's text looks like a call for help: the one maintained list of urgent
//! words, and how a text is matched against it.
//!
//! A text is cut into words (NFC, lower case, punctuation as spaces) and matched by whole
//! words and phrases, twice:
//!
//! * with its diacritics, against [`MARKED`]: single words may stand alone there ("cứu",
//!   "đánh"), because with their marks they say one thing. Set phrases that only share a word
//!   ([`NOT_URGENT`]: "đánh giá", "nghiên cứu", "cứu trợ", "phòng, chống bạo lực") are taken
//!   out of the text first, so "đánh giá cán bộ" or a question about the campaign is not urgent
//!   while "chồng đánh em" is.
//! * folded to plain letters (as people type without a Vietnamese keyboard, or half with one),
//!   against [`FOLDED`]: only phrases that mean the same with the marks gone. A bare "danh"
//!   (danh: name; Danh Thắng is a commune), "cuu" (cừu, cửu) or "tu tu" (từ từ: slowly) is
//!   far too common to call anyone out for, so the folded list asks for a second word: "bi
//!   danh", "danh em", "cuu toi", "muon tu tu".
//!
//! The judgement, documented: a false alarm costs a contact point a look; a missed call for help
//! can cost much more. The list leans towards marking: "bị đánh" in any sentence is urgent,
//! negations ("không bị đánh") included, and the folded "bi danh" also catches "bí danh"
//! (alias), a rare word in a reply to an awareness SMS. An urgent text is never treated as a
//! stop or subscribe word, whatever it starts with. Every text, urgent or not, is in the inbox.

use unicode_normalization::UnicodeNormalization;

use crate::text::unaccent;

/// Words and phrases with their diacritics (NFC, lower case) that call for help.
pub const MARKED: &[&str] = &[
    "cứu",
    "cứu với",
    "bạo lực",
    "bạo hành",
    "xâm hại",
    "hiếp",
    "hiếp dâm",
    "cưỡng hiếp",
    "cưỡng bức",
    "sàm sỡ",
    "quấy rối",
    "đánh",
    "đánh đập",
    "hành hạ",
    "ngược đãi",
    "tự tử",
    "tự sát",
    "muốn chết",
    "bị ép",
    "ép cưới",
    "ép hôn",
    "tảo hôn",
    "bắt cóc",
    "bị bán",
    "buôn người",
    "buôn bán người",
    "giết",
    "đe dọa",
    "đe doạ",
    "dọa giết",
    "doạ giết",
    "bị nhốt",
    "đuổi ra khỏi nhà",
    "lạm dụng",
    "hành hung",
    "cưỡng ép",
    "ép lấy chồng",
    "bắt lấy chồng",
    "ép em lấy chồng",
    "bắt em lấy chồng",
    "ép con lấy chồng",
    "bắt con lấy chồng",
    "không muốn sống",
    "chán sống",
    "tự vẫn",
    "giúp em với",
    "giúp tôi với",
    "giúp với",
    "sờ mó",
    "đập em",
    "đập tôi",
    "bị dọa",
    "bị doạ",
    "cấp cứu",
    "sos",
];

/// Set phrases (with diacritics) that contain an urgent word but do not call for help. They are
/// taken out of a text before it is matched against [`MARKED`].
pub const NOT_URGENT: &[&str] = &[
    "nghiên cứu",
    "tra cứu",
    "cứu trợ",
    "cứu tế",
    "cứu cánh",
    "cứu vãn",
    "cứu rỗi",
    "cứu nước",
    "cứu quốc",
    "đánh giá",
    "đánh máy",
    "đánh chữ",
    "đánh dấu",
    "đánh số",
    "đánh vần",
    "đánh răng",
    "đánh thức",
    "đánh bóng",
    "đánh cầu",
    "đánh cờ",
    "đánh bài",
    "đánh bạc",
    "đánh đề",
    "đánh bắt",
    "đánh cá",
    "đánh trống",
    "đánh điện",
    "đánh tiếng",
    "đánh thuế",
    "đánh giày",
    "đánh son",
    "đánh phấn",
    "đánh rơi",
    "đánh mất",
    "đánh lúa",
    "đánh đàn",
    "đánh lưới",
    "đánh đổi",
    "đánh lừa",
    "đánh tráo",
    "ép giá",
    // The campaign's messages named in a reply ("Dừng gửi tin về bạo lực gia đình", "TC tin
    // tảo hôn"): a stop word with them stops, it is no call for help.
    "tin về bạo lực",
    "tin bạo lực",
    "tin nhắn về bạo lực",
    "tin về tảo hôn",
    "tin tảo hôn",
    "tin về xâm hại",
    "tin xâm hại",
    "chống bạo lực",
    "chống bạo hành",
    "chống xâm hại",
    "chống tảo hôn",
    "chống buôn bán người",
    "chống mua bán người",
];

/// Phrases folded to plain letters (lower case) that call for help, each meaning the same
/// with any marks put back.
pub const FOLDED: &[&str] = &[
    "cuu toi",
    "cuu em",
    "cuu chau",
    "cuu con",
    "cuu me",
    "cuu voi",
    "cuu minh",
    "bi danh",
    "danh e",
    "cuu e",
    "ck danh",
    "danh toi",
    "danh em",
    "danh chau",
    "danh con",
    "danh me",
    "danh vo",
    "danh dap",
    "chong danh",
    "chong dap",
    "dap em",
    "bao luc",
    "bao hanh",
    "xam hai",
    "hiep dam",
    "cuong hiep",
    "cuong buc",
    "sam so",
    "bi quay roi",
    "bi hanh ha",
    "nguoc dai",
    "tu sat",
    "muon tu tu",
    "dinh tu tu",
    "doi tu tu",
    "muon chet",
    "bi ep",
    "ep cuoi",
    "ep hon",
    "tao hon",
    "bat coc",
    "bi ban",
    "buon nguoi",
    "buon ban nguoi",
    "giet",
    "de doa",
    "doa giet",
    "bi nhot",
    "bi lam dung",
    "lam dung tinh duc",
    "hanh hung",
    "cuong ep",
    "ep lay chong",
    "bat lay chong",
    "ep em lay chong",
    "bat em lay chong",
    "khong muon song",
    "chan song",
    "giup toi voi",
    "giup em voi",
    "giup voi",
    "cap cuu",
    "bi hiep",
    "sos",
];

/// A text that is only this word (its last letter maybe repeated: "cứuuu", "CUU!!!") is a call
/// for help however it is typed.
const ALONE: &[&str] = &["cuu", "sos"];

/// The text's words: NFC, lower case, punctuation and spacing as single spaces.
fn words(text: &str) -> Vec<String> {
    text.nfc()
        .collect::<String>()
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `phrase` (words separated by single spaces) occurs in `words` as whole words.
fn contains_phrase(words: &[String], phrase: &str) -> bool {
    let wanted: Vec<&str> = phrase.split(' ').collect();
    words
        .windows(wanted.len())
        .any(|w| w.iter().zip(&wanted).all(|(a, b)| a == b))
}

/// `words` with every occurrence of `phrase` blanked out.
fn blank_phrase(words: &mut [String], phrase: &str) {
    let wanted: Vec<&str> = phrase.split(' ').collect();
    let n = wanted.len();
    if n == 0 || words.len() < n {
        return;
    }
    for i in 0..=words.len() - n {
        if words[i..i + n].iter().zip(&wanted).all(|(a, b)| a == b) {
            for w in &mut words[i..i + n] {
                w.clear();
            }
        }
    }
}

/// The urgent word or phrase a text contains (the first found), if any.
pub fn urgent_match(text: &str) -> Option<&'static str> {
    let mut marked = words(text);
    for phrase in NOT_URGENT {
        blank_phrase(&mut marked, phrase);
    }
    if let Some(found) = MARKED.iter().find(|p| contains_phrase(&marked, p)) {
        return Some(found);
    }
    // Folded: only the words typed without marks take part ("Chồng em danh em"), so a word
    // written with its own marks ("bị bận", "Hạnh Hà", "dành") never folds into another. The
    // set phrases go first here too, folded ("phong chong bao luc").
    let all = words(text);
    let mut folded: Vec<String> = all
        .iter()
        .map(|w| {
            if unaccent(w) == *w {
                w.clone()
            } else {
                String::new()
            }
        })
        .collect();
    for phrase in NOT_URGENT {
        blank_phrase(&mut folded, &unaccent(phrase));
    }
    if let Some(found) = FOLDED.iter().find(|p| contains_phrase(&folded, p)) {
        return Some(found);
    }
    match all.as_slice() {
        [only] => {
            // Letters held down ("cuuuu") count once, in the text and in the list.
            let squeeze = |w: &str| {
                let mut out: Vec<char> = unaccent(w).chars().collect();
                out.dedup();
                out.into_iter().collect::<String>()
            };
            let word = squeeze(only);
            ALONE.iter().find(|w| squeeze(w) == word).copied()
        }
        _ => None,
    }
}

/// Whether a text looks like a call for help.
pub fn is_urgent(text: &str) -> bool {
    urgent_match(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nfd(s: &str) -> String {
        s.nfd().collect()
    }

    #[test]
    fn calls_for_help_with_marks_without_and_half_with() {
        for text in [
            "chồng em lại đánh em",
            "Cứu tôi với!",
            "CỨU",
            "tôi bị bạo lực gia đình",
            "con tôi bị xâm hại",
            "em muốn tự tử",
            "bố mẹ bắt em lấy chồng, em bị ép",
            "cuu toi",
            "chong em danh em",
            "bi danh dap moi ngay",
            "em muon tu tu",
            "nó dọa giết cả nhà",
            "Chồng em danh em", // half with marks
            "Dừng lại, chồng tôi đánh tôi",
            "ép em lấy chồng",
            "ep em lay chong",
            "em bị lạm dụng",
            "bi lam dung tinh duc",
            "chong dap em",
            "không muốn sống nữa",
            "giúp em với",
            "giup toi voi",
            "SOS",
            "CUU!!!",
            "cứuuu",
            "cuu e vs",
            "ck danh e",
        ] {
            assert!(is_urgent(text), "{text:?}");
            assert!(is_urgent(&nfd(text)), "NFD {text:?}");
        }
    }

    #[test]
    fn words_that_only_share_a_word_are_not_urgent() {
        for text in [
            "đánh giá cán bộ xã thế nào",
            "tôi đánh máy chậm",
            "em đang nghiên cứu về bình đẳng giới",
            "tra cứu ở đâu",
            "khi nào có cứu trợ",
            "Phòng, chống bạo lực gia đình là gì?",
            "danh sach nguoi nhan",
            "tu tu roi tinh",
            "Từ từ rồi tính",
            "DK Danh Thắng",
            "dk danh thang",
            "cảm ơn",
            "Đúng rồi",
            "",
            // Typed without marks, the campaign's own words are not calls for help.
            "phong chong bao luc gia dinh",
            "tuyen truyen chong tao hon",
            "phong chong xam hai tre em",
            "bi danh gia thap",
            // Words with their own marks never fold into urgent ones.
            "hôm nay tôi bị bận",
            "Tôi gửi bộ danh sách",
            "để dành em",
            "Cô Hạnh Hà",
            "dễ dọa",
            "đánh đàn",
            "đánh đổi",
            "bị ép giá",
            "cuu ho",
            "Dừng gửi tin về bạo lực gia đình",
            "HUY, khong muon nhan tin bao luc nua",
            "TC tin tảo hôn",
        ] {
            assert!(!is_urgent(text), "{text:?}: {:?}", urgent_match(text));
        }
    }

    #[test]
    fn a_set_phrase_does_not_hide_an_urgent_word_beside_it() {
        assert!(is_urgent("đánh giá gì, chồng em đánh em"));
        assert!(is_urgent("phòng chống bạo lực mà em vẫn bị bạo lực"));
    }

    #[test]
    fn the_lists_are_written_as_they_are_matched() {
        for phrase in MARKED.iter().chain(NOT_URGENT) {
            assert_eq!(
                words(phrase).join(" "),
                *phrase,
                "NFC, lower case, one space"
            );
        }
        for phrase in FOLDED {
            assert_eq!(unaccent(phrase), *phrase, "{phrase}: plain letters");
            assert_eq!(words(phrase).join(" "), *phrase);
        }
    }
}
