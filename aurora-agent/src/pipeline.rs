//! The one-way path shared by every mode: source → enrich → handler (detection + sinks, or the
//! recorder). The consumer runs on its own thread so enrichment (/proc reads) and detection
//! never stall the async ring drains; it flushes outputs whenever its queue runs dry, and
//! applies control (rule reload, logfile reopen) then and every `CONTROL_EVERY` events, so a
//! queue that never runs dry (a log source faster than detection) cannot hold a reload back.
use tokio::sync::mpsc;

use crate::enrich::Enricher;
use crate::event::Event;
use crate::sources::RawEvent;

/// What consumes enriched events.
pub trait EventHandler: Send {
    fn handle(&mut self, ev: Event);
    /// Called when no event is waiting: write out buffers.
    fn flush(&mut self) {}
    /// Called between events: apply pending control (rule reload, logfile reopen).
    fn poll_control(&mut self) {}
}

/// Events between two control checks while the queue stays busy (a check is a try_lock and
/// an atomic load: far below the cost of one event's detection).
pub const CONTROL_EVERY: u32 = 256;

/// Consume raw records until every sender is gone. Returns the handler for the final summary.
pub fn consume<H: EventHandler>(
    mut rx: mpsc::Receiver<RawEvent>,
    mut enricher: Enricher,
    mut handler: H,
) -> H {
    let mut since_control = 0u32;
    loop {
        let raw = match rx.try_recv() {
            Ok(raw) => {
                since_control += 1;
                if since_control >= CONTROL_EVERY {
                    since_control = 0;
                    handler.poll_control();
                }
                raw
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                handler.flush();
                handler.poll_control();
                crate::alloc::release_idle_memory();
                match rx.blocking_recv() {
                    Some(raw) => raw,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        if let Some(ev) = enricher.enrich(raw) {
            handler.handle(ev);
        }
    }
    handler.flush();
    handler
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::EnrichConfig;
    use crate::event::{Event, EventKind};

    /// Records, at each control check, how many events had been handled.
    #[derive(Default)]
    struct Probe {
        handled: u32,
        checks: Vec<u32>,
        flushes: Vec<u32>,
    }

    impl EventHandler for Probe {
        fn handle(&mut self, _ev: Event) {
            self.handled += 1;
        }
        fn flush(&mut self) {
            self.flushes.push(self.handled);
        }
        fn poll_control(&mut self) {
            self.checks.push(self.handled);
        }
    }

    #[test]
    fn control_is_applied_while_the_queue_never_runs_dry() {
        let (tx, rx) = mpsc::channel(2048);
        for _ in 0..1000 {
            tx.try_send(RawEvent::Log(Event::new(EventKind::SystemLog)))
                .unwrap();
        }
        drop(tx);
        let enricher = Enricher::new(
            &EnrichConfig {
                correlation_cache: 64,
                exit_grace: std::time::Duration::from_secs(1),
                watch_dirs: vec![],
            },
            Default::default(),
        );
        let p = consume(rx, enricher, Probe::default());
        assert_eq!(p.handled, 1000);
        assert!(
            p.flushes.iter().all(|&f| f == 1000),
            "the queue never ran dry: {:?}",
            p.flushes
        );
        assert_eq!(
            p.checks[..3],
            [255, 511, 767],
            "control checked every {CONTROL_EVERY} events"
        );
    }
}
