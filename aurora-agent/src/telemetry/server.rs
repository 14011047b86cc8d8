//! `--metrics-listen ADDR`: `/metrics` (Prometheus text), `/healthz` (the process answers) and
//! `/readyz` (200 once the sensors are attached and the rules loaded, 503 before), on axum.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;

use super::metrics::Metrics;

/// Readiness, flipped once by the command when it is ready.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bind `addr` now (so a bad address fails the start) and serve on the current runtime.
/// Returns the bound address (the chosen port for port 0).
pub async fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { ([(header::CONTENT_TYPE, TEXT_FORMAT)], m.render()) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let h = health.clone();
                async move {
                    if h.is_ready() {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        );
    tracing::info!("metrics on http://{addr}/metrics (/healthz, /readyz)");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server stopped: {e}");
        }
    });
    Ok((addr, task))
}
