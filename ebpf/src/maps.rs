//! The maps, pinned by name so they outlive the daemon: the programs keep forwarding while xnetd
//! restarts, and the new xnetd adopts them. Keys and values come from `xnet-common`.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};
use xnet_common::{
    DropReason, Endpoint, EndpointCounters, FloodVteps, FlowKeyV4, FlowKeyV6, LanMacKey,
    LanNetwork, LanParent, LanParentKey, MAX_ENDPOINTS, MAX_NAT_FLOWS, MAX_NEIGHBORS,
    MAX_PUBLISHED, MAX_VTEPS, MONITOR_EVENTS_BYTES, MemberKey, MonitorBudget, MonitorConfig,
    NatFlow, NatReplyV4, NatReplyV6, Neighbor, Neighbor6Key, NeighborKey, PublishKeyV4,
    PublishKeyV6, PublishedFlowV4, PublishedFlowV6, PublishedV4, PublishedV6, SockAddrV4,
    SockAddrV6, SockRevKeyV4, SockRevKeyV6, Tunnel, Uplink, Vtep,
};

#[map]
pub static ENDPOINTS: HashMap<u32, Endpoint> = HashMap::pinned(MAX_ENDPOINTS, 0);

// The neighbor maps hold every endpoint of the cluster's overlay networks, not only this
// host's, so they are large; allocated per entry (BPF_F_NO_PREALLOC) rather than up front, so
// a daemon with a few endpoints does not pin tens of MB (tests run many daemons at once). Only
// the daemon writes them, so the per-update allocation never happens on a packet's path.
#[map]
pub static NEIGHBORS: HashMap<NeighborKey, Neighbor> =
    HashMap::pinned(MAX_NEIGHBORS, BPF_F_NO_PREALLOC);

#[map]
pub static NEIGHBORS6: HashMap<Neighbor6Key, Neighbor> =
    HashMap::pinned(2 * MAX_NEIGHBORS, BPF_F_NO_PREALLOC);

#[map]
pub static ENDPOINT_STATS: PerCpuArray<EndpointCounters> = PerCpuArray::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static DROP_STATS: PerCpuArray<u64> = PerCpuArray::pinned(DropReason::ALL.len() as u32, 0);

#[map]
pub static MONITOR_EVENTS: RingBuf = RingBuf::pinned(MONITOR_EVENTS_BYTES, 0);

#[map]
pub static MONITOR: Array<MonitorConfig> = Array::pinned(1, 0);

#[map]
pub static MONITOR_BUDGET: PerCpuArray<MonitorBudget> = PerCpuArray::pinned(1, 0);

/// The endpoint behind host-side veth `ifindex`: a reference into the map, not a copy (the
/// entry is 64 bytes, and the stack has 512 for everything).
#[inline(always)]
pub fn endpoint(ifindex: u32) -> Option<&'static Endpoint> {
    // SAFETY: the daemon replaces entries whole (a hash map update swaps in a new element; the
    // old one stays readable until this program run ends, under RCU), so no reader sees a
    // half-written value, and the reference does not outlive the run.
    unsafe { ENDPOINTS.get(ifindex) }
}

/// The owner of `ipv4` in network `network_id`.
#[inline(always)]
pub fn neighbor(network_id: u32, ipv4: [u8; 4]) -> Option<Neighbor> {
    // SAFETY: as for `endpoint`.
    unsafe { NEIGHBORS.get(NeighborKey { network_id, ipv4 }).copied() }
}

/// The owner of `ipv6` (an endpoint's address or link-local address) in network `network_id`.
#[inline(always)]
pub fn neighbor6(network_id: u32, ipv6: [u8; 16]) -> Option<Neighbor> {
    // SAFETY: as for `endpoint`.
    unsafe { NEIGHBORS6.get(Neighbor6Key { network_id, ipv6 }).copied() }
}

#[map]
pub static UPLINK: Array<Uplink> = Array::pinned(1, 0);

#[map]
pub static SUBNETS: LpmTrie<[u8; 4], u32> = LpmTrie::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static SUBNETS6: LpmTrie<[u8; 16], u32> = LpmTrie::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static NAT_FLOWS: LruHashMap<FlowKeyV4, NatFlow> = LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static NAT_REPLIES: LruHashMap<FlowKeyV4, NatReplyV4> = LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static NAT6_FLOWS: LruHashMap<FlowKeyV6, NatFlow> = LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static NAT6_REPLIES: LruHashMap<FlowKeyV6, NatReplyV6> = LruHashMap::pinned(MAX_NAT_FLOWS, 0);

/// The uplink, if the daemon was given one: read in place, not copied (as `endpoint`), so its
/// fields do not take registers and stack of the entry points that use it.
#[inline(always)]
pub fn uplink() -> Option<&'static Uplink> {
    UPLINK.get(0).filter(|u| u.ifindex != 0)
}

/// Whether `ipv4` lies inside any xnet network.
#[inline(always)]
pub fn in_any_subnet(ipv4: [u8; 4]) -> bool {
    SUBNETS.get(Key::new(32, ipv4)).is_some()
}

/// Whether `ipv6` lies inside any xnet network.
#[inline(always)]
pub fn in_any_subnet6(ipv6: [u8; 16]) -> bool {
    SUBNETS6.get(Key::new(128, ipv6)).is_some()
}

#[map]
pub static MEMBERS: HashMap<MemberKey, u32> = HashMap::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static MEMBER_COUNT: HashMap<u32, u32> = HashMap::pinned(MAX_ENDPOINTS, 0);

/// How many slots of `MEMBERS` network `network_id` uses.
#[inline(always)]
pub fn member_count(network_id: u32) -> u32 {
    // SAFETY: as for `endpoint`.
    unsafe { MEMBER_COUNT.get(network_id).copied() }.unwrap_or(0)
}

/// The host-side ifindex in `slot` of network `network_id`.
#[inline(always)]
pub fn member(network_id: u32, slot: u32) -> Option<u32> {
    // SAFETY: as for `endpoint`.
    unsafe { MEMBERS.get(MemberKey { network_id, slot }).copied() }
}

#[map]
pub static PUBLISHED: LpmTrie<PublishKeyV4, PublishedV4> = LpmTrie::pinned(MAX_PUBLISHED, 0);

#[map]
pub static PUBLISHED6: LpmTrie<PublishKeyV6, PublishedV6> = LpmTrie::pinned(MAX_PUBLISHED, 0);

#[map]
pub static PUBLISH_FLOWS: LruHashMap<FlowKeyV4, PublishedFlowV4> =
    LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static PUBLISH6_FLOWS: LruHashMap<FlowKeyV6, PublishedFlowV6> =
    LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static HOST_NETNS: Array<u64> = Array::pinned(1, 0);

#[map]
pub static SOCK_REVNAT: LruHashMap<SockRevKeyV4, SockAddrV4> = LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static SOCK6_REVNAT: LruHashMap<SockRevKeyV6, SockAddrV6> =
    LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static TUNNEL: Array<Tunnel> = Array::pinned(1, 0);

#[map]
pub static VNIS: HashMap<u32, u32> = HashMap::pinned(MAX_ENDPOINTS, 0);

// Few entries (encrypted overlay networks), read for every frame of an overlay: allocated
// per entry.
#[map]
pub static ENCRYPTED_VNIS: HashMap<u32, u8> = HashMap::pinned(MAX_ENDPOINTS, BPF_F_NO_PREALLOC);

#[map]
pub static ENCRYPTION_PEERS: HashMap<[u8; 4], u32> = HashMap::pinned(MAX_VTEPS, 0);

#[map]
pub static VTEPS: HashMap<[u8; 4], Vtep> = HashMap::pinned(MAX_VTEPS, 0);

// One entry per overlay network with other hosts, each up to 260 bytes: allocated per entry
// (only the daemon writes it), not for every network a daemon could have.
#[map]
pub static FLOOD_VTEPS: HashMap<u32, FloodVteps> =
    HashMap::pinned(MAX_ENDPOINTS, BPF_F_NO_PREALLOC);

/// This host's VXLAN endpoint, if it is a member of a cluster.
#[inline(always)]
pub fn tunnel() -> Option<Tunnel> {
    TUNNEL.get(0).copied().filter(|t| t.ifindex != 0)
}

/// The overlay network VXLAN network identifier `vni` stands for on this host.
#[inline(always)]
pub fn network_of_vni(vni: u32) -> Option<u32> {
    // SAFETY: as for `endpoint`.
    unsafe { VNIS.get(vni).copied() }
}

/// Whether `vni` is an encrypted overlay network's, whose frames never cross hosts in clear.
#[inline(always)]
pub fn is_encrypted(vni: u32) -> bool {
    // SAFETY: as for `endpoint`.
    unsafe { ENCRYPTED_VNIS.get(vni) }.is_some()
}

/// The encryption worker's device, for the host at underlay address `vtep`, if this host can
/// encrypt for it.
#[inline(always)]
pub fn encryption_device(vtep: [u8; 4]) -> Option<u32> {
    // SAFETY: as for `endpoint`.
    unsafe { ENCRYPTION_PEERS.get(vtep).copied() }
}

/// Whether `address` is the underlay address of a live host of the cluster.
#[inline(always)]
pub fn is_vtep(address: [u8; 4]) -> bool {
    // SAFETY: as for `endpoint`.
    unsafe { VTEPS.get(address) }.is_some()
}

/// The other hosts network `network_id`'s broadcasts are replicated to, if it is an overlay
/// network that has any: a reference into the map (the value is large).
#[inline(always)]
pub fn flood_vteps(network_id: u32) -> Option<&'static FloodVteps> {
    // SAFETY: as for `endpoint`.
    unsafe { FLOOD_VTEPS.get(network_id) }
}

// LAN networks (macvlan, ipvlan): few networks, few parents; allocated per entry.
#[map]
pub static LAN_NETWORKS: HashMap<u32, LanNetwork> =
    HashMap::pinned(MAX_ENDPOINTS, BPF_F_NO_PREALLOC);

#[map]
pub static LAN_PARENTS: HashMap<LanParentKey, LanParent> =
    HashMap::pinned(MAX_ENDPOINTS, BPF_F_NO_PREALLOC);

#[map]
pub static LAN_MACS: HashMap<LanMacKey, Neighbor> = HashMap::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static LAN_SUBNETS: LpmTrie<[u8; 4], u32> = LpmTrie::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static LAN_SUBNETS6: LpmTrie<[u8; 16], u32> = LpmTrie::pinned(MAX_ENDPOINTS, 0);

/// How the LAN network `network_id` (macvlan or ipvlan) meets its LAN: by reference.
#[inline(always)]
pub fn lan_network(network_id: u32) -> Option<&'static LanNetwork> {
    // SAFETY: as for `endpoint`.
    unsafe { LAN_NETWORKS.get(network_id) }
}

/// The layer-2 LAN network on parent `ifindex`, VLAN `vlan` (0: untagged), if any.
#[inline(always)]
pub fn lan_network_on(ifindex: u32, vlan: u16) -> Option<LanParent> {
    let key = LanParentKey {
        ifindex,
        vlan,
        _pad: [0; 2],
    };
    // SAFETY: as for `endpoint`.
    unsafe { LAN_PARENTS.get(key).copied() }
}

/// The container of macvlan network `network_id` whose MAC is `mac`.
#[inline(always)]
pub fn lan_mac(network_id: u32, mac: [u8; 6]) -> Option<Neighbor> {
    let key = LanMacKey {
        network_id,
        mac,
        _pad: [0; 2],
    };
    // SAFETY: as for `endpoint`.
    unsafe { LAN_MACS.get(key).copied() }
}

/// The ipvlan l3 network whose subnet holds `ipv4`.
#[inline(always)]
pub fn l3_network_of(ipv4: [u8; 4]) -> Option<u32> {
    LAN_SUBNETS.get(Key::new(32, ipv4)).copied()
}

/// The ipvlan l3 network whose subnet holds `ipv6`.
#[inline(always)]
pub fn l3_network_of6(ipv6: [u8; 16]) -> Option<u32> {
    LAN_SUBNETS6.get(Key::new(128, ipv6)).copied()
}
