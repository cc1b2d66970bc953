//! Docker-shaped views of networks and containers.

use std::{collections::BTreeMap, net::IpAddr};

use super::{
    containers::running_pid,
    inner::{Inner, Target},
};
use crate::{
    api::types::{
        ContainerInspect, ContainerState, EndpointAddresses, EndpointIpamConfig, EndpointSettings,
        HostConfig, Ipam, IpamConfig, NetworkContainer, NetworkInspect, NetworkSettings,
        PortBinding, PortMap,
    },
    drivers::{self, Scope},
    error::Result,
    state::{
        Container, DEFAULT_NETWORK, Endpoint, HOST_NETWORK, IpConfig, NONE_NETWORK, Network,
        Sandbox,
        ipam::{self, Subnet},
        ports::PortMapping,
    },
};

impl Inner {
    pub(super) fn network_inspect(&self, name_or_id: &str) -> Result<NetworkInspect> {
        let net = match self.target(name_or_id)? {
            Target::Recordless {
                name,
                driver,
                host_namespace,
            } => return Ok(self.recordless_inspect(name, driver, host_namespace)),
            Target::Network(net, _) => *net,
        };
        let net = &net;
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
            scope: drivers::by_name(&net.driver)
                .map_or(Scope::Local, |d| d.scope())
                .name()
                .into(),
            driver: self.shown_driver(net),
            enable_ipv6: net.ipv6.is_some(),
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: std::iter::once(ipam_config(&net.ipv4, net))
                    .chain(net.ipv6.as_ref().map(|c| ipam_config(c, net)))
                    .collect(),
            },
            internal: net.internal,
            attachable: net.attachable,
            containers,
            options: net.options.clone(),
            labels: BTreeMap::new(),
            peers: self.peers(net),
            encryption: self.encryption_status(net),
        })
    }

    /// Docker's networks show the plugin's name as their driver, as `docker network ls` does.
    fn shown_driver(&self, net: &Network) -> String {
        match (&net.docker, &self.docker) {
            (Some(_), Some(docker)) => docker.plugin.clone(),
            _ => net.driver.clone(),
        }
    }

    /// `host` and `none` as Docker shows them: drivers `host` and `null`, no IPAM config.
    fn recordless_inspect(
        &self,
        name: &'static str,
        driver: &'static str,
        host_namespace: bool,
    ) -> NetworkInspect {
        let id = self.state.predefined_id(name).unwrap_or_default();
        let containers = self
            .state
            .containers
            .values()
            .filter(|c| match host_namespace {
                true => c.sandbox == Sandbox::Host,
                false => c.sandbox == Sandbox::Owned && c.endpoints.is_empty(),
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
            id: id.to_string(),
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
            peers: None,
            encryption: None,
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
            resolv_conf_path: self
                .resolv_conf_of(c)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
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

/// One family's entry of a network's `IPAM.Config`, with `net`'s auxiliary addresses of that
/// family.
fn ipam_config<N: Subnet>(config: &IpConfig<N>, net: &Network) -> IpamConfig {
    let aux_addresses = ipam::aux_in::<N>(&net.aux_addresses)
        .map(|(name, ip)| (name.clone(), ip.to_string()))
        .collect();
    IpamConfig {
        subnet: config.subnet.to_string(),
        gateway: config.gateway.to_string(),
        ip_range: config.ip_range.map(|r| r.to_string()),
        aux_addresses,
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

/// Docker's `NetworkSettings.Ports`: one key per container port (`80/tcp`), its host bindings.
fn port_map(mappings: &[PortMapping]) -> PortMap {
    by_container_port(mappings, |m| {
        let host_ip = m.host_ip.to_string();
        m.pairs()
            .map(move |(port, host)| (port, host_ip.clone(), host.to_string()))
            .collect()
    })
}

/// Docker's `HostConfig.PortBindings`: the same keys, the host side as it was asked for
/// (empty where the daemon chose).
fn port_bindings(mappings: &[PortMapping]) -> PortMap {
    by_container_port(mappings, |m| {
        let host_ip = m
            .requested
            .host_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        m.requested_pairs()
            .map(move |(port, host)| (port, host_ip.clone(), host))
            .collect()
    })
}

/// A port map from each mapping's (container port, host address, host port) triples; a
/// binding appears once (a spec without a host address makes an IPv4 and an IPv6 mapping,
/// which Docker's `PortBindings` show as the one binding asked for).
fn by_container_port(
    mappings: &[PortMapping],
    triples: impl Fn(&PortMapping) -> Vec<(u16, String, String)>,
) -> PortMap {
    let mut map = PortMap::new();
    for m in mappings {
        for (port, host_ip, host_port) in triples(m) {
            let bindings = map.entry(format!("{port}/{}", m.protocol)).or_default();
            let binding = PortBinding { host_ip, host_port };
            if !bindings.contains(&binding) {
                bindings.push(binding);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ports::PortMapping, rules::parse_specs};

    #[test]
    fn port_map_has_one_key_per_container_port() {
        let specs = parse_specs(&["127.0.0.1:8080-8081:80-81".into(), "9090:80".into()]).unwrap();
        let mappings: Vec<PortMapping> = specs
            .iter()
            .flat_map(|s| crate::state::ports::resolve(s, false, &[], &(1..=1)).unwrap())
            .collect();
        let json = serde_json::to_value(port_map(&mappings)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                           {"HostIp": "0.0.0.0", "HostPort": "9090"}],
                "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}],
            })
        );
        let json = serde_json::to_value(port_bindings(&mappings)).unwrap();
        assert_eq!(
            json["80/tcp"],
            serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8080"},
                               {"HostIp": "", "HostPort": "9090"}])
        );
    }

    #[test]
    fn dual_stack_mappings_show_both_wildcards_and_one_requested_binding() {
        let specs = parse_specs(&["8080:80".into(), "[::1]:9090:90".into()]).unwrap();
        let mappings: Vec<PortMapping> = specs
            .iter()
            .flat_map(|s| crate::state::ports::resolve(s, true, &[], &(1..=1)).unwrap())
            .collect();
        let json = serde_json::to_value(port_map(&mappings)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                           {"HostIp": "::", "HostPort": "8080"}],
                "90/tcp": [{"HostIp": "::1", "HostPort": "9090"}],
            })
        );
        let json = serde_json::to_value(port_bindings(&mappings)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                "90/tcp": [{"HostIp": "::1", "HostPort": "9090"}],
            })
        );
    }
}
