//! Auditd-shaped records made from what the eBPF sensors saw: the fields the auditd source
//! produces for the same syscall (a record's own fields, then its event's SYSCALL fields
//! merged in, `sources/auditd/assemble.rs`), so SigmaHQ's auditd rules match them as they
//! match auditd's. What the sensors do not know is left out rather than guessed (gid, tty,
//! ses, the raw syscall arguments); `AuditSource: ebpf` tells them apart from auditd's.
use std::borrow::Cow;

use super::{names as f, Event, EventKind, Value};

/// The field naming who made a record (absent on auditd's own).
pub const AUDIT_SOURCE: &str = "AuditSource";
/// Its value on records made from the sensors.
pub const FROM_SENSORS: &str = "ebpf";

/// auditd's `key` when no audit rule key applies.
pub const NO_KEY: &str = "(null)";

#[cfg(target_arch = "aarch64")]
const ARCH: (&str, &str) = ("c00000b7", "aarch64");
#[cfg(not(target_arch = "aarch64"))]
const ARCH: (&str, &str) = ("c000003e", "x86_64");

/// A syscall auditd would have recorded: its name and number on this architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    Execve,
    Openat,
}

impl Syscall {
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Execve => "execve",
            Syscall::Openat => "openat",
        }
    }

    /// Its number (auditd's `syscall` field).
    pub fn number(self) -> &'static str {
        match (self, cfg!(target_arch = "aarch64")) {
            (Syscall::Execve, false) => "59",
            (Syscall::Openat, false) => "257",
            (Syscall::Execve, true) => "221",
            (Syscall::Openat, true) => "56",
        }
    }
}

/// The process a record is about, as the SYSCALL record names it.
#[derive(Clone, Debug)]
pub struct AuditProcess<'a> {
    pub pid: i64,
    pub ppid: i64,
    /// The login uid (`auid`; 4294967295 when unset).
    pub auid: i64,
    /// The real uid and its name, when known.
    pub uid: Option<(u32, &'a str)>,
    /// The executable (`exe`) after the syscall.
    pub exe: &'a str,
    pub time: Option<&'a str>,
}

/// `auid`'s value when no login set it.
const AUID_UNSET: i64 = u32::MAX as i64;

/// The kernel's `comm` for an executable: its file name, cut to 15 bytes (TASK_COMM_LEN).
pub fn comm_of(exe: &str) -> &str {
    let base = exe.rsplit('/').next().unwrap_or(exe);
    let mut end = base.len().min(15);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    &base[..end]
}

fn push(ev: &mut Event, name: &'static str, value: impl Into<compact_str::CompactString>) {
    ev.push(Cow::Borrowed(name), Value::Str(value.into()));
}

/// A record of `rtype` with its time: the fields every record starts with.
pub fn record(rtype: &'static str, time: Option<&str>) -> Event {
    let mut ev = Event::new(EventKind::Audit);
    if let Some(t) = time {
        push(&mut ev, f::UTC_TIME, t);
    }
    push(&mut ev, "type", rtype);
    ev
}

/// The SYSCALL record's fields, as the auditd source merges them into each record of the
/// event (in auditd's order, interpreted fields last).
pub fn push_syscall_fields(ev: &mut Event, p: &AuditProcess<'_>, sc: Syscall) {
    push(ev, "arch", ARCH.0);
    push(ev, "syscall", sc.number());
    push(ev, "success", "yes");
    push(ev, "exit", "0");
    push(ev, "ppid", itoa(p.ppid));
    push(ev, "pid", itoa(p.pid));
    push(ev, "auid", itoa(p.auid));
    if let Some((uid, _)) = p.uid {
        // The sensors see the real uid; the effective and filesystem ones usually equal it
        // (setuid executables are the exception auditd would show).
        let uid = itoa(i64::from(uid));
        for k in ["uid", "euid", "suid", "fsuid"] {
            push(ev, k, uid.clone());
        }
    }
    push(ev, "comm", comm_of(p.exe));
    push(ev, "exe", p.exe);
    push(ev, "key", NO_KEY);
    push(ev, "ARCH", ARCH.1);
    push(ev, "SYSCALL", sc.name());
    if p.auid == AUID_UNSET {
        push(ev, "AUID", "unset");
    }
    if let Some((_, name)) = p.uid {
        for k in ["UID", "EUID", "SUID", "FSUID"] {
            push(ev, k, name);
        }
    }
    push(ev, AUDIT_SOURCE, FROM_SENSORS);
}

fn itoa(n: i64) -> compact_str::CompactString {
    // compact_str's integer conversion, not format!: three records per exec carry several.
    compact_str::ToCompactString::to_compact_string(&n)
}

/// `a0`…`a63` as static names (argv beyond is cut, as `argc` says).
const ARG_NAMES: [&str; 64] = [
    "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12", "a13", "a14",
    "a15", "a16", "a17", "a18", "a19", "a20", "a21", "a22", "a23", "a24", "a25", "a26", "a27",
    "a28", "a29", "a30", "a31", "a32", "a33", "a34", "a35", "a36", "a37", "a38", "a39", "a40",
    "a41", "a42", "a43", "a44", "a45", "a46", "a47", "a48", "a49", "a50", "a51", "a52", "a53",
    "a54", "a55", "a56", "a57", "a58", "a59", "a60", "a61", "a62", "a63",
];

/// The static name of argument `i` (`a0`…`a63`), None beyond.
pub fn arg_name(i: usize) -> Option<&'static str> {
    ARG_NAMES.get(i).copied()
}

/// The EXECVE record of an exec with these arguments.
pub fn execve<'a>(p: &AuditProcess<'_>, args: impl Iterator<Item = &'a str> + Clone) -> Event {
    let mut ev = record("EXECVE", p.time);
    push(&mut ev, "argc", itoa(args.clone().count() as i64));
    for (name, a) in ARG_NAMES.iter().zip(args) {
        push(&mut ev, name, a);
    }
    push_syscall_fields(&mut ev, p, Syscall::Execve);
    ev
}

/// The SYSCALL record itself.
pub fn syscall(p: &AuditProcess<'_>, sc: Syscall) -> Event {
    let mut ev = record("SYSCALL", p.time);
    push_syscall_fields(&mut ev, p, sc);
    ev
}

/// A PATH record: `name` touched by the syscall, `nametype` NORMAL (an existing file) or
/// CREATE (a new one).
pub fn path(p: &AuditProcess<'_>, sc: Syscall, name: &str, nametype: &'static str) -> Event {
    let mut ev = record("PATH", p.time);
    push(&mut ev, "item", "0");
    push(&mut ev, "name", name);
    push(&mut ev, "nametype", nametype);
    push_syscall_fields(&mut ev, p, sc);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_is_the_file_name_cut_to_fifteen_bytes() {
        assert_eq!(comm_of("/usr/bin/split"), "split");
        assert_eq!(comm_of("/opt/a-very-long-program-name"), "a-very-long-pro");
        assert_eq!(comm_of("/x/ééééééééé"), "ééééééé");
    }

    #[test]
    fn execve_has_argv_then_the_syscall_fields() {
        let p = AuditProcess {
            pid: 10,
            ppid: 1,
            auid: AUID_UNSET,
            uid: Some((0, "root")),
            exe: "/usr/bin/grep",
            time: Some("2026-01-01 00:00:00.000"),
        };
        let ev = execve(&p, ["grep", "-ri", "password"].into_iter());
        let get = |k: &str| ev.get_str(k).unwrap_or("-").to_owned();
        assert_eq!(
            [
                get("type"),
                get("argc"),
                get("a2"),
                get("comm"),
                get("SYSCALL"),
                get("AUID"),
                get("euid")
            ],
            ["EXECVE", "3", "password", "grep", "execve", "unset", "0"]
        );
        assert!(!ev.has("a3"));
    }
}
