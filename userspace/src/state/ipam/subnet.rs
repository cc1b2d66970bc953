//! The model of one address family's addressing: what the rules need of a subnet
//! ([`Subnet`], for [`Ipv4Net`] and [`Ipv6Net`]), a network's addressing in a family
//! ([`IpConfig`]) and a subnet already spoken for ([`Taken`]). The rules in the sibling modules
//! are written once over these, for both families.

use std::{
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

/// Whether two subnets share an address (either holds the other's network address).
pub(super) fn overlaps<N: Subnet>(a: &N, b: &N) -> bool {
    a.contains_addr(&b.network()) || b.contains_addr(&a.network())
}

/// Parses an address of the family, saying `what` it was for when it is not one.
pub(super) fn parse_address<N: Subnet>(what: &str, text: &str) -> Result<N::Addr> {
    text.parse().map_err(|_| {
        XnetError::invalid(format!(
            "invalid {what} {text:?}: not an {} address",
            N::FAMILY
        ))
    })
}
