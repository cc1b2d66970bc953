//! Where a network's subnet comes from when none is asked for: Docker's default IPv4 pools,
//! xnet's own beside a Docker engine, the overlay pool, and the /64s of a unique local /48; the
//! first subnet of a pool that overlaps nothing taken is the network's.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};

use super::subnet::{Subnet, Taken, overlaps};
use crate::error::{Result, XnetError};

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

/// The pool of networks of global scope (overlay), Docker's swarm default: 10.0.0.0/8 cut
/// into /24s (10.0.0.0/24, 10.0.1.0/24, ...), skipping what this host takes.
pub fn overlay_pool() -> impl Iterator<Item = Ipv4Net> {
    Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8)
        .expect("a valid prefix")
        .subnets(24)
        .expect("a /8 holds /24s")
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

/// The first subnet of `pool` that overlaps nothing taken.
pub(super) fn pick_subnet<N: Subnet>(
    pool: impl IntoIterator<Item = N>,
    taken: &[Taken<N>],
) -> Result<N> {
    pool.into_iter()
        .find(|candidate| !taken.iter().any(|t| overlaps(candidate, &t.subnet)))
        .ok_or_else(|| {
            XnetError::conflict(format!(
                "could not find an available, non-overlapping {} address pool among the defaults to assign to the network",
                N::FAMILY
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ipam::testing::{net, taken};

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
    fn the_pool_beside_docker_never_meets_dockers_pools() {
        let beside = pool_beside_docker();
        assert_eq!(beside.first(), Some(&net::<Ipv4Net>("10.192.0.0/16")));
        assert_eq!(beside.last(), Some(&net::<Ipv4Net>("10.223.0.0/16")));
        for ours in &beside {
            assert!(default_pool().iter().all(|d| !overlaps(ours, d)), "{ours}");
        }
    }
}
