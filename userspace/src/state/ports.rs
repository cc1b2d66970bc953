//! Published ports as Docker's `-p` writes them:
//! `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|/udp|/sctp]`, an IPv6 host address in
//! brackets (`[::1]:8080:80`). Parsing is pure and unit-tested; every rule Docker enforces is
//! refused here with the reason, so nothing downstream sees a malformed mapping.
//!
//! Then the rules for host ports, pure functions over what is taken (like `ipam`): a spec
//! becomes [`PortMapping`]s with their host ports resolved ([`resolve`]), refused when a
//! [`Holding`] (another container's mapping, a socket of the host) has one of them. As in
//! Docker, a spec without a host address binds 0.0.0.0 and, for a container with IPv6, `::`
//! too, with the same host ports; IPv4 and IPv6 bindings never conflict with each other.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    ops::RangeInclusive,
    str::FromStr,
};

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
fn count(range: &RangeInclusive<u16>) -> u32 {
    u32::from(*range.end()) - u32::from(*range.start()) + 1
}

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
    fn first_taken(
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

/// Why a spec could not be given host ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// The spec asks for something the container cannot have (an IPv6 host address for a
    /// container without IPv6).
    Unsupported(String),
    /// A host port it needs is held.
    Taken {
        addr: IpAddr,
        port: u16,
        protocol: Protocol,
        holder: Holder,
    },
    /// No free host ports where it may take them.
    Exhausted(String),
}

/// Resolves each spec's host ports in turn (a spec may not take what an earlier one of the
/// same request took), for container `owner`, which has an IPv6 address if `ipv6`.
pub fn resolve_all(
    specs: &[PortSpec],
    owner: &str,
    ipv6: bool,
    taken: &mut Vec<Holding>,
    ephemeral: &RangeInclusive<u16>,
) -> Result<Vec<PortMapping>, PortError> {
    let mut mappings = Vec::new();
    for spec in specs {
        for mapping in resolve(spec, ipv6, taken, ephemeral)? {
            taken.push(mapping.holding(Holder::Container(owner.to_string())));
            mappings.push(mapping);
        }
    }
    Ok(mappings)
}

/// The host addresses a spec binds: the one it names, else 0.0.0.0 and (with `ipv6`) `::`.
fn host_addresses(spec: &PortSpec, ipv6: bool) -> Result<Vec<IpAddr>, PortError> {
    match spec.host_ip {
        None if ipv6 => Ok(vec![
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv6Addr::UNSPECIFIED.into(),
        ]),
        None => Ok(vec![Ipv4Addr::UNSPECIFIED.into()]),
        Some(IpAddr::V6(ip)) if !ipv6 => Err(PortError::Unsupported(format!(
            "cannot publish on [{ip}]: the container has no IPv6 address (its network was created without --ipv6)"
        ))),
        Some(ip) => Ok(vec![ip]),
    }
}

/// The spec's mappings (one per host address, all with the same host ports), given what is
/// `taken`: the ports it names when all are free on every address; else the first free port
/// of a host range given for a single container port (Docker); else, when none are given, the
/// lowest free run of `ephemeral` as long as the container range.
pub fn resolve(
    spec: &PortSpec,
    ipv6: bool,
    taken: &[Holding],
    ephemeral: &RangeInclusive<u16>,
) -> Result<Vec<PortMapping>, PortError> {
    let addrs = host_addresses(spec, ipv6)?;
    let len = count(&spec.container_ports);
    let range = |first: u16| first..=(u32::from(first) + len - 1) as u16;
    let host_ports = match &spec.host_ports {
        Some(ports) if count(ports) == len => {
            if let Some((port, addr, holder)) = first_conflict(taken, spec.protocol, &addrs, ports)
            {
                return Err(PortError::Taken {
                    addr,
                    port,
                    protocol: spec.protocol,
                    holder: holder.clone(),
                });
            }
            ports.clone()
        }
        Some(ports) => free_run(taken, spec.protocol, &addrs, ports, 1)
            .map(range)
            .ok_or_else(|| {
                PortError::Exhausted(format!(
                    "no free host port in {}-{}/{}",
                    ports.start(),
                    ports.end(),
                    spec.protocol
                ))
            })?,
        None => free_run(taken, spec.protocol, &addrs, ephemeral, len)
            .map(range)
            .ok_or_else(|| {
                PortError::Exhausted(format!(
                    "no free run of {len} host port(s) in the ephemeral range {}-{}/{}",
                    ephemeral.start(),
                    ephemeral.end(),
                    spec.protocol
                ))
            })?,
    };
    Ok(addrs
        .into_iter()
        .map(|host_ip| PortMapping {
            protocol: spec.protocol,
            host_ip,
            host_ports: host_ports.clone(),
            container_ports: spec.container_ports.clone(),
            requested: Requested {
                host_ip: spec.host_ip,
                host_ports: spec.host_ports.clone(),
            },
        })
        .collect())
}

/// The lowest port of `ports` on any of `addrs` that something holds, where, and its holder.
fn first_conflict<'a>(
    taken: &'a [Holding],
    protocol: Protocol,
    addrs: &[IpAddr],
    ports: &RangeInclusive<u16>,
) -> Option<(u16, IpAddr, &'a Holder)> {
    addrs
        .iter()
        .flat_map(|&addr| {
            taken
                .iter()
                .filter_map(move |h| Some((h.first_taken(protocol, addr, ports)?, addr, &h.holder)))
        })
        .min_by_key(|(port, _, _)| *port)
}

/// The first port of the lowest run of `len` ports within `within` free on all of `addrs`.
fn free_run(
    taken: &[Holding],
    protocol: Protocol,
    addrs: &[IpAddr],
    within: &RangeInclusive<u16>,
    len: u32,
) -> Option<u16> {
    let mut first = u32::from(*within.start());
    while first + len - 1 <= u32::from(*within.end()) {
        let run = first as u16..=(first + len - 1) as u16;
        match first_conflict(taken, protocol, addrs, &run) {
            None => return Some(first as u16),
            // Past every holding that overlaps the run at its first conflict.
            Some((port, _, _)) => {
                let end = taken
                    .iter()
                    .filter(|h| {
                        addrs
                            .iter()
                            .any(|&addr| h.first_taken(protocol, addr, &(port..=port)).is_some())
                    })
                    .map(|h| u32::from(*h.ports.end()))
                    .max()
                    .unwrap_or(u32::from(port));
                first = end + 1;
            }
        }
    }
    None
}

/// Ports as specs and the kernel write them: `80`, or `8080-8081` for a range.
pub fn range_text(ports: &RangeInclusive<u16>) -> String {
    if ports.start() == ports.end() {
        ports.start().to_string()
    } else {
        format!("{}-{}", ports.start(), ports.end())
    }
}

/// `addr:port` as Docker shows a host binding: IPv6 addresses in brackets.
pub fn host_binding(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr, port).to_string()
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

    const EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

    /// The one mapping of a spec for a container without IPv6.
    fn resolve4(
        spec: &PortSpec,
        taken: &[Holding],
        ephemeral: &RangeInclusive<u16>,
    ) -> Result<PortMapping, PortError> {
        let mut mappings = resolve(spec, false, taken, ephemeral)?;
        assert_eq!(mappings.len(), 1, "{mappings:?}");
        Ok(mappings.remove(0))
    }

    fn held(addr: &str, ports: RangeInclusive<u16>, holder: Holder) -> Holding {
        Holding {
            protocol: Protocol::Tcp,
            addr: addr.parse().unwrap(),
            ports,
            holder,
        }
    }

    fn web() -> Holder {
        Holder::Container("web".into())
    }

    #[test]
    fn given_host_ports_are_kept_when_free() {
        let m = resolve4(&spec("127.0.0.1:8080-8081:80-81/udp"), &[], &EPHEMERAL).unwrap();
        assert_eq!(
            m,
            PortMapping {
                protocol: Protocol::Udp,
                host_ip: Ipv4Addr::LOCALHOST.into(),
                host_ports: 8080..=8081,
                container_ports: 80..=81,
                requested: Requested {
                    host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                    host_ports: Some(8080..=8081)
                },
            }
        );
        assert_eq!(m.pairs().collect::<Vec<_>>(), [(80, 8080), (81, 8081)]);
        // Another protocol, or another specific address, does not conflict.
        let taken = [held("127.0.0.1", 8080..=8080, web())];
        assert!(resolve4(&spec("8080:80/udp"), &taken, &EPHEMERAL).is_ok());
        assert!(resolve4(&spec("10.0.0.1:8080:80"), &taken, &EPHEMERAL).is_ok());
    }

    #[test]
    fn conflicts_name_the_lowest_taken_port_and_its_holder() {
        let taken = [
            held("0.0.0.0", 9000..=9100, web()),
            held("127.0.0.1", 8081..=8081, Holder::Socket(42)),
        ];
        // 0.0.0.0 overlaps every address, in both directions.
        let err = resolve4(&spec("8080-8090:80-90"), &taken, &EPHEMERAL).unwrap_err();
        assert_eq!(
            err,
            PortError::Taken {
                addr: Ipv4Addr::UNSPECIFIED.into(),
                port: 8081,
                protocol: Protocol::Tcp,
                holder: Holder::Socket(42)
            }
        );
        let err = resolve4(&spec("10.1.2.3:9050:80"), &taken, &EPHEMERAL).unwrap_err();
        assert!(matches!(err, PortError::Taken { port: 9050, holder, .. } if holder == web()));
    }

    #[test]
    fn a_host_range_for_one_container_port_takes_its_first_free_port() {
        let taken = [
            held("0.0.0.0", 8000..=8001, web()),
            held("0.0.0.0", 8002..=8002, Holder::Socket(1)),
        ];
        let m = resolve4(&spec("8000-8010:80"), &taken, &EPHEMERAL).unwrap();
        assert_eq!((m.host_ports, m.container_ports), (8003..=8003, 80..=80));
        let err = resolve4(&spec("8000-8002:80"), &taken, &EPHEMERAL).unwrap_err();
        assert!(matches!(err, PortError::Exhausted(e) if e.contains("8000-8002/tcp")));
    }

    #[test]
    fn omitted_host_ports_are_a_free_run_of_the_ephemeral_range() {
        assert_eq!(
            resolve4(&spec("80"), &[], &EPHEMERAL).unwrap().host_ports,
            32768..=32768
        );
        let taken = [
            held("0.0.0.0", 32768..=32769, web()),
            held("127.0.0.1", 32771..=32771, Holder::Socket(7)),
        ];
        // 32770 alone is too short for three ports.
        let m = resolve4(&spec("7000-7002"), &taken, &EPHEMERAL).unwrap();
        assert_eq!(m.host_ports, 32772..=32774);
        // A binding on another specific address does not overlap.
        let m = resolve4(&spec("10.0.0.1::80"), &taken, &(32771..=32771)).unwrap();
        assert_eq!(m.host_ports, 32771..=32771);
        let err = resolve4(&spec("80-81"), &[], &(60999..=60999)).unwrap_err();
        assert!(matches!(err, PortError::Exhausted(e) if e.contains("60999-60999")));
    }

    #[test]
    fn one_request_cannot_take_a_port_twice() {
        let mut taken = Vec::new();
        let specs = [spec("80"), spec("81"), spec("8080:82")];
        let mappings = resolve_all(&specs, "db", false, &mut taken, &EPHEMERAL).unwrap();
        let hosts: Vec<_> = mappings.iter().map(|m| m.host_ports.clone()).collect();
        assert_eq!(hosts, [32768..=32768, 32769..=32769, 8080..=8080]);
        assert_eq!(taken.len(), 3);
        let err = resolve_all(&[spec("8080:90")], "db2", false, &mut taken, &EPHEMERAL);
        assert!(
            matches!(err, Err(PortError::Taken { holder: Holder::Container(c), .. }) if c == "db")
        );
    }

    fn ips(mappings: &[PortMapping]) -> Vec<(String, RangeInclusive<u16>)> {
        mappings
            .iter()
            .map(|m| (m.host_ip.to_string(), m.host_ports.clone()))
            .collect()
    }

    #[test]
    fn without_a_host_address_a_container_with_ipv6_is_published_on_both_wildcards() {
        let both = resolve(&spec("8080:80"), true, &[], &EPHEMERAL).unwrap();
        assert_eq!(
            ips(&both),
            [("0.0.0.0".into(), 8080..=8080), ("::".into(), 8080..=8080)]
        );
        assert!(both.iter().all(|m| m.requested.host_ip.is_none()));
        let only4 = resolve(&spec("8080:80"), false, &[], &EPHEMERAL).unwrap();
        assert_eq!(ips(&only4), [("0.0.0.0".into(), 8080..=8080)]);
        for (given, ip) in [
            ("[::1]:8080:80", "::1"),
            ("[2001:db8::1]:8080:80", "2001:db8::1"),
        ] {
            assert_eq!(
                ips(&resolve(&spec(given), true, &[], &EPHEMERAL).unwrap()),
                [(ip.into(), 8080..=8080)]
            );
        }
        // An IPv6 host address for a container without IPv6: refused, saying why.
        let err = resolve(&spec("[::]:8080:80"), false, &[], &EPHEMERAL).unwrap_err();
        assert!(matches!(err, PortError::Unsupported(e) if e.contains("no IPv6 address")));
    }

    #[test]
    fn families_conflict_only_with_themselves_and_ephemeral_ports_are_free_in_both() {
        let taken = [
            held("::", 32768..=32768, Holder::Socket(1)),
            held("0.0.0.0", 32769..=32769, web()),
            held("::1", 8080..=8080, web()),
        ];
        // `::` holds its port for IPv6 bindings, 0.0.0.0 for IPv4 ones.
        let err = resolve(&spec("[::1]:32768:80"), true, &taken, &EPHEMERAL).unwrap_err();
        assert!(matches!(err, PortError::Taken { port: 32768, addr, .. } if addr.is_ipv6()));
        assert!(resolve(&spec("127.0.0.1:32768:80"), true, &taken, &EPHEMERAL).is_ok());
        assert!(resolve(&spec("[::1]:32769:80"), true, &taken, &EPHEMERAL).is_ok());
        // A dual-stack spec needs its ports free on both wildcards.
        let both = resolve(&spec("80"), true, &taken, &EPHEMERAL).unwrap();
        assert_eq!(
            ips(&both),
            [
                ("0.0.0.0".into(), 32770..=32770),
                ("::".into(), 32770..=32770)
            ]
        );
        let err = resolve(&spec("8080:80"), true, &taken, &EPHEMERAL).unwrap_err();
        assert_eq!(
            err,
            PortError::Taken {
                addr: Ipv6Addr::UNSPECIFIED.into(),
                port: 8080,
                protocol: Protocol::Tcp,
                holder: web()
            }
        );
        assert!(resolve(&spec("8080:80"), false, &taken, &EPHEMERAL).is_ok());
        assert_eq!(host_binding("::".parse().unwrap(), 8080), "[::]:8080");
    }

    #[test]
    fn removal_without_a_host_address_matches_both_families() {
        let both = resolve(&spec("8080:80"), true, &[], &EPHEMERAL).unwrap();
        assert!(both.iter().all(|m| m.matches(&spec("8080:80"))));
        let v6: Vec<bool> = both
            .iter()
            .map(|m| m.matches(&spec("[::]:8080:80")))
            .collect();
        assert_eq!(v6, [false, true]);
    }

    #[test]
    fn requested_host_ports_are_kept_as_given() {
        let requested = |s: &str| {
            resolve4(&spec(s), &[], &EPHEMERAL)
                .unwrap()
                .requested_pairs()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            requested("9000-9001:90-91"),
            [(90, "9000".into()), (91, "9001".into())]
        );
        assert_eq!(requested("8000-8010:80"), [(80, "8000-8010".into())]);
        assert_eq!(requested("5-6"), [(5, String::new()), (6, String::new())]);
    }

    #[test]
    fn removal_matches_on_what_the_spec_gives() {
        let m = resolve4(&spec("127.0.0.1:8080:80"), &[], &EPHEMERAL).unwrap();
        for yes in ["80", "8080:80", "127.0.0.1:8080:80", "127.0.0.1::80"] {
            assert!(m.matches(&spec(yes)), "{yes}");
        }
        for no in ["81", "80/udp", "8081:80", "0.0.0.0:8080:80", "80-81"] {
            assert!(!m.matches(&spec(no)), "{no}");
        }
    }

    #[test]
    fn protocol_numbers_are_the_ip_protocol_numbers() {
        let numbers = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp].map(Protocol::number);
        assert_eq!(numbers, [6, 17, 132]);
    }
}
