//! One tokio task drains every ring: it waits for a ring's readiness (AsyncFd) or the drain
//! tick, then decodes every item of every ring, in `DRAIN_ORDER`, and hands it to the pipeline
//! queue with `try_send`. The drain never waits on enrichment, detection or output: when the
//! queue is full the record is dropped and counted per ring.
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use super::decode;
use crate::sources::RawEvent;
use crate::stats::SourceStats;
pub use aurora_common::Ring;

/// How often every ring is drained even without a wakeup.
pub const DRAIN_TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// Read everything currently in the ring. Returns false when the queue is closed.
fn drain_ready(ring: Ring, rb: &mut RingBuf<MapData>, out: &Outlets, stats: &SourceStats) -> bool {
    let tx = &out.events;
    let i = ring.index();
    while let Some(item) = rb.next() {
        let ev = match decode::decode(ring, &item) {
            Ok(ev) => ev,
            Err(e) => {
                stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{e}");
                continue;
            }
        };
        drop(item);
        stats.received[i].fetch_add(1, Ordering::Relaxed);
        // A process stopped at exec waits for its hash check, not for the pipeline.
        let ev = match ev {
            RawEvent::Block(b) if b.action == aurora_common::BLOCK_ACTION_HELD => {
                let _ = out.holds.send(b);
                continue;
            }
            ev => ev,
        };
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = stats.queue_dropped[i].fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        ring = ?ring,
                        dropped = n + 1,
                        "pipeline queue full: dropping events (raise --queue-size, or see stats)"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        }
    }
    true
}

/// The order the rings are read in on every pass: a process's exec before anything else it did
/// (its file and network records would otherwise find no table entry and fall back to /proc or
/// its parent's image), its exit last (an exit read before its exec named the parent's image).
/// Records of one ring keep their order; across rings this order holds up to the few
/// microseconds a pass takes.
pub const DRAIN_ORDER: [Ring; Ring::COUNT] = [Ring::Exec, Ring::File, Ring::Net, Ring::Exit];

fn order_of(ring: Ring) -> usize {
    DRAIN_ORDER
        .iter()
        .position(|r| *r == ring)
        .unwrap_or(Ring::COUNT)
}

type RingFd = (Ring, AsyncFd<RingBuf<MapData>>);

/// Where decoded records go: the pipeline queue, and processes held at exec to the thread
/// that hashes their executables (`response::hold`).
pub struct Outlets {
    pub events: mpsc::Sender<RawEvent>,
    pub holds: std::sync::mpsc::Sender<crate::sources::BlockRaw>,
}

/// Read every ring, in `DRAIN_ORDER`. Returns false when the queue is closed.
fn drain_all(fds: &mut [RingFd], out: &Outlets, stats: &SourceStats) -> bool {
    fds.iter_mut()
        .all(|(ring, fd)| drain_ready(*ring, fd.get_mut(), out, stats))
}

/// Resolves when any ring signalled new records (a wakeup: a quarter of it is pending, see
/// `wakeup_flags` in the kernel programs).
/// Readiness is cleared before the pass that follows, so a wakeup during that pass is not lost.
fn any_readable(fds: &mut [RingFd]) -> impl Future<Output = std::io::Result<()>> + '_ {
    std::future::poll_fn(move |cx| {
        let mut ready = false;
        for (_, fd) in fds.iter_mut() {
            match fd.poll_read_ready_mut(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.clear_ready();
                    ready = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if ready {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
}

/// One task for every ring: a pass over all of them on each wakeup and each `DRAIN_TICK`, so
/// the agent wakes once per tick (not once per ring) and cross-ring order is kept.
pub async fn run(
    rings: Vec<(Ring, RingBuf<MapData>)>,
    out: Outlets,
    stats: Arc<SourceStats>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut fds = Vec::with_capacity(rings.len());
    for (ring, rb) in rings {
        // SAFETY: the RingBuf owns its fd for as long as the AsyncFd lives (it is moved in).
        fds.push((
            ring,
            unsafe { AsyncFd::register(rb) }.map_err(std::io::Error::from)?,
        ));
    }
    fds.sort_by_key(|(ring, _)| order_of(*ring));
    // Records submitted without a wakeup (see `wakeup_flags` in the kernel programs) are picked
    // up here: the bound on event latency when the rings are quiet.
    let mut tick = tokio::time::interval(DRAIN_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            ready = any_readable(&mut fds) => ready?,
            _ = stop.changed() => {
                // Sensors are detached before stop is signalled: empty what is buffered.
                drain_all(&mut fds, &out, &stats);
                return Ok(());
            }
        }
        if !drain_all(&mut fds, &out, &stats) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ring_is_drained_once_exec_first_exit_last() {
        let mut seen: Vec<Ring> = DRAIN_ORDER.to_vec();
        seen.sort_by_key(|r| r.index());
        seen.dedup();
        assert_eq!(seen, Ring::ALL.to_vec());
        assert_eq!(DRAIN_ORDER.first(), Some(&Ring::Exec));
        assert_eq!(DRAIN_ORDER.last(), Some(&Ring::Exit));
    }
}
