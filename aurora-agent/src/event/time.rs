//! UtcTime: read in either RFC 3339 or Sysmon's `YYYY-MM-DD HH:MM:SS.fff` (UTC), written in
//! Sysmon's form.
use chrono::{DateTime, NaiveDateTime, Utc};

/// Nanoseconds since the epoch. The per-event path of replay throttling: the two forms we
/// write (`YYYY-MM-DD HH:MM:SS.fff` and `YYYY-MM-DDTHH:MM:SS.fffZ`) are read by hand,
/// anything else (offsets, odd widths) through chrono.
pub fn parse_utc_ns(s: &str) -> Option<i64> {
    fast_utc_ns(s.as_bytes()).or_else(|| parse_utc(s)?.timestamp_nanos_opt())
}

fn fast_utc_ns(b: &[u8]) -> Option<i64> {
    minute_ns(b)?.checked_add(second_ns(b.get(17..)?)?)
}

/// `n` ASCII digits as a number.
fn digits(d: &[u8]) -> Option<i64> {
    d.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// The start of the minute `YYYY-MM-DD HH:MM:` (or `T` for the space) that `b` begins with, in
/// ns since the epoch.
fn minute_ns(b: &[u8]) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| digits(b.get(r)?);
    if b.len() < 17 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi) = (num(11..13)?, num(14..16)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
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
    (days * 86_400 + h * 3600 + mi * 60).checked_mul(1_000_000_000)
}

/// `SS[.fffffffff][Z]` (what follows the minute) in ns. Read byte by byte: this is the part
/// `UtcTimeCache` reads for every event.
fn second_ns(b: &[u8]) -> Option<i64> {
    let digit = |c: u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
    let sec = digit(*b.first()?)? * 10 + digit(*b.get(1)?)?;
    if sec > 60 {
        return None;
    }
    let mut ns = sec * 1_000_000_000;
    let mut rest = &b[2..];
    if let Some((&b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut scale = 100_000_000;
        for &c in &frac[..n] {
            ns += i64::from(c - b'0') * scale;
            scale /= 10;
        }
        rest = &frac[n..];
    }
    (rest.is_empty() || rest == b"Z").then_some(ns)
}

/// `parse_utc_ns` for a stream of events' times: consecutive events mostly share the date,
/// hour and minute, so when the first 17 bytes equal the last value's, only the seconds and
/// fraction are read (event-time throttling parses every matching event's UtcTime).
#[derive(Debug, Default)]
pub struct UtcTimeCache {
    minute: Option<([u8; 17], i64)>,
}

impl UtcTimeCache {
    pub fn ns(&mut self, s: &str) -> Option<i64> {
        let b = s.as_bytes();
        let Some(head) = b.get(..17).and_then(|h| <[u8; 17]>::try_from(h).ok()) else {
            return parse_utc_ns(s);
        };
        let minute = match self.minute {
            Some((m, m_ns)) if m == head => Some(m_ns),
            _ => {
                let m_ns = minute_ns(b);
                if let Some(m_ns) = m_ns {
                    self.minute = Some((head, m_ns));
                }
                m_ns
            }
        };
        // A new minute is read once, not again by the full parser; values the fast forms do
        // not cover (offsets, odd widths) still go through it.
        minute
            .and_then(|m_ns| m_ns.checked_add(second_ns(&b[17..])?))
            .or_else(|| parse_utc_ns(s))
    }
}

pub fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Sysmon's UtcTime format: `2024-05-01 12:34:56.789`. Written field by field: this runs for
/// every event, and `format()` re-parses its pattern each call.
pub fn utc_time(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write as _;
    let mut s = String::with_capacity(23);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis().min(999)
    );
    s
}

/// `utc_time` for a stream of events: consecutive events mostly fall in the same second, so
/// the text up to the second is formatted once per second and only the milliseconds per event
/// (the formatting machinery was ~3 % of the agent's time in an exec loop).
#[derive(Debug, Default)]
pub struct UtcTimeFormatter {
    /// The last second seen (Unix time) and `YYYY-MM-DD HH:MM:SS.` for it.
    second: Option<(i64, String)>,
}

impl UtcTimeFormatter {
    pub fn format(&mut self, t: DateTime<Utc>) -> String {
        let second = t.timestamp();
        let head = match &self.second {
            Some((s, head)) if *s == second => head,
            _ => {
                let full = utc_time(t);
                // Years 0..=9999 always give 23 bytes; anything else is formatted in full.
                if full.len() == 23 {
                    self.second = Some((second, full[..20].to_owned()));
                }
                return full;
            }
        };
        let ms = t.timestamp_subsec_millis().min(999);
        let mut s = String::with_capacity(23);
        s.push_str(head);
        for d in [ms / 100, ms / 10 % 10, ms % 10] {
            s.push(char::from(b'0' + d as u8));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_second_formats_like_utc_time() {
        let mut f = UtcTimeFormatter::default();
        // Across second, minute, day and year boundaries, repeated and going back in time.
        for (secs, ns) in [
            (1_700_000_000, 123_456_789),
            (1_700_000_000, 999_999_999),
            (1_700_000_000, 0),
            (1_700_000_001, 5_000_000),
            (1_704_067_199, 998_000_000),
            (1_704_067_200, 1_000_000),
            (1_700_000_000, 50_000_000),
            (0, 0),
        ] {
            let t = chrono::DateTime::from_timestamp(secs, ns).unwrap();
            assert_eq!(f.format(t), utc_time(t), "{secs}.{ns}");
            assert_eq!(f.format(t), utc_time(t), "{secs}.{ns}, again");
        }
    }

    #[test]
    fn formats_like_sysmon() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(utc_time(t), "2023-11-14 22:13:20.123");
    }

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

    /// The cache gives `parse_utc_ns`'s answer for every value, whichever value came before.
    #[test]
    fn the_minute_cache_agrees_with_parsing_each_value() {
        let values = [
            "2024-05-01 12:34:56.789",
            "2024-05-01 12:34:57",
            "2024-05-01 12:34:58.000000001",
            "2024-05-01 12:34:5x",
            "2024-05-01 12:34:61",
            "2024-05-01 12:34:59.5Z",
            "2024-05-01 12:34:59+02:00",
            "2024-05-01T12:34:56.789Z",
            "2024-05-01T12:34:56.789+02:00",
            "2024-05-01 12:35:00",
            "2024-05-01 12:35",
            "2024-5-1 1:2:3",
            "9999-12-31 23:59:59",
            "2024-02-30 00:00:00",
            "",
            "yesterday",
        ];
        let mut cache = UtcTimeCache::default();
        for _ in 0..2 {
            for a in values {
                for b in values {
                    assert_eq!(cache.ns(a), parse_utc_ns(a), "{a}");
                    assert_eq!(cache.ns(b), parse_utc_ns(b), "{b} after {a}");
                }
            }
        }
    }
}
