//! DNS answers (UDP from port 53), copied (up to DNS_PAYLOAD_LEN) into the NET ring — before the
//! connects that follow them, in order — for the agent's IP → name cache. Two tracepoints, no kprobe or trampoline:
//! - `net/netif_receive_skb`: every datagram on its way in (NIC or loopback), in softirq —
//!   complete, but the receiving process is not known there;
//! - `skb/consume_skb`: the datagram freed after recvmsg read it — in the receiving process's
//!   context on kernels that free UDP skbs at once (before 6.18), which attributes the answer;
//!   from 6.18 on UDP frees are deferred to softirq, so only the first source remains.
//! Both parse only the IPv4/IPv6 + UDP headers before leaving; answers in page fragments are
//! read from the linear part only; DNS over TCP, TLS or HTTPS is not seen.
use aurora_common::{DnsRecord, RecordKind, TaskIdentity, DNS_SEEN_BY_PROCESS, RING_NET};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use core::ffi::c_void;

use crate::{co_re, maps};

#[tracepoint]
pub fn netif_receive_skb(ctx: TracePointContext) -> u32 {
    // SAFETY: ctx is a net_dev_template record; the skb is read through probe reads only.
    unsafe {
        let skb = co_re::aurora_net_dev_skb_addr(ctx.as_ptr());
        capture(skb, 1, false);
    }
    0
}

#[tracepoint]
pub fn consume_skb(ctx: TracePointContext) -> u32 {
    // SAFETY: as above.
    unsafe {
        let mut softirq = 0u32;
        let skb = co_re::aurora_consume_skb_addr(ctx.as_ptr(), &mut softirq);
        // In softirq the skb is a deferred free: netif_receive_skb saw it already.
        if softirq == 0 {
            capture(skb, 0, true);
        }
    }
    0
}

/// # Safety
/// `skb` is a kernel sk_buff pointer (or null), only read through probe reads.
#[inline(always)]
unsafe fn capture(skb: *const c_void, at_data: u32, by_process: bool) {
    unsafe {
        let mut len = 0u32;
        let udp = co_re::aurora_skb_dns(skb, at_data, &mut len);
        if udp.is_null() {
            return;
        }
        if by_process && maps::is_agent((bpf_get_current_pid_tgid() >> 32) as u32) {
            return;
        }
        let Some(mut entry) = maps::NET_RING.reserve::<DnsRecord>(0) else {
            maps::count_lost(RING_NET);
            return;
        };
        let rec = entry.as_mut_ptr();
        if co_re::aurora_copy_dns(udp, len, (&raw mut (*rec).payload).cast()) != 0 {
            entry.discard(0);
            return;
        }
        if by_process {
            let task = bpf_get_current_task() as *const c_void;
            maps::fill_header(&raw mut (*rec).head.header, task, RecordKind::Dns);
            (*rec).head.flags = DNS_SEEN_BY_PROCESS;
        } else {
            maps::fill_header_from(
                &raw mut (*rec).head.header,
                &TaskIdentity::NONE,
                RecordKind::Dns,
            );
            (*rec).head.flags = 0;
        }
        (*rec).head.len = len;
        entry.submit(maps::wakeup_flags(&maps::NET_RING));
    }
}
