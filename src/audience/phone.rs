//! Vietnamese mobile numbers, parsed with libphonenumber's data (the `phonenumber` crate) and
//! kept in E.164 (`+84912345678`).

use phonenumber::country;
use phonenumber::{Mode, Type as PhoneNumberType};

/// Why an input is not a Vietnamese mobile number. Its `Display` quotes the input, for the
/// operator's import report on their own file; anything written to a log shows the input
/// masked (`channels::mask_address(e.input())` with [`PhoneError::reason`]), as numbers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneError {
    NotANumber(String),
    Invalid(String),
    Landline(String),
    Foreign(String),
    /// A 1900/1800 service number: no SMS reaches a person there.
    Service(String),
}

impl PhoneError {
    /// The input as given.
    pub fn input(&self) -> &str {
        match self {
            PhoneError::NotANumber(s)
            | PhoneError::Invalid(s)
            | PhoneError::Landline(s)
            | PhoneError::Foreign(s)
            | PhoneError::Service(s) => s,
        }
    }

    /// Why it was refused, without the input.
    pub fn reason(&self) -> &'static str {
        match self {
            PhoneError::NotANumber(_) => "is not a phone number",
            PhoneError::Invalid(_) => "is not a valid Vietnamese number",
            PhoneError::Landline(_) => "is a landline; SMS needs a mobile number",
            PhoneError::Foreign(_) => "is not a Vietnamese number",
            PhoneError::Service(_) => "is a 1900/1800 service number, not a mobile",
        }
    }
}

impl PhoneError {
    /// The refusal as a commune clerk reads it, with the input.
    pub fn vietnamese(&self) -> String {
        let input = self.input();
        match self {
            PhoneError::NotANumber(_) => format!("\"{input}\" không phải số điện thoại"),
            PhoneError::Invalid(_) => format!("\"{input}\" không phải số di động Việt Nam hợp lệ"),
            PhoneError::Landline(_) => {
                format!("\"{input}\" là số máy bàn; tin nhắn SMS cần số di động")
            }
            PhoneError::Foreign(_) => format!("\"{input}\" không phải số Việt Nam"),
            PhoneError::Service(_) => {
                format!("\"{input}\" là số dịch vụ 1900/1800, không phải số di động")
            }
        }
    }

    /// Both ways of saying it.
    pub fn said(&self) -> super::Said {
        super::Said::new(self.to_string(), self.vietnamese())
    }
}

impl std::fmt::Display for PhoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.input(), self.reason())
    }
}

impl std::error::Error for PhoneError {}

/// A mobile number in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MobileNumber(String);

impl MobileNumber {
    /// Accepts `0912345678`, `84912345678`, `+84 912 345 678`, `091.234.5678`, `091-234-5678`.
    pub fn parse(input: &str) -> Result<MobileNumber, PhoneError> {
        let raw = input.trim();
        let digits: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
            .collect();
        if digits.is_empty()
            || !digits
                .trim_start_matches('+')
                .chars()
                .all(|c| c.is_ascii_digit())
        {
            return Err(PhoneError::NotANumber(raw.to_string()));
        }
        // "84912345678": the country code without its plus.
        let digits = if digits.starts_with("84") && digits.len() == 11 {
            format!("+{digits}")
        } else {
            digits
        };
        let number = phonenumber::parse(Some(country::Id::VN), &digits)
            .map_err(|_| PhoneError::NotANumber(raw.to_string()))?;
        if number.code().value() != 84 {
            return Err(PhoneError::Foreign(raw.to_string()));
        }
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid(raw.to_string()));
        }
        match number.number_type(&phonenumber::metadata::DATABASE) {
            PhoneNumberType::Mobile => {}
            PhoneNumberType::FixedLine | PhoneNumberType::FixedLineOrMobile => {
                return Err(PhoneError::Landline(raw.to_string()));
            }
            _ => return Err(PhoneError::Invalid(raw.to_string())),
        }
        Ok(MobileNumber(number.format().mode(Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MobileNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ways_people_write_one_number() {
        for input in [
            "0912345678",
            "84912345678",
            "+84912345678",
            "+84 912 345 678",
            "091.234.5678",
            "091-234-5678",
        ] {
            assert_eq!(
                MobileNumber::parse(input).unwrap().as_str(),
                "+84912345678",
                "{input}"
            );
        }
    }

    #[test]
    fn every_current_mobile_prefix() {
        // libphonenumber knows which blocks of 052, 055 and 089 are assigned (0522…, 0559…, 0896…).
        let bad: Vec<String> = [
            "0321", "0391", "0522", "0559", "0561", "0581", "0591", "0701", "0761", "0791", "0811",
            "0896", "0901", "0991",
        ]
        .iter()
        .map(|prefix| format!("{prefix}234567"))
        .filter(|n| MobileNumber::parse(n).is_err())
        .map(|n| format!("{n}: {:?}", MobileNumber::parse(&n)))
        .collect();
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn the_reason_can_be_told_without_the_input() {
        let e = MobileNumber::parse("02043123456").unwrap_err();
        assert_eq!(e.input(), "02043123456");
        assert!(!e.reason().contains("2043123456"));
        assert_eq!(
            e.to_string(),
            "\"02043123456\" is a landline; SMS needs a mobile number"
        );
    }

    #[test]
    fn landlines_and_bad_prefixes_are_rejected_with_a_reason() {
        assert_eq!(
            MobileNumber::parse("02043123456"),
            Err(PhoneError::Landline("02043123456".into())),
            "Bắc Giang landline"
        );
        assert!(matches!(
            MobileNumber::parse("0112345678"),
            Err(PhoneError::Invalid(_))
        ));
        assert!(matches!(
            MobileNumber::parse("091234"),
            Err(PhoneError::Invalid(_) | PhoneError::NotANumber(_))
        ));
        assert!(matches!(
            MobileNumber::parse("không có"),
            Err(PhoneError::NotANumber(_))
        ));
        assert!(matches!(
            MobileNumber::parse("+14155552671"),
            Err(PhoneError::Foreign(_))
        ));
    }
}
