//! Maps shared by the programs. Ring sizes here are defaults: the agent sets the real size at
//! load time (`--ringbuf-size`, via `EbpfLoader::map_max_entries`).
use aurora_common::{
    BlockRecord, DenyEntry, ExecRecord, FileKey, FileRecord, FileStamp, ListenKey, PendingOpen,
    RecordHeader, RecordKind, TaskIdentity, COMM_LEN, MAX_WATCHED_PREFIXES, PATH_SCRATCH_LEN,
    PREFIX_LEN, RING_COUNT,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::bpf_ktime_get_boot_ns,
    },
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    Global,
};
use core::ffi::c_void;

use crate::co_re;

const DEFAULT_RING_BYTES: u32 = 1 << 22;

#[map]
pub static EXEC_RING: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);
#[map]
pub static EXIT_RING: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);
#[map]
pub static FILE_RING: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);
#[map]
pub static NET_RING: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Reserve failures per ring (indexed by `aurora_common::RING_*`), summed over CPUs by the agent.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(RING_COUNT, 0);

/// openat/openat2/creat/open with O_CREAT between sys_enter and sys_exit, keyed by pid_tgid.
/// Small on purpose: every open's sys_exit looks up its thread here, and the lookup hashes to
/// a random bucket; 16,384 buckets (256 KB) made that a cache and TLB miss, 1,024 (16 KB) stay
/// cached (sys_exit_openat 293 → 165 ns a run, bpf_stats on this VM). An entry lives only
/// while its thread is inside the call, so 1,024 threads would have to be creating files at
/// the same moment; beyond that, inserts fail and are counted as file-ring loss.
#[map]
pub static PENDING_OPENS: HashMap<u64, PendingOpen> = HashMap::with_max_entries(1024, 0);

/// Owner of a socket in SYN_SENT, keyed by the sock address (recorded in connect(2)'s context).
#[map]
pub static CONNECTING: LruHashMap<u64, TaskIdentity> = LruHashMap::with_max_entries(16384, 0);

/// Owner of each listening socket, keyed by (family, port, address), for inbound attribution.
#[map]
pub static LISTENERS: LruHashMap<ListenKey, TaskIdentity> = LruHashMap::with_max_entries(8192, 0);

/// Per-CPU scratch space where `aurora_path_walk` (created files, exe, cwd) builds a path
/// backwards (too big for the 512-byte BPF stack).
#[map]
pub static PATH_SCRATCH: PerCpuArray<[u8; PATH_SCRATCH_LEN]> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU space where an exec record is built before it is copied into EXEC_RING with only its
/// used bytes (`exec_record_len`): a ring reservation must have a constant size, and the
/// full record is 8.3 KB while most execs use under 400 bytes.
#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecRecord> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU space where a file record is built before it is copied into FILE_RING with only its
/// used path (`file_record_len`): 1.1 KB reserved per record, ~150 bytes sent for most.
#[map]
pub static FILE_SCRATCH: PerCpuArray<FileRecord> = PerCpuArray::with_max_entries(1, 0);

/// Executables denied by the loaded policies (`--policy`), by the (dev, inode) user space
/// resolved each entry to; rewritten on every policy (re)load.
#[map]
pub static DENY_EXEC: HashMap<FileKey, DenyEntry> =
    HashMap::with_max_entries(aurora_common::MAX_DENY_ENTRIES, 0);

/// Files denied to open (`deny_open: path`), by (dev, inode).
#[map]
pub static DENY_OPEN: HashMap<FileKey, DenyEntry> =
    HashMap::with_max_entries(aurora_common::MAX_DENY_ENTRIES, 0);

/// Directories whose contents are denied to open (`deny_open: prefix`), by (dev, inode).
#[map]
pub static DENY_OPEN_DIRS: HashMap<FileKey, DenyEntry> =
    HashMap::with_max_entries(aurora_common::MAX_EXEMPT_CGROUPS, 0);

/// Executables whose processes no policy applies to (`exempt: images`), by (dev, inode).
#[map]
pub static EXEMPT_IMAGES: HashMap<FileKey, u8> =
    HashMap::with_max_entries(aurora_common::MAX_EXEMPT_CGROUPS, 0);

/// Executables user space hashed and found allowed, with the stamp they had then.
#[map]
pub static KNOWN_EXEC: LruHashMap<FileKey, FileStamp> =
    LruHashMap::with_max_entries(aurora_common::MAX_KNOWN_EXEC, 0);

/// Enforcement flags (`aurora_common::ENFORCE_SLOT_*`).
#[map]
pub static ENFORCE: Array<u32> = Array::with_max_entries(aurora_common::ENFORCE_SLOTS, 0);

/// Per-CPU space a block record is built in (1.1 KB: too big for the stack).
#[map]
pub static BLOCK_SCRATCH: PerCpuArray<BlockRecord> = PerCpuArray::with_max_entries(1, 0);

/// cgroup v2 ids whose processes no policy applies to (`exempt: cgroups`).
#[map]
pub static EXEMPT_CGROUPS: HashMap<u64, u8> =
    HashMap::with_max_entries(aurora_common::MAX_EXEMPT_CGROUPS, 0);

/// Path prefixes watched for file creation (`--watch-dir`); unused while `FILTER_PREFIXES` = 0.
#[map]
pub static WATCHED_PREFIXES: LpmTrie<[u8; PREFIX_LEN], u8> =
    LpmTrie::with_max_entries(MAX_WATCHED_PREFIXES, 1 /* BPF_F_NO_PREALLOC */);

/// 1 when `WATCHED_PREFIXES` filters absolute paths in the kernel (set at load time).
#[unsafe(no_mangle)]
pub static FILTER_PREFIXES: Global<u8> = Global::new(0);

const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_RING_SIZE: u64 = 1;
/// A submit wakes the agent once 1/2^WAKEUP_SHIFT of its own ring (a quarter) is pending;
/// below that, records wait for the agent's periodic drain tick: one wakeup per batch instead
/// of one per record. Relative to each ring, not one byte count for all: a threshold taken
/// from the exec ring equalled the whole of the smaller rings, which then never woke the agent
/// and overflowed in file and connect storms between two ticks.
const WAKEUP_SHIFT: u64 = 2;

/// Flags for `submit` on `ring`: wake the consumer only when enough is pending.
#[inline(always)]
pub fn wakeup_flags(ring: &RingBuf) -> u64 {
    if ring.query(BPF_RB_AVAIL_DATA) >= ring.query(BPF_RB_RING_SIZE) >> WAKEUP_SHIFT {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// The agent's own tgid: its events are not reported (no feedback loops from its log writes).
#[unsafe(no_mangle)]
pub static AGENT_TGID: Global<u32> = Global::new(0);

#[inline(always)]
pub fn count_lost(ring: u32) {
    if let Some(slot) = LOST.get_ptr_mut(ring) {
        // SAFETY: per-CPU slot, programs do not preempt each other on one CPU for tracepoints.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn is_agent(tgid: u32) -> bool {
    tgid == AGENT_TGID.load()
}

#[inline(always)]
pub fn current_owner(task: *const c_void) -> TaskIdentity {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    TaskIdentity {
        tgid: (pid_tgid >> 32) as u32,
        pid: pid_tgid as u32,
        // SAFETY: task is the current task pointer.
        start_boottime_ns: unsafe { co_re::aurora_task_process_start(task) },
        parent_start_boottime_ns: unsafe { co_re::aurora_task_parent_process_start(task) },
        ppid: unsafe { co_re::aurora_task_ppid(task) },
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]),
    }
}

/// Fill a record header in place: the time, what the record is, and the current task.
///
/// # Safety
/// `header` must point to writable memory (a ring reservation); `task` is the current task.
#[inline(always)]
pub unsafe fn fill_header(header: *mut RecordHeader, task: *const c_void, kind: RecordKind) {
    let owner = current_owner(task);
    unsafe { fill_header_from(header, &owner, kind) };
}

/// # Safety
/// `header` must point to writable memory (a ring reservation).
#[inline(always)]
pub unsafe fn fill_header_from(header: *mut RecordHeader, owner: &TaskIdentity, kind: RecordKind) {
    unsafe {
        (*header).ts_boot_ns = bpf_ktime_get_boot_ns();
        (*header).kind = kind as u32;
        (*header)._pad = 0;
        (*header).task = *owner;
    }
}
