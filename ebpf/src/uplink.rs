//! Entry points on the host's uplink (`xnetd --uplink IFACE`): frames arriving from the wire.
//!
//! - [`uplink_xdp`] first, before the kernel builds an skb: VXLAN from the other hosts of the
//!   cluster, checked and stripped of its outer headers (`encap::frame_from_underlay`), so
//!   that the kernel builds the skb from the inner frame and GRO merges a flow's segments
//!   (nothing merges VXLAN itself without a tunnel socket); then connections to published
//!   ports, translated and redirected into the container's veth (`dnat::from_wire`).
//! - [`uplink_ingress`] (tcx) then: what XDP decapsulated, handed into its container; VXLAN
//!   that XDP left whole (replicas of broadcasts, frames of drivers without XDP metadata),
//!   decapsulated here (`encap::from_underlay`); and replies of containers' NATed
//!   connections. All are delivered with `bpf_redirect_peer` straight into the container's
//!   namespace, the same path as container-to-container traffic, keeping the skb (GSO,
//!   checksum state). NAT replies stay at tcx because they include ICMP errors and IPv6,
//!   whose rewrites the tc checksum helpers handle for any skb the uplink hands us.

use aya_ebpf::{
    bindings::TC_ACT_OK,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use xnet_common::DropReason;

use crate::{
    deliver, dnat, encap, ipv6, maps, monitor, nat,
    packet::{Packet, V4, V6},
    parse,
};

/// XDP of the uplink: VXLAN for this host is decapsulated (or dropped, counted), frames to
/// published ports go to their container; everything else passes (on to `uplink_ingress`).
/// Multi-buffer capable (`frags`), so it also attaches to uplinks with a jumbo MTU; the headers
/// it reads are always in the first buffer.
#[xdp(frags)]
pub fn uplink_xdp(ctx: XdpContext) -> u32 {
    match encap::frame_from_underlay(&ctx, encap::Arrival::InClear).unpack() {
        Ok(Some(verdict)) => verdict as u32,
        Ok(None) => dnat::from_wire(&ctx),
        Err(reason) => monitor::dropped_at_xdp(&ctx, reason),
    }
}

/// tcx ingress of the uplink: VXLAN for this host goes to the endpoint it carries a frame for,
/// replies of containers' NATed flows go back to them; everything else is the host's and
/// passes untouched.
#[classifier]
pub fn uplink_ingress(ctx: TcContext) -> i32 {
    match from_outside(&ctx) {
        Ok(action) => action,
        Err(reason) => monitor::dropped_at_tc(&ctx, None, reason),
    }
}

fn from_outside(ctx: &TcContext) -> Result<i32, DropReason> {
    // First: the tunnel does not depend on the uplink's address, and VXLAN is never NATed.
    if let Some(verdict) = encap::from_underlay(ctx, encap::Arrival::InClear).unpack()? {
        return Ok(verdict);
    }
    let Some(uplink) = maps::uplink() else {
        return Ok(TC_ACT_OK);
    };
    let eth: *const EthHdr = parse::header(ctx, 0).ok_or(DropReason::Truncated)?;
    // SAFETY: `header` checked the bounds.
    let ether_type = unsafe { (*eth).ether_type };
    if ether_type == EtherType::Ipv4 as u16 {
        let ip: *const Ipv4Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
        // SAFETY: `header` checked the bounds; copied out before the packet is rewritten.
        let ip = unsafe { *ip };
        if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
            return Ok(TC_ACT_OK);
        }
        let Ok(packet) = Packet::of_ipv4(&ip) else {
            return Ok(TC_ACT_OK);
        };
        if ip.dst_addr != uplink.ipv4 {
            return Ok(TC_ACT_OK);
        }
        match nat::from_outside::<V4>(ctx, &packet, uplink).unpack()? {
            // The outcome's value is the container's host-side ifindex.
            Some(ifindex) => deliver::into_endpoint(ctx, ifindex as u32),
            None => Ok(TC_ACT_OK),
        }
    } else if ether_type == EtherType::Ipv6 as u16 {
        let ip: *const Ipv6Hdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
        // SAFETY: as above.
        let ip = unsafe { *ip };
        if ipv6::is_unspecified(&uplink.ipv6)
            || !ipv6::same(&ip.dst_addr, &uplink.ipv6)
            || ip.vcf[0] >> 4 != 6
        {
            return Ok(TC_ACT_OK);
        }
        match nat::from_outside::<V6>(ctx, &Packet::of_ipv6(&ip), uplink).unpack()? {
            Some(ifindex) => deliver::into_endpoint(ctx, ifindex as u32),
            None => Ok(TC_ACT_OK),
        }
    } else {
        Ok(TC_ACT_OK)
    }
}
