//! Containers and their endpoints: a container is a network namespace (created by xnet,
//! attached, or the host's) with one endpoint per network it is connected to. An endpoint is a
//! veth pair: `ethN` inside, `xv…` on the host, carrying the datapath's programs.

use std::{collections::BTreeSet, net::Ipv4Addr, os::unix::fs::MetadataExt as _, path::Path};

use anyhow::Context as _;
use xnet_common::{
    ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, Endpoint as DatapathEndpoint, MAX_ENDPOINTS, NeighborKey,
};

use super::{
    Inner,
    networks::{DEFAULT_NETWORK, HOST_NETWORK, HOST_VETH_PREFIX},
    now, random_id, validate_name,
};
use crate::{
    api::types::{AttachRequest, ContainerCreate, NetworkConnect},
    datapath::EndpointEntry,
    error::{Result, XnetError},
    os::{Netlink, netns},
    state::{Container, Endpoint, Mac, Network, Sandbox, ipam},
};

/// Host-side veths' temporary peers are named with this prefix plus an id prefix.
const PEER_VETH_PREFIX: &str = "xp";

/// Networks are IPv4-only so far: like Docker on such networks, a container's interfaces get
/// no IPv6 (they inherit `default` when they move in), so they send no router solicitations
/// or ND that the datapath would only drop.
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
        if predefined.is_some() && req.ip.is_some() {
            return Err(XnetError::invalid(format!(
                "--ip is not supported on the {network} network"
            )));
        }
        let mut container = Container {
            sandbox_key: self.netns_dir.join(&id[..12]),
            created: now(),
            command: req.command,
            pid: None,
            sandbox: Sandbox::Owned,
            endpoints: Vec::new(),
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
        self.build(
            container,
            NewSandbox::Fresh,
            net.as_ref(),
            req.ip.as_deref(),
        )
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
            name: req.name.clone(),
            id,
        };
        self.build(
            container,
            NewSandbox::Pin(source),
            Some(&net),
            req.ip.as_deref(),
        )
        .await
    }

    /// Makes the container's namespace and, given a network, its first endpoint; keeps the
    /// container, or undoes everything on any failure.
    async fn build(
        &mut self,
        mut container: Container,
        sandbox: NewSandbox<'_>,
        net: Option<&Network>,
        ip: Option<&str>,
    ) -> Result<String> {
        let built = async {
            match sandbox {
                NewSandbox::Fresh => create_sandbox(&container.sandbox_key).await?,
                NewSandbox::Pin(source) => netns::pin(source, &container.sandbox_key)?,
            }
            if let Some(net) = net {
                let ifname = free_ifname(&container.sandbox_key).await?;
                let ep = self.new_endpoint(net, ip, ifname)?;
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
        if container.endpoints.iter().any(|e| e.network == net.name) {
            return Err(XnetError::conflict(format!(
                "endpoint with name {} already exists in network {}",
                container.name, net.name
            )));
        }
        let ifname = free_ifname(&container.sandbox_key).await?;
        let mut ep = self.new_endpoint(&net, req.ip.as_deref(), ifname)?;
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
        self.teardown_endpoint(&container.endpoints[position])
            .await?;
        let stored = self
            .state
            .containers
            .get_mut(&container.name)
            .expect("found above");
        stored.endpoints.remove(position);
        // The default route left with the interface it used; the next network provides one.
        if let Some(next) = stored.endpoints.first() {
            let gateway = self.state.networks[&next.network].gateway;
            let inside = Netlink::in_netns(&container.sandbox_key)?;
            if !inside.has_default_route().await? {
                inside.add_default_route(gateway).await?;
            }
        }
        self.store.save(&self.state)?;
        self.sync_members(&net.name)?;
        Ok(())
    }

    pub(super) async fn remove_container(&mut self, name_or_id: &str, force: bool) -> Result<()> {
        let container = self.state.container(name_or_id)?.clone();
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

    /// An endpoint on `net` with an address from its IPAM, not yet plumbed.
    fn new_endpoint(&self, net: &Network, ip: Option<&str>, ifname: String) -> Result<Endpoint> {
        let used: BTreeSet<Ipv4Addr> = self
            .state
            .endpoints_on(&net.name)
            .map(|(_, e)| e.ipv4)
            .collect();
        let ipv4 = ipam::allocate(net.subnet, net.ip_range, net.gateway, &used, ip)?;
        let slots: BTreeSet<u32> = self
            .state
            .containers
            .values()
            .flat_map(|c| &c.endpoints)
            .map(|e| e.slot)
            .collect();
        let slot = (0..MAX_ENDPOINTS)
            .find(|s| !slots.contains(s))
            .ok_or_else(|| {
                XnetError::conflict(format!("all {MAX_ENDPOINTS} endpoints are in use"))
            })?;
        let id = random_id()?;
        Ok(Endpoint {
            host_ifname: format!("{HOST_VETH_PREFIX}{}", &id[..11]),
            id,
            network: net.name.clone(),
            ipv4,
            mac: Mac::for_ipv4(ipv4),
            ifname,
            host_ifindex: 0,
            host_mac: Mac([0; 6]),
            slot,
        })
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
            let neighbor = self.state.networks.get(&ep.network).map(|n| NeighborKey {
                network_id: n.datapath_id,
                ipv4: ep.ipv4.octets(),
            });
            self.datapath.remove_endpoint(ep.host_ifindex, neighbor)?;
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
        for ep in &container.endpoints {
            self.teardown_endpoint(ep).await?;
        }
        if container.sandbox != Sandbox::Host {
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
    let peer_name = format!("{PEER_VETH_PREFIX}{}", &ep.id[..11]);
    netlink.create_veth(&ep.host_ifname, &peer_name).await?;
    let host = netlink
        .link_by_name(&ep.host_ifname)
        .await?
        .context("host-side veth vanished")?;
    ep.host_ifindex = host.index;
    ep.host_mac = Mac(host.mac);
    // The host side needs no IPv6 of its own; without it the host sends the container no
    // router solicitations or MLD reports (noise in its counters, and in tests).
    std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ep.host_ifname),
        "1",
    )
    .with_context(|| format!("disabling IPv6 on {}", ep.host_ifname))?;
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
    inside
        .add_address(link.index, ep.ipv4, net.subnet.prefix_len())
        .await?;
    inside.set_up(link.index).await?;
    if !inside.has_default_route().await? {
        inside.add_default_route(net.gateway).await?;
    }

    datapath.add_endpoint(&endpoint_entry(ep, net))?;
    if let Some(mtu) = net.mtu {
        netlink.set_mtu(ep.host_ifindex, mtu).await?;
    }
    netlink.set_up(ep.host_ifindex).await?;
    netlink
        .add_host_route(ep.ipv4, ep.host_ifindex, net.gateway)
        .await?;
    Ok(())
}

fn endpoint_entry(ep: &Endpoint, net: &Network) -> EndpointEntry {
    let mut flags = 0;
    if !net.icc {
        flags |= ENDPOINT_ICC_OFF;
    }
    if net.internal {
        flags |= ENDPOINT_INTERNAL;
    }
    EndpointEntry {
        ifindex: ep.host_ifindex,
        ifname: ep.host_ifname.clone(),
        endpoint: DatapathEndpoint {
            network_id: net.datapath_id,
            ipv4: ep.ipv4.octets(),
            gateway: net.gateway.octets(),
            mac: ep.mac.0,
            host_mac: ep.host_mac.0,
            flags,
            slot: ep.slot,
            ipv6: [0; 16],
            gateway6: [0; 16],
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
