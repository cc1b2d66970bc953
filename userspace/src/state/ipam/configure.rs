//! A network's addressing as it was asked for: the repeatable `--subnet`, `--gateway` and
//! `--ip-range` sorted into families, each checked (canonical, inside its subnet, overlapping
//! nothing taken), and a subnet picked from a pool where none was given.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::{
    pools::pick_subnet,
    subnet::{IpConfig, Subnet, Taken, overlaps, parse_address},
};
use crate::error::{Result, XnetError};

/// The `--subnet`, `--gateway` and `--ip-range` a network was asked for in one family.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requested<'a> {
    pub subnet: Option<&'a str>,
    pub gateway: Option<&'a str>,
    pub ip_range: Option<&'a str>,
}

impl Requested<'_> {
    /// The first flag given, for messages about the family as a whole.
    pub fn first_flag(&self) -> Option<&'static str> {
        [
            ("--subnet", self.subnet),
            ("--gateway", self.gateway),
            ("--ip-range", self.ip_range),
        ]
        .into_iter()
        .find_map(|(flag, value)| value.map(|_| flag))
    }
}

/// Sorts the repeatable `--subnet`, `--gateway` and `--ip-range` values into IPv4 and IPv6
/// (an IPv6 address or CIDR has a `:`, an IPv4 one never does): at most one of each per
/// family, as a network has at most one subnet per family.
pub fn by_family<'a>(
    subnets: &'a [String],
    gateways: &'a [String],
    ip_ranges: &'a [String],
) -> Result<(Requested<'a>, Requested<'a>)> {
    type Slot<'a> = for<'r> fn(&'r mut Requested<'a>) -> &'r mut Option<&'a str>;
    let flags: [(&str, &'a [String], Slot<'a>); 3] = [
        ("--subnet", subnets, |r| &mut r.subnet),
        ("--gateway", gateways, |r| &mut r.gateway),
        ("--ip-range", ip_ranges, |r| &mut r.ip_range),
    ];
    let (mut v4, mut v6) = (Requested::default(), Requested::default());
    for (flag, values, slot) in flags {
        for text in values {
            let (family, requested) = if text.contains(':') {
                (Ipv6Net::FAMILY, &mut v6)
            } else {
                (Ipv4Net::FAMILY, &mut v4)
            };
            let slot = slot(requested);
            if slot.is_some() {
                return Err(XnetError::invalid(format!(
                    "only one {family} {flag} per network"
                )));
            }
            *slot = Some(text);
        }
    }
    Ok((v4, v6))
}

/// A network's addressing in one family: the requested subnet (or the first of `pool` that
/// overlaps nothing taken), gateway (or the subnet's first address) and ip-range.
pub fn configure<N: Subnet>(
    requested: &Requested,
    taken: &[Taken<N>],
    pool: impl IntoIterator<Item = N>,
) -> Result<IpConfig<N>> {
    let subnet = match requested.subnet {
        Some(text) => parse_subnet(text, taken)?,
        None => {
            if let Some(flag) = requested.first_flag() {
                return Err(XnetError::invalid(format!(
                    "an {0} {flag} needs an {0} --subnet",
                    N::FAMILY
                )));
            }
            pick_subnet(pool, taken)?
        }
    };
    Ok(IpConfig {
        subnet,
        gateway: gateway(subnet, requested.gateway)?,
        ip_range: requested
            .ip_range
            .map(|text| parse_ip_range(text, subnet))
            .transpose()?,
    })
}

/// Parses `--aux-address NAME=IP` values: each a host address of the network's IPv4 subnet or
/// of its IPv6 one (`ipv6`), and not its gateway.
pub fn aux_addresses(
    given: &BTreeMap<String, String>,
    ipv4: &IpConfig<Ipv4Net>,
    ipv6: Option<&IpConfig<Ipv6Net>>,
) -> Result<BTreeMap<String, IpAddr>> {
    given
        .iter()
        .map(|(name, text)| {
            let ip: IpAddr = text.parse().map_err(|_| {
                XnetError::invalid(format!("invalid --aux-address {name}={text}: not an address"))
            })?;
            let inside = match ip {
                IpAddr::V4(a) => ipv4.subnet.is_host_address(a) && a != ipv4.gateway,
                IpAddr::V6(a) => ipv6.is_some_and(|c| c.subnet.is_host_address(a) && a != c.gateway),
            };
            if !inside {
                return Err(XnetError::invalid(format!(
                    "invalid --aux-address {name}={ip}: not a host address of the network's subnets (nor its gateway)"
                )));
            }
            Ok((name.clone(), ip))
        })
        .collect()
}

/// The auxiliary addresses of the family of `N`.
pub fn aux_in<N: Subnet>(
    aux: &BTreeMap<String, IpAddr>,
) -> impl Iterator<Item = (&String, N::Addr)> {
    // Every address of the family parses as its `Addr`; the others do not.
    aux.iter()
        .filter_map(|(name, ip)| Some((name, ip.to_string().parse().ok()?)))
}

/// Parses a CIDR in canonical form (the network address, not a host address inside it).
fn parse_cidr<N: Subnet>(what: &str, text: &str) -> Result<N> {
    let net: N = text.parse().map_err(|_| {
        XnetError::invalid(format!(
            "invalid {what} {text:?}: not an {} CIDR",
            N::FAMILY
        ))
    })?;
    if net.network() != net.addr() {
        return Err(XnetError::invalid(format!(
            "invalid {what} {text}: it should be {}",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Parses and checks a user-given subnet: canonical form, room for a gateway and a container,
/// and no overlap with anything taken.
fn parse_subnet<N: Subnet>(text: &str, taken: &[Taken<N>]) -> Result<N> {
    let subnet: N = parse_cidr("subnet", text)?;
    if subnet.prefix_len() > N::MAX_PREFIX {
        return Err(XnetError::invalid(format!(
            "invalid subnet {text}: a /{} or larger is needed for a gateway and a container",
            N::MAX_PREFIX
        )));
    }
    if let Some(t) = taken.iter().find(|t| overlaps(&subnet, &t.subnet)) {
        return Err(XnetError::conflict(format!(
            "subnet {subnet} overlaps with {} ({})",
            t.owner, t.subnet
        )));
    }
    Ok(subnet)
}

/// Parses and checks a gateway, or picks the subnet's first address (Docker's default).
pub fn gateway<N: Subnet>(subnet: N, text: Option<&str>) -> Result<N::Addr> {
    let Some(text) = text else {
        return Ok(first_host(subnet));
    };
    let gw = parse_address::<N>("gateway", text)?;
    if !subnet.is_host_address(gw) {
        return Err(XnetError::invalid(format!(
            "gateway {gw} is not a host address of subnet {subnet}"
        )));
    }
    Ok(gw)
}

/// Parses and checks `--ip-range`: a CIDR inside the subnet.
pub(super) fn parse_ip_range<N: Subnet>(text: &str, subnet: N) -> Result<N> {
    let range: N = parse_cidr("ip-range", text)?;
    if !subnet.contains_subnet(&range) {
        return Err(XnetError::invalid(format!(
            "ip-range {range} is not inside subnet {subnet}"
        )));
    }
    Ok(range)
}

fn first_host<N: Subnet>(subnet: N) -> N::Addr {
    subnet
        .hosts()
        .find(|ip| subnet.is_host_address(*ip))
        .expect("subnets have room for a gateway")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::state::ipam::{
        pools::{default_pool, ula_pool, ula_prefix},
        testing::{ip, net, taken},
    };

    #[test]
    fn user_subnets_are_checked() {
        assert_eq!(
            parse_subnet::<Ipv4Net>("10.5.0.0/16", &[]).unwrap(),
            net::<Ipv4Net>("10.5.0.0/16")
        );
        for bad in ["10.5.0.0/33", "not-a-cidr", "10.5.0.0/31", "fd00::/64"] {
            assert!(
                matches!(
                    parse_subnet::<Ipv4Net>(bad, &[]),
                    Err(XnetError::Invalid(_))
                ),
                "{bad} accepted"
            );
        }
        let err = parse_subnet::<Ipv4Net>("10.5.1.0/16", &[]).unwrap_err();
        assert!(
            err.to_string().contains("it should be 10.5.0.0/16"),
            "{err}"
        );
        let err = parse_subnet("10.5.0.0/24", &taken::<Ipv4Net>(&["10.5.0.0/16"])).unwrap_err();
        assert!(matches!(err, XnetError::Conflict(_)));
        assert!(err.to_string().contains("overlaps"));
        // Overlap is symmetric: a wider new subnet covering an existing one also clashes.
        assert!(parse_subnet("10.0.0.0/8", &taken::<Ipv4Net>(&["10.5.0.0/16"])).is_err());
    }

    #[test]
    fn user_ipv6_subnets_are_checked() {
        assert_eq!(
            parse_subnet::<Ipv6Net>("fd00:1::/64", &[]).unwrap(),
            net::<Ipv6Net>("fd00:1::/64")
        );
        // A /126 holds the anycast address, the gateway and two containers; a /127 does not.
        assert!(parse_subnet::<Ipv6Net>("fd00:1::/126", &[]).is_ok());
        for bad in [
            "fd00:1::/127",
            "fd00:1::/129",
            "10.0.0.0/24",
            "fd00:zz::/64",
        ] {
            assert!(
                matches!(
                    parse_subnet::<Ipv6Net>(bad, &[]),
                    Err(XnetError::Invalid(_))
                ),
                "{bad} accepted"
            );
        }
        let err = parse_subnet::<Ipv6Net>("fd00:1::5/64", &[]).unwrap_err();
        assert!(
            err.to_string().contains("it should be fd00:1::/64"),
            "{err}"
        );
        let t = taken::<Ipv6Net>(&["fd00:1::/64"]);
        assert!(matches!(
            parse_subnet("fd00:1::/48", &t),
            Err(XnetError::Conflict(_))
        ));
        assert!(parse_subnet("fd00:1:0:1::/64", &t).is_ok());
    }

    #[test]
    fn gateway_defaults_to_first_host_and_must_be_inside() {
        let s = net::<Ipv4Net>("10.5.0.0/24");
        assert_eq!(gateway(s, None).unwrap(), Ipv4Addr::new(10, 5, 0, 1));
        assert_eq!(
            gateway(s, Some("10.5.0.254")).unwrap(),
            Ipv4Addr::new(10, 5, 0, 254)
        );
        for bad in ["10.6.0.1", "10.5.0.0", "10.5.0.255", "nope", "fd00::1"] {
            assert!(gateway(s, Some(bad)).is_err(), "{bad} accepted");
        }
        let s = net::<Ipv6Net>("fd00:1::/64");
        assert_eq!(gateway(s, None).unwrap(), ip::<Ipv6Net>("fd00:1::1"));
        // IPv6 has no broadcast address: the last address is a host address.
        let last = "fd00:1::ffff:ffff:ffff:ffff";
        assert_eq!(gateway(s, Some(last)).unwrap(), ip::<Ipv6Net>(last));
        // The subnet-router anycast address is not.
        for bad in ["fd00:1::", "fd00:2::1", "10.0.0.1"] {
            assert!(gateway(s, Some(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn flags_are_sorted_by_family_one_of_each() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let subnets = v(&["fd00:1::/64", "10.1.0.0/24"]);
        let gateways = v(&["10.1.0.254"]);
        let ranges = v(&["fd00:1::/120"]);
        let (v4, v6) = by_family(&subnets, &gateways, &ranges).unwrap();
        assert_eq!(
            v4,
            Requested {
                subnet: Some("10.1.0.0/24"),
                gateway: Some("10.1.0.254"),
                ip_range: None
            }
        );
        assert_eq!(
            v6,
            Requested {
                subnet: Some("fd00:1::/64"),
                gateway: None,
                ip_range: Some("fd00:1::/120")
            }
        );
        assert_eq!(v6.first_flag(), Some("--subnet"));
        assert_eq!(Requested::default().first_flag(), None);
        let err = by_family(&v(&["10.1.0.0/24", "10.2.0.0/24"]), &[], &[]).unwrap_err();
        assert_eq!(err.to_string(), "only one IPv4 --subnet per network");
        let err = by_family(&[], &v(&["fd00::1", "fd00::2"]), &[]).unwrap_err();
        assert_eq!(err.to_string(), "only one IPv6 --gateway per network");
    }

    #[test]
    fn configure_picks_or_checks_per_family() {
        let none = Requested::default();
        let c = configure::<Ipv4Net>(&none, &[], default_pool()).unwrap();
        assert_eq!(
            (c.subnet, c.gateway, c.ip_range),
            (net("172.17.0.0/16"), Ipv4Addr::new(172, 17, 0, 1), None)
        );
        let ula = ula_prefix([0xaa; 5]);
        let c = configure::<Ipv6Net>(&none, &[], ula_pool(ula)).unwrap();
        assert_eq!(c.subnet, net::<Ipv6Net>("fdaa:aaaa:aaaa::/64"));
        assert_eq!(c.gateway, ip::<Ipv6Net>("fdaa:aaaa:aaaa::1"));
        let gateway_only = Requested {
            gateway: Some("fd00::1"),
            ..none
        };
        let err = configure::<Ipv6Net>(&gateway_only, &[], ula_pool(ula)).unwrap_err();
        assert_eq!(err.to_string(), "an IPv6 --gateway needs an IPv6 --subnet");
        let full = Requested {
            subnet: Some("fd00:9::/64"),
            gateway: Some("fd00:9::fe"),
            ip_range: Some("fd00:9::/112"),
        };
        let c = configure::<Ipv6Net>(&full, &[], ula_pool(ula)).unwrap();
        assert_eq!(c.gateway, ip::<Ipv6Net>("fd00:9::fe"));
        assert_eq!(c.ip_range, Some(net("fd00:9::/112")));
    }
}
