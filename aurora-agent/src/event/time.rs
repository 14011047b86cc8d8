//! UtcTime in either RFC 3339 or Sysmon's `YYYY-MM-DD HH:MM:SS.fff` (UTC).
use chrono::{DateTime, NaiveDateTime, Utc};

/// Nanoseconds since the epoch. The per-event path of replay throttling: the two forms we
/// write (`YYYY-MM-DD HH:MM:SS.fff` and `YYYY-MM-DDTHH:MM:SS.fffZ`) are read by hand,
/// anything else (offsets, odd widths) through chrono.
pub fn parse_utc_ns(s: &str) -> Option<i64> {
    fast_utc_ns(s.as_bytes()).or_else(|| parse_utc(s)?.timestamp_nanos_opt())
}

fn fast_utc_ns(b: &[u8]) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut frac_ns = 0i64;
    if let Some((&b'.', digits)) = rest.split_first() {
        let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        frac_ns = num(20..20 + n)? * 10i64.pow(9 - n as u32);
        rest = &digits[n..];
    }
    if !(rest.is_empty() || rest == b"Z") {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), then seconds.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

pub fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats() {
        let a = parse_utc("2024-05-01 12:34:56.789").unwrap();
        let b = parse_utc("2024-05-01T12:34:56.789Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            parse_utc("2024-05-01 12:34:56").unwrap().timestamp(),
            b.timestamp()
        );
        assert!(parse_utc("yesterday").is_none());
        for t in [
            "2024-05-01 12:34:56.789",
            "2024-05-01T12:34:56.789Z",
            "1999-12-31 23:59:59",
            "2024-02-29T00:00:00.000000001Z",
            "2024-05-01T14:34:56.789+02:00",
            "1970-01-01 00:00:00.5",
        ] {
            assert_eq!(
                parse_utc_ns(t),
                parse_utc(t).and_then(|d| d.timestamp_nanos_opt()),
                "{t}"
            );
        }
        assert_eq!(parse_utc_ns("2024-13-01 00:00:00"), None);
        assert_eq!(parse_utc_ns("2024-05-01 12:34:56.x"), None);
        assert!(parse_utc("").is_none());
    }
}
