//! xnetd's core. A request flows state (validate, allocate) -> os (plumb) -> datapath (maps,
//! links) -> state (persist); a failure at any step undoes the earlier ones, so nothing is left
//! half-created. One lock serialises all changes: they are rare and short, and it keeps the
//! maps, the kernel and the state file in step.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Context as _;
use tokio::sync::Mutex;
use xnet_common::Endpoint as DatapathEndpoint;

use crate::{
    api::types::{
        ContainerCreate, ContainerInspect, ContainerState, ContainerStats, EndpointSettings, Ipam,
        IpamConfig, NetworkContainer, NetworkCreate, NetworkInspect, NetworkSettings, StatsReport,
    },
    datapath::{Datapath, EndpointEntry},
    error::{Result, XnetError},
    os::{Netlink, netns},
    state::{
        Container, Endpoint, Mac, Network, State, Store,
        ipam::{self, Taken},
    },
};

/// The network every daemon has from its first start, like Docker's.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The only driver so far.
const BRIDGE_DRIVER: &str = "bridge";
/// Host-side veths and their temporary peers are named with these prefixes plus an id prefix.
const HOST_VETH_PREFIX: &str = "xv";
const PEER_VETH_PREFIX: &str = "xp";

/// Networks are IPv4-only so far: like Docker on such networks, the container's eth0 gets no
/// IPv6 (it inherits `default` when it moves in), so it sends no router solicitations or ND
/// that the datapath would only drop.
const CONTAINER_SYSCTLS: &[(&str, &str)] = &[("ipv6/conf/default/disable_ipv6", "1")];

/// Where one daemon keeps everything; several daemons with different paths coexist.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub bpffs: PathBuf,
}

pub struct Daemon {
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    store: Store,
    datapath: Datapath,
    netlink: Netlink,
    netns_dir: PathBuf,
}

impl Daemon {
    /// Loads (or adopts) the datapath, reconciles it with the persisted state, and makes sure
    /// the default network exists.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("creating {}", config.state_dir.display()))?;
        let store = Store::new(&config.state_dir);
        let state = store.load()?;
        let datapath = Datapath::load(&config.bpffs)?;
        let netlink = Netlink::current()?;
        let mut inner = Inner {
            state,
            store,
            datapath,
            netlink,
            netns_dir: netns::dir_for_socket(&config.socket),
        };
        inner.reconcile().await?;
        if !inner.state.networks.contains_key(DEFAULT_NETWORK) {
            inner
                .create_network(NetworkCreate {
                    name: DEFAULT_NETWORK.into(),
                    driver: None,
                    subnet: None,
                    gateway: None,
                })
                .await
                .map_err(|e| anyhow::anyhow!("creating the default network: {e}"))?;
        }
        inner.store.save(&inner.state)?;
        Ok(Self {
            inner: Mutex::new(inner),
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
            .state
            .networks
            .keys()
            .map(|name| inner.network_inspect(name))
            .collect()
    }

    pub async fn network(&self, name: &str) -> Result<NetworkInspect> {
        let inner = self.inner.lock().await;
        let name = inner.state.network(name)?.name.clone();
        inner.network_inspect(&name)
    }

    pub async fn create_container(&self, req: ContainerCreate) -> Result<ContainerInspect> {
        let mut inner = self.inner.lock().await;
        let name = inner.create_container(req).await?;
        Ok(container_inspect(
            &inner.state,
            &inner.state.containers[&name],
        ))
    }

    pub async fn remove_container(&self, name: &str, force: bool) -> Result<()> {
        self.inner.lock().await.remove_container(name, force).await
    }

    pub async fn containers(&self) -> Vec<ContainerInspect> {
        let inner = self.inner.lock().await;
        inner
            .state
            .containers
            .values()
            .map(|c| container_inspect(&inner.state, c))
            .collect()
    }

    pub async fn container(&self, name: &str) -> Result<ContainerInspect> {
        let inner = self.inner.lock().await;
        Ok(container_inspect(
            &inner.state,
            inner.state.container(name)?,
        ))
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
            .map(|c| {
                let counters = inner.datapath.counters(c.endpoint.host_ifindex);
                ContainerStats {
                    name: c.name.clone(),
                    network: c.endpoint.network.clone(),
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
    /// survived are re-published and their pinned links adopted; endpoints whose kernel side
    /// vanished (a reboot) are forgotten; map entries and pins the state doesn't know go.
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        let lo = self.loopback().await?;
        for net in self.state.networks.values() {
            self.netlink.add_address(lo, net.gateway, 32).await?;
        }
        let names: Vec<String> = self.state.containers.keys().cloned().collect();
        for name in names {
            let container = self.state.containers[&name].clone();
            let link = self
                .netlink
                .link_by_name(&container.endpoint.host_ifname)
                .await?;
            let alive = netns::is_pinned(&container.sandbox_key)
                && link.is_some_and(|l| l.index == container.endpoint.host_ifindex);
            if alive {
                let entry = self.endpoint_entry(&container)?;
                self.datapath.add_endpoint(&entry)?;
            } else {
                eprintln!(
                    "xnetd: container {name} did not survive (namespace or veth gone); forgetting it"
                );
                self.teardown(&container).await?;
                self.state.containers.remove(&name);
            }
        }
        let live: Vec<u32> = self
            .state
            .containers
            .values()
            .map(|c| c.endpoint.host_ifindex)
            .collect();
        for ifindex in self.datapath.endpoint_ifindexes() {
            if !live.contains(&ifindex) {
                self.datapath.remove_endpoint(ifindex, 0, [0; 4])?;
            }
        }
        let live_neighbors: BTreeSet<(u32, [u8; 4])> = self
            .state
            .containers
            .values()
            .filter_map(|c| {
                let net = self.state.networks.get(&c.endpoint.network)?;
                Some((net.datapath_id, c.endpoint.ipv4.octets()))
            })
            .collect();
        for key in self.datapath.neighbor_keys() {
            if !live_neighbors.contains(&(key.network_id, key.ipv4)) {
                self.datapath.remove_neighbor(&key)?;
            }
        }
        for pin in self.datapath.stale_link_pins(&live)? {
            std::fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
        }
        self.store.save(&self.state)
    }

    async fn loopback(&self) -> anyhow::Result<u32> {
        Ok(self
            .netlink
            .link_by_name("lo")
            .await?
            .context("the host namespace has no loopback")?
            .index)
    }

    /// Subnets a new network must not overlap: our networks, and every host route that is not
    /// one of ours (a Docker engine's 172.17.0.0/16 on docker0, the uplink's LAN, ...).
    async fn taken_subnets(&self) -> Result<Vec<Taken>> {
        let mut taken: Vec<Taken> = self
            .state
            .networks
            .values()
            .map(|n| Taken {
                subnet: n.subnet,
                owner: format!("network {}", n.name),
            })
            .collect();
        let names: BTreeMap<u32, String> = self
            .netlink
            .links()
            .await?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        for route in self.netlink.routes().await? {
            let name = route.oif.and_then(|i| names.get(&i)).cloned();
            let ours = name
                .as_deref()
                .is_some_and(|n| n.starts_with(HOST_VETH_PREFIX));
            if route.destination.prefix_len() == 0 || ours {
                continue;
            }
            taken.push(Taken {
                subnet: route.destination,
                owner: format!("a host route on {}", name.unwrap_or_else(|| "?".into())),
            });
        }
        Ok(taken)
    }

    async fn create_network(&mut self, req: NetworkCreate) -> Result<String> {
        validate_name(&req.name, "network")?;
        if self.state.networks.contains_key(&req.name) {
            return Err(XnetError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let driver = req.driver.unwrap_or_else(|| BRIDGE_DRIVER.into());
        if driver != BRIDGE_DRIVER {
            return Err(XnetError::invalid(format!(
                "driver {driver:?} is not supported (available: bridge)"
            )));
        }
        let taken = self.taken_subnets().await?;
        let subnet = match &req.subnet {
            Some(text) => ipam::parse_subnet(text, &taken)?,
            None => {
                if req.gateway.is_some() {
                    return Err(XnetError::invalid("--gateway needs --subnet"));
                }
                ipam::pick_subnet(&taken)?
            }
        };
        let gateway = ipam::gateway(subnet, req.gateway.as_deref())?;
        let lo = self.loopback().await?;
        // The gateway is an address of the host itself; without a bridge device it lives on
        // the loopback, and the kernel accepts it on whichever veth a packet enters.
        self.netlink.add_address(lo, gateway, 32).await?;
        let network = Network {
            id: random_id()?,
            name: req.name.clone(),
            driver,
            subnet,
            gateway,
            datapath_id: self.state.next_network_id,
            created: now(),
        };
        self.state.next_network_id += 1;
        self.state.networks.insert(req.name.clone(), network);
        if let Err(e) = self.store.save(&self.state) {
            self.state.networks.remove(&req.name);
            let _ = self.netlink.delete_address(lo, gateway).await;
            return Err(e.into());
        }
        Ok(req.name)
    }

    async fn remove_network(&mut self, name_or_id: &str) -> Result<()> {
        let net = self.state.network(name_or_id)?.clone();
        if net.name == DEFAULT_NETWORK {
            return Err(XnetError::invalid(format!(
                "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
            )));
        }
        let attached: Vec<&str> = self
            .state
            .containers_on(&net.name)
            .map(|c| c.name.as_str())
            .collect();
        if !attached.is_empty() {
            return Err(XnetError::conflict(format!(
                "error while removing network: network {} has active endpoints (containers: {})",
                net.name,
                attached.join(", ")
            )));
        }
        let lo = self.loopback().await?;
        self.netlink.delete_address(lo, net.gateway).await?;
        self.state.networks.remove(&net.name);
        self.store.save(&self.state)?;
        Ok(())
    }

    async fn create_container(&mut self, req: ContainerCreate) -> Result<String> {
        validate_name(&req.name, "container")?;
        if self.state.containers.contains_key(&req.name) {
            return Err(XnetError::conflict(format!(
                "Conflict. The container name \"/{}\" is already in use",
                req.name
            )));
        }
        let net = self
            .state
            .network(req.network.as_deref().unwrap_or(DEFAULT_NETWORK))?
            .clone();
        let used: BTreeSet<Ipv4Addr> = self
            .state
            .containers_on(&net.name)
            .map(|c| c.endpoint.ipv4)
            .collect();
        let ipv4 = ipam::allocate(net.subnet, net.gateway, &used, req.ip.as_deref())?;
        let id = random_id()?;
        let container = Container {
            sandbox_key: self.netns_dir.join(&id[..12]),
            created: now(),
            command: req.command,
            pid: None,
            endpoint: Endpoint {
                id: random_id()?,
                network: net.name.clone(),
                ipv4,
                mac: Mac::for_ipv4(ipv4),
                host_ifname: format!("{HOST_VETH_PREFIX}{}", &id[..11]),
                host_ifindex: 0,
                host_mac: Mac([0; 6]),
            },
            name: req.name.clone(),
            id,
        };
        let mut container = container;
        if let Err(e) = self.plumb(&mut container, &net).await {
            if let Err(cleanup) = self.teardown(&container).await {
                eprintln!("xnetd: cleaning up after a failed create: {cleanup:#}");
            }
            return Err(e.into());
        }
        self.state
            .containers
            .insert(req.name.clone(), container.clone());
        if let Err(e) = self.store.save(&self.state) {
            self.state.containers.remove(&req.name);
            let _ = self.teardown(&container).await;
            return Err(e.into());
        }
        Ok(req.name)
    }

    /// Creates the container's namespace and veth, configures both ends, and publishes the
    /// endpoint in the datapath before the host side comes up.
    async fn plumb(&mut self, container: &mut Container, net: &Network) -> anyhow::Result<()> {
        let ep = &mut container.endpoint;
        let peer_name = format!("{PEER_VETH_PREFIX}{}", &container.id[..11]);
        netns::create(&container.sandbox_key, CONTAINER_SYSCTLS)?;
        self.netlink
            .create_veth(&ep.host_ifname, &peer_name)
            .await?;
        let host = self
            .netlink
            .link_by_name(&ep.host_ifname)
            .await?
            .context("host-side veth vanished")?;
        ep.host_ifindex = host.index;
        ep.host_mac = Mac(host.mac);
        let peer = self
            .netlink
            .link_by_name(&peer_name)
            .await?
            .context("container-side veth vanished")?;
        self.netlink
            .move_to_netns(peer.index, &container.sandbox_key)
            .await?;

        let inside = Netlink::in_netns(&container.sandbox_key)?;
        let eth0 = inside
            .link_by_name(&peer_name)
            .await?
            .context("veth missing in the container namespace")?;
        inside.rename(eth0.index, "eth0", ep.mac.0).await?;
        inside
            .add_address(eth0.index, ep.ipv4, net.subnet.prefix_len())
            .await?;
        inside.set_up(eth0.index).await?;
        let lo = inside
            .link_by_name("lo")
            .await?
            .context("container namespace has no loopback")?;
        inside.set_up(lo.index).await?;
        inside.add_default_route(net.gateway).await?;

        let entry = EndpointEntry {
            ifindex: ep.host_ifindex,
            ifname: ep.host_ifname.clone(),
            endpoint: datapath_endpoint(ep, net),
        };
        self.datapath.add_endpoint(&entry)?;
        self.netlink.set_up(ep.host_ifindex).await?;
        self.netlink
            .add_host_route(ep.ipv4, ep.host_ifindex, net.gateway)
            .await?;
        Ok(())
    }

    /// Undoes `plumb` as far as it got; every step tolerates what is already gone.
    async fn teardown(&mut self, container: &Container) -> anyhow::Result<()> {
        let ep = &container.endpoint;
        if ep.host_ifindex != 0 {
            let network_id = self
                .state
                .networks
                .get(&ep.network)
                .map_or(0, |n| n.datapath_id);
            self.datapath
                .remove_endpoint(ep.host_ifindex, network_id, ep.ipv4.octets())?;
        }
        // Deleting one end of a veth deletes both, and the host route with it.
        if let Some(link) = self.netlink.link_by_name(&ep.host_ifname).await? {
            self.netlink.delete_link(link.index).await?;
        }
        netns::remove(&container.sandbox_key)
    }

    async fn remove_container(&mut self, name_or_id: &str, force: bool) -> Result<()> {
        let container = self.state.container(name_or_id)?.clone();
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
        self.state.containers.remove(&container.name);
        self.store.save(&self.state)?;
        Ok(())
    }

    fn endpoint_entry(&self, container: &Container) -> anyhow::Result<EndpointEntry> {
        let ep = &container.endpoint;
        let net = self.state.networks.get(&ep.network).with_context(|| {
            format!(
                "container {} is on unknown network {}",
                container.name, ep.network
            )
        })?;
        Ok(EndpointEntry {
            ifindex: ep.host_ifindex,
            ifname: ep.host_ifname.clone(),
            endpoint: datapath_endpoint(ep, net),
        })
    }

    fn network_inspect(&self, name: &str) -> Result<NetworkInspect> {
        let net = self.state.network(name)?;
        let containers = self
            .state
            .containers_on(&net.name)
            .map(|c| {
                (
                    c.id.clone(),
                    NetworkContainer {
                        name: c.name.clone(),
                        endpoint_id: c.endpoint.id.clone(),
                        mac_address: c.endpoint.mac.to_string(),
                        ipv4_address: format!("{}/{}", c.endpoint.ipv4, net.subnet.prefix_len()),
                        ipv6_address: String::new(),
                    },
                )
            })
            .collect();
        Ok(NetworkInspect {
            name: net.name.clone(),
            id: net.id.clone(),
            created: net.created.clone(),
            scope: "local".into(),
            driver: net.driver.clone(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: vec![IpamConfig {
                    subnet: net.subnet.to_string(),
                    gateway: net.gateway.to_string(),
                }],
            },
            internal: false,
            attachable: false,
            containers,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        })
    }
}

fn datapath_endpoint(ep: &Endpoint, net: &Network) -> DatapathEndpoint {
    DatapathEndpoint {
        network_id: net.datapath_id,
        ipv4: ep.ipv4.octets(),
        gateway: net.gateway.octets(),
        mac: ep.mac.0,
        host_mac: ep.host_mac.0,
    }
}

fn container_inspect(state: &State, c: &Container) -> ContainerInspect {
    let ep = &c.endpoint;
    let mut networks = BTreeMap::new();
    if let Some(net) = state.networks.get(&ep.network) {
        networks.insert(
            net.name.clone(),
            EndpointSettings {
                network_id: net.id.clone(),
                endpoint_id: ep.id.clone(),
                gateway: net.gateway.to_string(),
                ip_address: ep.ipv4.to_string(),
                ip_prefix_len: net.subnet.prefix_len(),
                mac_address: ep.mac.to_string(),
            },
        );
    }
    let pid = running_pid(c);
    let status = match (pid, c.pid) {
        (Some(_), _) => "running",
        (None, Some(_)) => "exited",
        (None, None) => "created",
    };
    ContainerInspect {
        id: c.id.clone(),
        name: format!("/{}", c.name),
        created: c.created.clone(),
        path: c.command.first().cloned().unwrap_or_default(),
        args: c.command.iter().skip(1).cloned().collect(),
        state: ContainerState {
            status: status.into(),
            running: pid.is_some(),
            pid: pid.unwrap_or(0),
        },
        network_settings: NetworkSettings {
            sandbox_key: c.sandbox_key.display().to_string(),
            networks,
        },
    }
}

/// The container's recorded process, if it is still alive *and* still in the container's
/// namespace (a recycled PID belongs to someone else and must never be signalled).
fn running_pid(c: &Container) -> Option<u32> {
    let pid = c.pid?;
    let ns_of = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let process_ns = ns_of(Path::new(&format!("/proc/{pid}/ns/net")))?;
    (Some(process_ns) == ns_of(&c.sandbox_key)).then_some(pid)
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
