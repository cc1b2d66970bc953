//! Address management: choosing subnets that collide with nothing, and handing out addresses.
//! Pure functions over what is taken, so every rule is unit-tested without a host. The rules
//! are written once for both address families, over [`Subnet`].

use std::{
    collections::BTreeSet,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Result, XnetError};

/// What the rules need of one address family's subnets: [`Ipv4Net`] and [`Ipv6Net`].
pub trait Subnet:
    Copy + Eq + fmt::Debug + fmt::Display + FromStr + Serialize + DeserializeOwned
{
    type Addr: Copy
        + Ord
        + fmt::Debug
        + fmt::Display
        + FromStr
        + Into<IpAddr>
        + Serialize
        + DeserializeOwned;
    /// `IPv4` or `IPv6`, for messages.
    const FAMILY: &'static str;
    /// The longest prefix that leaves room for a gateway and one container.
    const MAX_PREFIX: u8;
    fn network(&self) -> Self::Addr;
    fn addr(&self) -> Self::Addr;
    fn trunc(&self) -> Self;
    fn prefix_len(&self) -> u8;
    fn contains_addr(&self, ip: &Self::Addr) -> bool;
    fn contains_subnet(&self, other: &Self) -> bool;
    /// Candidate addresses, lowest first (reserved ones may be among them).
    fn hosts(&self) -> impl Iterator<Item = Self::Addr>;
    /// Inside the subnet and not reserved: IPv4 reserves the network and broadcast
    /// addresses, IPv6 the subnet-router anycast address (the network address).
    fn is_host_address(&self, ip: Self::Addr) -> bool;
}

macro_rules! subnet_family {
    ($net:ty, $addr:ty, $family:literal, $max_prefix:literal, |$s:ident, $ip:ident| $reserved:expr) => {
        impl Subnet for $net {
            type Addr = $addr;
            const FAMILY: &'static str = $family;
            const MAX_PREFIX: u8 = $max_prefix;
            fn network(&self) -> $addr {
                <$net>::network(self)
            }
            fn addr(&self) -> $addr {
                <$net>::addr(self)
            }
            fn trunc(&self) -> Self {
                <$net>::trunc(self)
            }
            fn prefix_len(&self) -> u8 {
                <$net>::prefix_len(self)
            }
            fn contains_addr(&self, ip: &$addr) -> bool {
                self.contains(ip)
            }
            fn contains_subnet(&self, other: &Self) -> bool {
                self.contains(other)
            }
            fn hosts(&self) -> impl Iterator<Item = $addr> {
                <$net>::hosts(self)
            }
            fn is_host_address(&self, $ip: $addr) -> bool {
                let $s = self;
                self.contains(&$ip) && !$reserved
            }
        }
    };
}

subnet_family!(Ipv4Net, Ipv4Addr, "IPv4", 30, |net, ip| ip == net.network()
    || ip == net.broadcast());
subnet_family!(Ipv6Net, Ipv6Addr, "IPv6", 126, |net, ip| ip
    == net.network());

/// A subnet that is already spoken for, and by whom (for the error message).
pub struct Taken<N> {
    pub subnet: N,
    pub owner: String,
}

/// A network's addressing in one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
// `Subnet` already requires serde for the subnet and its addresses.
#[serde(bound = "")]
pub struct IpConfig<N: Subnet> {
    pub subnet: N,
    /// An address of the host itself, on the daemon namespace's loopback.
    pub gateway: N::Addr,
    /// Addresses are handed out from here only (`--ip-range`); static addresses may be
    /// anywhere in the subnet, as in Docker.
    #[serde(default)]
    pub ip_range: Option<N>,
}

/// Docker's default pools, in Docker's order: 172.17.0.0/16 ... 172.31.0.0/16, then
/// 192.168.0.0/16 cut into /20s.
pub fn default_pool() -> Vec<Ipv4Net> {
    let wide = (17..=31u8).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let narrow = (0..16u8).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    wide.chain(narrow)
        .map(|net| net.expect("pool prefixes are valid"))
        .collect()
}

/// xnet's own pools while it is a Docker engine's plugin (`--docker-plugin`): the /16s of
/// 10.192.0.0/11 (10.192.0.0/16 ... 10.223.0.0/16), which Docker's default IPAM never hands
/// out. Docker's IPAM knows only Docker's networks: had xnet's `bridge` taken 172.18.0.0/16,
/// the plain `docker network create -d xnet NAME` would be given that pool and refused.
pub fn pool_beside_docker() -> Vec<Ipv4Net> {
    (192..=223u8)
        .map(|b| Ipv4Net::new(Ipv4Addr::new(10, b, 0, 0), 16).expect("a valid prefix"))
        .collect()
}

/// An RFC 4193 unique local /48: `fd` followed by 40 random bits (the caller's).
pub fn ula_prefix(random: [u8; 5]) -> Ipv6Net {
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..6].copy_from_slice(&random);
    Ipv6Net::new(octets.into(), 48).expect("48 is a valid prefix")
}

/// The default IPv6 pool: the /64s of the daemon's unique local /48, numbered 0, 1, 2, ...
pub fn ula_pool(ula: Ipv6Net) -> impl Iterator<Item = Ipv6Net> {
    ula.subnets(64).expect("a /48 holds /64s")
}

fn overlaps<N: Subnet>(a: &N, b: &N) -> bool {
    a.contains_addr(&b.network()) || b.contains_addr(&a.network())
}

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

/// The first subnet of `pool` that overlaps nothing taken.
pub fn pick_subnet<N: Subnet>(pool: impl IntoIterator<Item = N>, taken: &[Taken<N>]) -> Result<N> {
    pool.into_iter()
        .find(|candidate| !taken.iter().any(|t| overlaps(candidate, &t.subnet)))
        .ok_or_else(|| {
            XnetError::conflict(format!(
                "could not find an available, non-overlapping {} address pool among the defaults to assign to the network",
                N::FAMILY
            ))
        })
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

fn parse_address<N: Subnet>(what: &str, text: &str) -> Result<N::Addr> {
    text.parse().map_err(|_| {
        XnetError::invalid(format!(
            "invalid {what} {text:?}: not an {} address",
            N::FAMILY
        ))
    })
}

/// Parses and checks a user-given subnet: canonical form, room for a gateway and a container,
/// and no overlap with anything taken.
pub fn parse_subnet<N: Subnet>(text: &str, taken: &[Taken<N>]) -> Result<N> {
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
pub fn parse_ip_range<N: Subnet>(text: &str, subnet: N) -> Result<N> {
    let range: N = parse_cidr("ip-range", text)?;
    if !subnet.contains_subnet(&range) {
        return Err(XnetError::invalid(format!(
            "ip-range {range} is not inside subnet {subnet}"
        )));
    }
    Ok(range)
}

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

fn first_host<N: Subnet>(subnet: N) -> N::Addr {
    subnet
        .hosts()
        .find(|ip| subnet.is_host_address(*ip))
        .expect("subnets have room for a gateway")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net<N: Subnet>(s: &str) -> N {
        s.parse().ok().unwrap()
    }

    fn ip<N: Subnet>(s: &str) -> N::Addr {
        s.parse().ok().unwrap()
    }

    fn taken<N: Subnet>(subnets: &[&str]) -> Vec<Taken<N>> {
        subnets
            .iter()
            .map(|s| Taken {
                subnet: net(s),
                owner: format!("network {s}"),
            })
            .collect()
    }

    fn config<N: Subnet>(subnet: &str, gateway: &str, range: Option<&str>) -> IpConfig<N> {
        IpConfig {
            subnet: net(subnet),
            gateway: ip::<N>(gateway),
            ip_range: range.map(net),
        }
    }

    #[test]
    fn picks_first_free_pool_skipping_overlaps() {
        let pick = |t: &[&str]| pick_subnet(default_pool(), &taken::<Ipv4Net>(t)).unwrap();
        assert_eq!(pick(&[]), net::<Ipv4Net>("172.17.0.0/16"));
        // docker0 owns 172.17/16 and a host route sits inside 172.18/16.
        assert_eq!(
            pick(&["172.17.0.0/16", "172.18.5.0/24"]),
            net::<Ipv4Net>("172.19.0.0/16")
        );
        // A wide host route covering all of 172.16/12 pushes us into 192.168/16.
        assert_eq!(pick(&["172.16.0.0/12"]), net::<Ipv4Net>("192.168.0.0/20"));
    }

    #[test]
    fn pool_exhaustion_is_an_error() {
        let t = taken::<Ipv4Net>(&["172.16.0.0/12", "192.168.0.0/16"]);
        assert!(pick_subnet(default_pool(), &t).is_err());
        let ula = ula_prefix([1, 2, 3, 4, 5]);
        let err = pick_subnet(ula_pool(ula), &taken::<Ipv6Net>(&["fd00::/8"])).unwrap_err();
        assert!(err.to_string().contains("IPv6 address pool"), "{err}");
    }

    #[test]
    fn ula_pool_is_the_random_48_in_64s_skipping_overlaps() {
        let ula = ula_prefix([0x12, 0x34, 0x56, 0x78, 0x9a]);
        assert_eq!(ula, net::<Ipv6Net>("fd12:3456:789a::/48"));
        let pick = |t: &[&str]| pick_subnet(ula_pool(ula), &taken::<Ipv6Net>(t)).unwrap();
        assert_eq!(pick(&[]), net::<Ipv6Net>("fd12:3456:789a::/64"));
        // Ours in /64 number 0, a host route over numbers 1-3.
        assert_eq!(
            pick(&["fd12:3456:789a::/64", "fd12:3456:789a:2::/63"]),
            net::<Ipv6Net>("fd12:3456:789a:1::/64")
        );
        assert_eq!(
            pick(&["fd12:3456:789a::/64", "fd12:3456:789a::/62"]),
            net::<Ipv6Net>("fd12:3456:789a:4::/64")
        );
    }

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
    fn the_pool_beside_docker_never_meets_dockers_pools() {
        let beside = pool_beside_docker();
        assert_eq!(beside.first(), Some(&net::<Ipv4Net>("10.192.0.0/16")));
        assert_eq!(beside.last(), Some(&net::<Ipv4Net>("10.223.0.0/16")));
        for ours in &beside {
            assert!(default_pool().iter().all(|d| !overlaps(ours, d)), "{ours}");
        }
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
