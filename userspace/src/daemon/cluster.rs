//! This host in its cluster (`--cluster-store`). Joining and watching run beside the requests,
//! never in their way: a store that does not answer keeps neither xnetd from starting nor
//! bridge networks from working; only what needs the store (overlay networks) is refused,
//! with the reason, until it answers again. Then this host joins again (with its lease if it
//! is still alive, so the others never see it leave), reads every network of global scope
//! and mirrors them into its state and kernel, and follows the store's changes.

use std::{net::Ipv4Addr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use etcd_client::Event;
use ipnet::IpNet;
use tracing::{info, warn};

use super::{
    Daemon,
    inner::{Cluster, Inner, Underlay},
    networks::network_record,
};
use crate::{
    api::types::NetworkCreate,
    cluster::{
        config::{Advertise, ClusterConfig},
        keys,
        records::{ClusterNetwork, HostRecord, Settings},
        store::{LEASE_TTL_SECONDS, Store, Taken, unavailable},
        view::ClusterView,
    },
    encryption::{
        Device, EncryptionWorker,
        worker::{DEVICE_NAME, ENCRYPTION_PORT, MAX_QUEUES},
    },
    error::{Result, XnetError},
    os::{netns, tap},
    state::{
        Membership, Network,
        host_key::HostKey,
        ids::{random_below, random_id},
        ipam::{self, Taken as TakenSubnet},
        options::{NetworkOptions, OPT_VXLANID},
    },
};

/// How long GRO on the encryption worker's device holds a packet for more of its flow: a
/// little over the time between two of a fast flow's packets through the worker.
const GRO_FLUSH_TIMEOUT_NS: &str = "200000";
/// How soon to try a store that did not answer again.
const RETRY: Duration = Duration::from_secs(2);
/// How many times a new network chooses a free VNI and subnet while other hosts claim them
/// first.
const ATTEMPTS: usize = 5;
/// The longest pause, in milliseconds, before choosing again after a lost race.
const RACE_PAUSE_MS: usize = 50;

impl Inner {
    /// Sets this host up as a member of the cluster `config` names: its id (kept in the state
    /// for good), its underlay address and interface. Nothing is asked of the store yet.
    /// `key` is this host's key pair for encrypted overlays: its public half goes into the host
    /// record.
    pub(super) async fn enter_cluster(
        &mut self,
        config: ClusterConfig,
        key: &HostKey,
    ) -> anyhow::Result<()> {
        let membership = match &self.state.cluster {
            Some(m) => m.clone(),
            None => Membership {
                host_id: random_id()?[..12].to_string(),
                lease: None,
            },
        };
        self.state.cluster = Some(membership.clone());
        let flag = "--cluster-advertise";
        let name = match &config.advertise {
            Advertise::Address(ip) => {
                self.kernel
                    .netlink
                    .interface_with_address(flag, (*ip).into())
                    .await?
            }
            Advertise::Interface(name) => name.clone(),
        };
        let interface = self.kernel.netlink.interface(flag, &name).await?;
        let address = match &config.advertise {
            Advertise::Address(ip) => *ip,
            Advertise::Interface(name) => interface
                .ipv4
                .with_context(|| format!("{flag} {name}: the interface has no IPv4 address"))?,
        };
        let host = HostRecord {
            id: membership.host_id,
            name: config.host_name.clone(),
            address,
            public_key: key.public_base64(),
        };
        info!(host = %host.name, address = %host.address, "member of the cluster at {}", config.endpoints.join(","));
        let encryption = match self.start_encryption(key, address, interface.mtu).await {
            Ok(worker) => Some(worker),
            Err(e) => {
                warn!(
                    "encrypted overlay networks cannot cross hosts from this host: {e:#}; their traffic to other hosts is dropped, counted as unencrypted in xnet stats"
                );
                None
            }
        };
        self.cluster = Some(Cluster {
            config,
            host,
            underlay: Underlay {
                index: interface.index,
                name: interface.name,
                mtu: interface.mtu,
            },
            store: None,
            view: ClusterView::default(),
            encryption,
        });
        Ok(())
    }

    /// Starts the encryption worker on this host's advertise address, with its TAP device:
    /// one queue per CPU (up to [`MAX_QUEUES`]), the underlay's `mtu` (it carries outer
    /// packets), IPv6 off (the kernel sends nothing of its own through it), GRO holding packets
    /// for [`GRO_FLUSH_TIMEOUT_NS`] between the worker's writes (each write is a NAPI poll of
    /// its own, whose end would flush GRO), and the datapath's programs attached. Its peers
    /// come with the cluster's view.
    async fn start_encryption(
        &mut self,
        key: &HostKey,
        address: Ipv4Addr,
        mtu: u32,
    ) -> anyhow::Result<EncryptionWorker> {
        let queues = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_QUEUES);
        let queues = tap::open(DEVICE_NAME, queues)
            .with_context(|| format!("creating the TAP device {DEVICE_NAME}"))?;
        let netlink = &self.kernel.netlink;
        let link = netlink
            .link_by_name(DEVICE_NAME)
            .await?
            .with_context(|| format!("{DEVICE_NAME} vanished"))?;
        netlink.set_mtu(link.index, mtu).await?;
        let ipv6_off = format!("ipv6/conf/{DEVICE_NAME}/disable_ipv6");
        // Absent when the kernel has no IPv6: nothing to turn off then.
        if Path::new("/proc/sys/net").join(&ipv6_off).exists() {
            netns::write_sysctls(&[(ipv6_off.as_str(), "1")])?;
        }
        netns::write_device_attribute(DEVICE_NAME, "gro_flush_timeout", GRO_FLUSH_TIMEOUT_NS)?;
        netlink.set_up(link.index).await?;
        self.kernel.datapath.attach_decrypted(DEVICE_NAME)?;
        let device = Device {
            ifindex: link.index,
            mac: link.mac,
            queues,
        };
        let worker = EncryptionWorker::start(key.secret(), address, ENCRYPTION_PORT, device)?;
        info!(
            device = DEVICE_NAME,
            "encryption worker listening on {address}:{ENCRYPTION_PORT}"
        );
        Ok(worker)
    }

    /// The store and the cluster's settings, for a request that needs them: refused in one
    /// line without a cluster, or while the store does not answer.
    pub(crate) fn cluster_store(&self, driver: &str) -> Result<(Store, Settings)> {
        let Some(cluster) = &self.cluster else {
            return Err(XnetError::invalid(format!(
                "driver {driver} needs a cluster: start xnetd with --cluster-store etcd://HOST:PORT[,HOST:PORT…] and --cluster-advertise IP|IFACE"
            )));
        };
        cluster.store.clone().ok_or_else(|| {
            unavailable(
                &cluster.config.endpoints.join(","),
                "not joined since it last failed",
            )
        })
    }

    /// `network create` of a network of global scope: its subnets chosen clear of this
    /// host's and of every network of the cluster, its VNI given or the lowest free one
    /// (which its options show, as Docker's do), written to the store, then installed here;
    /// the other hosts follow through their watch. Two hosts choosing the same free VNI or
    /// subnet at once: the store's transaction lets one win, the other chooses again.
    pub(super) async fn create_global_network(
        &mut self,
        req: NetworkCreate,
        driver: String,
        options: NetworkOptions,
        mut store: Store,
        settings: Settings,
    ) -> Result<String> {
        let (want4, want6) = ipam::by_family(&req.subnets, &req.gateways, &req.ip_ranges)?;
        for _ in 0..ATTEMPTS {
            let (mut taken4, mut taken6) = self.taken_subnets().await?;
            for subnet in store.subnets().await? {
                let owner = "a network of the cluster".to_string();
                match subnet {
                    IpNet::V4(subnet) => taken4.push(TakenSubnet { subnet, owner }),
                    IpNet::V6(subnet) => taken6.push(TakenSubnet { subnet, owner }),
                }
            }
            let ipv4 = ipam::configure(&want4, &taken4, ipam::overlay_pool())?;
            let ipv6 = match req.enable_ipv6 {
                true => Some(ipam::configure(
                    &want6,
                    &taken6,
                    ipam::ula_pool(settings.ula_prefix),
                )?),
                false => None,
            };
            let vni = match options.vni {
                Some(vni) => vni,
                None => store.free_vni().await?,
            };
            let mut net = network_record(req.clone(), driver.clone(), &options, ipv4, ipv6)?;
            net.vni = Some(vni);
            net.options.insert(OPT_VXLANID.into(), vni.to_string());
            let global = ClusterNetwork::of(&net).expect("it has a VNI");
            // The default MTU is each host's own: its underlay's less VXLAN's overhead.
            net.mtu = net.mtu.or(self.overlay_mtu(&net));
            match store.create_network(&global).await? {
                None => {
                    info!(network = %net.name, vni, "network created in the cluster");
                    return match self.install_network(net).await {
                        Ok(name) => Ok(name),
                        Err(e) => {
                            if let Err(cleanup) = store.remove_network(&global).await {
                                warn!(network = %global.name, "withdrawing it from the cluster: {cleanup}");
                            }
                            Err(e)
                        }
                    };
                }
                Some(Taken::Name) => {
                    return Err(XnetError::conflict(format!(
                        "network with name {} already exists in the cluster",
                        req.name
                    )));
                }
                Some(Taken::Vni) if options.vni.is_some() => {
                    return Err(XnetError::conflict(format!(
                        "VXLAN id {vni} is already used by another network of the cluster"
                    )));
                }
                Some(Taken::Subnet) if !req.subnets.is_empty() => {
                    return Err(XnetError::conflict(format!(
                        "subnet {} is already used by another network of the cluster",
                        req.subnets.join(", ")
                    )));
                }
                // The hosts that lost would all choose the same VNI or subnet again, and
                // one would lose again: a random pause takes them apart.
                Some(Taken::Vni | Taken::Subnet) => {
                    let pause = random_below(RACE_PAUSE_MS)?;
                    tokio::time::sleep(Duration::from_millis(pause as u64)).await;
                }
            }
        }
        Err(XnetError::conflict(
            "other hosts kept taking the VXLAN id or subnet chosen first; try again",
        ))
    }

    /// Makes this host's networks of global scope those of the cluster: what the store has
    /// and this host lacks is installed, what this host has and the store no longer has is
    /// removed (unless containers of this host still use it). A network that clashes with
    /// one of this host's (its name, or an overlapping subnet: the creating host could only
    /// check its own) is left out, with a warning, and the others go on.
    async fn mirror_global_networks(&mut self, networks: Vec<ClusterNetwork>) -> Result<()> {
        for wanted in &networks {
            if self.state.networks.values().any(|n| n.id == wanted.id) {
                continue;
            }
            let mut local = wanted.to_local();
            local.mtu = local.mtu.or(self.overlay_mtu(&local));
            let clash = self.state.networks.values().find(|n| {
                n.name == local.name
                    || n.subnets_and_gateways().any(|(a, _)| {
                        local
                            .subnets_and_gateways()
                            .any(|(b, _)| a.contains(&b.network()) || b.contains(&a.network()))
                    })
            });
            if let Some(clash) = clash {
                warn!(
                    network = %wanted.name,
                    "the cluster's network clashes with this host's network {} (name or subnet); not mirrored",
                    clash.name
                );
                continue;
            }
            match self.install_network(local).await {
                Ok(name) => {
                    info!(network = %name, vni = wanted.vni, "network of the cluster mirrored")
                }
                Err(e) => warn!(network = %wanted.name, "mirroring the cluster's network: {e}"),
            }
        }
        let gone: Vec<Network> = self
            .state
            .networks
            .values()
            .filter(|n| n.vni.is_some() && !networks.iter().any(|w| w.id == n.id))
            .cloned()
            .collect();
        for net in gone {
            match self.uninstall_network(&net).await {
                Ok(()) => info!(network = %net.name, "the cluster removed the network"),
                Err(e) => warn!(network = %net.name, "the cluster removed the network: {e}"),
            }
        }
        Ok(())
    }
}

/// A host that just joined: the store it joined through, its lease, and the revision to
/// follow the store's changes from.
pub struct Joined {
    store: Store,
    lease: i64,
    revision: i64,
}

impl Daemon {
    /// Joins the cluster once, before the daemon serves, so its first requests find the
    /// store when it answers (when it does not, the daemon serves anyway and
    /// [`Self::keep_in_cluster`] keeps trying). None without a cluster or on failure, said in
    /// the log.
    pub async fn join_cluster_now(&self) -> Option<Joined> {
        match self.join_cluster().await {
            Ok(joined) => joined,
            Err(e) => {
                warn!("{e}; retrying every {RETRY:?}");
                None
            }
        }
    }

    /// Keeps this host in its cluster until the process ends, from `joined` (what
    /// [`Self::join_cluster_now`] got): renews the lease, mirrors the networks of global
    /// scope as they change, and (re)joins whenever the store answers again. Does nothing
    /// without `--cluster-store`.
    pub async fn keep_in_cluster(self: Arc<Self>, mut joined: Option<Joined>) {
        if self.inner.lock().await.cluster.is_none() {
            return;
        }
        let mut warned = joined.is_none();
        loop {
            if let Some(Joined {
                store,
                lease,
                revision,
            }) = joined.take()
            {
                warned = false;
                let why = self.follow_cluster(store, lease, revision).await;
                warn!("lost the cluster store ({why}); joining again");
                if let Some(cluster) = self.inner.lock().await.cluster.as_mut() {
                    cluster.store = None;
                }
            } else {
                tokio::time::sleep(RETRY).await;
            }
            // At once after losing it: another member may answer.
            match self.join_cluster().await {
                Ok(again) => joined = again,
                Err(e) if !warned => {
                    warn!("{e}; retrying every {RETRY:?}");
                    warned = true;
                }
                Err(_) => {}
            }
        }
    }

    /// Connects, agrees on the settings, registers this host under its lease and mirrors the
    /// cluster's networks. None without a cluster.
    async fn join_cluster(&self) -> Result<Option<Joined>> {
        let (config, host, lease, ula) = {
            let inner = self.inner.lock().await;
            let Some(cluster) = &inner.cluster else {
                return Ok(None);
            };
            let lease = inner.state.cluster.as_ref().and_then(|m| m.lease);
            (
                cluster.config.clone(),
                cluster.host.clone(),
                lease,
                inner.state.ula_prefix,
            )
        };
        let mut store = Store::connect(&config).await?;
        let ula = match ula {
            Some(ula) => ula,
            None => {
                let mut random = [0u8; 5];
                getrandom::fill(&mut random)
                    .map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
                ipam::ula_prefix(random)
            }
        };
        let settings = store.settings(config.vxlan_port, ula).await?;
        let lease = store.join(&host, lease).await?;
        // Everything read at one revision, page by page, before taking the lock: the watch,
        // from the next revision on, brings every change after it (this host's own restored
        // endpoints below too), so nothing is missed and nothing applied out of order.
        let (networks, revision) = store.networks().await?;
        let (hosts, _) = store.list_keyed(keys::HOSTS, Some(revision)).await?;
        let (endpoints, _) = store.endpoints(Some(revision)).await?;
        let mut inner = self.inner.lock().await;
        if let Some(membership) = inner.state.cluster.as_mut() {
            membership.lease = Some(lease);
        }
        inner.mirror_global_networks(networks).await?;
        inner.save()?;
        inner.restore_own_endpoints(&mut store, lease).await?;
        let underlay = inner.cluster.as_ref().map(|c| c.underlay.index);
        if let Some(index) = underlay {
            inner
                .kernel
                .datapath
                .set_tunnel(Some((index, host.address, settings.vxlan_port)))?;
        }
        if let Some(cluster) = inner.cluster.as_mut() {
            cluster.store = Some((store.clone(), settings));
            cluster.view = ClusterView::new(hosts, endpoints);
        }
        inner.resync_remote_endpoints()?;
        info!(host = %host.name, lease, "joined the cluster");
        Ok(Some(Joined {
            store,
            lease,
            revision,
        }))
    }

    /// Renews the lease and follows the store's changes until either fails; returns why.
    async fn follow_cluster(&self, mut store: Store, lease: i64, revision: i64) -> XnetError {
        let mut watch = match store.watch(revision + 1).await {
            Ok(watch) => watch,
            Err(e) => return e,
        };
        let mut renew =
            tokio::time::interval(Duration::from_secs((LEASE_TTL_SECONDS as u64 / 3).max(1)));
        loop {
            tokio::select! {
                _ = renew.tick() => match store.renew(lease).await {
                    Ok(true) => {}
                    Ok(false) => return XnetError::Unavailable("this host's lease expired".into()),
                    Err(e) => return e,
                },
                message = watch.message() => {
                    let events = match message {
                        Ok(Some(response)) => response.events().to_vec(),
                        Ok(None) => return XnetError::Unavailable("the watch ended".into()),
                        Err(e) => return XnetError::Unavailable(format!("watching: {e}")),
                    };
                    if let Err(e) = self.follow(&mut store, &events).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Applies one batch of the store's changes. Hosts and endpoints go to the view and the
    /// datapath one change at a time; if a network changed, the networks are mirrored again
    /// (they are few and immutable: listing them is simpler than following each) and the
    /// datapath's remote endpoints are resynced whole, since a network that comes or goes
    /// changes which endpoints are remote entries here.
    async fn follow(&self, store: &mut Store, events: &[Event]) -> Result<()> {
        let networks_changed = events.iter().any(|e| {
            e.kv()
                .and_then(|kv| kv.key_str().ok())
                .is_some_and(|key| key.starts_with(keys::NETWORKS))
        });
        if !networks_changed {
            self.inner.lock().await.follow_remote_endpoints(events)?;
            return Ok(());
        }
        let (networks, _) = store.networks().await?;
        let mut inner = self.inner.lock().await;
        if let Some(cluster) = inner.cluster.as_mut() {
            for event in events {
                cluster.view.apply(event);
            }
        }
        inner.mirror_global_networks(networks).await?;
        inner.save()?;
        inner.resync_remote_endpoints()?;
        Ok(())
    }
}
