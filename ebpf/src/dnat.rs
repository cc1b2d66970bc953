//! Published ports (`-p`): destination NAT to the container for connections to a host address
//! and published port, and the reverse for their replies, all in the datapath (no iptables,
//! no userland proxy). Connections come from the outside through the uplink (translated by XDP,
//! [`from_wire`]), or from containers of this host through a host address (hairpin, at tcx).
//! An outside client's address reaches the container unchanged (Docker's proxy hides it,
//! moby#25526).
//!
//! IPv4 and IPv6 (generic over [`Publish`], the packet model's [`Family`] with the publishing
//! maps), TCP, UDP and SCTP (SCTP's checksum does not cover addresses, but cannot follow a port
//! change: the daemon publishes SCTP only with equal host and container ports).

use aya_ebpf::{
    bindings::{BPF_ANY, xdp_action::XDP_PASS},
    helpers::{bpf_ktime_get_coarse_ns, bpf_redirect_neigh},
    maps::{LpmTrie, LruHashMap, lpm_trie::Key},
    programs::{TcContext, XdpContext},
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use xnet_common::{
    DropReason, Endpoint, FlowKey, PUBLISH_PREFIX_FIXED_BITS, PUBLISH6_PREFIX_FIXED_BITS,
    PublishKey, Published, PublishedFlow, Uplink,
};

use crate::{
    csum, deliver, ipv6,
    maps::{self, PUBLISH_FLOWS, PUBLISH6_FLOWS, PUBLISHED, PUBLISHED6},
    monitor,
    nat::{self, NatFamily},
    outcome::Outcome,
    packet::{Family, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, L4, Packet, V4, V6},
    parse,
};

/// ICMP has no ports to publish: no ICMP type is accepted where `L4::of` asks for an echo type.
const NOT_ICMP: u8 = 0xff;

/// What publishing needs besides the packet model's differences between IPv4 and IPv6: its
/// maps, the wildcard address, and the checksum arithmetic XDP does by hand.
pub trait Publish: Family {
    /// How many bits of the trie key precede the port.
    const PREFIX_FIXED_BITS: u32;
    /// The address of mappings bound to every address (0.0.0.0, `::`).
    const ANY: Self::Addr;
    /// UDP over IPv4 may go without a checksum (all zero); over IPv6 that is invalid.
    const UDP_CHECKSUM_OPTIONAL: bool;

    fn published() -> &'static LpmTrie<PublishKey<Self::Addr>, Published<Self::Addr>>;
    fn publish_flows() -> &'static LruHashMap<FlowKey<Self::Addr>, PublishedFlow<Self::Addr>>;
    /// The endpoint's gateway of this family, an address of the host.
    fn gateway(endpoint: &Endpoint) -> Self::Addr;
    /// Loopback addresses, which never come from the wire.
    fn is_loopback(addr: &Self::Addr) -> bool;
    /// `check` (as stored) once the covered address `old` became `new`.
    fn csum_addr(check: [u8; 2], old: Self::Addr, new: Self::Addr) -> [u8; 2];
}

impl Publish for V4 {
    const PREFIX_FIXED_BITS: u32 = PUBLISH_PREFIX_FIXED_BITS;
    const ANY: [u8; 4] = [0; 4];
    const UDP_CHECKSUM_OPTIONAL: bool = true;

    #[inline(always)]
    fn published() -> &'static LpmTrie<PublishKey<[u8; 4]>, Published<[u8; 4]>> {
        &PUBLISHED
    }

    #[inline(always)]
    fn publish_flows() -> &'static LruHashMap<FlowKey<[u8; 4]>, PublishedFlow<[u8; 4]>> {
        &PUBLISH_FLOWS
    }

    #[inline(always)]
    fn gateway(endpoint: &Endpoint) -> [u8; 4] {
        endpoint.gateway
    }

    #[inline(always)]
    fn is_loopback(addr: &[u8; 4]) -> bool {
        addr[0] == 127
    }

    #[inline(always)]
    fn csum_addr(check: [u8; 2], old: [u8; 4], new: [u8; 4]) -> [u8; 2] {
        csum::update(check, csum::words4(old), csum::words4(new))
    }
}

impl Publish for V6 {
    const PREFIX_FIXED_BITS: u32 = PUBLISH6_PREFIX_FIXED_BITS;
    const ANY: [u8; 16] = [0; 16];
    const UDP_CHECKSUM_OPTIONAL: bool = false;

    #[inline(always)]
    fn published() -> &'static LpmTrie<PublishKey<[u8; 16]>, Published<[u8; 16]>> {
        &PUBLISHED6
    }

    #[inline(always)]
    fn publish_flows() -> &'static LruHashMap<FlowKey<[u8; 16]>, PublishedFlow<[u8; 16]>> {
        &PUBLISH6_FLOWS
    }

    #[inline(always)]
    fn gateway(endpoint: &Endpoint) -> [u8; 16] {
        endpoint.gateway6
    }

    #[inline(always)]
    fn is_loopback(addr: &[u8; 16]) -> bool {
        ipv6::same(addr, &ipv6::LOOPBACK)
    }

    #[inline(always)]
    fn csum_addr(check: [u8; 2], old: [u8; 16], new: [u8; 16]) -> [u8; 2] {
        csum::update(check, csum::words16(old), csum::words16(new))
    }
}

/// The mapping for `port` of `addr`: one bound to every address (if `any_address` may match,
/// i.e. `addr` is known to be the host's), else one bound to that address. The daemon never
/// lets the two coexist for a port (0.0.0.0 overlaps every address), so the order only saves
/// the common case, a binding to every address, its second trie lookup.
#[inline(always)]
pub fn lookup<F: Publish>(
    proto: u8,
    addr: F::Addr,
    port: [u8; 2],
    any_address: bool,
) -> Option<Published<F::Addr>> {
    let key = |addr| {
        Key::new(
            F::PREFIX_FIXED_BITS + 16,
            PublishKey {
                proto,
                addr,
                port,
                _pad: 0,
            },
        )
    };
    any_address
        .then(|| F::published().get(key(F::ANY)))
        .flatten()
        .or_else(|| F::published().get(key(addr)))
        .copied()
}

/// The container port that host port `port` of mapping `published` leads to.
#[inline(always)]
pub fn container_port<A>(published: &Published<A>, port: [u8; 2]) -> [u8; 2] {
    let offset = u16::from_be_bytes(port).wrapping_sub(published.host_port_first);
    published
        .container_port_first
        .wrapping_add(offset)
        .to_be_bytes()
}

/// The flow key a published connection's replies carry, seen from the container.
#[inline(always)]
fn reply_key<A>(
    container: A,
    container_port: [u8; 2],
    client: A,
    client_port: [u8; 2],
    proto: u8,
) -> FlowKey<A> {
    FlowKey {
        local: container,
        remote: client,
        local_port: container_port,
        remote_port: client_port,
        proto,
        _pad: [0; 3],
    }
}

/// When a published flow was last seen. The coarse clock (a tick's resolution) is plenty for
/// that and cheaper per packet.
#[inline(always)]
fn now() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// A frame from the wire (XDP on the uplink) to a published port: translated to the container
/// and redirected into it before the kernel builds an skb. Everything else passes, on to
/// `uplink_ingress` and the host's stack. Only the uplink's own address answers for mappings
/// bound to every address here; loopback bindings are never reachable from the wire
/// (moby#45610).
#[inline(always)]
pub fn from_wire(ctx: &XdpContext) -> u32 {
    match translate_from_wire(ctx) {
        Ok(Some(verdict)) => verdict,
        Ok(None) => XDP_PASS,
        Err(reason) => monitor::dropped_at_xdp(ctx, reason),
    }
}

/// TCP, UDP and SCTP as XDP sees them: where the ports are, and the checksum that covers the
/// addresses (none for SCTP, whose CRC32c does not; UDP's over IPv4 may be off, all zero).
struct WireL4 {
    ports: *mut [[u8; 2]; 2],
    csum: Option<*mut [u8; 2]>,
    /// TCP: whether the segment opens a connection (SYN without ACK).
    opens_connection: bool,
}

/// Translates a frame to a published port in place and delivers it into the container
/// (returns the verdict), or returns `None` to let it pass untouched. IPv6 packets with
/// extension headers pass (their first next header is no transport).
#[inline(always)]
fn translate_from_wire(ctx: &XdpContext) -> Result<Option<u32>, DropReason> {
    let Some(uplink) = maps::uplink() else {
        return Ok(None);
    };
    let Some(eth) = parse::frame_header::<EthHdr>(ctx, 0) else {
        return Ok(None);
    };
    // SAFETY: `frame_header` checked the bounds (likewise for every pointer below).
    let ether_type = unsafe { (*eth).ether_type };
    if ether_type == EtherType::Ipv4 as u16 {
        let Some(ip) = parse::frame_header::<Ipv4Hdr>(ctx, EthHdr::LEN) else {
            return Ok(None);
        };
        let header = unsafe { *ip };
        if header.vihl >> 4 != 4 || header.vihl & 0x0f < 5 {
            return Ok(None);
        }
        let Ok(packet) = Packet::of_ipv4(&header) else {
            return Ok(None);
        };
        let to_uplink = packet.dst == uplink.ipv4;
        let Some(to) = to_container::<V4>(ctx, &packet, to_uplink)? else {
            return Ok(None);
        };
        // SAFETY: as above; nothing moved the frame since.
        unsafe {
            (*ip).dst_addr = to.container;
            (*ip).check = V4::csum_addr((*ip).check, packet.dst, to.container);
        }
        // SAFETY: `eth` is the frame's bounds-checked Ethernet header.
        Ok(Some(unsafe {
            deliver::frame_into_endpoint(ctx, eth, to.ifindex, to.endpoint)
        }))
    } else if ether_type == EtherType::Ipv6 as u16 {
        let Some(ip) = parse::frame_header::<Ipv6Hdr>(ctx, EthHdr::LEN) else {
            return Ok(None);
        };
        let header = unsafe { *ip };
        if header.vcf[0] >> 4 != 6 {
            return Ok(None);
        }
        let packet = Packet::of_ipv6(&header);
        let to_uplink =
            !ipv6::is_unspecified(&uplink.ipv6) && ipv6::same(&packet.dst, &uplink.ipv6);
        let Some(to) = to_container::<V6>(ctx, &packet, to_uplink)? else {
            return Ok(None);
        };
        // SAFETY: as above. IPv6 has no header checksum.
        unsafe { (*ip).dst_addr = to.container };
        // SAFETY: as for IPv4.
        Ok(Some(unsafe {
            deliver::frame_into_endpoint(ctx, eth, to.ifindex, to.endpoint)
        }))
    } else {
        Ok(None)
    }
}

/// Where [`to_container`] sends a frame from the wire.
struct Destination<A> {
    /// The container's host-side veth.
    ifindex: u32,
    endpoint: &'static Endpoint,
    /// The container's address, which the caller writes into the IP header.
    container: A,
}

/// The family-independent part of [`translate_from_wire`]: finds the mapping, records the
/// flow, rewrites the destination port and the transport checksum, and says where the frame
/// goes once the caller has written the container's address into its IP header.
/// `to_uplink`: the destination is the uplink's address, where mappings bound to every
/// address answer. A published mapping whose container is gone drops the frame: the host
/// stack has no business with it either.
#[inline(always)]
fn to_container<F: Publish + NatFamily>(
    ctx: &XdpContext,
    packet: &Packet<F::Addr>,
    to_uplink: bool,
) -> Result<Option<Destination<F::Addr>>, DropReason> {
    if F::is_loopback(&packet.dst) {
        return Ok(None);
    }
    let Some(l4) = wire_l4::<F>(ctx, packet) else {
        return Ok(None);
    };
    // SAFETY: `wire_l4` checked the bounds.
    let [client_port, port] = unsafe { *l4.ports };
    let Some(published) = lookup::<F>(packet.proto, packet.dst, port, to_uplink) else {
        return Ok(None);
    };
    if to_uplink && nat::is_reply::<F>(packet, client_port, port) {
        // A reply of a container's outgoing connection, which left from this port: the NAT
        // flow wins (`uplink_ingress` delivers it).
        return Ok(None);
    }
    let endpoint = maps::endpoint(published.ifindex).ok_or(DropReason::UnknownEndpoint)?;
    let cport = container_port(&published, port);
    if packet.proto == IPPROTO_SCTP && cport != port {
        // Its CRC32c covers the ports and cannot follow a change (the daemon never publishes
        // such a mapping): never half-translated.
        return Err(DropReason::UnsupportedNat);
    }
    let key = reply_key(
        published.container_ip,
        cport,
        packet.src,
        client_port,
        packet.proto,
    );
    let known = F::publish_flows().get_ptr_mut(key);
    if packet.proto == IPPROTO_TCP && !l4.opens_connection && known.is_none() {
        // A TCP segment of no connection to the container: the host's own (one it made from a
        // port that happens to be published), never captured midway.
        return Ok(None);
    }
    let flow = PublishedFlow {
        dialed_addr: packet.dst,
        dialed_port: port,
        _pad: [0; 2],
        client_ifindex: 0,
        client_ip: F::ANY,
        last_seen: now(),
    };
    remember::<F>(key, known, flow);

    // SAFETY: `wire_l4` checked the bounds; nothing moved the frame since.
    unsafe {
        if let Some(check) = l4.csum {
            let with_addr = F::csum_addr(*check, packet.dst, published.container_ip);
            let mut updated = csum::update(with_addr, [csum::word(port)], [csum::word(cport)]);
            if packet.proto == IPPROTO_UDP && updated == [0; 2] {
                // Zero means "no checksum" in UDP; its one's complement twin stands in.
                updated = [0xff; 2];
            }
            *check = updated;
        }
        (*l4.ports)[1] = cport;
    }
    Ok(Some(Destination {
        ifindex: published.ifindex,
        endpoint,
        container: published.container_ip,
    }))
}

/// Records `flow` under `key` for its replies (`known`: what the map holds there now): refreshed
/// in place when it is the same connection (every packet after a flow's first: an LRU update
/// per packet costs more than the rest of the translation), inserted otherwise.
#[inline(always)]
fn remember<F: Publish>(
    key: FlowKey<F::Addr>,
    known: Option<*mut PublishedFlow<F::Addr>>,
    flow: PublishedFlow<F::Addr>,
) {
    match known {
        // SAFETY: the value stays valid for this program run; racing writers only move
        // `last_seen`.
        Some(known) if unsafe { same_connection::<F>(&*known, &flow) } => unsafe {
            (*known).last_seen = flow.last_seen;
        },
        _ => {
            let _ = F::publish_flows().insert(key, flow, u64::from(BPF_ANY));
        }
    }
}

/// Whether two flows are the same connection as seen from its client (only `last_seen` may
/// differ). Addresses compare through the family (no `memcmp` in BPF).
#[inline(always)]
fn same_connection<F: Publish>(a: &PublishedFlow<F::Addr>, b: &PublishedFlow<F::Addr>) -> bool {
    F::same(&a.dialed_addr, &b.dialed_addr)
        && a.dialed_port == b.dialed_port
        && a.client_ifindex == b.client_ifindex
        && F::same(&a.client_ip, &b.client_ip)
}

/// Finds the ports and checksum of a TCP, UDP or SCTP packet; `None` also for UDP without a
/// checksum where the family forbids that (IPv6: the packet is invalid, the stack drops it).
#[inline(always)]
fn wire_l4<F: Publish>(ctx: &XdpContext, packet: &Packet<F::Addr>) -> Option<WireL4> {
    let off = packet.l4_off;
    // Each header whole (bounds-checked), then the fields at their offsets in it.
    match packet.proto {
        IPPROTO_TCP => {
            const SYN: u8 = 0x02;
            const ACK: u8 = 0x10;
            let tcp: *mut [u8; 20] = parse::frame_header(ctx, off)?;
            // SAFETY: inside the bounds-checked header.
            let flags = unsafe { (*tcp)[13] };
            Some(WireL4 {
                ports: tcp.cast(),
                csum: Some(tcp.cast::<u8>().wrapping_add(16).cast()),
                opens_connection: flags & (SYN | ACK) == SYN,
            })
        }
        IPPROTO_UDP => {
            let udp: *mut [u8; 8] = parse::frame_header(ctx, off)?;
            let csum: *mut [u8; 2] = udp.cast::<u8>().wrapping_add(6).cast();
            // SAFETY: inside the bounds-checked header.
            let has_csum = unsafe { *csum } != [0; 2];
            if !has_csum && !F::UDP_CHECKSUM_OPTIONAL {
                return None;
            }
            Some(WireL4 {
                ports: udp.cast(),
                csum: has_csum.then_some(csum),
                opens_connection: false,
            })
        }
        IPPROTO_SCTP => {
            let sctp: *mut [u8; 12] = parse::frame_header(ctx, off)?;
            Some(WireL4 {
                ports: sctp.cast(),
                csum: None,
                opens_connection: false,
            })
        }
        _ => None,
    }
}

/// A container's packet to the outside that is a reply of a published connection: translated
/// back to what the client dialed and sent out of the uplink. `Ok(None)`: not such a reply.
#[inline(never)]
pub fn reply_to_outside<F: Publish>(
    ctx: &TcContext,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Outcome {
    Outcome::pack(translate_reply_to_outside::<F>(ctx, packet, uplink))
}

#[inline(always)]
fn translate_reply_to_outside<F: Publish>(
    ctx: &TcContext,
    packet: &Packet<F::Addr>,
    uplink: &Uplink,
) -> Result<Option<i32>, DropReason> {
    let Ok(l4) = L4::of::<F>(ctx, packet, NOT_ICMP) else {
        return Ok(None);
    };
    let (port, client_port) = l4.ports(ctx)?;
    if translate_reply_source::<F>(ctx, &l4, packet, (port, client_port), false)?.is_none() {
        return Ok(None);
    }
    // SAFETY: plain helper call; the kernel resolves the next hop.
    Ok(Some(
        unsafe { bpf_redirect_neigh(uplink.ifindex, core::ptr::null_mut(), 0, 0) } as i32,
    ))
}

/// If the container's packet, from `ports.0` to `ports.1`, is a reply of a published
/// connection whose client is a container of this host (`hairpin`) or is outside (not
/// `hairpin`): rewrites its source to what the client dialed, refreshes the flow, and returns
/// a copy of it. `Ok(None)`: no such connection.
#[inline(always)]
fn translate_reply_source<F: Publish>(
    ctx: &TcContext,
    l4: &L4,
    packet: &Packet<F::Addr>,
    ports: ([u8; 2], [u8; 2]),
    hairpin: bool,
) -> Result<Option<PublishedFlow<F::Addr>>, DropReason> {
    let key = reply_key(packet.src, ports.0, packet.dst, ports.1, l4.proto);
    let Some(flow) = F::publish_flows().get_ptr_mut(key) else {
        return Ok(None);
    };
    // SAFETY: the value stays valid for this program run; racing writers only move
    // `last_seen`.
    let flow = unsafe { &mut *flow };
    if (flow.client_ifindex != 0) != hairpin {
        return Ok(None);
    }
    flow.last_seen = now();
    let flow = *flow;
    F::set_addr(ctx, l4, F::SRC_OFF, packet.src, flow.dialed_addr)?;
    l4.set_port(ctx, l4.ports_off, ports.0, flow.dialed_port)?;
    Ok(Some(flow))
}

/// A container's packet to an address of the host (its gateway, or the uplink's address):
/// either a connection to a published port (hairpin: translated to the published container,
/// with the server's gateway as source so its replies come back here), or such a connection's
/// reply (translated back to what the client dialed, delivered into the client). `Ok(None)`:
/// neither, the host's own traffic.
#[inline(never)]
pub fn to_host_address<F: Publish>(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    packet: &Packet<F::Addr>,
) -> Outcome {
    Outcome::pack(hairpin::<F>(ctx, ifindex, endpoint, packet))
}

#[inline(always)]
fn hairpin<F: Publish>(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    packet: &Packet<F::Addr>,
) -> Result<Option<i32>, DropReason> {
    let Ok(l4) = L4::of::<F>(ctx, packet, NOT_ICMP) else {
        return Ok(None);
    };
    let (src_port, dst_port) = l4.ports(ctx)?;
    if F::same(&packet.dst, &F::gateway(endpoint)) {
        // A server's reply to a hairpinned client (which reached it from this gateway)?
        let ports = (src_port, dst_port);
        if let Some(flow) = translate_reply_source::<F>(ctx, &l4, packet, ports, true)? {
            F::set_addr(ctx, &l4, F::DST_OFF, packet.dst, flow.client_ip)?;
            return deliver::into_endpoint(ctx, flow.client_ifindex).map(Some);
        }
    }
    // Every address this path sees is the host's, so mappings bound to all addresses apply.
    let Some(published) = lookup::<F>(l4.proto, packet.dst, dst_port, true) else {
        return Ok(None);
    };
    let server = maps::endpoint(published.ifindex).ok_or(DropReason::UnknownEndpoint)?;
    let server_gateway = F::gateway(server);
    let cport = container_port(&published, dst_port);
    let flow = PublishedFlow {
        dialed_addr: packet.dst,
        dialed_port: dst_port,
        _pad: [0; 2],
        client_ifindex: ifindex,
        client_ip: packet.src,
        last_seen: now(),
    };
    let key = reply_key(
        published.container_ip,
        cport,
        server_gateway,
        src_port,
        l4.proto,
    );
    remember::<F>(key, F::publish_flows().get_ptr_mut(key), flow);
    F::set_addr(ctx, &l4, F::DST_OFF, packet.dst, published.container_ip)?;
    l4.set_port(ctx, l4.ports_off + 2, dst_port, cport)?;
    F::set_addr(ctx, &l4, F::SRC_OFF, packet.src, server_gateway)?;
    deliver::into_endpoint(ctx, published.ifindex).map(Some)
}
