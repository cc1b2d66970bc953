//! xnetd's core. A request flows state (validate, allocate) -> in flight (record what will be
//! made) -> driver (plumb the OS and the datapath) -> state (persist); a failure at any step
//! undoes the earlier ones, so nothing is left half-created, and a crash leaves nothing the
//! next start cannot explain. One lock serialises all changes: they are rare and short, and it
//! keeps the maps, the kernel and the state file in step.
//!
//! - `inner`: the state under the lock and what every request shares;
//! - `networks`: create, remove, the pre-defined `bridge`, `host` and `none`;
//! - `containers`: create (`run`), attach, remove, detach;
//! - `endpoints`: addresses and names of new endpoints, connect, disconnect;
//! - `ports`: published ports (host port allocation, conflicts, the datapath's entries);
//! - `inspect`: the Docker-shaped views;
//! - `start`: making the kernel match the state when the daemon starts;
//! - `cluster`: this host in its cluster (joining, its lease, mirroring global networks);
//! - `overlay`: endpoints on networks of global scope, this host's and the other hosts';
//! - `resolv`: containers' resolv.conf files, their DNS flags and aliases checked;
//! - `remotes`: which remote endpoints and VTEPs the datapath has, from the cluster's view;
//! - `observe`: what the metrics show;
//! - `monitors` and `monitor`: `xnet monitor`, the attached monitors and the datapath's
//!   events they get.
//!
//! Docker's plugin protocols are served by [`crate::docker`] on the same lock.

mod cluster;
mod config;
mod containers;
mod encryption;
mod endpoints;
pub(crate) mod inner;
mod inspect;
pub(crate) mod monitor;
mod monitors;
mod networks;
mod observe;
mod overlay;
mod ports;
mod remotes;
mod resolv;
mod start;

use std::collections::BTreeMap;

use anyhow::Context as _;
use tokio::sync::{Mutex, Notify};
use tracing::warn;

use self::{inner::Inner, monitors::MonitorHub};
use crate::{
    api::types::{
        AttachRequest, ContainerCreate, ContainerInspect, ContainerStats, EncryptionStats,
        NetworkConnect, NetworkCreate, NetworkInspect, PortRange, StatsReport,
    },
    datapath::Datapath,
    dns::{DnsServers, resolvers_in},
    drivers::{self, Kernel},
    error::Result,
    os::{Netlink, netns, sockets},
    state::{Store, host_key::HostKey},
};
pub use config::{Config, DockerConfig};
pub use observe::{Observation, Peer};

pub struct Daemon {
    pub(crate) inner: Mutex<Inner>,
    /// Woken when Docker made something that wants a name (see `docker::names`).
    pub(crate) names_wanted: Notify,
    pub(crate) monitor: MonitorHub,
}

impl Daemon {
    /// Loads (or adopts) the datapath, reconciles it with the persisted state, and makes sure
    /// the pre-defined networks exist.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("creating {}", config.state_dir.display()))?;
        let store = Store::new(&config.state_dir);
        let mut state = store.load()?;
        // Docker's networks were stored with the plugin's name as their driver before drivers
        // had names of their own; all of them are bridge networks.
        for net in state.networks.values_mut() {
            if net.docker.is_some() && drivers::by_name(&net.driver).is_none() {
                net.driver = drivers::BRIDGE.into();
            }
        }
        let netlink = Netlink::current()?;
        let loopback = netlink
            .link_by_name("lo")
            .await?
            .context("the host namespace has no loopback")?
            .index;
        let kernel = Kernel {
            netlink,
            loopback,
            datapath: Datapath::load(&config.bpffs)?,
        };
        let reserved_by_others = start::reserved_by_others(&state, sockets::reserved_ports()?);
        let mut inner = Inner {
            state,
            store,
            kernel,
            netns_dir: netns::dir_for_socket(&config.socket),
            reserved_by_others,
            docker: config.docker.clone(),
            cluster: None,
            dns: DnsServers::new(dns_resolvers(&config.resolv_conf)),
        };
        // A previous run's worker and its device died with it.
        inner.kernel.datapath.clear_encryption_peers()?;
        if let Some(cluster) = &config.cluster {
            let key = HostKey::load_or_create(&config.state_dir)?;
            inner.enter_cluster(cluster.clone(), &key).await?;
        }
        inner.pin_host_namespace()?;
        let underlay = inner.cluster.as_ref().map(|c| c.underlay.name.clone());
        let uplink = uplink_of(config.uplink.as_deref(), underlay.as_deref())?;
        inner.set_uplink(uplink).await?;
        if !inner.kernel.datapath.attach_host_hooks()? {
            warn!(
                "no cgroup v2 hierarchy mounted: the host's own connections to published ports are not translated"
            );
        }
        inner.reconcile().await?;
        inner.prune_resolv_confs()?;
        inner
            .ensure_predefined_networks()
            .await
            .map_err(|e| anyhow::anyhow!("creating the pre-defined networks: {e}"))?;
        inner.save()?;
        Ok(Self {
            inner: Mutex::new(inner),
            names_wanted: Notify::new(),
            monitor: MonitorHub::new(config.monitor_rate),
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
        inner.save()?;
        Ok(())
    }

    /// What a metrics scrape shows (`observe`).
    pub async fn observe(&self) -> Observation {
        let stats = self.stats().await;
        self.inner.lock().await.observe(stats)
    }

    pub async fn stats(&self) -> StatsReport {
        let inner = self.inner.lock().await;
        let containers = inner
            .state
            .containers
            .values()
            .flat_map(|c| c.endpoints.iter().map(move |e| (c, e)))
            .map(|(c, e)| {
                let counters = inner.kernel.datapath.counters(e.slot);
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
        let mut drops: BTreeMap<String, u64> = inner
            .kernel
            .datapath
            .drop_counts()
            .into_iter()
            .map(|(reason, count)| (reason.name().to_string(), count))
            .collect();
        // The encryption worker's drops beside the datapath's.
        let worker = inner.cluster.as_ref().and_then(|c| c.encryption.as_ref());
        for (reason, count) in worker.map(|w| w.counters().drops()).into_iter().flatten() {
            *drops.entry(reason.to_string()).or_default() += count;
        }
        let encryption = worker.map(|w| {
            let work = w.counters().work();
            EncryptionStats {
                peers: w.peers().iter().map(ToString::to_string).collect(),
                sealed: work.sealed,
                opened: work.opened,
                handshakes: work.handshakes,
            }
        });
        StatsReport {
            containers,
            drops,
            encryption,
        }
    }
}

/// The host's resolvers for the embedded DNS to forward to (none, said in the log, if the
/// file cannot be read: containers then resolve only each other).
fn dns_resolvers(resolv_conf: &std::path::Path) -> Vec<std::net::SocketAddr> {
    let resolvers = resolvers_in(resolv_conf).unwrap_or_else(|e| {
        warn!("the embedded DNS forwards nowhere: {e:#}");
        Vec::new()
    });
    if resolvers.is_empty() {
        warn!(resolv_conf = %resolv_conf.display(), "no nameserver to forward containers' other names to");
    }
    resolvers
}

/// The uplink: `--uplink`, or in a cluster the interface of `--cluster-advertise`. VXLAN
/// arrives and is decapsulated on the uplink (its tcx program), so the advertise address must
/// be one of the uplink's.
fn uplink_of<'a>(
    uplink: Option<&'a str>,
    underlay: Option<&'a str>,
) -> anyhow::Result<Option<&'a str>> {
    match (uplink, underlay) {
        (Some(uplink), Some(underlay)) if uplink != underlay => anyhow::bail!(
            "--cluster-advertise is on {underlay}, not on --uplink {uplink}: overlay traffic enters and leaves through the uplink"
        ),
        (Some(uplink), _) => Ok(Some(uplink)),
        (None, underlay) => Ok(underlay),
    }
}
