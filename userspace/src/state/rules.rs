//! Rules about the objects themselves, beside `ipam` (addresses), `ports` (published ports)
//! and `options` (network options): names, which commands may change what Docker made, and
//! what a container must have for its ports to be published.

use super::{
    model::{Container, Network, Sandbox},
    ports::{PortMapping, PortSpec, Protocol},
};
use crate::error::{Result, XnetError};

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(name: &str, what: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(XnetError::invalid(format!(
            "invalid {what} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// Refuses to change a Docker network with xnet's commands; `instead` is the Docker command.
pub fn refuse_docker_network(net: &Network, instead: &str) -> Result<()> {
    match net.docker {
        Some(_) => Err(XnetError::invalid(format!(
            "network {} is managed by Docker: use {instead}",
            net.name
        ))),
        None => Ok(()),
    }
}

/// Refuses to change a Docker container with xnet's commands; `instead` is the Docker command.
pub fn refuse_docker_container(c: &Container, instead: &str) -> Result<()> {
    match c.sandbox {
        Sandbox::Docker => Err(XnetError::invalid(format!(
            "container {} is managed by Docker: use {instead}",
            c.name
        ))),
        _ => Ok(()),
    }
}

/// Standalone containers join a network of global scope only if it was made `--attachable`
/// (Docker's swarm overlays without it take only services), in Docker's words.
pub fn check_attachable(net: &Network) -> Result<()> {
    if net.vni.is_some() && !net.attachable {
        return Err(XnetError::invalid(format!(
            "network {} not manually attachable",
            net.name
        )));
    }
    Ok(())
}

/// Every `-p` spec parsed, or the first one's reason.
pub fn parse_specs(specs: &[String]) -> Result<Vec<PortSpec>> {
    specs
        .iter()
        .map(|s| s.parse().map_err(XnetError::invalid))
        .collect()
}

/// Published ports need an endpoint (the first, on `target`) on a network with a way in.
/// Returns whether that network has IPv6 (then the container has an IPv6 address to publish).
pub fn check_publishable(container: &Container, target: Option<&Network>) -> Result<bool> {
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

/// SCTP ports can be published only on the same host port: the datapath cannot rewrite them
/// (SCTP's CRC32c checksum covers them, and XDP has no helper to recompute it).
pub fn check_sctp_ports(mappings: &[PortMapping]) -> Result<()> {
    match mappings
        .iter()
        .find(|m| m.protocol == Protocol::Sctp && m.host_ports.start() != m.container_ports.start())
    {
        Some(m) => Err(XnetError::invalid(format!(
            "SCTP port {}-{} can be published only on the same host port (e.g. -p {0}:{0}/sctp): the datapath cannot rewrite SCTP ports (their CRC32c checksum covers them)",
            m.container_ports.start(),
            m.container_ports.end()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "a", "db-1", "x_y.z", "9lives"] {
            assert!(validate_name(ok, "container").is_ok(), "{ok}");
        }
        for bad in ["", "-web", ".x", "a b", "a/b", "é"] {
            assert!(validate_name(bad, "container").is_err(), "{bad}");
        }
    }

    #[test]
    fn sctp_keeps_its_port() {
        let resolve = |spec: &str| {
            let spec: PortSpec = spec.parse().unwrap();
            super::super::ports::resolve(&spec, false, &[], &(1..=1)).unwrap()
        };
        assert!(check_sctp_ports(&resolve("9000:9000/sctp")).is_ok());
        assert!(check_sctp_ports(&resolve("8080:80/tcp")).is_ok());
        let err = check_sctp_ports(&resolve("9001:9000/sctp")).unwrap_err();
        assert!(err.to_string().starts_with("SCTP port 9000-9000"), "{err}");
    }
}
