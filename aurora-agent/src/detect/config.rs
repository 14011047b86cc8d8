//! Detection's flags and config-file keys (one struct for both, like the sinks'), resolved
//! into a `DetectConfig` with its defaults and validation; the directories and logsource
//! mapping a load uses.
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::logsource::{self, LogsourceMap};
use super::rules::{self, AlertLevel};
use crate::event::EventKind;

#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct DetectArgs {
    /// Directory of Sigma rules, searched recursively for *.yml/*.yaml (repeatable).
    /// Example: --rules rules --rules /opt/sigma/rules/linux
    #[arg(long, value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Logsource → event kind mapping file. [default: logsources.yml in the first --rules dir
    /// that has one, else the built-in mapping]
    #[arg(long, value_name = "FILE")]
    pub logsource_map: Option<PathBuf>,
    /// Alerts per rule per second before throttling (0 disables).
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub throttle_rate: Option<f64>,
    /// Alerts per rule allowed in a burst above the rate.
    #[arg(long, value_name = "N")]
    pub throttle_burst: Option<u32>,
    /// Only alert for rules of at least this level
    /// (informational|low|medium|high|critical).
    #[arg(long, value_name = "LEVEL")]
    pub min_level: Option<String>,
    /// Ignore events whose Image or CommandLine contains this text (repeatable; counted).
    /// Example: --process-exclude /usr/lib/snapd/
    #[arg(long, value_name = "SUBSTR")]
    pub process_exclude: Vec<String>,
    /// Feed SigmaHQ's auditd rules from the eBPF sensors: EXECVE, SYSCALL and PATH records
    /// made from execs, file creations and opens of the files PATH rules name (`off`: only
    /// an auditd log feeds them).
    #[arg(long, value_name = "on|off")]
    pub audit_from_sensors: Option<OnOff>,
}

/// A switch (`on`/`off`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn name(self) -> &'static str {
        match self {
            OnOff::On => "on",
            OnOff::Off => "off",
        }
    }
}

impl DetectArgs {
    /// Detection's config. `event_time_throttle`: throttle on the events' own times (replay,
    /// consume) instead of the wall clock (live).
    pub fn build(&self, event_time_throttle: bool) -> Result<DetectConfig> {
        self.build_with(event_time_throttle, vec![])
    }

    /// `build`, with directories loaded when they hold rules (the fleet's bundle): with one,
    /// `--rules` may be left out.
    pub fn build_with(
        &self,
        event_time_throttle: bool,
        optional_rule_dirs: Vec<PathBuf>,
    ) -> Result<DetectConfig> {
        let rule_dirs = self.rules.clone();
        if rule_dirs.is_empty() && optional_rule_dirs.is_empty() {
            bail!("no rules: give --rules DIR (repeatable), e.g. --rules rules");
        }
        for dir in &rule_dirs {
            // Fail fast with the directory named (the loader re-checks each file).
            super::rules::rule_files(dir)?;
        }
        let defaults = DetectConfig::default();
        let min_level = match self.min_level.clone() {
            None => defaults.min_level,
            Some(s) => AlertLevel::parse(&s).with_context(|| {
                format!("--min-level {s}: expected informational, low, medium, high or critical")
            })?,
        };
        let throttle_rate = self.throttle_rate.unwrap_or(defaults.throttle_rate);
        let throttle_burst = self.throttle_burst.unwrap_or(defaults.throttle_burst);
        // Validate now so a bad value is reported before sensors load.
        super::throttle::Throttle::validate(throttle_rate, throttle_burst)?;
        Ok(DetectConfig {
            rule_dirs,
            logsource_map: self.logsource_map.clone(),
            min_level,
            throttle_rate,
            throttle_burst,
            process_exclude: self.process_exclude.clone(),
            event_time_throttle,
            audit_from_sensors: self
                .audit_from_sensors
                .map_or(defaults.audit_from_sensors, |s| s == OnOff::On),
            optional_rule_dirs,
            ..defaults
        })
    }
}

#[derive(Clone, Debug)]
pub struct DetectConfig {
    pub rule_dirs: Vec<PathBuf>,
    pub logsource_map: Option<PathBuf>,
    pub min_level: AlertLevel,
    pub throttle_rate: f64,
    pub throttle_burst: u32,
    pub process_exclude: Vec<String>,
    /// Throttle on event timestamps (replay) instead of the wall clock (live).
    pub event_time_throttle: bool,
    /// The event kinds this run collects (the live agent: its sensors and the logs it
    /// follows); rules of other kinds are loaded inactive, saying why, and cost nothing.
    /// None: every kind (replay, consume, rules check).
    pub collected: Option<Vec<EventKind>>,
    /// Threads that parse and compile rules and build rule sets. Several for replay and
    /// consume, where loading is part of the run time; one for the live agent, whose rules
    /// then sit in one thread's heap pages (1 MB less resident than when compiled on two).
    pub compile_threads: usize,
    /// Compile a kind's rules when its first event arrives, not at load (replay: a file of
    /// process events never pays for the auditd rules, a third of loading). Load still
    /// parses every rule; a rule that parses but does not compile is reported on first use.
    /// Reloads compile everything.
    pub defer_compile: bool,
    /// Make auditd records from the sensors' events for the auditd rules they can feed
    /// (`audit_feed`).
    pub audit_from_sensors: bool,
    /// Rule directories loaded when they hold rules (the fleet's accepted bundle, empty until
    /// one arrives).
    pub optional_rule_dirs: Vec<PathBuf>,
}

impl DetectConfig {
    /// The directories to load now: the given ones and the optional ones holding rules.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let optional = self
            .optional_rule_dirs
            .iter()
            .filter(|d| rules::rule_files(d).is_ok());
        self.rule_dirs.iter().chain(optional).cloned().collect()
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            rule_dirs: vec![],
            logsource_map: None,
            min_level: AlertLevel::Informational,
            throttle_rate: 1.0,
            throttle_burst: 5,
            process_exclude: vec![],
            event_time_throttle: false,
            collected: None,
            compile_threads: 4,
            defer_compile: false,
            audit_from_sensors: true,
            optional_rule_dirs: vec![],
        }
    }
}

/// The mapping to use: --logsource-map, else logsources.yml in the first rules dir having one,
/// else the built-in one.
pub fn mapping(cfg: &DetectConfig) -> Result<LogsourceMap, logsource::MapError> {
    if let Some(p) = &cfg.logsource_map {
        return LogsourceMap::load(p);
    }
    for d in &cfg.dirs() {
        let p = d.join(logsource::FILE_NAME);
        if p.is_file() {
            return LogsourceMap::load(&p);
        }
    }
    Ok(LogsourceMap::builtin())
}
