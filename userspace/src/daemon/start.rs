//! What a start does before serving: the kernel made to match the state. What survived (the
//! datapath forwards while xnetd is stopped) is adopted, what the state no longer explains is
//! removed: objects a request that died with the daemon was making, endpoints and namespaces
//! that vanished, map entries, link pins and namespace pins no record owns.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fs,
    net::IpAddr,
    path::PathBuf,
};

use anyhow::Context as _;
use ipnet::IpNet;
use tracing::{info, warn};

use super::{containers::HOST_SANDBOX, inner::Inner};
use crate::{
    drivers,
    os::{ethtool, netns},
    plumbing,
    state::{Container, KernelObject, Sandbox, State},
};

/// The ports that others (the admin) reserved from the ephemeral range: what is reserved now,
/// less what this daemon reserved for the state's mappings and for a request that died with
/// it.
pub(super) fn reserved_by_others(state: &State, reserved: BTreeSet<u16>) -> BTreeSet<u16> {
    let ours: BTreeSet<u16> = state
        .containers
        .values()
        .flat_map(|c| c.ports.iter().map(KernelObject::reserved_ports))
        .chain(state.in_flight.iter().cloned())
        .filter_map(|o| match o {
            KernelObject::ReservedPorts { first, last } => Some(first..=last),
            _ => None,
        })
        .flatten()
        .collect();
    reserved.difference(&ours).copied().collect()
}

impl Inner {
    /// Makes the kernel match the state after a restart (see the module's comment).
    pub(super) async fn reconcile(&mut self) -> anyhow::Result<()> {
        self.remove_in_flight().await?;
        let networks: Vec<_> = self.state.networks.values().cloned().collect();
        for net in &networks {
            let driver = self.driver(net)?;
            // One network the kernel cannot give what it needs (a macvlan network's parent
            // that is gone) must not keep every other from being served: its traffic stays
            // dropped (fail closed) and the log says why.
            if let Err(e) = driver.add_network(&mut self.kernel, net).await {
                warn!(network = %net.name, "the network could not be set up: {e:#}");
            }
        }
        let known: Vec<IpNet> = networks
            .iter()
            .flat_map(|n| n.subnets_and_gateways())
            .map(|(subnet, _)| subnet)
            .collect();
        for subnet in self.kernel.datapath.subnets() {
            if !known.contains(&subnet) {
                self.kernel.datapath.remove_subnet(subnet)?;
            }
        }
        // Remote endpoints, live hosts and where broadcasts are replicated to are the
        // cluster's to reconcile once this host joins again: until then, traffic to them keeps
        // flowing. Only what belongs to networks the state no longer has goes now.
        let vnis = self.kernel.datapath.vnis().into_iter().map(|(vni, _)| vni);
        for vni in vnis.chain(self.kernel.datapath.encrypted_vnis()) {
            if !networks.iter().any(|n| n.vni == Some(vni)) {
                self.kernel.datapath.remove_vni(vni)?;
            }
        }
        for network_id in self.kernel.datapath.flood_sets().into_keys() {
            if !networks
                .iter()
                .any(|n| n.vni.is_some() && n.datapath_id == network_id)
            {
                self.kernel.datapath.remove_flood(network_id)?;
            }
        }
        let names: Vec<String> = self.state.containers.keys().cloned().collect();
        for name in names {
            let container = self.state.containers[&name].clone();
            self.adopt_container(container).await?;
        }
        self.state.forget_unjoined_docker_endpoints();
        self.reconcile_ports()?;
        self.prune_datapath()?;
        self.prune_unicast_filters().await?;
        for net in &networks {
            self.sync_members(&net.name)?;
        }
        self.remove_unowned_netns_pins()?;
        self.save()
    }

    /// Removes what a request that died with the daemon had made, and forgets it.
    async fn remove_in_flight(&mut self) -> anyhow::Result<()> {
        let objects = self.state.in_flight.clone();
        for object in &objects {
            info!(?object, "removing what an interrupted request made");
            match object {
                KernelObject::Veth { name } => {
                    plumbing::delete_veth(&self.kernel.netlink, name).await?
                }
                KernelObject::NetnsPin { path } => netns::remove(path)?,
                KernelObject::HostAddress { ip } => {
                    if !self.gateways().contains(ip) {
                        let lo = self.kernel.loopback;
                        self.kernel.netlink.delete_address(lo, *ip).await?;
                    }
                }
                // Reserved again from the state alone by `reconcile_ports`.
                KernelObject::ReservedPorts { .. } => {}
            }
        }
        self.settle(&objects);
        self.save()
    }

    /// Every network's gateway addresses.
    fn gateways(&self) -> Vec<IpAddr> {
        self.state
            .networks
            .values()
            .flat_map(|n| n.subnets_and_gateways())
            .map(|(_, gateway)| gateway)
            .collect()
    }

    /// Keeps a container whose namespace survived, with the endpoints that survived (their
    /// entries written again, their pinned programs adopted); forgets what vanished.
    async fn adopt_container(&mut self, container: Container) -> anyhow::Result<()> {
        let name = container.name.clone();
        if container.sandbox != Sandbox::Host && !netns::is_pinned(&container.sandbox_key) {
            warn!(container = %name, "the container's namespace is gone; forgetting it");
            self.teardown(&container).await?;
            self.state.containers.remove(&name);
            return Ok(());
        }
        let mut kept = Vec::new();
        for ep in &container.endpoints {
            let net = self
                .state
                .networks
                .get(&ep.network)
                .cloned()
                .with_context(|| format!("{name}'s endpoint on unknown network {}", ep.network))?;
            let driver = self.driver(&net)?;
            if driver
                .adopt_endpoint(&mut self.kernel, &container, ep, &net)
                .await?
            {
                kept.push(ep.clone());
            } else {
                warn!(container = %name, network = %ep.network, interface = %ep.host_ifname, "the endpoint is gone; forgetting it");
                self.teardown_endpoint(ep).await?;
            }
        }
        let stored = self.state.containers.get_mut(&name).expect("listed");
        // Published ports went with their endpoint, the first.
        let first = |eps: &[crate::state::Endpoint]| eps.first().map(|e| e.id.clone());
        if first(&kept) != first(&stored.endpoints) && !stored.ports.is_empty() {
            warn!(container = %name, "the published ports lost their endpoint; forgetting them");
            stored.ports.clear();
        }
        stored.endpoints = kept;
        // A Docker container is its joined endpoints.
        if stored.sandbox == Sandbox::Docker && stored.endpoints.is_empty() {
            self.state.containers.remove(&name);
        }
        Ok(())
    }

    /// Removes the datapath's endpoint entries, neighbor entries, member lists and link pins
    /// that no endpoint or network of the state owns (the maps are this daemon's alone).
    fn prune_datapath(&mut self) -> anyhow::Result<()> {
        let live: Vec<u32> = self.state.endpoints().map(|e| e.host_ifindex).collect();
        let datapath = &mut self.kernel.datapath;
        for ifindex in datapath.endpoint_ifindexes() {
            if !live.contains(&ifindex) {
                datapath.remove_endpoint(ifindex)?;
            }
        }
        let mut live_entries = Vec::new();
        for ep in self.state.endpoints() {
            let net = &self.state.networks[&ep.network];
            live_entries.push(self.driver(net)?.endpoint_entry(ep, net).endpoint);
        }
        let datapath = &mut self.kernel.datapath;
        datapath.prune_neighbors(&live_entries)?;
        let known_ids: Vec<u32> = self
            .state
            .networks
            .values()
            .map(|n| n.datapath_id)
            .collect();
        for id in datapath.networks_with_members() {
            if !known_ids.contains(&id) {
                datapath.set_members(id, &[])?;
            }
        }
        for pin in datapath.stale_link_pins(&live)? {
            fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
        }
        // LAN networks: entries of networks and macvlan containers the state no longer has,
        // and parents' links no network explains.
        let networks: HashSet<u32> = known_ids.iter().copied().collect();
        let mut macs = HashSet::new();
        for ep in self.state.endpoints() {
            let net = &self.state.networks[&ep.network];
            if drivers::macvlan_parent(net).is_some() {
                macs.insert((net.datapath_id, ep.mac.0));
            }
        }
        datapath.prune_lan(&networks, &macs)
    }

    /// Leaves in each macvlan parent's unicast filter only the MACs of its containers.
    async fn prune_unicast_filters(&self) -> anyhow::Result<()> {
        let mut by_parent: BTreeMap<String, HashSet<[u8; 6]>> = BTreeMap::new();
        for net in self.state.networks.values() {
            if let Some(parent) = drivers::macvlan_parent(net) {
                by_parent.entry(parent).or_default();
            }
        }
        for ep in self.state.endpoints() {
            if let Some(parent) = drivers::macvlan_parent(&self.state.networks[&ep.network]) {
                by_parent.entry(parent).or_default().insert(ep.mac.0);
            }
        }
        drivers::prune_unicast_filters(&self.kernel, &by_parent).await
    }

    /// Unpins the namespaces in the daemon's netns directory that no container owns (the
    /// directory is this daemon's alone): left by a crash in the middle of a create or remove.
    fn remove_unowned_netns_pins(&self) -> anyhow::Result<()> {
        let owned: BTreeSet<PathBuf> = self
            .state
            .containers
            .values()
            .map(|c| c.sandbox_key.clone())
            .chain([self.netns_dir.join(HOST_SANDBOX)])
            .collect();
        let entries = match fs::read_dir(&self.netns_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| format!("listing {}", self.netns_dir.display()));
            }
        };
        for entry in entries {
            let path = entry?.path();
            if !owned.contains(&path) {
                warn!(path = %path.display(), "removing a namespace pin no container owns");
                netns::remove(&path)?;
            }
        }
        Ok(())
    }

    /// Points egress at `uplink` (by name, in the daemon's namespace), or turns it off.
    pub(super) async fn set_uplink(&mut self, uplink: Option<&str>) -> anyhow::Result<()> {
        let Some(name) = uplink else {
            return self.kernel.datapath.clear_uplink();
        };
        let uplink = self.kernel.netlink.interface("--uplink", name).await?;
        let ipv4 = uplink
            .ipv4
            .with_context(|| format!("--uplink {name}: the interface has no IPv4 address"))?;
        // Without a global IPv6 address, IPv6 egress is dropped (`no-uplink`); IPv4 still
        // works.
        self.kernel
            .datapath
            .set_uplink(name, uplink.index, ipv4.octets(), uplink.ipv6)?;
        // `uplink_xdp` decapsulates VXLAN and leaves the merging of the inner segments to
        // the uplink's GRO, which NICs have on but a veth has off until asked.
        ethtool::enable_gro(name)
    }
}
