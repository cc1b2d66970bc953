//! LAN networks (the macvlan and ipvlan drivers): containers directly on the LAN of a parent
//! device, with addresses of that LAN. There is no NAT and no gateway on the host: a
//! container's frames leave through the parent as they are (tagged with the network's VLAN, if
//! it has one); the LAN's frames for a container come in through the parent's hook (`parent`),
//! found by destination MAC (macvlan) or address (ipvlan) and untagged; containers on one
//! parent reach each other directly, through the LAN's switch, or not at all, as the network's
//! mode says. Both directions keep the host-side hook of a veth, so the sender's MAC and
//! addresses are checked and every endpoint is counted, as on a bridge network.
//!
//! - Layer 2 (macvlan, ipvlan l2): a container's frame is switched on its destination MAC,
//!   as the kernel's macvlan driver does: a sibling's MAC (for ipvlan, whose containers all
//!   have the parent's MAC, the parent's MAC and a sibling's address), the host's (only with
//!   host access), or the LAN. Broadcasts reach the siblings (bridge mode) and the LAN.
//! - Layer 3 (ipvlan l3, l3s): routed on the destination address, as the kernel's ipvlan l3
//!   does: a container of an l3 network on the same parent, the host (host access), or the
//!   next hop the host's FIB gives on the parent (`bpf_redirect_neigh`). No broadcast,
//!   multicast or ARP.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::{
        bpf_redirect, bpf_redirect_neigh, bpf_skb_change_type, bpf_skb_vlan_pop, bpf_skb_vlan_push,
    },
    programs::TcContext,
};
use network_types::{
    arp::ArpHdr,
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use xnet_common::{
    DropReason, ENDPOINT_INTERNAL, ENDPOINT_IPV6, Endpoint, LAN_HOST_ACCESS, LAN_IPVLAN, LAN_L3,
    LAN_MODE_PRIVATE, LAN_MODE_VEPA, LanNetwork, Neighbor,
};

use crate::{arp, deliver, flood, ipv6, maps, nd, outcome::Outcome, packet::IPPROTO_ICMPV6, parse};

/// The 802.1Q tag's EtherType, and 802.1ad's (QinQ's outer tag).
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// `skb->pkt_type` of a frame addressed to this host.
const PACKET_HOST: u32 = 0;

/// The address a container's frame is for, as far as a LAN network looks (ARP: the target).
#[derive(Clone, Copy)]
enum Destination {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// Decides the fate of a frame a container of a LAN network sent (entered on host-side veth
/// `ifindex`). Not inlined: its own stack frame.
#[inline(never)]
pub fn from_container(ctx: &TcContext, ifindex: u32, endpoint: &Endpoint) -> Outcome {
    Outcome::pack(decide(ctx, ifindex, endpoint).map(Some))
}

#[inline(always)]
fn decide(ctx: &TcContext, ifindex: u32, endpoint: &Endpoint) -> Result<i32, DropReason> {
    // Fail closed: an endpoint whose network is not (or no longer) described forwards nothing.
    let lan = maps::lan_network(endpoint.network_id).ok_or(DropReason::UnknownEndpoint)?;
    // A tag the container wrote itself, which the kernel took into the skb before tc: it
    // would leave on a VLAN of the container's choosing (or inside the network's own).
    // SAFETY: `skb` is the context the kernel passed in; this field is readable at tc.
    if unsafe { (*ctx.skb.skb).vlan_present } != 0 {
        return Err(DropReason::UnsupportedEtherType);
    }
    let eth: *const EthHdr = parse::header(ctx, 0).ok_or(DropReason::Truncated)?;
    // SAFETY: `header` checked that a whole EthHdr lies inside the packet.
    let (dst_mac, src_mac, ether_type) =
        unsafe { ((*eth).dst_addr, (*eth).src_addr, (*eth).ether_type) };
    if src_mac != endpoint.mac {
        return Err(DropReason::SpoofedMac);
    }
    let to_group = dst_mac[0] & 1 != 0;
    let l3 = lan.flags & LAN_L3 != 0;
    let destination = if ether_type == EtherType::Arp as u16 {
        if l3 {
            return Err(DropReason::LanL3Group);
        }
        let arp: *const ArpHdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
        // SAFETY: bounds checked; copied out before the frame is rewritten.
        let mut arp = unsafe { *arp };
        arp::check_from(&arp, endpoint)?;
        if lan.flags & LAN_HOST_ACCESS != 0
            && arp.oper() == arp::OPER_REQUEST
            && arp.tpa == lan.host_ipv4
        {
            // The host's address on the parent answers with the host-side veth's MAC: the
            // container's frames for the host then enter the host's stack on that veth.
            arp::turn_into_reply(ctx, &mut arp, endpoint.host_mac)?;
            // SAFETY: plain helper call; back out of the same veth, into the container.
            return Ok(unsafe { bpf_redirect(ifindex, 0) } as i32);
        }
        Destination::V4(arp.tpa)
    } else if ether_type == EtherType::Ipv4 as u16 {
        let ip: *const Ipv4Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
        // SAFETY: bounds checked; copied out.
        let ip = unsafe { *ip };
        if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
            return Err(DropReason::MalformedIp);
        }
        if ip.src_addr != endpoint.ipv4 {
            return Err(DropReason::SpoofedIp);
        }
        Destination::V4(ip.dst_addr)
    } else if ether_type == EtherType::Ipv6 as u16 {
        Destination::V6(checked_ipv6(ctx, endpoint, to_group)?)
    } else {
        return Err(DropReason::UnsupportedEtherType);
    };
    if l3 {
        if to_group {
            return Err(DropReason::LanL3Group);
        }
        return route(ctx, ifindex, endpoint, lan, destination);
    }
    switch(ctx, ifindex, endpoint, lan, dst_mac, destination)
}

/// Checks an IPv6 packet of `endpoint` (its network has IPv6; the source is its address, its
/// link-local address, or `::` to a group; no router's messages) and returns its destination.
#[inline(always)]
fn checked_ipv6(
    ctx: &TcContext,
    endpoint: &Endpoint,
    to_group: bool,
) -> Result<[u8; 16], DropReason> {
    if endpoint.flags & ENDPOINT_IPV6 == 0 {
        return Err(DropReason::UnsupportedEtherType);
    }
    let ip: *const Ipv6Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
    // SAFETY: bounds checked; copied out.
    let ip = unsafe { *ip };
    if ip.vcf[0] >> 4 != 6 {
        return Err(DropReason::MalformedIp);
    }
    if !ipv6::is_own_source(endpoint, &ip.src_addr, to_group) {
        return Err(DropReason::SpoofedIp);
    }
    if ip.next_hdr == IPPROTO_ICMPV6 {
        nd::police_on_lan(ctx, endpoint)?;
    }
    Ok(ip.dst_addr)
}

/// Layer 2: by destination MAC, as the kernel's macvlan switches.
#[inline(always)]
fn switch(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    lan: &LanNetwork,
    dst_mac: [u8; 6],
    destination: Destination,
) -> Result<i32, DropReason> {
    if dst_mac[0] & 1 != 0 {
        // Broadcast and multicast: the siblings hear it directly only in bridge mode (in vepa
        // mode the switch sends it back to them); the LAN hears it in every mode.
        if lan.mode != LAN_MODE_PRIVATE && lan.mode != LAN_MODE_VEPA {
            flood::copy_to_members(ctx, endpoint.network_id, ifindex);
        }
        if !has_way_out(endpoint, lan) {
            return Ok(TC_ACT_SHOT);
        }
        return out_of_parent(ctx, endpoint, lan);
    }
    if dst_mac == endpoint.host_mac {
        // Only a container with host access learns that MAC (the ARP answer above), and only
        // the host's address on the parent is reached through it: the host is no router
        // into its other networks.
        let to_host = match destination {
            Destination::V4(ip) => ip == lan.host_ipv4,
            Destination::V6(_) => false,
        };
        if lan.flags & LAN_HOST_ACCESS != 0 && to_host {
            return Ok(TC_ACT_OK);
        }
        return Err(DropReason::NoRoute);
    }
    let sibling = if lan.flags & LAN_IPVLAN != 0 {
        // Every ipvlan container has the parent's MAC: the address tells them apart.
        if dst_mac == lan.parent_mac {
            neighbor_of(endpoint.network_id, destination)
        } else {
            None
        }
    } else {
        maps::lan_mac(endpoint.network_id, dst_mac)
    };
    match sibling {
        Some(peer) => to_sibling(ctx, ifindex, endpoint, lan, &peer, dst_mac),
        None => out_of_parent(ctx, endpoint, lan),
    }
}

/// Layer 3: by destination address, as the kernel's ipvlan l3 routes.
#[inline(always)]
fn route(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    lan: &LanNetwork,
    destination: Destination,
) -> Result<i32, DropReason> {
    // A link without ARP sends even broadcasts to its own MAC: the address tells. Multicast,
    // the reserved class E and the limited broadcast (224.0.0.0 and up), IPv6 multicast: the
    // kernel's ipvlan l3 drops what does not route to one host, and so does this.
    let to_group = match destination {
        Destination::V4(ip) => ip[0] >= 224,
        Destination::V6(ip) => ipv6::is_multicast(&ip),
    };
    if to_group {
        return Err(DropReason::LanL3Group);
    }
    if let Destination::V4(ip) = destination
        && lan.flags & LAN_HOST_ACCESS != 0
        && ip == lan.host_ipv4
    {
        return to_host(ctx, endpoint);
    }
    let Some(network_id) = l3_network_of(destination) else {
        if !has_way_out(endpoint, lan) {
            return Err(DropReason::Internal);
        }
        tag(ctx, lan.vlan)?;
        // SAFETY: plain helper call; no neighbour parameters: the host's FIB picks the next
        // hop on the parent (or takes the destination as on-link when it has no route there).
        return Ok(unsafe { bpf_redirect_neigh(lan.parent, core::ptr::null_mut(), 0, 0) } as i32);
    };
    // An l3 network on the same parent and VLAN (this one or another) is one routing domain.
    // (Networks without a parent, internal ones among them, are each a domain of their own.)
    let same_domain = network_id == endpoint.network_id
        || (lan.parent != 0
            && maps::lan_network(network_id)
                .is_some_and(|other| other.parent == lan.parent && other.vlan == lan.vlan));
    if !same_domain {
        return Err(DropReason::OtherNetwork);
    }
    let peer = neighbor_of(network_id, destination).ok_or(DropReason::NoRoute)?;
    // Addressed to the container's own MAC (its link has no ARP); `into_peer` readdresses it.
    to_sibling(ctx, ifindex, endpoint, lan, &peer, [0; 6])
}

/// A frame for another container on the same parent, as the network's mode allows.
#[inline(always)]
fn to_sibling(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    lan: &LanNetwork,
    peer: &Neighbor,
    dst_mac: [u8; 6],
) -> Result<i32, DropReason> {
    if peer.ifindex == ifindex {
        // A container reaches its own address through its loopback, never through us.
        return Err(DropReason::NoRoute);
    }
    match lan.mode {
        LAN_MODE_PRIVATE => Err(DropReason::LanPrivate),
        LAN_MODE_VEPA => out_of_parent(ctx, endpoint, lan),
        _ => deliver::into_peer(ctx, peer, dst_mac),
    }
}

/// Into the host's stack (host access, l3): addressed to the host-side veth, whose stack takes
/// only frames for its own MAC.
#[inline(always)]
fn to_host(ctx: &TcContext, endpoint: &Endpoint) -> Result<i32, DropReason> {
    ctx.store(0, &endpoint.host_mac, 0)
        .map_err(|_| DropReason::Truncated)?;
    // SAFETY: plain helper call on this program's skb.
    unsafe { bpf_skb_change_type(ctx.skb.skb, PACKET_HOST) };
    Ok(TC_ACT_OK)
}

/// Whether the endpoint's frames may leave through a parent: it has one, and is not internal.
#[inline(always)]
fn has_way_out(endpoint: &Endpoint, lan: &LanNetwork) -> bool {
    lan.parent != 0 && endpoint.flags & ENDPOINT_INTERNAL == 0
}

/// Out of the parent onto the LAN, as the container addressed it, tagged with the network's
/// VLAN.
#[inline(always)]
fn out_of_parent(
    ctx: &TcContext,
    endpoint: &Endpoint,
    lan: &LanNetwork,
) -> Result<i32, DropReason> {
    if !has_way_out(endpoint, lan) {
        return Err(DropReason::Internal);
    }
    tag(ctx, lan.vlan)?;
    // SAFETY: plain helper call; flags 0: the parent's egress.
    Ok(unsafe { bpf_redirect(lan.parent, 0) } as i32)
}

/// Tags the frame with VLAN `vlan` (0: untouched): a container's frame on its way out, or a
/// frame from the LAN given back to the host after its copies. The tag goes into the skb's
/// metadata; the parent's driver, or the kernel for a device without tag offload, writes it
/// into the frame.
#[inline(always)]
fn tag(ctx: &TcContext, vlan: u16) -> Result<(), DropReason> {
    // SAFETY: plain helper call on this program's skb.
    if vlan != 0 && unsafe { bpf_skb_vlan_push(ctx.skb.skb, ETH_P_8021Q.to_be(), vlan) } != 0 {
        return Err(DropReason::Truncated);
    }
    Ok(())
}

/// The ipvlan l3 network whose subnet holds `destination`.
#[inline(always)]
fn l3_network_of(destination: Destination) -> Option<u32> {
    match destination {
        Destination::V4(ip) => maps::l3_network_of(ip),
        Destination::V6(ip) => maps::l3_network_of6(ip),
    }
}

/// The container of network `network_id` that owns `destination`.
#[inline(always)]
fn neighbor_of(network_id: u32, destination: Destination) -> Option<Neighbor> {
    match destination {
        Destination::V4(ip) => maps::neighbor(network_id, ip),
        Destination::V6(ip) => maps::neighbor6(network_id, ip),
    }
}

/// A frame from the LAN, entered on parent device `ifindex`: to the container it is for, or
/// on to the host (`TC_ACT_UNSPEC`: the next program on the hook, then the host's stack).
#[inline(always)]
pub fn from_parent(ctx: &TcContext, ifindex: u32) -> Result<i32, DropReason> {
    // SAFETY: `skb` is the context the kernel passed in; this field is readable at tc.
    let tag_in_skb = unsafe { (*ctx.skb.skb).vlan_present } != 0;
    let eth: *const EthHdr = parse::header(ctx, 0).ok_or(DropReason::Truncated)?;
    // The kernel takes a VLAN tag off into the skb before tc runs; the test runner leaves it
    // in the frame. Move such a tag to the skb first (pop, push), so that both look alike
    // below. Only the outer tag: one behind a tag the kernel took off stays in the frame.
    // SAFETY: bounds checked.
    if !tag_in_skb && unsafe { (*eth).ether_type } == ETH_P_8021Q.to_be() {
        let tci: u16 = ctx
            .load::<u16>(EthHdr::LEN)
            .map_err(|_| DropReason::Truncated)?;
        // SAFETY: plain helper calls on this program's skb.
        let moved = unsafe {
            bpf_skb_vlan_pop(ctx.skb.skb) == 0
                && bpf_skb_vlan_push(ctx.skb.skb, ETH_P_8021Q.to_be(), u16::from_be(tci)) == 0
        };
        if !moved {
            return Err(DropReason::Truncated);
        }
    }
    // SAFETY: as above.
    let (vlan_present, vlan_tci, vlan_proto) = unsafe {
        let skb = ctx.skb.skb;
        ((*skb).vlan_present, (*skb).vlan_tci, (*skb).vlan_proto)
    };
    let vlan = if vlan_present != 0 {
        if vlan_proto != u32::from(ETH_P_8021Q.to_be()) {
            // 802.1ad (QinQ) is no LAN network's.
            return Ok(TC_ACT_UNSPEC);
        }
        (vlan_tci & 0x0fff) as u16
    } else {
        0
    };
    let eth: *const EthHdr = parse::header(ctx, 0).ok_or(DropReason::Truncated)?;
    // SAFETY: bounds checked.
    let (dst_mac, ether_type) = unsafe { ((*eth).dst_addr, (*eth).ether_type) };
    if ether_type == ETH_P_8021Q.to_be() || ether_type == ETH_P_8021AD.to_be() {
        // A second tag: no network's frame (taking only the outer one off would let a frame
        // of one VLAN carry another's tag into a container).
        return Ok(TC_ACT_UNSPEC);
    }
    if dst_mac[0] & 1 != 0 {
        // Broadcast and multicast reach every member of the layer-2 network there (l3
        // networks hear none), and the host, as with the kernel's macvlan.
        let Some(layer2) = maps::lan_network_on(ifindex, vlan) else {
            return Ok(TC_ACT_UNSPEC);
        };
        untag(ctx, vlan)?;
        flood::copy_to_members(ctx, layer2.network_id, 0);
        tag(ctx, vlan)?;
        return Ok(TC_ACT_UNSPEC);
    }
    let Some(peer) = container_for(ctx, ifindex, vlan, dst_mac, ether_type)? else {
        return Ok(TC_ACT_UNSPEC);
    };
    untag(ctx, vlan)?;
    deliver::into_peer(ctx, &peer, dst_mac)
}

/// The container a unicast frame from the LAN (parent `ifindex`, VLAN `vlan`) is for, if any.
#[inline(always)]
fn container_for(
    ctx: &TcContext,
    ifindex: u32,
    vlan: u16,
    dst_mac: [u8; 6],
    ether_type: u16,
) -> Result<Option<Neighbor>, DropReason> {
    if let Some(layer2) = maps::lan_network_on(ifindex, vlan) {
        if layer2.flags & LAN_IPVLAN == 0 {
            // macvlan: by MAC alone, whatever the frame carries.
            return Ok(maps::lan_mac(layer2.network_id, dst_mac));
        }
        if dst_mac != layer2.parent_mac {
            return Ok(None);
        }
        return Ok(destination_of(ctx, ether_type)?.and_then(|d| neighbor_of(layer2.network_id, d)));
    }
    // l3 networks: routed to the parent's MAC, found by address.
    let Some(destination) = destination_of(ctx, ether_type)? else {
        return Ok(None);
    };
    let Some(network_id) = l3_network_of(destination) else {
        return Ok(None);
    };
    let on_this_parent = maps::lan_network(network_id)
        .is_some_and(|lan| lan.parent == ifindex && lan.vlan == vlan && dst_mac == lan.parent_mac);
    Ok(if on_this_parent {
        neighbor_of(network_id, destination)
    } else {
        None
    })
}

/// The address a frame from the LAN is for: IPv4, IPv6, or an ARP packet's target.
#[inline(always)]
fn destination_of(ctx: &TcContext, ether_type: u16) -> Result<Option<Destination>, DropReason> {
    Ok(Some(if ether_type == EtherType::Ipv4 as u16 {
        let ip: *const Ipv4Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
        // SAFETY: bounds checked.
        Destination::V4(unsafe { (*ip).dst_addr })
    } else if ether_type == EtherType::Ipv6 as u16 {
        let ip: *const Ipv6Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
        // SAFETY: bounds checked.
        Destination::V6(unsafe { (*ip).dst_addr })
    } else if ether_type == EtherType::Arp as u16 {
        let arp: *const ArpHdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
        // SAFETY: bounds checked.
        Destination::V4(unsafe { (*arp).tpa })
    } else {
        return Ok(None);
    }))
}

/// Takes the VLAN tag off (the container sees its LAN untagged).
#[inline(always)]
fn untag(ctx: &TcContext, vlan: u16) -> Result<(), DropReason> {
    // SAFETY: plain helper call on this program's skb.
    if vlan != 0 && unsafe { bpf_skb_vlan_pop(ctx.skb.skb) } != 0 {
        return Err(DropReason::Truncated);
    }
    Ok(())
}
