//! Record times: RFC 3339 in UTC with nanoseconds, always the same width
//! (`2026-05-04T10:11:12.123456789Z`), so that text order is time order.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A point in time, in nanoseconds since the Unix epoch (UTC), written as
/// RFC 3339 with nine fraction digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Now, by the wall clock.
    pub fn now() -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }

    /// A system time (clamped to the representable range, 1677..2262).
    pub fn from_system(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// This time plus `d` (saturating).
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    /// This time minus `d` (saturating).
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    /// The canonical text: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    pub fn to_rfc3339(self) -> String {
        let buf = self.canonical();
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The canonical text without separators that file names avoid:
    /// `YYYYMMDDTHHMMSS.nnnnnnnnnZ`.
    pub fn to_compact(self) -> String {
        self.to_rfc3339().replace(['-', ':'], "")
    }

    /// The canonical text `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` in a fixed
    /// buffer (every record carries two: formatting them is on the path of
    /// every append). Every i64 of nanoseconds lies in the years
    /// 1677-2262, so four year digits always suffice.
    fn canonical(self) -> [u8; 30] {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut b = *b"0000-00-00T00:00:00.000000000Z";
        let mut digits = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        digits(0, 4, dt.year() as u32);
        digits(5, 2, u32::from(u8::from(dt.month())));
        digits(8, 2, u32::from(dt.day()));
        digits(11, 2, u32::from(dt.hour()));
        digits(14, 2, u32::from(dt.minute()));
        digits(17, 2, u32::from(dt.second()));
        digits(20, 9, dt.nanosecond());
        b
    }

    /// Parses the canonical text fast; anything else (another offset,
    /// fewer fraction digits) through the general RFC 3339 parser.
    pub fn parse(s: &str) -> Option<Timestamp> {
        Timestamp::parse_canonical(s.as_bytes()).or_else(|| {
            let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
            i64::try_from(dt.unix_timestamp_nanos()).ok().map(Timestamp)
        })
    }

    /// Parses exactly `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    pub fn parse_canonical(b: &[u8]) -> Option<Timestamp> {
        if b.len() != 30
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[29] != b'Z'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            b[r].iter().try_fold(0i64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
            })
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, s, ns) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..29)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + s;
        secs.checked_mul(1_000_000_000)?
            .checked_add(ns)
            .map(Timestamp)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.canonical();
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let buf = self.canonical();
        s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 UTC time with nine fraction digits")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_canonical(v.as_bytes()).ok_or_else(|| {
                    E::custom(format!(
                        "`{v}` is not an RFC 3339 UTC time written YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "RFC 3339 time in UTC with nanoseconds, always 30 characters: YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ.",
            "type": "string",
            "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z$"
        })
    }
}

#[cfg(test)]
mod tests;
