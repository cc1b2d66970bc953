//! The maps, pinned by name so they outlive the daemon: the programs keep forwarding while xnetd
//! restarts, and the new xnetd adopts them. Keys and values come from `xnet-common`.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
};
use xnet_common::{
    DropReason, Endpoint, EndpointCounters, FlowKeyV4, MAX_ENDPOINTS, MAX_NAT_FLOWS, MemberKey,
    NatFlow, NatReplyV4, Neighbor, NeighborKey, Uplink,
};

#[map]
pub static ENDPOINTS: HashMap<u32, Endpoint> = HashMap::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static NEIGHBORS: HashMap<NeighborKey, Neighbor> = HashMap::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static ENDPOINT_STATS: PerCpuArray<EndpointCounters> = PerCpuArray::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static DROP_STATS: PerCpuArray<u64> = PerCpuArray::pinned(DropReason::ALL.len() as u32, 0);

/// The endpoint behind host-side veth `ifindex`, copied out of the map.
#[inline(always)]
pub fn endpoint(ifindex: u32) -> Option<Endpoint> {
    // SAFETY: the daemon replaces entries whole and only while the endpoint's programs are
    // detached or its veth is being created, so no reader sees a half-written value.
    unsafe { ENDPOINTS.get(ifindex).copied() }
}

/// The owner of `ipv4` in network `network_id`.
#[inline(always)]
pub fn neighbor(network_id: u32, ipv4: [u8; 4]) -> Option<Neighbor> {
    // SAFETY: as for `endpoint`.
    unsafe { NEIGHBORS.get(NeighborKey { network_id, ipv4 }).copied() }
}

#[map]
pub static UPLINK: Array<Uplink> = Array::pinned(1, 0);

#[map]
pub static SUBNETS: LpmTrie<[u8; 4], u32> = LpmTrie::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static NAT_FLOWS: LruHashMap<FlowKeyV4, NatFlow> = LruHashMap::pinned(MAX_NAT_FLOWS, 0);

#[map]
pub static NAT_REPLIES: LruHashMap<FlowKeyV4, NatReplyV4> = LruHashMap::pinned(MAX_NAT_FLOWS, 0);

/// The uplink, if the daemon was given one.
#[inline(always)]
pub fn uplink() -> Option<Uplink> {
    UPLINK.get(0).copied().filter(|u| u.ifindex != 0)
}

/// Whether `ipv4` lies inside any xnet network.
#[inline(always)]
pub fn in_any_subnet(ipv4: [u8; 4]) -> bool {
    SUBNETS.get(Key::new(32, ipv4)).is_some()
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
