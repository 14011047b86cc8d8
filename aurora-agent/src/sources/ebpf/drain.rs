//! One tokio task per ring: wait for readiness through AsyncFd, decode every item and hand it to
//! the pipeline queue with `try_send`. The drain never waits on enrichment, detection or output:
//! when the queue is full the record is dropped and counted per ring.
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
fn drain_ready(
    ring: Ring,
    rb: &mut RingBuf<MapData>,
    tx: &mpsc::Sender<RawEvent>,
    stats: &SourceStats,
) -> bool {
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

pub async fn run(
    ring: Ring,
    rb: RingBuf<MapData>,
    tx: mpsc::Sender<RawEvent>,
    stats: Arc<SourceStats>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // SAFETY: the RingBuf owns its fd for as long as the AsyncFd lives (it is moved in).
    let mut fd = unsafe { AsyncFd::register(rb) }.map_err(std::io::Error::from)?;
    // Records submitted without a wakeup (see WAKEUP_BYTES in the kernel programs) are picked
    // up here: the bound on event latency when the rings are quiet.
    let mut tick = tokio::time::interval(DRAIN_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if !drain_ready(ring, fd.get_mut(), &tx, &stats) {
                    return Ok(());
                }
            }
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                if !drain_ready(ring, guard.get_inner_mut(), &tx, &stats) {
                    return Ok(());
                }
                guard.clear_ready();
            }
            _ = stop.changed() => {
                // Sensors are detached before stop is signalled: empty what is buffered.
                drain_ready(ring, fd.get_mut(), &tx, &stats);
                return Ok(());
            }
        }
    }
}
