//! Solar ↔ lunar dates of the Vietnamese lunisolar calendar (âm lịch).
//!
//! Hồ Ngọc Đức's published algorithm ("Thuật toán tính âm lịch", with his reference code
//! `VietCalendar.java` / `amlich.js`; copies at <http://amlich.xyz/VietCalendar.html> and
//! <https://gist.github.com/ndthanh/cd161cae105f3d3d4c86736c5fbad728>, originally at
//! `informatik.uni-leipzig.de/~duc/amlich/`). No maintained Rust crate implements it, so it is
//! written out here, function by function under his names, so it can be checked against his code.
//!
//! The rules it encodes: a lunar month starts on the local day of a new moon; month 11 is the
//! one containing the winter solstice; a year with 13 months between two months 11 has a leap
//! month, the first one without a major solar term (trung khí). Both the new moon's day and the
//! solar terms depend on the time zone, which is why the calendar is computed for UTC+7:
//! Vietnam adopted UTC+7 for the lunar calendar in 1967, China computes for UTC+8, and so Tết
//! 2007 was 17 February in Vietnam but the Spring Festival 18 February in China.
//!
//! Pure arithmetic: no I/O, no clock. New moons and solar longitudes are approximations after
//! Meeus' "Astronomical Algorithms", so a new moon very close to local midnight could in
//! principle land a day off; the years the tests pin (2007, 2020–2035, 2030 included, whose
//! new moon is about 23:08 in Hà Nội, 00:08 in Beijing) agree with the published dates.

use std::f64::consts::PI;

use chrono::{Datelike, NaiveDate};

/// Vietnam's offset from UTC, in hours: what the official lunar calendar is computed for.
pub const VIETNAM_UTC_OFFSET_HOURS: f64 = 7.0;

/// A date of the lunar calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LunarDate {
    /// The lunar year, which begins at Tết (so January dates before Tết belong to the previous
    /// lunar year).
    pub year: i32,
    /// 1–12.
    pub month: u32,
    /// 1–30.
    pub day: u32,
    /// The leap month (tháng nhuận) repeating `month`.
    pub leap: bool,
}

impl LunarDate {
    pub fn new(year: i32, month: u32, day: u32) -> LunarDate {
        LunarDate {
            year,
            month,
            day,
            leap: false,
        }
    }
}

/// `INT` of the reference code: the floor, also for negative numbers.
fn int(x: f64) -> i64 {
    x.floor() as i64
}

/// The Julian day number of a (proleptic Gregorian) date.
///
/// The reference code switches to the Julian calendar before 15 October 1582; chrono's dates
/// are Gregorian throughout, and nothing here is about such dates, so that branch is left out.
pub fn jd_from_date(date: NaiveDate) -> i64 {
    let (dd, mm, yy) = (
        i64::from(date.day()),
        i64::from(date.month()),
        i64::from(date.year()),
    );
    let a = (14 - mm).div_euclid(12);
    let y = yy + 4800 - a;
    let m = mm + 12 * a - 3;
    dd + (153 * m + 2).div_euclid(5) + 365 * y + y.div_euclid(4) - y.div_euclid(100)
        + y.div_euclid(400)
        - 32045
}

/// The date of a Julian day number.
pub fn jd_to_date(jd: i64) -> NaiveDate {
    // 1 January of year 1 is Julian day 1 721 426; chrono counts it as day 1.
    i32::try_from(jd - 1_721_425)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .expect("a Julian day within chrono's range")
}

/// The moment (Julian date, UTC) of the `k`-th new moon after the one of 1 January 1900
/// 13:52 UTC.
pub fn new_moon(k: i64) -> f64 {
    let k = k as f64;
    let t = k / 1236.85; // Julian centuries from 1900 January 0.5
    let t2 = t * t;
    let t3 = t2 * t;
    let dr = PI / 180.0;
    let mut jd1 = 2_415_020.759_33 + 29.530_588_68 * k + 0.000_117_8 * t2 - 0.000_000_155 * t3;
    jd1 += 0.000_33 * ((166.56 + 132.87 * t - 0.009_173 * t2) * dr).sin(); // mean new moon
    let m = 359.2242 + 29.105_356_08 * k - 0.000_033_3 * t2 - 0.000_003_47 * t3; // Sun's mean anomaly
    let mpr = 306.0253 + 385.816_918_06 * k + 0.010_730_6 * t2 + 0.000_012_36 * t3; // Moon's mean anomaly
    let f = 21.2964 + 390.670_506_46 * k - 0.001_652_8 * t2 - 0.000_002_39 * t3; // Moon's argument of latitude
    let mut c1 = (0.1734 - 0.000_393 * t) * (m * dr).sin() + 0.0021 * (2.0 * dr * m).sin();
    c1 = c1 - 0.4068 * (mpr * dr).sin() + 0.0161 * (dr * 2.0 * mpr).sin();
    c1 -= 0.0004 * (dr * 3.0 * mpr).sin();
    c1 = c1 + 0.0104 * (dr * 2.0 * f).sin() - 0.0051 * (dr * (m + mpr)).sin();
    c1 = c1 - 0.0074 * (dr * (m - mpr)).sin() + 0.0004 * (dr * (2.0 * f + m)).sin();
    c1 = c1 - 0.0004 * (dr * (2.0 * f - m)).sin() - 0.0006 * (dr * (2.0 * f + mpr)).sin();
    c1 = c1 + 0.0010 * (dr * (2.0 * f - mpr)).sin() + 0.0005 * (dr * (2.0 * mpr + m)).sin();
    let delta_t = if t < -11.0 {
        0.001 + 0.000_839 * t + 0.000_226_1 * t2 - 0.000_008_45 * t3 - 0.000_000_081 * t * t3
    } else {
        -0.000_278 + 0.000_265 * t + 0.000_262 * t2
    };
    jd1 + c1 - delta_t
}

/// The Sun's apparent longitude, in radians in `[0, 2π)`, at Julian date `jdn` (UTC).
pub fn sun_longitude(jdn: f64) -> f64 {
    let t = (jdn - 2_451_545.0) / 36525.0; // Julian centuries from 2000-01-01 12:00 UTC
    let t2 = t * t;
    let dr = PI / 180.0;
    let m = 357.529_10 + 35_999.050_30 * t - 0.000_155_9 * t2 - 0.000_000_48 * t * t2; // mean anomaly
    let l0 = 280.466_45 + 36_000.769_83 * t + 0.000_303_2 * t2; // mean longitude
    let mut dl = (1.914_600 - 0.004_817 * t - 0.000_014 * t2) * (dr * m).sin();
    dl += (0.019_993 - 0.000_101 * t) * (dr * 2.0 * m).sin() + 0.000_290 * (dr * 3.0 * m).sin();
    let l = (l0 + dl) * dr;
    l - 2.0 * PI * (l / (2.0 * PI)).floor()
}

/// Which twelfth of the ecliptic (0–11, each 30° from the vernal equinox) the Sun is in at
/// local midnight starting Julian day `day_number`.
fn sun_sector(day_number: i64, offset_hours: f64) -> i64 {
    int(sun_longitude(day_number as f64 - 0.5 - offset_hours / 24.0) / PI * 6.0)
}

/// The Julian day number of the local day holding the `k`-th new moon.
fn new_moon_day(k: i64, offset_hours: f64) -> i64 {
    int(new_moon(k) + 0.5 + offset_hours / 24.0)
}

/// The day (Julian day number) on which lunar month 11 — the month of the winter solstice —
/// begins, in the lunar year ending in solar year `year`.
pub fn lunar_month_11(year: i32, offset_hours: f64) -> i64 {
    let last_day = NaiveDate::from_ymd_opt(year, 12, 31).expect("31 December exists");
    let off = jd_from_date(last_day) - 2_415_021;
    let k = int(off as f64 / 29.530_588_853);
    let nm = new_moon_day(k, offset_hours);
    // The Sun's longitude at that local midnight: past 270° means the new moon fell after the
    // solstice, so month 11 began at the previous one.
    if sun_sector(nm, offset_hours) >= 9 {
        new_moon_day(k - 1, offset_hours)
    } else {
        nm
    }
}

/// In a year with a leap month, how many months after month 11 (starting at day `a11`) the
/// leap month comes: the first month during which the Sun stays in one sector (no major
/// solar term).
pub fn leap_month_offset(a11: i64, offset_hours: f64) -> i64 {
    let k = int((a11 as f64 - 2_415_021.076_998_695) / 29.530_588_853 + 0.5);
    let mut i = 1; // the month after month 11
    let mut arc = sun_sector(new_moon_day(k + i, offset_hours), offset_hours);
    loop {
        let last = arc;
        i += 1;
        arc = sun_sector(new_moon_day(k + i, offset_hours), offset_hours);
        if arc == last || i >= 14 {
            break;
        }
    }
    i - 1
}

/// The lunar date of a solar date, for a time zone `offset_hours` east of UTC.
pub fn solar_to_lunar(date: NaiveDate, offset_hours: f64) -> LunarDate {
    let yy = date.year();
    let day_number = jd_from_date(date);
    let k = int((day_number as f64 - 2_415_021.076_998_695) / 29.530_588_853);
    let mut month_start = new_moon_day(k + 1, offset_hours);
    if month_start > day_number {
        month_start = new_moon_day(k, offset_hours);
    }
    let mut a11 = lunar_month_11(yy, offset_hours);
    let mut b11 = a11;
    let mut lunar_year;
    if a11 >= month_start {
        lunar_year = yy;
        a11 = lunar_month_11(yy - 1, offset_hours);
    } else {
        lunar_year = yy + 1;
        b11 = lunar_month_11(yy + 1, offset_hours);
    }
    let lunar_day = day_number - month_start + 1;
    let diff = (month_start - a11).div_euclid(29);
    let mut leap = false;
    let mut lunar_month = diff + 11;
    if b11 - a11 > 365 {
        let leap_month_diff = leap_month_offset(a11, offset_hours);
        if diff >= leap_month_diff {
            lunar_month = diff + 10;
            leap = diff == leap_month_diff;
        }
    }
    if lunar_month > 12 {
        lunar_month -= 12;
    }
    if lunar_month >= 11 && diff < 4 {
        lunar_year -= 1;
    }
    LunarDate {
        year: lunar_year,
        month: lunar_month as u32,
        day: lunar_day as u32,
        leap,
    }
}

/// The solar date of a lunar date, for a time zone `offset_hours` east of UTC; `None` when
/// the date asks for a leap month the year does not have.
pub fn lunar_to_solar(lunar: LunarDate, offset_hours: f64) -> Option<NaiveDate> {
    let (a11, b11) = if lunar.month < 11 {
        (
            lunar_month_11(lunar.year - 1, offset_hours),
            lunar_month_11(lunar.year, offset_hours),
        )
    } else {
        (
            lunar_month_11(lunar.year, offset_hours),
            lunar_month_11(lunar.year + 1, offset_hours),
        )
    };
    let mut off = i64::from(lunar.month) - 11;
    if off < 0 {
        off += 12;
    }
    if b11 - a11 > 365 {
        let leap_off = leap_month_offset(a11, offset_hours);
        let mut leap_month = leap_off - 2;
        if leap_month < 0 {
            leap_month += 12;
        }
        if lunar.leap && i64::from(lunar.month) != leap_month {
            return None;
        } else if lunar.leap || off >= leap_off {
            off += 1;
        }
    } else if lunar.leap {
        return None;
    }
    let k = int(0.5 + (a11 as f64 - 2_415_021.076_998_695) / 29.530_588_853);
    let month_start = new_moon_day(k + off, offset_hours);
    Some(jd_to_date(month_start + i64::from(lunar.day) - 1))
}

/// The first day of lunar year `year` (Tết Nguyên Đán), in solar year `year`.
pub fn tet(year: i32, offset_hours: f64) -> NaiveDate {
    lunar_to_solar(LunarDate::new(year, 1, 1), offset_hours).expect("month 1 is never a leap month")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn julian_day_numbers_round_trip() {
        // 1 January 2000 is JD 2 451 545 (its noon is the J2000.0 epoch).
        assert_eq!(jd_from_date(date("2000-01-01")), 2_451_545);
        for d in ["1800-01-01", "1900-03-01", "2024-02-29", "2199-12-31"] {
            assert_eq!(jd_to_date(jd_from_date(date(d))), date(d));
        }
    }

    /// First days of the lunar year in Vietnam (UTC+7), and where they are published.
    ///
    /// Every year 2020–2035 is in the list of lunar new years at dealbliss.com ("Chinese New
    /// Year Dates from 2022 to 2043", from 2020) and 2024–2035 in topmarks.co.uk's "When is
    /// Chinese New Year?" — China's dates, which Vietnam shares in all these years but one:
    /// Hồ Ngọc Đức's note on the calendar rules (quoted at kientruc2014.com, "What year is it
    /// in Vietnam?") gives the 21st century's three differing years as 2007 (17/02 in Vietnam,
    /// 18/02 in China), 2030 (02/02 and 03/02) and 2053 (18/02 and 19/02); scienceinfo.net
    /// ("Why is the Vietnamese and Chinese New Year a day different?") and viet-jo.com (6 July
    /// 2006) say the same of 2007 and 2030. So Tết 2030 is 2 February, not 3 February. The
    /// government's break announcements agree where we have them: 2020 "23/1 (29 tháng Chạp) to
    /// 29/1 (mùng 5)" (socongthuong.daklak.gov.vn), 2024 "Tết is 10 February" (vietnamnet.vn),
    /// 2025 "25 January, the 26th day of the last month" (en.sggp.org.vn), 2026 "14/2, 27
    /// tháng Chạp, to 22/2, mùng 6" (congan.com.vn).
    const TET: [(i32, &str); 16] = [
        (2020, "2020-01-25"),
        (2021, "2021-02-12"),
        (2022, "2022-02-01"),
        (2023, "2023-01-22"),
        (2024, "2024-02-10"),
        (2025, "2025-01-29"),
        (2026, "2026-02-17"),
        (2027, "2027-02-06"),
        (2028, "2028-01-26"),
        (2029, "2029-02-13"),
        (2030, "2030-02-02"),
        (2031, "2031-01-23"),
        (2032, "2032-02-11"),
        (2033, "2033-01-31"),
        (2034, "2034-02-19"),
        (2035, "2035-02-08"),
    ];

    #[test]
    fn tet_2020_to_2035_falls_on_the_published_dates() {
        for (year, expected) in TET {
            assert_eq!(
                tet(year, VIETNAM_UTC_OFFSET_HOURS),
                date(expected),
                "Tết {year}"
            );
            let lunar = solar_to_lunar(date(expected), VIETNAM_UTC_OFFSET_HOURS);
            assert_eq!(lunar, LunarDate::new(year, 1, 1), "{expected}");
        }
    }

    #[test]
    fn the_time_zone_decides_tet_in_2007_and_2030() {
        // The same new moon, either side of local midnight.
        assert_eq!(tet(2007, VIETNAM_UTC_OFFSET_HOURS), date("2007-02-17"));
        assert_eq!(tet(2007, 8.0), date("2007-02-18"));
        assert_eq!(tet(2030, VIETNAM_UTC_OFFSET_HOURS), date("2030-02-02"));
        assert_eq!(tet(2030, 8.0), date("2030-02-03"));
    }

    #[test]
    fn known_lunar_dates() {
        let vn = VIETNAM_UTC_OFFSET_HOURS;
        // Giỗ Tổ Hùng Vương, 10/3: 18 April 2024, 29 April 2023, 2 April 2020 (the government's
        // holiday announcements).
        for (year, expected) in [
            (2024, "2024-04-18"),
            (2023, "2023-04-29"),
            (2020, "2020-04-02"),
        ] {
            assert_eq!(
                lunar_to_solar(LunarDate::new(year, 3, 10), vn),
                Some(date(expected))
            );
            assert_eq!(
                solar_to_lunar(date(expected), vn),
                LunarDate::new(year, 3, 10)
            );
        }
        // The day before Tết 2024 is the 30th of month 12 of lunar year 2023; 1 January 2024
        // is still in lunar year 2023 (20/11).
        assert_eq!(
            solar_to_lunar(date("2024-02-09"), vn),
            LunarDate::new(2023, 12, 30)
        );
        assert_eq!(
            solar_to_lunar(date("2024-01-01"), vn),
            LunarDate::new(2023, 11, 20)
        );
    }

    #[test]
    fn leap_months() {
        let vn = VIETNAM_UTC_OFFSET_HOURS;
        // Lunar 2023 had a leap second month (tháng 2 nhuận) from 22 March 2023, after the
        // ordinary second month from 20 February; lunar 2020 a leap fourth month from 23 May.
        assert_eq!(
            solar_to_lunar(date("2023-03-22"), vn),
            LunarDate {
                year: 2023,
                month: 2,
                day: 1,
                leap: true
            }
        );
        let leap_2_2023 = LunarDate {
            year: 2023,
            month: 2,
            day: 1,
            leap: true,
        };
        assert_eq!(lunar_to_solar(leap_2_2023, vn), Some(date("2023-03-22")));
        assert_eq!(
            lunar_to_solar(LunarDate::new(2023, 2, 1), vn),
            Some(date("2023-02-20"))
        );
        // 2024 has no leap month at all.
        let leap_2024 = LunarDate {
            year: 2024,
            month: 5,
            day: 1,
            leap: true,
        };
        assert_eq!(lunar_to_solar(leap_2024, vn), None);
        let leap_4_2020 = LunarDate {
            year: 2020,
            month: 4,
            day: 1,
            leap: true,
        };
        assert_eq!(lunar_to_solar(leap_4_2020, vn), Some(date("2020-05-23")));
    }

    #[test]
    fn every_day_converts_back_to_itself() {
        // A lunar date is a bijection with solar dates: ten years, day by day.
        let vn = VIETNAM_UTC_OFFSET_HOURS;
        let mut day = date("2020-01-01");
        while day <= date("2030-12-31") {
            let lunar = solar_to_lunar(day, vn);
            assert_eq!(lunar_to_solar(lunar, vn), Some(day), "{day} → {lunar:?}");
            day = day.succ_opt().unwrap();
        }
    }
}
