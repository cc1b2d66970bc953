//! The setups every scenario runs on, built side by side in namespaces of their own:
//!
//! - [`XnetLab`]: a simulated host running the real xnetd (started as the integration tests
//!   start it, with `--uplink`) with two containers created by the real `xnet` CLI on a
//!   user-defined network;
//! - [`BridgeLab`]: the same two containers behind a Linux bridge with br_netfilter on and the
//!   iptables rules Docker installs for a user-defined bridge network. Its host-side veths also
//!   carry the bare hops (ceiling and reference) when those are measured;
//! - [`DockerLab`]: real Docker, where the machine has an engine: a private dockerd of the
//!   machine's installation (xnet-dockerlab) with Docker's default networking, its two
//!   containers on a user-defined network of its bridge driver, B's ports published with `-p`.
//!
//! All use the same subnet, addresses, MACs and MTU, all hosts have an [`Uplink`] to an
//! outside namespace of their own, and all are torn down on drop. The VXLAN mechanism
//! scenarios have a lab of their own, [`OverlayLab`] (two hosts per mechanism), and so have
//! the overlay scenarios' three sides (two hosts each): [`XnetCluster`], Docker's overlay
//! rebuilt ([`docker_overlay_on_switch`]) and [`SwarmLab`]; `overlay-scale` has a simulated
//! cluster, [`ClusterLab`]. A run builds only the labs its scenarios' sides need.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail, ensure};
use serde_json::Value;
use xnet_dockerlab::Engine;

use super::{
    cluster::{SwarmLab, XnetCluster},
    container::{Container, Pair, TwoHosts, placeholder, probe_container},
    lan_lab::LanLab,
    overlay::{OverlayLab, OverlayPair, docker_overlay_on_switch},
    side::Side,
    synthetic_cluster::{ClusterLab, ClusterSize},
    sys::{self, Netns},
    uplink::{UPLINK, Uplink},
};

/// The network every lab gives its containers (Docker's first user-defined subnet).
const SUBNET: &str = "172.18.0.0/16";
const GATEWAY: &str = "172.18.0.1";
/// The containers' network in the xnet and Docker labs, made with the same arguments by both
/// CLIs (xnet's takes Docker's syntax).
const NETWORK: &str = "bench";
const CREATE_NETWORK: [&str; 7] = [
    "network",
    "create",
    "--subnet",
    SUBNET,
    "--gateway",
    GATEWAY,
    NETWORK,
];
const PREFIX: u8 = 16;
/// Name of the bridge (Docker names them br-<network id>).
pub const BRIDGE: &str = "br-bench";
/// Containers A (sender, client) and B (receiver, server) of the bridge and Docker labs (xnet
/// gives its own the same): Docker's MACs, 02:42 + the IPv4 address.
const CONTAINERS: [(&str, &str, &str); 2] = [
    ("a", "172.18.0.2", "02:42:ac:12:00:02"),
    ("b", "172.18.0.3", "02:42:ac:12:00:03"),
];

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
        lab.xnet(&CREATE_NETWORK)?;
        for name in ["a", "b"] {
            lab.xnet(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                NETWORK,
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

    /// The daemon's API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("xnet.sock")
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("xnetd.log")).unwrap_or_default()
    }

    /// Runs the `xnet` CLI against this lab's daemon and returns what it printed.
    pub fn xnet(&self, args: &[&str]) -> anyhow::Result<String> {
        sys::output(&mut self.xnet_command(args))
            .with_context(|| format!("xnetd log:\n{}", self.daemon_log()))
    }

    /// The `xnet` CLI against this lab's daemon, to run or spawn.
    pub fn xnet_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin_dir.join("xnet"));
        command
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args);
        command
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
        for (name, ip, mac) in CONTAINERS {
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

/// Real Docker: a private dockerd of the machine's installation (xnet-dockerlab) in a host
/// namespace of its own, with Docker's default networking there (bridge driver, iptables
/// rules, masquerade, docker-proxy), and containers `bench-a` and `bench-b` of a busybox image
/// on a user-defined network. Docker publishes ports only when it creates a container, so B
/// publishes, for the whole run, every port a scenario reaches it on.
pub struct DockerLab {
    pub pair: Pair,
    pub uplink: Uplink,
    /// What B publishes: its `docker run -p` specs.
    published: Vec<String>,
    image: &'static str,
    // Before the host namespace: the engine stops its containers and itself while the
    // namespace still exists, and the namespace's drop kills only what that left behind.
    engine: Engine,
    _host: Netns,
}

/// `docker run -d --name NAME --network bench EXTRA -p SPEC... IMAGE sleep infinity`.
fn docker_run(
    engine: &Engine,
    image: &str,
    name: &str,
    extra: &[&str],
    specs: &[String],
) -> anyhow::Result<()> {
    let mut args = vec!["run", "-d", "--name", name, "--network", NETWORK];
    args.extend_from_slice(extra);
    args.extend(specs.iter().flat_map(|spec| ["-p", spec.as_str()]));
    args.extend([image, "sleep", "infinity"]);
    engine.run(&args).map(drop)
}

/// Docker's names for A and B (it wants at least two characters).
const DOCKER_CONTAINERS: [&str; 2] = ["bench-a", "bench-b"];

impl DockerLab {
    /// `published`: the ports B publishes, as `-p` specs.
    pub fn up(run_id: &str, published: &[String]) -> anyhow::Result<Self> {
        let host = Netns::create(format!("{run_id}-docker"))?;
        let uplink = Uplink::up(&host, format!("{run_id}-docker-ext"))?;
        let options = xnet_dockerlab::Options {
            docker_networking: true,
            live_restore: false,
        };
        let engine = Engine::start(&host.path(), run_id, options)?;
        let image = engine.busybox_image()?;
        engine.run(&CREATE_NETWORK)?;
        for (name, (_, ip, _)) in DOCKER_CONTAINERS.into_iter().zip(CONTAINERS) {
            // Docker's MAC for the address is the other labs' (02:42 + the IPv4 address),
            // checked below: with `--mac-address` the CLI (newer than this engine) asks for
            // an API version the engine does not have.
            let b_specs: &[String] = if name == DOCKER_CONTAINERS[1] {
                published
            } else {
                &[]
            };
            docker_run(&engine, image, name, &["--ip", ip], b_specs)?;
        }
        let host_path = host.path();
        let a = probe_container(&host_path, engine.netns_of(DOCKER_CONTAINERS[0])?)?;
        let b = probe_container(&host_path, engine.netns_of(DOCKER_CONTAINERS[1])?)?;
        for (container, (name, ip, mac)) in [&a, &b].into_iter().zip(CONTAINERS) {
            ensure!(
                container.ip.to_string() == ip && container.mac.to_string() == mac,
                "Docker's container {name} has {} and {}, not {ip} and {mac} as in the other labs",
                container.ip,
                container.mac
            );
        }
        Ok(Self {
            pair: Pair {
                host: host_path,
                a,
                b,
            },
            uplink,
            published: published.to_vec(),
            image,
            engine,
            _host: host,
        })
    }

    /// B's name on Docker's network, which its embedded DNS answers.
    pub fn name_of_b(&self) -> &'static str {
        DOCKER_CONTAINERS[1]
    }

    /// Has B send a frame (one ping to its gateway), so that Docker's bridge knows B's MAC
    /// and forwards the frames a packet-rate measurement sends B instead of flooding them
    /// (B only receives them): the bridge of a container that sent anything in the last five
    /// minutes (its ageing time), and what the bridge lab's static entry gives that lab.
    pub fn let_bridge_learn_b(&self) -> anyhow::Result<()> {
        let mut ping = sys::in_netns(&self.pair.b.netns, "ping");
        sys::output(ping.args(["-c", "1", "-W", "1", GATEWAY])).map(drop)
    }

    /// Whether B publishes exactly the ports of the `-p` `spec`.
    pub fn publishes(&self, spec: &str) -> bool {
        self.published.iter().any(|published| published == spec)
    }

    /// The engine's version, as `docker version` gives it.
    pub fn version(&self) -> anyhow::Result<String> {
        self.engine
            .run(&["version", "--format", "{{.Server.Version}}"])
    }

    /// Runs a container of the lab's image on its network with `docker run -d` and these `-p`
    /// specs; returns how long `docker run` took, from exec to exit.
    pub fn run_container(&self, name: &str, specs: &[String]) -> anyhow::Result<Duration> {
        let start = Instant::now();
        docker_run(&self.engine, self.image, name, &[], specs)?;
        Ok(start.elapsed())
    }

    /// Removes a container [`DockerLab::run_container`] started.
    pub fn remove_container(&self, name: &str) -> anyhow::Result<()> {
        self.engine.run(&["rm", "-f", name]).map(drop)
    }
}

/// Every lab a run needs, built once; every scenario measures on them.
pub struct Lab {
    xnet: Option<XnetLab>,
    bridge: Option<BridgeLab>,
    /// Real Docker's, where needed and an engine can run (otherwise its side is skipped).
    pub docker: Option<DockerLab>,
    overlay: Option<OverlayLab>,
    simulated: Option<ClusterLab>,
    xnet_cluster: Option<XnetCluster>,
    docker_overlay: Option<OverlayPair>,
    /// Real Docker's swarm, where needed and an engine can run.
    pub swarm: Option<SwarmLab>,
    /// The LAN scenarios' LAN, kernel macvlan host and xnet networks (on the xnet lab's host,
    /// whose drop removes their containers).
    lan: Option<LanLab>,
    /// The prefix of everything this run makes (namespaces, paths).
    run_id: String,
}

/// The labs that sides are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Xnet,
    Bridge,
    Docker,
    Overlay,
    SimulatedCluster,
    XnetCluster,
    DockerOverlay,
    Swarm,
    Lan,
}

fn kind(side: Side) -> Kind {
    match side {
        // The reference CNI plugins need no lab: the scenario makes their namespace.
        Side::Xnet
        | Side::XnetMonitored
        | Side::XnetUnmonitored
        | Side::XnetCni
        | Side::ReferenceCni => Kind::Xnet,
        Side::XnetCluster => Kind::SimulatedCluster,
        Side::DockerReal | Side::DockerDns => Kind::Docker,
        Side::XnetOverlay | Side::XnetEncryptedOverlay | Side::XnetPlainOverlay => {
            Kind::XnetCluster
        }
        Side::DockerOverlay => Kind::DockerOverlay,
        Side::DockerRealOverlay | Side::DockerRealEncryptedOverlay => Kind::Swarm,
        Side::XnetMacvlan | Side::XnetIpvlan | Side::KernelMacvlan => Kind::Lan,
        Side::VxlanBridge
        | Side::VxlanTunnelKey
        | Side::VxlanAdjustRoom
        | Side::VxlanAdjustRoomXdp => Kind::Overlay,
        // The hops sit on the bridge lab's veths; published-port baselines use its host.
        _ => Kind::Bridge,
    }
}

impl Lab {
    /// Builds the labs of the `sides` a run measures. `docker_published`: the ports real
    /// Docker's B publishes (from its creation on), as `-p` specs; `cluster`: the size of the
    /// simulated cluster.
    pub fn up(
        run_id: &str,
        xnet_bin_dir: &Path,
        docker_published: &[String],
        sides: &[Side],
        cluster: ClusterSize,
    ) -> anyhow::Result<Self> {
        let needs = |k: Kind| sides.iter().any(|side| kind(*side) == k);
        let mut lab = Self {
            xnet: None,
            bridge: None,
            docker: None,
            overlay: None,
            simulated: None,
            xnet_cluster: None,
            docker_overlay: None,
            swarm: None,
            lan: None,
            run_id: run_id.to_string(),
        };
        if needs(Kind::Bridge) {
            let bridge = BridgeLab::up(run_id).context("setting up the bridge baseline")?;
            lab.bridge = Some(bridge);
        }
        // The LAN networks are the xnet lab's daemon's.
        if needs(Kind::Xnet) || needs(Kind::Lan) {
            lab.xnet = Some(XnetLab::up(run_id, xnet_bin_dir).context("setting up xnet")?);
        }
        if needs(Kind::Lan) {
            let xnet = lab.xnet();
            let lan = LanLab::up(run_id, &xnet.pair.host, &|args| xnet.xnet(args))
                .context("setting up the LAN lab")?;
            lab.lan = Some(lan);
        }
        if needs(Kind::Docker) {
            lab.docker = match Engine::unavailable() {
                Some(why) => {
                    eprintln!("real Docker's side is skipped: {why}");
                    None
                }
                None => Some(
                    DockerLab::up(run_id, docker_published).context("setting up real Docker")?,
                ),
            };
        }
        if needs(Kind::Overlay) {
            let overlay = OverlayLab::up(run_id).context("setting up the VXLAN overlay lab")?;
            lab.overlay = Some(overlay);
        }
        if needs(Kind::SimulatedCluster) {
            let simulated = ClusterLab::up(run_id, xnet_bin_dir, cluster)
                .context("setting up the simulated cluster")?;
            lab.simulated = Some(simulated);
        }
        if needs(Kind::XnetCluster) {
            let cluster = XnetCluster::up(run_id, xnet_bin_dir)
                .context("setting up xnet's cluster of two hosts")?;
            lab.xnet_cluster = Some(cluster);
        }
        if needs(Kind::DockerOverlay) {
            let rebuilt = docker_overlay_on_switch(&format!("{run_id}-ova"))
                .context("setting up Docker's overlay rebuilt")?;
            lab.docker_overlay = Some(rebuilt);
        }
        if needs(Kind::Swarm) {
            lab.swarm = match Engine::unavailable() {
                Some(why) => {
                    eprintln!("real Docker's overlay side is skipped: {why}");
                    None
                }
                None => Some(SwarmLab::up(run_id).context("setting up real Docker's swarm")?),
            };
        }
        lab.check_same_mtu()?;
        Ok(lab)
    }

    /// xnet's lab. Only called for sides that need it, which [`Lab::up`] then built.
    /// The prefix of everything this run makes, for what a scenario makes of its own.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn xnet(&self) -> &XnetLab {
        self.xnet
            .as_ref()
            .expect("xnet's lab is built for the sides that need it")
    }

    /// The bridge lab (Docker's datapath rebuilt), as [`Lab::xnet`].
    pub fn bridge(&self) -> &BridgeLab {
        self.bridge
            .as_ref()
            .expect("the bridge lab is built for the sides that need it")
    }

    /// Real Docker's lab. Only called for [`Side::DockerReal`], which is measured only where
    /// the lab exists (see [`Lab::measures`]).
    pub fn docker(&self) -> &DockerLab {
        self.docker
            .as_ref()
            .expect("real Docker's side is measured only where its lab exists")
    }

    /// The VXLAN overlay lab, as [`Lab::xnet`].
    pub fn overlay(&self) -> &OverlayLab {
        self.overlay
            .as_ref()
            .expect("the overlay lab is built for the sides that need it")
    }

    /// The LAN lab, as [`Lab::xnet`].
    pub fn lan(&self) -> &LanLab {
        self.lan
            .as_ref()
            .expect("the LAN lab is built for the sides that need it")
    }

    /// The simulated cluster, as [`Lab::xnet`].
    pub fn cluster(&self) -> &ClusterLab {
        self.simulated
            .as_ref()
            .expect("the simulated cluster is built for the sides that need it")
    }

    /// The two containers on two hosts that `side` is measured between: the VXLAN mechanisms'
    /// and the overlay scenarios' sides. Only called for sides of labs [`Lab::up`] built.
    pub fn two_hosts(&self, side: Side) -> &TwoHosts {
        const BUILT: &str = "the labs of the sides measured are built";
        match kind(side) {
            Kind::XnetCluster => {
                let cluster = self.xnet_cluster.as_ref().expect(BUILT);
                match side {
                    Side::XnetEncryptedOverlay => &cluster.encrypted,
                    _ => &cluster.pair,
                }
            }
            Kind::DockerOverlay => &self.docker_overlay.as_ref().expect(BUILT).ends,
            Kind::Swarm => {
                let swarm = self.swarm.as_ref().expect(BUILT);
                match side {
                    Side::DockerRealEncryptedOverlay => &swarm.encrypted,
                    _ => &swarm.pair,
                }
            }
            Kind::Overlay => self.overlay().pair(side),
            Kind::Xnet | Kind::Bridge | Kind::Docker | Kind::SimulatedCluster | Kind::Lan => {
                panic!("{} is measured on one host", side.label())
            }
        }
    }

    /// Whether this run can measure `side`: real Docker's needs an engine.
    pub fn measures(&self, side: Side) -> bool {
        match kind(side) {
            Kind::Xnet => self.xnet.is_some(),
            Kind::Bridge => self.bridge.is_some(),
            Kind::Docker => self.docker.is_some(),
            Kind::Overlay => self.overlay.is_some(),
            Kind::SimulatedCluster => self.simulated.is_some(),
            Kind::XnetCluster => self.xnet_cluster.is_some(),
            Kind::DockerOverlay => self.docker_overlay.is_some(),
            Kind::Swarm => self.swarm.is_some(),
            Kind::Lan => self.lan.is_some(),
        }
    }

    /// A different MTU would change what a TCP segment carries: the labs must agree (Docker's
    /// is its default, 1500, since the private engine does not read the machine's
    /// daemon.json).
    fn check_same_mtu(&self) -> anyhow::Result<()> {
        let pairs = [
            self.xnet.as_ref().map(|x| &x.pair),
            self.bridge.as_ref().map(|b| &b.pair),
            self.docker.as_ref().map(|d| &d.pair),
        ];
        let mtus: Vec<u32> = pairs
            .into_iter()
            .flatten()
            .flat_map(|pair| [pair.a.mtu, pair.b.mtu])
            .collect();
        ensure!(
            mtus.windows(2).all(|w| w[0] == w[1]),
            "the containers' MTUs differ between the labs: {mtus:?} (xnet, bridge, Docker)"
        );
        Ok(())
    }
}
