//! Networks: user-defined bridge networks with their options, and the pre-defined `bridge`,
//! `host` and `none`.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Inner, docker::refuse_docker_network, now, random_id, validate_name};
use crate::{
    api::types::NetworkCreate,
    error::{Result, XnetError},
    state::{
        Network,
        ipam::{self, Taken},
    },
};

pub const DEFAULT_NETWORK: &str = "bridge";
pub const HOST_NETWORK: &str = "host";
pub const NONE_NETWORK: &str = "none";

/// The driver of every network xnet creates (and of `bridge`).
pub(super) const BRIDGE_DRIVER: &str = "bridge";
/// Docker's option keys that xnet implements; any other `-o` is refused rather than ignored.
const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// The kernel turns IPv6 off on a link with a smaller MTU (RFC 8200's minimum).
const IPV6_MIN_MTU: u32 = 1280;
/// Host-side veths are named with this prefix plus an id prefix; routes through them are ours.
pub(super) const HOST_VETH_PREFIX: &str = "xv";

/// The effect of a network's `-o` options.
pub(super) struct Options {
    pub icc: bool,
    pub mtu: Option<u32>,
}

pub(super) fn parse_options(options: &BTreeMap<String, String>) -> Result<Options> {
    let mut parsed = Options {
        icc: true,
        mtu: None,
    };
    for (key, value) in options {
        match key.as_str() {
            OPT_ICC => {
                parsed.icc = value.parse().map_err(|_| {
                    XnetError::invalid(format!(
                        "invalid {OPT_ICC}={value:?}: expected true or false"
                    ))
                })?;
            }
            OPT_MTU => {
                let mtu: u32 = value
                    .parse()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| {
                        XnetError::invalid(format!(
                            "invalid {OPT_MTU}={value:?}: expected a number from 68 to 65535"
                        ))
                    })?;
                parsed.mtu = Some(mtu);
            }
            _ => {
                return Err(XnetError::invalid(format!(
                    "unsupported network option {key:?} (supported: {OPT_ICC}, {OPT_MTU})"
                )));
            }
        }
    }
    Ok(parsed)
}

impl Inner {
    /// `bridge` (a real network), and `host` and `none` (no datapath, just names to run
    /// containers with), as every Docker engine has them.
    pub(super) async fn ensure_predefined_networks(&mut self) -> Result<()> {
        if !self.state.networks.contains_key(DEFAULT_NETWORK) {
            self.create_network(NetworkCreate {
                name: DEFAULT_NETWORK.into(),
                ..NetworkCreate::default()
            })
            .await?;
        }
        for id in [
            &mut self.state.host_network_id,
            &mut self.state.none_network_id,
        ] {
            if id.is_empty() {
                *id = random_id()?;
            }
        }
        Ok(())
    }

    /// All network names, pre-defined ones included, sorted.
    pub(super) fn network_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.state.networks.keys().cloned().collect();
        names.extend([HOST_NETWORK.to_string(), NONE_NETWORK.to_string()]);
        names.sort();
        names
    }

    /// A name (or id) that denotes `host` or `none`, resolved to that name.
    pub(super) fn predefined_without_datapath(&self, name_or_id: &str) -> Option<&'static str> {
        let is = |name: &str, id: &str| {
            name_or_id == name || (!name_or_id.is_empty() && id.starts_with(name_or_id))
        };
        if is(HOST_NETWORK, &self.state.host_network_id) {
            Some(HOST_NETWORK)
        } else if is(NONE_NETWORK, &self.state.none_network_id) {
            Some(NONE_NETWORK)
        } else {
            None
        }
    }

    /// Subnets a new network must not overlap, per family: our networks', and every host
    /// route that is not one of ours (a Docker engine's 172.17.0.0/16 on docker0, the uplink's
    /// LAN, ...).
    pub(super) async fn taken_subnets(&self) -> Result<(Vec<Taken<Ipv4Net>>, Vec<Taken<Ipv6Net>>)> {
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
            let owner = format!("a host route on {}", name.unwrap_or_else(|| "?".into()));
            match route.destination {
                IpNet::V4(subnet) => taken.0.push(Taken { subnet, owner }),
                IpNet::V6(subnet) => taken.1.push(Taken { subnet, owner }),
            }
        }
        Ok(taken)
    }

    /// The daemon's unique local /48, made on first use.
    pub(super) fn ula_prefix(&mut self) -> Result<Ipv6Net> {
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
            || self.predefined_without_datapath(&req.name) == Some(req.name.as_str())
        {
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
        let options = parse_options(&req.options)?;
        let (want4, want6) = ipam::by_family(&req.subnets, &req.gateways, &req.ip_ranges)?;
        if !req.enable_ipv6
            && let Some(flag) = want6.first_flag()
        {
            return Err(XnetError::invalid(format!("an IPv6 {flag} needs --ipv6")));
        }
        if req.enable_ipv6
            && let Some(mtu) = options.mtu.filter(|m| *m < IPV6_MIN_MTU)
        {
            return Err(XnetError::invalid(format!(
                "{OPT_MTU}={mtu} is too small for --ipv6 (IPv6 needs {IPV6_MIN_MTU})"
            )));
        }
        let (taken4, taken6) = self.taken_subnets().await?;
        let ipv4 = ipam::configure(&want4, &taken4, ipam::default_pool())?;
        let ipv6 = if req.enable_ipv6 {
            let pool = ipam::ula_pool(self.ula_prefix()?);
            Some(ipam::configure(&want6, &taken6, pool)?)
        } else {
            None
        };
        let network = Network {
            id: random_id()?,
            name: req.name.clone(),
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
        };
        self.install_network(network).await
    }

    /// Gives a new, validated network its datapath id, the host its gateways and the datapath
    /// its subnets, and keeps it; undoes all of it on failure. Returns its name.
    pub(super) async fn install_network(&mut self, mut network: Network) -> Result<String> {
        network.datapath_id = self.state.next_network_id;
        self.state.next_network_id += 1;
        let lo = self.loopback().await?;
        let added = self.add_network_to_host(lo, &network).await;
        let name = network.name.clone();
        self.state.networks.insert(name.clone(), network.clone());
        if let Err(e) = added.and_then(|()| self.store.save(&self.state)) {
            self.state.networks.remove(&name);
            if let Err(cleanup) = self.remove_network_from_host(lo, &network).await {
                eprintln!("xnetd: cleaning up after a failed network create: {cleanup:#}");
            }
            return Err(e.into());
        }
        Ok(name)
    }

    /// Gives the host the network's gateways and registers its subnets in the datapath. The
    /// gateways are addresses of the host itself; without a bridge device they live on the
    /// loopback (/32, /128), and the kernel accepts them on whichever veth a packet enters.
    pub(super) async fn add_network_to_host(
        &mut self,
        lo: u32,
        net: &Network,
    ) -> anyhow::Result<()> {
        for (subnet, gateway) in subnets_and_gateways(net) {
            self.netlink
                .add_address(lo, gateway, IpNet::from(gateway).max_prefix_len())
                .await?;
            self.datapath.add_subnet(subnet, net.datapath_id)?;
        }
        Ok(())
    }

    /// Undoes [`Self::add_network_to_host`]; tolerates parts that are already gone.
    async fn remove_network_from_host(&mut self, lo: u32, net: &Network) -> anyhow::Result<()> {
        for (subnet, gateway) in subnets_and_gateways(net) {
            self.netlink.delete_address(lo, gateway).await?;
            self.datapath.remove_subnet(subnet)?;
        }
        Ok(())
    }

    pub(super) async fn remove_network(&mut self, name_or_id: &str) -> Result<()> {
        if let Some(name) = self.predefined_without_datapath(name_or_id) {
            return Err(XnetError::invalid(format!(
                "{name} is a pre-defined network and cannot be removed"
            )));
        }
        let net = self.state.network(name_or_id)?.clone();
        refuse_docker_network(&net, "docker network rm")?;
        if net.name == DEFAULT_NETWORK {
            return Err(XnetError::invalid(format!(
                "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
            )));
        }
        self.uninstall_network(&net).await
    }

    /// Removes a network no endpoint uses any more from the host, the datapath and the state.
    pub(super) async fn uninstall_network(&mut self, net: &Network) -> Result<()> {
        let attached: Vec<&str> = self
            .state
            .endpoints_on(&net.name)
            .map(|(c, _)| c.name.as_str())
            .collect();
        if !attached.is_empty() {
            return Err(XnetError::conflict(format!(
                "error while removing network: network {} has active endpoints (containers: {})",
                net.name,
                attached.join(", ")
            )));
        }
        let lo = self.loopback().await?;
        self.remove_network_from_host(lo, net).await?;
        self.state.networks.remove(&net.name);
        self.store.save(&self.state)?;
        Ok(())
    }
}

/// Each family's subnet and gateway of `net`.
pub(super) fn subnets_and_gateways(net: &Network) -> impl Iterator<Item = (IpNet, IpAddr)> {
    let v4 = (net.ipv4.subnet.into(), net.ipv4.gateway.into());
    let v6 = net.ipv6.map(|c| (c.subnet.into(), c.gateway.into()));
    std::iter::once(v4).chain(v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_parsed_and_unknown_ones_refused() {
        let o = parse_options(&opts(&[])).unwrap();
        assert!(o.icc && o.mtu.is_none());
        let o = parse_options(&opts(&[(OPT_ICC, "false"), (OPT_MTU, "1400")])).unwrap();
        assert!(!o.icc);
        assert_eq!(o.mtu, Some(1400));
        for bad in [
            (OPT_ICC, "no"),
            (OPT_MTU, "10"),
            (OPT_MTU, "big"),
            ("com.docker.network.bridge.name", "br0"),
        ] {
            assert!(parse_options(&opts(&[bad])).is_err(), "{bad:?} accepted");
        }
    }
}
