//! The maps, pinned by name so they outlive the daemon: the programs keep forwarding while xnetd
//! restarts, and the new xnetd adopts them. Keys and values come from `xnet-common`.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
};
use xnet_common::{DropReason, Endpoint, EndpointCounters, MAX_ENDPOINTS, Neighbor, NeighborKey};

#[map]
pub static ENDPOINTS: HashMap<u32, Endpoint> = HashMap::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static NEIGHBORS: HashMap<NeighborKey, Neighbor> = HashMap::pinned(MAX_ENDPOINTS, 0);

#[map]
pub static ENDPOINT_STATS: PerCpuHashMap<u32, EndpointCounters> =
    PerCpuHashMap::pinned(MAX_ENDPOINTS, 0);

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
