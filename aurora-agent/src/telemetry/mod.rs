//! State the agent publishes for tools and tests (never log text): the ready file, and the
//! Prometheus metrics with health endpoints.
pub mod metrics;
pub mod ready;
pub mod server;

use std::sync::Arc;

use anyhow::Result;

use crate::stats::Stats;

/// What a live command publishes: metrics (and, with `--metrics-listen`, the HTTP endpoints)
/// and readiness.
pub struct Telemetry {
    pub metrics: Arc<metrics::Metrics>,
    pub health: Arc<server::Health>,
    /// The bound address of the metrics endpoint.
    pub addr: Option<std::net::SocketAddr>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Telemetry {
    /// Start serving (when an address is given) before the sensors load, so `/readyz` answers
    /// 503 until [`Telemetry::ready`].
    pub async fn start(listen: Option<std::net::SocketAddr>, stats: Arc<Stats>) -> Result<Self> {
        let metrics = Arc::new(metrics::Metrics::new(stats));
        let health = Arc::new(server::Health::default());
        let (addr, server) = match listen {
            Some(addr) => {
                let (bound, task) = server::spawn(addr, metrics.clone(), health.clone()).await?;
                (Some(bound), Some(task))
            }
            None => (None, None),
        };
        Ok(Telemetry {
            metrics,
            health,
            addr,
            server,
        })
    }

    /// Sensors attached (and rules loaded): fill the build info and turn `/readyz` to 200.
    pub fn ready(&self, state: &ready::ReadyState) {
        self.metrics.set_build_info(
            state.kernel.clone(),
            vec![("file".to_owned(), state.file_sensor.mode.to_owned())],
        );
        self.health.set_ready();
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(s) = &self.server {
            s.abort();
        }
    }
}
