//! Where the cluster's state lives in etcd. Every key is under one versioned prefix, so a
//! later layout can live beside this one during an upgrade:
//!
//! | key | value | lease |
//! |---|---|---|
//! | `/xnet/v1/settings` | [`super::records::Settings`]: VXLAN port, the cluster's IPv6 prefix | none |
//! | `/xnet/v1/hosts/<host id>` | [`super::records::HostRecord`]: name, underlay address | the host's |
//! | `/xnet/v1/networks/<network id>` | [`super::records::ClusterNetwork`] | none |
//! | `/xnet/v1/names/<network name>` | network id: one network per name | none |
//! | `/xnet/v1/vnis/<vni>` | network id: one network per VNI | none |
//! | `/xnet/v1/subnets/<subnet>` | network id: one network per subnet | none |
//! | `/xnet/v1/addresses/<network id>/<address>` | endpoint id: one endpoint per address | the claiming host's |
//! | `/xnet/v1/endpoints/<network id>/<endpoint id>` | [`super::records::EndpointRecord`]: host, addresses, MAC | its host's |
//!
//! A host's keys carry its lease: when the host stops renewing it, etcd removes them, and
//! every other host sees the deletions through its watch.

/// The prefix of everything xnet keeps in etcd (layout version 1).
pub const ROOT: &str = "/xnet/v1/";
pub const SETTINGS: &str = "/xnet/v1/settings";
pub const HOSTS: &str = "/xnet/v1/hosts/";
pub const NETWORKS: &str = "/xnet/v1/networks/";
pub const NAMES: &str = "/xnet/v1/names/";
pub const VNIS: &str = "/xnet/v1/vnis/";
pub const ADDRESSES: &str = "/xnet/v1/addresses/";
pub const SUBNETS: &str = "/xnet/v1/subnets/";
pub const ENDPOINTS: &str = "/xnet/v1/endpoints/";

pub fn host(id: &str) -> String {
    format!("{HOSTS}{id}")
}

pub fn network(id: &str) -> String {
    format!("{NETWORKS}{id}")
}

pub fn name(name: &str) -> String {
    format!("{NAMES}{name}")
}

pub fn vni(vni: u32) -> String {
    format!("{VNIS}{vni}")
}

/// The claim of a network's subnet (`10.0.1.0/24`).
pub fn subnet(subnet: impl std::fmt::Display) -> String {
    format!("{SUBNETS}{subnet}")
}

/// The prefix of the addresses claimed on network `id`.
pub fn addresses(network_id: &str) -> String {
    format!("{ADDRESSES}{network_id}/")
}

/// The claim of `address` on network `id`.
pub fn address(network_id: &str, address: impl std::fmt::Display) -> String {
    format!("{ADDRESSES}{network_id}/{address}")
}

/// The record of endpoint `endpoint_id` on network `network_id`.
pub fn endpoint(network_id: &str, endpoint_id: &str) -> String {
    format!("{ENDPOINTS}{network_id}/{endpoint_id}")
}

/// The VNI a `vnis/` key claims.
pub fn vni_of(key: &str) -> Option<u32> {
    key.strip_prefix(VNIS)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_versioned_root() {
        for key in [
            SETTINGS, HOSTS, NETWORKS, NAMES, VNIS, ADDRESSES, SUBNETS, ENDPOINTS,
        ] {
            assert!(key.starts_with(ROOT), "{key}");
        }
        assert_eq!(vni(4096), "/xnet/v1/vnis/4096");
        assert_eq!(vni_of(&vni(4096)), Some(4096));
        assert_eq!(vni_of("/xnet/v1/vnis/x"), None);
        assert_eq!(network("ab"), "/xnet/v1/networks/ab");
        let ip: std::net::Ipv4Addr = "10.0.1.2".parse().unwrap();
        assert_eq!(address("ab", ip), "/xnet/v1/addresses/ab/10.0.1.2");
        assert!(address("ab", ip).starts_with(&addresses("ab")));
        assert_eq!(endpoint("ab", "cd"), "/xnet/v1/endpoints/ab/cd");
    }
}
