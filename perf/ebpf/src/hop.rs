//! Bare forwarders from one veth to another, with no lookups and no checks: what a datapath
//! costs at least when it uses the same kernel mechanism.

use aya_ebpf::{
    helpers::{bpf_redirect, bpf_redirect_peer},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

/// Where every frame goes (set at load time): a host-side veth.
#[unsafe(no_mangle)]
static TARGET_IFINDEX: u32 = 0;

#[inline(always)]
fn target() -> u32 {
    // SAFETY: a read of a constant the loader patched; volatile so it is not folded.
    unsafe { core::ptr::read_volatile(&TARGET_IFINDEX) }
}

/// tcx ingress of the sending container's host-side veth: straight into the peer of the
/// target (the receiving container's eth0), as xnet's datapath delivers.
#[classifier]
pub fn hop_peer(_ctx: TcContext) -> i32 {
    // SAFETY: plain helper call; flags must be 0.
    unsafe { bpf_redirect_peer(target(), 0) as i32 }
}

/// XDP on the sending container's host-side veth: out of the target veth, so into the
/// receiving container, whose eth0 needs an XDP program for the frame to be accepted.
#[xdp]
pub fn hop_xdp(_ctx: XdpContext) -> u32 {
    // SAFETY: plain helper call; flags 0 means transmit on the target.
    unsafe { bpf_redirect(target(), 0) as u32 }
}
