//! Per-rule rate limit (governor). Live it runs on the wall clock; replay drives it with the
//! events' own timestamps, so a replayed storm throttles exactly as it did live and fixture
//! results do not depend on how fast the machine replays.
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// One limiter per rule, indexed by rule: no hashing per match (a keyed limiter hashes the key
/// into a map on every check, and with rules that match every event that showed up in profiles).
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub struct PerRule<C: Clock> {
    quota: Quota,
    clock: C,
    limiters: Vec<Direct<C>>,
}

impl<C: Clock + Clone> PerRule<C> {
    fn new(quota: Quota, clock: C) -> Self {
        PerRule {
            quota,
            clock,
            limiters: Vec::new(),
        }
    }

    fn allow(&mut self, idx: usize) -> bool {
        while self.limiters.len() <= idx {
            self.limiters.push(RateLimiter::direct_with_clock(
                self.quota,
                self.clock.clone(),
            ));
        }
        self.limiters[idx].check().is_ok()
    }
}

pub enum Throttle {
    Off,
    Wall(PerRule<DefaultClock>),
    EventTime {
        limiters: PerRule<FakeRelativeClock>,
        clock: FakeRelativeClock,
        origin_ns: Option<i64>,
        now_ns: i64,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThrottleError {
    #[error("--throttle-rate {0}: must be a number ≥ 0 (0 disables throttling)")]
    Rate(f64),
    #[error("--throttle-burst 0: must be at least 1")]
    Burst,
}

fn quota(rate: f64, burst: u32) -> Result<Option<Quota>, ThrottleError> {
    if !rate.is_finite() || rate < 0.0 {
        return Err(ThrottleError::Rate(rate));
    }
    let burst = NonZeroU32::new(burst).ok_or(ThrottleError::Burst)?;
    if rate == 0.0 {
        return Ok(None);
    }
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
    Ok(Quota::with_period(period).map(|q| q.allow_burst(burst)))
}

impl Throttle {
    /// Checks a rate and burst without building a limiter (the wall clock calibrates its TSC
    /// for ~10 ms when first made, which a replay never needs).
    pub fn validate(rate: f64, burst: u32) -> Result<(), ThrottleError> {
        quota(rate, burst).map(|_| ())
    }

    pub fn wall(rate: f64, burst: u32) -> Result<Self, ThrottleError> {
        Ok(match quota(rate, burst)? {
            None => Throttle::Off,
            Some(q) => Throttle::Wall(PerRule::new(q, DefaultClock::default())),
        })
    }

    pub fn event_time(rate: f64, burst: u32) -> Result<Self, ThrottleError> {
        Ok(match quota(rate, burst)? {
            None => Throttle::Off,
            Some(q) => {
                // Clones of a FakeRelativeClock share one time, so advancing `clock` moves
                // every rule's limiter.
                let clock = FakeRelativeClock::default();
                Throttle::EventTime {
                    limiters: PerRule::new(q, clock.clone()),
                    clock,
                    origin_ns: None,
                    now_ns: 0,
                }
            }
        })
    }

    /// Event-time mode: move the clock to the event's time (never backwards).
    pub fn observe_time(&mut self, event_ns: Option<i64>) {
        if let (
            Throttle::EventTime {
                clock,
                origin_ns,
                now_ns,
                ..
            },
            Some(t),
        ) = (self, event_ns)
        {
            let origin = *origin_ns.get_or_insert(t);
            let rel = t.saturating_sub(origin);
            if rel > *now_ns {
                clock.advance(Duration::from_nanos((rel - *now_ns) as u64));
                *now_ns = rel;
            }
        }
    }

    /// true = the alert for rule `idx` may go out now.
    pub fn allow(&mut self, idx: usize) -> bool {
        match self {
            Throttle::Off => true,
            Throttle::Wall(l) => l.allow(idx),
            Throttle::EventTime { limiters, .. } => limiters.allow(idx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_in_event_time() {
        let mut t = Throttle::event_time(1.0, 3).unwrap();
        t.observe_time(Some(0));
        let allowed = (0..10).filter(|_| t.allow(0)).count();
        assert_eq!(allowed, 3, "burst of 3");
        assert!(t.allow(1), "other rules have their own budget");
        t.observe_time(Some(2_000_000_000));
        assert_eq!(
            (0..10).filter(|_| t.allow(0)).count(),
            2,
            "two more after 2 s at 1/s"
        );
        t.observe_time(Some(1_000_000_000)); // clock never goes back
        assert!(!t.allow(0));
    }

    #[test]
    fn zero_disables_and_bad_values_rejected() {
        let mut t = Throttle::wall(0.0, 5).unwrap();
        assert!((0..1000).all(|_| t.allow(0)));
        assert_eq!(
            Throttle::wall(-1.0, 5).err(),
            Some(ThrottleError::Rate(-1.0))
        );
        assert_eq!(Throttle::wall(1.0, 0).err(), Some(ThrottleError::Burst));
        assert!(Throttle::wall(f64::NAN, 1).is_err());
    }
}
