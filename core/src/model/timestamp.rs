//! RFC 3339 timestamps, UTC on the wire, without a clock or an allocator.

use core::fmt;

use crate::{Reason, ValidationError};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// Parsed from RFC 3339 (`2024-09-23T10:30:00Z`, fractional seconds and numeric
/// offsets accepted and converted to UTC) and written as RFC 3339 UTC with a
/// `Z` suffix, with milliseconds only when they are not zero. Years 0000–9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    unix_ms: i64,
}

/// Longest RFC 3339 text accepted, in bytes.
pub const MAX_TIMESTAMP_LEN: usize = 40;

const EXPECTED: &str = "an RFC 3339 date-time such as 2024-09-23T10:30:00Z";
/// First and last millisecond of years 0000..=9999.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Timestamp {
    /// The time `unix_ms` milliseconds after 1970-01-01T00:00:00Z; `None` outside
    /// years 0000–9999.
    pub const fn from_unix_millis(unix_ms: i64) -> Option<Self> {
        if unix_ms < MIN_MS || unix_ms > MAX_MS {
            None
        } else {
            Some(Self { unix_ms })
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.unix_ms
    }

    /// Parses RFC 3339. `field` names the field in the error.
    pub fn parse(s: &str, field: &'static str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new(field, Reason::Malformed { expected: EXPECTED });
        let b = s.as_bytes();
        if b.len() < 20 || b.len() > MAX_TIMESTAMP_LEN {
            return Err(bad());
        }
        let num = |range: core::ops::Range<usize>| -> Result<i64, ValidationError> {
            let digits = &b[range];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(digits
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
        };
        let sep_ok = b[4] == b'-'
            && b[7] == b'-'
            && matches!(b[10], b'T' | b't' | b' ')
            && b[13] == b':'
            && b[16] == b':';
        if !sep_ok {
            return Err(bad());
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let out_of_range = || {
            ValidationError::new(
                field,
                Reason::OutOfRange {
                    expected: "a real calendar date and a time of day",
                },
            )
        };
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            // A leap second (60) is accepted and folded into the next second.
            || second > 60
        {
            return Err(out_of_range());
        }
        let mut i = 19;
        let mut millis = 0i64;
        if b[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
            // Keep millisecond precision; further digits are dropped.
            for k in 0..3 {
                let d = if start + k < i {
                    i64::from(b[start + k] - b'0')
                } else {
                    0
                };
                millis = millis * 10 + d;
            }
        }
        let offset_minutes = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return Err(out_of_range());
                }
                let total = oh * 60 + om;
                if *sign == b'+' { total } else { -total }
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
        Self::from_unix_millis(secs * 1000 + millis).ok_or_else(out_of_range)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.unix_ms.div_euclid(1000);
        let millis = self.unix_ms.rem_euclid(1000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )?;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

impl core::str::FromStr for Timestamp {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, "timestamp")
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = heapless::String::<MAX_TIMESTAMP_LEN>::new();
        let _ = fmt::Write::write_fmt(&mut buf, format_args!("{self}"));
        s.serialize_str(&buf)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = super::text::WireText::<MAX_TIMESTAMP_LEN>::deserialize(d)?;
        let s = w.checked("timestamp").map_err(serde::de::Error::custom)?;
        Self::parse(s, "timestamp").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for days in (-800_000i64..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let a: Timestamp = "2024-09-23T10:30:00Z".parse().unwrap();
        assert_eq!(a.unix_millis(), 1_727_087_400_000);
        let b: Timestamp = "2024-09-23T12:30:00.250+02:00".parse().unwrap();
        assert_eq!(b.unix_millis(), 1_727_087_400_250);
        assert_eq!(b.to_string(), "2024-09-23T10:30:00.250Z");
        assert!("2024-02-30T00:00:00Z".parse::<Timestamp>().is_err());
        assert!("2024-09-23 10:30:00".parse::<Timestamp>().is_err());
    }
}
