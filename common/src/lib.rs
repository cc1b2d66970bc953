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

/// Program attached to the tcx ingress hook of the uplink (`xnetd --uplink`): replies to
/// containers' outgoing connections, reverse-translated back to the container.
pub const PROG_UPLINK_INGRESS: &str = "uplink_ingress";

/// `ENDPOINTS`: host-side veth ifindex (`u32`) -> [`Endpoint`].
pub const MAP_ENDPOINTS: &str = "ENDPOINTS";
/// `NEIGHBORS`: [`NeighborKey`] -> [`Neighbor`]; the address book of each network.
pub const MAP_NEIGHBORS: &str = "NEIGHBORS";
/// `ENDPOINT_STATS`: per-CPU array of [`EndpointCounters`], indexed by the endpoint's slot
/// (an array lookup the verifier inlines: no call, no hashing, on every frame).
pub const MAP_ENDPOINT_STATS: &str = "ENDPOINT_STATS";
/// `DROP_STATS`: [`DropReason`] as `u32` -> per-CPU `u64` count.
pub const MAP_DROP_STATS: &str = "DROP_STATS";

/// `UPLINK`: array of one [`Uplink`]; ifindex 0 means no uplink (no egress).
pub const MAP_UPLINK: &str = "UPLINK";
/// `SUBNETS`: LPM trie of every xnet subnet (`[u8; 4]` keys) -> network id. An address inside
/// any of them is never "outside", so egress can't become a path between networks.
pub const MAP_SUBNETS: &str = "SUBNETS";
/// `NAT_FLOWS`: LRU, [`FlowKey`] as the container sees the flow -> [`NatFlow`].
pub const MAP_NAT_FLOWS: &str = "NAT_FLOWS";
/// `NAT_REPLIES`: LRU, [`FlowKey`] as the outside sees the flow (local = the uplink's address,
/// local port = the NAT port) -> [`NatReply`].
pub const MAP_NAT_REPLIES: &str = "NAT_REPLIES";

/// `MEMBERS`: [`MemberKey`] -> host-side ifindex (`u32`): the endpoints of each network in
/// dense slots `0..MEMBER_COUNT[network]`, the fan-out list of broadcast and multicast.
pub const MAP_MEMBERS: &str = "MEMBERS";
/// `MEMBER_COUNT`: network id (`u32`) -> number of slots in use in `MEMBERS` (`u32`).
pub const MAP_MEMBER_COUNT: &str = "MEMBER_COUNT";
/// How many members a broadcast reaches at most (the fan-out is a bounded loop).
pub const MAX_FLOOD: u32 = 64;

/// Capacity of the NAT maps (flows): LRU, so the oldest flow makes room under pressure.
pub const MAX_NAT_FLOWS: u32 = 65536;
/// Source ports the NAT hands out: above Linux's ephemeral range (32768-60999), so they never
/// collide with the host's own connections from the uplink's address.
pub const NAT_PORT_FIRST: u16 = 61000;
pub const NAT_PORT_COUNT: u16 = 4536;

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
    /// Index of the endpoint's counters in `ENDPOINT_STATS` (below [`MAX_ENDPOINTS`]).
    pub slot: u32,
}

/// Inter-container communication is off on the endpoint's network
/// (`com.docker.network.bridge.enable_icc=false`): it may talk to the gateway only, at L2
/// (no ARP answers for peers) as well as at L3.
pub const ENDPOINT_ICC_OFF: u32 = 1 << 0;
/// The endpoint's network is `--internal`: no egress.
pub const ENDPOINT_INTERNAL: u32 = 1 << 1;

/// The host's uplink: where egress leaves, and the address it is source-NATed to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uplink {
    pub ifindex: u32,
    pub ipv4: [u8; 4],
}

/// One direction of a NATed flow. Ports are in network byte order; ICMP echo uses its
/// identifier as the local port and 0 as the remote port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local: [u8; 4],
    pub remote: [u8; 4],
    pub local_port: [u8; 2],
    pub remote_port: [u8; 2],
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// The NAT port a container's flow was given.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatFlow {
    pub nat_port: [u8; 2],
    pub _pad: [u8; 6],
    /// `bpf_ktime_get_ns` of the flow's last packet either way.
    pub last_seen: u64,
}

/// Where replies of a NATed flow go back to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatReply {
    /// The container endpoint's host-side veth.
    pub ifindex: u32,
    pub ipv4: [u8; 4],
    pub port: [u8; 2],
    pub _pad: [u8; 6],
    pub last_seen: u64,
}

/// Key of `NEIGHBORS`. The network id is part of the key, so a lookup made on behalf of one
/// network can never find an endpoint of another: isolation by construction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighborKey {
    pub network_id: u32,
    pub ipv4: [u8; 4],
}

/// Key of `MEMBERS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberKey {
    pub network_id: u32,
    pub slot: u32,
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
    /// The endpoint's counter slot, so delivery counts without a second lookup.
    pub slot: u32,
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
    /// IPv4 to the sender's own address (its loopback handles that, never the datapath).
    NoRoute = 6,
    /// An EtherType the datapath does not forward (IPv6, VLAN tags, ...).
    UnsupportedEtherType = 7,
    /// Malformed IPv4 header (version, header length).
    MalformedIp = 8,
    /// Container-to-container traffic (or ARP) on a network with ICC off.
    IccBlocked = 9,
    /// Egress from an `--internal` network.
    Internal = 10,
    /// Egress to an address inside another xnet network (isolation).
    OtherNetwork = 11,
    /// Egress with nothing to NAT it to: no uplink configured.
    NoUplink = 12,
    /// Egress of a protocol the NAT does not translate (only TCP, UDP and ICMP echo), or a
    /// non-first fragment.
    UnsupportedNat = 13,
    /// Every NAT port for this destination is taken.
    NatExhausted = 14,
}

impl DropReason {
    /// Every reason, in index order (sizes `DROP_STATS`, names the counters in `xnet stats`).
    pub const ALL: [DropReason; 15] = [
        DropReason::UnknownEndpoint,
        DropReason::Truncated,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::MalformedArp,
        DropReason::UnknownArpTarget,
        DropReason::NoRoute,
        DropReason::UnsupportedEtherType,
        DropReason::MalformedIp,
        DropReason::IccBlocked,
        DropReason::Internal,
        DropReason::OtherNetwork,
        DropReason::NoUplink,
        DropReason::UnsupportedNat,
        DropReason::NatExhausted,
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
            DropReason::IccBlocked => "icc-blocked",
            DropReason::Internal => "internal",
            DropReason::OtherNetwork => "other-network",
            DropReason::NoUplink => "no-uplink",
            DropReason::UnsupportedNat => "unsupported-nat",
            DropReason::NatExhausted => "nat-exhausted",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C), made only of integers and byte arrays, with no implicit
    // padding (checked by the size assertions below), so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::Endpoint {}
    unsafe impl aya::Pod for super::NeighborKey {}
    unsafe impl aya::Pod for super::Neighbor {}
    unsafe impl aya::Pod for super::EndpointCounters {}
    unsafe impl aya::Pod for super::Uplink {}
    unsafe impl aya::Pod for super::MemberKey {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::NatFlow {}
    unsafe impl aya::Pod for super::NatReply {}
}

// A field added without its padding would change these sizes: fail the build, not the verifier.
const _: () = assert!(core::mem::size_of::<Endpoint>() == 32);
const _: () = assert!(core::mem::size_of::<NeighborKey>() == 8);
const _: () = assert!(core::mem::size_of::<Neighbor>() == 16);
const _: () = assert!(core::mem::size_of::<EndpointCounters>() == 40);
const _: () = assert!(core::mem::size_of::<Uplink>() == 8);
const _: () = assert!(core::mem::size_of::<FlowKey>() == 16);
const _: () = assert!(core::mem::size_of::<NatFlow>() == 16);
const _: () = assert!(core::mem::size_of::<NatReply>() == 24);
