//! Mechanism C with decapsulation at the underlay's XDP hook: `bpf_xdp_adjust_head` drops the
//! 50 outer bytes before any skb exists, leaving the inner frame as it was sent, and the VNI
//! rides along in the frame's metadata to the underlay's tcx program, which delivers with
//! `bpf_redirect_peer` (`XDP_REDIRECT` into the container's veth would need an XDP program or
//! GRO on the container's own eth0).
//!
//! The price: a veth whose peer runs native XDP loses GSO on that peer (the kernel's rule:
//! XDP sees single frames), so the sending host segments TCP in software before
//! encapsulating. GRO, which native XDP turns on, then coalesces the decapsulated segments.

use aya_ebpf::{
    bindings::{
        TC_ACT_OK, TC_ACT_SHOT,
        xdp_action::{XDP_DROP, XDP_PASS},
    },
    helpers::{bpf_redirect_peer, bpf_xdp_adjust_head, bpf_xdp_adjust_meta},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use xnet_perf_ebpf::VXLAN_OUTER_LEN;

use crate::{overlay, vxlan};

/// Metadata: the VNI the frame came on (`u32`).
const META_LEN: usize = 4;

/// XDP of the underlay: strips VXLAN frames for this host and passes the inner frame on with
/// its VNI in the metadata. Everything else passes untouched.
#[xdp]
pub fn vxlan_xdp_decap(ctx: XdpContext) -> u32 {
    let Some(frame) = vxlan::received(ctx.data(), ctx.data_end(), overlay::local_ip()) else {
        return XDP_PASS;
    };
    // SAFETY: plain helper calls on our frame; both only move its start pointers.
    let moved = unsafe {
        bpf_xdp_adjust_head(ctx.ctx, VXLAN_OUTER_LEN as i32) == 0
            && bpf_xdp_adjust_meta(ctx.ctx, -(META_LEN as i32)) == 0
    };
    let meta = ctx.metadata();
    if !moved || meta + META_LEN > ctx.metadata_end() {
        return XDP_DROP;
    }
    // SAFETY: the check above keeps the four bytes inside the metadata area.
    unsafe { *(meta as *mut u32) = frame.vni };
    XDP_PASS
}

/// tcx ingress of the underlay, behind `vxlan_xdp_decap`: a frame with our metadata is an
/// inner frame; a container of its network here with its destination MAC gets it. Frames
/// without metadata were not VXLAN for us and pass.
#[classifier]
pub fn vxlan_meta_deliver(ctx: TcContext) -> i32 {
    // SAFETY: reading a field of the context the kernel gave us.
    let meta = unsafe { (*ctx.skb.skb).data_meta } as usize;
    if meta + META_LEN > ctx.data() {
        return TC_ACT_OK;
    }
    // SAFETY: the check above keeps the four bytes inside the metadata area.
    let vni = unsafe { *(meta as *const u32) };
    let Some(dst) = overlay::dst_mac(&ctx) else {
        return TC_ACT_SHOT;
    };
    match overlay::local(vni, dst) {
        // SAFETY: plain helper call; flags must be 0.
        Some(veth) => unsafe { bpf_redirect_peer(veth, 0) as i32 },
        None => TC_ACT_SHOT,
    }
}
