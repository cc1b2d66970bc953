//! Published ports (`-p`, `xnet port add/rm`): specs get their host ports against what is
//! taken (every container's mappings, the host's sockets), then go into the datapath's
//! `PUBLISHED` trie, leading to the container's first endpoint. They are withdrawn with that
//! endpoint (disconnect, rm) and rewritten from the state on every start.

use std::net::IpAddr;

use tracing::info;

use super::inner::Inner;
use crate::{
    api::types::PortRange,
    datapath::PublishEntry,
    error::{Result, XnetError},
    os::sockets,
    state::{
        Container, Endpoint, KernelObject, Network,
        ports::{
            Holder, Holding, PortError, PortMapping, PortSpec, host_binding, range_text,
            resolve_all,
        },
        rules::{check_publishable, check_sctp_ports, parse_specs, refuse_docker_container},
    },
};

impl Inner {
    /// The mappings `specs` ask for, for container `owner` (with an IPv6 address if `ipv6`),
    /// checked against everything that holds host ports now. Nothing is changed.
    pub(crate) fn resolve_ports(
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
        check_sctp_ports(&mappings)?;
        Ok(mappings)
    }

    /// The network the container's published ports lead into (its first endpoint's).
    /// Refuses publishing on a network whose driver has no published ports (macvlan, ipvlan:
    /// their containers are on the LAN with addresses of their own).
    pub(crate) fn check_driver_publishes(&self, net: Option<&Network>) -> Result<()> {
        if let Some(net) = net
            && !self.driver(net)?.publishes_ports()
        {
            return Err(XnetError::invalid(format!(
                "published ports are not supported on {} network {}: its containers are on the LAN with addresses of their own",
                net.driver, net.name
            )));
        }
        Ok(())
    }

    pub(crate) fn publish_network(&self, c: &Container) -> Option<&Network> {
        c.endpoints
            .first()
            .and_then(|ep| self.state.networks.get(&ep.network))
    }

    /// Writes `mappings` of the container into the datapath (idempotent).
    pub(crate) fn publish_ports(
        &mut self,
        c: &Container,
        mappings: &[PortMapping],
    ) -> anyhow::Result<()> {
        self.reserve_host_ports(mappings, &[])?;
        publish_entries(c, mappings)
            .iter()
            .try_for_each(|e| self.kernel.datapath.publish(e))
    }

    /// Withdraws `mappings` of the container from the datapath; what is gone already is fine.
    pub(crate) fn unpublish_ports(
        &mut self,
        c: &Container,
        mappings: &[PortMapping],
    ) -> anyhow::Result<()> {
        publish_entries(c, mappings)
            .iter()
            .try_for_each(|e| self.kernel.datapath.unpublish(e))?;
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
        self.check_driver_publishes(self.publish_network(&container))?;
        let ipv6 = check_publishable(&container, self.publish_network(&container))?;
        let added = self.resolve_ports(&container.name, ipv6, &specs)?;
        let objects: Vec<KernelObject> = added.iter().map(KernelObject::reserved_ports).collect();
        self.begin(&objects)?;
        let done = self.publish_ports(&container, &added).and_then(|()| {
            let stored = self
                .state
                .containers
                .get_mut(&container.name)
                .expect("found above");
            stored.ports.extend(added.iter().cloned());
            self.settle(&objects);
            self.save()
        });
        if let Err(e) = done {
            self.state
                .containers
                .insert(container.name.clone(), container.clone());
            self.unsettle(&objects);
            let undone = self.unpublish_ports(&container, &added);
            self.settle_undone(undone, &objects, &format!("container {}", container.name));
            return Err(e.into());
        }
        info!(container = %container.name, mappings = added.len(), "ports published");
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
        self.save()?;
        info!(container = %container.name, mappings = removed.len(), "ports withdrawn");
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
        self.kernel.datapath.reconcile_published(&entries)
    }
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
}
