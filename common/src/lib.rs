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
/// The same hook for a container of a LAN network (macvlan, ipvlan, [`ENDPOINT_LAN`]).
pub const PROG_LAN_ENDPOINT_INGRESS: &str = "lan_endpoint_ingress";
/// Program attached to the tcx egress hook of a container's host-side veth: frames the host
/// stack sends to the container (frames redirected from other containers skip this hook).
pub const PROG_ENDPOINT_EGRESS: &str = "endpoint_egress";

/// Program attached to the tcx ingress hook of the uplink (`xnetd --uplink`): replies to
/// containers' outgoing connections, reverse-translated back to the container.
pub const PROG_UPLINK_INGRESS: &str = "uplink_ingress";

/// XDP program of the uplink, which runs before `uplink_ingress`: connections from other hosts
/// to published ports, translated and redirected into the container before the kernel builds
/// an skb. Whatever it does not translate passes on.
pub const PROG_UPLINK_XDP: &str = "uplink_xdp";
/// tcx ingress of the encryption worker's device (`xnet-crypt`): VXLAN the worker decrypted,
/// checked and delivered as if it had arrived on the underlay.
pub const PROG_DECRYPTED_INGRESS: &str = "decrypted_ingress";
/// XDP of the encryption worker's device: what the worker decrypted, decapsulated before GRO.
pub const PROG_DECRYPTED_XDP: &str = "decrypted_xdp";

/// tcx ingress of a macvlan or ipvlan network's parent device (`-o parent=IFACE[.VID]`): frames
/// from the LAN for the containers on it, found by destination MAC (macvlan) or address
/// (ipvlan), untagged, delivered; everything else goes on to the next program or the host.
pub const PROG_PARENT_INGRESS: &str = "parent_ingress";

/// Programs attached to the root cgroup (`connect4`, `sendmsg4`, `recvmsg4`, `getpeername4`): the host's
/// own sockets reach published ports on 127.0.0.1 and the host's addresses, translated at the
/// socket, with no proxy. Each acts only on sockets of its daemon's network namespace.
pub const PROG_HOST_CONNECT4: &str = "host_connect4";
pub const PROG_HOST_SENDMSG4: &str = "host_sendmsg4";
pub const PROG_HOST_RECVMSG4: &str = "host_recvmsg4";
pub const PROG_HOST_GETPEERNAME4: &str = "host_getpeername4";
/// The same for IPv6 sockets (`connect6`, ...): published ports on [::1] and the host's IPv6
/// addresses.
pub const PROG_HOST_CONNECT6: &str = "host_connect6";
pub const PROG_HOST_SENDMSG6: &str = "host_sendmsg6";
pub const PROG_HOST_RECVMSG6: &str = "host_recvmsg6";
pub const PROG_HOST_GETPEERNAME6: &str = "host_getpeername6";

/// `HOST_NETNS`: array of one `u64`, the network namespace cookie of the daemon's (the host's)
/// namespace; the socket hooks act only on sockets there. 0: not set, they act on none.
pub const MAP_HOST_NETNS: &str = "HOST_NETNS";
/// `SOCK_REVNAT`: LRU, [`SockRevKeyV4`] -> [`SockAddrV4`]: for a socket that sent datagrams to
/// a published port, the container address they went to -> the address the socket asked for,
/// so replies read from it show where it sent them.
pub const MAP_SOCK_REVNAT: &str = "SOCK_REVNAT";
/// `SOCK6_REVNAT`: the same for IPv6 sockets, [`SockRevKeyV6`] -> [`SockAddrV6`].
pub const MAP_SOCK6_REVNAT: &str = "SOCK6_REVNAT";

/// An address `A` and port, both in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockAddr<A> {
    pub addr: A,
    pub port: [u8; 2],
    pub _pad: [u8; 2],
}
pub type SockAddrV4 = SockAddr<[u8; 4]>;
pub type SockAddrV6 = SockAddr<[u8; 16]>;

/// Key of `SOCK_REVNAT` and `SOCK6_REVNAT`: a socket (its cookie) and the container address it
/// talks to. `T` is the explicit tail padding to a multiple of 8 (none for IPv4, `[u8; 4]` for
/// IPv6).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockRevKey<A, T> {
    pub cookie: u64,
    pub container: SockAddr<A>,
    pub _tail: T,
}
pub type SockRevKeyV4 = SockRevKey<[u8; 4], [u8; 0]>;
pub type SockRevKeyV6 = SockRevKey<[u8; 16], [u8; 4]>;

/// `ENDPOINTS`: host-side veth ifindex (`u32`) -> [`Endpoint`].
pub const MAP_ENDPOINTS: &str = "ENDPOINTS";
/// `NEIGHBORS`: [`NeighborKey`] -> [`Neighbor`]; the address book of each network: this host's
/// endpoints, and on overlay networks the other hosts' ([`Neighbor::is_remote`]).
pub const MAP_NEIGHBORS: &str = "NEIGHBORS";
/// `NEIGHBORS6`: [`Neighbor6Key`] -> [`Neighbor`]; the same for IPv6 addresses. Each endpoint of
/// an IPv6 network has two entries: its address and its link-local address
/// ([`link_local_of`] its MAC).
pub const MAP_NEIGHBORS6: &str = "NEIGHBORS6";
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
/// `SUBNETS6`: the same for IPv6 subnets (`[u8; 16]` keys).
pub const MAP_SUBNETS6: &str = "SUBNETS6";
/// `NAT_FLOWS`: LRU, [`FlowKeyV4`] as the container sees the flow -> [`NatFlow`].
pub const MAP_NAT_FLOWS: &str = "NAT_FLOWS";
/// `NAT_REPLIES`: LRU, [`FlowKeyV4`] as the outside sees the flow (local = the uplink's address,
/// local port = the NAT port) -> [`NatReplyV4`].
pub const MAP_NAT_REPLIES: &str = "NAT_REPLIES";
/// `NAT6_FLOWS` and `NAT6_REPLIES`: the same for IPv6 (NAT66), with [`FlowKeyV6`] and
/// [`NatReplyV6`].
pub const MAP_NAT6_FLOWS: &str = "NAT6_FLOWS";
pub const MAP_NAT6_REPLIES: &str = "NAT6_REPLIES";

/// `PUBLISHED`: LPM trie, [`PublishKeyV4`] -> [`PublishedV4`]: the published ports (`-p`) on
/// IPv4 host addresses. A range of host ports is stored as the few prefixes that cover it, so
/// memory grows with the number of ranges and a lookup costs the same however many ports are
/// published. Bindings to every address are stored with address 0.0.0.0; a lookup tries the
/// destination address, then 0.0.0.0.
pub const MAP_PUBLISHED: &str = "PUBLISHED";
/// `PUBLISHED6`: the same for IPv6 host addresses ([`PublishKeyV6`] -> [`PublishedV6`], `::`
/// for every address), leading to the container's IPv6 address.
pub const MAP_PUBLISHED6: &str = "PUBLISHED6";
/// `PUBLISH_FLOWS`: LRU, [`FlowKeyV4`] of a connection to a published port as the container
/// sees its replies (local = the container's address and port, remote = the client) ->
/// [`PublishedFlowV4`]: what the client dialed, so replies are translated back to it.
pub const MAP_PUBLISH_FLOWS: &str = "PUBLISH_FLOWS";
/// `PUBLISH6_FLOWS`: the same for IPv6, [`FlowKeyV6`] -> [`PublishedFlowV6`].
pub const MAP_PUBLISH6_FLOWS: &str = "PUBLISH6_FLOWS";

/// Capacity of `PUBLISHED` and `PUBLISHED6` in prefixes (a range takes at most 30).
pub const MAX_PUBLISHED: u32 = 16384;

/// How many bits of a [`PublishKeyV4`] precede the port: protocol and address.
pub const PUBLISH_PREFIX_FIXED_BITS: u32 = 40;
/// The same for a [`PublishKeyV6`].
pub const PUBLISH6_PREFIX_FIXED_BITS: u32 = 136;

/// Key of `PUBLISHED` (`A` = `[u8; 4]`) and `PUBLISHED6` (`[u8; 16]`). Field order is the LPM
/// order: protocol and host address match exactly, the port by prefix (a range is a set of
/// prefixes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublishKey<A> {
    /// IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP.
    pub proto: u8,
    /// The host address the mapping is bound to; 0.0.0.0 (`::`) for all of them.
    pub addr: A,
    /// The host port, network byte order.
    pub port: [u8; 2],
    pub _pad: u8,
}
pub type PublishKeyV4 = PublishKey<[u8; 4]>;
pub type PublishKeyV6 = PublishKey<[u8; 16]>;

/// Where a published range leads: host port `p` of the range goes to
/// `container_port_first + (p - host_port_first)` of the container's address `A`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published<A> {
    /// The container endpoint's host-side veth.
    pub ifindex: u32,
    pub container_ip: A,
    /// Host byte order (arithmetic is done on them).
    pub host_port_first: u16,
    pub container_port_first: u16,
}
pub type PublishedV4 = Published<[u8; 4]>;
pub type PublishedV6 = Published<[u8; 16]>;

/// A connection to a published port: what its client dialed, and where the client is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedFlow<A> {
    /// The address and port the client connected to (network byte order).
    pub dialed_addr: A,
    pub dialed_port: [u8; 2],
    pub _pad: [u8; 2],
    /// The client's host-side veth when it is a container of this host (hairpin), else 0
    /// (it came through the uplink, and replies leave through it).
    pub client_ifindex: u32,
    /// A hairpin client's own address (its packets reach the server from the server's
    /// gateway, so replies need it back); unused for clients outside.
    pub client_ip: A,
    pub last_seen: u64,
}
pub type PublishedFlowV4 = PublishedFlow<[u8; 4]>;
pub type PublishedFlowV6 = PublishedFlow<[u8; 16]>;

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
    /// The container's IPv6 address when its network has IPv6 ([`ENDPOINT_IPV6`]); besides it,
    /// the container may send only from its link-local address ([`link_local_of`] `mac`), or
    /// from `::` while it probes for duplicate addresses.
    pub ipv6: [u8; 16],
    /// The network's IPv6 gateway, an address of the host itself.
    pub gateway6: [u8; 16],
}

/// Inter-container communication is off on the endpoint's network
/// (`com.docker.network.bridge.enable_icc=false`): it may talk to the gateway only, at L2
/// (no ARP answers for peers) as well as at L3.
pub const ENDPOINT_ICC_OFF: u32 = 1 << 0;
/// The endpoint's network is `--internal`: no egress.
pub const ENDPOINT_INTERNAL: u32 = 1 << 1;
/// The endpoint's network has IPv6 (`--ipv6`): `ipv6` and `gateway6` are set, and the datapath
/// forwards IPv6 and answers neighbour discovery for it. Without it IPv6 frames are dropped.
pub const ENDPOINT_IPV6: u32 = 1 << 2;

/// The endpoint's network is a LAN network (macvlan or ipvlan): its container sits on the LAN
/// of a parent device, with an address of that LAN; its network's [`LanNetwork`] says how.
/// No NAT, no gateway on the host, no published ports.
pub const ENDPOINT_LAN: u32 = 1 << 3;

/// `LAN_NETWORKS`: network id (`u32`) -> [`LanNetwork`], for every macvlan and ipvlan network.
pub const MAP_LAN_NETWORKS: &str = "LAN_NETWORKS";
/// `LAN_PARENTS`: [`LanParentKey`] -> [`LanParent`]: the layer-2 network (macvlan, or ipvlan
/// in l2 mode) on a parent device and VLAN, at most one (xnetd refuses a second), with what
/// demultiplexing its frames needs, so a frame from the LAN costs this lookup and its
/// container's.
pub const MAP_LAN_PARENTS: &str = "LAN_PARENTS";
/// `LAN_MACS`: [`LanMacKey`] -> [`Neighbor`]: a macvlan network's containers by their own MAC.
pub const MAP_LAN_MACS: &str = "LAN_MACS";
/// `LAN_SUBNETS` / `LAN_SUBNETS6`: LPM tries, the subnets of ipvlan l3 networks (`[u8; 4]` /
/// `[u8; 16]` keys) -> network id: how a routed frame finds its network. (A layer-2 LAN
/// network's subnet is the LAN's own, which other containers reach through NAT, so it is not
/// in `SUBNETS`.)
pub const MAP_LAN_SUBNETS: &str = "LAN_SUBNETS";
pub const MAP_LAN_SUBNETS6: &str = "LAN_SUBNETS6";

/// How a LAN network's containers meet their LAN (`LAN_NETWORKS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LanNetwork {
    /// The parent device's ifindex; 0: no parent, the members reach only each other.
    pub parent: u32,
    /// The host's IPv4 address on the parent, which containers reach through the datapath
    /// when [`LAN_HOST_ACCESS`] is set (zeros: none).
    pub host_ipv4: [u8; 4],
    /// The parent's MAC: every container's MAC on an ipvlan network.
    pub parent_mac: [u8; 6],
    /// The 802.1Q VLAN id its frames carry on the parent (`parent=IFACE.VID`); 0: untagged.
    pub vlan: u16,
    /// `LAN_MODE_*`: what containers of the network may say to each other.
    pub mode: u8,
    /// `LAN_*` flags.
    pub flags: u8,
    pub _pad: [u8; 6],
}

/// Containers on the parent reach each other directly (macvlan `bridge`, ipvlan flag
/// `bridge`).
pub const LAN_MODE_BRIDGE: u8 = 0;
/// They never reach each other (macvlan `private`, ipvlan flag `private`).
pub const LAN_MODE_PRIVATE: u8 = 1;
/// Their traffic to each other goes out to the LAN, whose switch must send it back
/// (`vepa`).
pub const LAN_MODE_VEPA: u8 = 2;
/// One container owns the parent (macvlan `passthru`); the datapath treats it as `bridge`.
pub const LAN_MODE_PASSTHRU: u8 = 3;

/// An ipvlan network: containers share the parent's MAC and are told apart by address.
pub const LAN_IPVLAN: u8 = 1 << 0;
/// ipvlan in l3 (or l3s) mode: routed by address, no broadcast, multicast or ARP; a container's
/// frames to the LAN go to the next hop the host's FIB gives on the parent.
pub const LAN_L3: u8 = 1 << 1;
/// `-o xnet.host_access=true`: the host and the containers reach each other through the
/// datapath (Docker's macvlan cannot: moby#21735).
pub const LAN_HOST_ACCESS: u8 = 1 << 2;

/// Key of `LAN_PARENTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LanParentKey {
    pub ifindex: u32,
    /// 0: untagged.
    pub vlan: u16,
    pub _pad: [u8; 2],
}

/// Value of `LAN_PARENTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LanParent {
    pub network_id: u32,
    /// `LAN_*` flags of the network (`LAN_IPVLAN` tells how its containers are found).
    pub flags: u8,
    pub _pad: u8,
    /// The parent's MAC: an ipvlan network's frames from the LAN are addressed to it.
    pub parent_mac: [u8; 6],
}

/// Key of `LAN_MACS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LanMacKey {
    pub network_id: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// The link-local address (fe80::/64) Linux gives an interface with MAC `mac` (modified
/// EUI-64, `addr_gen_mode` 0, which xnetd sets on every interface of an IPv6 network). Both
/// sides derive it instead of storing it: the datapath to check sources and recognise the
/// host-side veth, the daemon to publish each container's link-local address.
pub const fn link_local_of(mac: [u8; 6]) -> [u8; 16] {
    [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ]
}

/// The host's uplink: where egress leaves, and the address it is source-NATed to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uplink {
    pub ifindex: u32,
    pub ipv4: [u8; 4],
    /// The uplink's global IPv6 address, the source of NAT66; all zero: no IPv6 egress.
    pub ipv6: [u8; 16],
}

/// One direction of a NATed flow, with addresses `A` (`[u8; 4]` or `[u8; 16]`). Ports are in
/// network byte order; ICMP echo uses its identifier as the local port and 0 as the remote port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey<A> {
    pub local: A,
    pub remote: A,
    pub local_port: [u8; 2],
    pub remote_port: [u8; 2],
    pub proto: u8,
    pub _pad: [u8; 3],
}
pub type FlowKeyV4 = FlowKey<[u8; 4]>;
pub type FlowKeyV6 = FlowKey<[u8; 16]>;

/// The NAT port a container's flow was given.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatFlow {
    pub nat_port: [u8; 2],
    pub _pad: [u8; 6],
    /// `bpf_ktime_get_ns` of the flow's last packet either way.
    pub last_seen: u64,
}

/// Where replies of a NATed flow go back to: the container's address `A` and port. `T` is the
/// explicit tail padding that keeps `last_seen` 8-aligned (`[u8; 4]` for IPv4, none for IPv6).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatReply<A, T> {
    /// The container endpoint's host-side veth.
    pub ifindex: u32,
    pub port: [u8; 2],
    pub _pad: [u8; 2],
    pub addr: A,
    pub _tail: T,
    pub last_seen: u64,
}
pub type NatReplyV4 = NatReply<[u8; 4], [u8; 4]>;
pub type NatReplyV6 = NatReply<[u8; 16], [u8; 0]>;

/// Key of `NEIGHBORS`. The network id is part of the key, so a lookup made on behalf of one
/// network can never find an endpoint of another: isolation by construction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighborKey {
    pub network_id: u32,
    pub ipv4: [u8; 4],
}

/// Key of `NEIGHBORS6`; scoped by network like [`NeighborKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neighbor6Key {
    pub network_id: u32,
    pub ipv6: [u8; 16],
}

/// Key of `MEMBERS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberKey {
    pub network_id: u32,
    pub slot: u32,
}

/// Where an address of a network lives: behind a host-side veth of this host, or (overlay
/// networks) on another host of the cluster, reached through VXLAN.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// Host-side veth of the endpoint that owns the address (the redirect target); 0 for an
    /// endpoint on another host ([`Neighbor::is_remote`]).
    pub ifindex: u32,
    /// Its container-side MAC (the ARP answer, and the destination MAC on delivery).
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// The endpoint's counter slot, so delivery counts without a second lookup (local only).
    pub slot: u32,
    /// A remote endpoint's host: its underlay (VTEP) address, the outer destination; zero for
    /// a local endpoint.
    pub vtep: [u8; 4],
    /// A remote endpoint's network's VNI (so encapsulation needs no second lookup); 0 for a
    /// local endpoint.
    pub vni: u32,
}

impl Neighbor {
    /// Whether the address lives on another host of the cluster.
    pub const fn is_remote(&self) -> bool {
        self.ifindex == 0
    }
}

/// `TUNNEL`: array of one [`Tunnel`]: this host's VXLAN endpoint (`xnetd --cluster-advertise`);
/// ifindex 0: no cluster, nothing is encapsulated or decapsulated.
pub const MAP_TUNNEL: &str = "TUNNEL";
/// `VNIS`: VNI (`u32`) -> network id (`u32`): the overlay networks this host mirrors. A VXLAN
/// frame whose VNI is not here is dropped.
pub const MAP_VNIS: &str = "VNIS";
/// `ENCRYPTED_VNIS`: VNI (`u32`) -> `u8` (1): the VNIs of encrypted overlay networks
/// (`--opt encrypted`). Their frames never cross the underlay in clear: a frame for another
/// host goes to the encryption worker's device (`ENCRYPTION_PEERS`) or is dropped
/// (`unencrypted`), and cleartext VXLAN with such a VNI is dropped on arrival
/// (`cleartext-vxlan`).
pub const MAP_ENCRYPTED_VNIS: &str = "ENCRYPTED_VNIS";
/// `ENCRYPTION_PEERS`: underlay address (`[u8; 4]`) -> ifindex (`u32`) of the encryption
/// worker's device: the hosts this host can encrypt for (the worker has their public key).
/// An encrypted network's VXLAN for a host not here is dropped (`unencrypted`); written by
/// xnetd from its worker's peers, emptied on start (a dead worker's device is gone with it).
pub const MAP_ENCRYPTION_PEERS: &str = "ENCRYPTION_PEERS";
/// `VTEPS`: underlay address (`[u8; 4]`) -> [`Vtep`]: the live hosts of the cluster (under
/// their etcd lease). VXLAN from any other source is dropped.
pub const MAP_VTEPS: &str = "VTEPS";
/// `FLOOD_VTEPS`: network id (`u32`) -> [`FloodVteps`]: for an overlay network, the other
/// hosts of the cluster with endpoints on it, to each of which the datapath sends a copy of
/// every broadcast and multicast frame its endpoints send (head-end replication). No entry:
/// the network's broadcasts stay on this host (a network of this host only, or an overlay
/// nobody else has joined).
pub const MAP_FLOOD_VTEPS: &str = "FLOOD_VTEPS";
/// Capacity of `VTEPS` (hosts of one cluster).
pub const MAX_VTEPS: u32 = 4096;
/// How many other hosts a broadcast of one overlay network reaches at most: one copy each,
/// made in a bounded loop.
pub const MAX_FLOOD_VTEPS: u32 = 256;
/// Capacity of `NEIGHBORS` (local and remote endpoints of every network; `NEIGHBORS6` holds
/// twice as many: two entries per endpoint). Both are allocated per entry, not up front.
/// (`VNIS` holds [`MAX_ENDPOINTS`]: one per network this host has.)
pub const MAX_NEIGHBORS: u32 = 262144;

/// This host's end of the overlay's tunnels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tunnel {
    /// The underlay device (the interface of the advertise address): where VXLAN leaves
    /// (`bpf_redirect_neigh`, so the kernel's route and neighbour tables pick the next hop)
    /// and arrives.
    pub ifindex: u32,
    /// The advertise address: the outer source, and the outer destination VXLAN must have.
    pub local: [u8; 4],
    /// The cluster's VXLAN UDP port, network byte order.
    pub port: [u8; 2],
    pub _pad: [u8; 2],
}

/// A live host of the cluster, by its underlay address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vtep {
    /// Reserved (non-zero: live); the key is what matters.
    pub live: u32,
}

/// Where an overlay network's broadcasts and multicasts are replicated to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodVteps {
    /// The network's VNI (an endpoint's entry does not carry it).
    pub vni: u32,
    /// How many of `vteps` are in use (at most [`MAX_FLOOD_VTEPS`]).
    pub count: u32,
    /// The other hosts' underlay addresses: the first `count` are, the rest are zero.
    pub vteps: [[u8; 4]; MAX_FLOOD_VTEPS as usize],
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

/// `MONITOR_EVENTS`: ring buffer of [`MonitorEvent`]s for `xnet monitor`, read by xnetd.
pub const MAP_MONITOR_EVENTS: &str = "MONITOR_EVENTS";
/// Its size in bytes: 4096 events of 64 bytes, a burst of about 0.2 s at the rate limit.
pub const MONITOR_EVENTS_BYTES: u32 = 256 * 1024;
/// `MONITOR`: array of one [`MonitorConfig`]: which events the programs write. All zero (no
/// monitor attached) costs each packet one array read and a test.
pub const MAP_MONITOR: &str = "MONITOR";
/// `MONITOR_BUDGET`: per-CPU array of one [`MonitorBudget`]: the rate limit's window and the
/// events lost to it.
pub const MAP_MONITOR_BUDGET: &str = "MONITOR_BUDGET";

/// [`MonitorConfig::kinds`]: drops are reported.
pub const MONITOR_DROPS: u32 = 1 << 0;
/// [`MonitorConfig::kinds`]: frames accepted from containers and delivered to them by the
/// host are reported.
pub const MONITOR_TRACE: u32 = 1 << 1;

/// What `xnet monitor` asked the programs for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorConfig {
    /// [`MONITOR_DROPS`] | [`MONITOR_TRACE`].
    pub kinds: u32,
    /// At most this many events per second on each CPU; the rest are lost, counted.
    pub events_per_second: u32,
}

/// One CPU's rate-limit state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorBudget {
    /// When the current one-second window began (`bpf_ktime_get_ns`).
    pub window_start: u64,
    /// Events written in it.
    pub used: u64,
    /// Events lost, ever: over the limit, or the ring buffer full.
    pub lost: u64,
}

/// [`MonitorEvent::kind`]: the frame was dropped (`reason` says why).
pub const EVENT_DROP: u8 = 1;
/// [`MonitorEvent::kind`]: a container sent the frame and the datapath accepted it.
pub const EVENT_FROM_CONTAINER: u8 = 2;
/// [`MonitorEvent::kind`]: the host's stack delivered the frame to a container.
pub const EVENT_TO_CONTAINER: u8 = 3;

/// A datapath event: what happened to which frame, where. Addresses are in network byte
/// order; IPv4 ones in the first four bytes. For ARP, the sender and target addresses and
/// the operation in `dst_port`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorEvent {
    /// `bpf_ktime_get_ns` (since boot).
    pub time_ns: u64,
    /// The interface the frame entered (its ifindex in the daemon's namespace).
    pub ifindex: u32,
    /// The frame's length.
    pub len: u32,
    /// [`EVENT_DROP`], [`EVENT_FROM_CONTAINER`] or [`EVENT_TO_CONTAINER`].
    pub kind: u8,
    /// For a drop, the [`DropReason`]; else 0.
    pub reason: u8,
    /// The IP protocol (TCP 6, UDP 17, ICMP 1, ICMPv6 58…); 0 for what is not IP.
    pub protocol: u8,
    pub _pad: u8,
    /// The EtherType (host byte order).
    pub ether_type: u16,
    /// TCP, UDP or SCTP ports; ICMP's type and code (host byte order).
    pub src_port: u16,
    pub dst_port: u16,
    pub _pad2: [u8; 6],
    pub src: [u8; 16],
    pub dst: [u8; 16],
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
    /// Neighbour discovery that is not well-formed (hop limit other than 255, code, length,
    /// options), or a link-layer address option other than the sender's own MAC.
    MalformedNd = 15,
    /// Neighbour solicitation for an address that no endpoint of the network owns.
    UnknownNdTarget = 16,
    /// A router advertisement or redirect from a container: only the host routes.
    RogueRouter = 17,
    /// VXLAN to this host's port that is not well-formed (flags, truncated inner frame,
    /// fragmented outer packet).
    MalformedVxlan = 18,
    /// VXLAN from an address that is not a live host of the cluster.
    UnknownVtep = 19,
    /// VXLAN with a VNI of no overlay network this host has.
    UnknownVni = 20,
    /// A decapsulated frame whose inner source (address or MAC) is not an endpoint registered
    /// on the host it came from.
    SpoofedInnerSource = 21,
    /// A decapsulated frame for an address no endpoint of this host owns on that network, or
    /// of a kind that never crosses hosts (ARP: every host answers it locally).
    UnknownInnerDestination = 22,
    /// A frame for a remote endpoint while this host has no tunnel (no cluster).
    NoTunnel = 23,
    /// One copy of a broadcast or multicast (head-end replication) that another host of the
    /// network did not get: no route to its underlay address, or its neighbour entry was not
    /// resolved while another copy of the same frame already waited for resolution. Counted
    /// per copy; the frame itself reached the other members.
    UnreachableVtep = 24,
    /// A frame of an encrypted overlay network (`--opt encrypted`) for another host, which
    /// this host cannot encrypt (no encryption worker, or no key for that host): it never
    /// leaves in clear (fail closed).
    Unencrypted = 25,
    /// VXLAN in clear with the VNI of an encrypted overlay network: only encrypted traffic
    /// may carry it.
    CleartextVxlan = 26,
    /// Traffic between containers of a macvlan or ipvlan network in `private` mode.
    LanPrivate = 27,
    /// Broadcast, multicast or ARP from a container of an ipvlan network in l3 mode.
    LanL3Group = 28,
}

impl DropReason {
    /// Every reason, in index order (sizes `DROP_STATS`, names the counters in `xnet stats`).
    pub const ALL: [DropReason; 29] = [
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
        DropReason::MalformedNd,
        DropReason::UnknownNdTarget,
        DropReason::RogueRouter,
        DropReason::MalformedVxlan,
        DropReason::UnknownVtep,
        DropReason::UnknownVni,
        DropReason::SpoofedInnerSource,
        DropReason::UnknownInnerDestination,
        DropReason::NoTunnel,
        DropReason::UnreachableVtep,
        DropReason::Unencrypted,
        DropReason::CleartextVxlan,
        DropReason::LanPrivate,
        DropReason::LanL3Group,
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
            DropReason::MalformedNd => "malformed-nd",
            DropReason::UnknownNdTarget => "unknown-nd-target",
            DropReason::RogueRouter => "rogue-router",
            DropReason::MalformedVxlan => "malformed-vxlan",
            DropReason::UnknownVtep => "unknown-vtep",
            DropReason::UnknownVni => "unknown-vni",
            DropReason::SpoofedInnerSource => "spoofed-inner-source",
            DropReason::UnknownInnerDestination => "unknown-inner-destination",
            DropReason::NoTunnel => "no-tunnel",
            DropReason::UnreachableVtep => "unreachable-vtep",
            DropReason::Unencrypted => "unencrypted",
            DropReason::CleartextVxlan => "cleartext-vxlan",
            DropReason::LanPrivate => "lan-private",
            DropReason::LanL3Group => "l3-group",
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
    unsafe impl aya::Pod for super::Neighbor6Key {}
    unsafe impl aya::Pod for super::FlowKeyV4 {}
    unsafe impl aya::Pod for super::FlowKeyV6 {}
    unsafe impl aya::Pod for super::NatFlow {}
    unsafe impl aya::Pod for super::NatReplyV4 {}
    unsafe impl aya::Pod for super::NatReplyV6 {}
    unsafe impl aya::Pod for super::PublishKeyV4 {}
    unsafe impl aya::Pod for super::PublishKeyV6 {}
    unsafe impl aya::Pod for super::PublishedV4 {}
    unsafe impl aya::Pod for super::PublishedV6 {}
    unsafe impl aya::Pod for super::PublishedFlowV4 {}
    unsafe impl aya::Pod for super::PublishedFlowV6 {}
    unsafe impl aya::Pod for super::SockAddrV4 {}
    unsafe impl aya::Pod for super::SockAddrV6 {}
    unsafe impl aya::Pod for super::SockRevKeyV4 {}
    unsafe impl aya::Pod for super::SockRevKeyV6 {}
    unsafe impl aya::Pod for super::Tunnel {}
    unsafe impl aya::Pod for super::Vtep {}
    unsafe impl aya::Pod for super::FloodVteps {}
    unsafe impl aya::Pod for super::LanNetwork {}
    unsafe impl aya::Pod for super::LanParentKey {}
    unsafe impl aya::Pod for super::LanParent {}
    unsafe impl aya::Pod for super::LanMacKey {}
    unsafe impl aya::Pod for super::MonitorConfig {}
    unsafe impl aya::Pod for super::MonitorBudget {}
    unsafe impl aya::Pod for super::MonitorEvent {}
}

// A field added without its padding would change these sizes: fail the build, not the verifier.
const _: () = assert!(core::mem::size_of::<Endpoint>() == 64);
const _: () = assert!(core::mem::size_of::<MonitorConfig>() == 8);
const _: () = assert!(core::mem::size_of::<MonitorBudget>() == 24);
const _: () = assert!(core::mem::size_of::<MonitorEvent>() == 64);
const _: () = assert!(core::mem::size_of::<NeighborKey>() == 8);
const _: () = assert!(core::mem::size_of::<Neighbor6Key>() == 20);
const _: () = assert!(core::mem::size_of::<Neighbor>() == 24);
const _: () = assert!(core::mem::size_of::<Tunnel>() == 12);
const _: () = assert!(core::mem::size_of::<LanNetwork>() == 24);
const _: () = assert!(core::mem::size_of::<LanParentKey>() == 8);
const _: () = assert!(core::mem::size_of::<LanParent>() == 12);
const _: () = assert!(core::mem::size_of::<LanMacKey>() == 12);
const _: () = assert!(core::mem::size_of::<Vtep>() == 4);
const _: () = assert!(core::mem::size_of::<FloodVteps>() == 8 + 4 * MAX_FLOOD_VTEPS as usize);
const _: () = assert!(core::mem::size_of::<EndpointCounters>() == 40);
const _: () = assert!(core::mem::size_of::<Uplink>() == 24);
const _: () = assert!(core::mem::size_of::<FlowKeyV4>() == 16);
const _: () = assert!(core::mem::size_of::<FlowKeyV6>() == 40);
const _: () = assert!(core::mem::size_of::<NatFlow>() == 16);
const _: () = assert!(core::mem::size_of::<NatReplyV4>() == 24);
const _: () = assert!(core::mem::size_of::<NatReplyV6>() == 32);
const _: () = assert!(core::mem::size_of::<PublishKeyV4>() == 8);
const _: () = assert!(core::mem::size_of::<PublishKeyV6>() == 20);
const _: () = assert!(core::mem::size_of::<PublishedV4>() == 12);
const _: () = assert!(core::mem::size_of::<PublishedV6>() == 24);
const _: () = assert!(core::mem::size_of::<PublishedFlowV4>() == 24);
const _: () = assert!(core::mem::size_of::<PublishedFlowV6>() == 48);
const _: () = assert!(core::mem::size_of::<SockAddrV4>() == 8);
const _: () = assert!(core::mem::size_of::<SockAddrV6>() == 20);
const _: () = assert!(core::mem::size_of::<SockRevKeyV4>() == 16);
const _: () = assert!(core::mem::size_of::<SockRevKeyV6>() == 32);
