//! Containers: a network namespace (made by xnet, attached, or the host's) with one endpoint
//! per network it is connected to. `run` (create), `attach`, `rm`, `detach`, and what they
//! share: making everything a container needs in one go, or nothing.

use std::path::Path;

use anyhow::Context as _;
use tracing::info;

use super::{
    endpoints::StaticIps,
    inner::{Inner, Target},
    resolv,
};
use crate::{
    api::types::{AttachRequest, ContainerCreate},
    drivers::{BRIDGE, EndpointDriver},
    error::{Result, XnetError},
    os::{Netlink, netns},
    plumbing::{self, Placement},
    state::{
        Container, DEFAULT_NETWORK, KernelObject, Mac, Network, Sandbox,
        ids::{now, random_id},
        rules::{
            check_attachable, check_publishable, parse_specs, refuse_docker_container,
            refuse_docker_network, validate_name,
        },
    },
};

/// Like Docker, a container's interfaces on IPv4-only networks get no IPv6 (they inherit
/// `default` when they move in), so they send no router solicitations or ND that the datapath
/// would only drop; interfaces on IPv6 networks turn it on for themselves.
const CONTAINER_SYSCTLS: &[(&str, &str)] = &[("ipv6/conf/default/disable_ipv6", "1")];

/// The name of the host namespace's pin, beside the containers' (Docker calls it `default`).
pub(super) const HOST_SANDBOX: &str = "default";

/// What a new container's first endpoint gets beyond its addresses.
struct EndpointExtras {
    /// More names for the embedded DNS.
    aliases: Vec<String>,
    /// A MAC asked for (checked: `Inner::free_mac`).
    mac: Option<Mac>,
}

/// Where a container's namespace comes from.
enum NewSandbox<'a> {
    /// A new one, made by xnet.
    Fresh,
    /// An existing one (another runtime's), pinned from this path.
    Pin(&'a Path),
}

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
        let target = self.target(req.network.as_deref().unwrap_or(DEFAULT_NETWORK))?;
        let ips = StaticIps::new(&req.ip, &req.ip6);
        if let (Target::Recordless { name, .. }, Some(flag)) = (&target, ips.first_flag()) {
            return Err(XnetError::invalid(format!(
                "{flag} is not supported on the {name} network"
            )));
        }
        // Checked on every network, also the host's, where they are then discarded (the CLI
        // warns, as Docker's does): the container already shares the host's ports.
        let specs = parse_specs(&req.publish)?;
        let aliases = resolv::checked_aliases(&req.aliases)?;
        let dns_config = resolv::dns_config(&req.dns, &req.dns_search, &req.dns_option)?;
        let mut container = self.new_container(req.name, Sandbox::Owned, req.command)?;
        container.dns = dns_config;
        let net = match target {
            Target::Recordless {
                host_namespace: true,
                ..
            } => {
                container.sandbox = Sandbox::Host;
                container.sandbox_key = self.netns_dir.join(HOST_SANDBOX);
                return self.keep(container, &[]).await;
            }
            Target::Recordless { .. } => None,
            Target::Network(net, driver) => {
                refuse_docker_network(&net, &format!("docker run --network {}", net.name))?;
                check_attachable(&net)?;
                Some((*net, driver))
            }
        };
        // Host ports are resolved before anything is made, so a conflict leaves nothing.
        if !specs.is_empty() {
            self.check_driver_publishes(net.as_ref().map(|(n, _)| n))?;
            let ipv6 = check_publishable(&container, net.as_ref().map(|(n, _)| n))?;
            container.ports = self.resolve_ports(&container.name, ipv6, &specs)?;
        }
        // A fresh namespace has only loopback: its first interface is eth0.
        self.build(
            container,
            NewSandbox::Fresh,
            net,
            ips,
            "eth0".into(),
            EndpointExtras { aliases, mac: None },
        )
        .await
    }

    /// `xnet attach`: an endpoint for a namespace that something else made (a Docker,
    /// containerd or podman container). xnet pins the namespace with a bind mount of its own,
    /// so it stays reachable by path however the owner names it.
    pub(super) async fn attach(&mut self, req: AttachRequest) -> Result<String> {
        self.check_new_name(&req.name)?;
        let network = req.network.as_deref().unwrap_or(DEFAULT_NETWORK);
        let (net, driver) = match self.target(network)? {
            Target::Recordless { name, .. } => {
                return Err(XnetError::invalid(format!(
                    "cannot attach to the {name} network: it has no datapath"
                )));
            }
            Target::Network(net, driver) => (*net, driver),
        };
        refuse_docker_network(&net, &format!("docker network connect {}", net.name))?;
        check_attachable(&net)?;
        let source = Path::new(&req.netns);
        if !netns::is_pinned(source) {
            return Err(XnetError::invalid(format!(
                "{} is not a network namespace",
                req.netns
            )));
        }
        if netns::same_namespace(source, Path::new("/proc/self/ns/net")) {
            return Err(XnetError::invalid(
                "that is the host's own network namespace; use --network host to run there",
            ));
        }
        let aliases = resolv::checked_aliases(&req.aliases)?;
        let ifname = match req.ifname {
            Some(ifname) => plumbing::check_free_ifname(source, &ifname).await?,
            None => plumbing::free_ifname(source).await?,
        };
        let mac = match &req.mac {
            Some(mac) => Some(self.free_mac(&net, mac)?),
            None => None,
        };
        let mut container = self.new_container(req.name, Sandbox::Attached, Vec::new())?;
        container.embedded_dns = req.embedded_dns;
        let ips = StaticIps::new(&req.ip, &req.ip6);
        self.build(
            container,
            NewSandbox::Pin(source),
            Some((net, driver)),
            ips,
            ifname,
            EndpointExtras { aliases, mac },
        )
        .await
    }

    /// `mac` checked for an endpoint on `net`: a unicast MAC no endpoint of the network has,
    /// on a bridge network (a LAN driver gives the MACs of its LAN, and an overlay's are
    /// registered with the cluster).
    fn free_mac(&self, net: &Network, mac: &str) -> Result<Mac> {
        let parsed: Mac = mac
            .parse()
            .map_err(|_| XnetError::invalid(format!("invalid MAC address {mac:?}")))?;
        if parsed.0[0] & 1 != 0 || parsed.0 == [0; 6] {
            return Err(XnetError::invalid(format!(
                "{mac} is not a unicast MAC address"
            )));
        }
        if net.driver != BRIDGE || net.vni.is_some() {
            return Err(XnetError::invalid(format!(
                "a MAC address can be chosen on bridge networks only, not on {}",
                net.name
            )));
        }
        if self
            .state
            .endpoints_on(&net.name)
            .any(|(_, e)| e.mac == parsed)
        {
            return Err(XnetError::conflict(format!(
                "MAC address {mac} is already in use on network {}",
                net.name
            )));
        }
        Ok(parsed)
    }

    /// A container record with a new id and its sandbox key beside the daemon's socket.
    fn new_container(
        &self,
        name: String,
        sandbox: Sandbox,
        command: Vec<String>,
    ) -> Result<Container> {
        let id = random_id()?;
        Ok(Container {
            sandbox_key: self.netns_dir.join(&id[..12]),
            created: now(),
            command,
            pid: None,
            sandbox,
            endpoints: Vec::new(),
            ports: Vec::new(),
            docker: None,
            dns: Default::default(),
            embedded_dns: false,
            name,
            id,
        })
    }

    /// Makes the container's namespace and, given a network, its first endpoint (on `ifname`)
    /// and its published ports; keeps the container, or undoes everything on any failure.
    /// Every name and address is chosen first, and recorded in flight before anything exists.
    async fn build(
        &mut self,
        mut container: Container,
        sandbox: NewSandbox<'_>,
        net: Option<(Network, &'static dyn EndpointDriver)>,
        ips: StaticIps<'_>,
        ifname: String,
        extras: EndpointExtras,
    ) -> Result<String> {
        if let Some((net, _)) = &net {
            let mut ep = self.new_endpoint(net, ips, ifname, &container.name).await?;
            ep.aliases = extras.aliases;
            if let Some(mac) = extras.mac {
                ep.mac = mac;
            }
            container.endpoints.push(ep);
        }
        let objects = container.kernel_objects();
        self.begin(&objects)?;
        let built = async {
            match sandbox {
                NewSandbox::Fresh => create_sandbox(&container.sandbox_key).await?,
                NewSandbox::Pin(source) => netns::pin(source, &container.sandbox_key)?,
            }
            if let (Some((net, driver)), Some(ep)) = (&net, container.endpoints.first_mut()) {
                let placement = Placement::Namespace(&container.sandbox_key);
                driver
                    .plumb_endpoint(&mut self.kernel, placement, ep, net)
                    .await?;
            }
            // Only now does the first endpoint have the host-side ifindex they lead to.
            self.publish_ports(&container, &container.ports)?;
            self.write_resolv_conf(&container)?;
            Ok::<_, XnetError>(())
        }
        .await;
        if let Err(e) = built {
            self.undo(&container, &objects).await;
            return Err(e);
        }
        self.keep(container, &objects).await
    }

    /// Adds a fully plumbed container to the state, no longer in flight, and persists it
    /// (undoing it all if the state cannot be written).
    async fn keep(&mut self, container: Container, objects: &[KernelObject]) -> Result<String> {
        let name = container.name.clone();
        let networks: Vec<String> = container
            .endpoints
            .iter()
            .map(|e| e.network.clone())
            .collect();
        self.state.containers.insert(name.clone(), container);
        self.settle(objects);
        let kept = self
            .save()
            .and_then(|()| networks.iter().try_for_each(|net| self.sync_members(net)));
        if let Err(e) = kept {
            let container = self.state.containers.remove(&name).expect("just inserted");
            self.unsettle(objects);
            self.undo(&container, objects).await;
            for net in &networks {
                let _ = self.sync_members(net);
            }
            return Err(e.into());
        }
        let c = &self.state.containers[&name];
        match c.endpoints.first() {
            Some(ep) => {
                info!(container = %name, network = %ep.network, ip = %ep.ipv4, interface = %ep.host_ifname, "container created")
            }
            None => info!(container = %name, sandbox = ?c.sandbox, "container created"),
        }
        Ok(name)
    }

    /// Undoes a container that was never kept, and settles its in-flight `objects`.
    async fn undo(&mut self, container: &Container, objects: &[KernelObject]) {
        let undone = self.teardown(container).await;
        self.settle_undone(undone, objects, &format!("container {}", container.name));
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

    /// Forgets a torn-down container and updates its networks' member lists.
    fn forget(&mut self, container: &Container) -> Result<()> {
        self.state.containers.remove(&container.name);
        self.save()?;
        for ep in &container.endpoints {
            self.sync_members(&ep.network)?;
        }
        info!(container = %container.name, "container removed");
        Ok(())
    }

    /// Removes a container's endpoints and xnet's pin of its namespace (for an owned namespace,
    /// the last reference: it dies with its last process). Tolerates parts that never existed.
    pub(super) async fn teardown(&mut self, container: &Container) -> anyhow::Result<()> {
        self.unpublish_ports(container, &container.ports)?;
        for ep in &container.endpoints {
            self.teardown_endpoint(ep).await?;
        }
        // The host's namespace and Docker's sandboxes are not xnet's to remove.
        if matches!(container.sandbox, Sandbox::Owned | Sandbox::Attached) {
            netns::remove(&container.sandbox_key)?;
        }
        self.remove_resolv_conf(container)?;
        Ok(())
    }
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

/// The container's recorded process, if it is still alive *and* still in the container's
/// namespace (a recycled PID belongs to someone else and must never be signalled).
pub(super) fn running_pid(c: &Container) -> Option<u32> {
    let pid = c.pid?;
    netns::same_namespace(Path::new(&format!("/proc/{pid}/ns/net")), &c.sandbox_key).then_some(pid)
}
