//! The LAN scenarios' lab (issue #15): a LAN namespace with one veth to each parent, xnet's
//! macvlan and ipvlan networks (on the xnet lab's xnetd, one parent each) with a container on
//! each, and the kernel's macvlan driver in bridge mode on a host of its own, which is what
//! Docker's macvlan driver builds.

use std::{net::Ipv4Addr, path::Path};

use anyhow::{Context as _, anyhow};
use serde_json::Value;

use super::{
    container::{Container, Pair, probe_container},
    side::Side,
    sys::{self, Netns},
};

/// Runs the `xnet` CLI against the xnet lab's daemon.
pub type XnetCli<'a> = &'a dyn Fn(&[&str]) -> anyhow::Result<String>;

/// One LAN path: the LAN's sending device and the pair (A: the LAN host, whose `host_veth`
/// names the parent in the container's host, where its frames arrive; B: the container).
pub struct LanPath {
    pub pair: Pair,
    pub lan_dev: &'static str,
}

/// The LAN namespace, xnet's macvlan and ipvlan containers on the xnet lab's host, and the
/// kernel's macvlan container on a host of its own.
pub struct LanLab {
    pub macvlan: LanPath,
    pub ipvlan: LanPath,
    pub kernel: LanPath,
    // The kernel's container, its host and the LAN: their veths go with them.
    _netns: Vec<Netns>,
}

/// Each path's LAN: the LAN host's device, the parent's name, the subnet's first three
/// octets; the LAN host is .1, the container .3.
const MACVLAN_LAN: (&str, &str, [u8; 3]) = ("to-mv", "lan0", [192, 168, 80]);
const IPVLAN_LAN: (&str, &str, [u8; 3]) = ("to-iv", "lan1", [192, 168, 81]);
const KERNEL_LAN: (&str, &str, [u8; 3]) = ("to-k", "lan0", [192, 168, 82]);

fn address(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

impl LanLab {
    /// Builds the lab beside the xnet lab's host (`xnet_host`), whose daemon `xnet` reaches.
    pub fn up(run_id: &str, xnet_host: &Path, xnet: XnetCli) -> anyhow::Result<Self> {
        let lan = Netns::create(format!("{run_id}-lan"))?;
        let kernel_host = Netns::create(format!("{run_id}-lank"))?;
        let kernel_b = Netns::create(format!("{run_id}-lank-b"))?;
        let xnet_host_name = netns_name(xnet_host)?;
        for (host, (lan_dev, parent, net)) in [
            (xnet_host_name.as_str(), MACVLAN_LAN),
            (xnet_host_name.as_str(), IPVLAN_LAN),
            (kernel_host.name.as_str(), KERNEL_LAN),
        ] {
            sys::sh(&[
                "ip", "-n", host, "link", "add", parent, "type", "veth", "peer", "name", lan_dev,
                "netns", &lan.name,
            ])?;
            sys::sh(&["ip", "-n", host, "link", "set", parent, "up"])?;
            let lan_addr = format!("{}/24", address(net, 1));
            sys::sh(&[
                "ip", "-n", &lan.name, "addr", "add", &lan_addr, "dev", lan_dev,
            ])?;
            sys::sh(&["ip", "-n", &lan.name, "link", "set", lan_dev, "up"])?;
        }
        // xnet: one network per parent, the container at .3.
        for (driver, (_, parent, net), name) in [
            ("macvlan", MACVLAN_LAN, "lan-mv"),
            ("ipvlan", IPVLAN_LAN, "lan-iv"),
        ] {
            let subnet = format!("{}/24", address(net, 0));
            let gateway = address(net, 1).to_string();
            xnet(&[
                "network",
                "create",
                "-d",
                driver,
                "--subnet",
                &subnet,
                "--gateway",
                &gateway,
                "-o",
                &format!("parent={parent}"),
                name,
            ])?;
            xnet(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                name,
                "--ip",
                &address(net, 3).to_string(),
                "--",
                "sleep",
                "infinity",
            ])?;
        }
        // The kernel's macvlan in bridge mode, as Docker's macvlan driver makes it: a macvlan
        // device on the parent, moved into the container and named eth0, Docker's MAC.
        let (_, parent, net) = KERNEL_LAN;
        let k = kernel_host.name.as_str();
        let ip = address(net, 3);
        let [a, b, c, d] = ip.octets();
        let mac = format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        for words in [
            &[
                "ip", "-n", k, "link", "add", "mv0", "link", parent, "type", "macvlan", "mode",
                "bridge",
            ][..],
            &["ip", "-n", k, "link", "set", "mv0", "netns", &kernel_b.name],
            &[
                "ip",
                "-n",
                &kernel_b.name,
                "link",
                "set",
                "mv0",
                "name",
                "eth0",
            ],
            &[
                "ip",
                "-n",
                &kernel_b.name,
                "link",
                "set",
                "eth0",
                "address",
                &mac,
            ],
            &[
                "ip",
                "-n",
                &kernel_b.name,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ],
            &["ip", "-n", &kernel_b.name, "link", "set", "eth0", "up"],
        ] {
            sys::sh(words)?;
        }
        let macvlan = path(
            &lan.path(),
            xnet_host,
            MACVLAN_LAN,
            xnet_container(xnet_host, xnet, "lan-mv")?,
        )?;
        let ipvlan = path(
            &lan.path(),
            xnet_host,
            IPVLAN_LAN,
            xnet_container(xnet_host, xnet, "lan-iv")?,
        )?;
        let kernel_container = Container {
            netns: kernel_b.path(),
            ip,
            mac: mac.parse()?,
            mtu: link(&kernel_b.path(), "eth0")?.1,
            host_veth: parent.into(),
        };
        let kernel = path(
            &lan.path(),
            &kernel_host.path(),
            KERNEL_LAN,
            kernel_container,
        )?;
        Ok(Self {
            macvlan,
            ipvlan,
            kernel,
            _netns: vec![kernel_b, kernel_host, lan],
        })
    }

    /// The path `side` is measured on.
    pub fn path(&self, side: Side) -> &LanPath {
        match side {
            Side::XnetMacvlan => &self.macvlan,
            Side::XnetIpvlan => &self.ipvlan,
            _ => &self.kernel,
        }
    }
}

/// The path from the LAN host on `lan_dev` to container `b` behind `parent` of `host`.
fn path(
    lan: &Path,
    host: &Path,
    (lan_dev, parent, net): (&'static str, &str, [u8; 3]),
    b: Container,
) -> anyhow::Result<LanPath> {
    let (mac, mtu) = link(lan, lan_dev)?;
    let a = Container {
        netns: lan.to_path_buf(),
        ip: address(net, 1),
        mac,
        mtu,
        host_veth: parent.into(),
    };
    Ok(LanPath {
        pair: Pair {
            host: host.to_path_buf(),
            a,
            b,
        },
        lan_dev,
    })
}

fn xnet_container(host: &Path, xnet: XnetCli, name: &str) -> anyhow::Result<Container> {
    let inspect: Value = serde_json::from_str(&xnet(&["inspect", name])?)?;
    let sandbox = inspect[0]["NetworkSettings"]["SandboxKey"]
        .as_str()
        .ok_or_else(|| anyhow!("no SandboxKey for {name}"))?;
    probe_container(host, sandbox.into())
}

/// A device's MAC and MTU.
fn link(netns: &Path, dev: &str) -> anyhow::Result<(crate::frame::Mac, u32)> {
    let out = sys::output(sys::in_netns(netns, "ip").args(["-j", "link", "show", dev]))?;
    let link: Value = serde_json::from_str(&out)?;
    let mac = link[0]["address"].as_str().context("no MAC")?.parse()?;
    let mtu = link[0]["mtu"].as_u64().context("no MTU")? as u32;
    Ok((mac, mtu))
}

/// `/run/netns/NAME`'s NAME.
fn netns_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{} is not a named namespace", path.display()))
}
