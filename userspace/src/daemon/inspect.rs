//! Docker-shaped views of networks and containers.

use std::collections::BTreeMap;

use super::{
    Inner,
    containers::running_pid,
    networks::{HOST_NETWORK, NONE_NETWORK},
};
use crate::{
    api::types::{
        ContainerInspect, ContainerState, EndpointSettings, Ipam, IpamConfig, NetworkContainer,
        NetworkInspect, NetworkSettings,
    },
    error::Result,
    state::{Container, Sandbox},
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
                        ipv4_address: format!("{}/{}", e.ipv4, net.subnet.prefix_len()),
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
                    ip_range: net.ip_range.map(|r| r.to_string()),
                }],
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
        for ep in &c.endpoints {
            if let Some(net) = self.state.networks.get(&ep.network) {
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
                    network_id: id.clone(),
                    endpoint_id: String::new(),
                    gateway: String::new(),
                    ip_address: String::new(),
                    ip_prefix_len: 0,
                    mac_address: String::new(),
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
}
