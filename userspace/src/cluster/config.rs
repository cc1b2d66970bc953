//! What `xnetd --cluster-store … --cluster-advertise …` asks for.

use std::net::Ipv4Addr;

/// How this host takes part in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The etcd members' client URLs (`http://HOST:PORT`).
    pub endpoints: Vec<String>,
    /// This host's underlay address (its VTEP), or the interface that has it.
    pub advertise: Advertise,
    /// This host's name in the cluster (Docker's `Peers[].Name`).
    pub host_name: String,
    /// The VXLAN UDP port, if given: the cluster's first host sets it for every host.
    pub vxlan_port: Option<u16>,
}

/// `--cluster-advertise IP|IFACE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertise {
    Address(Ipv4Addr),
    Interface(String),
}

impl Advertise {
    pub fn parse(text: &str) -> Self {
        match text.parse() {
            Ok(ip) => Self::Address(ip),
            Err(_) => Self::Interface(text.to_string()),
        }
    }
}

/// `etcd://HOST:PORT[,HOST:PORT…]` as the client URLs of etcd's members.
pub fn parse_store_urls(text: &str) -> Result<Vec<String>, String> {
    let members = text.strip_prefix("etcd://").ok_or_else(|| {
        format!("--cluster-store {text:?}: expected etcd://HOST:PORT[,HOST:PORT…]")
    })?;
    members
        .split(',')
        .map(|member| {
            let valid = member
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if valid {
                Ok(format!("http://{member}"))
            } else {
                Err(format!(
                    "--cluster-store {text:?}: {member:?} is not HOST:PORT"
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_and_advertise_parse() {
        assert_eq!(
            parse_store_urls("etcd://10.0.0.2:2379,etcd2:2379").unwrap(),
            ["http://10.0.0.2:2379", "http://etcd2:2379"]
        );
        for bad in [
            "10.0.0.2:2379",
            "etcd://",
            "etcd://h",
            "etcd://h:x",
            "etcd://:2379",
        ] {
            assert!(parse_store_urls(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Advertise::parse("10.0.0.3"),
            Advertise::Address(Ipv4Addr::new(10, 0, 0, 3))
        );
        assert_eq!(
            Advertise::parse("eth0"),
            Advertise::Interface("eth0".into())
        );
    }
}
