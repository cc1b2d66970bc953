//! VXLAN (RFC 7348) between the hosts of a cluster, with no vxlan device: a frame for an
//! endpoint on another host gets its outer headers written here and leaves through the underlay
//! ([`to_remote`]); VXLAN that arrives for this host is checked, stripped and delivered into
//! the endpoint it is for ([`from_underlay`]). ("Mechanism C" in docs/architecture.md, chosen
//! by measurement.)
//!
//! Broadcasts and multicasts an endpoint sends are replicated to every other host with
//! endpoints on its network, one unicast VXLAN packet each ([`to_hosts`], head-end
//! replication), and a host that receives one delivers it to its own members only, so a copy
//! never travels further. Address resolution never crosses hosts: every host answers ARP and
//! neighbour solicitations for remote endpoints itself (they are in `NEIGHBORS` /
//! `NEIGHBORS6` with their MACs), so ARP and neighbour discovery are neither replicated nor
//! accepted from the underlay.

use aya_ebpf::{
    bindings::{
        __sk_buff, BPF_ADJ_ROOM_ENCAP_L2_SHIFT, BPF_F_ADJ_ROOM_DECAP_L3_IPV6,
        BPF_F_ADJ_ROOM_ENCAP_L2_ETH, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L4_UDP,
        BPF_F_ADJ_ROOM_FIXED_GSO, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LOOKUP_OUTPUT, TC_ACT_SHOT,
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, bpf_fib_lookup as FibLookup, xdp_action::XDP_PASS,
    },
    cty::c_void,
    helpers::{
        bpf_fib_lookup, bpf_get_hash_recalc, bpf_loop, bpf_redirect, bpf_redirect_neigh,
        bpf_xdp_adjust_head, bpf_xdp_adjust_meta,
    },
    programs::{TcContext, XdpContext},
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
    udp::UdpHdr,
    vxlan::VxlanHdr,
};
use xnet_common::{DropReason, MAX_FLOOD_VTEPS, Neighbor, Tunnel};

use crate::{csum, deliver, flood, maps, outcome::Outcome, packet::IPPROTO_UDP, parse, stats};

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
/// An encrypted network's frame (`ENCRYPTED_VNIS`) is encapsulated the same way but goes to
/// the encryption worker's device instead (`ENCRYPTION_PEERS`), whose reader seals the outer
/// IPv4 packet for that host and sends it; where this host cannot encrypt for it (no worker,
/// no key for that host) the frame is dropped, `unencrypted`: never in clear.
///
/// Not inlined: the headers it builds stay off the stack frame every forwarded frame pays for.
#[inline(never)]
pub fn to_remote(ctx: &TcContext, peer: &Neighbor) -> Outcome {
    Outcome::pack(encapsulate(ctx, peer).map(Some))
}

#[inline(always)]
fn encapsulate(ctx: &TcContext, peer: &Neighbor) -> Result<i32, DropReason> {
    let tunnel = maps::tunnel().ok_or(DropReason::NoTunnel)?;
    let worker = if maps::is_encrypted(peer.vni) {
        Some(maps::encryption_device(peer.vtep).ok_or(DropReason::Unencrypted)?)
    } else {
        None
    };
    let inner: EthHdr = ctx.load(0).map_err(|_| DropReason::Truncated)?;
    let flow_hash = grow(ctx)?;
    let headers = Headers {
        outer: outer(&tunnel, peer.vtep, ctx.len(), flow_hash),
        tunneled: tunneled(peer.vni, peer.mac, &inner),
    };
    ctx.store(0, &headers, 0)
        .map_err(|_| DropReason::Truncated)?;
    Ok(match worker {
        Some(device) => to_worker(device),
        None => redirect_neigh(&tunnel),
    })
}

/// Head-end replication: sends a broadcast or multicast frame an endpoint of network
/// `network_id` sent (its local copies already made) to every other host with endpoints on
/// that network (`FLOOD_VTEPS`), one VXLAN packet each, the inner frame unchanged (its group
/// MAC kept), and consumes it. Those hosts deliver it to their own members and never pass it
/// on ([`from_underlay`]). `None` when there is nobody to send it to (not an overlay network,
/// no other host on it, no tunnel): the frame was only for this host's members.
///
/// The frame is encapsulated once; each copy then gets its outer destination, checksum and
/// MACs, and is cloned out (`bpf_clone_redirect`), one `bpf_loop` round per host
/// ([`copy_to_host`]): the verifier checks a round once, however many hosts there are, where
/// an unrolled loop of [`MAX_FLOOD_VTEPS`] rounds exceeded its budget. `bpf_redirect_neigh`,
/// which resolves a missing neighbour itself, cannot clone, so the MACs come from
/// `bpf_fib_lookup`, the host's own output route toward that host through the tunnel's device.
/// The first host whose neighbour entry is not resolved yet gets the original instead, last,
/// through `bpf_redirect_neigh`, which resolves it for the next frames; another such host in
/// the same frame, or one with no route, misses this copy (`unreachable-vtep`, per copy).
/// An encrypted network's copies go to the encryption worker's device instead, each addressed
/// to its host (`unencrypted`, per copy, for a host this host cannot encrypt for).
///
/// Not inlined: the headers and the loop's state stay off the entry point's frame.
#[inline(never)]
pub fn to_hosts(ctx: &TcContext, network_id: u32) -> Outcome {
    Outcome::pack(replicate(ctx, network_id))
}

#[inline(always)]
fn replicate(ctx: &TcContext, network_id: u32) -> Result<Option<i32>, DropReason> {
    let (Some(flood), Some(tunnel)) = (maps::flood_vteps(network_id), maps::tunnel()) else {
        return Ok(None);
    };
    let count = flood.count.min(MAX_FLOOD_VTEPS);
    if count == 0 {
        return Ok(None);
    }
    let inner: EthHdr = ctx.load(0).map_err(|_| DropReason::Truncated)?;
    let flow_hash = grow(ctx)?;
    // What follows the outer headers is the same in every copy: written once.
    ctx.store(OUTER_LEN, &tunneled(flood.vni, inner.dst_addr, &inner), 0)
        .map_err(|_| DropReason::Truncated)?;
    let mut replication = Replication {
        skb: ctx.skb.skb,
        vteps: &flood.vteps,
        tunnel,
        // Each round addresses it to its host.
        outer: outer(&tunnel, [0; 4], ctx.len(), flow_hash),
        unresolved: [0; 4],
        has_unresolved: false,
        truncated: false,
        encrypted: maps::is_encrypted(flood.vni),
    };
    // SAFETY: the callback is `copy_to_host`, whose context is `replication`, alive until
    // bpf_loop returns; flags must be 0.
    unsafe {
        bpf_loop(
            count,
            copy_to_host as *mut c_void,
            (&raw mut replication).cast(),
            0,
        )
    };
    if replication.truncated {
        return Err(DropReason::Truncated);
    }
    if !replication.has_unresolved {
        return Ok(Some(TC_ACT_SHOT));
    }
    // Zero MACs, as for unicast: `bpf_redirect_neigh` fills them in.
    let outer = &mut replication.outer;
    outer.eth.dst_addr = [0; 6];
    outer.eth.src_addr = [0; 6];
    address_to(&mut outer.ip, replication.unresolved);
    ctx.store(0, outer, 0).map_err(|_| DropReason::Truncated)?;
    Ok(Some(redirect_neigh(&tunnel)))
}

/// The state of a replication, shared by its rounds.
#[repr(C)]
struct Replication {
    skb: *mut __sk_buff,
    /// The hosts, one per round (`FLOOD_VTEPS`' value).
    vteps: *const [[u8; 4]; MAX_FLOOD_VTEPS as usize],
    tunnel: Tunnel,
    /// The outer headers, readdressed in each round.
    outer: Outer,
    /// The first host whose neighbour entry is not resolved, if any.
    unresolved: [u8; 4],
    has_unresolved: bool,
    /// A store into the skb failed: the frame is dropped as `truncated`.
    truncated: bool,
    /// An encrypted network's: every copy goes to the encryption worker.
    encrypted: bool,
}

/// One round of [`to_hosts`]' `bpf_loop`: the copy for host `index` of the replication at
/// `replication`. Returns 0 to go on, 1 to stop.
unsafe extern "C" fn copy_to_host(index: u64, replication: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes back the context `to_hosts` gave it, a live `Replication`.
    let replication = unsafe { &mut *replication.cast::<Replication>() };
    // SAFETY: a pointer into the map value found by `to_hosts`, valid for this program run.
    let Some(&vtep) = (unsafe { &*replication.vteps }).get(index as usize) else {
        return 1;
    };
    let ctx = TcContext::new(replication.skb);
    if replication.encrypted {
        let Some(device) = maps::encryption_device(vtep) else {
            stats::count_drop(None, DropReason::Unencrypted);
            return 0;
        };
        // The worker ignores the outer MACs (left zero).
        let outer = &mut replication.outer;
        address_to(&mut outer.ip, vtep);
        if ctx.store(0, outer, 0).is_err() {
            replication.truncated = true;
            return 1;
        }
        if ctx.clone_redirect(device, 0).is_err() {
            stats::count_drop(None, DropReason::Unencrypted);
        }
        return 0;
    }
    match next_hop(&ctx, &replication.tunnel, vtep) {
        Ok(hop) => {
            let outer = &mut replication.outer;
            outer.eth.dst_addr = hop.dmac;
            outer.eth.src_addr = hop.smac;
            address_to(&mut outer.ip, vtep);
            if ctx.store(0, outer, 0).is_err() {
                replication.truncated = true;
                return 1;
            }
            if ctx.clone_redirect(hop.ifindex, 0).is_err() {
                stats::count_drop(None, DropReason::UnreachableVtep);
            }
        }
        Err(BPF_FIB_LKUP_RET_NO_NEIGH) if !replication.has_unresolved => {
            replication.unresolved = vtep;
            replication.has_unresolved = true;
        }
        Err(_) => stats::count_drop(None, DropReason::UnreachableVtep),
    }
    0
}

/// Makes room for the outer headers in front of the frame; returns the frame's flow hash,
/// taken before (it picks the outer source port).
#[inline(always)]
fn grow(ctx: &TcContext) -> Result<u32, DropReason> {
    // SAFETY: plain helper call on the skb this program runs on.
    let flow_hash = unsafe { bpf_get_hash_recalc(ctx.skb.skb) };
    ctx.adjust_room(ROOM, BPF_ADJ_ROOM_MAC, ENCAP_FLAGS)
        .map_err(|_| DropReason::Truncated)?;
    Ok(flow_hash)
}

/// Sends the encapsulated frame out of the tunnel's device to the host its outer header
/// names.
#[inline(always)]
fn redirect_neigh(tunnel: &Tunnel) -> i32 {
    // SAFETY: plain helper call; no neighbour parameters, so the kernel resolves the next hop.
    unsafe { bpf_redirect_neigh(tunnel.ifindex, core::ptr::null_mut(), 0, 0) as i32 }
}

/// Hands the encapsulated frame to the encryption worker: out of its device (a TAP), whose
/// reader gets the frame whole.
#[inline(always)]
fn to_worker(device: u32) -> i32 {
    // SAFETY: plain helper call; flags 0: the device's egress.
    unsafe { bpf_redirect(device, 0) as i32 }
}

/// The next hop toward a host's underlay address, as the FIB and the neighbour table have it.
struct NextHop {
    ifindex: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
}

const AF_INET: u8 = 2;

/// The route from this host's tunnel address to `vtep`, out of the tunnel's device (an output
/// lookup: the host sends, nothing is forwarded), with the neighbour's MAC; else the
/// `BPF_FIB_LKUP_RET_*` code (or a negative error) that says why not.
#[inline(always)]
fn next_hop(ctx: &TcContext, tunnel: &Tunnel, vtep: [u8; 4]) -> Result<NextHop, u32> {
    // SAFETY: a plain C struct of integers and unions of integers; all zero is valid (tot_len
    // 0 makes the helper check the skb's own length against the device's MTU).
    let mut params: FibLookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = IPPROTO_UDP;
    params.ifindex = tunnel.ifindex;
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(tunnel.local);
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(vtep);
    // SAFETY: helper call with a pointer to a whole `bpf_fib_lookup` on this frame's stack.
    let ret = unsafe {
        bpf_fib_lookup(
            ctx.skb.skb.cast(),
            &mut params,
            core::mem::size_of::<FibLookup>() as i32,
            BPF_FIB_LOOKUP_OUTPUT,
        )
    };
    if ret != 0 {
        return Err(ret as u32);
    }
    Ok(NextHop {
        ifindex: params.ifindex,
        smac: params.smac,
        dmac: params.dmac,
    })
}

/// Readdresses an outer IPv4 header (checksum included) to `vtep`.
#[inline(always)]
fn address_to(ip: &mut Ipv4Hdr, vtep: [u8; 4]) {
    ip.dst_addr = vtep;
    ip.check = [0; 2];
    ip.check = ipv4_checksum(ip);
}

/// The outer headers of a frame of `frame_len` bytes (theirs included) for host `vtep`.
#[inline(always)]
fn outer(tunnel: &Tunnel, vtep: [u8; 4], frame_len: u32, flow_hash: u32) -> Outer {
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
        dst_addr: [0; 4],
    };
    address_to(&mut ip, vtep);
    Outer {
        // Both MACs are filled in by `bpf_redirect_neigh` (or, for a replicated copy, from
        // the FIB); it refuses a multicast destination, which zeros are not.
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
            // RFC 7348 allows no checksum over IPv4; the inner packet keeps its own (or its
            // CHECKSUM_PARTIAL, which the tunnel GSO flags carry through).
            check: [0; 2],
        },
    }
}

/// The VXLAN header with `vni` and the inner frame's Ethernet header (`inner` as the endpoint
/// sent it), addressed to `dst_mac`.
#[inline(always)]
fn tunneled(vni: u32, dst_mac: [u8; 6], inner: &EthHdr) -> Tunneled {
    Tunneled {
        vxlan: VxlanHdr::new(vni),
        inner_eth: EthHdr {
            dst_addr: dst_mac,
            src_addr: inner.src_addr,
            ether_type: inner.ether_type,
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
    csum::fold(sum).to_be_bytes()
}

/// Handles a packet that arrived on the underlay if it is VXLAN for this host (IPv4 without
/// options to the tunnel's address, UDP to its port): checked, stripped of its outer headers
/// and delivered into the endpoint it is for, or, sent to a group MAC (another host's
/// head-end replication), to every member of its network on this host. `None` for every other
/// packet, which goes on.
///
/// Checks, in order: well-formed (not fragmented, only the I flag, a whole inner header:
/// `malformed-vxlan`); from a live host of the cluster (`unknown-vtep`); a VNI of a network
/// this host has (`unknown-vni`), not an encrypted network's unless `arrival` says the
/// encryption worker decrypted it (`cleartext-vxlan`: none arrives in clear); the inner source is an endpoint registered on that very host,
/// with that MAC (`spoofed-inner-source`: a host can speak only for its own endpoints); the
/// inner destination is an endpoint of this host on that network, or a group MAC
/// (`unknown-inner-destination`, also for ARP and other EtherTypes, which never cross hosts).
/// The network id scopes every lookup, so a VNI of one network never reaches an endpoint of
/// another. A replicated frame goes to this host's members only, never to other hosts: no
/// loops.
///
/// Unicast is normally decapsulated before this, at the uplink's XDP hook
/// ([`frame_from_underlay`], with the same checks): what arrives here is then the inner frame
/// with a [`Decapsulated`] note in front, and only needs handing over. The rest, and
/// everything on an uplink whose driver keeps no XDP metadata, is done here.
///
/// Not inlined: its copies of the headers stay off the uplink program's own frame.
#[inline(never)]
pub fn from_underlay(ctx: &TcContext, arrival: Arrival) -> Outcome {
    Outcome::pack(decapsulate(ctx, arrival))
}

/// How a VXLAN packet reached this host.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Over the underlay, as it was sent: an encrypted network's VNI is refused.
    InClear,
    /// Sealed, and opened by the encryption worker, which checked that the host whose key
    /// sealed it is the outer source.
    Decrypted,
}

#[inline(always)]
fn decapsulate(ctx: &TcContext, arrival: Arrival) -> Result<Option<i32>, DropReason> {
    if let Some(ifindex) = decapsulated_by_xdp(ctx) {
        return Ok(Some(deliver::into_container(ifindex)));
    }
    let Some(tunnel) = maps::tunnel() else {
        return Ok(None);
    };
    let Ok(outer) = ctx.load::<Outer>(0) else {
        return Ok(None);
    };
    if !is_for_this_host(&tunnel, &outer)? {
        return Ok(None);
    }
    let tunneled: Tunneled = ctx
        .load(OUTER_LEN)
        .map_err(|_| DropReason::MalformedVxlan)?;
    let from = sender(&outer, &tunneled, arrival)?;
    let inner = tunneled.inner_eth;
    let (owner, flags) = if inner.ether_type == EtherType::Ipv4 as u16 {
        let ip: Ipv4Hdr = ctx
            .load(HEADERS_LEN)
            .map_err(|_| DropReason::MalformedVxlan)?;
        (ipv4_owner(&ip, &from)?, BPF_F_ADJ_ROOM_FIXED_GSO as u64)
    } else if inner.ether_type == EtherType::Ipv6 as u16 {
        let ip: Ipv6Hdr = ctx
            .load(HEADERS_LEN)
            .map_err(|_| DropReason::MalformedVxlan)?;
        // The skb's protocol must become the inner packet's, or the container's stack hands
        // an IPv6 packet to IPv4.
        let flags = BPF_F_ADJ_ROOM_FIXED_GSO as u64 | BPF_F_ADJ_ROOM_DECAP_L3_IPV6 as u64;
        (ipv6_owner(&ip, &from)?, flags)
    } else {
        return Err(DropReason::UnknownInnerDestination);
    };
    match owner {
        Some(owner) => {
            let eth = EthHdr {
                dst_addr: owner.mac,
                ..inner
            };
            strip(ctx, flags, &eth)?;
            deliver::into_peer(ctx, &owner, owner.mac).map(Some)
        }
        // A group MAC stays as it was sent.
        None => {
            strip(ctx, flags, &inner)?;
            Ok(Some(flood::from_another_host(ctx, from.network_id)))
        }
    }
}

/// Cuts the outer headers off a VXLAN packet, leaving the inner frame with Ethernet header
/// `eth`: removing the 50 bytes behind the Ethernet header leaves the outer one in front of
/// the inner packet, and `eth` is written over it.
#[inline(always)]
fn strip(ctx: &TcContext, flags: u64, eth: &EthHdr) -> Result<(), DropReason> {
    ctx.adjust_room(-ROOM, BPF_ADJ_ROOM_MAC, flags)
        .and_then(|()| ctx.store(0, eth, 0))
        .map_err(|_| DropReason::Truncated)
}

/// [`from_underlay`]'s job for unicast, at the uplink's XDP hook: the same checks, then the
/// outer headers are cut off (`bpf_xdp_adjust_head`, no copy), the inner frame is addressed
/// to its owner and counted, and it goes on to the kernel with a [`Decapsulated`] note in its
/// metadata. The kernel builds the skb from the inner frame, so GRO on the uplink merges the
/// inner TCP segments of a flow (the outer UDP has no socket, so nothing merges VXLAN), and
/// `uplink_ingress` hands the merged skb over: the container gets one skb per GRO batch
/// rather than one per segment, as behind Docker's vxlan device. The skb keeps its checksum
/// state, so frames whose inner checksum a veth peer left to offload stay correct (an
/// `XDP_REDIRECT` would lose that).
///
/// `None` for what is not VXLAN for this host. Frames to group MACs, and every frame on an
/// uplink whose driver keeps no XDP metadata, pass unchanged: `from_underlay` decapsulates
/// them.
///
/// `arrival` as for `from_underlay`: the encryption worker's device runs this too, on what
/// the worker decrypted, so its flows get GRO as well.
///
/// Not inlined, as `from_underlay`.
#[inline(never)]
pub fn frame_from_underlay(ctx: &XdpContext, arrival: Arrival) -> Outcome {
    Outcome::pack(decapsulate_frame(ctx, arrival))
}

#[inline(always)]
fn decapsulate_frame(ctx: &XdpContext, arrival: Arrival) -> Result<Option<i32>, DropReason> {
    let Some(tunnel) = maps::tunnel() else {
        return Ok(None);
    };
    let Some(outer) = parse::frame_header::<Outer>(ctx, 0) else {
        return Ok(None);
    };
    // SAFETY: `frame_header` checked the bounds; copied out before the frame changes.
    let outer = unsafe { *outer };
    if !is_for_this_host(&tunnel, &outer)? {
        return Ok(None);
    }
    let tunneled =
        parse::frame_header::<Tunneled>(ctx, OUTER_LEN).ok_or(DropReason::MalformedVxlan)?;
    // SAFETY: as above.
    let tunneled = unsafe { *tunneled };
    let from = sender(&outer, &tunneled, arrival)?;
    let ether_type = tunneled.inner_eth.ether_type;
    let owner = if ether_type == EtherType::Ipv4 as u16 {
        let ip =
            parse::frame_header::<Ipv4Hdr>(ctx, HEADERS_LEN).ok_or(DropReason::MalformedVxlan)?;
        // SAFETY: as above.
        ipv4_owner(unsafe { &*ip }, &from)?
    } else if ether_type == EtherType::Ipv6 as u16 {
        let ip =
            parse::frame_header::<Ipv6Hdr>(ctx, HEADERS_LEN).ok_or(DropReason::MalformedVxlan)?;
        // SAFETY: as above.
        ipv6_owner(unsafe { &*ip }, &from)?
    } else {
        return Err(DropReason::UnknownInnerDestination);
    };
    // A replica for every member: `from_underlay` floods it.
    let Some(owner) = owner else {
        return Ok(Some(XDP_PASS as i32));
    };
    // The outer headers go first, so the note need not move with the data; where the driver
    // cannot keep a note, they are put back and the frame goes on whole.
    // SAFETY: plain helper calls on the frame this program runs on.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, ROOM) } != 0 {
        return Err(DropReason::Truncated);
    }
    // SAFETY: as above.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(DECAPSULATED_LEN as i32)) } != 0 {
        // SAFETY: as above; the 50 bytes are still there, unchanged.
        return if unsafe { bpf_xdp_adjust_head(ctx.ctx, -ROOM) } == 0 {
            Ok(Some(XDP_PASS as i32))
        } else {
            Err(DropReason::Truncated)
        };
    }
    let eth = parse::frame_header::<EthHdr>(ctx, 0).ok_or(DropReason::Truncated)?;
    let note = ctx.metadata();
    if note + DECAPSULATED_LEN > ctx.metadata_end() {
        return Err(DropReason::Truncated);
    }
    // SAFETY: both bounds-checked just above, in the frame and in its metadata.
    unsafe {
        (*eth).dst_addr = owner.mac;
        *(note as *mut Decapsulated) = Decapsulated {
            magic: DECAPSULATED_MAGIC,
            ifindex: owner.ifindex,
        };
    }
    stats::count_rx(owner.slot, (ctx.data_end() - ctx.data()) as u32);
    Ok(Some(XDP_PASS as i32))
}

/// The note [`frame_from_underlay`] leaves in the metadata in front of a frame it decapsulated
/// and checked: the host-side veth of the endpoint it is for. Only an XDP program writes an
/// skb's metadata, and on the uplink that is xnet's, so a frame from the wire cannot carry
/// one; the magic guards against another program's notes. GRO merges only frames with equal
/// notes.
#[repr(C)]
#[derive(Clone, Copy)]
struct Decapsulated {
    magic: u32,
    ifindex: u32,
}

const DECAPSULATED_LEN: usize = core::mem::size_of::<Decapsulated>();
/// "xvx1" in memory.
const DECAPSULATED_MAGIC: u32 = u32::from_ne_bytes(*b"xvx1");

/// The host-side veth a frame was decapsulated for at XDP, from the note in its metadata.
#[inline(always)]
fn decapsulated_by_xdp(ctx: &TcContext) -> Option<u32> {
    // SAFETY: reading a field of the context this program runs on.
    let note = unsafe { (*ctx.skb.skb).data_meta } as usize;
    if note + DECAPSULATED_LEN > ctx.data() {
        return None;
    }
    // SAFETY: bounds-checked just above, inside the skb's metadata.
    let note = unsafe { *(note as *const Decapsulated) };
    (note.magic == DECAPSULATED_MAGIC).then_some(note.ifindex)
}

/// Whether a packet from the underlay, whose outer headers are `outer`, is VXLAN for this host
/// (IPv4 without options to the tunnel's address, UDP to its port). A first fragment of VXLAN
/// is malformed: the tunnel's packets are never fragmented.
#[inline(always)]
fn is_for_this_host(tunnel: &Tunnel, outer: &Outer) -> Result<bool, DropReason> {
    let ip = &outer.ip;
    if outer.eth.ether_type != EtherType::Ipv4 as u16
        || ip.vihl != IPV4_VIHL
        || ip.proto != IPPROTO_UDP
        || ip.dst_addr != tunnel.local
    {
        return Ok(false);
    }
    let frags = u16::from_be_bytes(ip.frags);
    // A later fragment has no UDP header to tell; the host's stack reassembles it and, having
    // no socket on the VXLAN port, drops what was VXLAN.
    if frags & FRAGMENT_OFFSET != 0 || outer.udp.dst != tunnel.port {
        return Ok(false);
    }
    if frags & MORE_FRAGMENTS != 0 {
        return Err(DropReason::MalformedVxlan);
    }
    Ok(true)
}

/// Who sent a VXLAN packet for this host, checked: a well-formed VXLAN header, from a live
/// host of the cluster, with the VNI of a network this host has (an encrypted one's only if
/// it arrived encrypted).
#[inline(always)]
fn sender(outer: &Outer, tunneled: &Tunneled, arrival: Arrival) -> Result<Sender, DropReason> {
    // As strict as Linux's vxlan driver without extensions: reserved fields must be zero.
    let vxlan = &tunneled.vxlan;
    if vxlan.flags != VXLAN_FLAGS || vxlan._reserved1 != [0; 3] || vxlan._reserved2 != 0 {
        return Err(DropReason::MalformedVxlan);
    }
    let vtep = outer.ip.src_addr;
    if !maps::is_vtep(vtep) {
        return Err(DropReason::UnknownVtep);
    }
    let network_id = maps::network_of_vni(vxlan.vni()).ok_or(DropReason::UnknownVni)?;
    if arrival == Arrival::InClear && maps::is_encrypted(vxlan.vni()) {
        return Err(DropReason::CleartextVxlan);
    }
    let inner = &tunneled.inner_eth;
    Ok(Sender {
        network_id,
        vtep,
        mac: inner.src_addr,
        to_group: inner.dst_addr[0] & 1 != 0,
    })
}

/// Where a decapsulated frame comes from: the overlay network, the host that sent it, and the
/// inner source MAC; and whether it was sent to a group MAC.
struct Sender {
    network_id: u32,
    vtep: [u8; 4],
    mac: [u8; 6],
    to_group: bool,
}

impl Sender {
    /// Whether `source`, the owner of the inner source address, is an endpoint of the sending
    /// host with the inner source MAC.
    #[inline(always)]
    fn owns(&self, source: Option<Neighbor>) -> bool {
        source.is_some_and(|n| n.is_remote() && n.vtep == self.vtep && n.mac == self.mac)
    }
}

/// The local endpoint an inner IPv4 packet (header `ip`) is for, once its source is known to
/// be `from`'s; `None` for a frame to a group MAC, which is for every member.
#[inline(always)]
fn ipv4_owner(ip: &Ipv4Hdr, from: &Sender) -> Result<Option<Neighbor>, DropReason> {
    if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
        return Err(DropReason::MalformedVxlan);
    }
    if !from.owns(maps::neighbor(from.network_id, ip.src_addr)) {
        return Err(DropReason::SpoofedInnerSource);
    }
    if from.to_group {
        return Ok(None);
    }
    local(maps::neighbor(from.network_id, ip.dst_addr))
}

/// The same for an inner IPv6 packet. `NEIGHBORS6` holds entries (local or remote) only for
/// networks with IPv6, so IPv6 never reaches an endpoint of an IPv4-only network (the sender's
/// source is not found there either).
#[inline(always)]
fn ipv6_owner(ip: &Ipv6Hdr, from: &Sender) -> Result<Option<Neighbor>, DropReason> {
    if ip.vcf[0] >> 4 != 6 {
        return Err(DropReason::MalformedVxlan);
    }
    // Its address or its link-local address (its neighbour discovery's source).
    if !from.owns(maps::neighbor6(from.network_id, ip.src_addr)) {
        return Err(DropReason::SpoofedInnerSource);
    }
    if from.to_group {
        return Ok(None);
    }
    local(maps::neighbor6(from.network_id, ip.dst_addr))
}

/// `owner` if it is an endpoint of this host.
#[inline(always)]
fn local(owner: Option<Neighbor>) -> Result<Option<Neighbor>, DropReason> {
    owner
        .filter(|n| !n.is_remote())
        .map(Some)
        .ok_or(DropReason::UnknownInnerDestination)
}
