//! What a lab is made of, as written to its `lab.json`: enough for another process to show
//! it, run commands in it and take it down without guessing at names.

use std::{
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::process::Proc;

/// etcd's client and peer ports (its defaults).
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

/// The record file inside a lab's directory.
const RECORD_FILE: &str = "lab.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub prefix: String,
    /// Everything of the lab's on disk: the record, each node's directory.
    pub dir: PathBuf,
    /// Where xnetd and xnet are.
    pub bin_dir: PathBuf,
    /// Appended to every xnetd's command line (`{node}`: the host's namespace name).
    pub xnetd_args: Vec<String>,
    /// The namespaces made so far, in the order they were made: only these are removed.
    pub namespaces: Vec<String>,
    /// The switch's namespace (holds the bridge `br0`).
    pub switch: String,
    pub router: Router,
    pub members: Vec<Member>,
    pub hosts: Vec<Host>,
}

/// The router between the hosts and the simulated outside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Router {
    /// Network namespace name (under /run/netns).
    pub netns: String,
    /// On the underlay: the hosts' default gateway.
    pub address: Ipv4Addr,
    pub address6: Ipv6Addr,
    /// Addresses beyond the router (on its loopback), for egress.
    pub outside: Ipv4Addr,
    pub outside6: Ipv6Addr,
}

/// One etcd member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    /// `e1`, `e2`, …: etcd's `--name` too.
    pub name: String,
    pub netns: String,
    pub address: Ipv4Addr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// The running etcd, if any.
    pub(crate) etcd: Option<Proc>,
}

/// One simulated host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// `h1`, `h2`, …: xnetd's `--cluster-host-name` too.
    pub name: String,
    pub netns: String,
    /// `eth0`'s addresses on the underlay.
    pub address: Ipv4Addr,
    pub address6: Ipv6Addr,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// xnetd's pin directory.
    pub bpffs: PathBuf,
    /// xnetd's log (stdout and stderr), one run after another.
    pub log: PathBuf,
    /// The running xnetd, if any.
    pub(crate) xnetd: Option<Proc>,
}

impl Router {
    pub fn netns_path(&self) -> PathBuf {
        netns_path(&self.netns)
    }
}

impl Member {
    pub fn netns_path(&self) -> PathBuf {
        netns_path(&self.netns)
    }

    /// `http://ADDRESS:2379`.
    pub fn client_url(&self) -> String {
        format!("http://{}:{ETCD_CLIENT_PORT}", self.address)
    }

    /// `http://ADDRESS:2380`.
    pub fn peer_url(&self) -> String {
        format!("http://{}:{ETCD_PEER_PORT}", self.address)
    }

    /// The pid of its etcd, if the lab started one and has not stopped it.
    pub fn pid(&self) -> Option<u32> {
        self.etcd.map(|p| p.pid)
    }
}

impl Host {
    pub fn netns_path(&self) -> PathBuf {
        netns_path(&self.netns)
    }

    /// `unix://SOCKET`, for `xnet --host` or `XNET_HOST`.
    pub fn xnet_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The pid of its xnetd, if the lab started one and has not stopped it.
    pub fn pid(&self) -> Option<u32> {
        self.xnetd.map(|p| p.pid)
    }
}

pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

impl Record {
    pub fn file(dir: &Path) -> PathBuf {
        dir.join(RECORD_FILE)
    }

    /// Writes the record whole or not at all (a reader never sees half of it).
    pub fn save(&self) -> Result<()> {
        let file = Self::file(&self.dir);
        let partial = file.with_extension("json.new");
        let json = serde_json::to_string_pretty(self).expect("a record serializes");
        fs::write(&partial, json + "\n")
            .and_then(|()| fs::rename(&partial, &file))
            .with_context(|| format!("cannot write {}", file.display()))
    }

    /// The record in `dir`, or None when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let file = Self::file(dir);
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a lab record", file.display()))
    }

    /// Every member's client URL.
    pub fn etcd_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// xnetd's `--cluster-store`: `etcd://ADDRESS:2379,ADDRESS:2379,…`.
    pub fn cluster_store(&self) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:{ETCD_CLIENT_PORT}", m.address))
            .collect();
        format!("etcd://{}", members.join(","))
    }
}
