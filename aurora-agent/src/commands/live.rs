//! Starting and stopping a live run, once for `aurora` and `aurora record`: telemetry, the
//! enricher seeded from /proc, the sensors and followed logs with their queue, the ready file,
//! and the stop in the reverse order.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::settings::Settings;
use crate::enrich::Enricher;
use crate::policy::PolicyHandle;
use crate::response::hold::HoldResolver;
use crate::sources::ebpf::{drain, EbpfConfig, Sensors};
use crate::sources::logs::{LogSources, LogSourcesConfig};
use crate::sources::RawEvent;
use crate::stats::Stats;
use crate::telemetry::ready::{LogSourceState, ReadyFile, ReadyState};
use crate::telemetry::Telemetry;

/// A live run: what `aurora` and `aurora record` both start and stop.
pub struct Live {
    session: LiveSession,
    telemetry: Telemetry,
    refresher: Option<JoinHandle<()>>,
    ready_file: Option<std::path::PathBuf>,
    ready: Option<ReadyFile>,
    stats: Arc<Stats>,
    enforcement: Vec<crate::policy::Enforcement>,
    isolated: Option<bool>,
}

impl Live {
    /// Serve telemetry (503 until ready), load the sensors, start the drains and the logs,
    /// seed an enricher from /proc. Returns the run, the enricher and the queue of events.
    pub async fn start(
        settings: &Settings,
        stats: Arc<Stats>,
    ) -> Result<(Live, Enricher, mpsc::Receiver<RawEvent>)> {
        let telemetry = Telemetry::start(settings.metrics_listen, stats.clone()).await?;
        let mut enricher = Enricher::new(&settings.enrich, stats.enrich.clone());
        enricher.name_containers(&settings.enrich.containers);
        let (session, rx) = LiveSession::start(
            &settings.ebpf,
            &settings.logs,
            settings.queue_size,
            &stats,
            &settings.enrich.policy,
        )
        .await?;
        let seeded = enricher.seed_from_proc();
        tracing::info!(processes = seeded, "sensors attached");
        let refresher = Some(session.spawn_refresher(stats.clone()));
        let live = Live {
            session,
            telemetry,
            refresher,
            ready_file: settings.ready_file.clone(),
            ready: None,
            stats,
            enforcement: Vec::new(),
            isolated: None,
        };
        Ok((live, enricher, rx))
    }

    /// Put the policies in the kernel and say how they are enforced (log, metrics, and the
    /// ready file written next).
    pub fn enforce(&mut self, policy: &PolicyHandle, stats: &Stats) -> Result<()> {
        // Isolation lives in the kernel, not in the agent: say whether it is in force (asked
        // before the policy applies, so `nft` is never held for hashing).
        self.isolated = crate::response::isolate::is_isolated().ok();
        if self.isolated == Some(true) {
            tracing::warn!("the host is isolated (aurora unisolate lifts it)");
        }
        let set = policy.get();
        {
            let mut sensors = self.session.sensors();
            sensors.apply_policy(&set)?;
            self.enforcement = sensors.enforcement().to_vec();
        }
        stats.response.set_entries(set.counts());
        if let Ok(mut e) = stats.response.enforcement.lock() {
            *e = self
                .enforcement
                .iter()
                .map(|e| (e.operation.clone(), e.mechanism.clone()))
                .collect();
        }
        if !set.is_empty() {
            for e in &self.enforcement {
                tracing::info!("{} deny: {} ({})", e.operation, e.mechanism, e.reason);
            }
            tracing::info!(
                "policy: {} entries from {} file(s)",
                set.entries.len(),
                set.files.len()
            );
        }
        Ok(())
    }

    /// Watch the files the active auditd rules name (their opens become PATH records): added
    /// to the policy in force, which keeps them across reloads.
    pub fn watch(
        &mut self,
        watches: &[crate::detect::audit_feed::Watch],
        policy: &PolicyHandle,
        stats: &Stats,
    ) -> Result<()> {
        if watches.is_empty() {
            return Ok(());
        }
        let specs: Vec<crate::policy::WatchSpec> = watches
            .iter()
            .map(|w| crate::policy::WatchSpec {
                pattern: w.pattern.clone(),
                reads: w.access == crate::detect::audit_feed::Access::Any,
            })
            .collect();
        let mut set = (*policy.get()).clone();
        set.add_watches(&specs);
        self.session.sensors().apply_policy(&set)?;
        stats.response.set_entries(set.counts());
        tracing::info!(
            "auditd rules: watching {} file(s) they name",
            set.entries.iter().filter(|e| e.list == "watch").count()
        );
        policy.set(set);
        Ok(())
    }

    /// SIGHUP: reload the policy files; a set that fails to load or resolve is refused and
    /// the running policy stays (counted in `aurora_policy_reloads_total`).
    pub fn spawn_policy_reloader(
        &self,
        files: Vec<std::path::PathBuf>,
        policy: PolicyHandle,
        stats: Arc<Stats>,
    ) -> Result<JoinHandle<()>> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let sensors = self.session.sensors.clone();
        Ok(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let (watches, forced) = {
                    let running = policy.get();
                    (running.watches.clone(), running.forced_mode)
                };
                let loaded = crate::policy::PolicySet::load(&files).map_err(anyhow::Error::from);
                let applied = loaded.and_then(|mut set| {
                    set.add_watches(&watches);
                    if let Some(mode) = forced {
                        set.force_mode(mode);
                    }
                    sensors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .apply_policy(&set)?;
                    Ok(set)
                });
                match applied {
                    Ok(set) => {
                        stats.response.set_entries(set.counts());
                        tracing::info!("policy reloaded: {} entries", set.entries.len());
                        policy.set(set);
                        stats.response.reloads_ok.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        stats.response.reloads_failed.fetch_add(1, Relaxed);
                        tracing::error!("policy reload failed, keeping the running policy: {e:#}");
                    }
                }
            }
        }))
    }

    /// Everything is up: write the ready file and answer /readyz with 200. Returns what the
    /// ready file says (the fleet's heartbeats report it).
    pub fn ready(&mut self, rules_active: Option<usize>) -> Result<ReadyState> {
        let mut state = self.session.ready_state(rules_active);
        state.enforcement = self.enforcement.clone();
        state.isolated = self.isolated;
        state.metrics = self.telemetry.addr;
        self.ready = Some(ReadyFile::publish(self.ready_file.as_deref(), &state)?);
        self.telemetry.ready(&state);
        Ok(state)
    }

    /// The sensors, shared (the fleet's commands change the policy in force).
    pub fn shared_sensors(&self) -> Arc<Mutex<crate::sources::ebpf::Sensors>> {
        self.session.sensors.clone()
    }

    /// Detach, drain what the rings and logs still hold, close the queue (the pipeline then
    /// ends); the ready file goes when the run is dropped.
    pub async fn stop(mut self) -> Option<ReadyFile> {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        self.session.shutdown(&self.stats).await;
        self.ready.take()
    }
}

pub struct LiveSession {
    pub sensors: Arc<Mutex<Sensors>>,
    drain: JoinHandle<std::io::Result<()>>,
    logs: LogSources,
    log_sources: Vec<LogSourceState>,
    stop: watch::Sender<bool>,
}

impl LiveSession {
    /// Load and attach the sensors, start the ring drain task and the log sources.
    pub async fn start(
        cfg: &EbpfConfig,
        logs: &LogSourcesConfig,
        queue_size: usize,
        stats: &Arc<Stats>,
        policy: &PolicyHandle,
    ) -> Result<(LiveSession, mpsc::Receiver<RawEvent>)> {
        // Loading parses the kernel's BTF and runs the verifier: off the runtime thread, so the
        // metrics endpoint keeps answering (503) meanwhile.
        let cfg = cfg.clone();
        let mut sensors = tokio::task::spawn_blocking(move || {
            let s = Sensors::load(&cfg);
            crate::alloc::release_thread_memory();
            s
        })
        .await??;
        let (tx, rx) = mpsc::channel(queue_size.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let (holds, held) = std::sync::mpsc::channel();
        let drain = tokio::spawn(drain::run(
            sensors.take_rings()?,
            drain::Outlets {
                events: tx.clone(),
                holds,
            },
            stats.source.clone(),
            stop_rx,
        ));
        let sensors = Arc::new(Mutex::new(sensors));
        HoldResolver {
            policy: policy.clone(),
            sensors: sensors.clone(),
            events: tx.clone(),
            stats: stats.response.clone(),
        }
        .spawn(held)?;
        let log_sources = logs
            .describe()
            .into_iter()
            .map(|(source, path)| LogSourceState { source, path })
            .collect();
        let logs = LogSources::start(logs, &tx, stats)?;
        Ok((
            LiveSession {
                sensors,
                drain,
                logs,
                log_sources,
                stop,
            },
            rx,
        ))
    }

    /// The sensors, locked (a lock poisoned by a panic still holds usable sensors).
    pub fn sensors(&self) -> std::sync::MutexGuard<'_, Sensors> {
        self.sensors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the ready file says of the sensors: every program with its attach state and
    /// verifier cost, and the file sensor's mode.
    pub fn ready_state(&self, rules_active: Option<usize>) -> ReadyState {
        let s = self.sensors();
        let mut state = ReadyState::new(
            s.programs().to_vec(),
            s.file_sensor().clone(),
            s.loader().clone(),
            rules_active,
        );
        state.log_sources = self.log_sources.clone();
        state
    }

    /// Copy the kernel lost counters into stats and forward kernel logs.
    pub fn refresh(&self, stats: &Stats) {
        if let Ok(mut s) = self.sensors.lock() {
            copy_lost(&mut s, stats);
        }
    }

    /// Refresh the kernel-side counters every 500 ms (for metrics) until aborted.
    pub fn spawn_refresher(&self, stats: Arc<Stats>) -> JoinHandle<()> {
        let sensors = self.sensors.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if let Ok(mut s) = sensors.lock() {
                    copy_lost(&mut s, &stats);
                }
            }
        })
    }

    /// Detach the programs, drain what the rings still hold, and end the drain task (which
    /// closes the queue once the consumer has read everything).
    pub async fn shutdown(self, stats: &Stats) {
        if let Ok(mut s) = self.sensors.lock() {
            s.detach();
        }
        self.refresh(stats);
        let _ = self.stop.send(true);
        // Log readers block on the queue when it is full: stop them off the runtime thread.
        let logs = self.logs;
        let _ = tokio::task::spawn_blocking(move || logs.stop()).await;
        match tokio::time::timeout(Duration::from_secs(1), self.drain).await {
            Ok(Ok(Err(e))) => tracing::warn!("ring drain ended with error: {e}"),
            Ok(_) => {}
            Err(_) => tracing::warn!("ring drain did not stop within 1 s"),
        }
    }
}

/// Copy the kernel's per-ring lost counters into stats and forward kernel logs.
pub fn copy_lost(sensors: &mut Sensors, stats: &Stats) {
    for (slot, v) in stats.source.kernel_lost.iter().zip(sensors.lost()) {
        slot.store(v, std::sync::atomic::Ordering::Relaxed);
    }
    sensors.flush_kernel_logs();
}
