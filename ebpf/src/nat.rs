//! Source NAT for egress, in both directions, for IPv4 (NAT44) and IPv6 (NAT66, as Docker
//! masquerades IPv6 by default): a container's flow to the outside leaves with the uplink's
//! address and a port from the NAT range (`xnet_common::NAT_PORT_FIRST..`), and the replies are
//! translated back. State lives in two LRU maps per family, one per direction, with an idle
//! timeout per protocol; the LRU evicts the oldest flows under pressure.
//!
//! The logic is written once, generic over [`Family`]; the two implementations say where the
//! addresses sit, which checksums cover them, and which maps hold the flows.
//!
//! Checksums are updated incrementally with the kernel's helpers, which also handle skbs whose
//! L4 checksum the NIC is still to finish (CHECKSUM_PARTIAL, the containers' default offload).

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, BPF_NOEXIST},
    helpers::{bpf_csum_diff, bpf_ktime_get_ns, bpf_redirect_neigh},
    maps::LruHashMap,
    programs::TcContext,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use xnet_common::{
    DropReason, FlowKey, NAT_PORT_COUNT, NAT_PORT_FIRST, NatFlow, NatReply, NatReplyV4, NatReplyV6,
    Uplink,
};

use crate::{
    ipv6,
    maps::{NAT_FLOWS, NAT_REPLIES, NAT6_FLOWS, NAT6_REPLIES},
    outcome::Outcome,
};

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;
/// An ICMP error's header: type, code, checksum, 4 bytes of type-specific data.
const ICMP_HEADER_LEN: usize = 8;

/// Fragment offset bits of the IPv4 flags/fragment field (network order bytes).
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Idle time after which a flow's mapping may be reused (conntrack's defaults, roughly:
/// established TCP, UDP streams, ICMP).
const TIMEOUT_TCP_NS: u64 = 7440 * 1_000_000_000;
const TIMEOUT_UDP_NS: u64 = 120 * 1_000_000_000;
const TIMEOUT_ICMP_NS: u64 = 30 * 1_000_000_000;

/// How many NAT ports are tried for a new flow before giving up.
const PORT_ATTEMPTS: u32 = 8;

/// What NAT needs to know of an IP packet (or of the packet an ICMP error quotes).
pub struct Packet<A> {
    pub src: A,
    pub dst: A,
    /// The L4 protocol; for IPv6 the first next header (packets with extension headers, e.g.
    /// fragments, are not translated).
    pub proto: u8,
    /// Where the L4 header starts in the frame.
    pub l4_off: usize,
}

impl Packet<[u8; 4]> {
    /// Non-first fragments carry no ports and cannot be translated.
    #[inline(always)]
    pub fn of_ipv4(ip: &Ipv4Hdr) -> Result<Self, DropReason> {
        if u16::from_be_bytes(ip.frags) & FRAG_OFFSET_MASK != 0 {
            return Err(DropReason::UnsupportedNat);
        }
        Ok(Self::of_ipv4_at(ip, EthHdr::LEN))
    }

    #[inline(always)]
    fn of_ipv4_at(ip: &Ipv4Hdr, ip_off: usize) -> Self {
        Self {
            src: ip.src_addr,
            dst: ip.dst_addr,
            proto: ip.proto,
            l4_off: ip_off + usize::from(ip.vihl & 0x0f) * 4,
        }
    }
}

impl Packet<[u8; 16]> {
    #[inline(always)]
    pub fn of_ipv6(ip: &Ipv6Hdr) -> Self {
        Self::of_ipv6_at(ip, EthHdr::LEN)
    }

    #[inline(always)]
    fn of_ipv6_at(ip: &Ipv6Hdr, ip_off: usize) -> Self {
        Self {
            src: ip.src_addr,
            dst: ip.dst_addr,
            proto: ip.next_hdr,
            l4_off: ip_off + Ipv6Hdr::LEN,
        }
    }
}

/// What differs between NAT44 and NAT66.
pub trait Family {
    type Addr: Copy + 'static;
    /// `NatReply`'s padding for this address width.
    type Tail: Copy + 'static;
    const TAIL: Self::Tail;
    /// ICMP's protocol number, and its echo message types.
    const ICMP: u8;
    const ECHO_REQUEST: u8;
    const ECHO_REPLY: u8;
    /// ICMPv6's checksum covers the pseudo header; ICMPv4's does not.
    const ICMP_PSEUDO_HEADER: bool;
    const SRC_OFF: usize;
    const DST_OFF: usize;

    fn same(a: &Self::Addr, b: &Self::Addr) -> bool;
    /// The uplink's address of this family.
    fn uplink_addr(uplink: &Uplink) -> Self::Addr;
    /// The address folded to 32 bits, for the port hash.
    fn fold(a: &Self::Addr) -> u32;
    fn flows() -> &'static LruHashMap<FlowKey<Self::Addr>, NatFlow>;
    fn replies() -> &'static LruHashMap<FlowKey<Self::Addr>, ReplyOf<Self>>;
    /// Replaces the outer header's address at `off`, fixing every checksum that covers it.
    fn set_addr(
        ctx: &TcContext,
        l4: &L4,
        off: usize,
        old: Self::Addr,
        new: Self::Addr,
    ) -> Result<(), DropReason>;
    /// ICMP error types that quote the packet they are about.
    fn is_icmp_error(icmp_type: u8) -> bool;
    /// The packet an ICMP error quotes at `off`, if it is a well-formed header of this family.
    fn quoted(ctx: &TcContext, off: usize) -> Result<Option<Packet<Self::Addr>>, DropReason>;
    /// Replaces the quoted header's source address (the header starts at `off`), keeping the
    /// ICMP checksum at `icmp_csum_off` right.
    fn set_quoted_src(
        ctx: &TcContext,
        icmp_csum_off: usize,
        off: usize,
        old: Self::Addr,
        new: Self::Addr,
    ) -> Result<(), DropReason>;
}

/// Where replies of a flow of family `F` go back to.
type ReplyOf<F> = NatReply<<F as Family>::Addr, <F as Family>::Tail>;

pub struct V4;
pub struct V6;

const IPV4_CSUM_OFF: usize = EthHdr::LEN + 10;

impl Family for V4 {
    type Addr = [u8; 4];
    type Tail = [u8; 4];
    const TAIL: [u8; 4] = [0; 4];
    const ICMP: u8 = 1;
    const ECHO_REQUEST: u8 = 8;
    const ECHO_REPLY: u8 = 0;
    const ICMP_PSEUDO_HEADER: bool = false;
    const SRC_OFF: usize = EthHdr::LEN + 12;
    const DST_OFF: usize = EthHdr::LEN + 16;

    #[inline(always)]
    fn same(a: &[u8; 4], b: &[u8; 4]) -> bool {
        a == b
    }

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

    #[inline(always)]
    fn set_addr(
        ctx: &TcContext,
        l4: &L4,
        off: usize,
        old: [u8; 4],
        new: [u8; 4],
    ) -> Result<(), DropReason> {
        let (from, to) = (
            u64::from(u32::from_ne_bytes(old)),
            u64::from(u32::from_ne_bytes(new)),
        );
        ctx.l3_csum_replace(IPV4_CSUM_OFF, from, to, 4)
            .map_err(|_| DropReason::Truncated)?;
        if l4.pseudo_header {
            let flags = u64::from(BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0) | 4;
            ctx.l4_csum_replace(l4.csum_off, from, to, flags)
                .map_err(|_| DropReason::Truncated)?;
        }
        ctx.store(off, &new, 0).map_err(|_| DropReason::Truncated)
    }

    #[inline(always)]
    fn is_icmp_error(icmp_type: u8) -> bool {
        // Destination unreachable, time exceeded, parameter problem.
        matches!(icmp_type, 3 | 11 | 12)
    }

    #[inline(always)]
    fn quoted(ctx: &TcContext, off: usize) -> Result<Option<Packet<[u8; 4]>>, DropReason> {
        let inner: Ipv4Hdr = ctx.load(off).map_err(|_| DropReason::Truncated)?;
        if inner.vihl >> 4 != 4 || inner.vihl & 0x0f < 5 {
            return Ok(None);
        }
        Ok(Some(Packet::of_ipv4_at(&inner, off)))
    }

    /// The quoted header's own checksum is fixed for the new source; since that exactly
    /// compensates the address change inside the ICMP payload, the ICMP checksum stays.
    #[inline(always)]
    fn set_quoted_src(
        ctx: &TcContext,
        _icmp_csum_off: usize,
        off: usize,
        old: [u8; 4],
        new: [u8; 4],
    ) -> Result<(), DropReason> {
        let (from, to) = (
            u64::from(u32::from_ne_bytes(old)),
            u64::from(u32::from_ne_bytes(new)),
        );
        ctx.l3_csum_replace(off + 10, from, to, 4)
            .and_then(|()| ctx.store(off + 12, &new, 0))
            .map_err(|_| DropReason::Truncated)
    }
}

impl Family for V6 {
    type Addr = [u8; 16];
    type Tail = [u8; 0];
    const TAIL: [u8; 0] = [];
    const ICMP: u8 = 58;
    const ECHO_REQUEST: u8 = 128;
    const ECHO_REPLY: u8 = 129;
    const ICMP_PSEUDO_HEADER: bool = true;
    const SRC_OFF: usize = EthHdr::LEN + 8;
    const DST_OFF: usize = EthHdr::LEN + 24;

    #[inline(always)]
    fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
        ipv6::same(a, b)
    }

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

    /// IPv6 has no header checksum; every L4 checksum (ICMPv6's too) covers the addresses.
    #[inline(always)]
    fn set_addr(
        ctx: &TcContext,
        l4: &L4,
        off: usize,
        old: [u8; 16],
        new: [u8; 16],
    ) -> Result<(), DropReason> {
        let diff = addr_diff(&old, &new)?;
        let flags = u64::from(BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0);
        ctx.l4_csum_replace(l4.csum_off, 0, diff, flags)
            .and_then(|()| ctx.store(off, &new, 0))
            .map_err(|_| DropReason::Truncated)
    }

    #[inline(always)]
    fn is_icmp_error(icmp_type: u8) -> bool {
        // Destination unreachable, packet too big, time exceeded, parameter problem.
        matches!(icmp_type, 1..=4)
    }

    #[inline(always)]
    fn quoted(ctx: &TcContext, off: usize) -> Result<Option<Packet<[u8; 16]>>, DropReason> {
        let inner: Ipv6Hdr = ctx.load(off).map_err(|_| DropReason::Truncated)?;
        if inner.vcf[0] >> 4 != 6 {
            return Ok(None);
        }
        Ok(Some(Packet::of_ipv6_at(&inner, off)))
    }

    /// No header checksum to compensate: the address change goes into the ICMPv6 checksum.
    #[inline(always)]
    fn set_quoted_src(
        ctx: &TcContext,
        icmp_csum_off: usize,
        off: usize,
        old: [u8; 16],
        new: [u8; 16],
    ) -> Result<(), DropReason> {
        let diff = addr_diff(&old, &new)?;
        ctx.l4_csum_replace(icmp_csum_off, 0, diff, 0)
            .and_then(|()| ctx.store(off + 8, &new, 0))
            .map_err(|_| DropReason::Truncated)
    }
}

/// The checksum difference of replacing `old` by `new`, for `l4_csum_replace` with size 0.
#[inline(always)]
fn addr_diff(old: &[u8; 16], new: &[u8; 16]) -> Result<u64, DropReason> {
    // SAFETY: both pointers are to 16-byte stack values the helper only reads.
    let diff = unsafe {
        bpf_csum_diff(
            old.as_ptr() as *mut u32,
            16,
            new.as_ptr() as *mut u32,
            16,
            0,
        )
    };
    u64::try_from(diff).map_err(|_| DropReason::Truncated)
}

/// Where a flow's identifiers and checksum sit in the frame.
pub struct L4 {
    pub proto: u8,
    /// ICMP echo: the identifier stands in for the local port, there is no remote port.
    echo: bool,
    /// Source port (destination port right after it); for ICMP echo, the identifier.
    pub ports_off: usize,
    csum_off: usize,
    /// TCP and UDP checksums cover the addresses (pseudo header); ICMPv4's does not.
    pseudo_header: bool,
    /// SCTP: its CRC32c covers the ports but not the addresses, and cannot be updated
    /// incrementally, so its ports can only be kept (addresses can be rewritten freely).
    crc32c: bool,
}

impl L4 {
    /// Locates TCP, UDP, SCTP or ICMP echo (of `echo_type`) in `packet`; anything else is not
    /// translatable.
    #[inline(always)]
    pub fn of<F: Family>(
        ctx: &TcContext,
        packet: &Packet<F::Addr>,
        echo_type: u8,
    ) -> Result<Self, DropReason> {
        let l4 = packet.l4_off;
        let (ports_off, csum_off, pseudo_header, echo) = match packet.proto {
            IPPROTO_TCP => (l4, l4 + 16, true, false),
            IPPROTO_UDP => (l4, l4 + 6, true, false),
            IPPROTO_SCTP => (l4, l4 + 8, false, false),
            proto if proto == F::ICMP => {
                let icmp_type: u8 = ctx.load(l4).map_err(|_| DropReason::Truncated)?;
                if icmp_type != echo_type {
                    return Err(DropReason::UnsupportedNat);
                }
                (l4 + 4, l4 + 2, F::ICMP_PSEUDO_HEADER, true)
            }
            _ => return Err(DropReason::UnsupportedNat),
        };
        Ok(Self {
            proto: packet.proto,
            echo,
            ports_off,
            csum_off,
            pseudo_header,
            crc32c: packet.proto == IPPROTO_SCTP,
        })
    }

    /// (source port, destination port); ICMP echo: (identifier, 0).
    #[inline(always)]
    pub fn ports(&self, ctx: &TcContext) -> Result<([u8; 2], [u8; 2]), DropReason> {
        let src: [u8; 2] = ctx
            .load(self.ports_off)
            .map_err(|_| DropReason::Truncated)?;
        if self.echo {
            return Ok((src, [0; 2]));
        }
        let dst: [u8; 2] = ctx
            .load(self.ports_off + 2)
            .map_err(|_| DropReason::Truncated)?;
        Ok((src, dst))
    }

    /// Replaces the port (or ICMP identifier) at `port_off`, fixing the L4 checksum.
    #[inline(always)]
    pub fn set_port(
        &self,
        ctx: &TcContext,
        port_off: usize,
        old: [u8; 2],
        new: [u8; 2],
    ) -> Result<(), DropReason> {
        if old == new {
            return Ok(());
        }
        if self.crc32c {
            return Err(DropReason::UnsupportedNat);
        }
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
pub fn to_outside<F: Family>(
    ctx: &TcContext,
    ifindex: u32,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Outcome {
    Outcome::pack(translate_out::<F>(ctx, ifindex, packet, uplink).map(Some))
}

#[inline(always)]
fn translate_out<F: Family>(
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
fn nat_port<F: Family>(
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
fn flow_hash<F: Family>(flow: &FlowKey<F::Addr>) -> u32 {
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
pub fn from_outside<F: Family>(
    ctx: &TcContext,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Outcome {
    Outcome::pack(translate_in::<F>(ctx, packet, uplink).map(|ifindex| ifindex.map(|i| i as i32)))
}

#[inline(always)]
fn translate_in<F: Family>(
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
fn icmp_error_from_outside<F: Family>(
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
    let icmp = L4 {
        proto: F::ICMP,
        echo: false,
        ports_off: local_port_off,
        csum_off: icmp_off + 2,
        pseudo_header: F::ICMP_PSEUDO_HEADER,
        crc32c: false,
    };
    F::set_quoted_src(ctx, icmp.csum_off, inner_off, uplink, reply.addr)?;
    icmp.set_port(ctx, local_port_off, nat_port, reply.port)?;
    F::set_addr(ctx, &icmp, F::DST_OFF, packet.dst, reply.addr)?;
    Ok(Some(reply.ifindex))
}
