//! The overlay lab of the `vxlan-mech-*` scenarios (issue #13): for each VXLAN mechanism, two
//! simulated hosts joined by an underlay, one container behind each, the containers on one
//! overlay network (VNI 4097) that only VXLAN connects. Every mechanism gets namespaces of its
//! own (`xb<pid>-vx<a|b|c|x>-*`), so nothing has to be switched between rounds: A's vxlan
//! device and B's collect_md device would both want UDP port 4789 of the host, and C's
//! programs on the underlay would take A's and B's frames.
//!
//! - **Underlay**: one veth pair between the two host namespaces (`under0`, 10.99.0.1/24 and
//!   .2, MTU 1500), in place of a wire between two NICs (a veth passes GSO super-packets
//!   whole; [`SegmentedUnderlay`] makes it carry MTU-sized packets as a wire does). A switch
//!   namespace with a bridge in between would add the same bridge hop to every mechanism, on
//!   the same two CPUs, and shrink the differences being measured; a veth also lets C-xdp
//!   run native XDP on the underlay. The `overlay-*` scenarios' baseline
//!   ([`docker_overlay_on_switch`], namespaces `xb<pid>-ova-*`) is A with both hosts on a
//!   switch instead (`plug_into_switch`: a bridge in namespace `-sw`): the shape of the
//!   simulated hosts xnet's side of those scenarios runs on (xnet-lab).
//! - **Containers**: `eth0` with MTU 1450 (50 bytes for VXLAN on a 1500 underlay, as Docker's
//!   overlay), default offloads, 10.98.0.2/24 and .3, MACs not derived from the addresses, and
//!   a static (permanent) neighbour entry for each other: no ARP crosses any of the
//!   mechanisms, so they are compared on the same traffic. IPv6 is off in every namespace of
//!   the lab, so no router solicitation or listener report crosses either.
//! - **A** (`vxlan-bridge`), Docker's overlay datapath rebuilt as libnetwork's overlay driver
//!   makes it: per host a network namespace (the sandbox) with bridge `ov-001001` (the
//!   subnet's gateway address on it) and vxlan device `vx-001001` (VNI 4097, dstport 4789,
//!   MTU 1450, proxy, l2miss, l3miss), created in the host namespace and moved into the
//!   sandbox, so its UDP socket stays in the host's; the container's veth on the bridge; a
//!   static FDB entry (remote container MAC -> remote host) and a permanent neighbour entry on
//!   the vxlan device, as peerdb installs them. Learning is off (libnetwork turns it on; with
//!   static entries it only adds a lookup per received frame). The vxlan device checksums its
//!   UDP (the kernel's default, which libnetwork keeps); br_netfilter is on in the sandbox (a
//!   new namespace's default once the module is loaded, as on a Docker host).
//! - **B** (`vxlan-set-tunnel-key`): collect_md vxlan device `vx-md` (`external`, dstport
//!   4789, MTU 1450) in each host namespace, the container's veth in the host namespace, and
//!   `xnet-vxlan --mechanism tunnel-key` holding the programs.
//! - **C** (`vxlan-adjust-room`) and **C-xdp** (`vxlan-adjust-room-xdp`): no vxlan device;
//!   `xnet-vxlan --mechanism adjust-room` (or `adjust-room-xdp`) in each host.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, ensure};
use serde_json::Value;

use super::{
    container::{TwoHosts, placeholder, probe_container},
    side::Side,
    sys::{self, Held, Netns},
};

/// The overlay network's VXLAN network identifier (Docker's first overlay VNI).
pub const VNI: u32 = 4097;
/// The containers' MTU: the underlay's less what VXLAN adds.
pub const OVERLAY_MTU: u32 = 1450;
const UNDERLAY_MTU: u32 = 1500;
/// The underlay device of each host.
pub const UNDERLAY: &str = "under0";
const UNDERLAY_PREFIX: u8 = 24;
const HOSTS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 0, 2)];
const OVERLAY_PREFIX: u8 = 24;
const GATEWAY: &str = "10.98.0.1";
/// A and B: address and MAC (locally administered, unrelated to the address).
const CONTAINERS: [(&str, &str); 2] = [
    ("10.98.0.2", "0a:b1:7c:3e:52:01"),
    ("10.98.0.3", "0a:b1:7c:3e:52:02"),
];
/// The host-side end of a container's veth.
const HOST_VETH: &str = "veth-ct";
/// A's bridge and vxlan device, named as libnetwork names them (`ov-`/`vx-` + the VNI in hex).
const BRIDGE: &str = "ov-001001";
const VXLAN_DEV: &str = "vx-001001";
/// B's collect_md device.
const COLLECT_MD_DEV: &str = "vx-md";
/// The bridge of a switch namespace.
const SWITCH_BRIDGE: &str = "br0";

/// The four datapaths, in the order each round measures them.
pub const SIDES: &[Side] = &[
    Side::VxlanBridge,
    Side::VxlanTunnelKey,
    Side::VxlanAdjustRoom,
    Side::VxlanAdjustRoomXdp,
];

/// Two containers on two hosts, connected by one mechanism, and what holds them up.
pub struct OverlayPair {
    pub ends: TwoHosts,
    // First the programs' holders, then the namespaces: containers, sandboxes, hosts, switch.
    _tools: Vec<Held>,
    _netns: Vec<Netns>,
}

/// What joins the two hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Underlay {
    /// One veth pair between the hosts (the `vxlan-mech-*` scenarios).
    Veth,
    /// A switch namespace with a bridge, each host on a veth to one of its ports: the lab of
    /// simulated hosts (xnet-lab) has this shape, so the `overlay-*` scenarios give Docker's
    /// overlay rebuilt the same one.
    Switch,
}

/// Every mechanism's pair.
pub struct OverlayLab {
    pairs: Vec<(Side, OverlayPair)>,
}

impl OverlayLab {
    pub fn up(run_id: &str) -> anyhow::Result<Self> {
        let mut pairs = Vec::new();
        for &side in SIDES {
            let tag = match side {
                Side::VxlanBridge => "a",
                Side::VxlanTunnelKey => "b",
                Side::VxlanAdjustRoom => "c",
                _ => "x",
            };
            let prefix = format!("{run_id}-vx{tag}");
            let pair = OverlayPair::up(&prefix, side, Underlay::Veth)
                .with_context(|| format!("setting up VXLAN side {}", side.label()))?;
            pairs.push((side, pair));
        }
        Ok(Self { pairs })
    }

    /// The pair `side` is measured on (only the overlay sides are).
    pub fn pair(&self, side: Side) -> &TwoHosts {
        self.pairs
            .iter()
            .find(|(s, _)| *s == side)
            .map(|(_, pair)| &pair.ends)
            .expect("the overlay lab has a pair for every VXLAN side")
    }
}

/// A, Docker's overlay datapath rebuilt, between two hosts on a switch (namespaces
/// `<prefix>-*`): the baseline of the `overlay-*` scenarios.
pub fn docker_overlay_on_switch(prefix: &str) -> anyhow::Result<OverlayPair> {
    OverlayPair::up(prefix, Side::VxlanBridge, Underlay::Switch)
}

/// One simulated host as its plumbing needs it.
struct Host {
    ns: Netns,
    /// Where the container's veth and, for A, the bridge and vxlan device live.
    veth_ns: Option<Netns>,
    container: Netns,
    ip: Ipv4Addr,
}

impl Host {
    fn veth_ns_name(&self) -> &str {
        self.veth_ns.as_ref().unwrap_or(&self.ns).name.as_str()
    }
}

impl OverlayPair {
    /// `side`'s mechanism between two hosts joined by `underlay`, in namespaces
    /// `<prefix>-*`.
    fn up(prefix: &str, side: Side, underlay: Underlay) -> anyhow::Result<Self> {
        let mut hosts = Vec::new();
        // Every namespace is owned by `hosts` or `switch` as soon as it exists, so a failure
        // below still removes it (containers before sandboxes before hosts, see `adopt`).
        let switch = match underlay {
            Underlay::Switch => Some(quiet_netns(format!("{prefix}-sw"))?),
            Underlay::Veth => None,
        };
        for (name, ip) in ["a", "b"].into_iter().zip(HOSTS) {
            let ns = quiet_netns(format!("{prefix}-h{name}"))?;
            let container = quiet_netns(format!("{prefix}-c{name}"))?;
            let veth_ns = match side {
                Side::VxlanBridge => Some(quiet_netns(format!("{prefix}-n{name}"))?),
                _ => None,
            };
            hosts.push(Host {
                ns,
                veth_ns,
                container,
                ip,
            });
        }
        let mut pair = Self {
            ends: TwoHosts {
                a: placeholder(),
                b: placeholder(),
                a_veth_ns: PathBuf::new(),
                hosts: [hosts[0].ns.path(), hosts[1].ns.path()],
                underlay: UNDERLAY,
            },
            _tools: Vec::new(),
            _netns: Vec::new(),
        };
        let result = plumb(side, &hosts, switch.as_ref(), &mut pair._tools);
        pair.adopt(hosts);
        pair._netns.extend(switch);
        result?;
        let path = |i: usize| pair._netns[i].path();
        let (a, b, a_veth_ns, b_veth_ns) = (path(0), path(1), path(2), path(3));
        let ends = &mut pair.ends;
        ends.a = probe_container(&a_veth_ns, a)?;
        ends.b = probe_container(&b_veth_ns, b)?;
        ends.a_veth_ns = a_veth_ns;
        for c in [&ends.a, &ends.b] {
            ensure!(
                c.mtu == OVERLAY_MTU,
                "container {} has MTU {}, not {OVERLAY_MTU}",
                c.netns.display(),
                c.mtu
            );
        }
        // One ping, so a broken datapath fails here, naming the side, rather than as a
        // measurement that sees nothing.
        let mut ping = sys::in_netns(&ends.a.netns, "ping");
        sys::output(ping.args(["-c", "1", "-W", "2", &ends.b.ip.to_string()]))
            .context("no ping between the containers")?;
        Ok(pair)
    }

    /// Takes the namespaces over in the order they must go: containers (0, 1), the
    /// namespaces of the containers' veths (2, 3: sandboxes, or the hosts), then the hosts
    /// that are not already in.
    fn adopt(&mut self, hosts: Vec<Host>) {
        let mut veth_ns = Vec::new();
        let mut host_ns = Vec::new();
        for host in hosts {
            self._netns.push(host.container);
            match host.veth_ns {
                Some(sandbox) => {
                    veth_ns.push(sandbox);
                    host_ns.push(host.ns);
                }
                None => veth_ns.push(host.ns),
            }
        }
        self._netns.extend(veth_ns);
        self._netns.extend(host_ns);
    }
}

/// A namespace with loopback up and IPv6 off.
fn quiet_netns(name: String) -> anyhow::Result<Netns> {
    let ns = Netns::create(name)?;
    let mut sysctl = sys::in_netns(&ns.path(), "sysctl");
    sysctl.args([
        "-q",
        "-w",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    sys::output(&mut sysctl)?;
    Ok(ns)
}

/// `ip -n NS args...`.
fn ip(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut words = vec!["ip", "-n", ns];
    words.extend_from_slice(args);
    sys::sh(&words).map(drop)
}

/// Makes `switch` a switch as xnet-lab's is (a bridge without multicast snooping nor
/// br_netfilter, in a namespace of its own) and plugs each host namespace of `ports` into it:
/// a veth from port `PORT` of the bridge to [`UNDERLAY`] (MTU 1500) in the host, both ends
/// up.
pub fn plug_into_switch(switch: &Netns, ports: &[(&str, &str)]) -> anyhow::Result<()> {
    let sw = switch.name.as_str();
    ip(
        sw,
        &[
            "link",
            "add",
            SWITCH_BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ],
    )?;
    ip(sw, &["link", "set", SWITCH_BRIDGE, "up"])?;
    // Where br_netfilter is loaded (Docker loads it), the bridge of a new namespace sends
    // every frame through the IP hooks, which a switch does not have.
    if Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        let mut sysctl = sys::in_netns(&switch.path(), "sysctl");
        sys::output(sysctl.args([
            "-q",
            "-w",
            "net.bridge.bridge-nf-call-iptables=0",
            "net.bridge.bridge-nf-call-ip6tables=0",
            "net.bridge.bridge-nf-call-arptables=0",
        ]))?;
    }
    let mtu = UNDERLAY_MTU.to_string();
    for (port, host) in ports {
        ip(
            sw,
            &[
                "link", "add", port, "mtu", &mtu, "type", "veth", "peer", "name", UNDERLAY, "mtu",
                &mtu, "netns", host,
            ],
        )?;
        ip(sw, &["link", "set", port, "master", SWITCH_BRIDGE, "up"])?;
        ip(host, &["link", "set", UNDERLAY, "up"])?;
    }
    Ok(())
}

/// The underlay (through `switch` if given), both containers and `side`'s mechanism; the
/// programs' holders go to `tools`.
fn plumb(
    side: Side,
    hosts: &[Host],
    switch: Option<&Netns>,
    tools: &mut Vec<Held>,
) -> anyhow::Result<()> {
    let (ha, hb) = (&hosts[0], &hosts[1]);
    match switch {
        Some(switch) => {
            let ports = [("ha", ha), ("hb", hb)];
            plug_into_switch(
                switch,
                &ports.map(|(port, host)| (port, host.ns.name.as_str())),
            )?;
        }
        None => {
            let mtu = UNDERLAY_MTU.to_string();
            ip(
                &ha.ns.name,
                &[
                    "link",
                    "add",
                    UNDERLAY,
                    "mtu",
                    &mtu,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    UNDERLAY,
                    "mtu",
                    &mtu,
                    "netns",
                    &hb.ns.name,
                ],
            )?;
        }
    }
    for host in hosts {
        let addr = format!("{}/{UNDERLAY_PREFIX}", host.ip);
        ip(&host.ns.name, &["addr", "add", &addr, "dev", UNDERLAY])?;
        ip(&host.ns.name, &["link", "set", UNDERLAY, "up"])?;
    }
    for (i, host) in hosts.iter().enumerate() {
        let (ip_addr, mac) = CONTAINERS[i];
        let (peer_ip, peer_mac) = CONTAINERS[1 - i];
        container(host, ip_addr, mac, peer_ip, peer_mac)?;
        if side == Side::VxlanBridge {
            docker_overlay(host, hosts[1 - i].ip, peer_ip, peer_mac)?;
        }
    }
    if side == Side::VxlanBridge {
        return Ok(());
    }
    let underlay_macs = [underlay_mac(ha)?, underlay_mac(hb)?];
    for (i, host) in hosts.iter().enumerate() {
        let remote = &hosts[1 - i];
        let mut cmd = sys::in_netns(&host.ns.path(), sys::tool("xnet-vxlan"));
        let mechanism = match side {
            Side::VxlanTunnelKey => {
                let dev = COLLECT_MD_DEV;
                let md = [
                    "link", "add", dev, "mtu", "1450", "type", "vxlan", "external",
                ];
                ip(&host.ns.name, &[&md[..], &["dstport", "4789"]].concat())?;
                ip(&host.ns.name, &["link", "set", dev, "up"])?;
                cmd.args(["--vxlan-dev", dev]);
                "tunnel-key"
            }
            Side::VxlanAdjustRoom => "adjust-room",
            _ => "adjust-room-xdp",
        };
        cmd.args(["--mechanism", mechanism])
            .args(["--vni", &VNI.to_string()])
            .args(["--veth", HOST_VETH, "--mac", CONTAINERS[i].1])
            .args(["--underlay", UNDERLAY, "--local-ip", &host.ip.to_string()])
            .args(["--remote-mac", CONTAINERS[1 - i].1])
            .args(["--remote-ip", &remote.ip.to_string()])
            .args(["--remote-underlay-mac", &underlay_macs[1 - i]]);
        tools.push(Held::start("xnet-vxlan", &mut cmd)?);
    }
    Ok(())
}

/// The container of `host`: its veth (`eth0` inside, MTU 1450 on both ends), address, MAC and
/// a permanent neighbour entry for the other container.
fn container(
    host: &Host,
    ip_addr: &str,
    mac: &str,
    peer_ip: &str,
    peer_mac: &str,
) -> anyhow::Result<()> {
    let (vns, cns) = (host.veth_ns_name(), host.container.name.as_str());
    let mtu = OVERLAY_MTU.to_string();
    ip(
        vns,
        &[
            "link", "add", HOST_VETH, "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "mtu",
            &mtu, "netns", cns,
        ],
    )?;
    ip(cns, &["link", "set", "eth0", "address", mac])?;
    let addr = format!("{ip_addr}/{OVERLAY_PREFIX}");
    ip(cns, &["addr", "add", &addr, "dev", "eth0"])?;
    ip(cns, &["link", "set", "eth0", "up"])?;
    let neigh = [
        "neigh", "replace", peer_ip, "lladdr", peer_mac, "dev", "eth0",
    ];
    ip(cns, &[&neigh[..], &["nud", "permanent"]].concat())?;
    ip(vns, &["link", "set", HOST_VETH, "up"])
}

/// Docker's overlay in `host`'s sandbox: bridge, vxlan device made in the host namespace and
/// moved in, the container's veth on the bridge, and peerdb's entries for the remote
/// container (at `remote_host`).
fn docker_overlay(
    host: &Host,
    remote_host: Ipv4Addr,
    peer_ip: &str,
    peer_mac: &str,
) -> anyhow::Result<()> {
    let (h, s) = (host.ns.name.as_str(), host.veth_ns_name());
    let mtu = OVERLAY_MTU.to_string();
    ip(s, &["link", "add", BRIDGE, "type", "bridge"])?;
    ip(
        s,
        &[
            "addr",
            "add",
            &format!("{GATEWAY}/{OVERLAY_PREFIX}"),
            "dev",
            BRIDGE,
        ],
    )?;
    let vxlan = [
        "link", "add", VXLAN_DEV, "mtu", &mtu, "type", "vxlan", "id", "4097",
    ];
    let flags = ["dstport", "4789", "nolearning", "proxy", "l2miss", "l3miss"];
    ip(h, &[&vxlan[..], &flags[..]].concat())?;
    ip(h, &["link", "set", VXLAN_DEV, "netns", s])?;
    ip(s, &["link", "set", VXLAN_DEV, "master", BRIDGE, "up"])?;
    ip(s, &["link", "set", HOST_VETH, "master", BRIDGE])?;
    ip(s, &["link", "set", BRIDGE, "up"])?;
    let remote = remote_host.to_string();
    sys::sh(&[
        "bridge",
        "-n",
        s,
        "fdb",
        "add",
        peer_mac,
        "dev",
        VXLAN_DEV,
        "dst",
        &remote,
        "self",
        "permanent",
    ])?;
    let neigh = [
        "neigh", "add", peer_ip, "lladdr", peer_mac, "dev", VXLAN_DEV,
    ];
    ip(s, &[&neigh[..], &["nud", "permanent"]].concat())
}

/// Bytes and packets device `dev` of namespace `netns` received so far.
pub fn received(netns: &Path, dev: &str) -> anyhow::Result<(u64, u64)> {
    let mut show = sys::in_netns(netns, "ip");
    let out = sys::output(show.args(["-j", "-s", "link", "show", dev]))?;
    let link: Value = serde_json::from_str(&out)?;
    let rx = &link[0]["stats64"]["rx"];
    let count = |key: &str| {
        rx[key]
            .as_u64()
            .with_context(|| format!("no rx {key} for {dev} in {}", netns.display()))
    };
    Ok((count("bytes")?, count("packets")?))
}

/// The underlay as a wire between real NICs carries it, while it lives: each host's
/// underlay device segments UDP-tunnel GSO packets itself (`tx-udp_tnl-segmentation` and
/// `tx-udp_tnl-csum-segmentation` off: in software here, where a NIC with VXLAN TSO would do
/// it in hardware), so MTU-sized packets cross, and has GRO on, as NICs have, to coalesce
/// them again on receipt. Between veths (the default) GSO super-packets cross whole and
/// receive-side GRO never matters. The features are put back as they were.
pub struct SegmentedUnderlay {
    restore: Vec<(PathBuf, &'static str, &'static str, String)>,
}

impl SegmentedUnderlay {
    pub fn new(pair: &TwoHosts) -> anyhow::Result<Self> {
        let mut guard = Self {
            restore: Vec::new(),
        };
        let dev = pair.underlay;
        for host in &pair.hosts {
            for (feature, state) in [
                ("tx-udp_tnl-segmentation", "off"),
                ("tx-udp_tnl-csum-segmentation", "off"),
                ("generic-receive-offload", "on"),
            ] {
                let was = feature_state(host, dev, feature)?;
                guard.restore.push((host.clone(), dev, feature, was));
                set_feature(host, dev, feature, state)?;
            }
        }
        Ok(guard)
    }
}

impl Drop for SegmentedUnderlay {
    fn drop(&mut self) {
        for (host, dev, feature, state) in self.restore.iter().rev() {
            let _ = set_feature(host, dev, feature, state);
        }
    }
}

/// `on` or `off`: an offload feature of device `dev` in `host`, as `ethtool -k` shows.
fn feature_state(host: &Path, dev: &str, feature: &str) -> anyhow::Result<String> {
    let out = sys::output(sys::in_netns(host, "ethtool").args(["-k", dev]))?;
    out.lines()
        .filter_map(|line| line.trim().split_once(": "))
        .find(|(name, _)| *name == feature)
        .and_then(|(_, state)| state.split_whitespace().next())
        .map(str::to_string)
        .with_context(|| format!("ethtool -k {dev} shows no {feature}"))
}

fn set_feature(host: &Path, dev: &str, feature: &str, state: &str) -> anyhow::Result<()> {
    let mut ethtool = sys::in_netns(host, "ethtool");
    sys::output(ethtool.args(["-K", dev, feature, state])).map(drop)
}

/// The MAC of `host`'s underlay device.
fn underlay_mac(host: &Host) -> anyhow::Result<String> {
    let mut show = sys::in_netns(&host.ns.path(), "ip");
    let link: Value =
        serde_json::from_str(&sys::output(show.args(["-j", "link", "show", UNDERLAY]))?)?;
    link[0]["address"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no MAC for {UNDERLAY} of {}", host.ns.name))
}
