//! Kernel timestamps (CLOCK_BOOTTIME ns) → wall-clock time, and process start ticks.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_clock_is_close_to_now() {
        let c = BootClock::new();
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).map(ns).unwrap() as u64;
        let diff = (c.wall(boot) - Utc::now()).num_milliseconds().abs();
        assert!(diff < 1000, "{diff} ms");
    }
}
