//! Mechanism B, as Cilium does it: the program only says where the frame goes
//! (`bpf_skb_set_tunnel_key`: remote VTEP, VNI) and hands it to a flow-based ("external",
//! collect_md) vxlan device, which writes the outer headers. The kernel's UDP tunnel code then
//! does what it does for any vxlan device: GSO of the encapsulated super-packets, checksums,
//! GRO of received tunnel packets through the device's UDP socket. On receive the device has
//! already stripped the outer headers; its ingress program reads the tunnel key and delivers.

use aya_ebpf::{
    bindings::{BPF_F_ZERO_CSUM_TX, TC_ACT_OK, TC_ACT_SHOT, bpf_tunnel_key},
    helpers::{bpf_redirect, bpf_redirect_peer, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key},
    macros::classifier,
    programs::TcContext,
};

use crate::overlay;

/// Outer TTL (the kernel's default).
const TTL: u8 = 64;
const KEY_SIZE: u32 = core::mem::size_of::<bpf_tunnel_key>() as u32;

/// tcx ingress of a container's host-side veth: frames for a container on another host get
/// their tunnel key and go to the vxlan device. Others pass (nothing else is expected: the
/// containers have static neighbour entries, so no ARP).
#[classifier]
pub fn vxlan_key_encap(ctx: TcContext) -> i32 {
    let Some(dst) = overlay::dst_mac(&ctx) else {
        return TC_ACT_OK;
    };
    let vni = overlay::vni();
    let Some(remote) = overlay::remote(vni, dst) else {
        return TC_ACT_OK;
    };
    // SAFETY: an all-zero key is valid (no IPv6, no label, local address chosen by route).
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    key.tunnel_id = vni;
    // The helper takes the address in host order.
    key.__bindgen_anon_1.remote_ipv4 = u32::from_be_bytes(remote.host_ip);
    key.tunnel_ttl = TTL;
    // UDP checksum 0 over IPv4, as Cilium sends (and C writes).
    // SAFETY: the key lives on our stack for the call; KEY_SIZE is its size.
    let set = unsafe {
        bpf_skb_set_tunnel_key(
            ctx.skb.skb,
            &mut key,
            KEY_SIZE,
            u64::from(BPF_F_ZERO_CSUM_TX),
        )
    };
    if set != 0 {
        return TC_ACT_SHOT;
    }
    // SAFETY: plain helper call; flags 0 = transmit on the device.
    unsafe { bpf_redirect(overlay::tunnel_ifindex(), 0) as i32 }
}

/// tcx ingress of the collect_md vxlan device: the frame is the inner one, its tunnel key
/// says which network it came on; a container of that network here with its destination MAC
/// gets it with `bpf_redirect_peer`. Everything else is dropped, as the vxlan device drops
/// frames for a VNI it does not serve.
#[classifier]
pub fn vxlan_key_deliver(ctx: TcContext) -> i32 {
    // SAFETY: as above.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    // SAFETY: the key lives on our stack for the call; flags 0 = IPv4 tunnel.
    if unsafe { bpf_skb_get_tunnel_key(ctx.skb.skb, &mut key, KEY_SIZE, 0) } != 0 {
        return TC_ACT_SHOT;
    }
    let Some(dst) = overlay::dst_mac(&ctx) else {
        return TC_ACT_SHOT;
    };
    match overlay::local(key.tunnel_id, dst) {
        // SAFETY: plain helper call; flags must be 0.
        Some(veth) => unsafe { bpf_redirect_peer(veth, 0) as i32 },
        None => TC_ACT_SHOT,
    }
}
