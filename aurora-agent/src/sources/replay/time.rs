//! UtcTime in either RFC 3339 or Sysmon's `YYYY-MM-DD HH:MM:SS.fff` (UTC).
use chrono::{DateTime, NaiveDateTime, Utc};

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
        assert!(parse_utc("").is_none());
    }
}
