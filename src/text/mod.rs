//! Text as it goes out, whatever carries it: Vietnamese dates in words, the unaccented form,
//! SMS encodings and segment counts, and Telegram's HTML ([`telegram_html`]). Pure functions;
//! a leaf every other module may use.

pub mod stop_words;
pub mod telegram_html;

use chrono::{Datelike, NaiveDate};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// "ngày 8 tháng 3 năm 2023", as official letters write dates.
pub fn vietnamese_date(date: NaiveDate) -> String {
    format!(
        "ngày {} tháng {} năm {}",
        date.day(),
        date.month(),
        date.year()
    )
}

/// Vietnamese without diacritics, for phones and gateways that only take GSM-7:
/// marks are stripped after NFD, and đ/Đ (which NFD does not decompose) become d/D.
pub fn unaccent(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' => 'd',
            'Đ' => 'D',
            other => other,
        })
        .collect()
}

/// How an SMS is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsEncoding {
    /// 7-bit default alphabet: 160 characters, 153 per part when concatenated.
    Gsm7,
    /// 16-bit: 70 characters, 67 per part. Any Vietnamese letter with a mark needs it.
    Ucs2,
}

impl std::fmt::Display for SmsEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        })
    }
}

/// The encoding, length in encoding units and number of parts of an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SmsSize {
    pub encoding: SmsEncoding,
    /// Septets for GSM-7 (an extension character counts two), UTF-16 units for UCS-2.
    pub units: usize,
    pub segments: usize,
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// Counts an SMS after NFC normalisation, as the gateway will send it.
pub fn sms_size(text: &str) -> SmsSize {
    let text: String = text.nfc().collect();
    let septets: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (encoding, units, single, part) = match septets {
        Some(n) => (SmsEncoding::Gsm7, n, 160, 153),
        None => (SmsEncoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = if units == 0 {
        0
    } else if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    SmsSize {
        encoding,
        units,
        segments,
    }
}

/// 12345 → "12.345": a whole number as Vietnamese write it, thousands apart by dots.
pub fn number_vi(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

/// An amount of đồng, rounded to the đồng: 1234567.4 → "1.234.567 đ".
pub fn dong(amount: f64) -> String {
    format!("{} đ", number_vi(amount.max(0.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaccented_vietnamese() {
        assert_eq!(
            unaccent("Đồng Tân, Hòa Sơn, Đại Thành"),
            "Dong Tan, Hoa Son, Dai Thanh"
        );
        assert_eq!(unaccent("bình đẳng giới"), "binh dang gioi");
        let decomposed: String = "Hiệp Hòa".nfd().collect();
        assert_eq!(unaccent(&decomposed), "Hiep Hoa");
    }

    #[test]
    fn gsm7_limits() {
        assert_eq!(
            sms_size(&"a".repeat(160)),
            SmsSize {
                encoding: SmsEncoding::Gsm7,
                units: 160,
                segments: 1
            }
        );
        assert_eq!(sms_size(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_size(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_size(&"a".repeat(307)).segments, 3);
        // An extension character takes two septets.
        assert_eq!(sms_size(&format!("{}€", "a".repeat(159))).segments, 2);
    }

    #[test]
    fn ucs2_limits_after_nfc() {
        assert_eq!(
            sms_size(&"ệ".repeat(70)),
            SmsSize {
                encoding: SmsEncoding::Ucs2,
                units: 70,
                segments: 1
            }
        );
        assert_eq!(sms_size(&"ệ".repeat(71)).segments, 2);
        assert_eq!(sms_size(&"ệ".repeat(134)).segments, 2);
        assert_eq!(sms_size(&"ệ".repeat(135)).segments, 3);
        // Decomposed input is counted as it will be sent: composed.
        let decomposed: String = "ệ".repeat(70).nfd().collect();
        assert_eq!(sms_size(&decomposed).segments, 1);
    }

    #[test]
    fn dates_in_words() {
        assert_eq!(
            vietnamese_date(NaiveDate::from_ymd_opt(2023, 10, 20).unwrap()),
            "ngày 20 tháng 10 năm 2023"
        );
    }
}
