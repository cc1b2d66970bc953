//! The contract between xnet's kernel programs and its daemon: every BPF map's name, key and
//! value, and the names of the programs. Both sides compile this crate, so a layout change is
//! one edit here and a compile error wherever it matters.
//!
//! Rules for the types below: `#[repr(C)]`, fixed-size fields only, explicit `_pad` fields so the
//! kernel never copies uninitialised padding bytes, and addresses kept in network byte order as
//! byte arrays (the order they have on the wire, so the eBPF side compares them without swaps).
#![no_std]

/// Program attached to the tcx ingress hook of a container's host-side veth: every frame a
/// container sends passes through it.
pub const PROG_ENDPOINT_INGRESS: &str = "endpoint_ingress";
/// Program attached to the tcx egress hook of a container's host-side veth: frames the host
/// stack sends to the container (frames redirected from other containers skip this hook).
pub const PROG_ENDPOINT_EGRESS: &str = "endpoint_egress";

/// `ENDPOINTS`: host-side veth ifindex (`u32`) -> [`Endpoint`].
pub const MAP_ENDPOINTS: &str = "ENDPOINTS";
/// `NEIGHBORS`: [`NeighborKey`] -> [`Neighbor`]; the address book of each network.
pub const MAP_NEIGHBORS: &str = "NEIGHBORS";
/// `ENDPOINT_STATS`: host-side veth ifindex (`u32`) -> per-CPU [`EndpointCounters`].
pub const MAP_ENDPOINT_STATS: &str = "ENDPOINT_STATS";
/// `DROP_STATS`: [`DropReason`] as `u32` -> per-CPU `u64` count.
pub const MAP_DROP_STATS: &str = "DROP_STATS";

/// Capacity of the per-endpoint maps: containers one daemon can attach.
pub const MAX_ENDPOINTS: u32 = 4096;

/// What the datapath knows about the container behind one host-side veth.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Network the endpoint belongs to; scopes every lookup it makes.
    pub network_id: u32,
    /// The container's IPv4 address: the only source address it may send from.
    pub ipv4: [u8; 4],
    /// The network's gateway, an address of the host itself.
    pub gateway: [u8; 4],
    /// The container-side MAC: the only source MAC it may send from.
    pub mac: [u8; 6],
    /// The host-side veth's MAC: the answer to ARP for the gateway, so frames for the host
    /// arrive addressed to the device they enter on.
    pub host_mac: [u8; 6],
    /// `ENDPOINT_*` flags: the policy of the endpoint's network, copied into every endpoint so
    /// the hot path needs no second lookup (network options cannot change after creation).
    pub flags: u32,
}

/// Inter-container communication is off on the endpoint's network
/// (`com.docker.network.bridge.enable_icc=false`): it may talk to the gateway only, at L2
/// (no ARP answers for peers) as well as at L3.
pub const ENDPOINT_ICC_OFF: u32 = 1 << 0;

/// Key of `NEIGHBORS`. The network id is part of the key, so a lookup made on behalf of one
/// network can never find an endpoint of another: isolation by construction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighborKey {
    pub network_id: u32,
    pub ipv4: [u8; 4],
}

/// Where an address of a network lives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// Host-side veth of the endpoint that owns the address (the redirect target).
    pub ifindex: u32,
    /// Its container-side MAC (the ARP answer, and the destination MAC on delivery).
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Traffic of one endpoint, seen from the container: `tx` is what it sent, `rx` what was
/// delivered to it, `drops` what the datapath refused from it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}

/// Why the datapath dropped a frame; the index into `DROP_STATS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The frame entered on a veth the datapath has no endpoint for (fail closed).
    UnknownEndpoint = 0,
    /// Shorter than the headers its EtherType promises.
    Truncated = 1,
    /// Source MAC is not the endpoint's.
    SpoofedMac = 2,
    /// Source IPv4 (or ARP sender address) is not the endpoint's.
    SpoofedIp = 3,
    /// ARP that is not Ethernet/IPv4, or an operation other than request/reply.
    MalformedArp = 4,
    /// ARP request for an address that no endpoint of the network owns.
    UnknownArpTarget = 5,
    /// IPv4 destination is neither the gateway nor an endpoint of the same network.
    NoRoute = 6,
    /// An EtherType the datapath does not forward (IPv6, VLAN tags, ...).
    UnsupportedEtherType = 7,
    /// Malformed IPv4 header (version, header length).
    MalformedIp = 8,
    /// ARP about the sender's own address (gratuitous ARP, duplicate-address probes): there is
    /// no other owner to answer for, and broadcasting it to the network comes with broadcast
    /// support.
    GratuitousArp = 9,
    /// Container-to-container traffic (or ARP) on a network with ICC off.
    IccBlocked = 10,
}

impl DropReason {
    /// Every reason, in index order (sizes `DROP_STATS`, names the counters in `xnet stats`).
    pub const ALL: [DropReason; 11] = [
        DropReason::UnknownEndpoint,
        DropReason::Truncated,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::MalformedArp,
        DropReason::UnknownArpTarget,
        DropReason::NoRoute,
        DropReason::UnsupportedEtherType,
        DropReason::MalformedIp,
        DropReason::GratuitousArp,
        DropReason::IccBlocked,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::UnknownEndpoint => "unknown-endpoint",
            DropReason::Truncated => "truncated",
            DropReason::SpoofedMac => "spoofed-mac",
            DropReason::SpoofedIp => "spoofed-ip",
            DropReason::MalformedArp => "malformed-arp",
            DropReason::UnknownArpTarget => "unknown-arp-target",
            DropReason::NoRoute => "no-route",
            DropReason::UnsupportedEtherType => "unsupported-ethertype",
            DropReason::MalformedIp => "malformed-ip",
            DropReason::GratuitousArp => "gratuitous-arp",
            DropReason::IccBlocked => "icc-blocked",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all four are repr(C), made only of integers and byte arrays, with no implicit
    // padding (checked by the size assertions below), so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::Endpoint {}
    unsafe impl aya::Pod for super::NeighborKey {}
    unsafe impl aya::Pod for super::Neighbor {}
    unsafe impl aya::Pod for super::EndpointCounters {}
}

// A field added without its padding would change these sizes: fail the build, not the verifier.
const _: () = assert!(core::mem::size_of::<Endpoint>() == 28);
const _: () = assert!(core::mem::size_of::<NeighborKey>() == 8);
const _: () = assert!(core::mem::size_of::<Neighbor>() == 12);
const _: () = assert!(core::mem::size_of::<EndpointCounters>() == 40);
