//! Delivery into an endpoint, the last step of every path that ends in a container: the frame
//! is addressed to the container's MAC, counted as received by its endpoint, and redirected
//! into the container. At tcx that is `bpf_redirect_peer`, straight into the container's
//! `eth0`, skipping the host-side veth's egress and a netns round trip (the skb keeps GSO and
//! checksum offload).
//!
//! Routed frames (replies of NATed flows, hairpinned published ports) arrive from the gateway
//! ([`into_endpoint`]); frames between endpoints of one network keep their sender's MAC
//! ([`into_peer`]); VXLAN that the uplink's XDP program decapsulated arrives addressed and
//! counted ([`into_container`]). Frames from the wire to a published port are delivered at
//! XDP, before an skb exists ([`frame_into_endpoint`]).

use aya_ebpf::{
    helpers::{bpf_redirect, bpf_redirect_peer},
    programs::{TcContext, XdpContext},
};
use network_types::eth::EthHdr;
use xnet_common::{DropReason, Endpoint, Neighbor};

use crate::{maps, stats};

/// Hands a frame to the container behind host-side veth `ifindex` as its gateway would: to its
/// MAC from the host side's, straight into its `eth0` (`bpf_redirect_peer`). If the endpoint is
/// gone, nobody on the host should see the frame either.
#[inline(always)]
pub fn into_endpoint(ctx: &TcContext, ifindex: u32) -> Result<i32, DropReason> {
    let endpoint = maps::endpoint(ifindex).ok_or(DropReason::UnknownEndpoint)?;
    let eth_addresses: [[u8; 6]; 2] = [endpoint.mac, endpoint.host_mac];
    ctx.store(0, &eth_addresses, 0)
        .map_err(|_| DropReason::Truncated)?;
    stats::count_rx(endpoint.slot, ctx.len());
    // SAFETY: plain helper call; flags must be 0.
    Ok(unsafe { bpf_redirect_peer(ifindex, 0) } as i32)
}

/// Hands a frame another endpoint of the network sent (to `dst_mac`) to `peer`.
#[inline(always)]
pub fn into_peer(ctx: &TcContext, peer: &Neighbor, dst_mac: [u8; 6]) -> Result<i32, DropReason> {
    // A sender with a stale or gateway-addressed frame still reaches the owner of the IP; the
    // receiver then sees its own MAC as destination, as it would behind a bridge.
    // (Stored with the helper, and only when needed: see `arp::turn_into_reply` on why the
    // fast path avoids direct packet writes.)
    if dst_mac != peer.mac {
        ctx.store(0, &peer.mac, 0)
            .map_err(|_| DropReason::Truncated)?;
    }
    stats::count_rx(peer.slot, ctx.len());
    // The kernel marks the skb PACKET_HOST for the new device.
    // SAFETY: plain helper call; flags must be 0.
    Ok(unsafe { bpf_redirect_peer(peer.ifindex, 0) } as i32)
}

/// Hands a frame that is already addressed and counted (decapsulated at the uplink's XDP hook,
/// `encap::frame_from_underlay`) to the container behind host-side veth `ifindex`.
#[inline(always)]
pub fn into_container(ifindex: u32) -> i32 {
    // SAFETY: plain helper call; flags must be 0.
    unsafe { bpf_redirect_peer(ifindex, 0) as i32 }
}

/// [`into_endpoint`] at XDP, for `endpoint`, behind host-side veth `ifindex`: an XDP redirect
/// into that veth, whose peer (the container's end) takes XDP frames because the daemon turns
/// GRO on there, which gives it NAPI. Returns the XDP verdict.
///
/// # Safety
/// `eth` is the frame's Ethernet header, bounds-checked.
#[inline(always)]
pub unsafe fn frame_into_endpoint(
    ctx: &XdpContext,
    eth: *mut EthHdr,
    ifindex: u32,
    endpoint: &Endpoint,
) -> u32 {
    // SAFETY: the caller's promise.
    unsafe {
        (*eth).dst_addr = endpoint.mac;
        (*eth).src_addr = endpoint.host_mac;
    }
    stats::count_rx(endpoint.slot, (ctx.data_end() - ctx.data()) as u32);
    // SAFETY: plain helper call.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}
