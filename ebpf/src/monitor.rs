//! Events for `xnet monitor`: a dropped frame (and, traced, a frame a container sent, as it
//! arrived, or one the host's stack delivered to a container) described in the `MONITOR_EVENTS` ring buffer, which xnetd reads.
//!
//! - Off unless a monitor is attached: `MONITOR` all zero. Then a drop costs the array read
//!   and a test on top of its counters, and a traced hook the same per frame.
//! - Rate-limited per CPU (`MonitorConfig::events_per_second`, in one-second windows), so a
//!   flood of drops cannot turn into a flood of events; what the limit or a full ring refuses
//!   is counted in `MONITOR_BUDGET`, and xnetd tells the monitor how many were lost.
//! - The event is written straight into the ring's reserved space (`bpf_ringbuf_reserve`),
//!   never built on the stack, and by a step of its own (`#[inline(never)]`) called only from
//!   the entry points, after the deciding chain has returned: the deepest chains stay as they
//!   are.

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    bindings::xdp_action::XDP_DROP,
    cty::c_void,
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use xnet_common::{
    DropReason, EVENT_DROP, EVENT_FROM_CONTAINER, EVENT_TO_CONTAINER, MONITOR_DROPS, MONITOR_TRACE,
    MonitorEvent,
};

use crate::{
    maps::{MONITOR, MONITOR_BUDGET, MONITOR_EVENTS},
    stats,
};

const ETH_HLEN: u32 = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What the event writer needs of a frame at tc or XDP.
pub trait Frame {
    /// The interface the frame is on.
    fn ifindex(&self) -> u32;
    fn frame_len(&self) -> u32;
    /// Copies `len` bytes from `offset` in the frame to `to`; false if the frame is shorter.
    fn copy(&self, offset: u32, to: *mut u8, len: u32) -> bool;
}

impl Frame for TcContext {
    fn ifindex(&self) -> u32 {
        // SAFETY: the context pointer the kernel passed in; `ifindex` is readable at tc.
        unsafe { (*self.skb.skb).ifindex }
    }

    fn frame_len(&self) -> u32 {
        self.len()
    }

    fn copy(&self, offset: u32, to: *mut u8, len: u32) -> bool {
        // SAFETY: the helper bounds-checks the frame; `to` has room for `len` bytes (callers
        // pass fields of a reserved event).
        unsafe { bpf_skb_load_bytes(self.skb.skb as *const c_void, offset, to.cast(), len) == 0 }
    }
}

impl Frame for XdpContext {
    fn ifindex(&self) -> u32 {
        // SAFETY: the context pointer the kernel passed in.
        unsafe { (*self.ctx).ingress_ifindex }
    }

    fn frame_len(&self) -> u32 {
        (self.data_end() - self.data()) as u32
    }

    fn copy(&self, offset: u32, to: *mut u8, len: u32) -> bool {
        // SAFETY: as for tc.
        unsafe { bpf_xdp_load_bytes(self.ctx, offset, to.cast(), len) == 0 }
    }
}

/// Whether a monitor wants events of `kinds`.
#[inline(always)]
fn wanted(kinds: u32) -> bool {
    MONITOR
        .get(0)
        .is_some_and(|config| config.kinds & kinds != 0)
}

/// Counts a drop for `reason` (`slot`: the sending endpoint's, if known) and reports it to a
/// monitor that wants drops.
#[inline(always)]
pub fn dropped<F: Frame>(frame: &F, slot: Option<u32>, reason: DropReason) {
    stats::count_drop(slot, reason);
    if wanted(MONITOR_DROPS) {
        report(frame, EVENT_DROP, reason as u8);
    }
}

/// The same, returning tc's verdict for a drop.
#[inline(always)]
pub fn dropped_at_tc(ctx: &TcContext, slot: Option<u32>, reason: DropReason) -> i32 {
    dropped(ctx, slot, reason);
    TC_ACT_SHOT
}

/// The same, returning XDP's verdict for a drop.
#[inline(always)]
pub fn dropped_at_xdp(ctx: &XdpContext, reason: DropReason) -> u32 {
    dropped(ctx, None, reason);
    XDP_DROP
}

/// Reports a frame a container sent, as it arrived, before the datapath decides (and
/// rewrites) anything: if it is dropped, a drop event follows.
#[inline(always)]
pub fn from_container(ctx: &TcContext) {
    if wanted(MONITOR_TRACE) {
        report(ctx, EVENT_FROM_CONTAINER, 0);
    }
}

/// Reports a frame the host's stack delivers to a container.
#[inline(always)]
pub fn to_container(ctx: &TcContext) {
    if wanted(MONITOR_TRACE) {
        report(ctx, EVENT_TO_CONTAINER, 0);
    }
}

/// Whether this CPU may write one more event now; counts the refusal if not.
#[inline(always)]
fn admitted(limit: u32) -> bool {
    let Some(budget) = MONITOR_BUDGET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it while we run.
    let budget = unsafe { &mut *budget };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    if now.wrapping_sub(budget.window_start) >= NANOS_PER_SECOND {
        budget.window_start = now;
        budget.used = 0;
    }
    if budget.used >= u64::from(limit) {
        budget.lost += 1;
        return false;
    }
    budget.used += 1;
    true
}

/// Writes one event of `kind` about `frame` into the ring, if the rate limit and the ring's
/// room allow. A step of its own, so its frame is never added to a deciding chain's.
#[inline(never)]
fn report<F: Frame>(frame: &F, kind: u8, reason: u8) {
    let limit = MONITOR.get(0).map_or(0, |config| config.events_per_second);
    if !admitted(limit) {
        return;
    }
    let Some(mut entry) = MONITOR_EVENTS.reserve::<MonitorEvent>(0) else {
        if let Some(budget) = MONITOR_BUDGET.get_ptr_mut(0) {
            // SAFETY: as in `admitted`.
            unsafe { (*budget).lost += 1 };
        }
        return;
    };
    // SAFETY: the reserved space is ours until submitted; every field is written before.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    // SAFETY: plain helper call.
    event.time_ns = unsafe { bpf_ktime_get_ns() };
    event.ifindex = frame.ifindex();
    event.len = frame.frame_len();
    event.kind = kind;
    event.reason = reason;
    event.protocol = 0;
    event._pad = 0;
    event.ether_type = 0;
    event.src_port = 0;
    event.dst_port = 0;
    event._pad2 = [0; 6];
    event.src = [0; 16];
    event.dst = [0; 16];
    describe(frame, event);
    entry.submit(0);
}

/// Fills in the addresses, protocol and ports the frame's headers give; what it lacks stays
/// zero.
#[inline(always)]
fn describe<F: Frame>(frame: &F, event: &mut MonitorEvent) {
    let mut ether_type = [0u8; 2];
    if !frame.copy(12, ether_type.as_mut_ptr(), 2) {
        return;
    }
    event.ether_type = u16::from_be_bytes(ether_type);
    let (l4, protocol) = match event.ether_type {
        ETH_P_IP => {
            let mut version_ihl = [0u8; 1];
            let mut protocol = [0u8; 1];
            if !frame.copy(ETH_HLEN, version_ihl.as_mut_ptr(), 1)
                || !frame.copy(ETH_HLEN + 9, protocol.as_mut_ptr(), 1)
                || !frame.copy(ETH_HLEN + 12, event.src.as_mut_ptr(), 4)
                || !frame.copy(ETH_HLEN + 16, event.dst.as_mut_ptr(), 4)
            {
                return;
            }
            let header_len = u32::from(version_ihl[0] & 0x0f) * 4;
            (ETH_HLEN + header_len, protocol[0])
        }
        ETH_P_IPV6 => {
            let mut next_header = [0u8; 1];
            if !frame.copy(ETH_HLEN + 6, next_header.as_mut_ptr(), 1)
                || !frame.copy(ETH_HLEN + 8, event.src.as_mut_ptr(), 16)
                || !frame.copy(ETH_HLEN + 24, event.dst.as_mut_ptr(), 16)
            {
                return;
            }
            (ETH_HLEN + 40, next_header[0])
        }
        ETH_P_ARP => {
            let mut operation = [0u8; 2];
            if frame.copy(ETH_HLEN + 6, operation.as_mut_ptr(), 2)
                && frame.copy(ETH_HLEN + 14, event.src.as_mut_ptr(), 4)
                && frame.copy(ETH_HLEN + 24, event.dst.as_mut_ptr(), 4)
            {
                event.dst_port = u16::from_be_bytes(operation);
            }
            return;
        }
        _ => return,
    };
    event.protocol = protocol;
    // The first four bytes of TCP, UDP and SCTP are the ports; of ICMP and ICMPv6, the type
    // and the code.
    let mut head = [0u8; 4];
    if !frame.copy(l4, head.as_mut_ptr(), 4) {
        return;
    }
    match protocol {
        1 | 58 => {
            event.src_port = u16::from(head[0]);
            event.dst_port = u16::from(head[1]);
        }
        6 | 17 | 132 => {
            event.src_port = u16::from_be_bytes([head[0], head[1]]);
            event.dst_port = u16::from_be_bytes([head[2], head[3]]);
        }
        _ => {}
    }
}
