//! What a published range is once its host ports are resolved ([`PortMapping`], as the state
//! keeps it) and what holds host ports ([`Holding`]: a container's mapping, a socket of the
//! host), with the rule for when a holding takes a port: IPv4 and IPv6 bindings never conflict
//! with each other, and a family's wildcard overlaps every address of that family.

use std::{
    net::{IpAddr, SocketAddr},
    ops::RangeInclusive,
};

use serde::{Deserialize, Serialize};

use super::spec::{PortSpec, Protocol, count};

/// A published range with its host ports resolved, as the state keeps it: host port
/// `host_ports.start() + i` leads to container port `container_ports.start() + i`, on the
/// container's address of the host address's family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    /// 0.0.0.0 (`::`) for every IPv4 (IPv6) address of the host.
    pub host_ip: IpAddr,
    pub host_ports: RangeInclusive<u16>,
    pub container_ports: RangeInclusive<u16>,
    /// The host side as the spec gave it, for Docker's `HostConfig.PortBindings`.
    #[serde(default)]
    pub requested: Requested,
}

/// A spec's host address and ports as given; `None` where the daemon chose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested {
    pub host_ip: Option<IpAddr>,
    pub host_ports: Option<RangeInclusive<u16>>,
}

impl PortMapping {
    /// (container port, host port) pairs, one per port of the range.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.container_ports.clone().zip(self.host_ports.clone())
    }

    /// (container port, host port as requested) pairs, as Docker's `PortBindings` keep them:
    /// the port, a range still to choose from ("8000-8010"), or "" for an ephemeral one.
    pub fn requested_pairs(&self) -> impl Iterator<Item = (u16, String)> + '_ {
        let requested = self.requested.host_ports.clone();
        self.container_ports
            .clone()
            .enumerate()
            .map(move |(i, port)| {
                let host = match &requested {
                    None => String::new(),
                    Some(r) if count(r) == count(&self.container_ports) => {
                        (u32::from(*r.start()) + i as u32).to_string()
                    }
                    Some(r) => format!("{}-{}", r.start(), r.end()),
                };
                (port, host)
            })
    }

    /// Whether `spec` names this mapping (`xnet port rm`): same protocol and container ports,
    /// and the same host address and ports where the spec gives them.
    pub fn matches(&self, spec: &PortSpec) -> bool {
        self.protocol == spec.protocol
            && self.container_ports == spec.container_ports
            && spec.host_ip.is_none_or(|ip| ip == self.host_ip)
            && spec
                .host_ports
                .as_ref()
                .is_none_or(|ports| *ports == self.host_ports)
    }

    /// What this mapping takes from others.
    pub fn holding(&self, holder: Holder) -> Holding {
        Holding {
            protocol: self.protocol,
            addr: self.host_ip,
            ports: self.host_ports.clone(),
            holder,
        }
    }
}

/// Host ports that something has already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub protocol: Protocol,
    /// 0.0.0.0 (`::`): every IPv4 (IPv6) address.
    pub addr: IpAddr,
    pub ports: RangeInclusive<u16>,
    pub holder: Holder,
}

/// Who holds a host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A mapping of this container.
    Container(String),
    /// A listening (TCP, SCTP) or bound (UDP) socket of the host, by inode.
    Socket(u64),
}

impl Holding {
    /// The lowest port of `ports` on `addr` this holding takes, if any. The wildcard of a
    /// family on either side overlaps every address of that family, as a wildcard bind does.
    pub(super) fn first_taken(
        &self,
        protocol: Protocol,
        addr: IpAddr,
        ports: &RangeInclusive<u16>,
    ) -> Option<u16> {
        let same_family = self.addr.is_ipv4() == addr.is_ipv4();
        let same_address = self.addr == addr
            || (same_family && (self.addr.is_unspecified() || addr.is_unspecified()));
        let first = *self.ports.start().max(ports.start());
        (self.protocol == protocol && same_address && first <= *self.ports.end().min(ports.end()))
            .then_some(first)
    }
}

/// `addr:port` as Docker shows a host binding: IPv6 addresses in brackets.
pub fn host_binding(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr, port).to_string()
}
