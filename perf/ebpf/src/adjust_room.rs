//! Mechanism C, as Calico's eBPF dataplane does it: no vxlan device. The program grows the
//! skb with `bpf_skb_adjust_room` and writes the outer headers itself; on the receiving host
//! the underlay's tcx program strips them and delivers.
//!
//! The flags are what keeps TCP's offloads working (projectcalico#11160, PRs #11252 and
//! #11627; Cilium PR #30732):
//! - ENCAP_L3_IPV4 | ENCAP_L4_UDP | ENCAP_L2_ETH | ENCAP_L2(14) mark the skb as encapsulated
//!   (`encapsulation`, inner headers, `inner_protocol` = ETH_P_TEB, `gso_type` |=
//!   SKB_GSO_UDP_TUNNEL), so a GSO super-packet is segmented as a UDP tunnel packet, each
//!   segment with its own outer headers. Without them GSO drops the packets: ping works, TCP
//!   carries nothing.
//! - FIXED_GSO keeps `gso_size`: the containers' MTU (1450) already leaves room for the 50
//!   bytes. Without it, encapsulation would shrink every segment by 50, and decapsulation
//!   would grow it by 50 - beyond the container's MTU if the packet is ever segmented again.

use aya_ebpf::{
    bindings::{
        BPF_ADJ_ROOM_ENCAP_L2_SHIFT, BPF_F_ADJ_ROOM_ENCAP_L2_ETH, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4,
        BPF_F_ADJ_ROOM_ENCAP_L4_UDP, BPF_F_ADJ_ROOM_FIXED_GSO, TC_ACT_OK, TC_ACT_SHOT,
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    helpers::{bpf_get_hash_recalc, bpf_redirect, bpf_redirect_peer},
    macros::classifier,
    programs::TcContext,
};
use xnet_perf_ebpf::VXLAN_ROOM;

use crate::{
    overlay::{self, ETH_LEN},
    vxlan::{self, HEADERS_LEN},
};

const ENCAP_FLAGS: u64 = BPF_F_ADJ_ROOM_FIXED_GSO as u64
    | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 as u64
    | BPF_F_ADJ_ROOM_ENCAP_L4_UDP as u64
    | BPF_F_ADJ_ROOM_ENCAP_L2_ETH as u64
    | (ETH_LEN as u64) << BPF_ADJ_ROOM_ENCAP_L2_SHIFT;

/// tcx ingress of a container's host-side veth: frames for a container on another host are
/// encapsulated and sent out of the underlay. Others pass.
#[classifier]
pub fn vxlan_room_encap(ctx: TcContext) -> i32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    if data + ETH_LEN > data_end {
        return TC_ACT_OK;
    }
    // SAFETY: the check above keeps the Ethernet header inside the packet.
    let inner_eth = unsafe { *(data as *const [u8; ETH_LEN]) };
    let vni = overlay::vni();
    let mut dst = [0u8; 6];
    dst.copy_from_slice(&inner_eth[..6]);
    let Some(remote) = overlay::remote(vni, dst) else {
        return TC_ACT_OK;
    };
    // SAFETY: plain helper call on our skb.
    let hash = unsafe { bpf_get_hash_recalc(ctx.skb.skb) };
    if ctx
        .adjust_room(VXLAN_ROOM, BPF_ADJ_ROOM_MAC, ENCAP_FLAGS)
        .is_err()
    {
        return TC_ACT_SHOT;
    }
    let headers = vxlan::headers(&remote, &inner_eth, vni, ctx.len(), vxlan::src_port(hash));
    if ctx.store(0, &headers, 0).is_err() {
        return TC_ACT_SHOT;
    }
    // SAFETY: plain helper call; flags 0 = transmit on the device.
    unsafe { bpf_redirect(remote.underlay_ifindex, 0) as i32 }
}

/// tcx ingress of the underlay: VXLAN frames for a container on this host lose their outer
/// headers and go to it with `bpf_redirect_peer`. Removing 50 bytes behind the Ethernet
/// header leaves the outer Ethernet header in front of the inner IP packet, so the inner one
/// is written over it. There is no BPF_F_ADJ_ROOM_DECAP_L4_UDP on this kernel (6.18): the skb
/// keeps SKB_GSO_UDP_TUNNEL, harmless since it is delivered, never forwarded.
#[classifier]
pub fn vxlan_room_decap(ctx: TcContext) -> i32 {
    if ctx.len() < HEADERS_LEN as u32 {
        return TC_ACT_OK;
    }
    if ctx.data() + HEADERS_LEN > ctx.data_end() && ctx.pull_data(HEADERS_LEN as u32).is_err() {
        return TC_ACT_OK;
    }
    let Some(frame) = vxlan::received(ctx.data(), ctx.data_end(), overlay::local_ip()) else {
        return TC_ACT_OK;
    };
    let mut dst = [0u8; 6];
    dst.copy_from_slice(&frame.inner_eth[..6]);
    let Some(veth) = overlay::local(frame.vni, dst) else {
        return TC_ACT_SHOT;
    };
    let flags = u64::from(BPF_F_ADJ_ROOM_FIXED_GSO);
    if ctx
        .adjust_room(-VXLAN_ROOM, BPF_ADJ_ROOM_MAC, flags)
        .is_err()
        || ctx.store(0, &frame.inner_eth, 0).is_err()
    {
        return TC_ACT_SHOT;
    }
    // SAFETY: plain helper call; flags must be 0.
    unsafe { bpf_redirect_peer(veth, 0) as i32 }
}
