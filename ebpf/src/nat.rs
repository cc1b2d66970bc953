//! Source NAT for egress, in both directions: a container's flow to the outside leaves with
//! the uplink's address and a port from the NAT range (`xnet_common::NAT_PORT_FIRST..`), and the
//! replies are translated back. State lives in two LRU maps, one per direction, with an idle
//! timeout per protocol; the LRU evicts the oldest flows under pressure.
//!
//! Checksums are updated incrementally with the kernel's helpers, which also handle skbs whose
//! L4 checksum the NIC is still to finish (CHECKSUM_PARTIAL, the containers' default offload).

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, BPF_NOEXIST},
    helpers::bpf_ktime_get_ns,
    programs::TcContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use xnet_common::{
    DropReason, FlowKeyV4, NAT_PORT_COUNT, NAT_PORT_FIRST, NatFlow, NatReplyV4, Uplink,
};

use crate::maps::{NAT_FLOWS, NAT_REPLIES};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// An ICMP error's header: type, code, checksum, 4 bytes of type-specific data.
const ICMP_HEADER_LEN: usize = 8;

const IP_CSUM_OFF: usize = EthHdr::LEN + 10;
const IP_SRC_OFF: usize = EthHdr::LEN + 12;
const IP_DST_OFF: usize = EthHdr::LEN + 16;
/// Fragment offset bits of the IPv4 flags/fragment field (network order bytes).
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Idle time after which a flow's mapping may be reused (conntrack's defaults, roughly:
/// established TCP, UDP streams, ICMP).
const TIMEOUT_TCP_NS: u64 = 7440 * 1_000_000_000;
const TIMEOUT_UDP_NS: u64 = 120 * 1_000_000_000;
const TIMEOUT_ICMP_NS: u64 = 30 * 1_000_000_000;

/// How many NAT ports are tried for a new flow before giving up.
const PORT_ATTEMPTS: u32 = 8;

/// Where a flow's identifiers and checksum sit in the frame.
struct L4 {
    proto: u8,
    /// Source port (destination port right after it); for ICMP echo, the identifier.
    ports_off: usize,
    csum_off: usize,
    /// TCP and UDP checksums cover the addresses (pseudo header); ICMP's does not.
    pseudo_header: bool,
}

impl L4 {
    /// Locates TCP, UDP or ICMP echo (of `echo_type`) behind `ip`; anything else (and
    /// non-first fragments, which carry no ports) is not translatable.
    #[inline(always)]
    fn of(ctx: &TcContext, ip: &Ipv4Hdr, echo_type: u8) -> Result<Self, DropReason> {
        if u16::from_be_bytes(ip.frags) & FRAG_OFFSET_MASK != 0 {
            return Err(DropReason::UnsupportedNat);
        }
        let l4 = EthHdr::LEN + usize::from(ip.vihl & 0x0f) * 4;
        let (ports_off, csum_off, pseudo_header) = match ip.proto {
            IPPROTO_TCP => (l4, l4 + 16, true),
            IPPROTO_UDP => (l4, l4 + 6, true),
            IPPROTO_ICMP => {
                let icmp_type: u8 = ctx.load(l4).map_err(|_| DropReason::Truncated)?;
                if icmp_type != echo_type {
                    return Err(DropReason::UnsupportedNat);
                }
                (l4 + 4, l4 + 2, false)
            }
            _ => return Err(DropReason::UnsupportedNat),
        };
        Ok(Self {
            proto: ip.proto,
            ports_off,
            csum_off,
            pseudo_header,
        })
    }

    /// (source port, destination port); ICMP echo: (identifier, 0).
    #[inline(always)]
    fn ports(&self, ctx: &TcContext) -> Result<([u8; 2], [u8; 2]), DropReason> {
        let src: [u8; 2] = ctx
            .load(self.ports_off)
            .map_err(|_| DropReason::Truncated)?;
        if self.proto == IPPROTO_ICMP {
            return Ok((src, [0; 2]));
        }
        let dst: [u8; 2] = ctx
            .load(self.ports_off + 2)
            .map_err(|_| DropReason::Truncated)?;
        Ok((src, dst))
    }

    /// Replaces the IPv4 address at `addr_off` (source or destination), fixing the IP and,
    /// where it covers addresses, the L4 checksum.
    #[inline(always)]
    fn set_addr(
        &self,
        ctx: &TcContext,
        addr_off: usize,
        old: [u8; 4],
        new: [u8; 4],
    ) -> Result<(), DropReason> {
        let (from, to) = (
            u64::from(u32::from_ne_bytes(old)),
            u64::from(u32::from_ne_bytes(new)),
        );
        ctx.l3_csum_replace(IP_CSUM_OFF, from, to, 4)
            .map_err(|_| DropReason::Truncated)?;
        if self.pseudo_header {
            let flags = u64::from(BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0) | 4;
            ctx.l4_csum_replace(self.csum_off, from, to, flags)
                .map_err(|_| DropReason::Truncated)?;
        }
        ctx.store(addr_off, &new, 0)
            .map_err(|_| DropReason::Truncated)
    }

    /// Replaces the port (or ICMP identifier) at `port_off`, fixing the L4 checksum.
    #[inline(always)]
    fn set_port(
        &self,
        ctx: &TcContext,
        port_off: usize,
        old: [u8; 2],
        new: [u8; 2],
    ) -> Result<(), DropReason> {
        let (from, to) = (
            u64::from(u16::from_ne_bytes(old)),
            u64::from(u16::from_ne_bytes(new)),
        );
        ctx.l4_csum_replace(self.csum_off, from, to, u64::from(BPF_F_MARK_MANGLED_0) | 2)
            .map_err(|_| DropReason::Truncated)?;
        ctx.store(port_off, &new, 0)
            .map_err(|_| DropReason::Truncated)
    }
}

fn timeout_ns(proto: u8) -> u64 {
    match proto {
        IPPROTO_TCP => TIMEOUT_TCP_NS,
        IPPROTO_UDP => TIMEOUT_UDP_NS,
        _ => TIMEOUT_ICMP_NS,
    }
}

/// The key replies of a flow arrive with, once it leaves as `uplink:nat_port`.
#[inline(always)]
fn reply_key(flow: &FlowKeyV4, uplink: &Uplink, nat_port: [u8; 2]) -> FlowKeyV4 {
    FlowKeyV4 {
        local: uplink.ipv4,
        remote: flow.remote,
        local_port: nat_port,
        remote_port: flow.remote_port,
        proto: flow.proto,
        _pad: [0; 3],
    }
}

/// Source-NATs a packet the container behind `ifindex` sends to the outside, and sends it out
/// of the uplink (the kernel's FIB and neighbour table pick the next hop and MACs).
#[inline(always)]
pub fn to_outside(
    ctx: &TcContext,
    ifindex: u32,
    ip: &Ipv4Hdr,
    uplink: &Uplink,
) -> Result<i32, DropReason> {
    let l4 = L4::of(ctx, ip, ICMP_ECHO_REQUEST)?;
    let (local_port, remote_port) = l4.ports(ctx)?;
    let flow = FlowKeyV4 {
        local: ip.src_addr,
        remote: ip.dst_addr,
        local_port,
        remote_port,
        proto: l4.proto,
        _pad: [0; 3],
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let nat_port = nat_port(&flow, uplink, ifindex, now)?;
    l4.set_addr(ctx, IP_SRC_OFF, ip.src_addr, uplink.ipv4)?;
    l4.set_port(ctx, l4.ports_off, local_port, nat_port)?;
    // SAFETY: plain helper call; no neighbour parameters, so the kernel resolves the next hop.
    Ok(
        unsafe {
            aya_ebpf::helpers::bpf_redirect_neigh(uplink.ifindex, core::ptr::null_mut(), 0, 0)
        } as i32,
    )
}

/// The NAT port of `flow`: its live mapping, or a newly claimed one.
#[inline(always)]
fn nat_port(
    flow: &FlowKeyV4,
    uplink: &Uplink,
    ifindex: u32,
    now: u64,
) -> Result<[u8; 2], DropReason> {
    let reply = NatReplyV4 {
        ifindex,
        port: flow.local_port,
        _pad: [0; 2],
        addr: flow.local,
        _tail: [0; 4],
        last_seen: now,
    };
    if let Some(mapping) = NAT_FLOWS.get_ptr_mut(flow) {
        // SAFETY: the map value stays valid for this program run; racing writers only move
        // `last_seen`.
        let mapping = unsafe { &mut *mapping };
        if now.saturating_sub(mapping.last_seen) < timeout_ns(flow.proto) {
            mapping.last_seen = now;
            // Refresh (or, if the LRU evicted it, restore) the reply direction.
            let rkey = reply_key(flow, uplink, mapping.nat_port);
            let _ = NAT_REPLIES.insert(rkey, reply, u64::from(BPF_ANY));
            return Ok(mapping.nat_port);
        }
    }
    let hash = flow_hash(flow);
    for attempt in 0..PORT_ATTEMPTS {
        let port =
            NAT_PORT_FIRST + ((hash.wrapping_add(attempt)) % u32::from(NAT_PORT_COUNT)) as u16;
        let port = port.to_be_bytes();
        let rkey = reply_key(flow, uplink, port);
        // SAFETY: read-only look at a value the LRU may replace; only used for a decision.
        let taken = unsafe { NAT_REPLIES.get(rkey) }.copied();
        let claimed = match taken {
            None => NAT_REPLIES
                .insert(rkey, reply, u64::from(BPF_NOEXIST))
                .is_ok(),
            // The same flow again (its forward entry was evicted), or an idle one: take over.
            Some(old)
                if (old.addr == reply.addr && old.port == reply.port)
                    || now.saturating_sub(old.last_seen) >= timeout_ns(flow.proto) =>
            {
                NAT_REPLIES.insert(rkey, reply, u64::from(BPF_ANY)).is_ok()
            }
            Some(_) => false,
        };
        if claimed {
            let mapping = NatFlow {
                nat_port: port,
                _pad: [0; 6],
                last_seen: now,
            };
            NAT_FLOWS
                .insert(flow, mapping, u64::from(BPF_ANY))
                .map_err(|_| DropReason::NatExhausted)?;
            return Ok(port);
        }
    }
    Err(DropReason::NatExhausted)
}

/// Mixes the flow into 32 bits (murmur3's finaliser over its words): spreads flows over the
/// port range so that claiming rarely collides. Plain word arithmetic, no loops: cheap for the
/// verifier.
#[inline(always)]
fn flow_hash(flow: &FlowKeyV4) -> u32 {
    let ports = u32::from(u16::from_ne_bytes(flow.local_port)) << 16
        | u32::from(u16::from_ne_bytes(flow.remote_port));
    let mut h = u32::from_ne_bytes(flow.local).wrapping_mul(0x9e37_79b1)
        ^ u32::from_ne_bytes(flow.remote)
            .rotate_left(13)
            .wrapping_mul(0x85eb_ca77)
        ^ ports.wrapping_mul(0xc2b2_ae3d);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// A reply from the outside to a NATed flow: translated back to the container's address and
/// port. Returns the container endpoint's host-side ifindex, or `None` when the packet belongs
/// to no flow of ours (it is the host's own traffic).
#[inline(always)]
pub fn from_outside(
    ctx: &TcContext,
    ip: &Ipv4Hdr,
    uplink: &Uplink,
) -> Result<Option<u32>, DropReason> {
    if ip.proto == IPPROTO_ICMP {
        let l4 = EthHdr::LEN + usize::from(ip.vihl & 0x0f) * 4;
        let icmp_type: u8 = ctx.load(l4).map_err(|_| DropReason::Truncated)?;
        if matches!(
            icmp_type,
            ICMP_DEST_UNREACHABLE | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM
        ) {
            return icmp_error_from_outside(ctx, ip, uplink, l4);
        }
    }
    let Ok(l4) = L4::of(ctx, ip, ICMP_ECHO_REPLY) else {
        return Ok(None);
    };
    let (remote_port, local_port) = l4.ports(ctx)?;
    // ICMP echo replies carry the identifier where the source port would be.
    let (local_port, remote_port) = if l4.proto == IPPROTO_ICMP {
        (remote_port, [0; 2])
    } else {
        (local_port, remote_port)
    };
    let key = FlowKeyV4 {
        local: uplink.ipv4,
        remote: ip.src_addr,
        local_port,
        remote_port,
        proto: l4.proto,
        _pad: [0; 3],
    };
    let Some(reply) = NAT_REPLIES.get_ptr_mut(key) else {
        return Ok(None);
    };
    // SAFETY: as in `nat_port`.
    let reply = unsafe { &mut *reply };
    // SAFETY: plain helper call.
    reply.last_seen = unsafe { bpf_ktime_get_ns() };
    let (ifindex, ipv4, port) = (reply.ifindex, reply.addr, reply.port);
    l4.set_addr(ctx, IP_DST_OFF, ip.dst_addr, ipv4)?;
    let port_off = if l4.proto == IPPROTO_ICMP {
        l4.ports_off
    } else {
        l4.ports_off + 2
    };
    l4.set_port(ctx, port_off, local_port, port)?;
    Ok(Some(ifindex))
}

/// An ICMP error about a NATed flow (port unreachable, fragmentation needed, TTL exceeded): it
/// quotes the packet as it left, from `uplink:nat_port`. The outer destination and the quoted
/// source address and port are translated back, so the container's socket sees the error.
///
/// Checksums: the outer IP header's is fixed for the new destination; the quoted IP header's
/// for its new source, and since that fix exactly compensates the address change inside the
/// ICMP payload, the ICMP checksum only needs fixing for the quoted port.
#[inline(always)]
fn icmp_error_from_outside(
    ctx: &TcContext,
    ip: &Ipv4Hdr,
    uplink: &Uplink,
    icmp_off: usize,
) -> Result<Option<u32>, DropReason> {
    let inner_off = icmp_off + ICMP_HEADER_LEN;
    let inner: Ipv4Hdr = ctx.load(inner_off).map_err(|_| DropReason::Truncated)?;
    if inner.src_addr != uplink.ipv4 || inner.vihl >> 4 != 4 || inner.vihl & 0x0f < 5 {
        return Ok(None);
    }
    let inner_l4 = inner_off + usize::from(inner.vihl & 0x0f) * 4;
    let proto = inner.proto;
    // Where the quoted packet's local port (or echo identifier) sits, and the remote port.
    let (local_port_off, remote_port) = match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let remote: [u8; 2] = ctx.load(inner_l4 + 2).map_err(|_| DropReason::Truncated)?;
            (inner_l4, remote)
        }
        IPPROTO_ICMP => (inner_l4 + 4, [0; 2]),
        _ => return Ok(None),
    };
    let nat_port: [u8; 2] = ctx
        .load(local_port_off)
        .map_err(|_| DropReason::Truncated)?;
    let key = FlowKeyV4 {
        local: uplink.ipv4,
        remote: inner.dst_addr,
        local_port: nat_port,
        remote_port,
        proto,
        _pad: [0; 3],
    };
    // SAFETY: read-only copy of a map value.
    let Some(reply) = (unsafe { NAT_REPLIES.get(key) }).copied() else {
        return Ok(None);
    };
    let csum_err = |_| DropReason::Truncated;
    let icmp = L4 {
        proto: IPPROTO_ICMP,
        ports_off: local_port_off,
        csum_off: icmp_off + 2,
        pseudo_header: false,
    };
    // The quoted header: source address (and its checksum), then the port.
    let (from, to) = (
        u64::from(u32::from_ne_bytes(uplink.ipv4)),
        u64::from(u32::from_ne_bytes(reply.addr)),
    );
    ctx.l3_csum_replace(inner_off + 10, from, to, 4)
        .map_err(csum_err)?;
    ctx.store(inner_off + 12, &reply.addr, 0)
        .map_err(csum_err)?;
    icmp.set_port(ctx, local_port_off, nat_port, reply.port)?;
    // The outer destination.
    icmp.set_addr(ctx, IP_DST_OFF, ip.dst_addr, reply.addr)?;
    Ok(Some(reply.ifindex))
}
