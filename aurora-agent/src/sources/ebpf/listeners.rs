//! Listening sockets that existed before the sensors attached (sshd, nginx …): their owners are
//! written into the kernel's LISTENERS map at startup so inbound connections to them are
//! attributed too. Sockets opened later are recorded by the kernel program itself.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use aurora_common::{ListenKey, TaskIdentity, AF_INET, AF_INET6, COMM_LEN};
use aya::maps::{HashMap as BpfHashMap, MapData};
use procfs::net::TcpState;
use procfs::process::FDTarget;

fn key(addr: &SocketAddr) -> ListenKey {
    let (family, bytes) = match addr.ip() {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (AF_INET, b)
        }
        IpAddr::V6(v6) => (AF_INET6, v6.octets()),
    };
    ListenKey {
        family,
        port: addr.port(),
        addr: bytes,
    }
}

/// Socket inode → owning process (the first process found holding it).
fn socket_owners(ns_per_tick: u64) -> HashMap<u64, TaskIdentity> {
    let mut out = HashMap::new();
    let Ok(procs) = procfs::process::all_processes() else {
        return out;
    };
    for p in procs.filter_map(Result::ok) {
        let Ok(fds) = p.fd() else { continue };
        let sockets: Vec<u64> = fds
            .filter_map(Result::ok)
            .filter_map(|fd| match fd.target {
                FDTarget::Socket(inode) => Some(inode),
                _ => None,
            })
            .collect();
        if sockets.is_empty() {
            continue;
        }
        let Ok(stat) = p.stat() else { continue };
        let mut comm = [0u8; COMM_LEN];
        let n = stat.comm.len().min(COMM_LEN - 1);
        comm[..n].copy_from_slice(&stat.comm.as_bytes()[..n]);
        let owner = TaskIdentity {
            tgid: p.pid as u32,
            pid: p.pid as u32,
            // Ticks back to ns: converts to the same ticks the process table uses.
            start_boottime_ns: stat.starttime * ns_per_tick,
            parent_start_boottime_ns: 0,
            ppid: stat.ppid.max(0) as u32,
            uid: p.uid().unwrap_or(u32::MAX),
            gid: 0,
            _pad: 0,
            comm,
        };
        for inode in sockets {
            out.entry(inode).or_insert(owner);
        }
    }
    out
}

/// Fill LISTENERS from /proc/net/tcp{,6}. Returns how many listeners were recorded.
pub fn seed(map: &mut BpfHashMap<&mut MapData, ListenKey, TaskIdentity>) -> usize {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let entries: Vec<_> = [procfs::net::tcp(), procfs::net::tcp6()]
        .into_iter()
        .filter_map(Result::ok)
        .flatten()
        .filter(|e| e.state == TcpState::Listen)
        .collect();
    if entries.is_empty() {
        return 0;
    }
    let owners = socket_owners(1_000_000_000 / hz);
    let mut n = 0;
    for e in entries {
        if let Some(owner) = owners.get(&e.inode) {
            if map.insert(key(&e.local_address), owner, 0).is_ok() {
                n += 1;
            }
        }
    }
    n
}
