//! `#[repr(C)]` records written by the kernel programs into ring buffers and read by the agent.
//!
//! Every record starts with a [`RecordHeader`], whose [`RecordKind`] says what it is. Small records are reserved in the ring at their
//! fixed size; exec and file records are built in per-CPU scratch and sent with their used
//! bytes only (`exec_record_len`, `file_record_len`). Layout changes must be made on both sides
//! at once: the agent checks each item's length against the lengths its head announces.
#![no_std]

/// Length of `task->comm`.
pub const COMM_LEN: usize = 16;
/// Bytes of the exec'd filename kept (the kernel's `bprm->filename`).
pub const EXEC_FILENAME_LEN: usize = 512;
/// Bytes of argv copied from the new mm. One byte is kept for the verifier's bound, so at most
/// `ARGV_LEN - 1` bytes are captured; longer command lines are flagged truncated.
pub const ARGV_LEN: usize = 4096;
/// Bytes of a path given to open(2).
pub const PATH_LEN: usize = 1024;
/// Bytes of a watched prefix in the kernel filter (LPM trie key data).
pub const PREFIX_LEN: usize = 128;
/// Maximum number of watched prefixes.
pub const MAX_WATCHED_PREFIXES: u32 = 64;

/// The ring buffers, stated once: each ring's `LOST` slot (its discriminant), its map name
/// (the `#[map]` static of that name in aurora-ebpf/src/maps.rs), its metric label and its size
/// class. The records each one carries are decoded by the agent's `decode::decode`, which
/// matches on this enum without a catch-all arm.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// `ExecRecord`s.
    Exec = 0,
    /// `ExitRecord`s.
    Exit = 1,
    /// `FileRecord`s.
    File = 2,
    /// `NetRecord`s and `DnsRecord`s: one ring, so an answer is always read before the connect
    /// that follows it (records of one ring keep their order). The two are told apart by their
    /// header's [`RecordKind`].
    Net = 3,
}

impl Ring {
    pub const COUNT: usize = 4;
    pub const ALL: [Ring; Ring::COUNT] = [Ring::Exec, Ring::Exit, Ring::File, Ring::Net];

    pub const fn index(self) -> usize {
        self as usize
    }

    /// The map's name in the object.
    pub const fn map_name(self) -> &'static str {
        match self {
            Ring::Exec => "EXEC_RING",
            Ring::Exit => "EXIT_RING",
            Ring::File => "FILE_RING",
            Ring::Net => "NET_RING",
        }
    }

    /// The `ring` label of the agent's metrics.
    pub const fn label(self) -> &'static str {
        match self {
            Ring::Exec => "exec",
            Ring::Exit => "exit",
            Ring::File => "file",
            Ring::Net => "net",
        }
    }

    /// Exit, file and connection records are 5-50x smaller than exec records (file records
    /// carry only their used path, ~100 bytes for most): their rings get a quarter of the
    /// configured size.
    pub const fn small(self) -> bool {
        matches!(self, Ring::Exit | Ring::File | Ring::Net)
    }
}

/// `LOST` slots, for the kernel programs (`count_lost(RING_EXEC)`).
pub const RING_EXEC: u32 = Ring::Exec as u32;
pub const RING_EXIT: u32 = Ring::Exit as u32;
pub const RING_FILE: u32 = Ring::File as u32;
pub const RING_NET: u32 = Ring::Net as u32;
pub const RING_COUNT: u32 = Ring::COUNT as u32;

/// Bytes of a DNS answer's UDP payload copied (EDNS's recommended maximum UDP size; longer
/// answers are cut and their tail records lost to the parser).
pub const DNS_PAYLOAD_LEN: usize = 1232;

/// Flag bits in [`ExecHead::flags`].
pub const EXEC_ARGV_TRUNCATED: u32 = 1;
pub const EXEC_ARGV_UNREADABLE: u32 = 2;
pub const EXEC_FILENAME_TRUNCATED: u32 = 4;

/// Flag bits in [`FileHead::flags`].
pub const FILE_PATH_TRUNCATED: u32 = 1;
/// `path` is the absolute path of the opened file, resolved in the kernel from the new fd
/// (mounts crossed, `..` and symlinks resolved); otherwise it is the caller's argument.
pub const FILE_PATH_RESOLVED: u32 = 2;
/// [`FileHead::action`]: the open created the file (FMODE_CREATED).
pub const FILE_ACTION_CREATED: u32 = 1;
/// [`FileHead::action`]: the open truncated an existing regular file (O_TRUNC).
pub const FILE_ACTION_OVERWRITTEN: u32 = 2;

/// Bytes of the per-CPU scratch buffer the kernel builds a resolved path in (twice PATH_LEN).
pub const PATH_SCRATCH_LEN: usize = 2 * PATH_LEN;

/// [`NetRecord::direction`].
pub const NET_OUTBOUND: u8 = 1;
pub const NET_INBOUND: u8 = 2;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;

/// What a ring record is: the header's `kind`, set by the program that wrote it. The agent
/// dispatches on it (the NET ring carries two kinds) and rejects an item of a kind its ring
/// does not carry; lengths are only checked, never used to tell records apart.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Exec = 1,
    Exit = 2,
    File = 3,
    Net = 4,
    Dns = 5,
    /// A [`BlockRecord`], on the exec ring right after the exec it is about.
    Block = 6,
}

impl RecordKind {
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Exec,
        RecordKind::Exit,
        RecordKind::File,
        RecordKind::Net,
        RecordKind::Dns,
        RecordKind::Block,
    ];

    /// The kind a header's `kind` names (the discriminants above are the only source of the
    /// numbers).
    pub fn from_u32(v: u32) -> Option<RecordKind> {
        Self::ALL.into_iter().find(|k| *k as u32 == v)
    }
}

/// The process a record is about, as the kernel saw it. The same struct is what the socket
/// maps remember of a connecting or listening process for use later in softirq.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskIdentity {
    /// Thread-group id (the process id user space sees).
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    /// `group_leader->start_boottime` in ns: with `tgid` the key that survives PID reuse.
    pub start_boottime_ns: u64,
    /// `real_parent->group_leader->start_boottime` in ns (0 when unknown).
    pub parent_start_boottime_ns: u64,
    /// `real_parent->tgid` (0 when unknown).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

impl TaskIdentity {
    /// No process (an inbound connection whose listener is unknown).
    pub const NONE: TaskIdentity = TaskIdentity {
        tgid: 0,
        pid: 0,
        start_boottime_ns: 0,
        parent_start_boottime_ns: 0,
        ppid: 0,
        uid: 0,
        gid: 0,
        _pad: 0,
        comm: [0; COMM_LEN],
    };
}

/// Common prefix of every record. `ts_boot_ns` is `bpf_ktime_get_boot_ns()`; the agent turns it
/// into wall-clock time with an offset measured at startup.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    pub ts_boot_ns: u64,
    /// A [`RecordKind`].
    pub kind: u32,
    pub _pad: u32,
    pub task: TaskIdentity,
}

/// The fixed part of an [`ExecRecord`], which the agent reads by value before slicing the
/// tail's parts out of the ring item in place.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecHead {
    pub header: RecordHeader,
    pub loginuid: u32,
    pub _pad: u32,
    pub cgroup_id: u64,
    pub sessionid: u32,
    pub flags: u32,
    /// Bytes of the filename in the tail, without the NUL (< EXEC_FILENAME_LEN).
    pub filename_len: u32,
    /// Bytes of argv in the tail (NULs between arguments kept; < ARGV_LEN).
    pub args_len: u32,
    /// Bytes of the executable's path in the tail (< PATH_LEN); 0 when the kernel-side walk
    /// failed (user space falls back). The path is `mm->exe_file` as /proc/PID/exe shows it,
    /// read in the kernel at exec: right even when the process exits or execs again at once.
    pub exe_len: u32,
    /// Bytes of the working directory at exec (`fs->pwd`) in the tail (< PATH_LEN); 0 when the
    /// kernel-side walk failed.
    pub cwd_len: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecRecord {
    pub head: ExecHead,
    /// Filename, exe, cwd and argv back to back, no separators ([`exec_tail_parts`]). Packed
    /// so that an exec sends its used bytes only (~200 for a typical command, not the 2.6 KB
    /// of three fixed path arrays): less to copy in the exec'ing task, less ring memory for
    /// the agent's core to pull across.
    pub tail: [u8; EXEC_TAIL_LEN],
}

/// Bytes of [`ExecRecord::tail`]. The kernel places each part at an offset masked to a power
/// of two, so the verifier sees every write in bounds: exe starts below 512, cwd below 2048,
/// argv below 4096 and runs for at most 4095 bytes.
pub const EXEC_TAIL_LEN: usize = 8192;

/// The parts of an exec record's tail in the order the kernel packs them: `(start, len)` of
/// filename, exe, cwd and argv, from the head's lengths each clamped below its cap (a hostile
/// or corrupt length cannot reach past what the kernel can write).
pub const fn exec_tail_parts(
    filename_len: u32,
    exe_len: u32,
    cwd_len: u32,
    args_len: u32,
) -> [(usize, usize); 4] {
    const fn below(len: u32, cap: usize) -> usize {
        let len = len as usize;
        if len < cap {
            len
        } else {
            cap - 1
        }
    }
    let f = below(filename_len, EXEC_FILENAME_LEN);
    let e = below(exe_len, PATH_LEN);
    let c = below(cwd_len, PATH_LEN);
    let a = below(args_len, ARGV_LEN);
    [(0, f), (f, e), (f + e, c), (f + e + c, a)]
}

/// Bytes of an exec record whose tail holds parts of these lengths (the head, then the parts).
pub const fn exec_record_len(
    filename_len: u32,
    exe_len: u32,
    cwd_len: u32,
    args_len: u32,
) -> usize {
    let [_, _, _, (start, len)] = exec_tail_parts(filename_len, exe_len, cwd_len, args_len);
    core::mem::offset_of!(ExecRecord, tail) + start + len
}

// The masked offsets the kernel uses hold the largest parts (see EXEC_TAIL_LEN).
const _: () = {
    assert!(EXEC_FILENAME_LEN <= 512 && PATH_LEN <= 1024 && ARGV_LEN <= 4096);
    assert!(EXEC_FILENAME_LEN - 1 + PATH_LEN <= 2048);
    assert!(2048 + PATH_LEN <= 4096);
    assert!(4096 + ARGV_LEN <= EXEC_TAIL_LEN);
};

/// Bytes of a record whose last array starts at `tail` and holds `cap` bytes, of which `used`
/// are in use: file records go into their ring only this long.
const fn used_record_len(tail: usize, used: usize, cap: usize) -> usize {
    tail + if used < cap { used } else { cap }
}

/// Bytes of a file record with a `path_len`-byte path (the head, then the used part of the
/// path; the NUL is not sent).
pub const fn file_record_len(path_len: usize) -> usize {
    used_record_len(core::mem::offset_of!(FileRecord, path), path_len, PATH_LEN)
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub header: RecordHeader,
    /// Raw `task->exit_code` (status as wait(2) reports it).
    pub exit_code: u32,
    pub _pad: u32,
}

/// The fixed part of a [`FileRecord`] (read by value; the path is sliced in place).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileHead {
    pub header: RecordHeader,
    /// `dfd` argument of openat (AT_FDCWD = -100 for cwd-relative).
    pub dfd: i32,
    pub open_flags: u32,
    pub mode: u32,
    /// Returned file descriptor (-1 from the VFS hook, which runs before it is installed).
    pub fd: i32,
    pub flags: u32,
    /// Bytes of `path` used, without the NUL.
    pub path_len: u32,
    /// FILE_ACTION_CREATED or FILE_ACTION_OVERWRITTEN.
    pub action: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileRecord {
    pub head: FileHead,
    pub path: [u8; PATH_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetRecord {
    pub header: RecordHeader,
    pub family: u16,
    pub protocol: u16,
    pub sport: u16,
    pub dport: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// NET_OUTBOUND or NET_INBOUND.
    pub direction: u8,
    /// 0 when no owning process is known (inbound with no recorded listener): the header's
    /// process fields are then zero and must not be used.
    pub has_owner: u8,
    pub _pad: [u8; 6],
}

/// [`DnsHead::flags`]: captured in the receiving process's context.
pub const DNS_SEEN_BY_PROCESS: u32 = 1;

/// A DNS answer (UDP from port 53) seen on its way to a process, in the NET ring (see
/// RING_NET): the DNS message and, when known, the process that received it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsRecord {
    pub head: DnsHead,
    pub payload: [u8; DNS_PAYLOAD_LEN],
}

/// The fixed part of a [`DnsRecord`] (read by value; the payload is sliced in place).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsHead {
    pub header: RecordHeader,
    /// Bytes of the payload used.
    pub len: u32,
    /// DNS_SEEN_BY_PROCESS when the header names the process that received the answer;
    /// otherwise it was seen on the way in (softirq) and the header's process fields are zero.
    pub flags: u32,
}

/// Key of the listener map: (family, local port, local address).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenKey {
    pub family: u16,
    pub port: u16,
    pub addr: [u8; 16],
}

/// Pending openat with O_CREAT, saved at sys_enter for sys_exit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PendingOpen {
    pub filename_ptr: u64,
    pub dfd: i32,
    pub open_flags: u32,
    pub mode: u32,
    pub _pad: u32,
}

/// What `co_re/helpers.c`'s `aurora_sock_state_read` writes (a copy of the
/// inet_sock_set_state tracepoint record). Its size and field offsets are handed to clang by
/// aurora-ebpf/build.rs and checked there with `_Static_assert`, so the C and Rust halves
/// cannot drift apart.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockState {
    pub skaddr: u64,
    pub oldstate: i32,
    pub newstate: i32,
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub protocol: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// A file as the kernel names it: `super_block->s_dev` (the kernel's dev_t, `major << 20 |
/// minor`, not stat's encoding) and the inode number. The key of the deny maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

/// Capacity of each deny map (entries across every loaded policy).
pub const MAX_DENY_ENTRIES: u32 = 65536;
/// Capacity of the exempt-cgroup map.
pub const MAX_EXEMPT_CGROUPS: u32 = 1024;

/// [`DenyEntry::flags`]: the entry's policy is in enforce mode (else audit: reported only).
pub const DENY_ENFORCE: u32 = 1;
/// A watch, not a deny: every open of the file is reported (`BLOCK_ACTION_WATCHED`), never
/// refused. Fed to the auditd rules that name the file (PATH records).
pub const DENY_WATCH_ANY: u32 = 2;
/// A watch of opens for writing only.
pub const DENY_WATCH_WRITE: u32 = 4;

/// A deny map's value: which policy entry matched (an index into the agent's table of the
/// loaded policies) and how to act.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyEntry {
    pub entry: u32,
    pub flags: u32,
}

/// [`BlockRecord::action`]: the operation was refused (BPF LSM returned -EPERM).
pub const BLOCK_ACTION_BLOCKED: u32 = 1;
/// The process was sent SIGKILL before it returned to user space (tracepoint fallback).
pub const BLOCK_ACTION_KILLED: u32 = 2;
/// Audit mode: nothing was stopped, the policy would have.
pub const BLOCK_ACTION_WOULD_BLOCK: u32 = 3;

/// The process was stopped (SIGSTOP) at exec until user space has hashed its executable
/// (the policy has sha256 entries and the file is not in `KNOWN_EXEC`).
pub const BLOCK_ACTION_HELD: u32 = 4;
/// A watched file was opened (nothing was stopped).
pub const BLOCK_ACTION_WATCHED: u32 = 5;
/// [`BlockRecord::entry`] of a record no entry matched yet (a hold).
pub const NO_ENTRY: u32 = u32::MAX;

/// What the hash cache (`KNOWN_EXEC`) remembers of an executable user space hashed and found
/// allowed: its change time and size when hashed. Any write moves ctime, so a changed file
/// misses the cache and is held again.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub ctime_ns: u64,
    pub size: u64,
}

/// Capacity of the hash cache.
pub const MAX_KNOWN_EXEC: u32 = 65536;

/// [`BlockRecord::target`]: what was denied.
pub const BLOCK_TARGET_EXEC: u32 = 1;
pub const BLOCK_TARGET_OPEN: u32 = 2;

/// A policy decision in the kernel: the process (header), the file and the entry that matched.
/// Reserved whole (decisions are rare): no packing.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockRecord {
    pub header: RecordHeader,
    pub file: FileKey,
    pub cgroup_id: u64,
    pub entry: u32,
    pub action: u32,
    pub target: u32,
    /// Bytes of `path` in use (0: the kernel-side walk failed).
    pub path_len: u32,
    /// The denied file's absolute path, walked in the kernel.
    pub path: [u8; PATH_LEN],
}

/// `ENFORCE` (a kernel map) slot the loader writes once the programs are attached: which operations BPF
/// LSM enforces (`ENFORCE_LSM_*`); the tracepoint fallbacks stand aside for those.
pub const ENFORCE_SLOT_LSM: u32 = 0;
/// `ENFORCE` (a kernel map) slot the agent writes with each policy: what the policy has (`ENFORCE_POLICY_*`),
/// so hooks on every open leave at once when there is nothing to check.
pub const ENFORCE_SLOT_POLICY: u32 = 1;
pub const ENFORCE_SLOTS: u32 = 2;
pub const ENFORCE_LSM_EXEC: u32 = 1;
pub const ENFORCE_LSM_OPEN: u32 = 2;
pub const ENFORCE_POLICY_OPEN: u32 = 1;
pub const ENFORCE_POLICY_EXEMPT_IMAGES: u32 = 2;
/// The policy has sha256 entries: hold executables not in the hash cache.
pub const ENFORCE_POLICY_HASH: u32 = 4;
/// The policy has directory (`prefix:`) open entries: opens walk up the opened file's
/// directories (without, an open costs one map lookup).
pub const ENFORCE_POLICY_OPEN_DIRS: u32 = 8;
/// Directory levels above an opened file checked against `prefix:` entries.
pub const DENY_DIR_DEPTH: usize = 16;

// The layout both halves compile against: sizes and alignments of every record shared with
// the kernel, and no hidden padding before a record's tail.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<TaskIdentity>() == 56 && align_of::<TaskIdentity>() == 8);
    assert!(size_of::<RecordHeader>() == 72 && align_of::<RecordHeader>() == 8);
    assert!(offset_of!(RecordHeader, task) == 16);
    assert!(size_of::<ExecHead>() == 112 && align_of::<ExecHead>() == 8);
    assert!(offset_of!(ExecRecord, tail) == size_of::<ExecHead>());
    assert!(size_of::<ExecRecord>() == 112 + EXEC_TAIL_LEN);
    assert!(size_of::<ExitRecord>() == 80 && align_of::<ExitRecord>() == 8);
    assert!(size_of::<FileHead>() == 104 && align_of::<FileHead>() == 8);
    assert!(offset_of!(FileRecord, path) == size_of::<FileHead>());
    assert!(size_of::<FileRecord>() == 104 + PATH_LEN);
    assert!(size_of::<NetRecord>() == 120 && align_of::<NetRecord>() == 8);
    assert!(size_of::<DnsHead>() == 80 && align_of::<DnsHead>() == 8);
    assert!(offset_of!(DnsRecord, payload) == size_of::<DnsHead>());
    assert!(size_of::<DnsRecord>() == 80 + DNS_PAYLOAD_LEN);
    assert!(size_of::<ListenKey>() == 20 && align_of::<ListenKey>() == 2);
    assert!(size_of::<PendingOpen>() == 24 && align_of::<PendingOpen>() == 8);
    assert!(size_of::<SockState>() == 56 && align_of::<SockState>() == 8);
    assert!(size_of::<FileKey>() == 16 && size_of::<DenyEntry>() == 8);
    assert!(size_of::<BlockRecord>() == 112 + PATH_LEN && align_of::<BlockRecord>() == 8);
};

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: plain-old-data records: repr(C), integer arrays only, every bit pattern valid.
    unsafe impl aya::Pod for TaskIdentity {}
    unsafe impl aya::Pod for ListenKey {}
    unsafe impl aya::Pod for PendingOpen {}
    unsafe impl aya::Pod for RecordHeader {}
    unsafe impl aya::Pod for ExecRecord {}
    unsafe impl aya::Pod for ExitRecord {}
    unsafe impl aya::Pod for FileRecord {}
    unsafe impl aya::Pod for NetRecord {}
    unsafe impl aya::Pod for DnsRecord {}
    unsafe impl aya::Pod for ExecHead {}
    unsafe impl aya::Pod for FileHead {}
    unsafe impl aya::Pod for DnsHead {}
    unsafe impl aya::Pod for FileKey {}
    unsafe impl aya::Pod for DenyEntry {}
    unsafe impl aya::Pod for BlockRecord {}
    unsafe impl aya::Pod for FileStamp {}
}

/// Decode a record of type `T` from a ring-buffer item, checking its size.
///
/// Returns `None` when the item is shorter than `T` (a layout mismatch between the kernel and
/// user halves, or a corrupted item); never reads out of bounds. `T: aya::Pod` limits it to
/// plain-old-data types, for which any bytes are a valid value.
#[cfg(feature = "user")]
pub fn read_record<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < core::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; records are repr(C) POD and read unaligned.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}
