//! Endpoints: a container's attachment to one network. Choosing its addresses and names
//! (before anything is made), `network connect` and `disconnect`, and taking one apart. The
//! kernel side is its network's driver's.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::Context as _;
use ipnet::{Ipv4Net, Ipv6Net};
use tracing::info;
use xnet_common::MAX_ENDPOINTS;

use super::inner::{Inner, Target};
use crate::{
    api::types::NetworkConnect,
    error::{Result, XnetError},
    os::Netlink,
    plumbing::{self, Placement},
    state::{
        Container, Endpoint, KernelObject, Mac, Network, Sandbox,
        ids::random_id,
        ipam,
        rules::{check_attachable, refuse_docker_container, refuse_docker_network},
    },
};

/// The addresses a request asked for (`--ip`, `--ip6`); the rest are allocated.
#[derive(Clone, Copy)]
pub(crate) struct StaticIps<'a> {
    pub(crate) ipv4: Option<&'a str>,
    pub(crate) ipv6: Option<&'a str>,
}

impl<'a> StaticIps<'a> {
    pub(crate) fn new(ip: &'a Option<String>, ip6: &'a Option<String>) -> Self {
        Self {
            ipv4: ip.as_deref(),
            ipv6: ip6.as_deref(),
        }
    }

    /// The first flag given, for refusals.
    pub(crate) fn first_flag(&self) -> Option<&'static str> {
        [("--ip", self.ipv4), ("--ip6", self.ipv6)]
            .into_iter()
            .find_map(|(flag, value)| value.map(|_| flag))
    }
}

impl Inner {
    pub(super) async fn connect(&mut self, network: &str, req: NetworkConnect) -> Result<()> {
        let container = self.state.container(&req.container)?.clone();
        let (net, driver) = match self.target(network)? {
            Target::Recordless { name, .. } => {
                return Err(XnetError::invalid(format!(
                    "cannot connect a container to the {name} network"
                )));
            }
            Target::Network(net, driver) => (*net, driver),
        };
        if container.sandbox == Sandbox::Host {
            return Err(XnetError::invalid(format!(
                "container {} uses the host network and cannot be connected to other networks",
                container.name
            )));
        }
        refuse_docker_network(&net, &format!("docker network connect {}", net.name))?;
        refuse_docker_container(&container, "docker network connect")?;
        check_attachable(&net)?;
        if container.endpoints.iter().any(|e| e.network == net.name) {
            return Err(XnetError::conflict(format!(
                "endpoint with name {} already exists in network {}",
                container.name, net.name
            )));
        }
        let aliases = super::resolv::checked_aliases(&req.aliases)?;
        let ifname = plumbing::free_ifname(&container.sandbox_key).await?;
        let ips = StaticIps::new(&req.ip, &req.ip6);
        let mut ep = self
            .new_endpoint(&net, ips, ifname, &container.name)
            .await?;
        ep.aliases = aliases;
        let objects = [ep.kernel_object()];
        self.begin(&objects)?;
        let placement = Placement::Namespace(&container.sandbox_key);
        if let Err(e) = driver
            .plumb_endpoint(&mut self.kernel, placement, &mut ep, &net)
            .await
        {
            self.undo_endpoint(&ep, &objects).await;
            return Err(e);
        }
        let stored = self
            .state
            .containers
            .get_mut(&container.name)
            .expect("found above");
        stored.endpoints.push(ep);
        self.settle(&objects);
        self.save()?;
        self.sync_members(&net.name)?;
        info!(container = %container.name, network = %net.name, "connected");
        Ok(())
    }

    pub(super) async fn disconnect(&mut self, network: &str, container: &str) -> Result<()> {
        let container = self.state.container(container)?.clone();
        let net = match self.target(network)? {
            Target::Recordless { name, .. } => {
                return Err(XnetError::invalid(format!(
                    "container {} is not connected to the {name} network's datapath; nothing to disconnect",
                    container.name
                )));
            }
            Target::Network(net, _) => *net,
        };
        refuse_docker_network(&net, &format!("docker network disconnect {}", net.name))?;
        refuse_docker_container(&container, "docker network disconnect")?;
        let Some(position) = container
            .endpoints
            .iter()
            .position(|e| e.network == net.name)
        else {
            return Err(XnetError::not_found(format!(
                "container {} is not connected to network {}",
                container.name, net.name
            )));
        };
        self.remove_endpoint(&container, position).await?;
        let stored = &self.state.containers[&container.name];
        // A default route left with the interface it used; the next network (of that family)
        // provides one.
        let networks = &self.state.networks;
        let next_v4 = stored
            .endpoints
            .first()
            .map(|e| IpAddr::from(networks[&e.network].ipv4.gateway));
        let next_v6 = stored
            .endpoints
            .iter()
            .find_map(|e| networks[&e.network].ipv6)
            .map(|c| IpAddr::from(c.gateway));
        let gateways: Vec<IpAddr> = next_v4.into_iter().chain(next_v6).collect();
        if !gateways.is_empty() {
            let inside = Netlink::in_netns(&container.sandbox_key)?;
            for gateway in gateways {
                inside.ensure_default_route(gateway).await?;
            }
        }
        self.save()?;
        self.sync_members(&net.name)?;
        info!(container = %container.name, network = %net.name, "disconnected");
        Ok(())
    }

    /// Tears down the container's endpoint at `position` and drops it from the stored
    /// container; with the published ports if it was the first (they lead there, as in
    /// Docker). The caller saves.
    pub(crate) async fn remove_endpoint(
        &mut self,
        container: &Container,
        position: usize,
    ) -> Result<()> {
        if position == 0 {
            self.unpublish_ports(container, &container.ports)?;
        }
        self.teardown_endpoint(&container.endpoints[position])
            .await?;
        let stored = self
            .state
            .containers
            .get_mut(&container.name)
            .expect("a stored container");
        stored.endpoints.remove(position);
        if position == 0 {
            stored.ports.clear();
        }
        Ok(())
    }

    /// An endpoint on `net` for `container` with addresses from its IPAM and its names, not
    /// yet plumbed. On a network of global scope the addresses are the cluster's (claimed in
    /// the store, where the endpoint is registered at once).
    pub(crate) async fn new_endpoint(
        &self,
        net: &Network,
        ips: StaticIps<'_>,
        ifname: String,
        container: &str,
    ) -> Result<Endpoint> {
        if net.vni.is_some() {
            return self.new_global_endpoint(net, ips, ifname, container).await;
        }
        let used: BTreeSet<Ipv4Addr> = self
            .state
            .endpoints_on(&net.name)
            .map(|(_, e)| e.ipv4)
            .chain(ipam::aux_in::<Ipv4Net>(&net.aux_addresses).map(|(_, ip)| ip))
            .collect();
        let ipv4 = ipam::allocate(&net.ipv4, &used, ips.ipv4)?;
        let ipv6 = match (&net.ipv6, ips.ipv6) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(XnetError::invalid(format!(
                    "--ip6 needs IPv6: network {} was created without --ipv6",
                    net.name
                )));
            }
            (Some(config), requested) => {
                let used: BTreeSet<Ipv6Addr> = self
                    .state
                    .endpoints_on(&net.name)
                    .filter_map(|(_, e)| e.ipv6)
                    .chain(ipam::aux_in::<Ipv6Net>(&net.aux_addresses).map(|(_, ip)| ip))
                    .collect();
                Some(ipam::allocate(config, &used, requested)?)
            }
        };
        Ok(Endpoint {
            static_ipv4: ips.ipv4.is_some(),
            static_ipv6: ips.ipv6.is_some(),
            ..self.unplumbed_endpoint(random_id()?, net, ipv4, ipv6, ifname)?
        })
    }

    /// An endpoint with these id, addresses and interface name, its host-side names and its
    /// counters' slot chosen, not yet plumbed.
    pub(crate) fn unplumbed_endpoint(
        &self,
        id: String,
        net: &Network,
        ipv4: Ipv4Addr,
        ipv6: Option<Ipv6Addr>,
        ifname: String,
    ) -> Result<Endpoint> {
        let slots: BTreeSet<u32> = self.state.endpoints().map(|e| e.slot).collect();
        let slot = (0..MAX_ENDPOINTS)
            .find(|s| !slots.contains(s))
            .ok_or_else(|| {
                XnetError::conflict(format!("all {MAX_ENDPOINTS} endpoints are in use"))
            })?;
        Ok(Endpoint {
            host_ifname: plumbing::host_veth_name(&id),
            id,
            network: net.name.clone(),
            ipv4,
            ipv6,
            static_ipv4: false,
            static_ipv6: false,
            mac: Mac::for_ipv4(ipv4),
            ifname,
            host_ifindex: 0,
            host_mac: Mac([0; 6]),
            slot,
            aliases: Vec::new(),
        })
    }

    /// Undoes the kernel side of an endpoint, as far as it got; every step tolerates what is
    /// already gone.
    pub(crate) async fn teardown_endpoint(&mut self, ep: &Endpoint) -> anyhow::Result<()> {
        let net = self
            .state
            .networks
            .get(&ep.network)
            .with_context(|| format!("endpoint on unknown network {}", ep.network))?;
        let net = net.clone();
        let driver = self.driver(&net)?;
        driver.unplumb_endpoint(&mut self.kernel, ep, &net).await?;
        if net.vni.is_some() {
            self.withdraw_global_endpoint(&net, &ep.id, &ep.addresses())
                .await;
        }
        Ok(())
    }

    /// Undoes a new endpoint whose plumbing failed, and settles its in-flight `objects`.
    pub(crate) async fn undo_endpoint(&mut self, ep: &Endpoint, objects: &[KernelObject]) {
        let undone = self.teardown_endpoint(ep).await;
        self.settle_undone(undone, objects, &format!("interface {}", ep.host_ifname));
    }
}
