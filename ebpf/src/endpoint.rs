//! Entry points on a container's host-side veth.
//!
//! Ingress of the host-side veth is where every frame a container sends first meets the host,
//! so this is where the datapath decides: answer ARP and neighbour solicitations itself, deliver to another container of the
//! same network with `bpf_redirect_peer` (the skb keeps GSO and checksum offload, which is why
//! this is TC and not XDP), hand frames for the gateway to the host stack, or drop.

use aya_ebpf::{bindings::TC_ACT_OK, macros::classifier, programs::TcContext};
use network_types::eth::{EthHdr, EtherType};
use xnet_common::{DropReason, Endpoint};

use crate::{arp, forward, lan, maps, monitor, parse, stats};

/// tcx ingress of a container's host-side veth: frames the container sends.
#[classifier]
pub fn endpoint_ingress(ctx: TcContext) -> i32 {
    let ifindex = ingress_ifindex(&ctx);
    // Fail closed: a veth we have no endpoint for (mid-setup, mid-teardown) forwards nothing.
    monitor::from_container(&ctx);
    let Some(endpoint) = maps::endpoint(ifindex) else {
        return monitor::dropped_at_tc(&ctx, None, DropReason::UnknownEndpoint);
    };
    match from_container(&ctx, ifindex, endpoint) {
        Ok(action) => action,
        Err(reason) => monitor::dropped_at_tc(&ctx, Some(endpoint.slot), reason),
    }
}

/// tcx ingress of the host-side veth of a container on a LAN network (macvlan, ipvlan): its
/// own program, so the bridge path above pays nothing for LAN networks and the reverse.
#[classifier]
pub fn lan_endpoint_ingress(ctx: TcContext) -> i32 {
    let ifindex = ingress_ifindex(&ctx);
    monitor::from_container(&ctx);
    let Some(endpoint) = maps::endpoint(ifindex) else {
        return monitor::dropped_at_tc(&ctx, None, DropReason::UnknownEndpoint);
    };
    match lan::from_container(&ctx, ifindex, endpoint).verdict() {
        Ok(action) => {
            stats::count_tx(endpoint.slot, ctx.len());
            action
        }
        Err(reason) => monitor::dropped_at_tc(&ctx, Some(endpoint.slot), reason),
    }
}

/// tcx egress of a container's host-side veth: frames the host stack sends to the container.
/// Frames from other containers arrive by `bpf_redirect_peer` and never pass here; they are
/// counted where they are redirected.
#[classifier]
pub fn endpoint_egress(ctx: TcContext) -> i32 {
    if let Some(endpoint) = maps::endpoint(ingress_ifindex(&ctx)) {
        stats::count_rx(endpoint.slot, ctx.len());
        monitor::to_container(&ctx);
    }
    TC_ACT_OK
}

/// The device the hook runs on (for the test runner: loopback, unless the test says otherwise).
#[inline(always)]
fn ingress_ifindex(ctx: &TcContext) -> u32 {
    // SAFETY: `skb` is the context pointer the kernel passed in; `ifindex` is readable for TC.
    unsafe { (*ctx.skb.skb).ifindex }
}

fn from_container(ctx: &TcContext, ifindex: u32, endpoint: &Endpoint) -> Result<i32, DropReason> {
    let eth: *const EthHdr = parse::header(ctx, 0).ok_or(DropReason::Truncated)?;
    // SAFETY: `header` checked that a whole EthHdr lies inside the packet.
    let (dst_mac, src_mac, ether_type) =
        unsafe { ((*eth).dst_addr, (*eth).src_addr, (*eth).ether_type) };
    if src_mac != endpoint.mac {
        return Err(DropReason::SpoofedMac);
    }
    // A VLAN tag the container wrote, which the kernel took into the skb before tc.
    // SAFETY: `skb` is the context the kernel passed in; this field is readable at tc.
    if unsafe { (*ctx.skb.skb).vlan_present } != 0 {
        return Err(DropReason::UnsupportedEtherType);
    }
    // The group bit: broadcast or multicast.
    let to_group = dst_mac[0] & 1 != 0;
    let action = if ether_type == EtherType::Arp as u16 {
        arp::answer_from_container(ctx, ifindex, endpoint).verdict()?
    } else if ether_type == EtherType::Ipv4 as u16 {
        forward::ipv4_from_container(ctx, ifindex, endpoint, to_group, dst_mac)?
    } else if ether_type == EtherType::Ipv6 as u16 {
        forward::ipv6_from_container(ctx, ifindex, endpoint, dst_mac)?
    } else {
        return Err(DropReason::UnsupportedEtherType);
    };
    stats::count_tx(endpoint.slot, ctx.len());
    Ok(action)
}
