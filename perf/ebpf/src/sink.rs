//! Sinks: count UDP frames where they arrive and drop them there, so what is measured is the
//! path up to the receiving container and nothing after it. Everything else (ARP, TCP) passes.

use aya_ebpf::{
    bindings::{
        TC_ACT_OK, TC_ACT_SHOT,
        xdp_action::{XDP_DROP, XDP_PASS},
    },
    helpers::bpf_ktime_get_ns,
    macros::{classifier, map, xdp},
    maps::PerCpuArray,
    programs::{TcContext, XdpContext},
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{IpProto, Ipv4Hdr},
};
use xnet_perf_ebpf::{SINK_STAMP_EVERY, SinkCounters};

#[map]
static SINK: PerCpuArray<SinkCounters> = PerCpuArray::with_max_entries(1, 0);

/// For frames that arrive as skbs: redirected by `bpf_redirect_peer` (which skips the
/// receiving device's XDP hook) or forwarded by a bridge.
#[classifier]
pub fn sink_tc(ctx: TcContext) -> i32 {
    if is_udp(ctx.data(), ctx.data_end()) {
        count(ctx.len());
        TC_ACT_SHOT
    } else {
        TC_ACT_OK
    }
}

/// For frames that arrive by `XDP_REDIRECT` into a veth, which needs an XDP program on the
/// receiving end anyway.
#[xdp]
pub fn sink_xdp(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    if is_udp(data, data_end) {
        count((data_end - data) as u32);
        XDP_DROP
    } else {
        XDP_PASS
    }
}

/// Whether the linear part of the frame holds an IPv4 UDP header.
#[inline(always)]
fn is_udp(data: usize, data_end: usize) -> bool {
    if data + EthHdr::LEN + Ipv4Hdr::LEN > data_end {
        return false;
    }
    // SAFETY: the check above keeps both headers inside the frame.
    let (eth, ip) = unsafe {
        (
            &*(data as *const EthHdr),
            &*((data + EthHdr::LEN) as *const Ipv4Hdr),
        )
    };
    eth.ether_type == EtherType::Ipv4 as u16 && ip.proto == IpProto::Udp as u8
}

#[inline(always)]
fn count(bytes: u32) {
    let Some(counters) = SINK.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, only this CPU touches it while we run.
    let counters = unsafe { &mut *counters };
    counters.packets += 1;
    counters.bytes += u64::from(bytes);
    if counters.packets & (SINK_STAMP_EVERY - 1) == 1 {
        // SAFETY: plain helper call.
        let now = unsafe { bpf_ktime_get_ns() };
        if counters.first_ns == 0 {
            counters.first_ns = now;
        }
        counters.last_ns = now;
        counters.packets_at_last = counters.packets;
    }
}
