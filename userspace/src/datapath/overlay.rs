//! The overlay's side of the maps: this host's tunnel end (`TUNNEL`), the VNIs of the overlay
//! networks it has (`VNIS`), the live hosts of the cluster (`VTEPS`), the endpoints of other
//! hosts, as remote entries (ifindex 0, with their host's VTEP and their network's VNI) in
//! `NEIGHBORS` and `NEIGHBORS6`, beside this host's own endpoints, and per overlay network the
//! other hosts with endpoints on it (`FLOOD_VTEPS`). The datapath encapsulates frames to remote
//! entries, replicates broadcasts and multicasts to each of those hosts, and accepts VXLAN only
//! from a VTEP, with a VNI, and for inner sources these maps hold.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, Ipv6Addr},
};

use anyhow::{Context as _, ensure};
use aya::{
    Pod,
    maps::{HashMap, MapData},
};
use xnet_common::{
    FloodVteps, MAX_FLOOD_VTEPS, Neighbor, Neighbor6Key, NeighborKey, Tunnel, Vtep, link_local_of,
};

use super::{
    maps::{Datapath, remove_if},
    object::ignore_missing,
};

/// VNIs are 24 bits on the wire.
const MAX_VNI: u32 = (1 << 24) - 1;

/// An endpoint on another host of the cluster, as the datapath needs it: which network and
/// VNI, which host (its underlay address), its addresses and MAC.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub network_id: u32,
    pub vni: u32,
    pub vtep: Ipv4Addr,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
}

/// Where an overlay network's broadcasts and multicasts are replicated to: the other hosts with
/// endpoints on it (their underlay addresses), and the network's VNI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodSet {
    pub vni: u32,
    pub vteps: BTreeSet<Ipv4Addr>,
}

impl RemoteEndpoint {
    fn neighbor(&self) -> Neighbor {
        Neighbor {
            ifindex: 0,
            mac: self.mac,
            _pad: [0; 2],
            slot: 0,
            vtep: self.vtep.octets(),
            vni: self.vni,
        }
    }

    fn key(&self) -> NeighborKey {
        NeighborKey {
            network_id: self.network_id,
            ipv4: self.ipv4.octets(),
        }
    }

    /// Its `NEIGHBORS6` keys: its IPv6 address, if it has one, and its link-local address
    /// (the source of its neighbour discovery, which the receiving host checks like any other
    /// inner source).
    fn keys6(&self) -> Vec<Neighbor6Key> {
        self.ipv6
            .map(|ipv6| {
                [ipv6.octets(), link_local_of(self.mac)]
                    .map(|ipv6| Neighbor6Key {
                        network_id: self.network_id,
                        ipv6,
                    })
                    .to_vec()
            })
            .unwrap_or_default()
    }

    /// Whether `entry` is this endpoint's remote entry (not a local endpoint's, nor one of
    /// another host or MAC that took the address since).
    fn is_entry(&self, entry: &Neighbor) -> bool {
        entry.is_remote() && entry.vtep == self.vtep.octets() && entry.mac == self.mac
    }
}

impl Datapath {
    /// TUNNEL: Some = this host's VTEP (underlay ifindex, advertise address, UDP port host
    /// order); None clears it (nothing is encapsulated, remote peers are dropped as
    /// `no-tunnel`, VXLAN passes to the host untouched).
    ///
    /// VXLAN is decapsulated by `uplink_ingress`, so it is accepted only on the uplink
    /// (`Datapath::set_uplink`): the underlay device should be the uplink.
    pub fn set_tunnel(&mut self, tunnel: Option<(u32, Ipv4Addr, u16)>) -> anyhow::Result<()> {
        let value = tunnel.map_or_else(Tunnel::default, |(ifindex, local, port)| Tunnel {
            ifindex,
            local: local.octets(),
            port: port.to_be_bytes(),
            _pad: [0; 2],
        });
        self.tunnel.set(0, value, 0).context("writing TUNNEL")
    }

    /// Makes VXLAN with `vni` (24 bits) the overlay network `network_id` of this host;
    /// `encrypted`: its frames never cross hosts in clear (`ENCRYPTED_VNIS`).
    pub fn add_vni(&mut self, vni: u32, network_id: u32, encrypted: bool) -> anyhow::Result<()> {
        ensure!(vni <= MAX_VNI, "VNI {vni} does not fit in 24 bits");
        // Encrypted first: the VNI must never be known without its protection.
        if encrypted {
            self.encrypted_vnis
                .insert(vni, 1, 0)
                .context("writing ENCRYPTED_VNIS")?;
        } else {
            ignore_missing(self.encrypted_vnis.remove(&vni))
                .context("removing from ENCRYPTED_VNIS")?;
        }
        self.vnis.insert(vni, network_id, 0).context("writing VNIS")
    }

    /// Forgets `vni` (a VNI not registered is fine).
    pub fn remove_vni(&mut self, vni: u32) -> anyhow::Result<()> {
        ignore_missing(self.vnis.remove(&vni)).context("removing from VNIS")?;
        ignore_missing(self.encrypted_vnis.remove(&vni)).context("removing from ENCRYPTED_VNIS")
    }

    /// Every encrypted VNI registered, ordered.
    pub fn encrypted_vnis(&self) -> Vec<u32> {
        let mut vnis: Vec<_> = self.encrypted_vnis.keys().filter_map(Result::ok).collect();
        vnis.sort_unstable();
        vnis
    }

    /// Every (VNI, network id) registered, ordered by VNI.
    pub fn vnis(&self) -> Vec<(u32, u32)> {
        let mut vnis: Vec<_> = self.vnis.iter().filter_map(Result::ok).collect();
        vnis.sort_unstable();
        vnis
    }

    /// Accepts VXLAN from `address`, the underlay address of a live host of the cluster.
    pub fn add_vtep(&mut self, address: Ipv4Addr) -> anyhow::Result<()> {
        self.vteps
            .insert(address.octets(), Vtep { live: 1 }, 0)
            .context("writing VTEPS")
    }

    /// Refuses VXLAN from `address` from now on (an address not registered is fine).
    pub fn remove_vtep(&mut self, address: Ipv4Addr) -> anyhow::Result<()> {
        ignore_missing(self.vteps.remove(&address.octets())).context("removing from VTEPS")
    }

    /// Every VTEP registered, ordered.
    pub fn vteps(&self) -> Vec<Ipv4Addr> {
        let mut vteps: Vec<_> = self
            .vteps
            .keys()
            .filter_map(Result::ok)
            .map(Ipv4Addr::from)
            .collect();
        vteps.sort_unstable();
        vteps
    }

    /// Makes `flood` the hosts that broadcasts and multicasts of network `network_id` are
    /// replicated to (at most [`MAX_FLOOD_VTEPS`]); with none, the entry goes and they stay on
    /// this host. One update replaces the whole list.
    pub fn set_flood(&mut self, network_id: u32, flood: &FloodSet) -> anyhow::Result<()> {
        if flood.vteps.is_empty() {
            return self.remove_flood(network_id);
        }
        ensure!(
            flood.vni <= MAX_VNI,
            "VNI {} does not fit in 24 bits",
            flood.vni
        );
        ensure!(
            flood.vteps.len() <= MAX_FLOOD_VTEPS as usize,
            "{} hosts to replicate broadcasts to; the datapath takes {MAX_FLOOD_VTEPS}",
            flood.vteps.len()
        );
        let mut value = FloodVteps {
            vni: flood.vni,
            count: flood.vteps.len() as u32,
            vteps: [[0; 4]; MAX_FLOOD_VTEPS as usize],
        };
        for (slot, vtep) in value.vteps.iter_mut().zip(&flood.vteps) {
            *slot = vtep.octets();
        }
        self.flood_vteps
            .insert(network_id, value, 0)
            .context("writing FLOOD_VTEPS")
    }

    /// Keeps broadcasts of network `network_id` on this host (an entry not there is fine).
    pub fn remove_flood(&mut self, network_id: u32) -> anyhow::Result<()> {
        ignore_missing(self.flood_vteps.remove(&network_id)).context("removing from FLOOD_VTEPS")
    }

    /// Every network's flood set in the map, by network id (to compare with what is wanted,
    /// and to reconcile after a restart).
    pub fn flood_sets(&self) -> BTreeMap<u32, FloodSet> {
        self.flood_vteps
            .iter()
            .filter_map(Result::ok)
            .map(|(network_id, value)| {
                let count = value.count.min(MAX_FLOOD_VTEPS) as usize;
                let vteps = value.vteps[..count].iter().copied().map(Ipv4Addr::from);
                let set = FloodSet {
                    vni: value.vni,
                    vteps: vteps.collect(),
                };
                (network_id, set)
            })
            .collect()
    }

    /// NEIGHBORS (ipv4) and NEIGHBORS6 (ipv6 and link_local_of(mac)) entries with ifindex 0,
    /// vtep, vni. Never overwrites a LOCAL endpoint's entry (ifindex != 0): returns Ok and
    /// leaves it.
    pub fn add_remote(&mut self, remote: &RemoteEndpoint) -> anyhow::Result<()> {
        ensure!(
            remote.vni <= MAX_VNI,
            "VNI {} does not fit in 24 bits",
            remote.vni
        );
        let neighbor = remote.neighbor();
        insert_unless_local(&mut self.neighbors, &remote.key(), neighbor)
            .context("writing NEIGHBORS")?;
        for key in remote.keys6() {
            insert_unless_local(&mut self.neighbors6, &key, neighbor)
                .context("writing NEIGHBORS6")?;
        }
        Ok(())
    }

    /// Removes those entries only while they are still remote entries for this vtep and mac
    /// (a local endpoint that took the address keeps its entry). The link-local entry goes
    /// even when `remote.ipv6` is None (it is derived from the MAC), so an entry that
    /// [`Datapath::remote_endpoints`] could not pair with an address is removed too.
    pub fn remove_remote(&mut self, remote: &RemoteEndpoint) -> anyhow::Result<()> {
        // NEIGHBORS6 first: an interrupted removal leaves the IPv4 entry, from which
        // `remote_endpoints` rebuilds the whole endpoint.
        let link_local = Neighbor6Key {
            network_id: remote.network_id,
            ipv6: link_local_of(remote.mac),
        };
        for key in remote.keys6().iter().chain([&link_local]) {
            remove_if(&mut self.neighbors6, key, |n| remote.is_entry(n))
                .context("removing from NEIGHBORS6")?;
        }
        remove_if(&mut self.neighbors, &remote.key(), |n| remote.is_entry(n))
            .context("removing from NEIGHBORS")
    }

    /// Every remote entry in the maps, rebuilt as RemoteEndpoint (ipv6 None when only
    /// NEIGHBORS has it; NEIGHBORS6 entries are paired up by network, VNI, VTEP and MAC), for
    /// reconciling after a restart. Entries of NEIGHBORS6 with no partner in NEIGHBORS (its
    /// IPv4 address was a local endpoint's when they were added) come back with ipv4
    /// 0.0.0.0, so that they can be removed like any other. Ordered.
    pub fn remote_endpoints(&self) -> Vec<RemoteEndpoint> {
        // Entries of one endpoint share all of these.
        type Identity = (u32, u32, [u8; 4], [u8; 6]);
        let identity = |network_id, n: &Neighbor| (network_id, n.vni, n.vtep, n.mac);
        let endpoint = |network_id, n: &Neighbor, ipv4, ipv6| RemoteEndpoint {
            network_id,
            vni: n.vni,
            vtep: n.vtep.into(),
            ipv4,
            ipv6,
            mac: n.mac,
        };
        let mut by_identity: BTreeMap<Identity, Vec<RemoteEndpoint>> = BTreeMap::new();
        for (key, n) in remote_entries(&self.neighbors) {
            let ipv4 = Ipv4Addr::from(key.ipv4);
            by_identity
                .entry(identity(key.network_id, &n))
                .or_default()
                .push(endpoint(key.network_id, &n, ipv4, None));
        }
        for (key, n) in remote_entries(&self.neighbors6) {
            let endpoints = by_identity
                .entry(identity(key.network_id, &n))
                .or_insert_with(|| vec![endpoint(key.network_id, &n, Ipv4Addr::UNSPECIFIED, None)]);
            if key.ipv6 == link_local_of(n.mac) {
                // Implied by the MAC: `add_remote` and `remove_remote` derive it.
                continue;
            }
            let ipv6 = Some(Ipv6Addr::from(key.ipv6));
            match endpoints.iter_mut().find(|e| e.ipv6.is_none()) {
                Some(paired) => paired.ipv6 = ipv6,
                None => endpoints.push(endpoint(key.network_id, &n, Ipv4Addr::UNSPECIFIED, ipv6)),
            }
        }
        let mut remotes: Vec<_> = by_identity.into_values().flatten().collect();
        remotes.sort_unstable();
        remotes
    }
}

/// Inserts `key -> neighbor` unless `key` belongs to an endpoint of this host.
fn insert_unless_local<K: Pod>(
    map: &mut HashMap<MapData, K, Neighbor>,
    key: &K,
    neighbor: Neighbor,
) -> Result<(), aya::maps::MapError> {
    if map.get(key, 0).is_ok_and(|n| !n.is_remote()) {
        return Ok(());
    }
    map.insert(key, neighbor, 0)
}

/// The remote entries of a neighbor map.
fn remote_entries<K: Pod>(
    map: &HashMap<MapData, K, Neighbor>,
) -> impl Iterator<Item = (K, Neighbor)> + '_ {
    map.iter()
        .filter_map(Result::ok)
        .filter(|(_, n)| n.is_remote())
}
