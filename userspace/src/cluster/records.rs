//! What the cluster keeps in etcd, as JSON: the settings every host shares, the hosts, the
//! networks of global scope (overlay), which every host mirrors into its own state, and their
//! endpoints, which every other host turns into remote entries of its datapath.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::state::{IpConfig, Mac, Network};

/// Docker's default VXLAN port (IANA's).
pub const DEFAULT_VXLAN_PORT: u16 = 4789;

/// Settings every host of the cluster shares, written once by the first host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The UDP port of the overlay's VXLAN.
    pub vxlan_port: u16,
    /// The unique local /48 that IPv6 overlay subnets are taken from when none is given.
    pub ula_prefix: Ipv6Net,
}

/// A host of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub id: String,
    pub name: String,
    /// Its underlay address: where VXLAN for its endpoints goes.
    pub address: Ipv4Addr,
    /// Its static public key for encrypted overlays (`state::host_key`), standard base64;
    /// empty in records of hosts from before keys.
    #[serde(default)]
    pub public_key: String,
}

/// An endpoint on a network of global scope, kept under its host's lease: when the host
/// dies, the record goes, and every other host forgets the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: String,
    /// The network's id.
    pub network: String,
    /// The id of the host it runs on ([`HostRecord::id`]).
    pub host: String,
    /// Its container's name (Docker's `Containers[].Name` on other hosts).
    pub container: String,
    pub ipv4: Ipv4Addr,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    pub mac: Mac,
}

/// A network of global scope as every host sees it: the parts of [`Network`] that are the
/// same everywhere (each host gives it a datapath id of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNetwork {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub vni: u32,
    pub ipv4: IpConfig<Ipv4Net>,
    #[serde(default)]
    pub ipv6: Option<IpConfig<Ipv6Net>>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    pub created: String,
}

impl ClusterNetwork {
    /// The cluster's view of a network this host made.
    pub fn of(net: &Network) -> Option<Self> {
        Some(Self {
            id: net.id.clone(),
            name: net.name.clone(),
            driver: net.driver.clone(),
            vni: net.vni?,
            ipv4: net.ipv4,
            ipv6: net.ipv6,
            internal: net.internal,
            attachable: net.attachable,
            options: net.options.clone(),
            mtu: net.mtu,
            created: net.created.clone(),
        })
    }

    /// This host's record of the network, before it has a datapath id.
    pub fn to_local(&self) -> Network {
        Network {
            id: self.id.clone(),
            name: self.name.clone(),
            driver: self.driver.clone(),
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            datapath_id: 0,
            created: self.created.clone(),
            internal: self.internal,
            options: self.options.clone(),
            icc: true,
            mtu: self.mtu,
            docker: None,
            vni: Some(self.vni),
            attachable: self.attachable,
            aux_addresses: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_of_global_scope_round_trips_through_the_store() {
        let global = ClusterNetwork {
            id: "ab".repeat(32),
            name: "ov".into(),
            driver: "overlay".into(),
            vni: 4097,
            ipv4: IpConfig {
                subnet: "10.0.1.0/24".parse().unwrap(),
                gateway: "10.0.1.1".parse().unwrap(),
                ip_range: None,
            },
            ipv6: None,
            internal: false,
            attachable: true,
            options: BTreeMap::from([(
                "com.docker.network.driver.overlay.vxlanid_list".into(),
                "4097".into(),
            )]),
            mtu: Some(1450),
            created: "2026-12-02T00:00:00Z".into(),
        };
        let json = serde_json::to_string(&global).unwrap();
        assert_eq!(
            serde_json::from_str::<ClusterNetwork>(&json).unwrap(),
            global
        );
        let local = global.to_local();
        assert_eq!(
            (local.vni, local.attachable, local.datapath_id),
            (Some(4097), true, 0)
        );
        assert_eq!(ClusterNetwork::of(&local), Some(global));
        let bridge = Network { vni: None, ..local };
        assert_eq!(ClusterNetwork::of(&bridge), None);
    }
}
