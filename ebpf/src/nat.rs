//! Source NAT for egress, in both directions, for IPv4 (NAT44) and IPv6 (NAT66, as Docker
//! masquerades IPv6 by default): a container's flow to the outside leaves with the uplink's
//! address and a port from the NAT range (`xnet_common::NAT_PORT_FIRST..`), and the replies are
//! translated back. State lives in two LRU maps per family, one per direction, with an idle
//! timeout per protocol; the LRU evicts the oldest flows under pressure.
//!
//! The logic is written once over the packet model ([`crate::packet`]); [`NatFamily`] adds
//! what NAT itself needs of each family: the maps that hold its flows, the uplink's address,
//! and how an address enters the port hash.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    helpers::{bpf_ktime_get_ns, bpf_redirect_neigh},
    maps::LruHashMap,
    programs::TcContext,
};
use xnet_common::{
    DropReason, FlowKey, NAT_PORT_COUNT, NAT_PORT_FIRST, NatFlow, NatReply, NatReplyV4, NatReplyV6,
    Uplink,
};

use crate::{
    maps::{NAT_FLOWS, NAT_REPLIES, NAT6_FLOWS, NAT6_REPLIES},
    outcome::Outcome,
    packet::{Family, IPPROTO_TCP, IPPROTO_UDP, L4, Packet, V4, V6},
};

/// An ICMP error's header: type, code, checksum, 4 bytes of type-specific data.
const ICMP_HEADER_LEN: usize = 8;

/// Idle time after which a flow's mapping may be reused (conntrack's defaults, roughly:
/// established TCP, UDP streams, ICMP).
const TIMEOUT_TCP_NS: u64 = 7440 * 1_000_000_000;
const TIMEOUT_UDP_NS: u64 = 120 * 1_000_000_000;
const TIMEOUT_ICMP_NS: u64 = 30 * 1_000_000_000;

/// How many NAT ports are tried for a new flow before giving up.
const PORT_ATTEMPTS: u32 = 8;

/// What NAT needs besides the packet model's differences between IPv4 and IPv6.
pub trait NatFamily: Family {
    /// `NatReply`'s padding for this address width.
    type Tail: Copy + 'static;
    const TAIL: Self::Tail;

    /// The uplink's address of this family.
    fn uplink_addr(uplink: &Uplink) -> Self::Addr;
    /// The address folded to 32 bits, for the port hash.
    fn fold(a: &Self::Addr) -> u32;
    /// Flows out, by the container's flow key: the NAT port each left from.
    fn flows() -> &'static LruHashMap<FlowKey<Self::Addr>, NatFlow>;
    /// The reverse, by the key replies arrive with: the container they go back to.
    fn replies() -> &'static LruHashMap<FlowKey<Self::Addr>, ReplyOf<Self>>;
}

/// Where replies of a flow of family `F` go back to.
type ReplyOf<F> = NatReply<<F as Family>::Addr, <F as NatFamily>::Tail>;

impl NatFamily for V4 {
    type Tail = [u8; 4];
    const TAIL: [u8; 4] = [0; 4];

    #[inline(always)]
    fn uplink_addr(uplink: &Uplink) -> [u8; 4] {
        uplink.ipv4
    }

    #[inline(always)]
    fn fold(a: &[u8; 4]) -> u32 {
        u32::from_ne_bytes(*a)
    }

    #[inline(always)]
    fn flows() -> &'static LruHashMap<FlowKey<[u8; 4]>, NatFlow> {
        &NAT_FLOWS
    }

    #[inline(always)]
    fn replies() -> &'static LruHashMap<FlowKey<[u8; 4]>, NatReplyV4> {
        &NAT_REPLIES
    }
}

impl NatFamily for V6 {
    type Tail = [u8; 0];
    const TAIL: [u8; 0] = [];

    #[inline(always)]
    fn uplink_addr(uplink: &Uplink) -> [u8; 16] {
        uplink.ipv6
    }

    #[inline(always)]
    fn fold(a: &[u8; 16]) -> u32 {
        let word = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
        word(0) ^ word(4) ^ word(8) ^ word(12)
    }

    #[inline(always)]
    fn flows() -> &'static LruHashMap<FlowKey<[u8; 16]>, NatFlow> {
        &NAT6_FLOWS
    }

    #[inline(always)]
    fn replies() -> &'static LruHashMap<FlowKey<[u8; 16]>, NatReplyV6> {
        &NAT6_REPLIES
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
fn reply_key<A: Copy>(flow: &FlowKey<A>, uplink: A, nat_port: [u8; 2]) -> FlowKey<A> {
    FlowKey {
        local: uplink,
        remote: flow.remote,
        local_port: nat_port,
        remote_port: flow.remote_port,
        proto: flow.proto,
        _pad: [0; 3],
    }
}

/// Source-NATs a packet the container behind `ifindex` sends to the outside, and sends it out
/// of the uplink (the kernel's FIB and neighbour table pick the next hop and MACs).
///
/// Not inlined: a BPF-to-BPF call keeps the flow keys and replies off the stack frame of the
/// entry point, which every frame pays for, and within the verifier's 512-byte budget.
#[inline(never)]
pub fn to_outside<F: NatFamily>(
    ctx: &TcContext,
    ifindex: u32,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Outcome {
    Outcome::pack(translate_out::<F>(ctx, ifindex, packet, uplink).map(Some))
}

#[inline(always)]
fn translate_out<F: NatFamily>(
    ctx: &TcContext,
    ifindex: u32,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Result<i32, DropReason> {
    let (uplink_ifindex, uplink) = (uplink.ifindex, F::uplink_addr(uplink));
    let l4 = L4::of::<F>(ctx, packet, F::ECHO_REQUEST)?;
    let (local_port, remote_port) = l4.ports(ctx)?;
    let flow = FlowKey {
        local: packet.src,
        remote: packet.dst,
        local_port,
        remote_port,
        proto: l4.proto,
        _pad: [0; 3],
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let nat_port = nat_port::<F>(&flow, uplink, ifindex, now)?;
    F::set_addr(ctx, &l4, F::SRC_OFF, packet.src, uplink)?;
    l4.set_port(ctx, l4.ports_off, local_port, nat_port)?;
    // SAFETY: plain helper call; no neighbour parameters, so the kernel resolves the next hop.
    Ok(unsafe { bpf_redirect_neigh(uplink_ifindex, core::ptr::null_mut(), 0, 0) } as i32)
}

/// The NAT port of `flow`: its live mapping, or a newly claimed one.
#[inline(always)]
fn nat_port<F: NatFamily>(
    flow: &FlowKey<F::Addr>,
    uplink: F::Addr,
    ifindex: u32,
    now: u64,
) -> Result<[u8; 2], DropReason> {
    let reply = NatReply {
        ifindex,
        port: flow.local_port,
        _pad: [0; 2],
        addr: flow.local,
        _tail: F::TAIL,
        last_seen: now,
    };
    if let Some(mapping) = F::flows().get_ptr_mut(flow) {
        // SAFETY: the map value stays valid for this program run; racing writers only move
        // `last_seen`.
        let mapping = unsafe { &mut *mapping };
        if now.saturating_sub(mapping.last_seen) < timeout_ns(flow.proto) {
            mapping.last_seen = now;
            // Refresh (or, if the LRU evicted it, restore) the reply direction.
            let rkey = reply_key(flow, uplink, mapping.nat_port);
            let _ = F::replies().insert(rkey, reply, u64::from(BPF_ANY));
            return Ok(mapping.nat_port);
        }
    }
    let hash = flow_hash::<F>(flow);
    for attempt in 0..PORT_ATTEMPTS {
        let port =
            NAT_PORT_FIRST + ((hash.wrapping_add(attempt)) % u32::from(NAT_PORT_COUNT)) as u16;
        let port = port.to_be_bytes();
        let rkey = reply_key(flow, uplink, port);
        // SAFETY: read-only look at a value the LRU may replace; only used for a decision.
        let taken = unsafe { F::replies().get(rkey) }.copied();
        let claimed = match taken {
            None => F::replies()
                .insert(rkey, reply, u64::from(BPF_NOEXIST))
                .is_ok(),
            // The same flow again (its forward entry was evicted), or an idle one: take over.
            Some(old)
                if (F::same(&old.addr, &reply.addr) && old.port == reply.port)
                    || now.saturating_sub(old.last_seen) >= timeout_ns(flow.proto) =>
            {
                F::replies().insert(rkey, reply, u64::from(BPF_ANY)).is_ok()
            }
            Some(_) => false,
        };
        if claimed {
            let mapping = NatFlow {
                nat_port: port,
                _pad: [0; 6],
                last_seen: now,
            };
            F::flows()
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
fn flow_hash<F: NatFamily>(flow: &FlowKey<F::Addr>) -> u32 {
    let ports = u32::from(u16::from_ne_bytes(flow.local_port)) << 16
        | u32::from(u16::from_ne_bytes(flow.remote_port));
    let mut h = F::fold(&flow.local).wrapping_mul(0x9e37_79b1)
        ^ F::fold(&flow.remote)
            .rotate_left(13)
            .wrapping_mul(0x85eb_ca77)
        ^ ports.wrapping_mul(0xc2b2_ae3d);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// A packet from the outside to the uplink's address `uplink`: if it is a reply to (or an ICMP
/// error about) a NATed flow, it is translated back to the container's address and port.
/// Returns the container endpoint's host-side ifindex (as the outcome's value), or `None` when
/// the packet belongs to no flow of ours (it is the host's own traffic).
///
/// Not inlined, for the stack budget of the uplink's entry point (see `to_outside`).
#[inline(never)]
pub fn from_outside<F: NatFamily>(
    ctx: &TcContext,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Outcome {
    Outcome::pack(translate_in::<F>(ctx, packet, uplink).map(|ifindex| ifindex.map(|i| i as i32)))
}

#[inline(always)]
fn translate_in<F: NatFamily>(
    ctx: &TcContext,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Result<Option<u32>, DropReason> {
    let uplink = F::uplink_addr(uplink);
    if packet.proto == F::ICMP {
        let icmp_type: u8 = ctx.load(packet.l4_off).map_err(|_| DropReason::Truncated)?;
        if F::is_icmp_error(icmp_type) {
            return icmp_error_from_outside::<F>(ctx, packet, uplink);
        }
    }
    let Ok(l4) = L4::of::<F>(ctx, packet, F::ECHO_REPLY) else {
        return Ok(None);
    };
    let (remote_port, local_port) = l4.ports(ctx)?;
    // ICMP echo replies carry the identifier where the source port would be.
    let (local_port, remote_port) = if l4.echo {
        (remote_port, [0; 2])
    } else {
        (local_port, remote_port)
    };
    let key = FlowKey {
        local: uplink,
        remote: packet.src,
        local_port,
        remote_port,
        proto: l4.proto,
        _pad: [0; 3],
    };
    let Some(reply) = F::replies().get_ptr_mut(key) else {
        return Ok(None);
    };
    // SAFETY: as in `nat_port`.
    let reply = unsafe { &mut *reply };
    // SAFETY: plain helper call.
    reply.last_seen = unsafe { bpf_ktime_get_ns() };
    let (ifindex, addr, port) = (reply.ifindex, reply.addr, reply.port);
    F::set_addr(ctx, &l4, F::DST_OFF, packet.dst, addr)?;
    let port_off = if l4.echo {
        l4.ports_off
    } else {
        l4.ports_off + 2
    };
    l4.set_port(ctx, port_off, local_port, port)?;
    Ok(Some(ifindex))
}

/// An ICMP error about a NATed flow (port unreachable, packet too big, hop limit exceeded): it
/// quotes the packet as it left, from `uplink:nat_port`. The outer destination and the quoted
/// source address and port are translated back, so the container's socket sees the error.
#[inline(always)]
fn icmp_error_from_outside<F: NatFamily>(
    ctx: &TcContext,
    packet: &Packet<F::Addr>,
    uplink: F::Addr,
) -> Result<Option<u32>, DropReason> {
    let icmp_off = packet.l4_off;
    let inner_off = icmp_off + ICMP_HEADER_LEN;
    let Some(inner) = F::quoted(ctx, inner_off)? else {
        return Ok(None);
    };
    if !F::same(&inner.src, &uplink) {
        return Ok(None);
    }
    // Where the quoted packet's local port (or echo identifier) sits, and the remote port.
    let (local_port_off, remote_port) = match inner.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let remote: [u8; 2] = ctx
                .load(inner.l4_off + 2)
                .map_err(|_| DropReason::Truncated)?;
            (inner.l4_off, remote)
        }
        proto if proto == F::ICMP => (inner.l4_off + 4, [0; 2]),
        _ => return Ok(None),
    };
    let nat_port: [u8; 2] = ctx
        .load(local_port_off)
        .map_err(|_| DropReason::Truncated)?;
    let key = FlowKey {
        local: uplink,
        remote: inner.dst,
        local_port: nat_port,
        remote_port,
        proto: inner.proto,
        _pad: [0; 3],
    };
    // SAFETY: read-only copy of a map value.
    let Some(reply) = (unsafe { F::replies().get(key) }).copied() else {
        return Ok(None);
    };
    let icmp = L4::icmp_error::<F>(icmp_off, local_port_off);
    F::set_quoted_src(ctx, icmp.csum_off, inner_off, uplink, reply.addr)?;
    icmp.set_port(ctx, local_port_off, nat_port, reply.port)?;
    F::set_addr(ctx, &icmp, F::DST_OFF, packet.dst, reply.addr)?;
    Ok(Some(reply.ifindex))
}

/// Whether a packet to the uplink's address, from `remote_port` to `port`, is a reply of a
/// container's NATed connection: `port` is in the NAT range and a flow left from it.
#[inline(always)]
pub fn is_reply<F: NatFamily>(
    packet: &Packet<F::Addr>,
    remote_port: [u8; 2],
    port: [u8; 2],
) -> bool {
    let offset = u16::from_be_bytes(port).wrapping_sub(NAT_PORT_FIRST);
    offset < NAT_PORT_COUNT
        && F::replies()
            .get_ptr(FlowKey {
                local: packet.dst,
                remote: packet.src,
                local_port: port,
                remote_port,
                proto: packet.proto,
                _pad: [0; 3],
            })
            .is_some()
}
