//! Ring-buffer item → [`RawEvent`]. Every item's header says what record it is
//! ([`RecordKind`]); the decoder dispatches on that, checks it is a kind the ring carries, reads
//! only the used bytes of the fixed-size records and never trusts a length field past its
//! buffer: a short, corrupt or misplaced item is an error, not a panic.
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aurora_common::{
    exec_record_len, exec_tail_parts, file_record_len, read_record, BlockRecord, DnsHead,
    DnsRecord, ExecHead, ExecRecord, ExitRecord, FileHead, FileRecord, NetRecord, RecordHeader,
    RecordKind, Ring, AF_INET, EXEC_ARGV_TRUNCATED, FILE_PATH_RESOLVED, FILE_PATH_TRUNCATED,
    NET_OUTBOUND,
};

use crate::event::text::c_str;
use crate::sources::{BlockRaw, DnsRaw, ExecRaw, ExitRaw, FileRaw, NetRaw, RawEvent, TaskIdent};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{ring} item of {got} bytes is shorter than its record ({want} bytes)")]
pub struct ShortRecord {
    pub ring: &'static str,
    pub got: usize,
    pub want: usize,
}

/// Why a ring item could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(transparent)]
    Short(#[from] ShortRecord),
    #[error("{ring} item of kind {kind}, which that ring does not carry")]
    Kind { ring: &'static str, kind: u32 },
}

fn check<T>(ring: &'static str, item: &[u8]) -> Result<(), ShortRecord> {
    if item.len() < size_of::<T>() {
        return Err(ShortRecord {
            ring,
            got: item.len(),
            want: size_of::<T>(),
        });
    }
    Ok(())
}

/// The head of a record sent with only its used bytes, checked against the length its own
/// fields announce (`len_of`).
fn sized_head<H: aya::Pod>(
    ring: Ring,
    item: &[u8],
    len_of: impl Fn(&H) -> usize,
) -> Result<H, ShortRecord> {
    let short = |want| ShortRecord {
        ring: ring.map_name(),
        got: item.len(),
        want,
    };
    let head: H = read_record(item).ok_or(short(size_of::<H>()))?;
    let want = len_of(&head);
    if item.len() < want {
        return Err(short(want));
    }
    Ok(head)
}

fn task(h: &RecordHeader) -> TaskIdent {
    let t = &h.task;
    TaskIdent {
        ts_boot_ns: h.ts_boot_ns,
        tgid: t.tgid,
        pid: t.pid,
        start_boottime_ns: t.start_boottime_ns,
        ppid: t.ppid,
        parent_start_boottime_ns: t.parent_start_boottime_ns,
        uid: t.uid,
        gid: t.gid,
        comm: c_str(&t.comm).to_vec(),
    }
}

/// `len` bytes (clamped to `cap`) of the array field at `off` in `item`.
fn bytes_at(item: &[u8], off: usize, len: u32, cap: usize) -> Vec<u8> {
    let len = (len as usize).min(cap);
    item.get(off..off + len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// One item of `ring`, by the kind its header names (each ring's kinds are stated with the
/// ring in `aurora_common::Ring`).
pub fn decode(ring: Ring, item: &[u8]) -> Result<RawEvent, DecodeError> {
    let header: RecordHeader = read_record(item).ok_or(ShortRecord {
        ring: ring.map_name(),
        got: item.len(),
        want: size_of::<RecordHeader>(),
    })?;
    let wrong = DecodeError::Kind {
        ring: ring.map_name(),
        kind: header.kind,
    };
    let Some(kind) = RecordKind::from_u32(header.kind) else {
        return Err(wrong);
    };
    Ok(match (ring, kind) {
        (Ring::Exec, RecordKind::Exec) => exec(item)?,
        (Ring::Exec, RecordKind::Block) => block(item)?,
        (Ring::Exit, RecordKind::Exit) => exit(item)?,
        (Ring::File, RecordKind::File) => file(item)?,
        (Ring::Net, RecordKind::Net) => net(item)?,
        (Ring::Net, RecordKind::Dns) => dns(item)?,
        _ => return Err(wrong),
    })
}

/// An EXEC ring item: the head, then filename, exe, cwd and argv packed back to back (the
/// kernel sends only the used bytes; `exec_tail_parts` says where each part is).
pub fn exec(item: &[u8]) -> Result<RawEvent, ShortRecord> {
    let f: ExecHead = sized_head(Ring::Exec, item, |h: &ExecHead| {
        exec_record_len(h.filename_len, h.exe_len, h.cwd_len, h.args_len)
    })?;
    let tail = &item[offset_of!(ExecRecord, tail)..];
    let [filename, exe, cwd, argv] =
        exec_tail_parts(f.filename_len, f.exe_len, f.cwd_len, f.args_len)
            .map(|(start, len)| tail[start..start + len].to_vec());
    Ok(RawEvent::Exec(ExecRaw {
        task: task(&f.header),
        loginuid: f.loginuid,
        cgroup_id: f.cgroup_id,
        filename,
        argv,
        argv_truncated: f.flags & EXEC_ARGV_TRUNCATED != 0,
        exe,
        cwd,
    }))
}

/// A policy decision (EXEC ring, after the exec it is about).
pub fn block(item: &[u8]) -> Result<RawEvent, ShortRecord> {
    let r: BlockRecord = read_record(item).ok_or(ShortRecord {
        ring: Ring::Exec.map_name(),
        got: item.len(),
        want: size_of::<BlockRecord>(),
    })?;
    Ok(RawEvent::Block(BlockRaw {
        task: task(&r.header),
        file: r.file,
        cgroup_id: r.cgroup_id,
        entry: r.entry,
        action: r.action,
        target: r.target,
        path: bytes_at(
            item,
            offset_of!(BlockRecord, path),
            r.path_len,
            aurora_common::PATH_LEN,
        ),
    }))
}

pub fn exit(item: &[u8]) -> Result<RawEvent, ShortRecord> {
    check::<ExitRecord>(Ring::Exit.map_name(), item)?;
    let r: ExitRecord = read_record(item).ok_or(ShortRecord {
        ring: Ring::Exit.map_name(),
        got: 0,
        want: 0,
    })?;
    Ok(RawEvent::Exit(ExitRaw {
        task: task(&r.header),
        exit_status: r.exit_code,
    }))
}

pub fn dns(item: &[u8]) -> Result<RawEvent, ShortRecord> {
    check::<DnsRecord>(Ring::Net.map_name(), item)?;
    let f: DnsHead = read_record(item).ok_or(ShortRecord {
        ring: Ring::Net.map_name(),
        got: 0,
        want: 0,
    })?;
    Ok(RawEvent::Dns(DnsRaw {
        task: (f.flags & aurora_common::DNS_SEEN_BY_PROCESS != 0).then(|| task(&f.header)),
        payload: bytes_at(
            item,
            offset_of!(DnsRecord, payload),
            f.len,
            aurora_common::DNS_PAYLOAD_LEN,
        ),
    }))
}

/// A FILE ring item: the record up to `path`, then `path_len` bytes of the path (the kernel
/// sends only the used part).
pub fn file(item: &[u8]) -> Result<RawEvent, ShortRecord> {
    let f: FileHead = sized_head(Ring::File, item, |h: &FileHead| {
        file_record_len(h.path_len as usize)
    })?;
    Ok(RawEvent::File(FileRaw {
        task: task(&f.header),
        dfd: f.dfd,
        open_flags: f.open_flags,
        mode: f.mode,
        fd: f.fd,
        path: bytes_at(
            item,
            offset_of!(FileRecord, path),
            f.path_len,
            aurora_common::PATH_LEN,
        ),
        path_truncated: f.flags & FILE_PATH_TRUNCATED != 0,
        path_resolved: f.flags & FILE_PATH_RESOLVED != 0,
        overwritten: f.action == aurora_common::FILE_ACTION_OVERWRITTEN,
    }))
}

fn ip(family: u16, a: &[u8; 16]) -> IpAddr {
    if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*a))
    }
}

pub fn net(item: &[u8]) -> Result<RawEvent, ShortRecord> {
    check::<NetRecord>(Ring::Net.map_name(), item)?;
    let r: NetRecord = read_record(item).ok_or(ShortRecord {
        ring: Ring::Net.map_name(),
        got: 0,
        want: 0,
    })?;
    let local = SocketAddr::new(ip(r.family, &r.saddr), r.sport);
    let remote = SocketAddr::new(ip(r.family, &r.daddr), r.dport);
    let initiated = r.direction == NET_OUTBOUND;
    // Sysmon reports the initiator as the source: for an accepted connection that is the peer.
    let (source, destination) = if initiated {
        (local, remote)
    } else {
        (remote, local)
    };
    Ok(RawEvent::Net(NetRaw {
        task: (r.has_owner != 0).then(|| task(&r.header)),
        ts_boot_ns: r.header.ts_boot_ns,
        source,
        destination,
        initiated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_common::{AF_INET6, NET_INBOUND};

    fn as_bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a repr(C) POD value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn header() -> RecordHeader {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"bash");
        RecordHeader {
            ts_boot_ns: 5,
            kind: 0,
            _pad: 0,
            task: aurora_common::TaskIdentity {
                tgid: 100,
                pid: 101,
                start_boottime_ns: 7,
                parent_start_boottime_ns: 3,
                ppid: 1,
                uid: 1000,
                gid: 1000,
                _pad: 0,
                comm,
            },
        }
    }

    /// An exec record packed as the kernel packs it.
    fn packed_exec(filename: &[u8], exe: &[u8], cwd: &[u8], args: &[u8]) -> Box<ExecRecord> {
        // Box: the record is 8.3 KB.
        let mut r: Box<ExecRecord> = Box::new(unsafe { std::mem::zeroed() });
        r.head.header = header();
        let mut at = 0;
        for part in [filename, exe, cwd, args] {
            r.tail[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        r.head.filename_len = filename.len() as u32;
        r.head.exe_len = exe.len() as u32;
        r.head.cwd_len = cwd.len() as u32;
        r.head.args_len = args.len() as u32;
        r
    }

    #[test]
    fn decodes_packed_exec_records_sent_with_their_used_bytes_only() {
        let mut r = packed_exec(b"/bin/ls", b"/usr/bin/ls", b"/home/u", b"ls\0-la");
        r.head.flags = EXEC_ARGV_TRUNCATED;
        let whole = as_bytes(&*r);
        let sent = &whole[..exec_record_len(7, 11, 7, 6)];
        assert_eq!(sent.len(), offset_of!(ExecRecord, tail) + 31);
        let RawEvent::Exec(e) = exec(sent).unwrap() else {
            panic!()
        };
        assert_eq!(e.filename, b"/bin/ls");
        assert_eq!(e.exe, b"/usr/bin/ls");
        assert_eq!(e.cwd, b"/home/u");
        assert_eq!(e.argv, b"ls\0-la");
        assert!(e.argv_truncated);
        assert_eq!(e.task.comm, b"bash");
        assert_eq!(e.task.ppid, 1);
        assert!(
            exec(&sent[..sent.len() - 1]).is_err(),
            "shorter than its argv"
        );
    }

    #[test]
    fn exec_parts_left_empty_by_the_kernel_are_empty() {
        // A failed exe or cwd walk leaves length 0; the parts after it move up.
        let r = packed_exec(b"/bin/true", b"", b"", b"true");
        let whole = as_bytes(&*r);
        let RawEvent::Exec(e) = exec(&whole[..exec_record_len(9, 0, 0, 4)]).unwrap() else {
            panic!()
        };
        assert_eq!((e.exe.len(), e.cwd.len()), (0, 0));
        assert_eq!(e.argv, b"true");
    }

    #[test]
    fn hostile_exec_lengths_are_clamped_below_their_caps() {
        let mut r = packed_exec(b"/bin/ls", b"", b"", b"ls");
        r.head.filename_len = u32::MAX;
        r.head.exe_len = u32::MAX;
        r.head.cwd_len = u32::MAX;
        r.head.args_len = u32::MAX;
        let whole = as_bytes(&*r);
        let RawEvent::Exec(e) = exec(&whole).unwrap() else {
            panic!()
        };
        assert_eq!(e.filename.len(), aurora_common::EXEC_FILENAME_LEN - 1);
        assert_eq!(e.exe.len(), aurora_common::PATH_LEN - 1);
        assert_eq!(e.argv.len(), aurora_common::ARGV_LEN - 1);
        // Each clamped to its cap, the parts still fit in the record the kernel can send.
        assert!(exec_record_len(u32::MAX, u32::MAX, u32::MAX, u32::MAX) <= whole.len());
        assert!(exec(&whole[..100]).is_err());
    }

    #[test]
    fn decodes_file_records_sent_with_their_used_path_only() {
        let mut r: Box<FileRecord> = Box::new(unsafe { std::mem::zeroed() });
        r.head.header = header();
        r.path[..10].copy_from_slice(b"/tmp/x.txt");
        r.head.path_len = 10;
        r.head.flags = FILE_PATH_RESOLVED;
        r.head.action = aurora_common::FILE_ACTION_OVERWRITTEN;
        let whole = as_bytes(&*r);
        let sent = &whole[..file_record_len(10)];
        let RawEvent::File(f) = file(sent).unwrap() else {
            panic!()
        };
        assert_eq!(f.path, b"/tmp/x.txt");
        assert!(f.path_resolved && f.overwritten);
        assert_eq!(f.task.comm, b"bash");
        assert!(
            file(&sent[..sent.len() - 1]).is_err(),
            "shorter than its path"
        );
        // A hostile length is clamped to the buffer.
        r.head.path_len = u32::MAX;
        let RawEvent::File(f) = file(&as_bytes(&*r)).unwrap() else {
            panic!()
        };
        assert_eq!(f.path.len(), aurora_common::PATH_LEN);
    }

    #[test]
    fn short_items_are_errors() {
        assert!(exec(&[0u8; 10]).is_err());
        assert!(exit(&[]).is_err());
        assert!(file(&[1, 2, 3]).is_err());
        assert!(net(&[0u8; 20]).is_err());
    }

    #[test]
    fn the_header_kind_decides_not_the_length() {
        let mut n: NetRecord = unsafe { std::mem::zeroed() };
        n.header = header();
        n.header.kind = RecordKind::Net as u32;
        n.family = AF_INET6;
        let mut d: Box<DnsRecord> = Box::new(unsafe { std::mem::zeroed() });
        d.head.header = header();
        d.head.header.kind = RecordKind::Dns as u32;
        d.head.len = 12;
        assert!(matches!(
            decode(Ring::Net, &as_bytes(&n)),
            Ok(RawEvent::Net(_))
        ));
        assert!(matches!(
            decode(Ring::Net, &as_bytes(&*d)),
            Ok(RawEvent::Dns(_))
        ));
        // A connect record padded to a DNS record's size is still a connect.
        let mut padded = as_bytes(&n);
        padded.resize(size_of::<DnsRecord>(), 0);
        assert!(matches!(decode(Ring::Net, &padded), Ok(RawEvent::Net(_))));
        // A kind the ring does not carry, or no kind at all, is an error.
        n.header.kind = RecordKind::Exec as u32;
        assert_eq!(
            decode(Ring::Net, &as_bytes(&n)).unwrap_err(),
            DecodeError::Kind {
                ring: "NET_RING",
                kind: 1
            }
        );
        n.header.kind = 77;
        assert!(decode(Ring::Net, &as_bytes(&n)).is_err());
        assert!(matches!(
            decode(Ring::Exit, &[0u8; 8]),
            Err(DecodeError::Short(_))
        ));
    }

    #[test]
    fn inbound_swaps_source_and_destination() {
        let mut r: NetRecord = unsafe { std::mem::zeroed() };
        r.header = header();
        r.family = AF_INET6;
        r.saddr[15] = 1;
        r.daddr[15] = 1;
        r.sport = 8080;
        r.dport = 50000;
        r.direction = NET_INBOUND;
        r.has_owner = 0;
        let RawEvent::Net(n) = net(&as_bytes(&r)).unwrap() else {
            panic!()
        };
        assert!(!n.initiated);
        assert!(n.task.is_none());
        assert_eq!(n.source.to_string(), "[::1]:50000");
        assert_eq!(n.destination.to_string(), "[::1]:8080");
    }

    #[test]
    fn block_records_ride_the_exec_ring_with_their_path() {
        // SAFETY: all-zero is a valid BlockRecord (plain integers and bytes).
        let mut r: Box<BlockRecord> = Box::new(unsafe { std::mem::zeroed() });
        r.header.kind = RecordKind::Block as u32;
        r.header.task.tgid = 42;
        r.file = aurora_common::FileKey {
            dev: 8 << 20 | 1,
            ino: 7,
        };
        r.entry = 3;
        r.action = aurora_common::BLOCK_ACTION_KILLED;
        r.target = aurora_common::BLOCK_TARGET_EXEC;
        r.path[..8].copy_from_slice(b"/opt/x\0\0");
        r.path_len = 6;
        let RawEvent::Block(b) = decode(Ring::Exec, &as_bytes(&*r)).unwrap() else {
            panic!("a block record");
        };
        assert_eq!((b.task.tgid, b.entry, b.file.ino), (42, 3, 7));
        assert_eq!(b.path, b"/opt/x");
        // A hostile length is clamped to the array; a short item is an error; other rings
        // do not carry it.
        r.path_len = u32::MAX;
        assert!(decode(Ring::Exec, &as_bytes(&*r)).is_ok());
        assert!(decode(Ring::Exec, &as_bytes(&*r)[..100]).is_err());
        assert!(decode(Ring::File, &as_bytes(&*r)).is_err());
    }
}
