//! Docker's wire shapes as xnet's: a network's `-o` options, pools and gateways as flags, an
//! interface's address, a sandbox's id, a port binding as the `-p` spec that means the same,
//! and the provisional name of an object Docker names by id only. Pure, so the network
//! driver's calls ([`super::network`]) hold only what they do to the state and the kernel.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use serde_json::Value;

use super::wire::{CreateNetwork, OPT_GENERIC, PortBinding};
use crate::error::{Result, XnetError};

/// The name of a Docker object until Docker's API tells its own: `docker-<id prefix>`.
pub(super) fn provisional_name(id: &str) -> String {
    format!("docker-{}", &id[..id.len().min(12)])
}

/// The `-o` options of `docker network create`, as text.
pub(super) fn generic_options(
    options: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>> {
    let Some(generic) = options.get(OPT_GENERIC) else {
        return Ok(BTreeMap::new());
    };
    let Some(generic) = generic.as_object() else {
        return Ok(BTreeMap::new());
    };
    generic
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            Value::Bool(_) | Value::Number(_) => Ok((key.clone(), value.to_string())),
            _ => Err(XnetError::invalid(format!(
                "unsupported value for network option {key:?}"
            ))),
        })
        .collect()
}

/// Docker's pools and gateways as `--subnet` / `--gateway` values (one of each per family).
pub(super) fn pools(req: &CreateNetwork) -> Result<(Vec<String>, Vec<String>)> {
    if req.ipv4_data.len() > 1 || req.ipv6_data.len() > 1 {
        return Err(XnetError::invalid(
            "an xnet network has at most one subnet per address family",
        ));
    }
    let all = req.ipv4_data.iter().chain(&req.ipv6_data);
    let subnets = all.clone().map(|d| d.pool.clone()).collect();
    let gateways = all
        .filter(|d| !d.gateway.is_empty())
        .map(|d| d.gateway.split('/').next().unwrap_or_default().to_string())
        .collect();
    Ok((subnets, gateways))
}

/// An interface address as Docker gives it (`10.1.0.2/24`; empty: none).
pub(super) fn address<A: std::str::FromStr>(text: &str, family: &str) -> Result<Option<A>> {
    if text.is_empty() {
        return Ok(None);
    }
    let ip = text.split('/').next().unwrap_or_default();
    ip.parse()
        .map(Some)
        .map_err(|_| XnetError::invalid(format!("invalid {family} address {text:?}")))
}

/// The sandbox's id, the last part of its key (`/var/run/docker/netns/<id>`).
pub(super) fn sandbox_id(key: &Path) -> String {
    key.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One Docker port binding as the `-p` spec that means the same, so Docker's bindings go
/// through the same parsing and checks as `xnet run -p`.
pub(super) fn port_spec(b: &PortBinding) -> Result<String> {
    let proto = match b.proto {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        other => {
            return Err(XnetError::invalid(format!(
                "unsupported protocol number {other} in a port binding"
            )));
        }
    };
    let host_ip = match b.host_ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        Ok(IpAddr::V4(ip)) => ip.to_string(),
        Err(_) if b.host_ip.is_empty() => String::new(),
        Err(_) => {
            return Err(XnetError::invalid(format!(
                "invalid host IP {:?} in a port binding",
                b.host_ip
            )));
        }
    };
    let host_port = match (b.host_port, b.host_port_end) {
        (0, _) => String::new(),
        (first, last) if last <= first => first.to_string(),
        (first, last) => format!("{first}-{last}"),
    };
    let container = format!("{}/{proto}", b.port);
    Ok(match (host_ip.is_empty(), host_port.is_empty()) {
        (true, true) => container,
        (true, false) => format!("{host_port}:{container}"),
        (false, true) => format!("{host_ip}::{container}"),
        (false, false) => format!("{host_ip}:{host_port}:{container}"),
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::state::ports::PortSpec;

    fn binding(proto: u8, host_ip: &str, host_port: u16, host_port_end: u16) -> PortBinding {
        PortBinding {
            proto,
            port: 80,
            host_ip: host_ip.into(),
            host_port,
            host_port_end,
        }
    }

    #[test]
    fn dockers_bindings_become_the_specs_that_mean_the_same() {
        for (b, spec) in [
            (binding(6, "", 8080, 8080), "8080:80/tcp"),
            (binding(17, "", 0, 0), "80/udp"),
            (binding(132, "", 80, 0), "80:80/sctp"),
            (binding(6, "127.0.0.1", 8080, 8080), "127.0.0.1:8080:80/tcp"),
            (binding(6, "127.0.0.1", 0, 0), "127.0.0.1::80/tcp"),
            (binding(6, "::1", 8080, 8080), "[::1]:8080:80/tcp"),
            (binding(6, "", 8000, 8010), "8000-8010:80/tcp"),
        ] {
            assert_eq!(port_spec(&b).unwrap(), spec);
            spec.parse::<PortSpec>()
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
        }
        assert!(port_spec(&binding(1, "", 0, 0)).is_err());
        assert!(port_spec(&binding(6, "nonsense", 0, 0)).is_err());
    }

    #[test]
    fn pools_and_gateways_become_subnet_and_gateway_flags() {
        let req: CreateNetwork = serde_json::from_str(
            r#"{"NetworkID":"n","IPv4Data":[{"Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24"}],
            "IPv6Data":[{"Pool":"fd00:1::/64","Gateway":""}]}"#,
        )
        .unwrap();
        let (subnets, gateways) = pools(&req).unwrap();
        assert_eq!(subnets, ["10.1.0.0/24", "fd00:1::/64"]);
        assert_eq!(gateways, ["10.1.0.1"]);
        assert_eq!(
            address::<Ipv4Addr>("10.1.0.2/24", "IPv4").unwrap(),
            Some(Ipv4Addr::new(10, 1, 0, 2))
        );
        assert_eq!(address::<Ipv4Addr>("", "IPv4").unwrap(), None);
        assert!(address::<Ipv4Addr>("x/24", "IPv4").is_err());
    }
}
