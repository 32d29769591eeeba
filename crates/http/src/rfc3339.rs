//! Times as the API shows them: RFC 3339 in UTC to the second (`2026-12-05T21:51:07Z`),
//! written by hand into a fixed buffer. A full listing writes two per user; chrono's
//! general formatter (`to_rfc3339_opts(SecondsFormat::Secs, true)`, whose output this is
//! byte for byte) goes through `fmt::Write` and a `String` each time.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

/// A UTC time as RFC 3339 text to the second, fractions of a second dropped (as chrono
/// drops them). Years 0 to 9999 are written into 20 bytes on the stack; any other year,
/// which chrono writes with a sign and more digits and which no store holds unless written
/// there by hand, is left to chrono.
#[derive(Clone, PartialEq, Eq)]
pub struct Rfc3339(Text);

#[derive(Clone, PartialEq, Eq)]
enum Text {
    Fixed([u8; 20]),
    Other(String),
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar: the
/// inverse of days-from-civil (Howard Hinnant's `civil_from_days`), over eras of 400 years
/// (146 097 days) that start on 1 March, so that a leap day ends its year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from 1 March
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // In range by construction: `day` is 1..=31 and `month` 1..=12.
    (year, month as u32, day as u32)
}

/// Two decimal digits of `value` (below 100) at `at`.
fn two_digits(out: &mut [u8; 20], at: usize, value: u32) {
    out[at] = b'0' + (value / 10) as u8;
    out[at + 1] = b'0' + (value % 10) as u8;
}

impl Rfc3339 {
    /// `at` as RFC 3339 text.
    #[must_use]
    pub fn new(at: DateTime<Utc>) -> Self {
        let seconds = at.timestamp();
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        if !(0..=9999).contains(&year) {
            return Self(Text::Other(at.to_rfc3339_opts(SecondsFormat::Secs, true)));
        }
        let of_day = seconds.rem_euclid(86_400) as u32;
        // A leap second is the 59th second with a billion nanoseconds or more: shown as :60.
        let leap = u32::from(at.timestamp_subsec_nanos() >= 1_000_000_000);
        let year = year as u32;
        let mut out = *b"0000-00-00T00:00:00Z";
        two_digits(&mut out, 0, year / 100);
        two_digits(&mut out, 2, year % 100);
        two_digits(&mut out, 5, month);
        two_digits(&mut out, 8, day);
        two_digits(&mut out, 11, of_day / 3600);
        two_digits(&mut out, 14, of_day / 60 % 60);
        two_digits(&mut out, 17, of_day % 60 + leap);
        Self(Text::Fixed(out))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // ASCII digits and separators only: always UTF-8.
            Text::Fixed(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Text::Other(text) => text,
        }
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate, TimeZone};

    use super::*;

    fn chrono_says(at: DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn same_as_chrono(at: DateTime<Utc>) {
        let ours = Rfc3339::new(at);
        assert_eq!(ours.as_str(), chrono_says(at), "{at:?}");
        assert_eq!(ours.to_string(), chrono_says(at));
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn every_day_of_four_centuries_and_both_ends_of_each_day() {
        // 1600 to 2401: leap years by 4, not by 100 but by 400 (1600, 2000, 2400 are; 1700,
        // 1800, 1900, 2100 are not), every month's end and every year's boundary.
        let mut at = utc(1600, 1, 1, 0, 0, 0);
        let end = utc(2401, 1, 1, 0, 0, 0);
        while at < end {
            same_as_chrono(at);
            same_as_chrono(at + Duration::seconds(86_399));
            at += Duration::days(1);
        }
    }

    #[test]
    fn leap_days_and_year_boundaries() {
        for year in [1900, 1904, 1969, 1970, 1999, 2000, 2024, 2025, 2100, 2400] {
            for (m, d) in [(2, 28), (3, 1), (12, 31), (1, 1)] {
                same_as_chrono(utc(year, m, d, 23, 59, 59));
                same_as_chrono(utc(year, m, d, 0, 0, 0));
            }
            if let Some(leap_day) = NaiveDate::from_ymd_opt(year, 2, 29) {
                same_as_chrono(leap_day.and_hms_opt(12, 34, 56).expect("a time").and_utc());
            }
        }
        assert_eq!(
            Rfc3339::new(utc(2026, 12, 5, 21, 51, 7)).as_str(),
            "2026-12-05T21:51:07Z"
        );
        assert_eq!(
            Rfc3339::new(utc(2000, 2, 29, 0, 0, 0)).as_str(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Rfc3339::new(DateTime::UNIX_EPOCH).as_str(),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn fractions_are_dropped_and_leap_seconds_shown_as_60() {
        let at = utc(2026, 11, 30, 10, 15, 0);
        for nanos in [1, 499_999_999, 500_000_000, 999_999_999] {
            same_as_chrono(at + Duration::nanoseconds(nanos));
            same_as_chrono(at - Duration::nanoseconds(nanos));
        }
        same_as_chrono(DateTime::UNIX_EPOCH - Duration::nanoseconds(1));
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        same_as_chrono(leap);
        assert_eq!(Rfc3339::new(leap).as_str(), "2016-12-31T23:59:60Z");
    }

    #[test]
    fn far_dates_and_the_whole_range() {
        for at in [
            utc(0, 1, 1, 0, 0, 0),
            utc(1, 1, 1, 0, 0, 0),
            utc(9999, 12, 31, 23, 59, 59),
            utc(10_000, 1, 1, 0, 0, 0),
            utc(-1, 12, 31, 23, 59, 59),
            utc(-4713, 11, 24, 12, 0, 0),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ] {
            same_as_chrono(at);
        }
        assert_eq!(
            Rfc3339::new(utc(9999, 12, 31, 23, 59, 59)).as_str(),
            "9999-12-31T23:59:59Z"
        );
        // A spread of times across chrono's whole range (a fixed linear congruential
        // sequence, so a failure repeats).
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        let span = (max - min) as u64;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let seconds = min + (state % span) as i64;
            let at = DateTime::from_timestamp(seconds, (state >> 34) as u32 % 1_000_000_000)
                .expect("in range");
            same_as_chrono(at);
            // And as often within the years a store holds.
            let recent =
                DateTime::from_timestamp((state % 8_000_000_000) as i64, 0).expect("in range");
            same_as_chrono(recent);
        }
    }

    #[test]
    fn serializes_as_a_json_string() {
        let text =
            serde_json::to_string(&Rfc3339::new(utc(2026, 12, 5, 21, 51, 7))).expect("serializes");
        assert_eq!(text, "\"2026-12-05T21:51:07Z\"");
    }
}
