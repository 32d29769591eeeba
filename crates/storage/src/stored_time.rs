//! [`StoredTime`]: a `TIMESTAMP` column read quickly on SQLite.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::Pg;
use diesel::sql_types::Timestamp;
use diesel::sqlite::{Sqlite, SqliteType};

use crate::Backend;

/// A `TIMESTAMP` column as read. SQLite keeps timestamps as text, and diesel parses each by
/// trying up to 18 `strftime` formats, each format string parsed again for every value: in
/// perf, a sixth of the CPU of listing 2 000 users and a few percent of a `/me`. The form
/// Gatehouse writes (`YYYY-MM-DD HH:MM:SS`, with up to nine fraction digits) is parsed here
/// by hand; anything else goes to diesel's parser as before. PostgreSQL's binary timestamps
/// are read by diesel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub(crate) struct StoredTime(pub(crate) NaiveDateTime);

impl FromSql<Timestamp, Sqlite> for StoredTime {
    fn from_sql(
        mut value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        if value.value_type() == Some(SqliteType::Text) {
            if let Some(at) = parse(value.read_text()) {
                return Ok(Self(at));
            }
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, Pg> for StoredTime {
    fn from_sql(
        value: <Pg as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, Backend> for StoredTime {
    fn from_sql(
        value: <Backend as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to 9 fraction digits; `None` for any
/// other text (which diesel's parser then reads) and for impossible dates and times.
fn parse(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let n = digits(20..b.len())?;
            n * 10u32.pow(u32::try_from(9 - fraction.len()).ok()?)
        }
        _ => return None,
    };
    date.and_hms_nano_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What diesel's own parser makes of `text`.
    fn diesels(text: &str) -> Option<NaiveDateTime> {
        ["%F %T%.f", "%F %T"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    }

    #[test]
    fn the_written_forms_parse_as_diesel_parses_them() {
        for text in [
            "2026-12-05 23:29:00.287664",
            "2026-12-05 23:29:00",
            "2024-02-29 00:00:00.5",
            "1999-12-31 23:59:59.999999999",
            "2000-01-01 00:00:00.000001",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.123",
        ] {
            assert_eq!(parse(text), diesels(text), "{text}");
            assert!(parse(text).is_some(), "{text}");
        }
        // What Gatehouse writes, read back.
        let now = chrono::Utc::now().naive_utc();
        let written = now.format("%F %T%.f").to_string();
        assert_eq!(parse(&written), Some(now));
    }

    #[test]
    fn other_text_is_left_to_diesel() {
        for text in [
            "",
            "2026-12-05",
            "2026-12-05T23:29:00",
            "2026-12-05 23:29:00Z",
            "2026-12-05 23:29:00+00:00",
            "2026-12-05 23:29:00.",
            "2026-12-05 23:29:00.1234567890",
            "2026-02-30 00:00:00",
            "2026-12-05 24:00:00",
            "2026-12-05 23:60:00",
            "2026-1x-05 23:29:00",
            "+026-12-05 23:29:00",
            "2026-12-05 23:29:00.12a",
            "2458000.5",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
