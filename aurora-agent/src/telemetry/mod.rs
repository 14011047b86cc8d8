//! State the agent publishes for tools and tests (never log text): the ready file, and the
//! Prometheus metrics with health endpoints.
pub mod metrics;
pub mod ready;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::stats::Stats;

/// Seconds between the agent's stats log lines unless `--stats-interval` says otherwise.
pub const DEFAULT_STATS_INTERVAL_SECS: u64 = 60;

/// What a live command publishes about itself: its flags and config-file keys.
#[derive(clap::Args, Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TelemetryArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics, with /healthz and /readyz (200 once
    /// the sensors are attached and the rules loaded). [default: off]
    /// Example: --metrics-listen 127.0.0.1:9464
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Write a JSON document here once the sensors are attached (and, for the agent, the
    /// rules loaded): pid, kernel, each program with its verifier instruction count. Removed
    /// at exit. For scripts and service managers that wait for readiness.
    /// Example: --ready-file /run/aurora/ready.json
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// The stats line (and one line per throttled rule) in the log every `secs` seconds (0:
/// never), for journald users.
pub fn spawn_reporter(stats: Arc<Stats>, secs: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if secs == 0 {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(secs));
        tick.tick().await;
        let mut last = Instant::now();
        let mut prev = stats.snapshot();
        loop {
            tick.tick().await;
            tracing::info!("stats: {}", stats.line(prev, last.elapsed().as_secs_f64()));
            for l in stats.throttle_lines() {
                tracing::info!("stats: {l}");
            }
            prev = stats.snapshot();
            last = Instant::now();
        }
    })
}

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
