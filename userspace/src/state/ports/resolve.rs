//! The rules for host ports, pure functions over what is taken (like `ipam`): a spec becomes
//! [`PortMapping`]s with their host ports resolved ([`resolve`]), refused when a [`Holding`]
//! (another container's mapping, a socket of the host) has one of them. As in Docker, a spec
//! without a host address binds 0.0.0.0 and, for a container with IPv6, `::` too, with the
//! same host ports.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use super::{
    mapping::{Holder, Holding, PortMapping, Requested},
    spec::{PortSpec, Protocol, count},
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ports::mapping::host_binding;

    fn spec(s: &str) -> PortSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
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
}
