//! Addresses for new endpoints: a requested one checked, or the lowest free host address of
//! the network's ip-range (or subnet). Only the addresses in use now count, so released ones
//! are handed out again.

use std::collections::BTreeSet;

use super::subnet::{IpConfig, Subnet, parse_address};
use crate::error::{Result, XnetError};

/// An address for a new endpoint: `requested` if it is free and usable (anywhere in the
/// subnet), else the lowest free host address of the ip-range (the whole subnet without
/// one). `used` holds the addresses of existing endpoints.
pub fn allocate<N: Subnet>(
    config: &IpConfig<N>,
    used: &BTreeSet<N::Addr>,
    requested: Option<&str>,
) -> Result<N::Addr> {
    let IpConfig {
        subnet,
        gateway,
        ip_range,
    } = *config;
    if let Some(text) = requested {
        let ip = parse_address::<N>("IP address", text)?;
        if !subnet.is_host_address(ip) {
            return Err(XnetError::invalid(format!(
                "address {ip} is not a host address of subnet {subnet}"
            )));
        }
        if ip == gateway || used.contains(&ip) {
            return Err(XnetError::conflict(format!(
                "address {ip} is already in use on this network"
            )));
        }
        return Ok(ip);
    }
    let pool = ip_range.unwrap_or(subnet);
    pool.hosts()
        .find(|ip| subnet.is_host_address(*ip) && *ip != gateway && !used.contains(ip))
        .ok_or_else(|| XnetError::conflict(format!("no available {} address in {pool}", N::FAMILY)))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ipnet::{Ipv4Net, Ipv6Net};

    use super::*;
    use crate::state::ipam::{
        configure::parse_ip_range,
        testing::{config, ip, net},
    };

    #[test]
    fn ip_range_limits_dynamic_allocation_only() {
        let s = net::<Ipv4Net>("10.6.0.0/24");
        let range = parse_ip_range("10.6.0.128/25", s).unwrap();
        let c = config::<Ipv4Net>("10.6.0.0/24", "10.6.0.1", Some("10.6.0.128/25"));
        assert_eq!(c.ip_range, Some(range));
        let used = BTreeSet::new();
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            Ipv4Addr::new(10, 6, 0, 129)
        );
        // A static address outside the range but inside the subnet is fine, as in Docker.
        assert_eq!(
            allocate(&c, &used, Some("10.6.0.7")).unwrap(),
            Ipv4Addr::new(10, 6, 0, 7)
        );
        // The subnet's broadcast address is never handed out, even at the end of a range.
        let tail = config::<Ipv4Net>("10.6.0.0/24", "10.6.0.1", Some("10.6.0.254/31"));
        assert_eq!(
            allocate(&tail, &used, None).unwrap(),
            Ipv4Addr::new(10, 6, 0, 254)
        );
        let full: BTreeSet<_> = [Ipv4Addr::new(10, 6, 0, 254)].into();
        assert!(allocate(&tail, &full, None).is_err());
        for bad in ["10.7.0.0/25", "10.6.0.0/23", "10.6.0.5/25", "x"] {
            assert!(parse_ip_range(bad, s).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn ipv6_ip_range_limits_dynamic_allocation_only() {
        let s = net::<Ipv6Net>("fd00:6::/64");
        for bad in ["fd00:7::/80", "fd00:6::/63", "fd00:6::5/120", "x"] {
            assert!(parse_ip_range(bad, s).is_err(), "{bad} accepted");
        }
        let c = config::<Ipv6Net>("fd00:6::/64", "fd00:6::1", Some("fd00:6::100/120"));
        let used = BTreeSet::new();
        // The range's own first address is a host address (only the subnet's is reserved).
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            ip::<Ipv6Net>("fd00:6::100")
        );
        assert_eq!(
            allocate(&c, &used, Some("fd00:6::7")).unwrap(),
            ip::<Ipv6Net>("fd00:6::7")
        );
        let full: BTreeSet<_> = (0..=0xffu16)
            .map(|i| ip::<Ipv6Net>(&format!("fd00:6::1{i:02x}")))
            .collect();
        let err = allocate(&c, &full, None).unwrap_err();
        assert!(
            err.to_string().contains("no available IPv6 address"),
            "{err}"
        );
    }

    #[test]
    fn allocation_skips_gateway_and_used_and_checks_requests() {
        let c = config::<Ipv4Net>("10.5.0.0/29", "10.5.0.1", None); // hosts .1 - .6
        let mut used = BTreeSet::new();
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 2)
        );
        used.insert(Ipv4Addr::new(10, 5, 0, 2));
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 3)
        );
        assert_eq!(
            allocate(&c, &used, Some("10.5.0.6")).unwrap(),
            Ipv4Addr::new(10, 5, 0, 6)
        );
        for taken in ["10.5.0.2", "10.5.0.1"] {
            assert!(matches!(
                allocate(&c, &used, Some(taken)),
                Err(XnetError::Conflict(_))
            ));
        }
        for bad in ["10.5.0.7", "10.5.0.0", "10.6.0.2", "x", "fd00::2"] {
            assert!(matches!(
                allocate(&c, &used, Some(bad)),
                Err(XnetError::Invalid(_))
            ));
        }
        // Released addresses are reused: allocation only looks at what is used now.
        used.extend((3..=6).map(|i| Ipv4Addr::new(10, 5, 0, i)));
        assert!(allocate(&c, &used, None).is_err());
        used.remove(&Ipv4Addr::new(10, 5, 0, 4));
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 4)
        );
    }

    #[test]
    fn ipv6_allocation_skips_anycast_gateway_and_used() {
        // A gateway that is not ::1 leaves ::1 to containers; :: is never handed out.
        let c = config::<Ipv6Net>("fd00:5::/126", "fd00:5::2", None);
        let mut used = BTreeSet::new();
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            ip::<Ipv6Net>("fd00:5::1")
        );
        used.insert(ip::<Ipv6Net>("fd00:5::1"));
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            ip::<Ipv6Net>("fd00:5::3")
        );
        used.insert(ip::<Ipv6Net>("fd00:5::3"));
        assert!(matches!(
            allocate(&c, &used, None),
            Err(XnetError::Conflict(_))
        ));
        for taken in ["fd00:5::1", "fd00:5::2"] {
            assert!(matches!(
                allocate(&c, &used, Some(taken)),
                Err(XnetError::Conflict(_))
            ));
        }
        for bad in ["fd00:5::", "fd00:5::4", "10.0.0.2", "fd00:5::g"] {
            assert!(matches!(
                allocate(&c, &used, Some(bad)),
                Err(XnetError::Invalid(_))
            ));
        }
        used.remove(&ip::<Ipv6Net>("fd00:5::1"));
        assert_eq!(
            allocate(&c, &used, None).unwrap(),
            ip::<Ipv6Net>("fd00:5::1")
        );
    }
}
