//! Networks: user-defined bridge networks with their options, and the pre-defined `bridge`,
//! `host` and `none`.

use std::collections::BTreeMap;

use super::{Inner, now, random_id, validate_name};
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
/// Host-side veths are named with this prefix plus an id prefix; routes through them are ours.
pub(super) const HOST_VETH_PREFIX: &str = "xv";

/// The effect of a network's `-o` options.
struct Options {
    icc: bool,
    mtu: Option<u32>,
}

fn parse_options(options: &BTreeMap<String, String>) -> Result<Options> {
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
        let taken = self.taken_subnets().await?;
        let subnet = match &req.subnet {
            Some(text) => ipam::parse_subnet(text, &taken)?,
            None => {
                if req.gateway.is_some() || req.ip_range.is_some() {
                    return Err(XnetError::invalid("--gateway and --ip-range need --subnet"));
                }
                ipam::pick_subnet(&taken)?
            }
        };
        let gateway = ipam::gateway(subnet, req.gateway.as_deref())?;
        let ip_range = req
            .ip_range
            .as_deref()
            .map(|text| ipam::parse_ip_range(text, subnet))
            .transpose()?;
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
            ip_range,
            internal: req.internal,
            options: req.options,
            icc: options.icc,
            mtu: options.mtu,
        };
        self.state.next_network_id += 1;
        let registered = self.datapath.add_subnet(subnet, network.datapath_id);
        self.state.networks.insert(req.name.clone(), network);
        if let Err(e) = registered.and_then(|()| self.store.save(&self.state)) {
            self.state.networks.remove(&req.name);
            let _ = self.datapath.remove_subnet(subnet);
            let _ = self.netlink.delete_address(lo, gateway).await;
            return Err(e.into());
        }
        Ok(req.name)
    }

    pub(super) async fn remove_network(&mut self, name_or_id: &str) -> Result<()> {
        if let Some(name) = self.predefined_without_datapath(name_or_id) {
            return Err(XnetError::invalid(format!(
                "{name} is a pre-defined network and cannot be removed"
            )));
        }
        let net = self.state.network(name_or_id)?.clone();
        if net.name == DEFAULT_NETWORK {
            return Err(XnetError::invalid(format!(
                "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
            )));
        }
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
        self.netlink.delete_address(lo, net.gateway).await?;
        self.datapath.remove_subnet(net.subnet)?;
        self.state.networks.remove(&net.name);
        self.store.save(&self.state)?;
        Ok(())
    }
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
