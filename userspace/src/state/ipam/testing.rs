//! Subnets, addresses and configurations from text, for the tests of the rules over
//! [`Subnet`].

use super::subnet::{IpConfig, Subnet, Taken};

pub(super) fn net<N: Subnet>(s: &str) -> N {
    s.parse().ok().unwrap()
}

pub(super) fn ip<N: Subnet>(s: &str) -> N::Addr {
    s.parse().ok().unwrap()
}

pub(super) fn taken<N: Subnet>(subnets: &[&str]) -> Vec<Taken<N>> {
    subnets
        .iter()
        .map(|s| Taken {
            subnet: net(s),
            owner: format!("network {s}"),
        })
        .collect()
}

pub(super) fn config<N: Subnet>(subnet: &str, gateway: &str, range: Option<&str>) -> IpConfig<N> {
    IpConfig {
        subnet: net(subnet),
        gateway: ip::<N>(gateway),
        ip_range: range.map(net),
    }
}
