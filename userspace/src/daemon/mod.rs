//! xnetd's core. A request flows state (validate, allocate) -> os (plumb) -> datapath (maps,
//! links) -> state (persist); a failure at any step undoes the earlier ones, so nothing is left
//! half-created. One lock serialises all changes: they are rare and short, and it keeps the
//! maps, the kernel and the state file in step.
//!
//! - [`networks`]: create, remove, the pre-defined `bridge`, `host` and `none`;
//! - [`containers`]: create, remove, connect, disconnect, attach, detach, and the plumbing of
//!   one endpoint (veth pair, addresses, routes, datapath) and its teardown;
//! - [`inspect`]: the Docker-shaped views;
//! - [`ports`]: published ports (host port allocation, conflicts, the datapath's entries);
//! - [`docker`]: the Docker engine's calls through the network plugin, [`docker_ipam`]: its
//!   IPAM plugin, and [`docker_names`]: Docker's names for what those calls made;
//! - `reconcile` (here): adopting what survived a restart.

mod containers;
mod docker;
mod docker_ipam;
mod docker_names;
mod inspect;
mod networks;
mod ports;

use std::{collections::BTreeSet, net::IpAddr, path::PathBuf, time::SystemTime};

use anyhow::Context as _;
use ipnet::IpNet;
use tokio::sync::{Mutex, Notify};

use crate::{
    api::types::{
        AttachRequest, ContainerCreate, ContainerInspect, ContainerStats, NetworkConnect,
        NetworkCreate, NetworkInspect, PortRange, StatsReport,
    },
    datapath::Datapath,
    error::{Result, XnetError},
    os::{Netlink, netns, sockets},
    state::{Network, Sandbox, State, Store},
};

use networks::subnets_and_gateways;
pub use networks::{DEFAULT_NETWORK, HOST_NETWORK, NONE_NETWORK};

/// Where one daemon keeps everything; several daemons with different paths coexist.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub bpffs: PathBuf,
    /// The interface egress leaves through (source-NATed to its address); none: no egress.
    pub uplink: Option<String>,
    /// Serve Docker's network plugin protocol (`--docker-plugin`).
    pub docker: Option<DockerConfig>,
}

/// xnetd as a Docker network plugin.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The driver name (`docker network create -d NAME`): the socket is
    /// `<plugin dir>/NAME.sock`.
    pub plugin: String,
    pub socket: PathBuf,
    /// Docker's API (`unix:///var/run/docker.sock`), asked for the names of what it made.
    pub api: String,
}

pub struct Daemon {
    inner: Mutex<Inner>,
    /// Woken when Docker made something that wants a name (see `docker_names`).
    names_wanted: Notify,
}

struct Inner {
    state: State,
    store: Store,
    datapath: Datapath,
    netlink: Netlink,
    /// Where container namespaces are pinned (beside the socket).
    netns_dir: PathBuf,
    /// The ports reserved from the ephemeral range by someone else (the admin) when the daemon
    /// started: kept whatever xnet publishes and withdraws (see `reserve_host_ports`).
    reserved_by_others: BTreeSet<u16>,
    /// Set when serving Docker's plugin protocol.
    docker: Option<DockerConfig>,
}

impl Daemon {
    /// Loads (or adopts) the datapath, reconciles it with the persisted state, and makes sure
    /// the pre-defined networks exist.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("creating {}", config.state_dir.display()))?;
        let store = Store::new(&config.state_dir);
        let state = store.load()?;
        let datapath = Datapath::load(&config.bpffs)?;
        let netlink = Netlink::current()?;
        // What the state publishes was reserved by the daemon's earlier run; the rest is not
        // ours.
        let mut reserved_by_others = sockets::reserved_ports()?;
        for m in state.containers.values().flat_map(|c| &c.ports) {
            for port in m.host_ports.clone() {
                reserved_by_others.remove(&port);
            }
        }
        let mut inner = Inner {
            state,
            store,
            datapath,
            netlink,
            netns_dir: netns::dir_for_socket(&config.socket),
            reserved_by_others,
            docker: config.docker.clone(),
        };
        inner.pin_host_namespace()?;
        inner.set_uplink(config.uplink.as_deref()).await?;
        if !inner.datapath.attach_host_hooks()? {
            eprintln!(
                "xnetd: no cgroup v2 hierarchy mounted: the host's own connections to published ports are not translated"
            );
        }
        inner.reconcile().await?;
        inner
            .ensure_predefined_networks()
            .await
            .map_err(|e| anyhow::anyhow!("creating the pre-defined networks: {e}"))?;
        inner.store.save(&inner.state)?;
        Ok(Self {
            inner: Mutex::new(inner),
            names_wanted: Notify::new(),
        })
    }

    pub async fn create_network(&self, req: NetworkCreate) -> Result<NetworkInspect> {
        let mut inner = self.inner.lock().await;
        let name = inner.create_network(req).await?;
        inner.network_inspect(&name)
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        self.inner.lock().await.remove_network(name).await
    }

    pub async fn networks(&self) -> Result<Vec<NetworkInspect>> {
        let inner = self.inner.lock().await;
        inner
            .network_names()
            .iter()
            .map(|name| inner.network_inspect(name))
            .collect()
    }

    pub async fn network(&self, name: &str) -> Result<NetworkInspect> {
        self.inner.lock().await.network_inspect(name)
    }

    pub async fn connect(&self, network: &str, req: NetworkConnect) -> Result<()> {
        self.inner.lock().await.connect(network, req).await
    }

    pub async fn disconnect(&self, network: &str, req: NetworkConnect) -> Result<()> {
        self.inner
            .lock()
            .await
            .disconnect(network, &req.container)
            .await
    }

    pub async fn create_container(&self, req: ContainerCreate) -> Result<ContainerInspect> {
        let mut inner = self.inner.lock().await;
        let name = inner.create_container(req).await?;
        Ok(inner.container_inspect(&inner.state.containers[&name]))
    }

    pub async fn attach(&self, req: AttachRequest) -> Result<ContainerInspect> {
        let mut inner = self.inner.lock().await;
        let name = inner.attach(req).await?;
        Ok(inner.container_inspect(&inner.state.containers[&name]))
    }

    pub async fn remove_container(&self, name: &str, force: bool) -> Result<()> {
        self.inner.lock().await.remove_container(name, force).await
    }

    /// `xnet port add`: the mappings added.
    pub async fn add_ports(&self, name: &str, specs: &[String]) -> Result<Vec<PortRange>> {
        self.inner.lock().await.add_ports(name, specs)
    }

    /// `xnet port rm`: the mappings removed.
    pub async fn remove_ports(&self, name: &str, specs: &[String]) -> Result<Vec<PortRange>> {
        self.inner.lock().await.remove_ports(name, specs)
    }

    pub async fn detach(&self, name: &str) -> Result<()> {
        self.inner.lock().await.detach(name).await
    }

    pub async fn containers(&self) -> Vec<ContainerInspect> {
        let inner = self.inner.lock().await;
        inner
            .state
            .containers
            .values()
            .map(|c| inner.container_inspect(c))
            .collect()
    }

    pub async fn container(&self, name: &str) -> Result<ContainerInspect> {
        let inner = self.inner.lock().await;
        Ok(inner.container_inspect(inner.state.container(name)?))
    }

    /// Records the process `xnet run` started in the container.
    pub async fn set_process(&self, name: &str, pid: u32) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let name = inner.state.container(name)?.name.clone();
        inner
            .state
            .containers
            .get_mut(&name)
            .expect("just found")
            .pid = Some(pid);
        inner.store.save(&inner.state)?;
        Ok(())
    }

    pub async fn stats(&self) -> StatsReport {
        let inner = self.inner.lock().await;
        let containers = inner
            .state
            .containers
            .values()
            .flat_map(|c| c.endpoints.iter().map(move |e| (c, e)))
            .map(|(c, e)| {
                let counters = inner.datapath.counters(e.slot);
                ContainerStats {
                    name: c.name.clone(),
                    network: e.network.clone(),
                    rx_packets: counters.rx_packets,
                    rx_bytes: counters.rx_bytes,
                    tx_packets: counters.tx_packets,
                    tx_bytes: counters.tx_bytes,
                    drops: counters.drops,
                }
            })
            .collect();
        let drops = inner
            .datapath
            .drop_counts()
            .into_iter()
            .map(|(reason, count)| (reason.name().to_string(), count))
            .collect();
        StatsReport { containers, drops }
    }
}

impl Inner {
    /// Makes the kernel match the state after a restart: endpoints whose namespace and veth
    /// survived are re-published and their pinned links adopted, and so are published ports;
    /// what vanished (a reboot, a removed attached container) is forgotten; map entries and
    /// pins the state doesn't know are removed.
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        let lo = self.loopback().await?;
        let networks: Vec<Network> = self.state.networks.values().cloned().collect();
        for net in &networks {
            self.add_network_to_host(lo, net).await?;
        }
        let known: Vec<IpNet> = networks
            .iter()
            .flat_map(subnets_and_gateways)
            .map(|(subnet, _)| subnet)
            .collect();
        for subnet in self.datapath.subnets() {
            if !known.contains(&subnet) {
                self.datapath.remove_subnet(subnet)?;
            }
        }
        let names: Vec<String> = self.state.containers.keys().cloned().collect();
        for name in names {
            let container = self.state.containers[&name].clone();
            if container.sandbox != Sandbox::Host && !netns::is_pinned(&container.sandbox_key) {
                eprintln!("xnetd: container {name}'s namespace is gone; forgetting it");
                self.teardown(&container).await?;
                self.state.containers.remove(&name);
                continue;
            }
            let mut kept = Vec::new();
            for ep in &container.endpoints {
                let link = self.netlink.link_by_name(&ep.host_ifname).await?;
                let docker = container.sandbox == Sandbox::Docker;
                let survived = link.is_some_and(|l| l.index == ep.host_ifindex)
                    && (!docker || self.docker_endpoint_survived(ep).await?);
                if survived {
                    // (Containers plumbed by a daemon from before the uplink's XDP program
                    // need it too; Docker's had it from the start.)
                    if !docker {
                        containers::accept_xdp_frames(&container.sandbox_key, &ep.ifname)?;
                    }
                    self.datapath.add_endpoint(&self.endpoint_entry(ep)?)?;
                    kept.push(ep.clone());
                } else {
                    eprintln!(
                        "xnetd: {name}'s endpoint on {} is gone; forgetting it",
                        ep.network
                    );
                    self.teardown_endpoint(ep).await?;
                }
            }
            let stored = self.state.containers.get_mut(&name).expect("listed");
            // Published ports went with their endpoint, the first.
            let first = |eps: &[crate::state::Endpoint]| eps.first().map(|e| e.id.clone());
            if first(&kept) != first(&stored.endpoints) && !stored.ports.is_empty() {
                eprintln!("xnetd: {name}'s published ports lost their endpoint; forgetting them");
                stored.ports.clear();
            }
            stored.endpoints = kept;
            // A Docker container is its joined endpoints.
            if stored.sandbox == Sandbox::Docker && stored.endpoints.is_empty() {
                self.state.containers.remove(&name);
            }
        }
        self.prune_docker_endpoints();
        self.reconcile_ports()?;
        let live: Vec<u32> = self.all_endpoints().map(|e| e.host_ifindex).collect();
        for ifindex in self.datapath.endpoint_ifindexes() {
            if !live.contains(&ifindex) {
                self.datapath.remove_endpoint(ifindex)?;
            }
        }
        let live_entries = self
            .all_endpoints()
            .map(|e| Ok(self.endpoint_entry(e)?.endpoint))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.datapath.prune_neighbors(&live_entries)?;
        for net in &networks {
            self.sync_members(&net.name)?;
        }
        let known_ids: Vec<u32> = self
            .state
            .networks
            .values()
            .map(|n| n.datapath_id)
            .collect();
        for id in self.datapath.networks_with_members() {
            if !known_ids.contains(&id) {
                self.datapath.set_members(id, &[])?;
            }
        }
        for pin in self.datapath.stale_link_pins(&live)? {
            std::fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
        }
        self.store.save(&self.state)
    }

    /// Points egress at `uplink` (by name, in the daemon's namespace), or turns it off.
    async fn set_uplink(&mut self, uplink: Option<&str>) -> anyhow::Result<()> {
        let Some(name) = uplink else {
            return self.datapath.clear_uplink();
        };
        let link = self
            .netlink
            .link_by_name(name)
            .await?
            .with_context(|| format!("--uplink {name}: no such interface"))?;
        let addresses = self.netlink.global_addresses(link.index).await?;
        let ipv4 = addresses
            .iter()
            .find_map(|a| match a {
                IpAddr::V4(ip) => Some(*ip),
                IpAddr::V6(_) => None,
            })
            .with_context(|| format!("--uplink {name}: the interface has no IPv4 address"))?;
        // Without a global IPv6 address, IPv6 egress is dropped (`no-uplink`); IPv4 still
        // works.
        let ipv6 = addresses.iter().find_map(|a| match a {
            IpAddr::V6(ip) => Some(*ip),
            IpAddr::V4(_) => None,
        });
        self.datapath
            .set_uplink(name, link.index, ipv4.octets(), ipv6)
    }

    /// Rewrites network `name`'s member list (its broadcast fan-out) from the state.
    fn sync_members(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(net) = self.state.networks.get(name) else {
            return Ok(());
        };
        let members: Vec<u32> = self
            .state
            .endpoints_on(name)
            .map(|(_, e)| e.host_ifindex)
            .collect();
        self.datapath.set_members(net.datapath_id, &members)
    }

    fn all_endpoints(&self) -> impl Iterator<Item = &crate::state::Endpoint> {
        self.state.containers.values().flat_map(|c| &c.endpoints)
    }

    async fn loopback(&self) -> anyhow::Result<u32> {
        Ok(self
            .netlink
            .link_by_name("lo")
            .await?
            .context("the host namespace has no loopback")?
            .index)
    }
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn validate_name(name: &str, what: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(XnetError::invalid(format!(
            "invalid {what} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// A Docker-style 64-hex-digit id.
fn random_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "a", "db-1", "x_y.z", "9lives"] {
            assert!(validate_name(ok, "container").is_ok(), "{ok}");
        }
        for bad in ["", "-web", ".x", "a b", "a/b", "é"] {
            assert!(validate_name(bad, "container").is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = random_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_id().unwrap());
    }
}
