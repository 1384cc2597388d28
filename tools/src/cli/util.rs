//! Small parsers and helpers shared by the subcommands.

use crate::client::{Compression, Error, Result};

/// `key=value` (the value may contain `=`).
pub fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected key=value, got {s:?}"))?;
    if k.is_empty() {
        return Err(format!("empty key in {s:?}"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Produce acks: `all`/`-1`, `0`, `1`.
pub fn acks(s: &str) -> std::result::Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("acks must be 0, 1, -1 or all, got {s:?}")),
    }
}

/// A compression codec name.
pub fn compression(s: &str) -> std::result::Result<Compression, String> {
    match s.to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(format!("compression must be none, gzip, snappy, lz4 or zstd, got {s:?}")),
    }
}

pub use crate::client::partitioner::{murmur2, partition_for_key};

/// Milliseconds since the epoch from `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` (a space may
/// replace the `T`; no zone means UTC) or from a plain number of milliseconds.
pub fn datetime_ms(s: &str) -> Result<i64> {
    let bad = || Error::Invalid(format!("bad date-time {s:?}: expected e.g. 2024-05-01T12:00:00Z or milliseconds"));
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    // Digits only (no sign), sliced with `get`: the text is whatever the user typed.
    let num = |r: std::ops::Range<usize>| {
        s.get(r).filter(|x| x.bytes().all(|c| c.is_ascii_digit())).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let mut rest = s.get(19..).ok_or_else(bad)?;
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let mut padded = frac[..digits.min(3)].to_string();
        while padded.len() < 3 {
            padded.push('0');
        }
        millis = padded.parse::<i64>().map_err(|_| bad())?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "" | "Z" | "z" => 0,
        z if z.len() == 6 && z.is_ascii() && (z.starts_with('+') || z.starts_with('-')) && &z[3..4] == ":" => {
            let digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit()).then(|| x.parse::<i64>().ok()).flatten();
            let (Some(h), Some(m)) = (digits(&z[1..3]), digits(&z[4..6])) else { return Err(bad()) };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let sign = if z.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return Err(bad()),
    };
    // Days since 1970-01-01 in the proleptic Gregorian calendar (era-based day count).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(secs * 1000 + millis)
}

/// Bytes as text for tables and JSON (invalid UTF-8 replaced).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_epoch_millis() {
        assert_eq!(datetime_ms("1970-01-01T00:00:00Z").expect("epoch"), 0);
        assert_eq!(datetime_ms("2024-02-29T12:34:56.789Z").expect("leap"), 1_709_210_096_789);
        assert_eq!(datetime_ms("2024-02-29 14:34:56.7+02:00").expect("zone"), 1_709_210_096_700);
        assert_eq!(datetime_ms("1709210096789").expect("ms"), 1_709_210_096_789);
        assert_eq!(datetime_ms("2023-02-28T23:59:59Z").expect("not leap"), 1_677_628_799_000);
        for bad in [
            "2024-13-01T00:00:00Z",
            "yesterday",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00.",
            // Typed by a user: none of these may panic.
            "2024-05-01T12:00:00+0\u{e9}00",
            "2024-05-01T12:00:0\u{e9}",
            "2024-05-01T12:00:00\u{e9}",
            "2024-05-01T12:00:00.\u{e9}",
            "\u{e9}024-05-01T12:00:00Z",
            "2024-05-01T12:00:00+\u{e9}:00",
            "2024-05-01T12:00:00+1\u{e9}0",
            "2024-02-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+01:60",
            "+024-01-01T00:00:00Z",
            "2024-+1-01T00:00:00Z",
        ] {
            assert!(datetime_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn small_parsers() {
        assert_eq!(key_value("a=b=c").expect("kv"), ("a".to_string(), "b=c".to_string()));
        assert!(key_value("novalue").is_err() && key_value("=x").is_err());
        assert_eq!((acks("all"), acks("-1"), acks("0")), (Ok(-1), Ok(-1), Ok(0)));
        assert!(acks("2").is_err());
        assert_eq!(compression("ZSTD"), Ok(Compression::Zstd));
        assert!(compression("brotli").is_err());
    }
}
