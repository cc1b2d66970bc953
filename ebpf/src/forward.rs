//! IP delivery between the endpoints of one network, to the host through the gateway, and to
//! the outside through NAT; IPv4 and IPv6 follow the same steps.

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use xnet_common::{
    DropReason, ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, Endpoint, Neighbor, link_local_of,
};

use crate::{
    deliver, dnat, encap, flood, ipv6, maps, nat, nd,
    packet::{Packet, V4, V6},
    parse,
};

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
        return to_every_member(ctx, ifindex, endpoint);
    }
    if dst == endpoint.gateway {
        return to_host(ctx, ifindex, endpoint, &ip);
    }
    if let Some(peer) = maps::neighbor(endpoint.network_id, dst) {
        return to_peer(ctx, ifindex, endpoint, &peer, dst_mac);
    }
    if endpoint.flags & ENDPOINT_INTERNAL != 0 {
        return Err(DropReason::Internal);
    }
    // Another network's containers and gateway are never "outside": isolation holds even
    // though the host could route there.
    if maps::in_any_subnet(dst) {
        return Err(DropReason::OtherNetwork);
    }
    let uplink = maps::uplink().ok_or(DropReason::NoUplink)?;
    if dst == uplink.ipv4 {
        return to_host(ctx, ifindex, endpoint, &ip);
    }
    let packet = Packet::of_ipv4(&ip)?;
    if let Some(verdict) = dnat::reply_to_outside::<V4>(ctx, &packet, uplink).unpack()? {
        return Ok(verdict);
    }
    nat::to_outside::<V4>(ctx, ifindex, &packet, uplink).verdict()
}

/// A packet for an address of the host (the gateway, the uplink's): a connection to (or the
/// reply of) a published port through the host's address, which `dnat` turns around, or the
/// host stack's own traffic, which its stack answers (replies route back through the veth).
#[inline(always)]
fn to_host(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    ip: &Ipv4Hdr,
) -> Result<i32, DropReason> {
    if let Ok(packet) = Packet::of_ipv4(ip)
        && let Some(verdict) =
            dnat::to_host_address::<V4>(ctx, ifindex, endpoint, &packet).unpack()?
    {
        return Ok(verdict);
    }
    Ok(TC_ACT_OK)
}

/// The same for an IPv6 packet; on a network without IPv6 every IPv6 frame is dropped.
#[inline(always)]
pub fn ipv6_from_container(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    dst_mac: [u8; 6],
) -> Result<i32, DropReason> {
    // (Derived here rather than passed in: a BPF call takes at most five arguments, the
    // returned Result's pointer included.)
    let to_group = dst_mac[0] & 1 != 0;
    if endpoint.flags & xnet_common::ENDPOINT_IPV6 == 0 {
        return Err(DropReason::UnsupportedEtherType);
    }
    let ip: *const Ipv6Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
    // SAFETY: `header` checked the bounds; copied out before anything rewrites the packet.
    let ip = unsafe { *ip };
    if ip.vcf[0] >> 4 != 6 {
        return Err(DropReason::MalformedIp);
    }
    if !ipv6::is_own_source(endpoint, &ip.src_addr, to_group) {
        return Err(DropReason::SpoofedIp);
    }
    if let Some(action) = nd::from_container(ctx, ifindex, endpoint, &ip, to_group).unpack()? {
        return Ok(action);
    }
    if to_group {
        // Multicast (listener reports, mDNS...): the members only. Sent from `::`, it stays
        // on this host: other hosts could not tell whose it is, and would refuse it.
        if ipv6::is_unspecified(&ip.src_addr) {
            return flood::to_members(ctx, ifindex, endpoint);
        }
        return to_every_member(ctx, ifindex, endpoint);
    }
    let dst = ip.dst_addr;
    if ipv6::same(&dst, &endpoint.gateway6) {
        return to_host6(ctx, ifindex, endpoint, &ip);
    }
    if ipv6::same(&dst, &link_local_of(endpoint.host_mac)) {
        // The host-side veth's link-local address (neighbour advertisements answering the
        // host's solicitations).
        return Ok(TC_ACT_OK);
    }
    if let Some(peer) = maps::neighbor6(endpoint.network_id, dst) {
        return to_peer(ctx, ifindex, endpoint, &peer, dst_mac);
    }
    if endpoint.flags & ENDPOINT_INTERNAL != 0 {
        return Err(DropReason::Internal);
    }
    if ipv6::is_link_local(&dst) || ipv6::is_multicast(&dst) {
        // Link-local addresses nobody on the network owns, and multicast sent to a unicast
        // MAC: nowhere to go.
        return Err(DropReason::NoRoute);
    }
    if maps::in_any_subnet6(dst) {
        return Err(DropReason::OtherNetwork);
    }
    let uplink = maps::uplink().ok_or(DropReason::NoUplink)?;
    if ipv6::is_unspecified(&uplink.ipv6) {
        return Err(DropReason::NoUplink);
    }
    if ipv6::same(&dst, &uplink.ipv6) {
        return to_host6(ctx, ifindex, endpoint, &ip);
    }
    let packet = Packet::of_ipv6(&ip);
    if let Some(verdict) = dnat::reply_to_outside::<V6>(ctx, &packet, uplink).unpack()? {
        return Ok(verdict);
    }
    nat::to_outside::<V6>(ctx, ifindex, &packet, uplink).verdict()
}

/// [`to_host`] for IPv6: published ports through the host's IPv6 addresses (hairpin), else the
/// host stack's own traffic.
#[inline(always)]
fn to_host6(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    ip: &Ipv6Hdr,
) -> Result<i32, DropReason> {
    let packet = Packet::of_ipv6(ip);
    if let Some(verdict) = dnat::to_host_address::<V6>(ctx, ifindex, endpoint, &packet).unpack()? {
        return Ok(verdict);
    }
    Ok(TC_ACT_OK)
}

/// Hands a broadcast or multicast frame of `endpoint` to every other member of its network:
/// copies into those of this host, then (overlay networks) one to each other host with
/// members, which delivers it to its own.
#[inline(always)]
fn to_every_member(ctx: &TcContext, ifindex: u32, endpoint: &Endpoint) -> Result<i32, DropReason> {
    let verdict = flood::to_members(ctx, ifindex, endpoint)?;
    Ok(encap::to_hosts(ctx, endpoint.network_id)
        .unpack()?
        .unwrap_or(verdict))
}

/// Delivers a frame of `endpoint` to `peer`, another endpoint of its network: on this host
/// into its container, on another host through the tunnel.
#[inline(always)]
fn to_peer(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    peer: &Neighbor,
    dst_mac: [u8; 6],
) -> Result<i32, DropReason> {
    if peer.ifindex == ifindex {
        // A container reaches its own address through its loopback, never through us.
        return Err(DropReason::NoRoute);
    }
    if endpoint.flags & ENDPOINT_ICC_OFF != 0 {
        return Err(DropReason::IccBlocked);
    }
    if peer.is_remote() {
        return encap::to_remote(ctx, peer).verdict();
    }
    deliver::into_peer(ctx, peer, dst_mac)
}
