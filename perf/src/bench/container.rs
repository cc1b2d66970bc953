//! What the scenarios know of a container - its namespace, address, MAC, MTU and the
//! host-side end of its veth - and of the pairs they measure between, and how the labs read
//! it from the container itself.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::anyhow;
use serde_json::Value;

use super::sys;
use crate::frame::Mac;

/// One container as the scenarios need to know it.
pub struct Container {
    /// Its network namespace (a path for `nsenter --net`).
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub mtu: u32,
    /// The host-side end of its veth, in the lab's host namespace.
    pub host_veth: String,
}

/// A host namespace with two containers on one network: A sends, B receives.
pub struct Pair {
    pub host: PathBuf,
    pub a: Container,
    pub b: Container,
}

/// Two containers on two hosts, on one overlay network that only the underlay between the
/// hosts connects: A (on the first host) sends, B (on the second) receives.
pub struct TwoHosts {
    pub a: Container,
    pub b: Container,
    /// The namespace that holds A's host-side veth: A's host, or the network's sandbox on it
    /// where a bridge holds the veth (Docker's overlay).
    pub a_veth_ns: PathBuf,
    /// The hosts' namespaces, A's and B's.
    pub hosts: [PathBuf; 2],
    /// The underlay device of each host.
    pub underlay: &'static str,
}

/// Reads what a scenario needs to know about the container whose namespace is `netns`.
pub fn probe_container(host: &Path, netns: PathBuf) -> anyhow::Result<Container> {
    let json = |cmd: &mut Command| -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&sys::output(cmd)?)?)
    };
    let link = json(sys::in_netns(&netns, "ip").args(["-j", "link", "show", "eth0"]))?;
    let addr = json(sys::in_netns(&netns, "ip").args(["-j", "-4", "addr", "show", "eth0"]))?;
    let peer = link[0]["link_index"]
        .as_u64()
        .ok_or_else(|| anyhow!("eth0 of {} is not a veth", netns.display()))?;
    let host_links = json(sys::in_netns(host, "ip").args(["-j", "link", "show"]))?;
    let host_veth = host_links
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["ifindex"].as_u64() == Some(peer))
        .and_then(|l| l["ifname"].as_str())
        .ok_or_else(|| anyhow!("no host-side veth with ifindex {peer}"))?
        .to_string();
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{what} of {} unknown", netns.display()))
    };
    Ok(Container {
        ip: text(&addr[0]["addr_info"][0]["local"], "address")?.parse()?,
        mac: text(&link[0]["address"], "MAC")?.parse()?,
        mtu: link[0]["mtu"]
            .as_u64()
            .ok_or_else(|| anyhow!("MTU of {} unknown", netns.display()))? as u32,
        host_veth,
        netns,
    })
}

/// Stands in for a container until the real one exists (so a half-built lab still drops).
pub fn placeholder() -> Container {
    Container {
        netns: PathBuf::new(),
        ip: Ipv4Addr::UNSPECIFIED,
        mac: Mac([0; 6]),
        mtu: 0,
        host_veth: String::new(),
    }
}
