//! Command line + config file → validated settings for each stage. Validation fails fast with
//! a message that says what is wrong and what would be right.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::cli::{DetectArgs, GlobalArgs, NatsArgs, OutputArgs, SensorArgs};
use crate::config::{self, ConfigFile};
use crate::detect::rules::AlertLevel;
use crate::detect::DetectConfig;
use crate::enrich::EnrichConfig;
use crate::event::EventKind;
use crate::sinks::file::{FileFormat, FileSink};
use crate::sinks::nats::{NatsConfig, NatsSink};
use crate::sinks::network::{tls_config, NetworkSink, Transport};
use crate::sinks::stdout::StdoutSink;
use crate::sinks::syslog::format::{self as syslog_format, Formatter, Payload, Rfc};
use crate::sinks::syslog::Framing;
use crate::sinks::SinkSet;
use crate::sources::ebpf::{ringsize, EbpfConfig, FileSensorMode};
use crate::sources::logs::{LogSourcesConfig, DEFAULT_STATE_DIR};

pub const DEFAULT_RING: &str = "1M";
pub const DEFAULT_QUEUE: usize = 65536;
pub const DEFAULT_CORRELATION_CACHE: usize = 16384;

pub struct Settings {
    pub file: ConfigFile,
    pub ebpf: EbpfConfig,
    pub enrich: EnrichConfig,
    pub queue_size: usize,
    pub logs: LogSourcesConfig,
    pub ready_file: Option<PathBuf>,
    pub metrics_listen: Option<std::net::SocketAddr>,
}

pub fn load_file(global: &GlobalArgs) -> Result<ConfigFile> {
    match &global.config {
        Some(p) => Ok(config::load(p)?),
        None => Ok(ConfigFile::default()),
    }
}

impl Settings {
    /// The event kinds this live run collects: the eBPF sensors' and the followed logs'.
    pub fn collected_kinds(&self) -> Vec<EventKind> {
        let mut k = vec![
            EventKind::ProcessCreation,
            EventKind::NetworkConnection,
            EventKind::ProcessTermination,
        ];
        if self.ebpf.file_sensor != FileSensorMode::Off {
            k.push(EventKind::FileEvent);
        }
        if self.logs.audit_log.is_some() {
            k.push(EventKind::Audit);
        }
        if !self.logs.system_logs.is_empty() {
            k.push(EventKind::SystemLog);
        }
        k
    }

    pub fn for_sensors(global: &GlobalArgs, s: &SensorArgs) -> Result<Settings> {
        let file = load_file(global)?;
        let ring = s.ringbuf_size.clone().or_else(|| file.ringbuf_size.clone());
        let ring_bytes = ringsize::parse(ring.as_deref().unwrap_or(DEFAULT_RING))
            .with_context(|| "--ringbuf-size")?;
        let watch_dirs: Vec<PathBuf> = if s.watch_dir.is_empty() {
            file.watch_dir.clone().unwrap_or_default()
        } else {
            s.watch_dir.clone()
        };
        for d in &watch_dirs {
            if !d.is_absolute() {
                bail!("--watch-dir {}: must be an absolute path", d.display());
            }
            if d.as_os_str().len() > aurora_common::PREFIX_LEN {
                bail!(
                    "--watch-dir {}: longer than {} bytes",
                    d.display(),
                    aurora_common::PREFIX_LEN
                );
            }
        }
        let queue_size = s.queue_size.or(file.queue_size).unwrap_or(DEFAULT_QUEUE);
        if queue_size == 0 {
            bail!("--queue-size 0: must be at least 1");
        }
        let cache = s
            .correlation_cache
            .or(file.correlation_cache)
            .unwrap_or(DEFAULT_CORRELATION_CACHE);
        if cache < 16 {
            bail!("--correlation-cache {cache}: must be at least 16");
        }
        let verbose = global.verbose.max(file.verbose.unwrap_or(0));
        let file_sensor = match s.file_sensor.as_deref().or(file.file_sensor.as_deref()) {
            None => FileSensorMode::default(),
            Some(m) => FileSensorMode::parse(m).with_context(|| {
                format!("--file-sensor {m}: expected auto, vfs, tracepoint or off")
            })?,
        };
        let system_logs = if s.system_log.is_empty() {
            file.system_log.clone().unwrap_or_default()
        } else {
            s.system_log.clone()
        };
        let logs = LogSourcesConfig::resolve(
            s.audit_log.as_deref().or(file.audit_log.as_deref()),
            &system_logs,
            Some(
                s.state_dir
                    .clone()
                    .or_else(|| file.state_dir.clone())
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            ),
        )?;
        Ok(Settings {
            logs,
            ebpf: EbpfConfig {
                ring_bytes,
                watch_dirs: watch_dirs.clone(),
                kernel_log_level: if verbose >= 2 {
                    5
                } else if verbose == 1 {
                    4
                } else {
                    0
                },
                file_sensor,
            },
            enrich: EnrichConfig {
                correlation_cache: cache,
                exit_grace: Duration::from_secs(5),
                watch_dirs,
            },
            queue_size,
            ready_file: s.ready_file.clone().or_else(|| file.ready_file.clone()),
            metrics_listen: s.metrics_listen.or(file.metrics_listen),
            file,
        })
    }
}

/// Detection settings from flags over the config file.
pub fn detect_config(
    d: &DetectArgs,
    file: &ConfigFile,
    event_time_throttle: bool,
) -> Result<DetectConfig> {
    let rule_dirs = if d.rules.is_empty() {
        file.rules.clone().unwrap_or_default()
    } else {
        d.rules.clone()
    };
    if rule_dirs.is_empty() {
        bail!("no rules: give --rules DIR (repeatable), e.g. --rules rules");
    }
    for dir in &rule_dirs {
        // Fail fast with the directory named (the loader re-checks each file).
        crate::detect::rules::rule_files(dir)?;
    }
    let min_level = match d.min_level.clone().or_else(|| file.min_level.clone()) {
        None => AlertLevel::Informational,
        Some(s) => AlertLevel::parse(&s).with_context(|| {
            format!("--min-level {s}: expected informational, low, medium, high or critical")
        })?,
    };
    let throttle_rate = d.throttle_rate.or(file.throttle_rate).unwrap_or(1.0);
    let throttle_burst = d.throttle_burst.or(file.throttle_burst).unwrap_or(5);
    // Validate now so a bad value is reported before sensors load.
    crate::detect::throttle::Throttle::wall(throttle_rate, throttle_burst)?;
    Ok(DetectConfig {
        rule_dirs,
        logsource_map: d
            .logsource_map
            .clone()
            .or_else(|| file.logsource_map.clone()),
        min_level,
        throttle_rate,
        throttle_burst,
        process_exclude: if d.process_exclude.is_empty() {
            file.process_exclude.clone().unwrap_or_default()
        } else {
            d.process_exclude.clone()
        },
        event_time_throttle,
        collected: None,
    })
}

fn payload(flag: &str, v: Option<String>, default: Payload) -> Result<Payload> {
    match v.as_deref() {
        None => Ok(default),
        Some("json") => Ok(Payload::Json),
        Some("syslog") => Ok(Payload::Text),
        Some(o) => bail!("{flag} {o}: expected json or syslog"),
    }
}

/// How long a stopping agent keeps delivering to NATS (its shutdown budget is 1.5 s).
pub const NATS_DRAIN_LIVE: Duration = Duration::from_secs(1);
/// How long `replay` waits for NATS acknowledgements before leaving the rest in the spool.
pub const NATS_DRAIN_REPLAY: Duration = Duration::from_secs(4);

/// Build every sink the flags and config ask for. Network sink tasks run on `rt`.
pub fn build_sinks(
    o: &OutputArgs,
    file: &ConfigFile,
    rt: &tokio::runtime::Handle,
) -> Result<SinkSet> {
    build_sinks_draining(o, file, rt, NATS_DRAIN_LIVE)
}

/// `build_sinks`, with the NATS sink's drain time at stop.
pub fn build_sinks_draining(
    o: &OutputArgs,
    file: &ConfigFile,
    rt: &tokio::runtime::Handle,
    nats_drain: Duration,
) -> Result<SinkSet> {
    let rfc = match o.syslog_rfc.or(file.syslog_rfc).unwrap_or(5424) {
        5424 => Rfc::R5424,
        3164 => Rfc::R3164,
        n => bail!("--syslog-rfc {n}: expected 5424 or 3164"),
    };
    let fac_name = o
        .syslog_facility
        .clone()
        .or_else(|| file.syslog_facility.clone())
        .unwrap_or("user".into());
    let facility = syslog_format::facility(&fac_name).with_context(|| {
        format!("--syslog-facility {fac_name}: expected a name (user, daemon, auth, local0..local7) or 0-23")
    })?;
    let formatter = |p: Payload| Formatter {
        rfc,
        payload: p,
        facility,
        pid: std::process::id(),
    };
    let json = o.json || file.json.unwrap_or(false);
    let no_stdout = o.no_stdout || file.no_stdout.unwrap_or(false);
    let tcp_tls = o.tcp_tls || file.tcp_tls.unwrap_or(false);
    let queue = o.sink_queue.or(file.sink_queue).unwrap_or(10_000);
    if queue == 0 {
        bail!("--sink-queue 0: must be at least 1");
    }
    let mut sinks = SinkSet::default();
    if !no_stdout {
        sinks.push(Box::new(StdoutSink::new(json)));
    }
    if let Some(path) = o.logfile.clone().or_else(|| file.logfile.clone()) {
        let fmt = match payload(
            "--logfile-format",
            o.logfile_format
                .clone()
                .or_else(|| file.logfile_format.clone()),
            Payload::Json,
        )? {
            Payload::Json => FileFormat::Json,
            Payload::Text => FileFormat::Syslog(formatter(Payload::Text)),
        };
        sinks.push(Box::new(FileSink::new(&path, fmt)?));
    }
    if let Some(t) = o.udp_target.clone().or_else(|| file.udp_target.clone()) {
        let p = payload(
            "--udp-format",
            o.udp_format.clone().or_else(|| file.udp_format.clone()),
            Payload::Text,
        )?;
        let s = NetworkSink::start("udp", &t, Transport::Udp, formatter(p), queue, rt)
            .with_context(|| format!("--udp-target {t}"))?;
        sinks.push(Box::new(s));
    }
    let tls_ca = o.tls_ca.clone().or_else(|| file.tls_ca.clone());
    let tls_cert = o.tls_cert.clone().or_else(|| file.tls_cert.clone());
    let tls_key = o.tls_key.clone().or_else(|| file.tls_key.clone());
    match o.tcp_target.clone().or_else(|| file.tcp_target.clone()) {
        Some(t) => {
            let p = payload(
                "--tcp-format",
                o.tcp_format.clone().or_else(|| file.tcp_format.clone()),
                Payload::Text,
            )?;
            let framing = match o
                .tcp_framing
                .clone()
                .or_else(|| file.tcp_framing.clone())
                .as_deref()
            {
                None | Some("octet-counting") => Framing::OctetCounting,
                Some("newline") => Framing::Newline,
                Some(x) => bail!("--tcp-framing {x}: expected octet-counting or newline"),
            };
            let transport = if tcp_tls {
                let ca = tls_ca
                    .as_deref()
                    .context("--tcp-tls needs --tls-ca FILE (the CA that signed the collector)")?;
                Transport::Tls(
                    framing,
                    tls_config(ca, tls_cert.as_deref(), tls_key.as_deref())?,
                )
            } else {
                if tls_ca.is_some() || tls_cert.is_some() || tls_key.is_some() {
                    bail!("--tls-ca/--tls-cert/--tls-key given without --tcp-tls");
                }
                Transport::Tcp(framing)
            };
            let name = if tcp_tls { "tls" } else { "tcp" };
            let s = NetworkSink::start(name, &t, transport, formatter(p), queue, rt)
                .with_context(|| format!("--tcp-target {t}"))?;
            sinks.push(Box::new(s));
        }
        None if tcp_tls || tls_ca.is_some() => {
            bail!("--tcp-tls/--tls-ca given without --tcp-target")
        }
        None => {}
    }
    if let Some(mut cfg) = nats_config(&o.nats, file)? {
        cfg.drain = nats_drain;
        sinks.push(Box::new(NatsSink::start(cfg, rt)?));
    }
    if sinks.is_empty() {
        bail!("no output: --no-stdout without --logfile, --udp-target, --tcp-target or --nats-url would discard every alert");
    }
    Ok(sinks)
}

/// `512K`, `256M`, `1G` or bytes.
fn byte_size(flag: &str, s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .with_context(|| format!("{flag} {s}: expected a positive size such as 256M"))
}

/// The NATS sink's config from `--nats-*`/`--spool-*` over the config file; None without a URL.
pub fn nats_config(n: &NatsArgs, file: &ConfigFile) -> Result<Option<NatsConfig>> {
    let urls = if n.nats_url.is_empty() {
        file.nats_url.clone().unwrap_or_default()
    } else {
        n.nats_url.clone()
    };
    if urls.is_empty() {
        if n.nats_events || n.nats_creds.is_some() || n.nats_stream.is_some() {
            bail!("--nats-events/--nats-creds/--nats-stream given without --nats-url");
        }
        return Ok(None);
    }
    for u in &urls {
        u.parse::<async_nats::ServerAddr>()
            .map_err(|e| anyhow::anyhow!("--nats-url {u}: {e}"))?;
    }
    let max_bytes = match n
        .nats_stream_max_bytes
        .clone()
        .or_else(|| file.nats_stream_max_bytes.clone())
    {
        Some(s) => i64::try_from(byte_size("--nats-stream-max-bytes", &s)?)?,
        None => NatsConfig::DEFAULT_STREAM_MAX_BYTES,
    };
    let spool_max = match n
        .spool_max_bytes
        .clone()
        .or_else(|| file.spool_max_bytes.clone())
    {
        Some(s) => byte_size("--spool-max-bytes", &s)?,
        None => NatsConfig::DEFAULT_SPOOL_MAX_BYTES,
    };
    let max_age = match n.nats_stream_max_age.or(file.nats_stream_max_age) {
        Some(0) => bail!("--nats-stream-max-age 0: must be at least 1 hour"),
        Some(h) => Duration::from_secs(h * 3600),
        None => NatsConfig::DEFAULT_STREAM_MAX_AGE,
    };
    Ok(Some(NatsConfig {
        urls,
        credentials: n.nats_creds.clone().or_else(|| file.nats_creds.clone()),
        nkey: n.nats_nkey.clone().or_else(|| file.nats_nkey.clone()),
        tls_ca: n.nats_tls_ca.clone().or_else(|| file.nats_tls_ca.clone()),
        events: n.nats_events || file.nats_events.unwrap_or(false),
        stream: n
            .nats_stream
            .clone()
            .or_else(|| file.nats_stream.clone())
            .unwrap_or_else(|| NatsConfig::DEFAULT_STREAM.into()),
        create_stream: !(n.nats_no_create || file.nats_no_create.unwrap_or(false)),
        stream_max_bytes: max_bytes,
        stream_max_age: max_age,
        spool_dir: n
            .spool_dir
            .clone()
            .or_else(|| file.spool_dir.clone())
            .unwrap_or_else(|| NatsConfig::DEFAULT_SPOOL_DIR.into()),
        spool_max_bytes: spool_max,
        drain: NATS_DRAIN_LIVE,
    }))
}
