//! The neighbour discovery responder, IPv6's counterpart of [`crate::arp`]: the datapath knows
//! every address of a network, so it answers neighbour solicitations itself, in place, and
//! polices the rest of ND: a container may advertise only its own addresses and MAC, and may
//! never act as a router.

use aya_ebpf::{
    helpers::{bpf_csum_diff, bpf_redirect},
    programs::TcContext,
};
use network_types::{eth::EthHdr, ip::Ipv6Hdr};
use xnet_common::{DropReason, ENDPOINT_ICC_OFF, Endpoint, link_local_of};

use crate::{csum, flood, ipv6, maps, outcome::Outcome, packet::IPPROTO_ICMPV6};

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
const REDIRECT: u8 = 137;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
/// Hosts accept ND only with the hop limit a router cannot have decremented (RFC 4861 7.1).
const ND_HOP_LIMIT: u8 = 255;

const ICMP_OFF: usize = EthHdr::LEN + Ipv6Hdr::LEN;
const IP_ADDRS_OFF: usize = EthHdr::LEN + 8;

/// A neighbour solicitation or advertisement without options: type, code, checksum, flags (NA)
/// or reserved (NS), target address.
#[repr(C)]
#[derive(Clone, Copy)]
struct NdMessage {
    icmp_type: u8,
    code: u8,
    checksum: [u8; 2],
    flags: [u8; 4],
    target: [u8; 16],
}

/// A source or target link-layer address option for Ethernet.
#[repr(C)]
#[derive(Clone, Copy)]
struct LlAddrOption {
    kind: u8,
    /// In units of 8 bytes.
    len: u8,
    mac: [u8; 6],
}

/// The IPv6 pseudo header ICMPv6 checksums cover.
#[repr(C)]
struct PseudoHeader {
    src: [u8; 16],
    dst: [u8; 16],
    length: [u8; 4],
    zero: [u8; 3],
    next_header: u8,
}

/// The only message sizes the responder handles: a bare NS/NA, or one with a link-layer
/// address option (what Linux sends). Anything longer is refused rather than half-parsed.
const BARE_LEN: u16 = 24;
const WITH_OPTION_LEN: u16 = 32;

/// Handles the ND messages (ICMPv6 133-137) an endpoint sends, whose source address the caller
/// has already checked; `to_group` when it was sent to a group MAC. `Some(action)` when this
/// module decided the frame's fate; `None` for everything else, including router
/// solicitations and valid advertisements to a unicast MAC, which are forwarded like any
/// packet. ND sent to a group reaches this host's members and stops there, never crossing to
/// other hosts of an overlay network: as ARP, neighbour discovery is answered on every host.
///
/// Not inlined: the advertisement it builds stays off the stack frame every forwarded frame
/// pays for, and within the verifier's budget.
#[inline(never)]
pub fn from_container(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    ip: &Ipv6Hdr,
    to_group: bool,
) -> Outcome {
    Outcome::pack(police_and_answer(ctx, ifindex, endpoint, ip, to_group))
}

#[inline(always)]
fn police_and_answer(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    ip: &Ipv6Hdr,
    to_group: bool,
) -> Result<Option<i32>, DropReason> {
    if ip.next_hdr != IPPROTO_ICMPV6 {
        return Ok(None);
    }
    let icmp_type: u8 = ctx.load(ICMP_OFF).map_err(|_| DropReason::Truncated)?;
    match icmp_type {
        ROUTER_ADVERTISEMENT | REDIRECT => return Err(DropReason::RogueRouter),
        NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT => {}
        // A solicitation to all routers: the members hear it, as on a bridge; other hosts
        // never do.
        ROUTER_SOLICITATION if to_group => {
            return flood::to_members(ctx, ifindex, endpoint).map(Some);
        }
        // Router solicitations to a unicast MAC and all other ICMPv6 travel like any packet.
        _ => return Ok(None),
    }
    let message: NdMessage = ctx.load(ICMP_OFF).map_err(|_| DropReason::Truncated)?;
    let length = u16::from_be_bytes(ip.payload_len);
    if ip.hop_limit != ND_HOP_LIMIT || message.code != 0 {
        return Err(DropReason::MalformedNd);
    }
    let with_option = match length {
        BARE_LEN => false,
        WITH_OPTION_LEN => {
            let option: LlAddrOption = ctx
                .load(ICMP_OFF + usize::from(BARE_LEN))
                .map_err(|_| DropReason::Truncated)?;
            let expected = if icmp_type == NEIGHBOR_SOLICITATION {
                OPT_SOURCE_LLADDR
            } else {
                OPT_TARGET_LLADDR
            };
            if option.kind != expected || option.len != 1 {
                return Err(DropReason::MalformedNd);
            }
            if option.mac != endpoint.mac {
                return Err(DropReason::SpoofedMac);
            }
            true
        }
        _ => return Err(DropReason::MalformedNd),
    };
    let target = message.target;
    let own_target = ipv6::is_own_source(endpoint, &target, false);
    if icmp_type == NEIGHBOR_ADVERTISEMENT {
        // Advertising someone else's address is how neighbour caches get poisoned.
        if !own_target {
            return Err(DropReason::SpoofedIp);
        }
        // An unsolicited advertisement to all nodes: the members hear it, other hosts never.
        if to_group {
            return flood::to_members(ctx, ifindex, endpoint).map(Some);
        }
        return Ok(None);
    }
    if own_target {
        // A duplicate-address probe (from `::`) or a check of its own address: there is no
        // other owner to answer for; the members hear it, as on a bridge.
        return flood::to_members(ctx, ifindex, endpoint).map(Some);
    }
    if ipv6::is_unspecified(&ip.src_addr) {
        // Only probes of its own addresses may come from `::`.
        return Err(DropReason::SpoofedIp);
    }
    let (answer_mac, flags) = if ipv6::same(&target, &endpoint.gateway6) {
        (endpoint.host_mac, NA_ROUTER | NA_SOLICITED | NA_OVERRIDE)
    } else if ipv6::same(&target, &link_local_of(endpoint.host_mac)) {
        (endpoint.host_mac, NA_SOLICITED | NA_OVERRIDE)
    } else {
        let peer =
            maps::neighbor6(endpoint.network_id, target).ok_or(DropReason::UnknownNdTarget)?;
        if endpoint.flags & ENDPOINT_ICC_OFF != 0 {
            return Err(DropReason::IccBlocked);
        }
        (peer.mac, NA_SOLICITED | NA_OVERRIDE)
    };
    advertise(ctx, ip, target, answer_mac, flags, with_option)?;
    // Out of the same host-side veth, i.e. back into the container that asked.
    // SAFETY: plain helper call; flags 0 means egress of `ifindex`.
    Ok(Some(unsafe { bpf_redirect(ifindex, 0) } as i32))
}

/// Polices the ICMPv6 a container of a LAN network (macvlan) sends onto its LAN, where no
/// responder answers for it and the LAN's hosts and routers hear it: no router's messages, an
/// advertisement only for its own addresses, and a link-layer address option (of a
/// solicitation or an advertisement) only with its own MAC. Everything else passes.
#[inline(always)]
pub fn police_on_lan(ctx: &TcContext, endpoint: &Endpoint) -> Result<(), DropReason> {
    let icmp_type: u8 = ctx.load(ICMP_OFF).map_err(|_| DropReason::Truncated)?;
    match icmp_type {
        ROUTER_ADVERTISEMENT | REDIRECT => Err(DropReason::RogueRouter),
        NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT => {
            if icmp_type == NEIGHBOR_ADVERTISEMENT {
                let message: NdMessage = ctx.load(ICMP_OFF).map_err(|_| DropReason::MalformedNd)?;
                if !ipv6::is_own_source(endpoint, &message.target, false) {
                    return Err(DropReason::MalformedNd);
                }
            }
            // The first option, if any.
            if let Ok(option) = ctx.load::<LlAddrOption>(ICMP_OFF + usize::from(BARE_LEN))
                && (option.kind == OPT_SOURCE_LLADDR || option.kind == OPT_TARGET_LLADDR)
                && option.mac != endpoint.mac
            {
                return Err(DropReason::MalformedNd);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Rewrites the solicitation into the advertisement `answer_mac`'s owner would send: the
/// same size (the option, if the solicitation had one, becomes the target link-layer address),
/// so no resizing; written with `bpf_skb_store_bytes` for the reason given in `arp`.
#[inline(always)]
fn advertise(
    ctx: &TcContext,
    ip: &Ipv6Hdr,
    target: [u8; 16],
    answer_mac: [u8; 6],
    flags: u8,
    with_option: bool,
) -> Result<(), DropReason> {
    let asker_ip = ip.src_addr;
    let length = if with_option {
        WITH_OPTION_LEN
    } else {
        BARE_LEN
    };
    let mut message = NdMessage {
        icmp_type: NEIGHBOR_ADVERTISEMENT,
        code: 0,
        checksum: [0; 2],
        flags: [flags, 0, 0, 0],
        target,
    };
    let option = LlAddrOption {
        kind: OPT_TARGET_LLADDR,
        len: 1,
        mac: answer_mac,
    };
    let pseudo = PseudoHeader {
        src: target,
        dst: asker_ip,
        length: u32::from(length).to_be_bytes(),
        zero: [0; 3],
        next_header: IPPROTO_ICMPV6,
    };
    let mut sum = csum_add(0, &pseudo)?;
    sum = csum_add(sum, &message)?;
    if with_option {
        sum = csum_add(sum, &option)?;
    }
    message.checksum = csum::fold(sum).to_ne_bytes();

    let asker_mac: [u8; 6] = ctx.load(6).map_err(|_| DropReason::Truncated)?;
    let eth_addresses: [[u8; 6]; 2] = [asker_mac, answer_mac];
    let ip_addresses: [[u8; 16]; 2] = [target, asker_ip];
    let stored = ctx
        .store(0, &eth_addresses, 0)
        .and_then(|()| ctx.store(IP_ADDRS_OFF, &ip_addresses, 0))
        .and_then(|()| ctx.store(ICMP_OFF, &message, 0));
    let stored = if with_option {
        stored.and_then(|()| ctx.store(ICMP_OFF + usize::from(BARE_LEN), &option, 0))
    } else {
        stored
    };
    stored.map_err(|_| DropReason::Truncated)
}

/// Adds `value`'s bytes (a multiple of 4 long) to a one's complement running sum.
#[inline(always)]
fn csum_add<T>(seed: u32, value: &T) -> Result<u32, DropReason> {
    // SAFETY: reads size_of::<T>() bytes of `value`, a live stack object; no output buffer.
    let sum = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            value as *const T as *mut u32,
            core::mem::size_of::<T>() as u32,
            seed,
        )
    };
    u32::try_from(sum).map_err(|_| DropReason::Truncated)
}
