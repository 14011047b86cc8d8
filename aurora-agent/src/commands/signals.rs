//! Signals: SIGINT/SIGTERM stop the agent (a second one exits at once); SIGHUP reloads.
//! Handlers are installed before any startup work, so a signal during startup is not lost
//! (and not ignored: background jobs of non-interactive shells start with SIGINT ignored).
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Shutdown {
    int: Signal,
    term: Signal,
}

impl Shutdown {
    pub fn install() -> std::io::Result<Self> {
        Ok(Shutdown {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first SIGINT or SIGTERM, and arms an immediate exit on the second.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        tracing::info!(
            "stopping: draining sensors and flushing outputs (signal again to exit now)"
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
            }
            tracing::warn!("second signal: exiting immediately");
            std::process::exit(130);
        });
    }
}
