//! `aurora` (no subcommand): the live agent.
use std::time::Instant;

use anyhow::{Context as _, Result};

use super::live::Live;
use super::settings::Settings;
use crate::cli::{AgentArgs, CpuPolicy, RunArgs};
use crate::detect::DetectConfig;
use crate::fleet::agent::{FleetAgent, RuleValidator};
use crate::pipeline::builder::{close_sinks, Topology, TopologyConfig, SHUTDOWN_BUDGET_LIVE};

/// nice 10 and the idle I/O class, so the agent yields to the workload it watches.
fn lower_priority() -> Result<()> {
    // SAFETY: plain syscalls on the current process.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, 10) != 0 {
            return Err(std::io::Error::last_os_error()).context("setpriority(10)");
        }
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        if libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            IOPRIO_CLASS_IDLE << 13,
        ) != 0
        {
            return Err(std::io::Error::last_os_error()).context("ioprio_set(idle)");
        }
    }
    Ok(())
}

/// SCHED_BATCH for the calling thread, inherited by every thread started after it (runtime,
/// pipeline, rule loading). The agent's work is throughput, not latency: the kernel programs
/// capture synchronously and the rings absorb bursts, so a drain tick that waits for the
/// scheduler's next tick loses nothing, while a wakeup that preempted the workload cost it.
/// Exec-loop A/B on this 2-core VM (two runs of 10 and 16 alternating rounds): median slowdown
/// +2.4 % / +3.1 % normal, +1.2 % / +2.1 % batch (README, Performance).
pub(super) fn apply_cpu_policy(policy: CpuPolicy) -> Result<()> {
    if policy == CpuPolicy::Normal {
        return Ok(());
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on the calling thread with a valid parameter block.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        return Err(std::io::Error::last_os_error()).context("sched_setscheduler(SCHED_BATCH)");
    }
    Ok(())
}

/// How the fleet checks a rule bundle before swapping it in: as a reload would load it, alone
/// (all or nothing), with the agent's detection settings.
fn rule_validator(base: &DetectConfig) -> RuleValidator {
    let base = base.clone();
    std::sync::Arc::new(move |dir: &std::path::Path| {
        let cfg = DetectConfig {
            rule_dirs: vec![dir.to_path_buf()],
            optional_rule_dirs: vec![],
            ..base.clone()
        };
        let stats = std::sync::Arc::new(crate::stats::DetectStats::default());
        crate::detect::Detector::reload(&cfg, stats)
            .map(|d| d.rule_count())
            .map_err(|e| e.to_string())
    })
}

pub fn run(args: RunArgs) -> Result<()> {
    let mut settings = Settings::for_sensors(&args.global, &args.sensors)?;
    let outputs = args.output.layered(&settings.file)?;
    // The fleet's bundles are one more rules directory and one more policy path, each empty
    // until a bundle is accepted.
    let fleet = settings.file.layer(&args.fleet)?.build()?;
    let nats = outputs.nats.connect.resolve()?;
    if (fleet.rules || fleet.policy) && nats.is_none() {
        anyhow::bail!("--fleet-rules/--fleet-policy need --nats-url");
    }
    if fleet.rules || fleet.policy {
        crate::fleet::agent::prepare_dir(&fleet)?;
    }
    let mut response_args = settings.file.layer(&args.response)?;
    if fleet.policy {
        response_args
            .policy
            .push(fleet.current(crate::fleet::bundle::BundleKind::Policy));
    }
    let response = response_args.build()?;
    settings.enrich.policy = response.policy.clone();
    let file = &settings.file;
    let agent: AgentArgs = file.layer(&args.agent)?;
    let optional_rules = if fleet.rules {
        vec![fleet.current(crate::fleet::bundle::BundleKind::Rules)]
    } else {
        vec![]
    };
    let mut detect: DetectConfig = file
        .layer(&args.detect)?
        .build_with(false, optional_rules)?;
    detect.collected = Some(settings.collected_kinds());
    detect.compile_threads = 1;
    let detect_for_fleet = detect.clone();
    // Fail fast on the logsource mapping before touching the kernel (flags and rule
    // directories were validated by detect_config).
    crate::detect::mapping(&detect)?;
    if agent.low_prio {
        lower_priority()?;
    }
    // Before the runtime and the pipeline thread exist, so that they inherit it.
    apply_cpu_policy(settings.cpu_policy)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = super::signals::Shutdown::install()?;
        let (topology, stage) = Topology::build(
            TopologyConfig {
                detect,
                outputs: &outputs,
                trace: agent.trace,
                nats_drain: crate::nats::NatsConfig::DRAIN_LIVE,
                response: response.kill.clone(),
            },
            &tokio::runtime::Handle::current(),
        )?;
        let stats = topology.stats.clone();
        let (mut live, enricher, rx) = Live::start(&settings, stats.clone()).await?;
        // The policies are in the kernel before the agent says it is ready.
        live.enforce(&response.policy, &stats)?;
        // Rules load after the sensors (loading the sensors parses the kernel's BTF; not holding
        // both at once lowers the agent's peak memory), on the pipeline thread; the runtime
        // keeps serving /readyz meanwhile and events wait in the queue.
        let (consumer, loaded) = stage.spawn(enricher, rx)?;
        let loaded = loaded
            .await
            .map_err(|_| anyhow::anyhow!("pipeline thread ended while loading the rules"))??;
        live.watch(&loaded.audit_watches, &response.policy, &stats)?;
        let ready = live.ready(Some(loaded.rule_count))?;
        tracing::info!("watching");
        let fleet_task = match nats {
            Some(connect) => Some(
                FleetAgent {
                    cfg: fleet,
                    connect,
                    stats: stats.clone(),
                    ready,
                    policy: response.policy.clone(),
                    sensors: live.shared_sensors(),
                    allows: super::respond::collector_allows(&outputs),
                    validate_rules: rule_validator(&detect_for_fleet),
                }
                .spawn()
                .await?,
            ),
            None => None,
        };

        let reloader = topology.spawn_reloader()?;
        let policy_reloader = live.spawn_policy_reloader(
            response.policy_files.clone(),
            response.policy.clone(),
            stats.clone(),
        )?;
        let reporter = crate::telemetry::spawn_reporter(
            stats.clone(),
            agent
                .stats_interval
                .unwrap_or(crate::telemetry::DEFAULT_STATS_INTERVAL_SECS),
        );

        shutdown.wait().await;
        let started = Instant::now();
        reporter.abort();
        reloader.abort();
        if let Some(t) = fleet_task {
            t.abort();
        }
        policy_reloader.abort();
        let _ready = live.stop().await;
        let mut handler = tokio::task::spawn_blocking(move || consumer.join())
            .await?
            .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?
            .context("pipeline thread ended without its handler")?;
        close_sinks(
            &mut handler.sinks,
            SHUTDOWN_BUDGET_LIVE.saturating_sub(started.elapsed()),
        )
        .await;
        tracing::info!("final: {}", stats.line(Default::default(), 0.0));
        for l in stats.throttle_lines() {
            tracing::info!("final: {l}");
        }
        Ok(())
    })
}
