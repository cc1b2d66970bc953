//! Docker-shaped views of networks and containers.

use std::{collections::BTreeMap, net::IpAddr};

use super::{
    Inner,
    containers::running_pid,
    networks::{DEFAULT_NETWORK, HOST_NETWORK, NONE_NETWORK},
    ports::{port_bindings, port_map},
};
use crate::{
    api::types::{
        ContainerInspect, ContainerState, EndpointAddresses, EndpointIpamConfig, EndpointSettings,
        HostConfig, Ipam, IpamConfig, NetworkContainer, NetworkInspect, NetworkSettings,
    },
    error::Result,
    state::{Container, Endpoint, IpConfig, Network, Sandbox, ipam::Subnet},
};

impl Inner {
    pub(super) fn network_inspect(&self, name_or_id: &str) -> Result<NetworkInspect> {
        if let Some(name) = self.predefined_without_datapath(name_or_id) {
            return Ok(self.predefined_inspect(name));
        }
        let net = self.state.network(name_or_id)?;
        let containers = self
            .state
            .endpoints_on(&net.name)
            .map(|(c, e)| {
                (
                    c.id.clone(),
                    NetworkContainer {
                        name: c.name.clone(),
                        endpoint_id: e.id.clone(),
                        mac_address: e.mac.to_string(),
                        ipv4_address: with_prefix(Some(e.ipv4), Some(&net.ipv4)),
                        ipv6_address: with_prefix(e.ipv6, net.ipv6.as_ref()),
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
            enable_ipv6: net.ipv6.is_some(),
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: std::iter::once(ipam_config(&net.ipv4))
                    .chain(net.ipv6.as_ref().map(ipam_config))
                    .collect(),
            },
            internal: net.internal,
            attachable: false,
            containers,
            options: net.options.clone(),
            labels: BTreeMap::new(),
        })
    }

    /// `host` and `none` as Docker shows them: drivers `host` and `null`, no IPAM config.
    fn predefined_inspect(&self, name: &'static str) -> NetworkInspect {
        let (id, driver, sandbox) = if name == HOST_NETWORK {
            (&self.state.host_network_id, "host", Some(Sandbox::Host))
        } else {
            (&self.state.none_network_id, "null", None)
        };
        let containers = self
            .state
            .containers
            .values()
            .filter(|c| match sandbox {
                Some(kind) => c.sandbox == kind,
                None => c.sandbox == Sandbox::Owned && c.endpoints.is_empty(),
            })
            .map(|c| {
                let member = NetworkContainer {
                    name: c.name.clone(),
                    endpoint_id: String::new(),
                    mac_address: String::new(),
                    ipv4_address: String::new(),
                    ipv6_address: String::new(),
                };
                (c.id.clone(), member)
            })
            .collect();
        NetworkInspect {
            name: name.into(),
            id: id.clone(),
            created: String::new(),
            scope: "local".into(),
            driver: driver.into(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: Vec::new(),
            },
            internal: false,
            attachable: false,
            containers,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    pub(super) fn container_inspect(&self, c: &Container) -> ContainerInspect {
        let mut networks = BTreeMap::new();
        let mut default_network = EndpointAddresses::default();
        for ep in &c.endpoints {
            if let Some(net) = self.state.networks.get(&ep.network) {
                let addresses = endpoint_addresses(ep, net);
                if net.name == DEFAULT_NETWORK {
                    default_network = addresses.clone();
                }
                let shown = |is_static: bool, ip: Option<IpAddr>| {
                    ip.filter(|_| is_static)
                        .map(|ip| ip.to_string())
                        .unwrap_or_default()
                };
                let ipam_config = (ep.static_ipv4 || ep.static_ipv6).then(|| EndpointIpamConfig {
                    ipv4_address: shown(ep.static_ipv4, Some(ep.ipv4.into())),
                    ipv6_address: shown(ep.static_ipv6, ep.ipv6.map(IpAddr::from)),
                });
                networks.insert(
                    net.name.clone(),
                    EndpointSettings {
                        ipam_config,
                        network_id: net.id.clone(),
                        addresses,
                    },
                );
            }
        }
        let predefined = match c.sandbox {
            Sandbox::Host => Some((HOST_NETWORK, &self.state.host_network_id)),
            Sandbox::Owned if c.endpoints.is_empty() => {
                Some((NONE_NETWORK, &self.state.none_network_id))
            }
            _ => None,
        };
        if let Some((name, id)) = predefined {
            networks.insert(
                name.to_string(),
                EndpointSettings {
                    ipam_config: None,
                    network_id: id.clone(),
                    addresses: EndpointAddresses::default(),
                },
            );
        }
        let pid = running_pid(c);
        let status = match (pid, c.pid) {
            (Some(_), _) => "running",
            // Docker's containers are xnet's while their sandbox has joined a network, which
            // it has while they run (xnet knows no process of theirs).
            (None, _) if c.sandbox == Sandbox::Docker => "running",
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
                running: status == "running",
                pid: pid.unwrap_or(0),
            },
            host_config: HostConfig {
                port_bindings: port_bindings(&c.ports),
            },
            network_settings: NetworkSettings {
                sandbox_key: c.sandbox_key.display().to_string(),
                default_network,
                networks,
                ports: port_map(&c.ports),
            },
        }
    }
}

/// One family's entry of a network's `IPAM.Config`.
fn ipam_config<N: Subnet>(config: &IpConfig<N>) -> IpamConfig {
    IpamConfig {
        subnet: config.subnet.to_string(),
        gateway: config.gateway.to_string(),
        ip_range: config.ip_range.map(|r| r.to_string()),
    }
}

/// `ADDRESS/PREFIX` as a network's `Containers` show it; empty without an address.
fn with_prefix<N: Subnet>(ip: Option<N::Addr>, config: Option<&IpConfig<N>>) -> String {
    match ip.zip(config) {
        Some((ip, config)) => format!("{ip}/{}", config.subnet.prefix_len()),
        None => String::new(),
    }
}

/// The endpoint's addresses under Docker's names; the IPv6 ones empty on an IPv4-only network.
fn endpoint_addresses(ep: &Endpoint, net: &Network) -> EndpointAddresses {
    let (global_ipv6_address, global_ipv6_prefix_len, ipv6_gateway) = match ep.ipv6.zip(net.ipv6) {
        Some((ip, config)) => (
            ip.to_string(),
            config.subnet.prefix_len(),
            config.gateway.to_string(),
        ),
        None => (String::new(), 0, String::new()),
    };
    EndpointAddresses {
        endpoint_id: ep.id.clone(),
        gateway: net.ipv4.gateway.to_string(),
        ip_address: ep.ipv4.to_string(),
        ip_prefix_len: net.ipv4.subnet.prefix_len(),
        ipv6_gateway,
        global_ipv6_address,
        global_ipv6_prefix_len,
        mac_address: ep.mac.to_string(),
    }
}
