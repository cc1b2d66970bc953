//! VXLAN (RFC 7348) between the hosts of a cluster, with no vxlan device: a frame for an
//! endpoint on another host gets its outer headers written here and leaves through the underlay
//! ([`to_remote`]); VXLAN that arrives for this host is checked, stripped and delivered into
//! the endpoint it is for ([`from_underlay`]). ("Mechanism C" in docs/architecture.md, chosen
//! by measurement.)
//!
//! Only unicast crosses hosts: every host answers ARP and neighbour solicitations for remote
//! endpoints itself (they are in `NEIGHBORS` / `NEIGHBORS6` with their MACs), and broadcasts
//! reach the local members only (no head-end replication), so nothing is ever sent to a group
//! MAC and nothing addressed to one is accepted.

use aya_ebpf::{
    bindings::{
        BPF_ADJ_ROOM_ENCAP_L2_SHIFT, BPF_F_ADJ_ROOM_DECAP_L3_IPV6, BPF_F_ADJ_ROOM_ENCAP_L2_ETH,
        BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L4_UDP, BPF_F_ADJ_ROOM_FIXED_GSO,
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    helpers::{bpf_get_hash_recalc, bpf_redirect_neigh},
    programs::TcContext,
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
    udp::UdpHdr,
    vxlan::VxlanHdr,
};
use xnet_common::{DropReason, Neighbor, Tunnel};

use crate::{deliver, maps, outcome::Outcome, packet::IPPROTO_UDP};

/// The outer Ethernet, IPv4 and UDP headers: the part that says whether a packet is VXLAN for
/// this host.
#[repr(C)]
#[derive(Clone, Copy)]
struct Outer {
    eth: EthHdr,
    ip: Ipv4Hdr,
    udp: UdpHdr,
}

/// The VXLAN header and the inner frame's Ethernet header behind it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Tunneled {
    vxlan: VxlanHdr,
    inner_eth: EthHdr,
}

/// Everything in front of the inner frame's IP header, as one store writes it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Headers {
    outer: Outer,
    tunneled: Tunneled,
}

const OUTER_LEN: usize = core::mem::size_of::<Outer>();
const HEADERS_LEN: usize = core::mem::size_of::<Headers>();
/// What encapsulation adds to a frame: outer Ethernet, IPv4, UDP and VXLAN headers (the inner
/// frame keeps its own Ethernet header).
const ROOM: i32 = (HEADERS_LEN - EthHdr::LEN) as i32;
const _: () = assert!(OUTER_LEN == 42 && HEADERS_LEN == 64 && ROOM == 50);

/// `bpf_skb_adjust_room` flags that mark the skb as a UDP tunnel packet (inner headers,
/// `SKB_GSO_UDP_TUNNEL`), so a GSO packet is segmented with outer headers on every segment,
/// and that keep `gso_size` (the containers' MTU already leaves room for the 50 bytes). Without
/// them GSO drops the packets: ping works, TCP carries nothing (measured in the bench).
const ENCAP_FLAGS: u64 = BPF_F_ADJ_ROOM_FIXED_GSO as u64
    | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 as u64
    | BPF_F_ADJ_ROOM_ENCAP_L4_UDP as u64
    | BPF_F_ADJ_ROOM_ENCAP_L2_ETH as u64
    | (EthHdr::LEN as u64) << BPF_ADJ_ROOM_ENCAP_L2_SHIFT;

/// The VXLAN flags byte with only the I bit ("the VNI is valid"), the one flag RFC 7348 defines.
const VXLAN_FLAGS: u8 = 0x08;
/// Outer TTL: the kernel's default (`IPDEFTTL`), as the vxlan device uses.
const TTL: u8 = 64;
/// The outer packet is never fragmented: the containers' MTU leaves room for the 50 bytes.
const DONT_FRAGMENT: [u8; 2] = [0x40, 0x00];
const MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET: u16 = 0x1fff;
/// IPv4 without options.
const IPV4_VIHL: u8 = 0x45;

/// Sends a frame an endpoint of this host addressed to `peer`, an endpoint on another host,
/// there: encapsulated in VXLAN to `peer.vtep` with `peer.vni`, the inner frame addressed to
/// `peer.mac`, out of the tunnel's underlay device with `bpf_redirect_neigh`, so the kernel's
/// route and neighbour tables choose the next hop and fill in the outer MACs. A helper that
/// refuses to grow or write the skb drops it as `truncated`, as elsewhere in the datapath.
///
/// Not inlined: the headers it builds stay off the stack frame every forwarded frame pays for.
#[inline(never)]
pub fn to_remote(ctx: &TcContext, peer: &Neighbor) -> Outcome {
    Outcome::pack(encapsulate(ctx, peer).map(Some))
}

#[inline(always)]
fn encapsulate(ctx: &TcContext, peer: &Neighbor) -> Result<i32, DropReason> {
    let tunnel = maps::tunnel().ok_or(DropReason::NoTunnel)?;
    let inner: EthHdr = ctx.load(0).map_err(|_| DropReason::Truncated)?;
    // SAFETY: plain helper call on the skb this program runs on.
    let flow_hash = unsafe { bpf_get_hash_recalc(ctx.skb.skb) };
    ctx.adjust_room(ROOM, BPF_ADJ_ROOM_MAC, ENCAP_FLAGS)
        .map_err(|_| DropReason::Truncated)?;
    let headers = headers(&tunnel, peer, &inner, ctx.len(), flow_hash);
    ctx.store(0, &headers, 0)
        .map_err(|_| DropReason::Truncated)?;
    // SAFETY: plain helper call; no neighbour parameters, so the kernel resolves the next hop.
    Ok(unsafe { bpf_redirect_neigh(tunnel.ifindex, core::ptr::null_mut(), 0, 0) } as i32)
}

/// The headers in front of a frame of `frame_len` bytes (their own included) that `inner`
/// (its Ethernet header as the endpoint sent it) becomes for `peer`.
#[inline(always)]
fn headers(
    tunnel: &Tunnel,
    peer: &Neighbor,
    inner: &EthHdr,
    frame_len: u32,
    flow_hash: u32,
) -> Headers {
    let mut ip = Ipv4Hdr {
        vihl: IPV4_VIHL,
        tos: 0,
        tot_len: length(frame_len - EthHdr::LEN as u32),
        id: [0; 2],
        frags: DONT_FRAGMENT,
        ttl: TTL,
        proto: IPPROTO_UDP,
        check: [0; 2],
        src_addr: tunnel.local,
        dst_addr: peer.vtep,
    };
    ip.check = ipv4_checksum(&ip);
    Headers {
        outer: Outer {
            // Both MACs are filled in by `bpf_redirect_neigh`; it refuses a multicast
            // destination, which zeros are not.
            eth: EthHdr {
                dst_addr: [0; 6],
                src_addr: [0; 6],
                ether_type: EtherType::Ipv4 as u16,
            },
            ip,
            udp: UdpHdr {
                src: src_port(flow_hash).to_be_bytes(),
                dst: tunnel.port,
                len: length(frame_len - (EthHdr::LEN + Ipv4Hdr::LEN) as u32),
                // RFC 7348 allows no checksum over IPv4; the inner packet keeps its own (or
                // its CHECKSUM_PARTIAL, which the tunnel GSO flags carry through).
                check: [0; 2],
            },
        },
        tunneled: Tunneled {
            vxlan: VxlanHdr::new(peer.vni),
            inner_eth: EthHdr {
                dst_addr: peer.mac,
                src_addr: inner.src_addr,
                ether_type: inner.ether_type,
            },
        },
    }
}

/// A length field; a GSO packet can exceed 64 KiB with its new headers, and then gets 0, as
/// the kernel writes it (`iph_set_totlen`): segmentation writes each segment's own.
#[inline(always)]
fn length(len: u32) -> [u8; 2] {
    u16::try_from(len).unwrap_or(0).to_be_bytes()
}

/// The outer UDP source port of a flow: from the skb's flow hash, so the underlay's ECMP and
/// the receiver's RSS spread flows and keep each on one path (as the vxlan device does with
/// `udp_flow_src_port`), in the dynamic port range.
#[inline(always)]
fn src_port(flow_hash: u32) -> u16 {
    0xc000 | (flow_hash & 0x3fff) as u16
}

/// The checksum of an IPv4 header without options whose checksum field is zero.
#[inline(always)]
fn ipv4_checksum(ip: &Ipv4Hdr) -> [u8; 2] {
    let (src, dst) = (ip.src_addr, ip.dst_addr);
    let words = [
        [ip.vihl, ip.tos],
        ip.tot_len,
        ip.id,
        ip.frags,
        [ip.ttl, ip.proto],
        [src[0], src[1]],
        [src[2], src[3]],
        [dst[0], dst[1]],
        [dst[2], dst[3]],
    ];
    let mut sum = 0u32;
    for word in words {
        sum += u32::from(u16::from_be_bytes(word));
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
}

/// Handles a packet that arrived on the underlay if it is VXLAN for this host (IPv4 without
/// options to the tunnel's address, UDP to its port): checked, stripped of its outer headers
/// and delivered into the endpoint it is for. `None` for every other packet, which goes on.
///
/// Checks, in order: well-formed (not fragmented, only the I flag, a whole inner header:
/// `malformed-vxlan`); from a live host of the cluster (`unknown-vtep`); a VNI of a network
/// this host has (`unknown-vni`); the inner source is an endpoint registered on that very host,
/// with that MAC (`spoofed-inner-source`: a host can speak only for its own endpoints); the
/// inner destination is an endpoint of this host on that network (`unknown-inner-destination`,
/// also for ARP, other EtherTypes and group MACs, which never cross hosts). The network id
/// scopes every lookup, so a VNI of one network never reaches an endpoint of another.
///
/// Not inlined: its copies of the headers stay off the uplink program's own frame.
#[inline(never)]
pub fn from_underlay(ctx: &TcContext) -> Outcome {
    Outcome::pack(decapsulate(ctx))
}

#[inline(always)]
fn decapsulate(ctx: &TcContext) -> Result<Option<i32>, DropReason> {
    let Some(tunnel) = maps::tunnel() else {
        return Ok(None);
    };
    let Ok(outer) = ctx.load::<Outer>(0) else {
        return Ok(None);
    };
    let ip = &outer.ip;
    if outer.eth.ether_type != EtherType::Ipv4 as u16
        || ip.vihl != IPV4_VIHL
        || ip.proto != IPPROTO_UDP
        || ip.dst_addr != tunnel.local
    {
        return Ok(None);
    }
    let frags = u16::from_be_bytes(ip.frags);
    // A later fragment has no UDP header to tell; the host's stack reassembles it and, having
    // no socket on the VXLAN port, drops what was VXLAN.
    if frags & FRAGMENT_OFFSET != 0 || outer.udp.dst != tunnel.port {
        return Ok(None);
    }
    if frags & MORE_FRAGMENTS != 0 {
        return Err(DropReason::MalformedVxlan);
    }
    let tunneled: Tunneled = ctx
        .load(OUTER_LEN)
        .map_err(|_| DropReason::MalformedVxlan)?;
    // As strict as Linux's vxlan driver without extensions: reserved fields must be zero.
    let vxlan = &tunneled.vxlan;
    if vxlan.flags != VXLAN_FLAGS || vxlan._reserved1 != [0; 3] || vxlan._reserved2 != 0 {
        return Err(DropReason::MalformedVxlan);
    }
    let vtep = ip.src_addr;
    if !maps::is_vtep(vtep) {
        return Err(DropReason::UnknownVtep);
    }
    let network_id = maps::network_of_vni(vxlan.vni()).ok_or(DropReason::UnknownVni)?;
    let inner = tunneled.inner_eth;
    if inner.dst_addr[0] & 1 != 0 {
        return Err(DropReason::UnknownInnerDestination);
    }
    let from = Sender {
        network_id,
        vtep,
        mac: inner.src_addr,
    };
    let (owner, flags) = if inner.ether_type == EtherType::Ipv4 as u16 {
        (ipv4_owner(ctx, &from)?, BPF_F_ADJ_ROOM_FIXED_GSO as u64)
    } else if inner.ether_type == EtherType::Ipv6 as u16 {
        // The skb's protocol must become the inner packet's, or the container's stack hands
        // an IPv6 packet to IPv4.
        let flags = BPF_F_ADJ_ROOM_FIXED_GSO as u64 | BPF_F_ADJ_ROOM_DECAP_L3_IPV6 as u64;
        (ipv6_owner(ctx, &from)?, flags)
    } else {
        return Err(DropReason::UnknownInnerDestination);
    };
    // Removing the 50 bytes behind the Ethernet header leaves the outer Ethernet header in
    // front of the inner packet; the inner one is written over it, addressed to the owner.
    ctx.adjust_room(-ROOM, BPF_ADJ_ROOM_MAC, flags)
        .map_err(|_| DropReason::Truncated)?;
    let eth = EthHdr {
        dst_addr: owner.mac,
        src_addr: inner.src_addr,
        ether_type: inner.ether_type,
    };
    ctx.store(0, &eth, 0).map_err(|_| DropReason::Truncated)?;
    deliver::into_peer(ctx, &owner, owner.mac).map(Some)
}

/// Where a decapsulated frame comes from: the overlay network, the host that sent it, and the
/// inner source MAC.
struct Sender {
    network_id: u32,
    vtep: [u8; 4],
    mac: [u8; 6],
}

impl Sender {
    /// Whether `source`, the owner of the inner source address, is an endpoint of the sending
    /// host with the inner source MAC.
    #[inline(always)]
    fn owns(&self, source: Option<Neighbor>) -> bool {
        source.is_some_and(|n| n.is_remote() && n.vtep == self.vtep && n.mac == self.mac)
    }
}

/// The local endpoint an inner IPv4 packet (behind the headers) is for, once its source is
/// known to be `from`'s.
#[inline(always)]
fn ipv4_owner(ctx: &TcContext, from: &Sender) -> Result<Neighbor, DropReason> {
    let ip: Ipv4Hdr = ctx
        .load(HEADERS_LEN)
        .map_err(|_| DropReason::MalformedVxlan)?;
    if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
        return Err(DropReason::MalformedVxlan);
    }
    if !from.owns(maps::neighbor(from.network_id, ip.src_addr)) {
        return Err(DropReason::SpoofedInnerSource);
    }
    local(maps::neighbor(from.network_id, ip.dst_addr))
}

/// The same for an inner IPv6 packet. `NEIGHBORS6` holds entries (local or remote) only for
/// networks with IPv6, so IPv6 never reaches an endpoint of an IPv4-only network.
#[inline(always)]
fn ipv6_owner(ctx: &TcContext, from: &Sender) -> Result<Neighbor, DropReason> {
    let ip: Ipv6Hdr = ctx
        .load(HEADERS_LEN)
        .map_err(|_| DropReason::MalformedVxlan)?;
    if ip.vcf[0] >> 4 != 6 {
        return Err(DropReason::MalformedVxlan);
    }
    // Its address or its link-local address (its neighbour discovery's source).
    if !from.owns(maps::neighbor6(from.network_id, ip.src_addr)) {
        return Err(DropReason::SpoofedInnerSource);
    }
    local(maps::neighbor6(from.network_id, ip.dst_addr))
}

/// `owner` if it is an endpoint of this host.
#[inline(always)]
fn local(owner: Option<Neighbor>) -> Result<Neighbor, DropReason> {
    owner
        .filter(|n| !n.is_remote())
        .ok_or(DropReason::UnknownInnerDestination)
}
