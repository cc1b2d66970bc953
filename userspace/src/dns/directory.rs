//! Who is called what, on which network: the names the embedded DNS answers with, rebuilt
//! from the state whenever it changes (`DnsServers::sync`), so a query never waits for the
//! daemon's lock.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use crate::state::{DEFAULT_NETWORK, Sandbox, State};

/// The containers the embedded DNS knows, by id.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub(super) containers: HashMap<String, Member>,
}

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) name: String,
    pub(super) networks: Vec<Membership>,
}

/// A container on one network: the names it answers to there and its addresses.
#[derive(Debug, Clone)]
pub(super) struct Membership {
    pub(super) network: String,
    /// Internal networks never forward to the host's resolvers.
    pub(super) internal: bool,
    /// The default `bridge` network has no names, as in Docker.
    pub(super) named: bool,
    pub(super) aliases: Vec<String>,
    pub(super) ipv4: Ipv4Addr,
    pub(super) ipv6: Option<Ipv6Addr>,
}

impl Directory {
    /// Every container of `state` with a namespace of its own; the host's and Docker's
    /// (Docker serves its own DNS to its containers) are not members.
    pub fn from_state(state: &State) -> Self {
        let containers = state
            .containers
            .values()
            .filter(|c| matches!(c.sandbox, Sandbox::Owned | Sandbox::Attached))
            .map(|c| {
                let networks = c
                    .endpoints
                    .iter()
                    .map(|e| Membership {
                        network: e.network.clone(),
                        internal: state.networks.get(&e.network).is_some_and(|n| n.internal),
                        named: e.network != DEFAULT_NETWORK,
                        aliases: e.aliases.clone(),
                        ipv4: e.ipv4,
                        ipv6: e.ipv6,
                    })
                    .collect();
                let member = Member {
                    name: c.name.clone(),
                    networks,
                };
                (c.id.clone(), member)
            })
            .collect();
        Self { containers }
    }

    /// The addresses `name` (a container name or an alias, any case; or either followed by
    /// `.NETWORK` for that network only) has on the networks the container `asker` is on:
    /// IPv4 and IPv6 each in the order found.
    pub(super) fn lookup(&self, asker: &str, name: &str) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
        let name = name.to_ascii_lowercase();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for shared in self.named_networks_of(asker) {
            let qualified = name.strip_suffix(&format!(".{}", shared.to_ascii_lowercase()));
            let is = |candidate: &str| {
                candidate.eq_ignore_ascii_case(&name)
                    || qualified.is_some_and(|q| candidate.eq_ignore_ascii_case(q))
            };
            for member in self.containers.values() {
                for on in member.networks.iter().filter(|m| m.network == shared) {
                    let called = is(&member.name) || on.aliases.iter().any(|a| is(a));
                    if called {
                        if !v4.contains(&on.ipv4) {
                            v4.push(on.ipv4);
                        }
                        if let Some(ipv6) = on.ipv6.filter(|a| !v6.contains(a)) {
                            v6.push(ipv6);
                        }
                    }
                }
            }
        }
        (v4, v6)
    }

    /// The name of the container with address `address` on a network `asker` is on.
    pub(super) fn reverse(&self, asker: &str, address: std::net::IpAddr) -> Option<String> {
        let shared: Vec<&str> = self.named_networks_of(asker).collect();
        self.containers.values().find_map(|member| {
            member
                .networks
                .iter()
                .filter(|on| shared.contains(&on.network.as_str()))
                .any(|on| {
                    address == std::net::IpAddr::V4(on.ipv4)
                        || on.ipv6.map(std::net::IpAddr::V6) == Some(address)
                })
                .then(|| member.name.clone())
        })
    }

    /// Whether `asker` may have other names forwarded to the host's resolvers: not when
    /// all its networks are internal.
    pub(super) fn forwards_for(&self, asker: &str) -> bool {
        self.containers
            .get(asker)
            .is_some_and(|m| m.networks.iter().any(|on| !on.internal))
    }

    fn named_networks_of<'a>(&'a self, asker: &str) -> impl Iterator<Item = &'a str> {
        self.containers
            .get(asker)
            .into_iter()
            .flat_map(|m| m.networks.iter())
            .filter(|on| on.named)
            .map(|on| on.network.as_str())
    }
}
