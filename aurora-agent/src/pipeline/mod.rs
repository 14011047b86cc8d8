//! The one-way path shared by every mode: source → enrich → handler (detection + sinks, or the
//! recorder). `Pipeline` is that path; `builder` puts it together the same way for the live
//! agent, `record`, `replay` and `consume`. Sources either push records straight in (a file
//! replay, which never waits) or through a queue drained by `consume` on its own thread (the
//! kernel rings, followed logs, stdin), so enrichment (/proc reads) and detection never stall
//! the async drains. Outputs are flushed whenever the input runs dry; control (rule reload,
//! logfile reopen) is applied then and every `CONTROL_EVERY` records, so an input that never
//! runs dry (an exec storm, a log faster than detection) cannot hold a reload back.
pub mod alerting;
pub mod builder;

use tokio::sync::mpsc;

use crate::enrich::Enricher;
use crate::event::Event;
use crate::sources::{Input, Next, RawEvent};

/// What consumes enriched events.
pub trait EventHandler: Send {
    fn handle(&mut self, ev: Event);
    /// Called when no event is waiting: write out buffers.
    fn flush(&mut self) {}
    /// Called between events: apply pending control (rule reload, logfile reopen).
    fn poll_control(&mut self) {}
}

/// Records the queue between the live sources and enrichment holds unless `--queue-size`
/// says otherwise.
pub const DEFAULT_QUEUE: usize = 65536;

/// The pipeline's flags and config-file keys.
#[derive(clap::Args, Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct QueueArgs {
    /// Events buffered between the ring drains and enrichment; overflow is counted.
    #[arg(long, value_name = "N")]
    pub queue_size: Option<usize>,
}

impl QueueArgs {
    /// The queue's capacity.
    pub fn build(&self) -> anyhow::Result<usize> {
        let n = self.queue_size.unwrap_or(DEFAULT_QUEUE);
        if n == 0 {
            anyhow::bail!("--queue-size 0: must be at least 1");
        }
        Ok(n)
    }
}

/// Records between two control checks while the input stays busy (a check is a try_lock and
/// an atomic load: far below the cost of one event's detection).
pub const CONTROL_EVERY: u32 = 256;

/// Enrichment joined to a handler.
pub struct Pipeline<H> {
    enricher: Enricher,
    handler: H,
    since_control: u32,
}

impl<H: EventHandler> Pipeline<H> {
    pub fn new(enricher: Enricher, handler: H) -> Self {
        Pipeline {
            enricher,
            handler,
            since_control: 0,
        }
    }

    /// One record through enrichment and the handler.
    pub fn push(&mut self, raw: RawEvent) {
        self.since_control += 1;
        if self.since_control >= CONTROL_EVERY {
            self.since_control = 0;
            self.handler.poll_control();
        }
        if let Some(ev) = self.enricher.enrich(raw) {
            self.handler.handle(ev);
        }
    }

    /// Apply pending control now (rule reload, logfile reopen).
    pub fn poll_control(&mut self) {
        self.since_control = 0;
        self.handler.poll_control();
    }

    /// Nothing is waiting: write out, apply control, give idle memory back.
    pub fn idle(&mut self) {
        self.handler.flush();
        self.poll_control();
        crate::alloc::release_idle_memory();
    }

    /// Write out what is buffered and hand the handler back for the final summary.
    pub fn finish(mut self) -> H {
        self.handler.flush();
        self.handler
    }
}

impl<H: EventHandler> Pipeline<H> {
    /// Drive the pipeline from `input` until it ends: flushing whenever it runs dry, applying
    /// control between records, and flushing at the end.
    pub fn run(&mut self, input: &mut impl Input) {
        loop {
            let raw = match input.next() {
                Next::Record(raw) => raw,
                Next::End => break,
                Next::Empty => {
                    self.idle();
                    match input.wait() {
                        // A reload may have come in while waiting: it applies to this record.
                        Next::Record(raw) => {
                            self.poll_control();
                            raw
                        }
                        Next::Empty => continue,
                        Next::End => break,
                    }
                }
            };
            self.push(raw);
        }
        self.idle();
    }
}

/// Run a queue into the pipeline until every sender is gone. Returns the handler.
pub fn consume<H: EventHandler>(mut rx: mpsc::Receiver<RawEvent>, mut pipeline: Pipeline<H>) -> H {
    pipeline.run(&mut rx);
    pipeline.finish()
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
                ..Default::default()
            },
            Default::default(),
        );
        let p = consume(rx, Pipeline::new(enricher, Probe::default()));
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
