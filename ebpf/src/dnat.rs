//! Published ports (`-p`): destination NAT to the container for connections to a host address
//! and published port, and the reverse for their replies, all in the datapath (no iptables,
//! no userland proxy). Connections come from the outside through the uplink, or from containers
//! of this host through a host address (hairpin). An outside client's address reaches the
//! container unchanged (Docker's proxy hides it, moby#25526).
//!
//! IPv4, TCP, UDP and SCTP (SCTP's checksum does not cover addresses, but cannot follow a port
//! change: the daemon publishes SCTP only with equal host and container ports).

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_ktime_get_ns, bpf_redirect_neigh},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use xnet_common::{
    DropReason, Endpoint, FlowKeyV4, PUBLISH_PREFIX_FIXED_BITS, PublishKey, Published,
    PublishedFlow, Uplink,
};

use crate::{
    forward,
    maps::{self, PUBLISH_FLOWS, PUBLISHED},
    nat::{Family, IPPROTO_TCP, L4, Packet, V4},
    outcome::Outcome,
};

/// ICMP has no ports to publish: no ICMP type is accepted where `L4::of` asks for an echo type.
const NOT_ICMP: u8 = 0xff;

/// The mapping for `port` of `addr`: one bound to that address, else (if `any_address` may
/// match, i.e. `addr` is known to be the host's) one bound to every address.
#[inline(always)]
pub fn lookup(proto: u8, addr: [u8; 4], port: [u8; 2], any_address: bool) -> Option<Published> {
    let key = |addr| {
        Key::new(
            PUBLISH_PREFIX_FIXED_BITS + 16,
            PublishKey {
                proto,
                addr,
                port,
                _pad: 0,
            },
        )
    };
    PUBLISHED
        .get(key(addr))
        .or_else(|| any_address.then(|| PUBLISHED.get(key([0; 4]))).flatten())
        .copied()
}

/// The container port that host port `port` of mapping `published` leads to.
#[inline(always)]
pub fn container_port(published: &Published, port: [u8; 2]) -> [u8; 2] {
    let offset = u16::from_be_bytes(port).wrapping_sub(published.host_port_first);
    published
        .container_port_first
        .wrapping_add(offset)
        .to_be_bytes()
}

/// The flow key a published connection's replies carry, seen from the container.
#[inline(always)]
fn reply_key(
    container: [u8; 4],
    container_port: [u8; 2],
    client: [u8; 4],
    client_port: [u8; 2],
    proto: u8,
) -> FlowKeyV4 {
    FlowKeyV4 {
        local: container,
        remote: client,
        local_port: container_port,
        remote_port: client_port,
        proto,
        _pad: [0; 3],
    }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_ns() }
}

/// A packet from the outside (tcx ingress of the uplink) to a published port: translated to the
/// container and delivered into it. `Ok(None)`: not for a published port. `uplink` is the
/// uplink's own address, the one address of the host that mappings bound to every address
/// answer on here; loopback bindings are never reachable from the wire (moby#45610).
#[inline(never)]
pub fn from_outside(ctx: &TcContext, packet: &Packet<[u8; 4]>, uplink: &Uplink) -> Outcome {
    Outcome::pack(translate_from_outside(ctx, packet, uplink))
}

#[inline(always)]
fn translate_from_outside(
    ctx: &TcContext,
    packet: &Packet<[u8; 4]>,
    uplink: &Uplink,
) -> Result<Option<i32>, DropReason> {
    if packet.dst[0] == 127 {
        return Ok(None);
    }
    let Ok(l4) = L4::of::<V4>(ctx, packet, NOT_ICMP) else {
        return Ok(None);
    };
    let (client_port, port) = l4.ports(ctx)?;
    let Some(published) = lookup(l4.proto, packet.dst, port, packet.dst == uplink.ipv4) else {
        return Ok(None);
    };
    let cport = container_port(&published, port);
    let key = reply_key(
        published.container_ip,
        cport,
        packet.src,
        client_port,
        l4.proto,
    );
    if l4.proto == IPPROTO_TCP
        && !opens_connection(ctx, packet)?
        && PUBLISH_FLOWS.get_ptr(key).is_none()
    {
        // A TCP segment of no connection to the container: the host's own (one it made from a
        // port that happens to be published), never captured midway.
        return Ok(None);
    }
    let flow = PublishedFlow {
        dialed_addr: packet.dst,
        dialed_port: port,
        _pad: [0; 2],
        client_ifindex: 0,
        client_ip: [0; 4],
        last_seen: now(),
    };
    let _ = PUBLISH_FLOWS.insert(key, flow, u64::from(BPF_ANY));
    V4::set_addr(ctx, &l4, V4::DST_OFF, packet.dst, published.container_ip)?;
    l4.set_port(ctx, l4.ports_off + 2, port, cport)?;
    forward::into_endpoint(ctx, published.ifindex).map(Some)
}

/// Whether a TCP segment opens a connection (SYN without ACK).
#[inline(always)]
fn opens_connection(ctx: &TcContext, packet: &Packet<[u8; 4]>) -> Result<bool, DropReason> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let flags: u8 = ctx
        .load(packet.l4_off + 13)
        .map_err(|_| DropReason::Truncated)?;
    Ok(flags & (SYN | ACK) == SYN)
}

/// A container's packet to the outside that is a reply of a published connection: translated
/// back to what the client dialed and sent out of the uplink. `Ok(None)`: not such a reply.
#[inline(never)]
pub fn reply_to_outside(ctx: &TcContext, packet: &Packet<[u8; 4]>, uplink: &Uplink) -> Outcome {
    Outcome::pack(translate_reply_to_outside(ctx, packet, uplink))
}

#[inline(always)]
fn translate_reply_to_outside(
    ctx: &TcContext,
    packet: &Packet<[u8; 4]>,
    uplink: &Uplink,
) -> Result<Option<i32>, DropReason> {
    let Ok(l4) = L4::of::<V4>(ctx, packet, NOT_ICMP) else {
        return Ok(None);
    };
    let (port, client_port) = l4.ports(ctx)?;
    if translate_reply_source(ctx, &l4, packet, (port, client_port), false)?.is_none() {
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
fn translate_reply_source(
    ctx: &TcContext,
    l4: &L4,
    packet: &Packet<[u8; 4]>,
    ports: ([u8; 2], [u8; 2]),
    hairpin: bool,
) -> Result<Option<PublishedFlow>, DropReason> {
    let key = reply_key(packet.src, ports.0, packet.dst, ports.1, l4.proto);
    let Some(flow) = PUBLISH_FLOWS.get_ptr_mut(key) else {
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
    V4::set_addr(ctx, l4, V4::SRC_OFF, packet.src, flow.dialed_addr)?;
    l4.set_port(ctx, l4.ports_off, ports.0, flow.dialed_port)?;
    Ok(Some(flow))
}

/// A container's packet to an address of the host (its gateway, or the uplink's address):
/// either a connection to a published port (hairpin: translated to the published container,
/// with the server's gateway as source so its replies come back here), or such a connection's
/// reply (translated back to what the client dialed, delivered into the client). `Ok(None)`:
/// neither, the host's own traffic.
#[inline(never)]
pub fn to_host_address(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    packet: &Packet<[u8; 4]>,
) -> Outcome {
    Outcome::pack(hairpin(ctx, ifindex, endpoint, packet))
}

#[inline(always)]
fn hairpin(
    ctx: &TcContext,
    ifindex: u32,
    endpoint: &Endpoint,
    packet: &Packet<[u8; 4]>,
) -> Result<Option<i32>, DropReason> {
    let Ok(l4) = L4::of::<V4>(ctx, packet, NOT_ICMP) else {
        return Ok(None);
    };
    let (src_port, dst_port) = l4.ports(ctx)?;
    if packet.dst == endpoint.gateway {
        // A server's reply to a hairpinned client (which reached it from this gateway)?
        let ports = (src_port, dst_port);
        if let Some(flow) = translate_reply_source(ctx, &l4, packet, ports, true)? {
            V4::set_addr(ctx, &l4, V4::DST_OFF, packet.dst, flow.client_ip)?;
            return forward::into_endpoint(ctx, flow.client_ifindex).map(Some);
        }
    }
    // Every address this path sees is the host's, so mappings bound to all addresses apply.
    let Some(published) = lookup(l4.proto, packet.dst, dst_port, true) else {
        return Ok(None);
    };
    let server = maps::endpoint(published.ifindex).ok_or(DropReason::UnknownEndpoint)?;
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
        server.gateway,
        src_port,
        l4.proto,
    );
    let _ = PUBLISH_FLOWS.insert(key, flow, u64::from(BPF_ANY));
    V4::set_addr(ctx, &l4, V4::DST_OFF, packet.dst, published.container_ip)?;
    l4.set_port(ctx, l4.ports_off + 2, dst_port, cport)?;
    V4::set_addr(ctx, &l4, V4::SRC_OFF, packet.src, server.gateway)?;
    forward::into_endpoint(ctx, published.ifindex).map(Some)
}
