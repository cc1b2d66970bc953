//! Published ports (`-p`, `xnet port add/rm`): specs get their host ports against what is
//! taken (every container's mappings, the host's sockets), then go into the datapath's
//! `PUBLISHED` trie, leading to the container's first endpoint. They are withdrawn with that
//! endpoint (disconnect, rm) and rewritten from the state on every start.

use std::net::IpAddr;

use super::{Inner, docker::refuse_docker_container};
use crate::{
    api::types::{PortBinding, PortMap, PortRange},
    datapath::PublishEntry,
    error::{Result, XnetError},
    os::sockets,
    state::{
        Container, Endpoint, Network, Sandbox,
        ports::{
            Holder, Holding, PortError, PortMapping, PortSpec, Protocol, host_binding, range_text,
            resolve_all,
        },
    },
};

impl Inner {
    /// The mappings `specs` ask for, for container `owner` (with an IPv6 address if `ipv6`),
    /// checked against everything that holds host ports now. Nothing is changed.
    pub(super) fn resolve_ports(
        &self,
        owner: &str,
        ipv6: bool,
        specs: &[PortSpec],
    ) -> Result<Vec<PortMapping>> {
        let mut taken: Vec<Holding> = self
            .state
            .containers
            .values()
            .flat_map(|c| {
                c.ports
                    .iter()
                    .map(|m| m.holding(Holder::Container(c.name.clone())))
            })
            .collect();
        taken.extend(sockets::held_ports()?);
        let ephemeral = sockets::ephemeral_range()?;
        let mappings =
            resolve_all(specs, owner, ipv6, &mut taken, &ephemeral).map_err(port_error)?;
        if let Some(m) = mappings.iter().find(|m| {
            m.protocol == Protocol::Sctp && m.host_ports.start() != m.container_ports.start()
        }) {
            return Err(XnetError::invalid(format!(
                "SCTP port {}-{} can be published only on the same host port (e.g. -p {0}:{0}/sctp): the datapath cannot rewrite SCTP ports (their CRC32c checksum covers them)",
                m.container_ports.start(),
                m.container_ports.end()
            )));
        }
        Ok(mappings)
    }

    /// The network the container's published ports lead into (its first endpoint's).
    pub(super) fn publish_network(&self, c: &Container) -> Option<&Network> {
        c.endpoints
            .first()
            .and_then(|ep| self.state.networks.get(&ep.network))
    }

    /// Writes `mappings` of the container into the datapath (idempotent).
    pub(super) fn publish_ports(
        &mut self,
        c: &Container,
        mappings: &[PortMapping],
    ) -> anyhow::Result<()> {
        self.reserve_host_ports(mappings, &[])?;
        publish_entries(c, mappings)
            .iter()
            .try_for_each(|e| self.datapath.publish(e))
    }

    /// Withdraws `mappings` of the container from the datapath; what is gone already is fine.
    pub(super) fn unpublish_ports(
        &mut self,
        c: &Container,
        mappings: &[PortMapping],
    ) -> anyhow::Result<()> {
        publish_entries(c, mappings)
            .iter()
            .try_for_each(|e| self.datapath.unpublish(e))?;
        self.reserve_host_ports(&[], mappings)
    }

    /// Keeps the kernel from handing a published host port to one of the host's own sockets
    /// as its ephemeral port: the replies that socket expects would be taken for the
    /// container's (docker-proxy avoids that by binding every published port). The reserved
    /// ports (`ip_local_reserved_ports`) become what others reserved plus every host port the
    /// state publishes, with `adding` about to be published and `removing` withdrawn.
    fn reserve_host_ports(
        &self,
        adding: &[PortMapping],
        removing: &[PortMapping],
    ) -> anyhow::Result<()> {
        let mut reserved = self.reserved_by_others.clone();
        let published = self.state.containers.values().flat_map(|c| &c.ports);
        for m in published.filter(|m| !removing.contains(m)).chain(adding) {
            reserved.extend(m.host_ports.clone());
        }
        if reserved != sockets::reserved_ports()? {
            sockets::set_reserved_ports(&reserved)?;
        }
        Ok(())
    }

    /// `xnet port add`: publishes more ports of a container; returns the new mappings.
    pub(super) fn add_ports(
        &mut self,
        name_or_id: &str,
        specs: &[String],
    ) -> Result<Vec<PortRange>> {
        let container = self.state.container(name_or_id)?.clone();
        refuse_docker_container(&container, "docker run -p")?;
        let specs = parse_specs(specs)?;
        let ipv6 = check_publishable(&container, self.publish_network(&container))?;
        let added = self.resolve_ports(&container.name, ipv6, &specs)?;
        let done = self.publish_ports(&container, &added).and_then(|()| {
            let stored = self
                .state
                .containers
                .get_mut(&container.name)
                .expect("found above");
            stored.ports.extend(added.iter().cloned());
            self.store.save(&self.state)
        });
        if let Err(e) = done {
            if let Err(cleanup) = self.unpublish_ports(&container, &added) {
                eprintln!("xnetd: cleaning up after a failed port add: {cleanup:#}");
            }
            self.state
                .containers
                .insert(container.name.clone(), container);
            return Err(e.into());
        }
        Ok(port_ranges(&added))
    }

    /// `xnet port rm`: withdraws the mappings each spec names; returns them.
    pub(super) fn remove_ports(
        &mut self,
        name_or_id: &str,
        specs: &[String],
    ) -> Result<Vec<PortRange>> {
        let container = self.state.container(name_or_id)?.clone();
        refuse_docker_container(&container, "docker run -p")?;
        let mut removed = Vec::new();
        for (text, spec) in specs.iter().zip(parse_specs(specs)?) {
            let matching: Vec<&PortMapping> = container
                .ports
                .iter()
                .filter(|m| m.matches(&spec))
                .collect();
            if matching.is_empty() {
                return Err(XnetError::not_found(format!(
                    "no published port of container {} matches {text}",
                    container.name
                )));
            }
            // Two specs may name the same mapping; it is removed (and shown) once.
            for m in matching {
                if !removed.contains(m) {
                    removed.push(m.clone());
                }
            }
        }
        self.unpublish_ports(&container, &removed)?;
        let stored = self
            .state
            .containers
            .get_mut(&container.name)
            .expect("found above");
        stored.ports.retain(|m| !removed.contains(m));
        self.store.save(&self.state)?;
        Ok(port_ranges(&removed))
    }

    /// After a restart: every mapping of the state is in the datapath again, and keys that no
    /// mapping makes (a container removed while the daemon was down) are gone.
    pub(super) fn reconcile_ports(&mut self) -> anyhow::Result<()> {
        self.reserve_host_ports(&[], &[])?;
        let entries: Vec<PublishEntry> = self
            .state
            .containers
            .values()
            .flat_map(|c| publish_entries(c, &c.ports))
            .collect();
        self.datapath.reconcile_published(&entries)
    }
}

/// Every spec parsed, or the first one's reason.
pub(super) fn parse_specs(specs: &[String]) -> Result<Vec<PortSpec>> {
    specs
        .iter()
        .map(|s| s.parse().map_err(XnetError::invalid))
        .collect()
}

/// Published ports need an endpoint (the first, on `target`) on a network with a way in.
/// Returns whether that network has IPv6 (then the container has an IPv6 address to publish).
pub(super) fn check_publishable(container: &Container, target: Option<&Network>) -> Result<bool> {
    if container.sandbox == Sandbox::Host {
        return Err(XnetError::invalid(format!(
            "container {} uses the host network: its ports are the host's already",
            container.name
        )));
    }
    let Some(net) = target else {
        return Err(XnetError::invalid(format!(
            "cannot publish ports of container {}: it has no network endpoint (--network none)",
            container.name
        )));
    };
    if net.internal {
        return Err(XnetError::invalid(format!(
            "publishing is refused on internal network {}",
            net.name
        )));
    }
    Ok(net.ipv6.is_some())
}

/// Docker's `NetworkSettings.Ports`: one key per container port (`80/tcp`), its host bindings.
pub(super) fn port_map(mappings: &[PortMapping]) -> PortMap {
    by_container_port(mappings, |m| {
        let host_ip = m.host_ip.to_string();
        m.pairs()
            .map(move |(port, host)| (port, host_ip.clone(), host.to_string()))
            .collect()
    })
}

/// `mappings` whole, as `xnet port add` / `port rm` report them.
fn port_ranges(mappings: &[PortMapping]) -> Vec<PortRange> {
    mappings
        .iter()
        .map(|m| PortRange {
            container_ports: format!("{}/{}", range_text(&m.container_ports), m.protocol),
            host_ip: m.host_ip.to_string(),
            host_ports: range_text(&m.host_ports),
        })
        .collect()
}

/// Docker's `HostConfig.PortBindings`: the same keys, the host side as it was asked for
/// (empty where the daemon chose).
pub(super) fn port_bindings(mappings: &[PortMapping]) -> PortMap {
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

/// The datapath's entries for `mappings` of the container, toward its first endpoint (none
/// without one: mappings never outlive it).
fn publish_entries(c: &Container, mappings: &[PortMapping]) -> Vec<PublishEntry> {
    let Some(ep) = c.endpoints.first() else {
        return Vec::new();
    };
    mappings
        .iter()
        .filter_map(|m| publish_entry(m, ep))
        .collect()
}

/// The entry of a mapping, toward the endpoint's address of the host address's family (an
/// IPv6 mapping is only made for an endpoint with an IPv6 address).
fn publish_entry(m: &PortMapping, ep: &Endpoint) -> Option<PublishEntry> {
    let container_ip = match m.host_ip {
        IpAddr::V4(_) => IpAddr::V4(ep.ipv4),
        IpAddr::V6(_) => IpAddr::V6(ep.ipv6?),
    };
    Some(PublishEntry {
        proto: m.protocol.number(),
        host_ip: m.host_ip,
        host_ports: m.host_ports.clone(),
        container_ip,
        container_port_first: *m.container_ports.start(),
        ifindex: ep.host_ifindex,
    })
}

/// The one-line error for a spec that cannot have its host ports, naming who holds them.
fn port_error(err: PortError) -> XnetError {
    match err {
        PortError::Unsupported(why) => XnetError::invalid(why),
        PortError::Exhausted(why) => XnetError::conflict(why),
        PortError::Taken {
            addr,
            port,
            protocol,
            holder,
        } => {
            let by = match holder {
                Holder::Container(name) => format!("is already published by container {name}"),
                Holder::Socket(inode) => format!(
                    "is in use by {}",
                    sockets::socket_owner(inode).unwrap_or_else(|| "a listening socket".into())
                ),
            };
            let binding = host_binding(addr, port);
            XnetError::conflict(format!("host port {binding}/{protocol} {by}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn conflicts_are_one_line_naming_the_holder() {
        let err = port_error(PortError::Taken {
            addr: std::net::Ipv4Addr::UNSPECIFIED.into(),
            port: 8080,
            protocol: crate::state::ports::Protocol::Tcp,
            holder: Holder::Container("web".into()),
        });
        assert_eq!(
            err.to_string(),
            "host port 0.0.0.0:8080/tcp is already published by container web"
        );
        let err = port_error(PortError::Taken {
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 53,
            protocol: crate::state::ports::Protocol::Udp,
            holder: Holder::Socket(u64::MAX),
        });
        assert_eq!(
            err.to_string(),
            "host port 127.0.0.1:53/udp is in use by a listening socket"
        );
        let err = port_error(PortError::Taken {
            addr: std::net::Ipv6Addr::UNSPECIFIED.into(),
            port: 8080,
            protocol: crate::state::ports::Protocol::Tcp,
            holder: Holder::Container("web".into()),
        });
        assert_eq!(
            err.to_string(),
            "host port [::]:8080/tcp is already published by container web"
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
