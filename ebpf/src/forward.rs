//! IPv4 delivery between the endpoints of one network, and to the host through the gateway.

use aya_ebpf::{bindings::TC_ACT_OK, helpers::bpf_redirect_peer, programs::TcContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use xnet_common::{DropReason, ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, Endpoint};

use crate::{flood, maps, nat, parse, stats};

/// Decides the fate of an IPv4 packet sent by `endpoint` (entered on host-side veth `ifindex`);
/// `to_group` when it was sent to a broadcast or multicast MAC, `dst_mac` the MAC it was sent to.
#[inline(always)]
pub fn ipv4_from_container(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    to_group: bool,
    dst_mac: [u8; 6],
) -> Result<i32, DropReason> {
    let ip: *const Ipv4Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
    // SAFETY: `header` checked that a whole Ipv4Hdr lies inside the packet; copied out before
    // anything rewrites the packet.
    let ip = unsafe { *ip };
    let (vihl, src, dst) = (ip.vihl, ip.src_addr, ip.dst_addr);
    if vihl >> 4 != 4 || vihl & 0x0f < 5 {
        return Err(DropReason::MalformedIp);
    }
    if src != endpoint.ipv4 {
        return Err(DropReason::SpoofedIp);
    }
    if to_group {
        // Subnet broadcast, mDNS, any IPv4 multicast: the network's members, no one else.
        return flood::to_members(ctx, ifindex, endpoint);
    }
    if dst == endpoint.gateway {
        // The host itself: its stack owns the gateway address.
        return Ok(TC_ACT_OK);
    }
    let Some(peer) = maps::neighbor(endpoint.network_id, dst) else {
        return to_outside(ctx, ifindex, endpoint, &ip);
    };
    if peer.ifindex == ifindex {
        // A container reaches its own address through its loopback, never through us.
        return Err(DropReason::NoRoute);
    }
    if endpoint.flags & ENDPOINT_ICC_OFF != 0 {
        return Err(DropReason::IccBlocked);
    }
    // A sender with a stale or gateway-addressed frame still reaches the owner of the IP; the
    // receiver then sees its own MAC as destination, as it would behind a bridge.
    // (Stored with the helper, and only when needed: see `arp::turn_into_reply` on why the
    // fast path avoids direct packet writes.)
    if dst_mac != peer.mac {
        ctx.store(0, &peer.mac, 0)
            .map_err(|_| DropReason::Truncated)?;
    }
    stats::count_rx(peer.slot, ctx.len());
    // Straight into the peer container's eth0 ingress, skipping the host-side veth's egress
    // and a netns round trip; the kernel marks the skb PACKET_HOST for the new device.
    // SAFETY: plain helper call; flags must be 0.
    Ok(unsafe { bpf_redirect_peer(peer.ifindex, 0) } as i32)
}

/// A destination outside the container's network: egress through the uplink, source-NATed,
/// unless policy says otherwise.
#[inline(always)]
fn to_outside(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    ip: &Ipv4Hdr,
) -> Result<i32, DropReason> {
    if endpoint.flags & ENDPOINT_INTERNAL != 0 {
        return Err(DropReason::Internal);
    }
    // Another network's containers and gateway are never "outside": isolation holds even
    // though the host could route there.
    if maps::in_any_subnet(ip.dst_addr) {
        return Err(DropReason::OtherNetwork);
    }
    let uplink = maps::uplink().ok_or(DropReason::NoUplink)?;
    if ip.dst_addr == uplink.ipv4 {
        // The host itself, by its uplink address: its stack answers, replies route back.
        return Ok(TC_ACT_OK);
    }
    nat::to_outside(ctx, ifindex, ip, &uplink)
}
