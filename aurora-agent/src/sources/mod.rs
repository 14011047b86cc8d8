//! Where events come from: the kernel (`ebpf`), logs other programs write (`auditd`,
//! `syslog`, followed by `follow` + `tail`), or recorded files (`replay`).
pub mod auditd;
pub mod ebpf;
pub mod follow;
pub mod jetstream;
pub mod logs;
pub mod replay;
pub mod syslog;
pub mod tail;

/// Identity of the task a kernel record was made in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskIdent {
    pub ts_boot_ns: u64,
    pub tgid: u32,
    pub pid: u32,
    pub start_boottime_ns: u64,
    pub ppid: u32,
    pub parent_start_boottime_ns: u64,
    pub uid: u32,
    pub gid: u32,
    pub comm: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRaw {
    pub task: TaskIdent,
    pub loginuid: u32,
    pub cgroup_id: u64,
    pub filename: Vec<u8>,
    /// argv bytes, NUL-separated, as copied from the new mm.
    pub argv: Vec<u8>,
    pub argv_truncated: bool,
    /// Executable path resolved in the kernel; empty when that failed.
    pub exe: Vec<u8>,
    /// Working directory resolved in the kernel; empty when that failed.
    pub cwd: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitRaw {
    pub task: TaskIdent,
    pub exit_status: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRaw {
    pub task: TaskIdent,
    pub dfd: i32,
    pub open_flags: u32,
    pub mode: u32,
    pub fd: i32,
    pub path: Vec<u8>,
    pub path_truncated: bool,
    /// `path` was resolved in the kernel from the new fd: absolute and normalised already.
    pub path_resolved: bool,
    /// The open truncated an existing file (Sysmon's FileCreate also covers overwrites);
    /// false when it created the file.
    pub overwritten: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRaw {
    /// `None` when no owning process is known (an inbound connection without a recorded listener).
    pub task: Option<TaskIdent>,
    pub ts_boot_ns: u64,
    pub source: std::net::SocketAddr,
    pub destination: std::net::SocketAddr,
    /// true for connect(2) (outbound), false for accepted (inbound).
    pub initiated: bool,
}

/// A policy decision made in the kernel: who, which file, which entry, what was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRaw {
    pub task: TaskIdent,
    pub file: aurora_common::FileKey,
    pub cgroup_id: u64,
    /// Index into the loaded policies' entry table.
    pub entry: u32,
    /// `aurora_common::BLOCK_ACTION_*`.
    pub action: u32,
    /// `aurora_common::BLOCK_TARGET_*`.
    pub target: u32,
    /// The denied file's path as the kernel walked it (empty when the walk failed).
    pub path: Vec<u8>,
}

/// A DNS answer a process received (the UDP payload from port 53).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRaw {
    /// The receiving process, when the answer was seen in its context.
    pub task: Option<TaskIdent>,
    pub payload: Vec<u8>,
}

/// A decoded kernel record, before enrichment.
#[derive(Clone, Debug, PartialEq)]
pub enum RawEvent {
    Exec(ExecRaw),
    Exit(ExitRaw),
    File(FileRaw),
    Net(NetRaw),
    /// A policy decision the kernel made (`--policy`).
    Block(BlockRaw),
    /// Not an event of its own: feeds the DNS cache that names connection destinations.
    Dns(DnsRaw),
    /// An event a log source made whole (auditd, system logs): passed through enrichment.
    Log(crate::event::Event),
    /// An event recorded earlier (replay, consume): whole, but its parent fields may be left
    /// for correlation with the processes recorded before it.
    Recorded(crate::event::Event),
}

/// What the pipeline reads: the one way every mode drives it (the live queue, a replayed file,
/// stdin through its reader thread, a JetStream consumer).
pub trait Input {
    /// The next record, `Empty` when none is ready yet, `End` when there will be none.
    fn next(&mut self) -> Next;
    /// After `Empty` (and the pipeline's flush): block until a record is ready or the input
    /// ends. An input that acknowledges what it read (JetStream) does so here: everything
    /// before was written out by the flush.
    fn wait(&mut self) -> Next;
}

pub enum Next {
    Record(RawEvent),
    Empty,
    End,
}

/// The live sources' queue (and stdin's): empty is "not ready yet"; every sender gone is the
/// end.
impl Input for tokio::sync::mpsc::Receiver<RawEvent> {
    fn next(&mut self) -> Next {
        match self.try_recv() {
            Ok(raw) => Next::Record(raw),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => Next::Empty,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => Next::End,
        }
    }

    fn wait(&mut self) -> Next {
        match self.blocking_recv() {
            Some(raw) => Next::Record(raw),
            None => Next::End,
        }
    }
}
