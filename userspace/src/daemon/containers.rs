//! Containers and their endpoints: a container is a network namespace (created by xnet,
//! attached, or the host's) with one endpoint per network it is connected to. An endpoint is a
//! veth pair: `ethN` inside, `xv…` on the host, carrying the datapath's programs.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::unix::fs::MetadataExt as _,
    path::Path,
};

use anyhow::Context as _;
use xnet_common::{
    ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, ENDPOINT_IPV6, Endpoint as DatapathEndpoint, MAX_ENDPOINTS,
};

use super::{
    Inner,
    docker::{refuse_docker_container, refuse_docker_network},
    networks::{DEFAULT_NETWORK, HOST_NETWORK, HOST_VETH_PREFIX},
    now,
    ports::{check_publishable, parse_specs},
    random_id, validate_name,
};
use crate::{
    api::types::{AttachRequest, ContainerCreate, NetworkConnect},
    datapath::EndpointEntry,
    error::{Result, XnetError},
    os::{Netlink, ethtool, netns},
    state::{Container, Endpoint, Mac, Network, Sandbox, ipam},
};

/// Host-side veths' temporary peers are named with this prefix plus an id prefix.
const PEER_VETH_PREFIX: &str = "xp";

/// Like Docker, a container's interfaces on IPv4-only networks get no IPv6 (they inherit
/// `default` when they move in), so they send no router solicitations or ND that the datapath
/// would only drop; interfaces on IPv6 networks turn it on for themselves (`ipv6_sysctls`).
const CONTAINER_SYSCTLS: &[(&str, &str)] = &[("ipv6/conf/default/disable_ipv6", "1")];

/// The name of the host namespace's pin, beside the containers' (Docker calls it `default`).
const HOST_SANDBOX: &str = "default";

impl Inner {
    /// Pins the daemon's own namespace, the sandbox of `--network host` containers.
    pub(super) fn pin_host_namespace(&self) -> anyhow::Result<()> {
        let path = self.netns_dir.join(HOST_SANDBOX);
        if netns::is_pinned(&path) {
            return Ok(());
        }
        netns::remove(&path)?;
        netns::pin(Path::new("/proc/self/ns/net"), &path)
    }

    pub(super) async fn create_container(&mut self, req: ContainerCreate) -> Result<String> {
        self.check_new_name(&req.name)?;
        let network = req.network.as_deref().unwrap_or(DEFAULT_NETWORK);
        let id = random_id()?;
        let predefined = self.predefined_without_datapath(network);
        let ips = StaticIps::new(&req.ip, &req.ip6);
        if let Some(flag) = ips.first_flag().filter(|_| predefined.is_some()) {
            return Err(XnetError::invalid(format!(
                "{flag} is not supported on the {network} network"
            )));
        }
        // Checked on every network, also the host's, where they are then discarded (the CLI
        // warns, as Docker's does): the container already shares the host's ports.
        let specs = parse_specs(&req.publish)?;
        let mut container = Container {
            sandbox_key: self.netns_dir.join(&id[..12]),
            created: now(),
            command: req.command,
            pid: None,
            sandbox: Sandbox::Owned,
            endpoints: Vec::new(),
            ports: Vec::new(),
            docker: None,
            name: req.name.clone(),
            id,
        };
        if predefined == Some(HOST_NETWORK) {
            container.sandbox = Sandbox::Host;
            container.sandbox_key = self.netns_dir.join(HOST_SANDBOX);
            return self.keep(container).await;
        }
        let net = match predefined {
            Some(_) => None,
            None => Some(self.state.network(network)?.clone()),
        };
        if let Some(net) = &net {
            refuse_docker_network(net, &format!("docker run --network {}", net.name))?;
        }
        // Host ports are resolved before anything is made, so a conflict leaves nothing.
        if !specs.is_empty() {
            let ipv6 = check_publishable(&container, net.as_ref())?;
            container.ports = self.resolve_ports(&container.name, ipv6, &specs)?;
        }
        self.build(container, NewSandbox::Fresh, net.as_ref(), ips)
            .await
    }

    /// `xnet attach`: an endpoint for a namespace that something else made (a Docker,
    /// containerd or podman container). xnet pins the namespace with a bind mount of its own,
    /// so it stays reachable by path however the owner names it.
    pub(super) async fn attach(&mut self, req: AttachRequest) -> Result<String> {
        self.check_new_name(&req.name)?;
        let network = req.network.as_deref().unwrap_or(DEFAULT_NETWORK);
        if self.predefined_without_datapath(network).is_some() {
            return Err(XnetError::invalid(format!(
                "cannot attach to the {network} network: it has no datapath"
            )));
        }
        let net = self.state.network(network)?.clone();
        refuse_docker_network(&net, &format!("docker network connect {}", net.name))?;
        let source = Path::new(&req.netns);
        if !netns::is_pinned(source) {
            return Err(XnetError::invalid(format!(
                "{} is not a network namespace",
                req.netns
            )));
        }
        if same_file(source, Path::new("/proc/self/ns/net")) {
            return Err(XnetError::invalid(
                "that is the host's own network namespace; use --network host to run there",
            ));
        }
        let id = random_id()?;
        let container = Container {
            sandbox_key: self.netns_dir.join(&id[..12]),
            created: now(),
            command: Vec::new(),
            pid: None,
            sandbox: Sandbox::Attached,
            endpoints: Vec::new(),
            ports: Vec::new(),
            docker: None,
            name: req.name.clone(),
            id,
        };
        let ips = StaticIps::new(&req.ip, &req.ip6);
        self.build(container, NewSandbox::Pin(source), Some(&net), ips)
            .await
    }

    /// Makes the container's namespace and, given a network, its first endpoint; keeps the
    /// container, or undoes everything on any failure.
    async fn build(
        &mut self,
        mut container: Container,
        sandbox: NewSandbox<'_>,
        net: Option<&Network>,
        ips: StaticIps<'_>,
    ) -> Result<String> {
        let built = async {
            match sandbox {
                NewSandbox::Fresh => create_sandbox(&container.sandbox_key).await?,
                NewSandbox::Pin(source) => netns::pin(source, &container.sandbox_key)?,
            }
            if let Some(net) = net {
                let ifname = free_ifname(&container.sandbox_key).await?;
                let ep = self.new_endpoint(net, ips, ifname)?;
                container.endpoints.push(ep);
                let ep = container.endpoints.last_mut().expect("just pushed");
                plumb_endpoint(
                    &mut self.datapath,
                    &self.netlink,
                    &container.sandbox_key,
                    ep,
                    net,
                )
                .await?;
            }
            // Only now does the first endpoint have the host-side ifindex they lead to.
            self.publish_ports(&container, &container.ports)?;
            Ok::<_, XnetError>(())
        }
        .await;
        if let Err(e) = built {
            self.teardown_logged(&container).await;
            return Err(e);
        }
        self.keep(container).await
    }

    pub(super) async fn connect(&mut self, network: &str, req: NetworkConnect) -> Result<()> {
        let container = self.state.container(&req.container)?.clone();
        if let Some(name) = self.predefined_without_datapath(network) {
            return Err(XnetError::invalid(format!(
                "cannot connect a container to the {name} network"
            )));
        }
        if container.sandbox == Sandbox::Host {
            return Err(XnetError::invalid(format!(
                "container {} uses the host network and cannot be connected to other networks",
                container.name
            )));
        }
        let net = self.state.network(network)?.clone();
        refuse_docker_network(&net, &format!("docker network connect {}", net.name))?;
        refuse_docker_container(&container, "docker network connect")?;
        if container.endpoints.iter().any(|e| e.network == net.name) {
            return Err(XnetError::conflict(format!(
                "endpoint with name {} already exists in network {}",
                container.name, net.name
            )));
        }
        let ifname = free_ifname(&container.sandbox_key).await?;
        let ips = StaticIps::new(&req.ip, &req.ip6);
        let mut ep = self.new_endpoint(&net, ips, ifname)?;
        if let Err(e) = plumb_endpoint(
            &mut self.datapath,
            &self.netlink,
            &container.sandbox_key,
            &mut ep,
            &net,
        )
        .await
        {
            if let Err(cleanup) = self.teardown_endpoint(&ep).await {
                eprintln!("xnetd: cleaning up after a failed connect: {cleanup:#}");
            }
            return Err(e);
        }
        let stored = self
            .state
            .containers
            .get_mut(&container.name)
            .expect("found above");
        stored.endpoints.push(ep);
        self.store.save(&self.state)?;
        self.sync_members(&net.name)?;
        Ok(())
    }

    pub(super) async fn disconnect(&mut self, network: &str, container: &str) -> Result<()> {
        let container = self.state.container(container)?.clone();
        if let Some(name) = self.predefined_without_datapath(network) {
            return Err(XnetError::invalid(format!(
                "container {} is not connected to the {name} network's datapath; nothing to disconnect",
                container.name
            )));
        }
        let net = self.state.network(network)?.clone();
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
        self.store.save(&self.state)?;
        self.sync_members(&net.name)?;
        Ok(())
    }

    /// Tears down the container's endpoint at `position` and drops it from the stored
    /// container; with the published ports if it was the first (they lead there, as in
    /// Docker).
    pub(super) async fn remove_endpoint(
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

    pub(super) async fn remove_container(&mut self, name_or_id: &str, force: bool) -> Result<()> {
        let container = self.state.container(name_or_id)?.clone();
        refuse_docker_container(&container, "docker rm")?;
        if container.sandbox == Sandbox::Attached {
            return Err(XnetError::invalid(format!(
                "container {0} was attached with `xnet attach`; use `xnet detach {0}`",
                container.name
            )));
        }
        if let Some(pid) = running_pid(&container) {
            if !force {
                return Err(XnetError::conflict(format!(
                    "cannot remove container {}: container is running: stop the container before removing or force remove",
                    container.name
                )));
            }
            // Only a process verified to live in this container's namespace is signalled.
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .ok();
        }
        self.teardown(&container).await?;
        self.forget(&container)
    }

    /// Removes only what `attach` added: the endpoints and xnet's pin of the namespace. The
    /// namespace and its processes belong to whoever made them.
    pub(super) async fn detach(&mut self, name_or_id: &str) -> Result<()> {
        let container = self.state.container(name_or_id)?.clone();
        refuse_docker_container(&container, "docker rm")?;
        if container.sandbox != Sandbox::Attached {
            return Err(XnetError::invalid(format!(
                "container {0} was not attached with `xnet attach`; use `xnet rm {0}`",
                container.name
            )));
        }
        self.teardown(&container).await?;
        self.forget(&container)
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        validate_name(name, "container")?;
        if self.state.containers.contains_key(name) {
            return Err(XnetError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use"
            )));
        }
        Ok(())
    }

    /// Adds a fully plumbed container to the state and persists it (undoing it all if the
    /// state cannot be written).
    async fn keep(&mut self, container: Container) -> Result<String> {
        let name = container.name.clone();
        let networks: Vec<String> = container
            .endpoints
            .iter()
            .map(|e| e.network.clone())
            .collect();
        self.state.containers.insert(name.clone(), container);
        let kept = self
            .store
            .save(&self.state)
            .and_then(|()| networks.iter().try_for_each(|net| self.sync_members(net)));
        if let Err(e) = kept {
            let container = self.state.containers.remove(&name).expect("just inserted");
            self.teardown_logged(&container).await;
            for net in &networks {
                let _ = self.sync_members(net);
            }
            return Err(e.into());
        }
        Ok(name)
    }

    /// Forgets a torn-down container and updates its networks' member lists.
    fn forget(&mut self, container: &Container) -> Result<()> {
        self.state.containers.remove(&container.name);
        self.store.save(&self.state)?;
        for ep in &container.endpoints {
            self.sync_members(&ep.network)?;
        }
        Ok(())
    }

    /// An endpoint on `net` with addresses from its IPAM, not yet plumbed.
    fn new_endpoint(&self, net: &Network, ips: StaticIps, ifname: String) -> Result<Endpoint> {
        let used: BTreeSet<Ipv4Addr> = self
            .state
            .endpoints_on(&net.name)
            .map(|(_, e)| e.ipv4)
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
                    .collect();
                Some(ipam::allocate(config, &used, requested)?)
            }
        };
        let slot = self.free_slot()?;
        let id = random_id()?;
        Ok(Endpoint {
            host_ifname: format!("{HOST_VETH_PREFIX}{}", &id[..11]),
            id,
            network: net.name.clone(),
            ipv4,
            ipv6,
            static_ipv4: ips.ipv4.is_some(),
            static_ipv6: ips.ipv6.is_some(),
            mac: Mac::for_ipv4(ipv4),
            ifname,
            host_ifindex: 0,
            host_mac: Mac([0; 6]),
            slot,
        })
    }

    /// The lowest datapath slot (counters index) no endpoint uses.
    pub(super) fn free_slot(&self) -> Result<u32> {
        let slots: BTreeSet<u32> = self.all_endpoints().map(|e| e.slot).collect();
        (0..MAX_ENDPOINTS)
            .find(|s| !slots.contains(s))
            .ok_or_else(|| XnetError::conflict(format!("all {MAX_ENDPOINTS} endpoints are in use")))
    }

    pub(super) fn endpoint_entry(&self, ep: &Endpoint) -> anyhow::Result<EndpointEntry> {
        let net = self
            .state
            .networks
            .get(&ep.network)
            .with_context(|| format!("endpoint on unknown network {}", ep.network))?;
        Ok(endpoint_entry(ep, net))
    }

    /// Undoes `plumb_endpoint` as far as it got; every step tolerates what is already gone.
    pub(super) async fn teardown_endpoint(&mut self, ep: &Endpoint) -> anyhow::Result<()> {
        if ep.host_ifindex != 0 {
            self.datapath.remove_endpoint(ep.host_ifindex)?;
        }
        // Deleting one end of a veth deletes both, and the host route with it.
        if let Some(link) = self.netlink.link_by_name(&ep.host_ifname).await? {
            self.netlink.delete_link(link.index).await?;
        }
        Ok(())
    }

    /// Removes a container's endpoints and xnet's pin of its namespace (for an owned namespace,
    /// the last reference: it dies with its last process).
    pub(super) async fn teardown(&mut self, container: &Container) -> anyhow::Result<()> {
        self.unpublish_ports(container, &container.ports)?;
        for ep in &container.endpoints {
            self.teardown_endpoint(ep).await?;
        }
        // The host's namespace and Docker's sandboxes are not xnet's to remove.
        if matches!(container.sandbox, Sandbox::Owned | Sandbox::Attached) {
            netns::remove(&container.sandbox_key)?;
        }
        Ok(())
    }

    async fn teardown_logged(&mut self, container: &Container) {
        if let Err(e) = self.teardown(container).await {
            eprintln!("xnetd: cleaning up after a failed create: {e:#}");
        }
    }
}

/// The addresses a request asked for (`--ip`, `--ip6`); the rest are allocated.
#[derive(Clone, Copy)]
struct StaticIps<'a> {
    ipv4: Option<&'a str>,
    ipv6: Option<&'a str>,
}

impl<'a> StaticIps<'a> {
    fn new(ip: &'a Option<String>, ip6: &'a Option<String>) -> Self {
        Self {
            ipv4: ip.as_deref(),
            ipv6: ip6.as_deref(),
        }
    }

    fn first_flag(&self) -> Option<&'static str> {
        [("--ip", self.ipv4), ("--ip6", self.ipv6)]
            .into_iter()
            .find_map(|(flag, value)| value.map(|_| flag))
    }
}

/// Where a container's namespace comes from.
enum NewSandbox<'a> {
    /// A new one, made by xnet.
    Fresh,
    /// An existing one (another runtime's), pinned from this path.
    Pin(&'a Path),
}

/// A new namespace with loopback up.
async fn create_sandbox(path: &Path) -> anyhow::Result<()> {
    netns::create(path, CONTAINER_SYSCTLS)?;
    let inside = Netlink::in_netns(path)?;
    let lo = inside
        .link_by_name("lo")
        .await?
        .context("new namespace has no loopback")?;
    inside.set_up(lo.index).await
}

/// The lowest `ethN` not taken inside the namespace.
async fn free_ifname(sandbox: &Path) -> anyhow::Result<String> {
    let taken: BTreeSet<String> = Netlink::in_netns(sandbox)?
        .links()
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect();
    Ok((0..)
        .map(|n| format!("eth{n}"))
        .find(|name| !taken.contains(name))
        .expect("some ethN is free"))
}

/// Creates the endpoint's veth pair, configures the container end (name, MAC, MTU, address,
/// default route if the namespace has none), publishes it in the datapath, and only then
/// brings the host end up and routes to it. Fills in the host-side ifindex and MAC.
async fn plumb_endpoint(
    datapath: &mut crate::datapath::Datapath,
    netlink: &Netlink,
    sandbox: &Path,
    ep: &mut Endpoint,
    net: &Network,
) -> Result<()> {
    let peer_name = create_pair(netlink, ep).await?;
    let peer = netlink
        .link_by_name(&peer_name)
        .await?
        .context("container-side veth vanished")?;
    netlink.move_to_netns(peer.index, sandbox).await?;

    let inside = Netlink::in_netns(sandbox)?;
    let link = inside
        .link_by_name(&peer_name)
        .await?
        .context("veth missing in the container namespace")?;
    inside
        .configure(link.index, &ep.ifname, ep.mac.0, net.mtu)
        .await?;
    accept_xdp_frames(sandbox, &ep.ifname)?;
    if ep.ipv6.is_some() {
        netns::write_sysctls_in(sandbox, ipv6_sysctls(&ep.ifname, Side::Container))?;
    }
    let addresses = addresses(ep, net);
    for a in &addresses {
        inside.add_address(link.index, a.ip, a.prefix_len).await?;
    }
    inside.set_up(link.index).await?;
    for a in &addresses {
        inside.ensure_default_route(a.gateway).await?;
    }
    plumb_host_side(datapath, netlink, ep, net).await
}

/// The endpoint as Docker's plugin protocol wants it (`Join`): the veth pair in the daemon's
/// namespace, which is dockerd's, with the container end (returned) named, addressed at layer
/// 2 and able to take XDP frames, for Docker to move into the sandbox, name and give its
/// addresses and routes; the host end plumbed as for any endpoint.
pub(super) async fn plumb_for_docker(
    datapath: &mut crate::datapath::Datapath,
    netlink: &Netlink,
    ep: &mut Endpoint,
    net: &Network,
) -> Result<String> {
    let peer_name = create_pair(netlink, ep).await?;
    let peer = netlink
        .link_by_name(&peer_name)
        .await?
        .context("container-side veth vanished")?;
    netlink
        .configure(peer.index, &peer_name, ep.mac.0, net.mtu)
        .await?;
    // GRO is the device's setting: it moves into the sandbox with it.
    ethtool::enable_gro(&peer_name)?;
    plumb_host_side(datapath, netlink, ep, net).await?;
    Ok(peer_name)
}

/// The name of the container end of an endpoint's veth while it is in the daemon's namespace.
pub(super) fn peer_name(ep: &Endpoint) -> String {
    format!("{PEER_VETH_PREFIX}{}", &ep.id[..11])
}

/// Creates the endpoint's veth pair in the daemon's namespace, fills in the host end's ifindex
/// and MAC and sets its IPv6 up; returns the container end's name.
async fn create_pair(netlink: &Netlink, ep: &mut Endpoint) -> Result<String> {
    let peer_name = peer_name(ep);
    netlink.create_veth(&ep.host_ifname, &peer_name).await?;
    let host = netlink
        .link_by_name(&ep.host_ifname)
        .await?
        .context("host-side veth vanished")?;
    ep.host_ifindex = host.index;
    ep.host_mac = Mac(host.mac);
    // On an IPv4-only network the host side needs no IPv6 of its own; without it the host
    // sends the container no router solicitations or MLD reports (noise in its counters, and
    // in tests). The daemon's threads are in its namespace, so these are the host side's.
    let host_sysctls = if ep.ipv6.is_some() {
        ipv6_sysctls(&ep.host_ifname, Side::Host)
    } else {
        vec![(format!("ipv6/conf/{}/disable_ipv6", ep.host_ifname), "1")]
    };
    netns::write_sysctls(&host_sysctls)?;
    Ok(peer_name)
}

/// Publishes the endpoint in the datapath, and only then brings the host end up and routes
/// its addresses to it.
async fn plumb_host_side(
    datapath: &mut crate::datapath::Datapath,
    netlink: &Netlink,
    ep: &Endpoint,
    net: &Network,
) -> Result<()> {
    datapath.add_endpoint(&endpoint_entry(ep, net))?;
    if let Some(mtu) = net.mtu {
        netlink.set_mtu(ep.host_ifindex, mtu).await?;
    }
    netlink.set_up(ep.host_ifindex).await?;
    for a in &addresses(ep, net) {
        netlink
            .add_host_route(a.ip, ep.host_ifindex, a.gateway)
            .await?;
    }
    Ok(())
}

/// Lets the container's end of its veth take the frames the uplink's XDP program redirects to
/// it (published ports), by turning GRO on there: see [`ethtool::enable_gro`].
pub(super) fn accept_xdp_frames(sandbox: &Path, ifname: &str) -> anyhow::Result<()> {
    let ifname = ifname.to_owned();
    netns::run_in(sandbox, move || ethtool::enable_gro(&ifname))
}

/// One of an endpoint's addresses, with what goes with it on its network.
struct Address {
    ip: IpAddr,
    prefix_len: u8,
    gateway: IpAddr,
}

/// The endpoint's address in each family of its network.
fn addresses(ep: &Endpoint, net: &Network) -> Vec<Address> {
    let v4 = Address {
        ip: ep.ipv4.into(),
        prefix_len: net.ipv4.subnet.prefix_len(),
        gateway: net.ipv4.gateway.into(),
    };
    let v6 = ep.ipv6.zip(net.ipv6).map(|(ip, config)| Address {
        ip: ip.into(),
        prefix_len: config.subnet.prefix_len(),
        gateway: config.gateway.into(),
    });
    std::iter::once(v4).chain(v6).collect()
}

/// Which end of an endpoint's veth pair.
#[derive(PartialEq, Eq)]
enum Side {
    Host,
    Container,
}

/// IPv6 on interface `ifname` of an endpoint on an IPv6 network, as the datapath expects it,
/// written while the link is down (its link-local address is made when it comes up):
/// - `addr_gen_mode` 0: the link-local address is the modified EUI-64 of the MAC, the one
///   `link_local_of` derives (the datapath recognises the host side and checks containers'
///   sources by it);
/// - no DAD: IPAM made the addresses unique, and DAD would keep them unusable for a second;
/// - in the container, no router advertisements: its router is the gateway, set statically.
fn ipv6_sysctls(ifname: &str, side: Side) -> Vec<(String, &'static str)> {
    let mut settings = vec![("addr_gen_mode", "0"), ("accept_dad", "0")];
    if side == Side::Container {
        settings.push(("accept_ra", "0"));
    }
    settings.push(("disable_ipv6", "0"));
    settings
        .into_iter()
        .map(|(key, value)| (format!("ipv6/conf/{ifname}/{key}"), value))
        .collect()
}

fn endpoint_entry(ep: &Endpoint, net: &Network) -> EndpointEntry {
    let mut flags = 0;
    if !net.icc {
        flags |= ENDPOINT_ICC_OFF;
    }
    if net.internal {
        flags |= ENDPOINT_INTERNAL;
    }
    let (ipv6, gateway6) = match ep.ipv6.zip(net.ipv6) {
        Some((ip, config)) => {
            flags |= ENDPOINT_IPV6;
            (ip, config.gateway)
        }
        None => (Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED),
    };
    EndpointEntry {
        ifindex: ep.host_ifindex,
        ifname: ep.host_ifname.clone(),
        endpoint: DatapathEndpoint {
            network_id: net.datapath_id,
            ipv4: ep.ipv4.octets(),
            gateway: net.ipv4.gateway.octets(),
            mac: ep.mac.0,
            host_mac: ep.host_mac.0,
            flags,
            slot: ep.slot,
            ipv6: ipv6.octets(),
            gateway6: gateway6.octets(),
        },
    }
}

/// The container's recorded process, if it is still alive *and* still in the container's
/// namespace (a recycled PID belongs to someone else and must never be signalled).
pub(super) fn running_pid(c: &Container) -> Option<u32> {
    let pid = c.pid?;
    same_file(Path::new(&format!("/proc/{pid}/ns/net")), &c.sandbox_key).then_some(pid)
}

/// Whether two paths name the same namespace (or file): same device and inode.
fn same_file(a: &Path, b: &Path) -> bool {
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
}
