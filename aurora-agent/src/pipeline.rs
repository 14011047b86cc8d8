//! The one-way path shared by every mode: source → enrich → handler (detection + sinks, or the
//! recorder). The consumer runs on its own thread so enrichment (/proc reads) and detection
//! never stall the async ring drains; it flushes outputs whenever its queue runs dry.
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

/// Consume raw records until every sender is gone. Returns the handler for the final summary.
pub fn consume<H: EventHandler>(
    mut rx: mpsc::Receiver<RawEvent>,
    mut enricher: Enricher,
    mut handler: H,
) -> H {
    loop {
        let raw = match rx.try_recv() {
            Ok(raw) => raw,
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
