//! The setups every scenario runs on, built side by side in namespaces of their own:
//!
//! - [`XnetLab`]: a simulated host running the real xnetd (started as the integration tests
//!   start it, with `--uplink`) with two containers created by the real `xnet` CLI on a
//!   user-defined network;
//! - [`BridgeLab`]: the same two containers behind a Linux bridge with br_netfilter on and the
//!   iptables rules Docker installs for a user-defined bridge network. Its host-side veths also
//!   carry the bare hops (ceiling and reference) when those are measured;
//! - [`DockerLab`]: real Docker, a private engine of the machine's Docker installation with
//!   Docker's default networking (its bridge driver, its iptables rules, docker-proxy), with
//!   the two containers on a user-defined network and B's ports published with `-p`; only
//!   where a Docker engine is installed.
//!
//! All use the same subnet, addresses and MACs, all hosts have an [`Uplink`] to an outside
//! namespace of their own, and all are torn down on drop.

use std::{
    io::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

use xnet_dockerlab::Engine;

use super::{
    ports::{Ports, Proto},
    scenarios::Side,
    sys::{self, Netns},
    uplink::{UPLINK, Uplink},
};
use crate::frame::Mac;

/// The network both labs give their containers (Docker's first user-defined subnet).
const SUBNET: &str = "172.18.0.0/16";
const GATEWAY: &str = "172.18.0.1";
const PREFIX: u8 = 16;
/// Name of the bridge (Docker names them br-<network id>).
pub const BRIDGE: &str = "br-bench";
/// Containers A (sender, client) and B (receiver, server) on the bridge: Docker-style MACs.
const BRIDGE_CONTAINERS: [(&str, &str, &str); 2] = [
    ("a", "172.18.0.2", "02:42:ac:12:00:02"),
    ("b", "172.18.0.3", "02:42:ac:12:00:03"),
];

/// One container as the scenarios need to know it.
pub struct Container {
    /// Its network namespace (a path for `nsenter --net`).
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    /// The host-side end of its veth, in the lab's host namespace.
    pub host_veth: String,
}

/// A host namespace with two containers on one network: A sends, B receives.
pub struct Pair {
    pub host: PathBuf,
    pub a: Container,
    pub b: Container,
}

/// Reads what a scenario needs to know about the container whose namespace is `netns`.
fn probe_container(host: &Path, netns: PathBuf) -> anyhow::Result<Container> {
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
        host_veth,
        netns,
    })
}

/// xnetd in a host namespace of its own, with containers `a` and `b` on network `bench`.
pub struct XnetLab {
    pub pair: Pair,
    pub uplink: Uplink,
    bin_dir: PathBuf,
    daemon: Child,
    dir: PathBuf,
    bpffs: PathBuf,
    // Last: dropped after `drop` has stopped the daemon and removed the containers.
    _host: Netns,
}

impl XnetLab {
    pub fn up(run_id: &str, bin_dir: &Path) -> anyhow::Result<Self> {
        let host = Netns::create(format!("{run_id}-xnet"))?;
        let uplink = Uplink::up(&host, format!("{run_id}-xnet-ext"))?;
        let dir = std::env::temp_dir().join(format!("xnet-bench-{run_id}"));
        let bpffs = PathBuf::from(format!("/sys/fs/bpf/xnet-bench-{run_id}"));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("xnetd.log"))?;
        let daemon = sys::in_netns(&host.path(), bin_dir.join("xnetd"))
            .arg("--socket")
            .arg(dir.join("xnet.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--bpffs")
            .arg(&bpffs)
            .args(["--uplink", UPLINK])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start xnetd")?;
        let mut lab = Self {
            pair: Pair {
                host: host.path(),
                a: placeholder(),
                b: placeholder(),
            },
            uplink,
            bin_dir: bin_dir.to_path_buf(),
            daemon,
            dir,
            bpffs,
            _host: host,
        };
        lab.wait_for_daemon()?;
        lab.xnet(&[
            "network",
            "create",
            "--subnet",
            SUBNET,
            "--gateway",
            GATEWAY,
            "bench",
        ])?;
        for name in ["a", "b"] {
            lab.xnet(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "bench",
                "--",
                "sleep",
                "infinity",
            ])?;
        }
        lab.pair.a = lab.container("a")?;
        lab.pair.b = lab.container("b")?;
        Ok(lab)
    }

    fn wait_for_daemon(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            if self.daemon.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("xnetd did not come up:\n{}", self.daemon_log());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("xnet.sock")
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("xnetd.log")).unwrap_or_default()
    }

    /// Runs the `xnet` CLI against this lab's daemon and returns what it printed.
    pub fn xnet(&self, args: &[&str]) -> anyhow::Result<String> {
        sys::output(
            Command::new(self.bin_dir.join("xnet"))
                .arg("--host")
                .arg(format!("unix://{}", self.socket().display()))
                .args(args),
        )
        .with_context(|| format!("xnetd log:\n{}", self.daemon_log()))
    }

    fn container(&self, name: &str) -> anyhow::Result<Container> {
        let inspect: Value = serde_json::from_str(&self.xnet(&["inspect", name])?)?;
        let sandbox = inspect[0]["NetworkSettings"]["SandboxKey"]
            .as_str()
            .ok_or_else(|| anyhow!("no SandboxKey for {name}"))?;
        probe_container(&self.pair.host, sandbox.into())
    }
}

impl Drop for XnetLab {
    fn drop(&mut self) {
        let _ = self.xnet(&["rm", "-f", "a", "b"]);
        // SAFETY: plain syscall on our own child, which has not been waited for yet.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        // Whatever `rm` could not remove (a failed create, say): kill and unpin by hand.
        if let Ok(entries) = std::fs::read_dir(self.dir.join("netns")) {
            for sandbox in entries.flatten().map(|e| e.path()) {
                sys::kill_processes_in(&sandbox);
                // SAFETY: a NUL-terminated path; MNT_DETACH of a mount point we own.
                if let Ok(path) = std::ffi::CString::new(sandbox.as_os_str().as_encoded_bytes()) {
                    unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.bpffs);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stands in for a container until the real one exists (so a half-built lab still drops).
fn placeholder() -> Container {
    Container {
        netns: PathBuf::new(),
        ip: Ipv4Addr::UNSPECIFIED,
        mac: Mac([0; 6]),
        host_veth: String::new(),
    }
}

/// Docker's datapath for a user-defined bridge network, rebuilt in namespaces of our own.
pub struct BridgeLab {
    pub pair: Pair,
    pub uplink: Uplink,
    // Containers first, so their veths go before the host namespace does.
    _netns: Vec<Netns>,
}

impl BridgeLab {
    pub fn up(run_id: &str) -> anyhow::Result<Self> {
        let host = Netns::create(format!("{run_id}-br"))?;
        let uplink = Uplink::up(&host, format!("{run_id}-br-ext"))?;
        let h = host.name.clone();
        let ip_h = |args: &[&str]| {
            let mut words = vec!["ip", "-n", &h];
            words.extend_from_slice(args);
            sys::sh(&words)
        };
        ip_h(&["link", "add", BRIDGE, "type", "bridge"])?;
        ip_h(&["addr", "add", &format!("{GATEWAY}/{PREFIX}"), "dev", BRIDGE])?;
        ip_h(&["link", "set", BRIDGE, "up"])?;
        let mut netns = Vec::new();
        for (name, ip, mac) in BRIDGE_CONTAINERS {
            let ns = Netns::create(format!("{run_id}-br-{name}"))?;
            let veth = format!("veth-{name}");
            ip_h(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
            ])?;
            ip_h(&["link", "set", &veth, "master", BRIDGE, "up"])?;
            let ip_c = |args: &[&str]| {
                let mut words = vec!["ip", "-n", &ns.name];
                words.extend_from_slice(args);
                sys::sh(&words)
            };
            ip_c(&["link", "set", "eth0", "address", mac])?;
            ip_c(&["addr", "add", &format!("{ip}/{PREFIX}"), "dev", "eth0"])?;
            ip_c(&["link", "set", "eth0", "up"])?;
            ip_c(&["route", "add", "default", "via", GATEWAY])?;
            // What the bridge would learn from the container's first frame; static, so a
            // receiver that only receives never ages out and gets flooded to.
            sys::sh(&[
                "bridge", "-n", &h, "fdb", "replace", mac, "dev", &veth, "master", "static",
            ])?;
            netns.push(ns);
        }
        docker_firewall(&host.path())?;
        let host_path = host.path();
        let a = probe_container(&host_path, netns[0].path())?;
        let b = probe_container(&host_path, netns[1].path())?;
        netns.push(host);
        Ok(Self {
            pair: Pair {
                host: host_path,
                a,
                b,
            },
            uplink,
            _netns: netns,
        })
    }
}

/// What dockerd sets up on a host with its default `docker0` network and one user-defined
/// bridge network (moby, libnetwork/drivers/bridge; rule shapes from its iptables golden
/// files, pre-ipset layout of Docker 27/28): forwarding on, bridged traffic through iptables
/// (br_netfilter), FORWARD policy DROP, the DOCKER-USER / DOCKER-ISOLATION chains, conntrack
/// accept, per-bridge accept rules and masquerading of the subnet.
fn docker_firewall(host: &Path) -> anyhow::Result<()> {
    for sysctl in [
        "net.ipv4.ip_forward=1",
        "net.bridge.bridge-nf-call-iptables=1",
    ] {
        sys::output(sys::in_netns(host, "sysctl").args(["-q", "-w", sysctl]))?;
    }
    restore_docker_rules(host)
}

/// Loads Docker's rules (see [`docker_firewall`]) in place of whatever the filter and nat
/// tables of `host` hold: also how rules added for published ports are removed.
pub fn restore_docker_rules(host: &Path) -> anyhow::Result<()> {
    let rules = format!(
        "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o {BRIDGE} -j DOCKER
-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT
-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i {BRIDGE} ! -o {BRIDGE} -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o {BRIDGE} -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s {SUBNET} ! -o {BRIDGE} -j MASQUERADE
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i {BRIDGE} -j RETURN
-A DOCKER -i docker0 -j RETURN
COMMIT
"
    );
    iptables_restore(host, &rules, false).map(drop)
}

/// Runs `iptables-restore` (with `--noflush` if `noflush`: adds to the tables instead of
/// replacing them) in `host` on `rules`, and returns how long that program took.
pub fn iptables_restore(host: &Path, rules: &str, noflush: bool) -> anyhow::Result<Duration> {
    sys::on_netns_thread(host, || {
        let start = Instant::now();
        let mut child = Command::new("iptables-restore")
            .args(noflush.then_some("--noflush"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start iptables-restore")?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(rules.as_bytes())?;
        let out = child.wait_with_output()?;
        let took = start.elapsed();
        anyhow::ensure!(
            out.status.success(),
            "iptables-restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(took)
    })
}

/// Real Docker: a private engine (xnet-dockerlab) with Docker's own networking inside a host
/// namespace of its own, containers `a` and `b` of a busybox image on a user-defined network,
/// B's ports published with `-p` when it is created (Docker cannot add them later).
pub struct DockerLab {
    pub pair: Pair,
    pub uplink: Uplink,
    /// What B publishes.
    published: Vec<Ports>,
    // Before the namespace: its containers leave and its dockerd stops while it exists.
    engine: Engine,
    _host: Netns,
}

impl DockerLab {
    pub fn up(run_id: &str, published: Vec<Ports>) -> anyhow::Result<Self> {
        let host = Netns::create(format!("{run_id}-dk"))?;
        let uplink = Uplink::up(&host, format!("{run_id}-dk-ext"))?;
        let options = xnet_dockerlab::Options {
            docker_networking: true,
            live_restore: false,
        };
        let engine = Engine::start(&host.path(), &format!("{run_id}-dk"), options)?;
        let image = engine.busybox_image()?;
        engine.run(&[
            "network",
            "create",
            "--subnet",
            SUBNET,
            "--gateway",
            GATEWAY,
            "bench",
        ])?;
        // Docker gives each the MAC the other labs use (02:42 and the address): the docker CLI
        // of this machine cannot ask the 20.10 engine for one.
        for (name, ip, _mac) in BRIDGE_CONTAINERS {
            let mut args = vec![
                "run".to_string(),
                "-d".into(),
                "--name".into(),
                docker_name(name),
                "--network".into(),
                "bench".into(),
                "--ip".into(),
                ip.into(),
            ];
            if name == "b" {
                args.extend(published.iter().flat_map(|p| ["-p".into(), p.spec()]));
            }
            args.extend([image.into(), "sleep".into(), "infinity".into()]);
            engine.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        let host_path = host.path();
        let a = probe_container(&host_path, engine.netns_of(&docker_name("a"))?)?;
        let b = probe_container(&host_path, engine.netns_of(&docker_name("b"))?)?;
        Ok(Self {
            pair: Pair {
                host: host_path,
                a,
                b,
            },
            uplink,
            published,
            engine,
            _host: host,
        })
    }

    /// The host port B's `container_port` is published on, if it is.
    pub fn host_port(&self, proto: Proto, container_port: u16) -> Option<u16> {
        self.published
            .iter()
            .find(|p| p.proto == proto && p.count == 1 && p.container == container_port)
            .map(|p| p.host)
    }

    /// Whether B was created with exactly these ports published.
    pub fn publishes(&self, ports: Ports) -> bool {
        self.published.contains(&ports)
    }

    /// The engine's version, for the report.
    pub fn version(&self) -> String {
        self.engine
            .run(&["version", "--format", "{{.Server.Version}}"])
            .unwrap_or_default()
    }
}

/// Container `name`'s name in real Docker, which wants two characters at least.
fn docker_name(name: &str) -> String {
    format!("bench-{name}")
}

/// Every lab. Built once per run; every scenario measures on them.
pub struct Lab {
    pub xnet: XnetLab,
    pub bridge: BridgeLab,
    /// None where no Docker engine is installed: real Docker's side is then skipped.
    pub docker: Option<DockerLab>,
}

impl Lab {
    /// `docker_ports`: what real Docker's container B publishes.
    pub fn up(run_id: &str, xnet_bin_dir: &Path, docker_ports: Vec<Ports>) -> anyhow::Result<Self> {
        let bridge = BridgeLab::up(run_id).context("setting up the bridge baseline")?;
        let xnet = XnetLab::up(run_id, xnet_bin_dir).context("setting up xnet")?;
        let docker = match Engine::unavailable() {
            Some(why) => {
                eprintln!("skipping real Docker's side: {why}");
                None
            }
            None => Some(DockerLab::up(run_id, docker_ports).context("setting up real Docker")?),
        };
        Ok(Self {
            xnet,
            bridge,
            docker,
        })
    }

    /// Whether this run can measure `side` (real Docker's needs an engine).
    pub fn measures(&self, side: Side) -> bool {
        side != Side::DockerReal || self.docker.is_some()
    }

    /// Real Docker's lab; only sides [`Lab::measures`] are measured.
    pub fn docker(&self) -> &DockerLab {
        self.docker
            .as_ref()
            .expect("real Docker's side is measured only where its lab exists")
    }
}
