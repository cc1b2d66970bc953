//! The daemon's handle on the datapath ([`Datapath`]) and its typed map writes for
//! endpoints, neighbors, subnets, member lists and counters.

use std::{
    collections::HashSet,
    fs,
    hash::Hash,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use aya::{
    Ebpf, Pod,
    maps::{
        Array, HashMap, MapData, MapError, PerCpuArray, PerCpuValues, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{
        LinkOrder, TcAttachType,
        links::FdLink,
        tc::{SchedClassifierLink, TcAttachOptions},
    },
    util::nr_cpus,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use xnet_common::{
    DropReason, ENDPOINT_IPV6, ENDPOINT_LAN, Endpoint, EndpointCounters, FloodVteps, LanMacKey,
    LanNetwork, LanParent, LanParentKey, MemberKey, MonitorBudget, MonitorConfig, Neighbor,
    Neighbor6Key, NeighborKey, PROG_ENDPOINT_EGRESS, PROG_ENDPOINT_INGRESS,
    PROG_LAN_ENDPOINT_INGRESS, PublishKeyV4, PublishKeyV6, PublishedV4, PublishedV6, Tunnel,
    Uplink, Vtep, link_local_of,
};

use super::object::{adopt_pinned, classifier, ignore_missing, remove_file_if_exists, repin};

/// Everything the datapath needs to serve one container endpoint.
pub struct EndpointEntry {
    pub ifindex: u32,
    pub ifname: String,
    pub endpoint: Endpoint,
}

pub struct Datapath {
    /// Holds the loaded programs (for new attaches) and nothing else; maps are taken out.
    pub(super) ebpf: Ebpf,
    pub(super) endpoints: HashMap<MapData, u32, Endpoint>,
    pub(super) neighbors: HashMap<MapData, NeighborKey, Neighbor>,
    pub(super) neighbors6: HashMap<MapData, Neighbor6Key, Neighbor>,
    pub(super) endpoint_stats: PerCpuArray<MapData, EndpointCounters>,
    pub(super) drop_stats: PerCpuArray<MapData, u64>,
    pub(super) uplink: Array<MapData, Uplink>,
    pub(super) subnets: LpmTrie<MapData, [u8; 4], u32>,
    pub(super) published: LpmTrie<MapData, PublishKeyV4, PublishedV4>,
    pub(super) published6: LpmTrie<MapData, PublishKeyV6, PublishedV6>,
    pub(super) host_netns: Array<MapData, u64>,
    pub(super) subnets6: LpmTrie<MapData, [u8; 16], u32>,
    pub(super) members: HashMap<MapData, MemberKey, u32>,
    pub(super) member_count: HashMap<MapData, u32, u32>,
    pub(super) tunnel: Array<MapData, Tunnel>,
    pub(super) vnis: HashMap<MapData, u32, u32>,
    pub(super) encrypted_vnis: HashMap<MapData, u32, u8>,
    pub(super) encryption_peers: HashMap<MapData, [u8; 4], u32>,
    pub(super) vteps: HashMap<MapData, [u8; 4], Vtep>,
    pub(super) flood_vteps: HashMap<MapData, u32, FloodVteps>,
    pub(super) lan_networks: HashMap<MapData, u32, LanNetwork>,
    pub(super) lan_parents: HashMap<MapData, LanParentKey, LanParent>,
    pub(super) lan_macs: HashMap<MapData, LanMacKey, Neighbor>,
    pub(super) lan_subnets: LpmTrie<MapData, [u8; 4], u32>,
    pub(super) lan_subnets6: LpmTrie<MapData, [u8; 16], u32>,
    pub(super) links_dir: PathBuf,
    pub(super) monitor: Array<MapData, MonitorConfig>,
    /// Taken by the daemon's event reader (`take_monitor_reader`).
    pub(super) monitor_reader: Option<MonitorReader>,
    /// Where the maps are pinned, by name (`fill`).
    pub(super) maps_dir: PathBuf,
}

/// The ring of events and the programs' loss counts.
pub struct MonitorReader {
    pub events: RingBuf<MapData>,
    pub losses: MonitorLosses,
}

/// `MONITOR_BUDGET`, read for its loss counts.
pub struct MonitorLosses(pub(super) PerCpuArray<MapData, MonitorBudget>);

impl MonitorLosses {
    /// Events the programs could not write, ever (over the rate limit, or the ring full),
    /// summed over CPUs.
    pub fn lost(&self) -> u64 {
        self.0
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().map(|b| b.lost).sum())
            .unwrap_or(0)
    }
}

impl Datapath {
    /// Publishes an endpoint in the maps, then attaches the programs to its host-side veth.
    /// Map entries go first: a program that runs before them would drop (fail closed), never
    /// misforward.
    pub fn add_endpoint(&mut self, entry: &EndpointEntry) -> anyhow::Result<()> {
        let ep = entry.endpoint;
        self.endpoints
            .insert(entry.ifindex, ep, 0)
            .context("writing ENDPOINTS")?;
        let neighbor = Neighbor {
            ifindex: entry.ifindex,
            mac: ep.mac,
            _pad: [0; 2],
            slot: ep.slot,
            vtep: [0; 4],
            vni: 0,
        };
        let (key, keys6) = neighbor_keys(&ep);
        self.neighbors
            .insert(key, neighbor, 0)
            .context("writing NEIGHBORS")?;
        for key in keys6 {
            self.neighbors6
                .insert(key, neighbor, 0)
                .context("writing NEIGHBORS6")?;
        }
        for (program, hook) in hooks(ep.flags) {
            let pin = self.link_pin(entry.ifindex, hook);
            self.attach(program, hook, &entry.ifname, &pin)?;
        }
        Ok(())
    }

    /// Registers a network's subnet (`SUBNETS` or `SUBNETS6`): addresses inside it are never
    /// egress.
    pub fn add_subnet(&mut self, subnet: IpNet, network_id: u32) -> anyhow::Result<()> {
        self.update_subnet(subnet, Some(network_id))
    }

    pub fn remove_subnet(&mut self, subnet: IpNet) -> anyhow::Result<()> {
        self.update_subnet(subnet, None)
    }

    /// Writes `subnet -> network_id` into the trie of its family, or removes it (`None`).
    fn update_subnet(&mut self, subnet: IpNet, network_id: Option<u32>) -> anyhow::Result<()> {
        match subnet {
            IpNet::V4(s) => update_trie(
                &mut self.subnets,
                s.network().octets(),
                s.prefix_len(),
                network_id,
            )
            .context("updating SUBNETS"),
            IpNet::V6(s) => update_trie(
                &mut self.subnets6,
                s.network().octets(),
                s.prefix_len(),
                network_id,
            )
            .context("updating SUBNETS6"),
        }
    }

    /// Sets the members of network `network_id`, the fan-out list of its broadcasts. Slots are
    /// written before the count grows and dropped after it shrinks, so a reader never sees a
    /// slot past the count that is not a member.
    pub fn set_members(&mut self, network_id: u32, members: &[u32]) -> anyhow::Result<()> {
        let old = self.member_count.get(&network_id, 0).unwrap_or(0);
        let new = u32::try_from(members.len())?;
        for (slot, ifindex) in (0..).zip(members) {
            self.members
                .insert(MemberKey { network_id, slot }, ifindex, 0)
                .context("writing MEMBERS")?;
        }
        if new == 0 {
            ignore_missing(self.member_count.remove(&network_id))
                .context("removing from MEMBER_COUNT")?;
        } else {
            self.member_count
                .insert(network_id, new, 0)
                .context("writing MEMBER_COUNT")?;
        }
        for slot in new..old {
            ignore_missing(self.members.remove(&MemberKey { network_id, slot }))
                .context("removing from MEMBERS")?;
        }
        Ok(())
    }

    /// Networks that have members in the maps (to reconcile with the state).
    pub fn networks_with_members(&self) -> Vec<u32> {
        self.member_count.keys().filter_map(Result::ok).collect()
    }

    /// Every registered subnet, both families (to reconcile with the state).
    pub fn subnets(&self) -> Vec<IpNet> {
        let v4 = trie_keys(&self.subnets)
            .filter_map(|(data, prefix)| Ipv4Net::new(data.into(), prefix).ok())
            .map(IpNet::V4);
        let v6 = trie_keys(&self.subnets6)
            .filter_map(|(data, prefix)| Ipv6Net::new(data.into(), prefix).ok())
            .map(IpNet::V6);
        v4.chain(v6).collect()
    }

    /// Attaches `program` at `hook` of `ifname` and pins the link at `pin`. A link already
    /// pinned there (from an earlier run of the daemon) is adopted: its program is replaced
    /// atomically by the one just loaded, so traffic never stops and an upgraded daemon runs
    /// upgraded programs.
    pub(super) fn attach(
        &mut self,
        program: &str,
        hook: TcAttachType,
        ifname: &str,
        pin: &Path,
    ) -> anyhow::Result<()> {
        self.attach_ordered(program, hook, ifname, pin, LinkOrder::default())
    }

    /// [`Self::attach`] at `order` among the hook's programs (a new link only: an adopted one
    /// keeps its place).
    pub(super) fn attach_ordered(
        &mut self,
        program: &str,
        hook: TcAttachType,
        ifname: &str,
        pin: &Path,
        order: LinkOrder,
    ) -> anyhow::Result<()> {
        let prog = classifier(&mut self.ebpf, program)?;
        let adopted = adopt_pinned(pin, |link: SchedClassifierLink| prog.attach_to_link(link))?;
        let link_id = match adopted {
            Some(link_id) => link_id,
            None => prog
                .attach_with_options(ifname, hook, TcAttachOptions::TcxOrder(order))
                .with_context(|| format!("attaching {program} to {ifname}"))?,
        };
        let link = FdLink::try_from(prog.take_link(link_id)?).context("tcx link expected")?;
        repin(link, pin)
    }

    /// Detaches the endpoint's programs and forgets it in the maps, including its neighbor
    /// entries that still point at this endpoint. Every step tolerates a part that is already
    /// gone, so this also cleans up after a half-finished add (which writes `ENDPOINTS` first).
    pub fn remove_endpoint(&mut self, ifindex: u32) -> anyhow::Result<()> {
        for (_, hook) in hooks(0) {
            // The pin is the link's only holder: removing it detaches the program.
            remove_file_if_exists(&self.link_pin(ifindex, hook))?;
        }
        if let Ok(ep) = self.endpoints.get(&ifindex, 0) {
            let (key, keys6) = neighbor_keys(&ep);
            remove_if_owned(&mut self.neighbors, &key, ifindex)
                .context("removing from NEIGHBORS")?;
            for key in &keys6 {
                remove_if_owned(&mut self.neighbors6, key, ifindex)
                    .context("removing from NEIGHBORS6")?;
            }
            // The slot goes back to the pool: its next owner starts from zero.
            let zero = vec![EndpointCounters::default(); nr_cpus().map_err(|(_, e)| e)?];
            self.endpoint_stats
                .set(ep.slot, PerCpuValues::try_from(zero)?, 0)
                .context("clearing ENDPOINT_STATS")?;
        }
        ignore_missing(self.endpoints.remove(&ifindex)).context("removing from ENDPOINTS")?;
        Ok(())
    }

    /// Host-side ifindexes the maps hold an endpoint for (to reconcile with the state).
    pub fn endpoint_ifindexes(&self) -> Vec<u32> {
        self.endpoints.keys().filter_map(Result::ok).collect()
    }

    /// Removes the local neighbor entries (both families) that none of the `live` endpoints
    /// owns: left by a crash, or by endpoints that vanished. Remote entries (endpoints on other
    /// hosts) stay: the cluster's sync owns them, and traffic between hosts keeps flowing
    /// across a restart of the daemon.
    pub fn prune_neighbors(&mut self, live: &[Endpoint]) -> anyhow::Result<()> {
        let (mut keep, mut keep6) = (HashSet::new(), HashSet::new());
        for ep in live {
            let (key, keys6) = neighbor_keys(ep);
            keep.insert(key);
            keep6.extend(keys6);
        }
        prune(&mut self.neighbors, &keep).context("pruning NEIGHBORS")?;
        prune(&mut self.neighbors6, &keep6).context("pruning NEIGHBORS6")
    }

    /// Endpoint link pins whose endpoint is not in `keep` (left by a crash mid-removal).
    pub fn stale_link_pins(&self, keep: &[u32]) -> anyhow::Result<Vec<PathBuf>> {
        let mut stale = Vec::new();
        for entry in fs::read_dir(&self.links_dir)? {
            let path = entry?.path();
            let ifindex = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u32>().ok());
            if ifindex.is_some_and(|i| !keep.contains(&i)) {
                stale.push(path);
            }
        }
        Ok(stale)
    }

    /// The counters of the endpoint in `slot`, summed over CPUs.
    pub fn counters(&self, slot: u32) -> EndpointCounters {
        let mut total = EndpointCounters::default();
        if let Ok(per_cpu) = self.endpoint_stats.get(&slot, 0) {
            for c in per_cpu.iter() {
                total.rx_packets += c.rx_packets;
                total.rx_bytes += c.rx_bytes;
                total.tx_packets += c.tx_packets;
                total.tx_bytes += c.tx_bytes;
                total.drops += c.drops;
            }
        }
        total
    }

    /// Drops by reason, summed over CPUs.
    pub fn drop_counts(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&reason| {
                let count = self
                    .drop_stats
                    .get(&(reason as u32), 0)
                    .map(|per_cpu| per_cpu.iter().sum())
                    .unwrap_or(0);
                (reason, count)
            })
            .collect()
    }

    fn link_pin(&self, ifindex: u32, hook: TcAttachType) -> PathBuf {
        let hook = match hook {
            TcAttachType::Ingress => "ingress",
            _ => "egress",
        };
        self.links_dir.join(format!("{ifindex}-{hook}"))
    }
}

/// Which program goes on which hook of a container's host-side veth, for an endpoint with
/// `flags` (a LAN network's has its own ingress program).
fn hooks(flags: u32) -> [(&'static str, TcAttachType); 2] {
    let ingress = if flags & ENDPOINT_LAN != 0 {
        PROG_LAN_ENDPOINT_INGRESS
    } else {
        PROG_ENDPOINT_INGRESS
    };
    [
        (ingress, TcAttachType::Ingress),
        (PROG_ENDPOINT_EGRESS, TcAttachType::Egress),
    ]
}

/// The neighbor entries an endpoint owns: its IPv4 address and, on an IPv6 network, its IPv6
/// address and its link-local address (the source of its neighbour discovery).
fn neighbor_keys(ep: &Endpoint) -> (NeighborKey, Vec<Neighbor6Key>) {
    let key = NeighborKey {
        network_id: ep.network_id,
        ipv4: ep.ipv4,
    };
    let keys6 = if ep.flags & ENDPOINT_IPV6 != 0 {
        [ep.ipv6, link_local_of(ep.mac)]
            .map(|ipv6| Neighbor6Key {
                network_id: ep.network_id,
                ipv6,
            })
            .to_vec()
    } else {
        Vec::new()
    };
    (key, keys6)
}

/// Removes `key` if it still points at `ifindex` (its address may have a new owner by now).
fn remove_if_owned<K: Pod>(
    map: &mut HashMap<MapData, K, Neighbor>,
    key: &K,
    ifindex: u32,
) -> Result<(), MapError> {
    remove_if(map, key, |n| n.ifindex == ifindex)
}

/// Removes `key` if its entry passes `still_ours` (a key already gone is fine).
pub(super) fn remove_if<K: Pod>(
    map: &mut HashMap<MapData, K, Neighbor>,
    key: &K,
    still_ours: impl FnOnce(&Neighbor) -> bool,
) -> Result<(), MapError> {
    if map.get(key, 0).is_ok_and(|n| still_ours(&n)) {
        ignore_missing(map.remove(key))
    } else {
        Ok(())
    }
}

/// Removes every local entry of `map` whose key is not in `keep`.
fn prune<K: Pod + Eq + Hash>(
    map: &mut HashMap<MapData, K, Neighbor>,
    keep: &HashSet<K>,
) -> Result<(), MapError> {
    let stale: Vec<K> = map
        .iter()
        .filter_map(Result::ok)
        .filter(|(key, neighbor)| !neighbor.is_remote() && !keep.contains(key))
        .map(|(key, _)| key)
        .collect();
    stale
        .iter()
        .try_for_each(|key| ignore_missing(map.remove(key)))
}

/// Inserts `octets/prefix_len -> value` into `trie`, or removes the key (`None`; a key already
/// gone is fine).
pub(super) fn update_trie<const N: usize>(
    trie: &mut LpmTrie<MapData, [u8; N], u32>,
    octets: [u8; N],
    prefix_len: u8,
    value: Option<u32>,
) -> Result<(), MapError> {
    let key = Key::new(u32::from(prefix_len), octets);
    match value {
        Some(value) => trie.insert(&key, value, 0),
        None => ignore_missing(trie.remove(&key)),
    }
}

/// The (address, prefix length) of every entry of an LPM trie.
fn trie_keys<const N: usize>(
    trie: &LpmTrie<MapData, [u8; N], u32>,
) -> impl Iterator<Item = ([u8; N], u8)> {
    trie.keys()
        .filter_map(Result::ok)
        .filter_map(|key| Some((key.data(), u8::try_from(key.prefix_len()).ok()?)))
}
