//! Raw kernel records → Sysmon-schema events: /proc, the process table (parent correlation),
//! the user database, cgroups, container runtimes (names, images, pods) and the DNS cache
//! (connection destinations' names).
mod block;
pub mod cgroup;
pub mod clock;
pub mod containers;
pub mod dns;
pub mod guid;
pub mod intern;
pub mod paths;
pub mod procfs;
pub mod proctable;
pub mod replay;
pub mod users;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::names as f;
use crate::event::text::{bytes_to_string, bytes_to_text};
use crate::event::time::UtcTimeFormatter;
use crate::event::{Event, EventKind, Value};
use crate::sources::{DnsRaw, ExecRaw, ExitRaw, FileRaw, NetRaw, RawEvent, TaskIdent};
use crate::stats::EnrichStats;
use cgroup::{CgroupCache, CgroupInfo};
use clock::BootClock;
use containers::{ContainerConfig, ContainerNames};
use guid::GuidMaker;
use proctable::{ProcInfo, ProcessTable};
use users::UserCache;

/// An LRU cache bounded at `capacity` whose table grows with use: `LruCache::new` allocates the
/// whole table up front (the 16,384-entry process table alone was 0.5 MB of an idle agent).
pub(crate) fn growing_lru<K: std::hash::Hash + Eq, V>(capacity: usize) -> lru::LruCache<K, V> {
    let mut cache = lru::LruCache::new(std::num::NonZeroUsize::MIN);
    cache.resize(std::num::NonZeroUsize::new(capacity).unwrap_or(std::num::NonZeroUsize::MIN));
    cache
}

const AT_FDCWD: i32 = -100;

#[derive(Clone, Debug)]
pub struct EnrichConfig {
    /// Process table capacity (`--correlation-cache`).
    pub correlation_cache: usize,
    /// How long an exited process stays resolvable.
    pub exit_grace: Duration,
    /// `--watch-dir`: file events outside these are dropped (relative paths are filtered here,
    /// absolute ones already in the kernel).
    pub watch_dirs: Vec<PathBuf>,
    /// The policies in force, which block events name their entry from.
    pub policy: crate::policy::PolicyHandle,
    /// Where container names come from (live runs only).
    pub containers: ContainerConfig,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            correlation_cache: DEFAULT_CORRELATION_CACHE,
            exit_grace: Duration::from_secs(5),
            watch_dirs: vec![],
            policy: Default::default(),
            containers: ContainerConfig::default(),
        }
    }
}

/// The process table's capacity when `--correlation-cache` is not given.
pub const DEFAULT_CORRELATION_CACHE: usize = 16384;

/// Enrichment's flags and config-file keys.
#[derive(clap::Args, Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct EnrichArgs {
    /// Process table size for parent correlation (LRU).
    #[arg(long, value_name = "N")]
    pub correlation_cache: Option<usize>,
    /// Container runtime API socket (Docker's, Podman's service or containerd's) asked for the
    /// image, name and pod of each container id; repeatable; `none` turns container names off.
    #[arg(long, value_name = "PATH")]
    pub container_socket: Vec<PathBuf>,
}

impl EnrichArgs {
    /// Enrichment's config; `watch_dirs` are the sensors' (`--watch-dir`).
    pub fn build(&self, watch_dirs: Vec<PathBuf>) -> anyhow::Result<EnrichConfig> {
        let cache = self.correlation_cache.unwrap_or(DEFAULT_CORRELATION_CACHE);
        if cache < 16 {
            anyhow::bail!("--correlation-cache {cache}: must be at least 16");
        }
        Ok(EnrichConfig {
            correlation_cache: cache,
            watch_dirs,
            containers: ContainerConfig::from_flags(&self.container_socket)?,
            ..EnrichConfig::default()
        })
    }
}

/// How long a canonicalized exec filename is reused (a re-pointed symlink shows after this).
const CANON_TTL: Duration = Duration::from_secs(5);

pub struct Enricher {
    table: ProcessTable,
    /// Kernel filename → absolute, symlink-free path, for processes gone before /proc was read
    /// (in exec storms that is most of them, and realpath() walked every component each time).
    canon: lru::LruCache<Vec<u8>, (Arc<str>, Instant)>,
    users: UserCache,
    cgroups: CgroupCache,
    clock: BootClock,
    times: UtcTimeFormatter,
    guids: GuidMaker,
    strings: intern::Interner,
    watch_dirs: Vec<PathBuf>,
    dns: dns::DnsCache,
    /// Parent correlation for recorded events (replay, consume); made on the first one, so
    /// the live agent never holds it.
    recorded: Option<replay::ReplayCorrelator>,
    /// Processes recorded events are correlated over: the live table's capacity, so a replay
    /// finds the parents the live agent would have.
    recorded_capacity: usize,
    policy: crate::policy::PolicyHandle,
    /// Names of containers from their runtime (live runs that asked for them).
    containers: Option<ContainerNames>,
    stats: Arc<EnrichStats>,
}

/// Shell convention for a wait(2) status: the exit code, or 128 + signal number.
pub fn exit_code(status: u32) -> i64 {
    if status & 0x7f == 0 {
        ((status >> 8) & 0xff) as i64
    } else {
        128 + (status & 0x7f) as i64
    }
}

fn parent_fields(ev: &mut Event, parent: Option<&ProcInfo>) {
    if let Some(p) = parent {
        ev.push_str(f::PARENT_IMAGE, &*p.image);
        ev.push_str(f::PARENT_COMMAND_LINE, &*p.cmdline);
        ev.push_str(f::PARENT_USER, &*p.user);
    }
}

impl Enricher {
    pub fn new(cfg: &EnrichConfig, stats: Arc<EnrichStats>) -> Self {
        Enricher {
            containers: None,
            stats: stats.clone(),
            dns: dns::DnsCache::new(dns::CAPACITY, stats.clone()),
            table: ProcessTable::new(cfg.correlation_cache, cfg.exit_grace, stats),
            canon: growing_lru(1024),
            users: UserCache::new(1024),
            cgroups: CgroupCache::new(4096),
            clock: BootClock::new(),
            times: UtcTimeFormatter::default(),
            guids: GuidMaker::from_system(),
            strings: intern::Interner::new(4096),
            watch_dirs: cfg.watch_dirs.clone(),
            recorded: None,
            recorded_capacity: cfg.correlation_cache,
            policy: cfg.policy.clone(),
        }
    }

    /// Ask container runtimes for names (a live run; spawns the resolver on this runtime).
    pub fn name_containers(&mut self, cfg: &ContainerConfig) {
        self.containers = ContainerNames::start(cfg, self.stats.clone());
    }

    /// A container process's fields: its id, and its names once the runtime told them.
    fn container_fields(&self, ev: &mut Event, cgroup: Option<&CgroupInfo>) {
        let Some(id) = cgroup.and_then(|c| c.container_id.as_ref()) else {
            return;
        };
        ev.push_str(f::CONTAINER_ID, &**id);
        if let Some(meta) = self.containers.as_ref().and_then(|c| c.meta(id)) {
            meta.push_fields(ev);
        }
    }

    /// Fill the table from /proc so processes older than the agent resolve. Returns the count.
    pub fn seed_from_proc(&mut self) -> usize {
        let snaps: Vec<_> = procfs::all_pids()
            .into_iter()
            .filter_map(procfs::snapshot)
            .collect();
        let starts: std::collections::HashMap<u32, u64> =
            snaps.iter().map(|s| (s.pid, s.start_ticks)).collect();
        for s in &snaps {
            let info = self.info_from_snapshot(s, starts.get(&s.ppid).copied().unwrap_or(0));
            self.table.insert(info);
        }
        snaps.len()
    }

    /// The one place a process identity starts: what every source knows (ids, user), with the
    /// defaults for what it may not (no cwd, cgroup or loginuid; not from an exec). The three
    /// ways a process becomes known (exec, /proc, a fork inferred from its parent) fill the rest.
    #[allow(clippy::too_many_arguments)]
    fn identity(
        &mut self,
        pid: u32,
        ticks: u64,
        ppid: u32,
        parent_ticks: u64,
        uid: u32,
        image: Arc<str>,
        cmdline: Arc<str>,
    ) -> ProcInfo {
        ProcInfo {
            pid,
            start_ticks: ticks,
            ppid,
            parent_start_ticks: parent_ticks,
            image,
            cmdline,
            cwd: None,
            user: self.users.name(uid),
            uid,
            loginuid: u32::MAX,
            cgroup: None,
            since_ns: 0,
        }
    }

    fn info_from_snapshot(&mut self, s: &procfs::ProcSnapshot, parent_start: u64) -> ProcInfo {
        // Kernel threads have no exe: name them as ps does.
        let image = s.image.clone().unwrap_or_else(|| format!("[{}]", s.comm));
        let cmdline = s.cmdline.clone().unwrap_or_else(|| format!("[{}]", s.comm));
        ProcInfo {
            cwd: s.cwd.as_deref().map(Into::into),
            loginuid: s.loginuid,
            cgroup: CgroupCache::lookup_path(s.pid),
            ..self.identity(
                s.pid,
                s.start_ticks,
                s.ppid,
                parent_start,
                s.uid,
                image.into(),
                cmdline.into(),
            )
        }
    }

    fn canonical(&mut self, filename: &[u8]) -> Arc<str> {
        let now = Instant::now();
        if let Some((p, at)) = self.canon.get(filename) {
            if now.duration_since(*at) < CANON_TTL {
                return p.clone();
            }
        }
        let name = bytes_to_string(filename);
        let p: Arc<str> = std::fs::canonicalize(&name)
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .unwrap_or(name)
            .into();
        self.canon.put(filename.to_vec(), (p.clone(), now));
        p
    }

    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Enrich one record. `None` when it is filtered out (file outside `--watch-dir`).
    pub fn enrich(&mut self, raw: RawEvent) -> Option<Event> {
        // Logs and recorded events never touch the live process table.
        if !matches!(raw, RawEvent::Log(_) | RawEvent::Recorded(_)) {
            self.table.sweep(Instant::now());
        }
        match raw {
            RawEvent::Exec(r) => Some(self.exec(r)),
            RawEvent::Block(r) => Some(self.block(r)),
            RawEvent::Exit(r) => Some(self.exit(r)),
            RawEvent::File(r) => self.file(r),
            RawEvent::Net(r) => Some(self.net(r)),
            RawEvent::Dns(r) => {
                self.dns_answer(r);
                None
            }
            RawEvent::Log(ev) => Some(ev),
            RawEvent::Recorded(mut ev) => {
                self.recorded
                    .get_or_insert_with(|| replay::ReplayCorrelator::new(self.recorded_capacity))
                    .complete(&mut ev);
                Some(ev)
            }
        }
    }

    fn dns_answer(&mut self, r: DnsRaw) {
        let key = r.task.map(|t| (t.tgid, t.start_boottime_ns));
        self.dns.observe(key, &r.payload, Instant::now());
    }

    fn parent_of(&mut self, t: &TaskIdent) -> Option<Arc<ProcInfo>> {
        if t.ppid == 0 {
            return None;
        }
        let key = (t.ppid, self.clock.ticks(t.parent_start_boottime_ns));
        if let Some(p) = self.table.get_at(key, t.ts_boot_ns) {
            return Some(p);
        }
        // Older than the agent and evicted, or raced the scan: /proc, if the pid still names it.
        let snap = procfs::snapshot(t.ppid).filter(|s| s.start_ticks == key.1)?;
        let info = self.info_from_snapshot(&snap, 0);
        Some(self.table.insert(info))
    }

    /// The process a non-exec record belongs to: the table, else /proc (if the pid still names
    /// it), else a forked child inherits its parent's image (fork without exec), else comm.
    fn process_of(&mut self, t: &TaskIdent) -> Arc<ProcInfo> {
        let ticks = self.clock.ticks(t.start_boottime_ns);
        if let Some(p) = self.table.get_at((t.tgid, ticks), t.ts_boot_ns) {
            return p;
        }
        if let Some(s) = procfs::snapshot(t.tgid).filter(|s| s.start_ticks == ticks) {
            let parent_start = self.clock.ticks(t.parent_start_boottime_ns);
            let info = self.info_from_snapshot(&s, parent_start);
            return self.table.insert(info);
        }
        let parent = self.parent_of(t);
        let comm = bytes_to_string(&t.comm);
        let parent_ticks = self.clock.ticks(t.parent_start_boottime_ns);
        let image = parent
            .as_ref()
            .map(|p| p.image.clone())
            .unwrap_or_else(|| comm.clone().into());
        let cmdline = parent
            .as_ref()
            .map(|p| p.cmdline.clone())
            .unwrap_or_else(|| comm.into());
        let info = ProcInfo {
            cwd: parent.as_ref().and_then(|p| p.cwd.clone()),
            cgroup: parent.as_ref().and_then(|p| p.cgroup.clone()),
            ..self.identity(t.tgid, ticks, t.ppid, parent_ticks, t.uid, image, cmdline)
        };
        self.table.insert(info)
    }

    /// Sysmon's UtcTime of a kernel timestamp.
    fn utc_time(&mut self, ts_boot_ns: u64) -> String {
        self.times.format(self.clock.wall(ts_boot_ns))
    }

    fn common(&mut self, kind: EventKind, ts_boot_ns: u64, p: &ProcInfo) -> Event {
        let mut ev = Event::new(kind);
        ev.push_str(f::UTC_TIME, self.utc_time(ts_boot_ns));
        // Computed, not stored: 64 bytes less per process the table keeps.
        ev.push_str(f::PROCESS_GUID, self.guids.guid(p.pid, p.start_ticks));
        ev.push_int(f::PROCESS_ID, p.pid as i64);
        ev.push_str(f::IMAGE, &*p.image);
        ev
    }

    fn exec(&mut self, r: ExecRaw) -> Event {
        let t = &r.task;
        let ticks = self.clock.ticks(t.start_boottime_ns);
        let parent = self.parent_of(t);
        // The kernel resolved the executable at exec; /proc and then the exec'd filename are
        // fallbacks for paths too deep for the kernel-side walk.
        // Interned straight from the record's bytes: no per-exec copy of a string the table
        // already holds.
        let image = if !r.exe.is_empty() {
            self.strings.intern(&bytes_to_text(&r.exe))
        } else {
            match procfs::exe(t.tgid) {
                Some(i) => self.strings.intern(&i),
                None => self.canonical(&r.filename),
            }
        };
        // The kernel copy of argv is exact unless it was cut; then /proc has all of it (if the
        // process still runs), else we keep the cut copy and flag it.
        let (cmdline, truncated) = if !r.argv_truncated && !r.argv.is_empty() {
            (crate::event::text::join_argv(&r.argv), false)
        } else {
            match procfs::cmdline(t.tgid) {
                Some(c) => (c, false),
                None => (crate::event::text::join_argv(&r.argv), r.argv_truncated),
            }
        };
        // No guess when neither the kernel nor /proc has it: a parent's cwd may be stale, and a
        // wrong CurrentDirectory is worse than none.
        let cwd = if !r.cwd.is_empty() {
            Some(self.strings.intern(&bytes_to_text(&r.cwd)))
        } else {
            procfs::cwd(t.tgid).map(|c| self.strings.intern(&c))
        };
        let cgroup = self.cgroups.lookup(t.tgid, r.cgroup_id);
        let parent_ticks = self.clock.ticks(t.parent_start_boottime_ns);
        let cmdline = self.strings.intern(&cmdline);
        let info = ProcInfo {
            cwd,
            loginuid: r.loginuid,
            cgroup,
            since_ns: t.ts_boot_ns,
            ..self.identity(t.tgid, ticks, t.ppid, parent_ticks, t.uid, image, cmdline)
        };
        let info = self.table.insert(info);
        if let Some(names) = &self.containers {
            names.launcher_exec(&info.image, &r.argv);
        }
        let mut ev = self.common(EventKind::ProcessCreation, t.ts_boot_ns, &info);
        ev.push_str(f::COMMAND_LINE, &*info.cmdline);
        if let Some(cwd) = &info.cwd {
            ev.push_str(f::CURRENT_DIRECTORY, &**cwd);
        }
        ev.push_str(f::USER, &*info.user);
        ev.push_int(f::LOGON_ID, info.loginuid as i64);
        if t.ppid != 0 {
            let pguid = self.guids.guid(t.ppid, info.parent_start_ticks);
            ev.push_str(f::PARENT_PROCESS_GUID, pguid);
            ev.push_int(f::PARENT_PROCESS_ID, t.ppid as i64);
        }
        parent_fields(&mut ev, parent.as_deref());
        ev.push(f::COMMAND_LINE_TRUNCATED, Value::Bool(truncated));
        self.container_fields(&mut ev, info.cgroup.as_ref());
        if let Some(CgroupInfo { path, .. }) = &info.cgroup {
            ev.push_str(f::CGROUP_PATH, &**path);
        }
        ev
    }

    fn exit(&mut self, r: ExitRaw) -> Event {
        let info = self.process_of(&r.task);
        self.table.mark_exited(info.key(), Instant::now());
        let mut ev = self.common(EventKind::ProcessTermination, r.task.ts_boot_ns, &info);
        ev.push_str(f::USER, &*info.user);
        ev.push_int(f::EXIT_CODE, exit_code(r.exit_status));
        self.container_fields(&mut ev, info.cgroup.as_ref());
        ev
    }

    fn file(&mut self, r: FileRaw) -> Option<Event> {
        let raw_path =
            Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&r.path));
        let info = self.process_of(&r.task);
        let target = if r.path_resolved {
            raw_path.to_path_buf()
        } else if raw_path.is_absolute() {
            paths::resolve(Path::new("/"), raw_path)
        } else {
            let base = if r.dfd == AT_FDCWD {
                procfs::cwd_path(r.task.tgid).or_else(|| info.cwd.as_deref().map(PathBuf::from))
            } else {
                procfs::fd_path(r.task.tgid, r.dfd)
            };
            match base {
                Some(b) => paths::resolve(&b, raw_path),
                None => raw_path.to_path_buf(),
            }
        };
        if !paths::under_any(&target, &self.watch_dirs) {
            return None;
        }
        let time = self.utc_time(r.task.ts_boot_ns);
        let mut ev = self.common(EventKind::FileEvent, r.task.ts_boot_ns, &info);
        ev.push_str(
            f::TARGET_FILENAME,
            bytes_to_string(target.as_os_str().as_encoded_bytes()),
        );
        ev.push_str(f::CREATION_UTC_TIME, time);
        ev.push_str(
            f::FILE_ACTION,
            if r.overwritten {
                "overwritten"
            } else {
                "created"
            },
        );
        ev.push_str(f::USER, &*info.user);
        self.container_fields(&mut ev, info.cgroup.as_ref());
        Some(ev)
    }

    fn net(&mut self, r: NetRaw) -> Event {
        let (mut ev, process) = match &r.task {
            Some(t) => {
                let info = self.process_of(t);
                let mut ev = self.common(EventKind::NetworkConnection, r.ts_boot_ns, &info);
                ev.push_str(f::USER, &*info.user);
                (ev, Some(info))
            }
            None => {
                // Accepted with no known listener: no process rather than a wrong one.
                let mut ev = Event::new(EventKind::NetworkConnection);
                ev.push_str(f::UTC_TIME, self.utc_time(r.ts_boot_ns));
                (ev, None)
            }
        };
        let (sip, dip) = (canonical_ip(r.source), canonical_ip(r.destination));
        ev.push_str(f::PROTOCOL, "tcp");
        ev.push_str(f::INITIATED, if r.initiated { "true" } else { "false" });
        ev.push_str(
            f::SOURCE_IS_IPV6,
            if sip.is_ipv6() { "true" } else { "false" },
        );
        ev.push_str(f::SOURCE_IP, sip.to_string());
        ev.push_int(f::SOURCE_PORT, r.source.port() as i64);
        ev.push_str(
            f::DESTINATION_IS_IPV6,
            if dip.is_ipv6() { "true" } else { "false" },
        );
        ev.push_str(f::DESTINATION_IP, dip.to_string());
        // Names come from answers received before the connect; inbound peers are not looked up.
        let name = if r.initiated {
            let owner = r.task.as_ref().map(|t| (t.tgid, t.start_boottime_ns));
            self.dns.lookup(owner, dip, Instant::now())
        } else {
            None
        };
        ev.push_str(f::DESTINATION_HOSTNAME, name.as_deref().unwrap_or(""));
        ev.push_int(f::DESTINATION_PORT, r.destination.port() as i64);
        self.container_fields(&mut ev, process.as_ref().and_then(|p| p.cgroup.as_ref()));
        ev
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, dual-stack sockets) shown as IPv4 so IPv4 rules match.
fn canonical_ip(a: SocketAddr) -> IpAddr {
    match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137); // SIGKILL
        assert_eq!(exit_code(15 | 0x80), 143); // SIGTERM with core flag
    }

    #[test]
    fn mapped_ipv4_shown_as_ipv4() {
        let a: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        assert_eq!(canonical_ip(a).to_string(), "127.0.0.1");
        let b: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(canonical_ip(b).to_string(), "::1");
    }
}
