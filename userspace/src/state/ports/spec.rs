//! Published ports as Docker's `-p` writes them:
//! `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|/udp|/sctp]`, an IPv6 host address in
//! brackets (`[::1]:8080:80`). Parsing is pure and unit-tested; every rule Docker enforces is
//! refused here with the reason, so nothing downstream sees a malformed mapping. A range is
//! written back as specs write it by [`range_text`].

use std::{fmt, net::IpAddr, ops::RangeInclusive, str::FromStr};

use serde::{Deserialize, Serialize};

/// The transport a mapping forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

impl Protocol {
    /// The IP protocol number the datapath matches.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

/// One `-p` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address it is bound to; every address when `None`.
    pub host_ip: Option<IpAddr>,
    /// The host ports; a free ephemeral port per container port when `None`. A range with a
    /// single container port means "any free port of the range", as in Docker.
    pub host_ports: Option<RangeInclusive<u16>>,
    pub container_ports: RangeInclusive<u16>,
    pub protocol: Protocol,
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid port specification {spec:?}: {why}");
        let (mapping, protocol) = match spec.rsplit_once('/') {
            Some((mapping, proto)) => (mapping, parse_protocol(proto).map_err(|e| invalid(&e))?),
            None => (spec, Protocol::Tcp),
        };
        let (host_ip, rest) = split_host_ip(mapping).map_err(|e| invalid(&e))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (host, container) = match (host_ip.is_some(), parts.as_slice()) {
            (false, [container]) => (None, *container),
            (_, [host, container]) => (Some(*host), *container),
            _ => return Err(invalid("too many colons")),
        };
        let container_ports = parse_range(container)
            .map_err(|e| invalid(&format!("container port {container:?}: {e}")))?;
        let host_ports = match host.filter(|h| !h.is_empty()) {
            None => None,
            Some(text) => {
                let ports =
                    parse_range(text).map_err(|e| invalid(&format!("host port {text:?}: {e}")))?;
                let single_container_port = container_ports.start() == container_ports.end();
                if count(&ports) != count(&container_ports) && !single_container_port {
                    return Err(invalid(
                        "host and container port ranges must be the same length",
                    ));
                }
                Some(ports)
            }
        };
        Ok(Self {
            host_ip,
            host_ports,
            container_ports,
            protocol,
        })
    }
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => Err(format!("unknown protocol {text:?} (tcp, udp or sctp)")),
    }
}

/// Splits off a leading host address: `[v6]:rest`, or `a.b.c.d:rest` when three colons-separated
/// parts make it unambiguous.
fn split_host_ip(mapping: &str) -> Result<(Option<IpAddr>, &str), String> {
    if let Some(bracketed) = mapping.strip_prefix('[') {
        let (ip, rest) = bracketed
            .split_once("]:")
            .ok_or("an IPv6 host address in brackets must be followed by ':'")?;
        let ip: std::net::Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        return Ok((Some(IpAddr::V6(ip)), rest));
    }
    let parts: Vec<&str> = mapping.splitn(3, ':').collect();
    if let [ip, host, container] = parts.as_slice() {
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| {
            format!("{ip:?} is not an IPv4 address (put IPv6 addresses in brackets)")
        })?;
        // `rest` keeps exactly "HOST:CONTAINER" (the host part may be empty).
        let rest = &mapping[mapping.len() - host.len() - container.len() - 1..];
        return Ok((Some(IpAddr::V4(ip)), rest));
    }
    Ok((None, mapping))
}

fn parse_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{p:?} is not a port (1-65535)")),
            Ok(n) => Ok(n),
        }
    };
    match text.split_once('-') {
        None => {
            let p = port(text)?;
            Ok(p..=p)
        }
        Some((first, last)) => {
            let (first, last) = (port(first)?, port(last)?);
            if last < first {
                return Err(format!("range {first}-{last} ends before it starts"));
            }
            Ok(first..=last)
        }
    }
}

/// The number of ports in a range.
pub(super) fn count(range: &RangeInclusive<u16>) -> u32 {
    u32::from(*range.end()) - u32::from(*range.start()) + 1
}

/// Ports as specs and the kernel write them: `80`, or `8080-8081` for a range.
pub fn range_text(ports: &RangeInclusive<u16>) -> String {
    if ports.start() == ports.end() {
        ports.start().to_string()
    } else {
        format!("{}-{}", ports.start(), ports.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PortSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn dockers_forms_parse() {
        assert_eq!(
            spec("80"),
            PortSpec {
                host_ip: None,
                host_ports: None,
                container_ports: 80..=80,
                protocol: Protocol::Tcp
            }
        );
        let s = spec("8080:80");
        assert_eq!(
            (s.host_ports, s.container_ports),
            (Some(8080..=8080), 80..=80)
        );
        let s = spec("127.0.0.1:8080:80/udp");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.protocol, Protocol::Udp);
        let s = spec("127.0.0.1::80");
        assert_eq!((s.host_ip.is_some(), s.host_ports), (true, None));
        let s = spec("[::1]:8080:80/SCTP");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(s.protocol, Protocol::Sctp);
        let s = spec("10000-19999:10000-19999");
        assert_eq!(s.host_ports, Some(10000..=19999));
        // A host range for one container port: any free port of the range.
        assert_eq!(spec("8000-8010:80").host_ports, Some(8000..=8010));
        assert_eq!(spec("7000-7002").container_ports, 7000..=7002);
    }

    #[test]
    fn malformed_specs_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "not a port"),
            ("0", "not a port"),
            ("70000", "not a port"),
            ("80/icmp", "unknown protocol"),
            ("8080-8081:80-82", "same length"),
            ("90-80", "ends before"),
            ("1.2.3:80:80", "not an IPv4 address"),
            ("[::1:80:80", "brackets"),
            ("[zz]:80:80", "not an IPv6 address"),
            ("1.2.3.4:1:2:3", "too many colons"),
            ("a:b", "not a port"),
        ] {
            let err = bad.parse::<PortSpec>().unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.starts_with("invalid port specification"), "{err}");
        }
    }

    #[test]
    fn protocol_numbers_are_the_ip_protocol_numbers() {
        let numbers = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp].map(Protocol::number);
        assert_eq!(numbers, [6, 17, 132]);
    }
}
