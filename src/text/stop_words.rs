//! Whether a resident's text asks to stop (or to come back), as people write it: "DỪNG NHẬN
//! TIN", "TC UBND HHoa", "Huy dang ky.", in any case, NFC or NFD, with punctuation.
//!
//! Only the first word or two count, so a sentence that merely mentions stopping does not opt
//! anyone out. Words are folded to plain letters only when the whole text has no diacritics: a
//! text written with them must spell the stop word with its own marks, so "Đúng rồi", "Dùng thế
//! nào?" and "Dũng đây" (which fold to DUNG) never stop anyone. A judgement call, documented:
//! "dừng lại đi, cảm ơn" starts with DỪNG and does stop — the person can send /start or DK.

use unicode_normalization::UnicodeNormalization;

use super::unaccent;

/// Stop words as they are spelled with their marks, and their plain forms. STOP and TC have no
/// marks of their own.
const STOP: [(&str, &str); 6] = [
    ("STOP", "STOP"),
    ("TC", "TC"),
    ("HỦY", "HUY"),
    ("HUỶ", "HUY"),
    ("DỪNG", "DUNG"),
    ("TỪ CHỐI", "TU CHOI"),
];

/// Words that ask to receive messages again.
const START: [(&str, &str); 4] = [
    ("DK", "DK"),
    ("ĐĂNG KÝ", "DANG KY"),
    ("ĐĂNG KÍ", "DANG KI"),
    ("START", "START"),
];

/// The text's first words, upper case, NFC, without punctuation.
fn words(text: &str) -> Vec<String> {
    let text: String = text.nfc().collect::<String>().to_uppercase();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_string)
        .collect()
}

/// Whether `text` starts with one of `list`, by the rule above.
fn starts_with_one_of(text: &str, list: &[(&str, &str)]) -> bool {
    let nfc: String = text.nfc().collect();
    let has_marks = unaccent(&nfc) != nfc;
    let first = words(&nfc);
    let one = first.first().cloned().unwrap_or_default();
    let two = first.join(" ");
    list.iter().any(|(marked, plain)| {
        let wanted = if has_marks { *marked } else { *plain };
        let (one, two) = if has_marks {
            (one.clone(), two.clone())
        } else {
            (unaccent(&one), unaccent(&two))
        };
        one == wanted || two == wanted
    })
}

/// Whether a text asks to stop.
pub fn is_stop_phrase(text: &str) -> bool {
    starts_with_one_of(text, &STOP)
}

/// Whether a text asks to receive messages again: DK, ĐĂNG KÝ, DANG KY, START (a commune name
/// may follow).
pub fn is_start_phrase(text: &str) -> bool {
    starts_with_one_of(text, &START)
}

/// The words after a start word, as typed (NFC, trimmed): "DK Đoan Bái" → "Đoan Bái",
/// "dang ky xa doan bai" → "xa doan bai"; `None` when the text does not start with one.
pub fn after_start_phrase(text: &str) -> Option<String> {
    if !is_start_phrase(text) {
        return None;
    }
    let nfc: String = text.nfc().collect();
    let has_marks = unaccent(&nfc) != nfc;
    let first = words(&nfc);
    let two = first.join(" ");
    let two = if has_marks { two } else { unaccent(&two) };
    let two_words = first.len() == 2
        && START
            .iter()
            .any(|(marked, plain)| two == if has_marks { *marked } else { *plain });
    let skip = if two_words { 2 } else { 1 };
    // Past the start word(s): the end of the `skip`-th run of letters and digits.
    let mut runs = 0;
    let mut in_word = false;
    let mut end = nfc.len();
    for (i, c) in nfc.char_indices() {
        let letter = c.is_alphanumeric();
        if in_word && !letter {
            runs += 1;
            if runs == skip {
                end = i;
                break;
            }
        }
        in_word = letter;
    }
    Some(
        nfc[end..]
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nfd(s: &str) -> String {
        s.nfd().collect()
    }

    #[test]
    fn stop_phrases_as_people_write_them_in_nfc_and_nfd() {
        for text in [
            "STOP",
            "stop.",
            "TC",
            "TC UBND HHoa",
            "Huy dang ky.",
            "HỦY",
            "huỷ đăng ký",
            "Dừng nhận tin",
            "DỪNG NHẬN TIN",
            "dung nhan tin",
            "Từ chối",
            "TU CHOI nhan tin nhe",
            "  dừng!  ",
            "dừng lại đi, cảm ơn",
        ] {
            assert!(is_stop_phrase(text), "{text:?}");
            assert!(is_stop_phrase(&nfd(text)), "NFD {text:?}");
        }
    }

    #[test]
    fn words_that_only_fold_to_a_stop_word_do_not_stop() {
        for text in [
            "Đúng rồi",
            "Dùng thế nào?",
            "Dũng đây",
            "Hủy diệt là gì",
            "Tôi muốn dừng",
            "cho tôi hỏi",
            "",
            "STOPP",
        ] {
            let stops = is_stop_phrase(text);
            // "Hủy diệt…" starts with HỦY spelled with its marks: it stops, by the rule.
            if text.starts_with("Hủy") {
                assert!(stops, "{text:?}");
            } else {
                assert!(!stops, "{text:?}");
                assert!(!is_stop_phrase(&nfd(text)), "NFD {text:?}");
            }
        }
    }

    #[test]
    fn start_phrases() {
        for text in [
            "DK",
            "dk Đoan Bái",
            "Đăng ký",
            "đăng kí lại",
            "DANG KY",
            "start",
        ] {
            assert!(is_start_phrase(text), "{text:?}");
        }
        for text in ["Đang làm gì", "Dang", "Dũng"] {
            assert!(!is_start_phrase(text), "{text:?}");
        }
    }

    #[test]
    fn the_words_after_a_start_word() {
        for (text, rest) in [
            ("DK Đoan Bái", "Đoan Bái"),
            ("dk", ""),
            ("DK.", ""),
            ("ĐĂNG KÝ xã Đoan Bái.", "xã Đoan Bái"),
            ("dang ky xa doan bai", "xa doan bai"),
            ("Đăng ký", ""),
            ("DK, Hòa Sơn", "Hòa Sơn"),
        ] {
            assert_eq!(after_start_phrase(text).as_deref(), Some(rest), "{text:?}");
            assert_eq!(
                after_start_phrase(&nfd(text)).as_deref(),
                Some(rest),
                "NFD {text:?}"
            );
        }
        assert_eq!(after_start_phrase("cho tôi đăng ký"), None);
    }
}
