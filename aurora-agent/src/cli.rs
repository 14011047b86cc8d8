//! Command line. Flag names follow Nextron's aurora-linux where it has them. Each group of
//! flags is also the serde struct a config file (`-c`) fills under the same names (see
//! `config.rs`); values are `Option`s so what the command line leaves out can come from the
//! file; the component that owns a setting applies its default (shown in `--help`). The
//! sinks' flags live with the sinks (`sinks::OutputArgs`).
use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use serde::{Deserialize, Serialize};

pub use crate::detect::config::DetectArgs;
pub use crate::sinks::OutputArgs;
pub use crate::sources::replay::ReplayFormat;

pub use crate::VERSION;

#[derive(Parser, Debug)]
#[command(
    name = "aurora",
    version = VERSION,
    about = "Aurora: Linux host EDR agent — eBPF telemetry, Sigma detection, JSON/syslog alerts",
    long_about = "Aurora: Linux host EDR agent.\n\nWithout a subcommand it runs the live agent: \
                  eBPF sensors → enrichment → Sigma rules → alerts.\n\nExamples:\n  \
                  aurora --rules rules --json\n  \
                  aurora replay --rules rules tests/fixtures/attack_base64.jsonl\n  \
                  aurora record --duration 5 --output events.jsonl\n  \
                  aurora rules check rules ../sigma/rules/linux",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay JSONL events (files or - for stdin) through the detection path, without a kernel.
    Replay(Box<ReplayArgs>),
    /// Run the sensors and print every enriched event as one JSON object per line.
    Record(Box<RecordArgs>),
    /// Work with rule sets.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Central detection: events from a NATS JetStream stream through the same pipeline as
    /// replay, as a durable pull consumer (instances sharing --consumer split the work).
    Consume(Box<ConsumeArgs>),
    /// Work with response policies (`--policy`).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Isolate the host: drop all traffic but loopback, the --allow addresses and the
    /// collectors of the config file (-c). Lasts until `aurora unisolate`.
    Isolate(IsolateArgs),
    /// Lift the isolation `aurora isolate` put in place.
    Unisolate(UnisolateArgs),
    /// The fleet's web console: agents, live alerts with their process chains, and commands
    /// for operators who logged in. Example: aurora console --nats-url URL --users FILE
    Console(Box<crate::console::ConsoleArgs>),
    /// The fleet's control plane on NATS: status, commands, signed bundles, identities.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// The agent's sensor loader child (started by the agent with a socket as stdin).
    #[command(hide = true, name = "load-sensors")]
    LoadSensors {
        /// The agent's verbosity.
        #[arg(short, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// Write the manual pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Parse and resolve policy files; exit 0 when all are valid.
    Check {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Every agent's last heartbeat: sensors, enforcement, rules, counters, isolation
    /// (wanted by operators / reported by the agent), bundles; stale after 3 intervals.
    Status {
        #[command(flatten)]
        conn: FleetConnArgs,
        /// One JSON document (an array of hosts) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send one agent a command and print its reply: ping, isolate, unisolate, reload,
    /// kill PROCESS_GUID, policy-mode audit|enforce. Example: aurora fleet cmd web-1 isolate
    Cmd {
        #[command(flatten)]
        conn: FleetConnArgs,
        /// Who is asking (recorded with the command; $USER when set).
        #[arg(long, value_name = "NAME", env = "USER", default_value = "operator")]
        operator: String,
        /// The agent's host id (as `fleet status` lists it).
        #[arg(value_name = "HOST")]
        host: String,
        /// The command and its argument.
        #[arg(value_name = "COMMAND", required = true, num_args = 1..)]
        words: Vec<String>,
    },
    /// Check rule directories (as `rules check`), sign them as one bundle and store it;
    /// agents run with --fleet-rules take it.
    PushRules {
        #[command(flatten)]
        conn: FleetConnArgs,
        /// The signing key (`fleet keygen`'s .seed file).
        #[arg(long, value_name = "FILE", required = true)]
        key: PathBuf,
        #[arg(value_name = "DIR", required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Check policy files (as `policy check`), sign them as one bundle and store it; agents
    /// run with --fleet-policy take it.
    PushPolicy {
        #[command(flatten)]
        conn: FleetConnArgs,
        #[arg(long, value_name = "FILE", required = true)]
        key: PathBuf,
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Make a bundle signing key: PREFIX.seed (secret) and PREFIX.pub (for --fleet-key).
    Keygen {
        #[arg(value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Make NATS identities: an nkey seed per host (DIR/HOST.nk) and one for operators, and
    /// DIR/accounts.conf giving each agent only its own subjects (include it from the
    /// nats-server configuration in deploy/nats).
    Enroll {
        /// The operators' identity name.
        #[arg(long, value_name = "NAME", default_value = "operator")]
        operator: String,
        #[arg(long, value_name = "DIR", required = true)]
        dir: PathBuf,
        #[arg(value_name = "HOST", required = true)]
        hosts: Vec<String>,
    },
    /// Create the fleet's buckets, object store and stream.
    Init {
        #[command(flatten)]
        conn: FleetConnArgs,
    },
    /// Heartbeat as many simulated agents from one process (`cargo xtask bench`).
    #[command(hide = true)]
    Simulate(crate::fleet::simulate::SimulateArgs),
}

impl FleetCommand {
    /// `-v` where the subcommand takes it.
    pub fn verbose(&self) -> u8 {
        match self {
            FleetCommand::Status { conn, .. }
            | FleetCommand::Cmd { conn, .. }
            | FleetCommand::PushRules { conn, .. }
            | FleetCommand::PushPolicy { conn, .. }
            | FleetCommand::Init { conn } => conn.global.verbose,
            _ => 0,
        }
    }
}

/// How `aurora fleet` reaches NATS: the agent's flags, or its config file (-c).
#[derive(Args, Debug, Clone)]
pub struct FleetConnArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub nats: crate::nats::NatsConnectArgs,
}

#[derive(Args, Debug, Clone)]
pub struct IsolateArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// An address to keep reachable: ADDR, ADDR:PORT, [V6]:PORT or HOST:PORT (repeatable).
    /// Example: --allow 10.0.0.7:4222
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub allow: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct UnisolateArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Parse every rule and report it as active (with its event kind), inactive or invalid.
    Check(RulesCheckArgs),
}

/// The command line as `--help`, the manual pages and the completions show it: the derived
/// definition with each flag's default appended to its help, taken from the constant the
/// component itself falls back to (doc comments say what a flag does, not its default, so that
/// each default is stated once). Flags without a value of their own (`[default: everywhere]`)
/// say so in their doc comment.
pub fn command() -> clap::Command {
    show_defaults(Cli::command(), &shown_defaults())
}

/// (argument id, default as shown) for every flag whose default is a value.
fn shown_defaults() -> Vec<(&'static str, String)> {
    use crate::nats::NatsConfig;
    use crate::sinks::nats::config::size_text;
    use crate::sinks::registry::{payload_name, SinkCommon};
    use crate::sinks::{file, network};
    use crate::sources::{auditd, ebpf::FileSensorMode, logs, syslog};
    use clap::ValueEnum as _;
    let detect = crate::detect::DetectConfig::default();
    let policy = CpuPolicy::default().to_possible_value();
    vec![
        (
            "ringbuf_size",
            crate::sources::ebpf::config::DEFAULT_RING.into(),
        ),
        ("queue_size", crate::pipeline::DEFAULT_QUEUE.to_string()),
        (
            "correlation_cache",
            crate::enrich::DEFAULT_CORRELATION_CACHE.to_string(),
        ),
        ("file_sensor", FileSensorMode::default().name().into()),
        (
            "container_socket",
            format!(
                "those of {} that answer",
                crate::enrich::containers::DEFAULT_SOCKETS.join(", ")
            ),
        ),
        (
            "audit_log",
            format!("{} when it exists", auditd::DEFAULT_LOG),
        ),
        (
            "system_log",
            format!(
                "journald when it runs, else those of {} that exist",
                syslog::DEFAULT_FILES.join(", ")
            ),
        ),
        ("state_dir", logs::DEFAULT_STATE_DIR.into()),
        ("throttle_rate", format!("{:?}", detect.throttle_rate)),
        ("throttle_burst", detect.throttle_burst.to_string()),
        ("min_level", detect.min_level.as_str().into()),
        (
            "audit_from_sensors",
            if detect.audit_from_sensors {
                "on"
            } else {
                "off"
            }
            .into(),
        ),
        (
            "stats_interval",
            crate::telemetry::DEFAULT_STATS_INTERVAL_SECS.to_string(),
        ),
        (
            "cpu_policy",
            policy.map(|v| v.get_name().to_owned()).unwrap_or_default(),
        ),
        ("stream", NatsConfig::DEFAULT_STREAM.into()),
        (
            "consumer",
            crate::sources::jetstream::DEFAULT_CONSUMER.into(),
        ),
        ("nats_stream", NatsConfig::DEFAULT_STREAM.into()),
        (
            "nats_stream_max_bytes",
            size_text(NatsConfig::DEFAULT_STREAM_MAX_BYTES as u64),
        ),
        (
            "nats_stream_max_age",
            (NatsConfig::DEFAULT_STREAM_MAX_AGE.as_secs() / 3600).to_string(),
        ),
        ("spool_dir", NatsConfig::DEFAULT_SPOOL_DIR.into()),
        (
            "spool_max_bytes",
            size_text(NatsConfig::DEFAULT_SPOOL_MAX_BYTES),
        ),
        ("logfile_format", payload_name(file::DEFAULT_FORMAT).into()),
        ("udp_format", payload_name(network::DEFAULT_FORMAT).into()),
        ("tcp_format", payload_name(network::DEFAULT_FORMAT).into()),
        ("tcp_framing", network::DEFAULT_FRAMING.into()),
        ("syslog_rfc", SinkCommon::DEFAULT_RFC.to_string()),
        ("syslog_facility", SinkCommon::DEFAULT_FACILITY.into()),
        ("sink_queue", SinkCommon::DEFAULT_QUEUE.to_string()),
        (
            "heartbeat_interval",
            crate::fleet::FleetConfig::DEFAULT_INTERVAL_SECS.to_string(),
        ),
        ("fleet_dir", crate::fleet::FleetConfig::DEFAULT_DIR.into()),
    ]
}

/// `cmd` and its subcommands with `[default: …]` appended to the help of the flags in
/// `defaults`.
fn show_defaults(mut cmd: clap::Command, defaults: &[(&str, String)]) -> clap::Command {
    for (id, value) in defaults {
        if cmd.get_arguments().any(|a| a.get_id() == id) {
            cmd = cmd.mut_arg(*id, |a| {
                let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                a.help(format!("{help} [default: {value}]"))
            });
        }
    }
    cmd.mut_subcommands(|sub| show_defaults(sub, defaults))
}

/// The keys a config file may use: the agent's long flags (not `config` itself).
pub fn config_keys() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "config" | "help" | "version"))
        .map(String::from)
        // Settings without a flag of their own (mappings only a file can hold).
        .chain(["response".to_owned()])
        .collect()
}

#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct GlobalArgs {
    /// YAML config file with the same keys as the long flags (flags override it).
    /// Example: -c /etc/aurora/aurora.yml
    #[arg(short = 'c', long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// More agent logging on stderr (-v debug, -vv trace). Alerts are not logs.
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    #[serde(skip_serializing_if = "is_zero")]
    pub verbose: u8,
}

/// A count flag left out while zero: not given.
fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// What the live commands (the agent, `record`) collect with: each component's own flags.
#[derive(Args, Debug, Clone, Default)]
pub struct SensorArgs {
    #[command(flatten)]
    pub ebpf: crate::sources::ebpf::config::EbpfArgs,
    #[command(flatten)]
    pub queue: crate::pipeline::QueueArgs,
    #[command(flatten)]
    pub enrich: crate::enrich::EnrichArgs,
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetryArgs,
    #[command(flatten)]
    pub logs: crate::sources::logs::LogArgs,
    #[command(flatten)]
    pub scheduling: SchedulingArgs,
}

/// How a live command's threads are scheduled (the agent and `record` alike).
#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct SchedulingArgs {
    /// How the threads are scheduled: batch (SCHED_BATCH: wakeups never preempt the workload
    /// being watched, yet the agent keeps its fair share of CPU, so it keeps up) or normal.
    #[arg(long, value_name = "POLICY")]
    pub cpu_policy: Option<CpuPolicy>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub sensors: SensorArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub response: crate::response::ResponseArgs,
    #[command(flatten)]
    pub fleet: crate::fleet::FleetArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// Scheduling policy of the live agent's threads (`--cpu-policy`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuPolicy {
    #[default]
    Batch,
    Normal,
}

/// What only the live agent has.
#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct AgentArgs {
    /// Seconds between stats log lines (0 = off).
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<u64>,
    /// Run at low priority: nice 10 and idle I/O class.
    #[arg(long)]
    pub low_prio: bool,
    /// Log every event on stderr (debugging only: expensive).
    #[arg(long)]
    pub trace: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// At exit (and after each SIGHUP reload), write every counter here in the Prometheus text
    /// format (the same metrics as --metrics-listen; node_exporter's textfile collector reads
    /// this format). Example: --metrics-file /var/lib/node_exporter/aurora_replay.prom
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// What the files hold: jsonl (events as `aurora record` writes them, or Nextron
    /// aurora-linux's), auditd (an audit.log), syslog (an auth.log/syslog file, RFC 5424 or
    /// 3164 lines), journal (`journalctl -o json` output).
    /// Example: aurora replay --format auditd --rules rules /var/log/audit/audit.log
    #[arg(long, value_name = "FORMAT", default_value = "jsonl")]
    pub format: ReplayFormat,
    /// Files to replay; - reads stdin.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The stream to read (events published with --nats-events).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Durable consumer name; instances with the same name share the work.
    #[arg(long, value_name = "NAME")]
    pub consumer: Option<String>,
    /// Stop after this many seconds without a message (CI pipelines). [default: run until
    /// SIGINT/SIGTERM]
    #[arg(long, value_name = "SECS")]
    pub idle_exit: Option<f64>,
    /// At exit, write every counter here in the Prometheus text format (as `replay` does).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub sensors: SensorArgs,
    /// Write events here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Stop after this many seconds. [default: until SIGINT/SIGTERM]
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Record only events of these kinds (repeatable):
    /// process_creation|process_termination|file_event|network_connection. [default: all]
    #[arg(long, value_name = "KIND")]
    pub kind: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RulesCheckArgs {
    /// Rule directories (recursive).
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Machine-readable output: one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Logsource mapping file. [default: as for the agent]
    #[arg(long, value_name = "FILE")]
    pub logsource_map: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of `cmd` and its subcommands.
    fn each_arg(cmd: &clap::Command, f: &mut impl FnMut(&clap::Arg)) {
        cmd.get_arguments().for_each(&mut *f);
        for sub in cmd.get_subcommands() {
            each_arg(sub, f);
        }
    }

    #[test]
    fn each_default_is_shown_once_and_from_its_constant() {
        let defaults = shown_defaults();
        let mut shown = std::collections::HashSet::new();
        each_arg(&command(), &mut |a| {
            let id = a.get_id().as_str();
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.matches("[default:").count() <= 1, "{id}: {help}");
            if !a.get_default_values().is_empty() {
                // clap shows these itself.
                assert!(!help.contains("[default:"), "{id}: {help}");
            }
            if let Some((_, v)) = defaults.iter().find(|(k, _)| *k == id) {
                assert!(help.ends_with(&format!(" [default: {v}]")), "{id}: {help}");
                shown.insert(id.to_owned());
            }
        });
        // A renamed field would otherwise lose its default silently.
        for (id, _) in &defaults {
            assert!(shown.contains(*id), "no flag {id}");
        }
    }

    #[test]
    fn shown_defaults_are_the_values_the_components_fall_back_to() {
        let d: std::collections::HashMap<_, _> = shown_defaults().into_iter().collect();
        assert_eq!(d["ringbuf_size"], "512K");
        assert_eq!(d["throttle_rate"], "1.0");
        assert_eq!(d["cpu_policy"], "batch");
        assert_eq!(d["nats_stream_max_bytes"], "1G");
        assert_eq!(d["spool_max_bytes"], "256M");
        assert_eq!(d["nats_stream_max_age"], "168");
        assert_eq!(d["udp_format"], "syslog");
        assert_eq!(d["logfile_format"], "json");
    }
}
