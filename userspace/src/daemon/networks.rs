//! Networks: create and remove through their driver, the pre-defined `bridge`, `host` and
//! `none`, and the subnets a new network must stay clear of.

use std::collections::BTreeMap;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tracing::info;

use super::inner::{Inner, Target};
use crate::{
    api::types::NetworkCreate,
    cluster::records::ClusterNetwork,
    drivers::{self, Addressing, Attachment, BRIDGE, Scope},
    error::{Result, XnetError},
    plumbing::HOST_VETH_PREFIX,
    state::{
        DEFAULT_NETWORK, IpConfig, KernelObject, Network,
        ids::{now, random_id},
        ipam::{self, Taken},
        options::NetworkOptions,
        rules::{refuse_docker_network, validate_name},
    },
};

impl Inner {
    /// The pre-defined networks every Docker engine has: `bridge` (a network of the bridge
    /// driver, made on first start), and `host` and `none` (no record, just an id).
    pub(super) async fn ensure_predefined_networks(&mut self) -> Result<()> {
        for (name, driver) in drivers::predefined() {
            match driver.attachment() {
                Attachment::Endpoints(_) if !self.state.networks.contains_key(name) => {
                    self.create_network(NetworkCreate {
                        name: name.into(),
                        driver: Some(driver.name().into()),
                        ..NetworkCreate::default()
                    })
                    .await?;
                }
                Attachment::Endpoints(_) => {}
                Attachment::HostNamespace | Attachment::Isolated => {
                    let id = self.state.predefined_id_mut(name).expect("recordless");
                    if id.is_empty() {
                        *id = random_id()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// All network names, pre-defined ones included, sorted.
    pub(super) fn network_names(&self) -> Vec<String> {
        let recordless = drivers::predefined()
            .map(|(name, _)| name)
            .filter(|name| !self.state.networks.contains_key(*name));
        let mut names: Vec<String> = self.state.networks.keys().cloned().collect();
        names.extend(recordless.map(String::from));
        names.sort();
        names
    }

    /// Subnets a new network must not overlap, per family: our networks', and every host
    /// route that is not one of ours (a Docker engine's 172.17.0.0/16 on docker0, the uplink's
    /// LAN, ...).
    pub(crate) async fn taken_subnets(&self) -> Result<(Vec<Taken<Ipv4Net>>, Vec<Taken<Ipv6Net>>)> {
        let mut taken = self.network_subnets();
        let netlink = &self.kernel.netlink;
        let names: BTreeMap<u32, String> = netlink
            .links()
            .await?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        for route in netlink.routes().await? {
            let name = route.oif.and_then(|i| names.get(&i)).cloned();
            let ours = name
                .as_deref()
                .is_some_and(|n| n.starts_with(HOST_VETH_PREFIX));
            if route.destination.prefix_len() == 0 || ours {
                continue;
            }
            let owner = format!("a host route on {}", name.unwrap_or_else(|| "?".into()));
            match route.destination {
                IpNet::V4(subnet) => taken.0.push(Taken { subnet, owner }),
                IpNet::V6(subnet) => taken.1.push(Taken { subnet, owner }),
            }
        }
        Ok(taken)
    }

    /// Our networks' subnets, per family: all a LAN network (whose subnet is its LAN's, often
    /// one the host routes already) must not overlap.
    fn network_subnets(&self) -> (Vec<Taken<Ipv4Net>>, Vec<Taken<Ipv6Net>>) {
        let mut taken = (Vec::new(), Vec::new());
        for n in self.state.networks.values() {
            let owner = format!("network {}", n.name);
            if let Some(v6) = &n.ipv6 {
                taken.1.push(Taken {
                    subnet: v6.subnet,
                    owner: owner.clone(),
                });
            }
            taken.0.push(Taken {
                subnet: n.ipv4.subnet,
                owner,
            });
        }
        taken
    }

    /// The daemon's unique local /48, made on first use.
    pub(crate) fn ula_prefix(&mut self) -> Result<Ipv6Net> {
        if let Some(ula) = self.state.ula_prefix {
            return Ok(ula);
        }
        let mut random = [0u8; 5];
        getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
        let ula = ipam::ula_prefix(random);
        self.state.ula_prefix = Some(ula);
        Ok(ula)
    }

    pub(super) async fn create_network(&mut self, req: NetworkCreate) -> Result<String> {
        validate_name(&req.name, "network")?;
        if self.state.networks.contains_key(&req.name)
            || matches!(self.recordless(&req.name), Some(Target::Recordless { name, .. }) if name == req.name)
        {
            return Err(XnetError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let driver_name = req.driver.clone().unwrap_or_else(|| BRIDGE.into());
        let driver = match drivers::by_name(&driver_name).map(|d| d.attachment()) {
            Some(Attachment::Endpoints(driver)) => driver,
            // Docker's words: there is one `host` and one `none`.
            Some(_) => {
                return Err(XnetError::conflict(format!(
                    "only one instance of \"{driver_name}\" network is allowed"
                )));
            }
            None => {
                return Err(XnetError::invalid(format!(
                    "driver {driver_name:?} is not supported (available: {})",
                    drivers::creatable().join(", ")
                )));
            }
        };
        let options = driver.check_options(&req.options, req.enable_ipv6)?;
        // A network of global scope lives in the cluster's store first.
        let cluster = match drivers::by_name(&driver_name).map(|d| d.scope()) {
            Some(Scope::Global) => Some(self.cluster_store(&driver_name)?),
            _ => None,
        };
        if !req.enable_ipv6
            && let Some(flag) = ipam::by_family(&req.subnets, &req.gateways, &req.ip_ranges)?
                .1
                .first_flag()
        {
            return Err(XnetError::invalid(format!("an IPv6 {flag} needs --ipv6")));
        }
        if let Some((store, settings)) = cluster {
            return self
                .create_global_network(req, driver_name, options, store, settings)
                .await;
        }
        let (want4, want6) = ipam::by_family(&req.subnets, &req.gateways, &req.ip_ranges)?;
        let (taken4, taken6) = match driver.addressing() {
            Addressing::Private => self.taken_subnets().await?,
            // The LAN's subnet is the host's too, often: only xnet's networks are in the way.
            Addressing::Lan => {
                if want4.subnet.is_none() {
                    return Err(XnetError::invalid(format!(
                        "a {driver_name} network needs --subnet: the subnet of its parent's LAN"
                    )));
                }
                self.network_subnets()
            }
        };
        // Beside a Docker engine, xnet's own networks keep out of the pools Docker's IPAM
        // hands out (it knows only Docker's networks).
        let pool = match self.docker {
            Some(_) => ipam::pool_beside_docker(),
            None => ipam::default_pool(),
        };
        let ipv4 = ipam::configure(&want4, &taken4, pool)?;
        let ipv6 = if req.enable_ipv6 {
            let pool = ipam::ula_pool(self.ula_prefix()?);
            Some(ipam::configure(&want6, &taken6, pool)?)
        } else {
            None
        };
        let network = network_record(req, driver_name, &options, ipv4, ipv6)?;
        driver.check_network(&network, &self.state.networks)?;
        self.install_network(network).await
    }

    /// Gives a new, validated network its datapath id and its host-wide objects (through its
    /// driver), and keeps it; undoes all of it on failure. Returns its name.
    pub(crate) async fn install_network(&mut self, mut network: Network) -> Result<String> {
        let driver = self.driver(&network)?;
        network.datapath_id = self.state.next_network_id;
        self.state.next_network_id += 1;
        let objects: Vec<KernelObject> = network
            .subnets_and_gateways()
            .map(|(_, ip)| KernelObject::HostAddress { ip })
            .collect();
        self.begin(&objects)?;
        let name = network.name.clone();
        let added = driver.add_network(&mut self.kernel, &network).await;
        self.state.networks.insert(name.clone(), network.clone());
        self.settle(&objects);
        if let Err(e) = added.and_then(|()| self.save()) {
            self.state.networks.remove(&name);
            self.unsettle(&objects);
            let undone = driver.remove_network(&mut self.kernel, &network).await;
            self.settle_undone(undone, &objects, &format!("network {name}"));
            return Err(e.into());
        }
        info!(network = %name, driver = %network.driver, subnet = %network.ipv4.subnet, "network created");
        Ok(name)
    }

    pub(super) async fn remove_network(&mut self, name_or_id: &str) -> Result<()> {
        let net = match self.target(name_or_id)? {
            Target::Recordless { name, .. } => {
                return Err(XnetError::invalid(format!(
                    "{name} is a pre-defined network and cannot be removed"
                )));
            }
            Target::Network(net, _) => *net,
        };
        refuse_docker_network(&net, "docker network rm")?;
        if net.name == DEFAULT_NETWORK {
            return Err(XnetError::invalid(format!(
                "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
            )));
        }
        if let Some(global) = ClusterNetwork::of(&net) {
            // Out of the cluster first: its store says which networks exist; this host's
            // containers are checked before, the others' by their hosts.
            self.check_unused(&net)?;
            let (mut store, _) = self.cluster_store(&net.driver)?;
            store.remove_network(&global).await?;
        }
        self.uninstall_network(&net).await
    }

    /// Refuses while containers of this host are attached to `net`, naming them.
    fn check_unused(&self, net: &Network) -> Result<()> {
        let attached: Vec<&str> = self
            .state
            .endpoints_on(&net.name)
            .map(|(c, _)| c.name.as_str())
            .collect();
        if attached.is_empty() {
            return Ok(());
        }
        Err(XnetError::conflict(format!(
            "error while removing network: network {} has active endpoints (containers: {})",
            net.name,
            attached.join(", ")
        )))
    }

    /// Removes a network no endpoint uses any more from the host, the datapath and the state.
    pub(crate) async fn uninstall_network(&mut self, net: &Network) -> Result<()> {
        self.check_unused(net)?;
        let driver = self.driver(net)?;
        driver.remove_network(&mut self.kernel, net).await?;
        self.state.networks.remove(&net.name);
        self.save()?;
        info!(network = %net.name, "network removed");
        Ok(())
    }
}

/// A new network's record, its addressing chosen, before it has a datapath id.
pub(super) fn network_record(
    req: NetworkCreate,
    driver: String,
    options: &NetworkOptions,
    ipv4: IpConfig<Ipv4Net>,
    ipv6: Option<IpConfig<Ipv6Net>>,
) -> Result<Network> {
    let aux_addresses = ipam::aux_addresses(&req.aux_addresses, &ipv4, ipv6.as_ref())?;
    Ok(Network {
        id: random_id()?,
        name: req.name,
        driver,
        ipv4,
        ipv6,
        datapath_id: 0,
        created: now(),
        internal: req.internal,
        options: req.options,
        icc: options.icc,
        mtu: options.mtu,
        docker: None,
        vni: None,
        attachable: req.attachable,
        aux_addresses,
    })
}
