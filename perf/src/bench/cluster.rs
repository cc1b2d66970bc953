//! The labs of the `overlay-*` scenarios (issue #13): two hosts on a switch, one overlay
//! network, a container on each host, made by xnet itself and by real Docker. The third
//! side, Docker's overlay datapath rebuilt, is [`super::overlay::docker_overlay_on_switch`].
//! All three put the overlay on 10.98.0.0/24 (gateway .1) over a 1500-byte underlay, so every
//! container has MTU 1450.
//!
//! - [`XnetCluster`]: a lab of simulated hosts (xnet-lab, namespaces `xb<pid>-ov-*`): a
//!   switch, a router, one etcd member, and hosts `h1` and `h2`, each running the real xnetd
//!   with `--cluster-store` (the etcd member), `--cluster-advertise eth0` and `--uplink eth0`,
//!   as the lab starts every host's (so `uplink_xdp` sits in native mode on each veth
//!   uplink). `xnet network create -d overlay --attachable` on `h1`, `xnet run -d --name a`
//!   on `h1` and `b` on `h2`.
//! - [`SwarmLab`]: two private engines (xnet-dockerlab, the machine's dockerd with Docker's
//!   default networking) in host namespaces `xb<pid>-swarm-h1` and `-h2` plugged into a switch
//!   (`-sw`) as the other sides' hosts are, 10.77.0.101 and .102 on `under0`. They form a
//!   swarm (`h1` manager, `h2` worker), the manager creates an attachable overlay network and
//!   each engine runs a busybox container on it (`ov-a`, `ov-b`). Docker's overlay driver
//!   puts each network's bridge, vxlan device and the containers' host-side veths in a
//!   sandbox namespace of its own, pinned under the engine's exec root; the lab finds A's
//!   there.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail, ensure};
use serde_json::Value;
use xnet_dockerlab::{Engine, Options};
use xnet_lab::{Spec, eventually};

use super::{
    container::{Container, TwoHosts, placeholder, probe_container},
    overlay::{OVERLAY_MTU, UNDERLAY, plug_into_switch},
    sys::{self, Netns},
};

/// The overlay network of every side.
const NETWORK: &str = "bench-ov";
const SUBNET: &str = "10.98.0.0/24";
const GATEWAY: &str = "10.98.0.1";
/// xnet's encrypted overlay, beside the plain one on the same hosts.
const ENCRYPTED_NETWORK: &str = "bench-ove";
const ENCRYPTED_SUBNET: &str = "10.97.0.0/24";
const ENCRYPTED_GATEWAY: &str = "10.97.0.1";
/// Its containers' MTU: the plain overlay's less what sealing adds (IPv4, UDP, WireGuard's
/// header and tag).
const ENCRYPTED_OVERLAY_MTU: u32 = OVERLAY_MTU - 60;
/// xnet-lab's underlay device in each host.
const LAB_UPLINK: &str = "eth0";
/// The swarm's hosts on their underlay (xnet-lab's addresses for its hosts).
const SWARM_HOSTS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 77, 0, 101), Ipv4Addr::new(10, 77, 0, 102)];
const SWARM_PREFIX: u8 = 24;
/// How long a new container may take to reach the other host's: xnet's other host learns of
/// it through its watch of the store, Docker's through the swarm's gossip.
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(15);

/// xnet on two simulated hosts of a cluster.
pub struct XnetCluster {
    pub pair: TwoHosts,
    /// The same hosts' containers on an encrypted overlay (`--opt encrypted`).
    pub encrypted: TwoHosts,
    // Its drop stops the xnetds and etcd and removes every namespace, pin and directory.
    _lab: xnet_lab::Lab,
}

impl XnetCluster {
    pub fn up(run_id: &str, bin_dir: &Path) -> anyhow::Result<Self> {
        let lab = xnet_lab::Lab::up(Spec {
            hosts: 2,
            etcd_members: 1,
            ..Spec::new(format!("{run_id}-ov"), bin_dir)
        })?;
        let plain = Overlay {
            network: NETWORK,
            subnet: SUBNET,
            gateway: GATEWAY,
            options: &[],
            mtu: OVERLAY_MTU,
            names: ["a", "b"],
        };
        let encrypted = Overlay {
            network: ENCRYPTED_NETWORK,
            subnet: ENCRYPTED_SUBNET,
            gateway: ENCRYPTED_GATEWAY,
            options: &["--opt", "encrypted"],
            mtu: ENCRYPTED_OVERLAY_MTU,
            names: ["ea", "eb"],
        };
        let pair = overlay_pair(&lab, &plain)?;
        let encrypted = overlay_pair(&lab, &encrypted)?;
        Ok(Self {
            pair,
            encrypted,
            _lab: lab,
        })
    }
}

/// One overlay network of [`XnetCluster`] and its two containers.
struct Overlay<'a> {
    network: &'a str,
    subnet: &'a str,
    gateway: &'a str,
    /// More `network create` arguments.
    options: &'a [&'a str],
    /// The containers' MTU it implies.
    mtu: u32,
    /// The container on `h1`, the one on `h2`.
    names: [&'a str; 2],
}

/// `overlay` made on `h1`, its containers on `h1` and `h2`, which reach each other.
fn overlay_pair(lab: &xnet_lab::Lab, overlay: &Overlay) -> anyhow::Result<TwoHosts> {
    let Overlay {
        network,
        subnet,
        gateway,
        options,
        mtu,
        names,
    } = *overlay;
    let create = [
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--subnet",
            subnet,
            "--gateway",
            gateway,
        ],
        options,
        &[network],
    ]
    .concat();
    xnet(lab, "h1", &create)?;
    for (host, name) in [("h1", names[0]), ("h2", names[1])] {
        let run = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--",
            "sleep",
            "infinity",
        ];
        // h2 knows the network once its watch has mirrored it from the store.
        let mut last = Ok(String::new());
        eventually(REACHABLE_TIMEOUT, || {
            last = xnet(lab, host, &run);
            last.is_ok()
        });
        last?;
    }
    let hosts = [lab.host("h1")?.netns_path(), lab.host("h2")?.netns_path()];
    let pair = TwoHosts {
        a: xnet_container(lab, "h1", names[0])?,
        b: xnet_container(lab, "h2", names[1])?,
        a_veth_ns: hosts[0].clone(),
        hosts,
        underlay: LAB_UPLINK,
    };
    reachable(&pair, mtu).with_context(|| {
        format!(
            "xnetd logs:\nh1:\n{}\nh2:\n{}",
            log_tail(lab, "h1"),
            log_tail(lab, "h2")
        )
    })?;
    Ok(pair)
}

/// `xnet ARGS` on `host` of `lab`, which must succeed; its stdout.
fn xnet(lab: &xnet_lab::Lab, host: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = lab.xnet(host, args)?;
    ensure!(
        out.status.success(),
        "xnet {} on {host}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The last lines of `host`'s xnetd log, for failure messages.
fn log_tail(lab: &xnet_lab::Lab, host: &str) -> String {
    let log = lab.xnetd_log(host).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn xnet_container(lab: &xnet_lab::Lab, host: &str, name: &str) -> anyhow::Result<Container> {
    let inspect: Value = serde_json::from_str(&xnet(lab, host, &["inspect", name])?)?;
    let sandbox = inspect[0]["NetworkSettings"]["SandboxKey"]
        .as_str()
        .ok_or_else(|| anyhow!("no SandboxKey for {name} on {host}"))?;
    probe_container(&lab.host(host)?.netns_path(), sandbox.into())
}

/// Overlay `network` (subnet and gateway, more `options`) made by the swarm's manager
/// (`engines[0]`), container `names[i]` run on `engines[i]`: the pair, its hosts left unset.
fn swarm_pair(
    engines: &[Engine],
    network: &str,
    (subnet, gateway): (&str, &str),
    options: &[&str],
    names: [&str; 2],
) -> anyhow::Result<TwoHosts> {
    let create = [
        &[
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            "--subnet",
            subnet,
            "--gateway",
            gateway,
        ],
        options,
        &[network],
    ]
    .concat();
    engines[0].run(&create)?;
    for (engine, name) in engines.iter().zip(names) {
        let image = engine.busybox_image()?;
        engine.run(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            image,
            "sleep",
            "infinity",
        ])?;
    }
    let mut ends = Vec::new();
    for (engine, name) in engines.iter().zip(names) {
        let netns = engine.netns_of(name)?;
        let sandbox = veth_peer_netns(&netns, &engine.netns_dir())?;
        ends.push((probe_container(&sandbox, netns)?, sandbox));
    }
    let (b, _) = ends.pop().expect("two containers");
    let (a, a_veth_ns) = ends.pop().expect("two containers");
    Ok(TwoHosts {
        a,
        b,
        a_veth_ns,
        hosts: [PathBuf::new(), PathBuf::new()],
        underlay: UNDERLAY,
    })
}

/// Waits until A's pings reach B, and checks the MTU every side shares.
fn reachable(pair: &TwoHosts, mtu: u32) -> anyhow::Result<()> {
    for c in [&pair.a, &pair.b] {
        ensure!(
            c.mtu == mtu,
            "container {} has MTU {}, not {mtu}",
            c.netns.display(),
            c.mtu
        );
    }
    let b = pair.b.ip.to_string();
    let pings = eventually(REACHABLE_TIMEOUT, || {
        let mut ping = sys::in_netns(&pair.a.netns, "ping");
        sys::output(ping.args(["-c", "1", "-W", "1", &b])).is_ok()
    });
    ensure!(
        pings,
        "A ({}) cannot ping B ({b}) across the overlay",
        pair.a.ip
    );
    Ok(())
}

/// Real Docker's overlay: two private engines in a swarm.
pub struct SwarmLab {
    pub pair: TwoHosts,
    /// Two more containers, on an encrypted overlay (`--opt encrypted`), which Docker makes
    /// without a word even where its IPsec cannot work: not checked for reachability.
    pub encrypted: TwoHosts,
    /// The manager first; dropped in reverse (see `Drop`), each while its namespace exists.
    engines: Vec<Engine>,
    // Hosts, then the switch.
    _netns: Vec<Netns>,
}

/// Docker's names for A and B (it wants at least two characters).
const SWARM_CONTAINERS: [&str; 2] = ["ov-a", "ov-b"];
/// And for those on the encrypted overlay.
const SWARM_ENCRYPTED_CONTAINERS: [&str; 2] = ["ove-a", "ove-b"];

impl SwarmLab {
    pub fn up(run_id: &str) -> anyhow::Result<Self> {
        let prefix = format!("{run_id}-swarm");
        let unset = || TwoHosts {
            a: placeholder(),
            b: placeholder(),
            a_veth_ns: PathBuf::new(),
            hosts: [PathBuf::new(), PathBuf::new()],
            underlay: UNDERLAY,
        };
        let mut lab = Self {
            pair: unset(),
            encrypted: unset(),
            engines: Vec::new(),
            _netns: Vec::new(),
        };
        for host in ["h1", "h2"] {
            lab._netns.push(Netns::create(format!("{prefix}-{host}"))?);
        }
        lab._netns.push(Netns::create(format!("{prefix}-sw"))?);
        let [h1, h2, switch] = [0, 1, 2].map(|i| &lab._netns[i]);
        plug_into_switch(switch, &[("h1", &h1.name), ("h2", &h2.name)])?;
        lab.pair.hosts = [h1.path(), h2.path()];
        for (host, ip) in [h1, h2].into_iter().zip(SWARM_HOSTS) {
            let addr = format!("{ip}/{SWARM_PREFIX}");
            sys::sh(&[
                "ip", "-n", &host.name, "addr", "add", &addr, "dev", UNDERLAY,
            ])?;
        }
        let options = Options {
            docker_networking: true,
            live_restore: false,
        };
        for (i, host) in lab.pair.hosts.iter().enumerate() {
            let engine = Engine::start(host, &format!("{run_id}-s{}", i + 1), options)?;
            lab.engines.push(engine);
        }
        let (manager, worker) = (&lab.engines[0], &lab.engines[1]);
        let token = manager.init_swarm(SWARM_HOSTS[0])?;
        worker.join_swarm(&token, SWARM_HOSTS[1], SWARM_HOSTS[0])?;
        let hosts = lab.pair.hosts.clone();
        lab.pair = swarm_pair(
            &lab.engines,
            NETWORK,
            (SUBNET, GATEWAY),
            &[],
            SWARM_CONTAINERS,
        )?;
        lab.pair.hosts = hosts.clone();
        lab.encrypted = swarm_pair(
            &lab.engines,
            ENCRYPTED_NETWORK,
            (ENCRYPTED_SUBNET, ENCRYPTED_GATEWAY),
            &["--opt", "encrypted"],
            SWARM_ENCRYPTED_CONTAINERS,
        )?;
        lab.encrypted.hosts = hosts;
        reachable(&lab.pair, OVERLAY_MTU).with_context(|| {
            format!(
                "dockerd logs:\nmanager:\n{}\nworker:\n{}",
                lab.engines[0].log_tail(),
                lab.engines[1].log_tail()
            )
        })?;
        Ok(lab)
    }

    /// The engine's version, as `docker version` gives it.
    pub fn version(&self) -> anyhow::Result<String> {
        self.engines[0].run(&["version", "--format", "{{.Server.Version}}"])
    }
}

impl Drop for SwarmLab {
    fn drop(&mut self) {
        // The worker first, while the manager still answers it.
        while let Some(engine) = self.engines.pop() {
            drop(engine);
        }
    }
}

/// Of the namespaces pinned in `dir`, the one holding the host-side end of the veth whose
/// other end is `eth0` of the container namespace `container`: the link there whose index
/// is the peer index of `eth0`, and whose peer index is the index of `eth0`.
fn veth_peer_netns(container: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let links = |netns: &Path, args: &[&str]| -> anyhow::Result<Value> {
        let mut ip = sys::in_netns(netns, "ip");
        Ok(serde_json::from_str(&sys::output(
            ip.args(["-j", "link", "show"]).args(args),
        )?)?)
    };
    let eth0 = &links(container, &["eth0"])?[0];
    let (index, peer) = (eth0["ifindex"].as_u64(), eth0["link_index"].as_u64());
    let (Some(index), Some(peer)) = (index, peer) else {
        bail!("eth0 of {} is not a veth", container.display());
    };
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let netns = entry?.path();
        let Ok(all) = links(&netns, &[]) else {
            continue;
        };
        let holds_peer = all.as_array().into_iter().flatten().any(|link| {
            link["ifindex"].as_u64() == Some(peer) && link["link_index"].as_u64() == Some(index)
        });
        if holds_peer {
            return Ok(netns);
        }
    }
    bail!(
        "no namespace in {} holds the other end of eth0 of {}",
        dir.display(),
        container.display()
    )
}
