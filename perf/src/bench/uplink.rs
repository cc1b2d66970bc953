//! A lab host's uplink: a veth from the host namespace to a namespace of its own that plays
//! another host on the same wire ("the outside"), from where published ports are reached.
//! Both labs get one, with the same addresses, as the integration tests' simulated outside.

use std::{net::Ipv4Addr, path::PathBuf};

use anyhow::anyhow;
use serde_json::Value;

use super::sys::{self, Netns};
use crate::frame::Mac;

/// The uplink veth in the host namespace (what `xnetd --uplink` is given).
pub const UPLINK: &str = "uplink0";
/// Its peer, in the outside namespace.
pub const OUTSIDE_DEV: &str = "ext0";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const PREFIX: u8 = 24;

pub struct Uplink {
    /// The host's address and MAC on the uplink: where outside traffic to published ports
    /// goes.
    pub host_ip: Ipv4Addr,
    pub host_mac: Mac,
    /// The outside host's namespace (a path for `nsenter --net`), address and MAC.
    pub outside: PathBuf,
    pub outside_ip: Ipv4Addr,
    pub outside_mac: Mac,
    // Deleting the outside namespace deletes the veth pair with it.
    _outside: Netns,
}

impl Uplink {
    /// Links the host namespace `host` to a new outside namespace `outside`. The outside's
    /// veth has tx checksum offload off, so its frames carry real checksums as on a wire.
    pub fn up(host: &Netns, outside: String) -> anyhow::Result<Self> {
        let outside = Netns::create(outside)?;
        let (h, o) = (host.name.as_str(), outside.name.as_str());
        let host_addr = format!("{HOST_IP}/{PREFIX}");
        let outside_addr = format!("{OUTSIDE_IP}/{PREFIX}");
        let outside_ip = OUTSIDE_IP.to_string();
        for words in [
            &[
                "ip",
                "-n",
                h,
                "link",
                "add",
                UPLINK,
                "type",
                "veth",
                "peer",
                "name",
                OUTSIDE_DEV,
                "netns",
                o,
            ][..],
            &["ip", "-n", h, "addr", "add", &host_addr, "dev", UPLINK],
            &["ip", "-n", h, "link", "set", UPLINK, "up"],
            &["ip", "-n", h, "route", "add", "default", "via", &outside_ip],
            &[
                "ip",
                "-n",
                o,
                "addr",
                "add",
                &outside_addr,
                "dev",
                OUTSIDE_DEV,
            ],
            &["ip", "-n", o, "link", "set", OUTSIDE_DEV, "up"],
        ] {
            sys::sh(words)?;
        }
        sys::output(sys::in_netns(&outside.path(), "ethtool").args([
            "-K",
            OUTSIDE_DEV,
            "tx",
            "off",
        ]))?;
        Ok(Self {
            host_ip: HOST_IP,
            host_mac: mac(h, UPLINK)?,
            outside: outside.path(),
            outside_ip: OUTSIDE_IP,
            outside_mac: mac(o, OUTSIDE_DEV)?,
            _outside: outside,
        })
    }
}

/// The MAC of device `dev` in namespace `netns`.
fn mac(netns: &str, dev: &str) -> anyhow::Result<Mac> {
    let link: Value =
        serde_json::from_str(&sys::sh(&["ip", "-j", "-n", netns, "link", "show", dev])?)?;
    link[0]["address"]
        .as_str()
        .ok_or_else(|| anyhow!("{dev} in {netns} has no MAC"))?
        .parse()
}
