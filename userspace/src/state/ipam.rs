//! Address management: choosing subnets that collide with nothing, and handing out addresses.
//! Pure functions over what is taken, so every rule is unit-tested without a host.

use std::{collections::BTreeSet, net::Ipv4Addr};

use ipnet::Ipv4Net;

use crate::error::{Result, XnetError};

/// A subnet that is already spoken for, and by whom (for the error message).
pub struct Taken {
    pub subnet: Ipv4Net,
    pub owner: String,
}

/// Docker's default pools, in Docker's order: 172.17.0.0/16 ... 172.31.0.0/16, then
/// 192.168.0.0/16 cut into /20s.
pub fn default_pool() -> impl Iterator<Item = Ipv4Net> {
    let wide = (17..=31u8).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let narrow = (0..16u8).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    wide.chain(narrow)
        .map(|net| net.expect("pool prefixes are valid"))
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first default-pool subnet that overlaps nothing taken.
pub fn pick_subnet(taken: &[Taken]) -> Result<Ipv4Net> {
    default_pool()
        .find(|candidate| !taken.iter().any(|t| overlaps(candidate, &t.subnet)))
        .ok_or_else(|| {
            XnetError::conflict(
                "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
            )
        })
}

/// Parses and checks a user-given subnet: canonical form, room for a gateway and a container,
/// and no overlap with anything taken.
pub fn parse_subnet(text: &str, taken: &[Taken]) -> Result<Ipv4Net> {
    let subnet: Ipv4Net = text
        .parse()
        .map_err(|_| XnetError::invalid(format!("invalid subnet {text:?}: not an IPv4 CIDR")))?;
    if subnet.network() != subnet.addr() {
        return Err(XnetError::invalid(format!(
            "invalid subnet {text}: it should be {}",
            subnet.trunc()
        )));
    }
    if subnet.prefix_len() > 30 {
        return Err(XnetError::invalid(format!(
            "invalid subnet {text}: a /30 or larger is needed for a gateway and a container"
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
pub fn gateway(subnet: Ipv4Net, text: Option<&str>) -> Result<Ipv4Addr> {
    let Some(text) = text else {
        return Ok(first_host(subnet));
    };
    let gw: Ipv4Addr = text.parse().map_err(|_| {
        XnetError::invalid(format!("invalid gateway {text:?}: not an IPv4 address"))
    })?;
    if !is_host_address(subnet, gw) {
        return Err(XnetError::invalid(format!(
            "gateway {gw} is not a host address of subnet {subnet}"
        )));
    }
    Ok(gw)
}

/// Parses and checks `--ip-range`: a CIDR inside the subnet.
pub fn parse_ip_range(text: &str, subnet: Ipv4Net) -> Result<Ipv4Net> {
    let range: Ipv4Net = text
        .parse()
        .map_err(|_| XnetError::invalid(format!("invalid ip-range {text:?}: not an IPv4 CIDR")))?;
    if range.network() != range.addr() {
        return Err(XnetError::invalid(format!(
            "invalid ip-range {text}: it should be {}",
            range.trunc()
        )));
    }
    if !subnet.contains(&range) {
        return Err(XnetError::invalid(format!(
            "ip-range {range} is not inside subnet {subnet}"
        )));
    }
    Ok(range)
}

/// An address for a new endpoint: `requested` if it is free and usable (anywhere in the
/// subnet), else the lowest free host address of `range` (the whole subnet when `None`).
/// `used` holds the addresses of existing endpoints.
pub fn allocate(
    subnet: Ipv4Net,
    range: Option<Ipv4Net>,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    requested: Option<&str>,
) -> Result<Ipv4Addr> {
    if let Some(text) = requested {
        let ip: Ipv4Addr = text.parse().map_err(|_| {
            XnetError::invalid(format!("invalid IP address {text:?}: not an IPv4 address"))
        })?;
        if !is_host_address(subnet, ip) {
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
    let pool = range.unwrap_or(subnet);
    pool.hosts()
        .find(|ip| is_host_address(subnet, *ip) && *ip != gateway && !used.contains(ip))
        .ok_or_else(|| XnetError::conflict(format!("no available IPv4 address in {pool}")))
}

fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    subnet.hosts().next().expect("subnets are /30 or larger")
}

/// Inside the subnet and neither its network nor its broadcast address.
fn is_host_address(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn taken(subnets: &[&str]) -> Vec<Taken> {
        subnets
            .iter()
            .map(|s| Taken {
                subnet: net(s),
                owner: format!("network {s}"),
            })
            .collect()
    }

    #[test]
    fn picks_first_free_pool_skipping_overlaps() {
        assert_eq!(pick_subnet(&[]).unwrap(), net("172.17.0.0/16"));
        // docker0 owns 172.17/16 and a host route sits inside 172.18/16.
        let t = taken(&["172.17.0.0/16", "172.18.5.0/24"]);
        assert_eq!(pick_subnet(&t).unwrap(), net("172.19.0.0/16"));
        // A wide host route covering all of 172.16/12 pushes us into 192.168/16.
        assert_eq!(
            pick_subnet(&taken(&["172.16.0.0/12"])).unwrap(),
            net("192.168.0.0/20")
        );
    }

    #[test]
    fn pool_exhaustion_is_an_error() {
        assert!(pick_subnet(&taken(&["172.16.0.0/12", "192.168.0.0/16"])).is_err());
    }

    #[test]
    fn user_subnets_are_checked() {
        assert_eq!(
            parse_subnet("10.5.0.0/16", &[]).unwrap(),
            net("10.5.0.0/16")
        );
        assert!(matches!(
            parse_subnet("10.5.0.0/33", &[]),
            Err(XnetError::Invalid(_))
        ));
        assert!(matches!(
            parse_subnet("not-a-cidr", &[]),
            Err(XnetError::Invalid(_))
        ));
        let err = parse_subnet("10.5.1.0/16", &[]).unwrap_err().to_string();
        assert!(err.contains("it should be 10.5.0.0/16"), "{err}");
        assert!(matches!(
            parse_subnet("10.5.0.0/31", &[]),
            Err(XnetError::Invalid(_))
        ));
        let err = parse_subnet("10.5.0.0/24", &taken(&["10.5.0.0/16"])).unwrap_err();
        assert!(matches!(err, XnetError::Conflict(_)));
        assert!(err.to_string().contains("overlaps"));
        // Overlap is symmetric: a wider new subnet covering an existing one also clashes.
        assert!(parse_subnet("10.0.0.0/8", &taken(&["10.5.0.0/16"])).is_err());
    }

    #[test]
    fn gateway_defaults_to_first_host_and_must_be_inside() {
        let s = net("10.5.0.0/24");
        assert_eq!(gateway(s, None).unwrap(), Ipv4Addr::new(10, 5, 0, 1));
        assert_eq!(
            gateway(s, Some("10.5.0.254")).unwrap(),
            Ipv4Addr::new(10, 5, 0, 254)
        );
        for bad in ["10.6.0.1", "10.5.0.0", "10.5.0.255", "nope"] {
            assert!(gateway(s, Some(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn ip_range_limits_dynamic_allocation_only() {
        let s = net("10.6.0.0/24");
        let gw = Ipv4Addr::new(10, 6, 0, 1);
        let range = parse_ip_range("10.6.0.128/25", s).unwrap();
        let used = BTreeSet::new();
        assert_eq!(
            allocate(s, Some(range), gw, &used, None).unwrap(),
            Ipv4Addr::new(10, 6, 0, 129)
        );
        // A static address outside the range but inside the subnet is fine, as in Docker.
        assert_eq!(
            allocate(s, Some(range), gw, &used, Some("10.6.0.7")).unwrap(),
            Ipv4Addr::new(10, 6, 0, 7)
        );
        // The subnet's broadcast address is never handed out, even at the end of a range.
        let tail = parse_ip_range("10.6.0.254/31", s).unwrap();
        assert_eq!(
            allocate(s, Some(tail), gw, &used, None).unwrap(),
            Ipv4Addr::new(10, 6, 0, 254)
        );
        let full: BTreeSet<_> = [Ipv4Addr::new(10, 6, 0, 254)].into();
        assert!(allocate(s, Some(tail), gw, &full, None).is_err());
        for bad in ["10.7.0.0/25", "10.6.0.0/23", "10.6.0.5/25", "x"] {
            assert!(parse_ip_range(bad, s).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn allocation_skips_gateway_and_used_and_checks_requests() {
        let s = net("10.5.0.0/29"); // hosts .1 - .6
        let gw = Ipv4Addr::new(10, 5, 0, 1);
        let mut used = BTreeSet::new();
        assert_eq!(
            allocate(s, None, gw, &used, None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 2)
        );
        used.insert(Ipv4Addr::new(10, 5, 0, 2));
        assert_eq!(
            allocate(s, None, gw, &used, None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 3)
        );
        assert_eq!(
            allocate(s, None, gw, &used, Some("10.5.0.6")).unwrap(),
            Ipv4Addr::new(10, 5, 0, 6)
        );
        assert!(matches!(
            allocate(s, None, gw, &used, Some("10.5.0.2")),
            Err(XnetError::Conflict(_))
        ));
        assert!(matches!(
            allocate(s, None, gw, &used, Some("10.5.0.1")),
            Err(XnetError::Conflict(_))
        ));
        for bad in ["10.5.0.7", "10.5.0.0", "10.6.0.2", "x"] {
            assert!(matches!(
                allocate(s, None, gw, &used, Some(bad)),
                Err(XnetError::Invalid(_))
            ));
        }
        // Released addresses are reused: allocation only looks at what is used now.
        used.extend((3..=6).map(|i| Ipv4Addr::new(10, 5, 0, i)));
        assert!(allocate(s, None, gw, &used, None).is_err());
        used.remove(&Ipv4Addr::new(10, 5, 0, 4));
        assert_eq!(
            allocate(s, None, gw, &used, None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 4)
        );
    }
}
