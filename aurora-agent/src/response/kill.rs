//! Rule-driven response: an alert whose rule is mapped to `kill` or `kill-tree` (by id, tag
//! or level) ends its process. The process is reached through a pidfd and its ProcessGuid
//! (pid + start time) checked after the pidfd is open, so a pid reused since the event is never
//! signalled. Safety rails come first (never PID 1, kernel threads, the agent or its
//! ancestors, allow-listed images and cgroups), then a per-rule rate limit; dry-run (the
//! default) only says what it would have done.
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota};
use serde::{Deserialize, Serialize};

use crate::detect::alert::Alert;
use crate::detect::rules::AlertLevel;
use crate::enrich::guid::GuidMaker;
use crate::event::names as f;
use crate::event::Value;
use crate::stats::ResponseStats;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseMode {
    #[default]
    DryRun,
    Enforce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillAction {
    Kill,
    KillTree,
}

/// One mapping: rule id, tag or minimum level → action.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionEntry {
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    /// Rules of this level and above.
    #[serde(default)]
    pub level: Option<String>,
    pub action: KillAction,
}

/// `response:` in the config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseConfig {
    pub mode: ResponseMode,
    /// `N/sec`, `N/min` or `N/hour`, per rule.
    pub rate_limit: String,
    pub actions: Vec<ActionEntry>,
    pub allow_images: Vec<PathBuf>,
    /// cgroup paths (as CgroupPath shows them) whose processes are never killed.
    pub allow_cgroups: Vec<String>,
}

/// The per-rule limit when `rate_limit` is not given.
pub const DEFAULT_RATE_LIMIT: &str = "5/min";

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            mode: ResponseMode::DryRun,
            rate_limit: DEFAULT_RATE_LIMIT.into(),
            actions: vec![],
            allow_images: vec![],
            allow_cgroups: vec![],
        }
    }
}

impl ResponseConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        parse_rate(&self.rate_limit)?;
        for (i, a) in self.actions.iter().enumerate() {
            let named = [a.rule.is_some(), a.tag.is_some(), a.level.is_some()];
            if named.iter().filter(|n| **n).count() != 1 {
                anyhow::bail!("response.actions[{i}]: name exactly one of rule, tag, level");
            }
            if let Some(l) = &a.level {
                AlertLevel::parse(l)
                    .ok_or_else(|| anyhow::anyhow!("response.actions[{i}]: unknown level {l:?}"))?;
            }
        }
        Ok(())
    }
}

/// `5/min` → a quota of 5 per minute, burst 5.
pub fn parse_rate(s: &str) -> anyhow::Result<Quota> {
    let bad =
        || anyhow::anyhow!("response.rate_limit {s:?}: expected N/sec, N/min or N/hour with N ≥ 1");
    let (n, unit) = s.split_once('/').ok_or_else(bad)?;
    let n: NonZeroU32 = n.trim().parse().map_err(|_| bad())?;
    Ok(match unit.trim() {
        "s" | "sec" | "second" => Quota::per_second(n),
        "m" | "min" | "minute" => Quota::per_minute(n),
        "h" | "hour" => Quota::per_hour(n),
        _ => return Err(bad()),
    })
}

pub struct Responder {
    cfg: ResponseConfig,
    quota: Quota,
    limiters: HashMap<String, DefaultDirectRateLimiter>,
    guids: GuidMaker,
    /// The agent and its ancestors, never killed.
    protected: Vec<u32>,
    pub stats: Arc<ResponseStats>,
}

impl Responder {
    /// `None` when no rule is mapped to an action.
    pub fn new(cfg: &ResponseConfig, stats: Arc<ResponseStats>) -> anyhow::Result<Option<Self>> {
        if cfg.actions.is_empty() {
            return Ok(None);
        }
        Ok(Some(Responder {
            quota: parse_rate(&cfg.rate_limit)?,
            cfg: cfg.clone(),
            limiters: HashMap::new(),
            guids: GuidMaker::from_system(),
            protected: ancestors(std::process::id()),
            stats,
        }))
    }

    fn action_for(&self, a: &Alert) -> Option<KillAction> {
        let r = &a.rule;
        self.cfg.actions.iter().find_map(|e| {
            let hit = match (&e.rule, &e.tag, &e.level) {
                (Some(id), _, _) => r.id.as_deref() == Some(id.as_str()),
                (_, Some(tag), _) => r.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)),
                (_, _, Some(l)) => AlertLevel::parse(l).is_some_and(|l| r.level >= l),
                _ => false,
            };
            hit.then_some(e.action)
        })
    }

    /// Act on an alert; returns the alert's `Response` when its rule has an action.
    pub fn respond(&mut self, a: &Alert) -> Option<String> {
        let action = self.action_for(a)?;
        let out = self.decide(a, action);
        let s = &self.stats;
        let slot = match out.as_str() {
            "killed" => &s.killed,
            "would_kill" => &s.would_kill,
            "rate_limited" => &s.rate_limited,
            "gone" => &s.gone,
            _ => &s.refused,
        };
        slot.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    fn decide(&mut self, a: &Alert, action: KillAction) -> String {
        let ev = &a.event;
        let pid = match ev.get(f::PROCESS_ID) {
            Some(Value::Int(p)) if *p > 0 && *p <= i64::from(i32::MAX) => *p as u32,
            _ => return "refused: no process".into(),
        };
        let guid = ev.get(f::PROCESS_GUID).map(|v| v.as_text().into_owned());
        if let Some(rail) = self.rail(pid, ev) {
            return format!("refused: {rail}");
        }
        let limiter = self
            .limiters
            .entry(a.rule.key().to_owned())
            .or_insert_with(|| governor::RateLimiter::direct(self.quota));
        if limiter.check().is_err() {
            return "rate_limited".into();
        }
        if self.cfg.mode == ResponseMode::DryRun {
            return "would_kill".into();
        }
        let Some(guid) = guid else {
            return "refused: no ProcessGuid".into();
        };
        if action == KillAction::KillTree {
            for child in descendants(pid) {
                if !self.protected.contains(&child) && child != 1 {
                    let _ = kill_verified(child, None);
                }
            }
        }
        match kill_verified(pid, Some((&self.guids, &guid))) {
            Ok(()) => "killed".into(),
            Err(KillError::Gone) => "gone".into(),
            Err(KillError::Os(e)) => format!("refused: {e}"),
        }
    }

    /// The rail that forbids killing `pid`, if any.
    fn rail(&self, pid: u32, ev: &crate::event::Event) -> Option<&'static str> {
        if pid == 1 {
            return Some("pid 1");
        }
        if self.protected.contains(&pid) {
            return Some("the agent or its ancestor");
        }
        if is_kernel_thread(pid) {
            return Some("kernel thread");
        }
        let image = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .or_else(|| ev.get(f::IMAGE).map(|v| PathBuf::from(&*v.as_text())));
        if image.is_some_and(|i| self.cfg.allow_images.contains(&i)) {
            return Some("allowed image");
        }
        if let Some(cg) = ev.get(f::CGROUP_PATH) {
            let cg = cg.as_text();
            if self
                .cfg
                .allow_cgroups
                .iter()
                .any(|a| cg.starts_with(a.as_str()))
            {
                return Some("allowed cgroup");
            }
        }
        None
    }
}

/// A kill an operator commanded (`aurora fleet cmd HOST kill GUID`): the process the
/// ProcessGuid names, if it still runs and is neither PID 1, a kernel thread, the agent nor an
/// ancestor of it. Returns its pid.
pub fn kill_guid(guid: &str) -> anyhow::Result<u32> {
    let hex: String = guid.trim_matches(['{', '}']).chars().collect();
    let parts: Vec<&str> = hex.split('-').collect();
    let pid = match parts.as_slice() {
        [_, _, _, _, pid] if pid.len() == 12 => u32::from_str_radix(pid, 16).ok(),
        _ => None,
    }
    .ok_or_else(|| anyhow::anyhow!("{guid:?}: not a ProcessGuid"))?;
    if pid == 1 || pid == 0 {
        anyhow::bail!("{guid}: refused: pid {pid}");
    }
    if ancestors(std::process::id()).contains(&pid) {
        anyhow::bail!("{guid}: refused: the agent or its ancestor");
    }
    if is_kernel_thread(pid) {
        anyhow::bail!("{guid}: refused: kernel thread");
    }
    let canonical = format!("{{{}}}", hex.to_ascii_lowercase());
    match kill_verified(pid, Some((&GuidMaker::from_system(), &canonical))) {
        Ok(()) => Ok(pid),
        Err(KillError::Gone) => {
            anyhow::bail!("{guid}: no such process (it ended, or the pid was reused)")
        }
        Err(KillError::Os(e)) => anyhow::bail!("{guid}: refused: {e}"),
    }
}

#[derive(Debug)]
pub(super) enum KillError {
    Gone,
    Os(std::io::Error),
}

/// The last syscall's error: ESRCH (no such process) is `Gone`.
fn last_error() -> KillError {
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        KillError::Gone
    } else {
        KillError::Os(e)
    }
}

/// SIGKILL `pid` through a pidfd, if it still is the process the ProcessGuid in `expected`
/// names (`None`: whatever process has the pid now — a descendant found just now, or a
/// process the kernel holds stopped).
pub(super) fn kill_verified(
    pid: u32,
    expected: Option<(&GuidMaker, &str)>,
) -> Result<(), KillError> {
    // SAFETY: plain syscall; the returned descriptor is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(last_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if let Some((guids, guid)) = expected {
        // Read after the pidfd is open: if the stat belongs to the process it names, so does
        // the pidfd.
        let start = start_ticks(pid).ok_or(KillError::Gone)?;
        if guids.guid(pid, start) != guid {
            return Err(KillError::Gone);
        }
    }
    // SAFETY: plain syscall on our descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Field 22 of /proc/PID/stat (start time in clock ticks), read past the `(comm)` field.
pub(super) fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// `pid` and every ancestor up to PID 1.
fn ancestors(mut pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    while let Some(p) = ppid_of(pid).filter(|p| *p > 1 && !out.contains(p)) {
        out.push(p);
        pid = p;
    }
    out
}

/// Kernel threads: children of kthreadd (PID 2) and kthreadd itself; they have no mm.
fn is_kernel_thread(pid: u32) -> bool {
    pid == 2 || ppid_of(pid) == Some(2)
}

/// Every descendant of `pid`, deepest first (so a parent cannot respawn a killed child).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_bad_ones_say_why() {
        assert!(parse_rate("5/min").is_ok());
        assert!(parse_rate("1/sec").is_ok());
        for bad in ["0/min", "5", "5/fortnight", "x/min"] {
            let e = parse_rate(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    fn enforcing(limit: &str) -> Responder {
        let cfg = ResponseConfig {
            mode: ResponseMode::Enforce,
            rate_limit: limit.into(),
            actions: vec![ActionEntry {
                rule: None,
                tag: Some("attack.t1059".into()),
                level: None,
                action: KillAction::Kill,
            }],
            ..Default::default()
        };
        Responder::new(&cfg, Default::default()).unwrap().unwrap()
    }

    fn alert_for(pid: u32, guid: Option<String>) -> Alert {
        let mut ev = crate::event::Event::new(crate::event::EventKind::ProcessCreation);
        ev.push_str(f::IMAGE, "/usr/bin/sleep");
        ev.push_int(f::PROCESS_ID, pid as i64);
        if let Some(g) = guid {
            ev.push_str(f::PROCESS_GUID, g);
        }
        Alert {
            time: chrono::Utc::now(),
            host: "test".into(),
            rule: Arc::new(crate::detect::rules::RuleMeta {
                id: Some("r-1".into()),
                title: "t".into(),
                level: AlertLevel::High,
                status: None,
                tags: vec!["attack.t1059".into()],
                author: None,
                references: vec![],
                path: "x.yml".into(),
            }),
            matched: crate::detect::alert::MatchInfo {
                selections: vec![],
                fields: vec![],
            },
            event: Arc::new(ev),
            response: None,
        }
    }

    #[test]
    fn rails_refuse_pid_1_kernel_threads_the_agent_and_its_ancestors() {
        let mut r = enforcing("100/sec");
        let me = std::process::id();
        let parent = ppid_of(me).unwrap();
        for (pid, want) in [
            (1, "refused: pid 1"),
            (2, "refused: kernel thread"),
            (me, "refused: the agent or its ancestor"),
            (parent, "refused: the agent or its ancestor"),
        ] {
            assert_eq!(
                r.respond(&alert_for(pid, None)).as_deref(),
                Some(want),
                "{pid}"
            );
        }
        assert_eq!(r.stats.refused.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn kills_only_the_process_its_guid_names() {
        let mut r = enforcing("100/sec");
        let guids = GuidMaker::from_system();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let real = guids.guid(pid, start_ticks(pid).unwrap());
        let stale = guids.guid(pid, start_ticks(pid).unwrap() + 1);
        assert_eq!(
            r.respond(&alert_for(pid, Some(stale))).as_deref(),
            Some("gone")
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "a reused pid is not signalled"
        );
        assert_eq!(
            r.respond(&alert_for(pid, Some(real))).as_deref(),
            Some("killed")
        );
        let st = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    }

    #[test]
    fn the_limit_is_per_rule_and_rails_do_not_spend_it() {
        let mut r = enforcing("2/min");
        for _ in 0..3 {
            r.respond(&alert_for(1, None));
        }
        let gone = || alert_for(u32::MAX >> 2, Some("{x}".into()));
        let said: Vec<_> = (0..4).map(|_| r.respond(&gone()).unwrap()).collect();
        assert_eq!(said, ["gone", "gone", "rate_limited", "rate_limited"]);
    }

    #[test]
    fn the_agent_and_its_ancestors_are_protected() {
        let me = std::process::id();
        let a = ancestors(me);
        assert_eq!(a[0], me);
        assert!(a.contains(&ppid_of(me).unwrap()) || ppid_of(me) == Some(1));
        assert!(start_ticks(me).is_some());
    }
}
