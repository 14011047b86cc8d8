//! Kernel timestamps (CLOCK_BOOTTIME ns) → wall-clock UtcTime, and process start ticks.
use chrono::{DateTime, Utc};
use nix::time::{clock_gettime, ClockId};

#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// realtime − boottime, in ns, measured once at startup.
    offset_ns: i128,
    /// ns per clock tick (USER_HZ), the unit of /proc/PID/stat start times.
    ns_per_tick: u64,
}

fn ns(ts: nix::sys::time::TimeSpec) -> i128 {
    ts.tv_sec() as i128 * 1_000_000_000 + ts.tv_nsec() as i128
}

impl BootClock {
    pub fn new() -> Self {
        let real = clock_gettime(ClockId::CLOCK_REALTIME).map(ns).unwrap_or(0);
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).map(ns).unwrap_or(0);
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100);
        BootClock {
            offset_ns: real - boot,
            ns_per_tick: 1_000_000_000 / hz.max(1) as u64,
        }
    }

    pub fn wall(&self, boot_ns: u64) -> DateTime<Utc> {
        let t = boot_ns as i128 + self.offset_ns;
        DateTime::from_timestamp_nanos(t.clamp(0, i64::MAX as i128) as i64)
    }

    /// Start time in clock ticks, the precision /proc offers: the key shared by kernel records
    /// and the startup /proc scan.
    pub fn ticks(&self, start_boottime_ns: u64) -> u64 {
        start_boottime_ns / self.ns_per_tick
    }
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
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
            let t = DateTime::from_timestamp(secs, ns).unwrap();
            assert_eq!(f.format(t), utc_time(t), "{secs}.{ns}");
            assert_eq!(f.format(t), utc_time(t), "{secs}.{ns}, again");
        }
    }

    #[test]
    fn formats_like_sysmon() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(utc_time(t), "2023-11-14 22:13:20.123");
    }

    #[test]
    fn boot_clock_is_close_to_now() {
        let c = BootClock::new();
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).map(ns).unwrap() as u64;
        let diff = (c.wall(boot) - Utc::now()).num_milliseconds().abs();
        assert!(diff < 1000, "{diff} ms");
    }
}
