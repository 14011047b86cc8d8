//! `sock/inet_sock_set_state`: TCP connections, IPv4 and IPv6.
//!
//! This tracepoint often runs in softirq, where the current task is whoever was on the CPU. So
//! the owner is captured where it is known and carried by map:
//! - outbound: CLOSE→SYN_SENT runs in connect(2)'s task: remember the owner by sock address;
//!   the record is emitted when the handshake ends (SYN_SENT→ESTABLISHED, or →CLOSE on
//!   failure), when the source port is assigned.
//! - inbound: →LISTEN runs in listen(2)'s task: remember the owner by (family, port, address);
//!   SYN_RECV→ESTABLISHED (softirq) is attributed to that listener, or to no process.
use aurora_common::{
    ListenKey, NetRecord, RecordKind, TaskIdentity, AF_INET, AF_INET6, IPPROTO_TCP, NET_INBOUND,
    NET_OUTBOUND, RING_NET,
};
use aya_ebpf::{
    helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext, EbpfContext,
};
use core::ffi::c_void;

use crate::{
    co_re::{self, SockState},
    maps,
};

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let mut st = SockState {
        skaddr: 0,
        oldstate: 0,
        newstate: 0,
        sport: 0,
        dport: 0,
        family: 0,
        protocol: 0,
        saddr: [0; 16],
        daddr: [0; 16],
    };
    // SAFETY: ctx is an inet_sock_set_state record.
    unsafe { co_re::aurora_sock_state_read(ctx.as_ptr(), &mut st) };
    if st.protocol != IPPROTO_TCP {
        return 0;
    }
    match (st.oldstate, st.newstate) {
        (TCP_CLOSE, TCP_SYN_SENT) => {
            let owner = maps::current_owner(unsafe { bpf_get_current_task() } as *const c_void);
            if !maps::is_agent(owner.tgid) {
                let _ = maps::CONNECTING.insert(&st.skaddr, &owner, 0);
            }
        }
        (TCP_SYN_SENT, TCP_ESTABLISHED) | (TCP_SYN_SENT, TCP_CLOSE) => {
            // SAFETY: copied before removal.
            let Some(owner) = (unsafe { maps::CONNECTING.get(&st.skaddr) }).copied() else {
                return 0; // not seen connecting (the agent's own, or before we attached)
            };
            let _ = maps::CONNECTING.remove(&st.skaddr);
            emit(&st, Some(&owner), NET_OUTBOUND);
        }
        (_, TCP_LISTEN) => {
            let owner = maps::current_owner(unsafe { bpf_get_current_task() } as *const c_void);
            let key = ListenKey {
                family: st.family,
                port: st.sport,
                addr: st.saddr,
            };
            let _ = maps::LISTENERS.insert(&key, &owner, 0);
        }
        // A child socket is cloned from its listener and moves LISTEN→SYN_RECV: only
        // LISTEN→CLOSE is the listener going away.
        (TCP_LISTEN, TCP_CLOSE) => {
            let key = ListenKey {
                family: st.family,
                port: st.sport,
                addr: st.saddr,
            };
            let _ = maps::LISTENERS.remove(&key);
        }
        (TCP_SYN_RECV, TCP_ESTABLISHED) => {
            let owner = listener(&st);
            if let Some(o) = owner.as_ref() {
                if maps::is_agent(o.tgid) {
                    return 0;
                }
            }
            emit(&st, owner.as_ref(), NET_INBOUND);
        }
        _ => {}
    }
    0
}

/// The listener that accepted this connection: exact address, then wildcard; an IPv4
/// connection may also have been accepted by a dual-stack IPv6 listener.
#[inline(always)]
fn listener(st: &SockState) -> Option<TaskIdentity> {
    let mut key = ListenKey {
        family: st.family,
        port: st.sport,
        addr: st.saddr,
    };
    if let Some(o) = lookup(&key) {
        return Some(o);
    }
    key.addr = [0; 16];
    if let Some(o) = lookup(&key) {
        return Some(o);
    }
    if st.family == AF_INET {
        key.family = AF_INET6;
        if let Some(o) = lookup(&key) {
            return Some(o);
        }
        // ::ffff:a.b.c.d
        key.addr[10] = 0xff;
        key.addr[11] = 0xff;
        key.addr[12] = st.saddr[0];
        key.addr[13] = st.saddr[1];
        key.addr[14] = st.saddr[2];
        key.addr[15] = st.saddr[3];
        return lookup(&key);
    }
    None
}

#[inline(always)]
fn lookup(key: &ListenKey) -> Option<TaskIdentity> {
    // SAFETY: value copied out immediately.
    unsafe { maps::LISTENERS.get(key) }.copied()
}

#[inline(always)]
fn emit(st: &SockState, owner: Option<&TaskIdentity>, direction: u8) {
    let Some(mut entry) = maps::NET_RING.reserve::<NetRecord>(0) else {
        maps::count_lost(RING_NET);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: rec points into our ring reservation.
    unsafe {
        maps::fill_header_from(
            &raw mut (*rec).header,
            owner.unwrap_or(&TaskIdentity::NONE),
            RecordKind::Net,
        );
        (*rec).has_owner = owner.is_some() as u8;
        (*rec).family = st.family;
        (*rec).protocol = st.protocol;
        (*rec).sport = st.sport;
        (*rec).dport = st.dport;
        (*rec).saddr = st.saddr;
        (*rec).daddr = st.daddr;
        (*rec).direction = direction;
        (*rec)._pad = [0; 6];
    }
    entry.submit(maps::wakeup_flags(&maps::NET_RING));
}
