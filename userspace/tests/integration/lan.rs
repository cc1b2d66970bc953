//! macvlan and ipvlan networks (issue #15): containers directly on a LAN. The LAN is a
//! namespace of the test's own (`<ns>-lan`) holding a Linux bridge `br0` with the address
//! 192.168.50.1 (the LAN's router and one of its hosts, where captures run); a host's parent
//! device is a veth (`lan0`, 192.168.50.254/24 on the host) whose other end is a port of that
//! bridge. A bridge forwards 802.1Q-tagged frames unchanged, as a switch's trunk port does.

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use serde_json::Value;
use xnet_dockerlab::skip;

use crate::common::{Host, eventually, sh, stdout};

/// Gives `host` a LAN behind the parent `lan0`; returns the LAN namespace's path.
fn with_lan(host: &mut Host) -> String {
    let path = host.foreign_netns("lan");
    let lan = format!("{}-lan", host.ns);
    for cmd in [
        "link add br0 type bridge",
        "addr add 192.168.50.1/24 dev br0",
        "link set br0 up",
    ] {
        let mut args = vec!["ip", "-n", lan.as_str()];
        args.extend(cmd.split(' '));
        sh(&args);
    }
    plug(host, &lan, "lan0", "port0");
    sh(&[
        "ip",
        "-n",
        &host.ns,
        "addr",
        "add",
        "192.168.50.254/24",
        "dev",
        "lan0",
    ]);
    path
}

/// Creates network `name` of `driver` on `host` with the rest of `args` (its subnet and
/// options).
fn create(host: &Host, driver: &str, name: &str, args: &[&str]) {
    let mut full = vec!["network", "create", "-d", driver];
    full.extend_from_slice(args);
    full.push(name);
    host.ok(&full);
}

/// Plugs `host` into the LAN namespace `lan` (its name): a veth `parent` in the host whose
/// other end `port` is a port of the LAN's bridge.
fn plug(host: &Host, lan: &str, parent: &str, port: &str) {
    sh(&[
        "ip", "-n", &host.ns, "link", "add", parent, "type", "veth", "peer", "name", port, "netns",
        lan,
    ]);
    sh(&["ip", "-n", lan, "link", "set", port, "master", "br0"]);
    sh(&["ip", "-n", lan, "link", "set", port, "up"]);
    sh(&["ip", "-n", &host.ns, "link", "set", parent, "up"]);
}

fn lan_name(host: &Host) -> String {
    format!("{}-lan", host.ns)
}

/// What the LAN's neighbour table says `ip` is at (its MAC), if anything.
fn lan_neighbour(host: &Host, lan: &str, ip: &str) -> Option<String> {
    let out = host.in_container(lan, &["ip", "neigh", "show", ip, "dev", "br0"]);
    stdout(&out)
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_owned)
}

fn mac_of(host: &Host, container: &str) -> String {
    let c = host.inspect(container);
    let nets = c["NetworkSettings"]["Networks"].as_object().unwrap();
    nets.values().next().unwrap()["MacAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

fn link_mac(host: &Host, link: &str) -> String {
    let out = host.in_host(&["ip", "-j", "link", "show", link]);
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["address"].as_str().unwrap().to_string()
}

/// How many times `link` of the host is promiscuous (`ip -d link`'s promiscuity).
fn promiscuity(host: &Host, link: &str) -> u32 {
    let out = host.in_host(&["ip", "-d", "-j", "link", "show", link]);
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["promiscuity"].as_u64().unwrap() as u32
}

/// The MACs in `link`'s unicast filter (its own fdb entries).
fn unicast_filter(host: &Host, link: &str) -> Vec<String> {
    let out = host.in_host(&["bridge", "fdb", "show", "dev", link]);
    stdout(&out)
        .lines()
        .filter(|l| l.contains("self permanent"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|mac| mac.starts_with("02:58"))
        .collect()
}

fn parent_pins(host: &Host) -> Vec<String> {
    Host::entries(&host.bpffs.join("links"))
        .into_iter()
        .filter(|name| name.starts_with("parent-"))
        .collect()
}

fn drops(host: &Host, reason: &str) -> u64 {
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    stats["drops"][reason].as_u64().unwrap()
}

/// A capture with link-level headers (`tcpdump -e`) on the LAN's bridge, until `finish`.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(host: &Host, lan: &str, filter: &str) -> Self {
        let file = host.dir.join("lan-capture.txt");
        let out = std::fs::File::create(&file).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={lan}"))
            .args(["tcpdump", "-e", "-n", "-l", "--immediate-mode", "-i", "br0"])
            .args(filter.split(' '))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // tcpdump needs a moment before it captures.
        thread::sleep(Duration::from_millis(700));
        Self { child, file }
    }

    fn finish(mut self) -> String {
        thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.file).unwrap()
    }
}

#[test]
fn macvlan_containers_are_on_the_lan_with_their_own_mac_and_address() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    // The subnet is the host's own LAN (lan0 has 192.168.50.254/24): a LAN network may have it.
    create(
        &host,
        "macvlan",
        "mv",
        &[
            "--subnet",
            "192.168.50.0/24",
            "--gateway",
            "192.168.50.1",
            "--aux-address",
            "printer=192.168.50.2",
            "-o",
            "parent=lan0",
        ],
    );
    let net: Value = serde_json::from_str(&host.ok(&["network", "inspect", "mv"])).unwrap();
    let net = &net[0];
    assert_eq!(net["Driver"], "macvlan");
    assert_eq!(
        net["IPAM"]["Config"][0]["AuxiliaryAddresses"]["printer"],
        "192.168.50.2"
    );
    // Announced on join: the LAN learns the container's MAC from its gratuitous ARP.
    sh(&[
        "ip",
        "netns",
        "exec",
        &lan_name(&host),
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.conf.br0.arp_accept=1",
    ]);
    host.run_sleeper("a", &["--network", "mv"]);
    host.run_sleeper("b", &["--network", "mv"]);
    let (a, b) = (host.ip_of("a"), host.ip_of("b"));
    // .1 is the gateway and .2 reserved.
    assert_eq!((a.as_str(), b.as_str()), ("192.168.50.3", "192.168.50.4"));
    let (mac_a, mac_b) = (mac_of(&host, "a"), mac_of(&host, "b"));
    assert!(
        eventually(Duration::from_secs(3), || lan_neighbour(&host, &lan, &b)
            .as_deref()
            == Some(mac_b.as_str())),
        "the LAN did not hear b's announcement"
    );
    let (sa, sb) = (host.sandbox("a"), host.sandbox("b"));
    // The LAN reaches each container at its own address, and knows it by its own MAC: no NAT.
    assert!(host.reaches(&lan, &a), "the LAN cannot reach a");
    assert_eq!(
        lan_neighbour(&host, &lan, &a).as_deref(),
        Some(mac_a.as_str())
    );
    assert!(
        host.reaches(&sa, "192.168.50.1"),
        "a cannot reach its router"
    );
    // Bridge mode: directly to each other.
    assert!(host.reaches(&sa, &b), "a cannot reach b");
    assert!(host.reaches(&sb, &a), "b cannot reach a");
    // Their MACs are in the parent's unicast filter; a veth has none, so it is promiscuous.
    let mut filter = unicast_filter(&host, "lan0");
    filter.sort();
    let mut expected = vec![mac_a.clone(), mac_b.clone()];
    expected.sort();
    assert_eq!(filter, expected);
    assert!(promiscuity(&host, "lan0") > 0);
    // As with Docker's macvlan, the host and its containers do not reach each other.
    assert!(host.cannot_reach(&sa, "192.168.50.254"));
    assert!(host.cannot_reach(&host.host_netns(), &a));
    // A container leaving takes its MAC out of the filter.
    host.ok(&["rm", "-f", "b"]);
    assert_eq!(unicast_filter(&host, "lan0"), vec![mac_a]);
    // Published ports have no place here.
    let err = host.fails(&[
        "run",
        "--name",
        "c",
        "--network",
        "mv",
        "-p",
        "80:80",
        "-d",
        "--",
        "sleep",
        "1",
    ]);
    assert!(
        err.contains("published ports are not supported on macvlan network mv"),
        "{err}"
    );
    // Removing the network leaves the parent as it was: no filter entries, no program, not
    // promiscuous.
    host.ok(&["rm", "-f", "a"]);
    host.ok(&["network", "rm", "mv"]);
    assert!(unicast_filter(&host, "lan0").is_empty());
    assert_eq!(promiscuity(&host, "lan0"), 0);
    assert!(parent_pins(&host).is_empty(), "{:?}", parent_pins(&host));
}

#[test]
fn host_access_lets_host_and_containers_reach_each_other() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    for (driver, name) in [("macvlan", "mv"), ("ipvlan", "iv")] {
        create(
            &host,
            driver,
            name,
            &[
                "--subnet",
                "192.168.50.0/24",
                "--gateway",
                "192.168.50.1",
                "-o",
                "parent=lan0",
                "-o",
                "xnet.host_access=true",
            ],
        );
        host.run_sleeper("a", &["--network", name]);
        let (a, sa) = (host.ip_of("a"), host.sandbox("a"));
        assert!(
            host.reaches(&sa, "192.168.50.254"),
            "{driver}: a cannot reach the host"
        );
        assert!(
            host.reaches(&host.host_netns(), &a),
            "{driver}: the host cannot reach a"
        );
        assert!(host.reaches(&lan, &a), "{driver}: the LAN cannot reach a");
        host.ok(&["rm", "-f", "a"]);
        host.ok(&["network", "rm", name]);
    }
}

#[test]
fn macvlan_modes_decide_what_containers_of_one_parent_say_to_each_other() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    let create_mode = |mode: &str| {
        create(
            &host,
            "macvlan",
            "mv",
            &[
                "--subnet",
                "192.168.50.0/24",
                "-o",
                "parent=lan0",
                "-o",
                &format!("macvlan_mode={mode}"),
            ],
        );
    };
    // private: never to each other; the LAN still reaches both.
    create_mode("private");
    host.run_sleeper("a", &["--network", "mv"]);
    host.run_sleeper("b", &["--network", "mv"]);
    let (sa, b) = (host.sandbox("a"), host.ip_of("b"));
    assert!(host.reaches(&lan, &b));
    assert!(host.reaches(&lan, &host.ip_of("a")));
    // Their ARP never reaches each other, as with the kernel's macvlan; and a container that
    // knows its sibling's MAC anyway is stopped by the datapath.
    assert!(host.cannot_reach(&sa, &b), "private containers met");
    let mac_b = mac_of(&host, "b");
    sh(&[
        "nsenter",
        &format!("--net={sa}"),
        "ip",
        "neigh",
        "replace",
        &b,
        "lladdr",
        &mac_b,
        "dev",
        "eth0",
    ]);
    let before = drops(&host, "lan-private");
    assert!(host.cannot_reach(&sa, &b), "private containers met");
    assert!(drops(&host, "lan-private") > before);
    host.ok(&["rm", "-f", "a", "b"]);
    host.ok(&["network", "rm", "mv"]);
    // vepa: through the LAN's switch, which must send the frames back out of the port they
    // came in on (hairpin).
    create_mode("vepa");
    host.run_sleeper("a", &["--network", "mv"]);
    host.run_sleeper("b", &["--network", "mv"]);
    let (sa, b) = (host.sandbox("a"), host.ip_of("b"));
    assert!(
        host.cannot_reach(&sa, &b),
        "vepa containers met without a hairpin"
    );
    sh(&[
        "ip",
        "netns",
        "exec",
        &lan_name(&host),
        "bridge",
        "link",
        "set",
        "dev",
        "port0",
        "hairpin",
        "on",
    ]);
    assert!(
        host.reaches(&sa, &b),
        "vepa containers did not meet through the hairpin"
    );
    host.ok(&["rm", "-f", "a", "b"]);
    host.ok(&["network", "rm", "mv"]);
    // passthru: one container per parent.
    create_mode("passthru");
    host.run_sleeper("a", &["--network", "mv"]);
    let err = host.fails(&[
        "run",
        "--name",
        "b",
        "--network",
        "mv",
        "-d",
        "--",
        "sleep",
        "1",
    ]);
    assert!(err.contains("passthru"), "{err}");
    assert!(host.reaches(&lan, &host.ip_of("a")));
}

#[test]
fn ipvlan_containers_share_the_parents_mac() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    create(
        &host,
        "ipvlan",
        "iv",
        &["--subnet", "192.168.50.0/24", "-o", "parent=lan0"],
    );
    host.run_sleeper("a", &["--network", "iv"]);
    host.run_sleeper("b", &["--network", "iv"]);
    let (a, b) = (host.ip_of("a"), host.ip_of("b"));
    let parent_mac = link_mac(&host, "lan0");
    assert_eq!(mac_of(&host, "a"), parent_mac);
    assert!(host.reaches(&lan, &a), "the LAN cannot reach a");
    assert!(host.reaches(&lan, &b), "the LAN cannot reach b");
    // The LAN knows both addresses at the parent's MAC.
    assert_eq!(lan_neighbour(&host, &lan, &a), Some(parent_mac.clone()));
    assert_eq!(lan_neighbour(&host, &lan, &b), Some(parent_mac));
    assert!(host.reaches(&host.sandbox("a"), &b), "a cannot reach b");
    assert!(host.reaches(&host.sandbox("b"), "192.168.50.1"));
    // No filter entries: the parent's own MAC is every container's.
    assert!(unicast_filter(&host, "lan0").is_empty());
    // ipvlan_flag=private on another parent's network is refused here: one l2 network per
    // parent.
    let err = host.fails(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "192.168.51.0/24",
        "-o",
        "parent=lan0",
        "iv2",
    ]);
    assert!(err.contains("already using parent interface lan0"), "{err}");
}

#[test]
fn ipvlan_l3_routes_between_subnets_and_from_the_lan() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    for (name, subnet) in [("l3a", "10.60.0.0/24"), ("l3b", "10.61.0.0/24")] {
        create(
            &host,
            "ipvlan",
            name,
            &[
                "--subnet",
                subnet,
                "-o",
                "parent=lan0",
                "-o",
                "ipvlan_mode=l3",
            ],
        );
        // The LAN routes the container subnets to the host, as it must for l3.
        sh(&[
            "ip",
            "-n",
            &lan_name(&host),
            "route",
            "add",
            subnet,
            "via",
            "192.168.50.254",
        ]);
    }
    host.run_sleeper("a", &["--network", "l3a"]);
    host.run_sleeper("b", &["--network", "l3b"]);
    let (a, b) = (host.ip_of("a"), host.ip_of("b"));
    let sa = host.sandbox("a");
    // No ARP, and every destination through the one link.
    let link = stdout(&host.in_container(&sa, &["ip", "link", "show", "eth0"]));
    assert!(link.contains("NOARP"), "{link}");
    let routes = stdout(&host.in_container(&sa, &["ip", "route"]));
    assert!(routes.contains("default dev eth0"), "{routes}");
    assert!(
        host.reaches(&sa, &b),
        "l3 subnets on one parent do not route to each other"
    );
    assert!(host.reaches(&sa, "192.168.50.1"), "a cannot reach the LAN");
    assert!(host.reaches(&lan, &a), "the LAN cannot reach a");
    assert!(host.reaches(&lan, &b), "the LAN cannot reach b");
    // No broadcast from an l3 container.
    let before = drops(&host, "l3-group");
    let _ = host.in_container(
        &sa,
        &["ping", "-b", "-c", "1", "-W", "1", "255.255.255.255"],
    );
    assert!(drops(&host, "l3-group") > before);
}

#[test]
fn a_vlan_parent_tags_its_frames_and_hears_only_its_vlan() {
    if skip::unless_root() {
        return;
    }
    let mut h1 = Host::start();
    let lan = with_lan(&mut h1);
    let h2 = Host::start();
    let h3 = Host::start();
    plug(&h2, &lan_name(&h1), "upl", "port-h2");
    plug(&h3, &lan_name(&h1), "upl", "port-h3");
    sh(&[
        "ip",
        "-n",
        &h1.ns,
        "link",
        "add",
        "upl",
        "type",
        "veth",
        "peer",
        "name",
        "port-h1",
        "netns",
        &lan_name(&h1),
    ]);
    sh(&[
        "ip",
        "-n",
        &lan_name(&h1),
        "link",
        "set",
        "port-h1",
        "master",
        "br0",
    ]);
    sh(&["ip", "-n", &lan_name(&h1), "link", "set", "port-h1", "up"]);
    sh(&["ip", "-n", &h1.ns, "link", "set", "upl", "up"]);
    let net = |host: &Host, parent: &str| {
        create(
            host,
            "macvlan",
            "v",
            &[
                "--subnet",
                "192.168.50.0/24",
                "-o",
                &format!("parent={parent}"),
            ],
        );
    };
    net(&h1, "upl.50");
    net(&h2, "upl.50");
    net(&h3, "upl.60");
    h1.run_sleeper("c1", &["--network", "v", "--ip", "192.168.50.11"]);
    h2.run_sleeper("c2", &["--network", "v", "--ip", "192.168.50.12"]);
    h3.run_sleeper("c3", &["--network", "v", "--ip", "192.168.50.13"]);
    let capture = Capture::start(&h1, &lan, "vlan and icmp");
    assert!(
        h1.reaches(&h1.sandbox("c1"), "192.168.50.12"),
        "VLAN 50 across two hosts failed"
    );
    let seen = capture.finish();
    assert!(
        seen.contains("vlan 50"),
        "no 802.1Q VID 50 on the LAN:\n{seen}"
    );
    // Other VLANs and the untagged LAN never reach VLAN 50's containers.
    assert!(h3.cannot_reach(&h3.sandbox("c3"), "192.168.50.11"));
    assert!(h1.cannot_reach(&lan, "192.168.50.11"));
    // Nor the reverse.
    assert!(h1.cannot_reach(&h1.sandbox("c1"), "192.168.50.13"));
}

#[test]
fn lan_networks_refuse_what_docker_refuses() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    with_lan(&mut host);
    plug(&host, &lan_name(&host), "lan1", "port1");
    let refused = |args: &[&str]| {
        let mut full = vec!["network", "create"];
        full.extend_from_slice(args);
        host.fails(&full)
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["-d", "macvlan", "-o", "parent=lan0", "x"],
            "needs --subnet",
        ),
        (
            &[
                "-d",
                "macvlan",
                "--subnet",
                "192.168.60.0/24",
                "-o",
                "parent=lo",
                "x",
            ],
            "loopback",
        ),
        (
            &[
                "-d",
                "macvlan",
                "--subnet",
                "192.168.60.0/24",
                "-o",
                "parent=nope0",
                "x",
            ],
            "nope0",
        ),
        (
            &[
                "-d",
                "macvlan",
                "--subnet",
                "192.168.60.0/24",
                "-o",
                "parent=lan0.4095",
                "x",
            ],
            "VLAN id",
        ),
        (
            &[
                "-d",
                "macvlan",
                "--subnet",
                "192.168.60.0/24",
                "-o",
                "macvlan_mode=l3",
                "x",
            ],
            "macvlan_mode",
        ),
        (
            &[
                "-d",
                "ipvlan",
                "--subnet",
                "192.168.60.0/24",
                "-o",
                "ipvlan_mode=l4",
                "x",
            ],
            "ipvlan_mode",
        ),
        (
            &[
                "-d",
                "ipvlan",
                "--subnet",
                "192.168.60.0/24",
                "-o",
                "macvlan_mode=bridge",
                "x",
            ],
            "unsupported network option",
        ),
    ];
    for (args, expected) in cases {
        let err = refused(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    create(
        &host,
        "macvlan",
        "m",
        &["--subnet", "192.168.60.0/24", "-o", "parent=lan0"],
    );
    let err = refused(&[
        "-d",
        "ipvlan",
        "--ipv6",
        "--subnet",
        "192.168.61.0/24",
        "-o",
        "parent=lan1",
        "y",
    ]);
    assert!(err.contains("IPv4 only"), "{err}");
    // The parent is in use, whatever the other network's driver or mode.
    for args in [
        &[
            "-d",
            "ipvlan",
            "--subnet",
            "192.168.61.0/24",
            "-o",
            "parent=lan0",
            "y",
        ][..],
        &[
            "-d",
            "macvlan",
            "--subnet",
            "192.168.61.0/24",
            "-o",
            "parent=lan0",
            "-o",
            "macvlan_mode=private",
            "y",
        ],
    ] {
        let err = refused(args);
        assert!(
            err.contains("already using parent interface lan0"),
            "{args:?}: {err}"
        );
    }
    // An overlapping subnet on another parent.
    let err = refused(&[
        "-d",
        "macvlan",
        "--subnet",
        "192.168.60.128/25",
        "-o",
        "parent=lan1",
        "y",
    ]);
    assert!(err.contains("overlaps"), "{err}");
    // Another VLAN of the same device is another parent.
    create(
        &host,
        "macvlan",
        "v62",
        &["--subnet", "192.168.62.0/24", "-o", "parent=lan0.62"],
    );
    // Nothing half-made: only the two networks besides the pre-defined ones.
    let listed = host.ok(&["network", "ls", "--format", "json"]);
    let mut names: Vec<String> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["Name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["bridge", "host", "m", "none", "v62"]);
}

#[test]
fn a_killed_daemon_leaves_lan_containers_reachable_and_a_restart_cleans_up() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    create(
        &host,
        "macvlan",
        "mv",
        &["--subnet", "192.168.50.0/24", "-o", "parent=lan0"],
    );
    host.run_sleeper("a", &["--network", "mv"]);
    let a = host.ip_of("a");
    assert!(host.reaches(&lan, &a));
    host.kill_daemon();
    // The datapath keeps forwarding while xnetd is gone.
    assert!(
        host.reaches(&lan, &a),
        "the LAN lost a while xnetd was down"
    );
    // A filter entry of xnet's scheme nothing owns (as a request that died with xnetd would
    // leave), and one of another program's (Docker's macvlan devices use 02:42:…), which is
    // not xnet's to remove.
    for mac in ["02:58:c0:a8:32:63", "02:42:c0:a8:32:64"] {
        sh(&[
            "ip",
            "netns",
            "exec",
            &host.ns,
            "bridge",
            "fdb",
            "add",
            mac,
            "dev",
            "lan0",
            "self",
            "permanent",
        ]);
    }
    host.start_daemon();
    assert!(host.reaches(&lan, &a), "the LAN lost a after the restart");
    assert_eq!(unicast_filter(&host, "lan0"), vec![mac_of(&host, "a")]);
    let all = stdout(&host.in_host(&["bridge", "fdb", "show", "dev", "lan0"]));
    assert!(
        all.contains("02:42:c0:a8:32:64"),
        "another program's entry went:\n{all}"
    );
    sh(&[
        "ip",
        "netns",
        "exec",
        &host.ns,
        "bridge",
        "fdb",
        "del",
        "02:42:c0:a8:32:64",
        "dev",
        "lan0",
        "self",
    ]);
    host.ok(&["rm", "-f", "a"]);
    host.ok(&["network", "rm", "mv"]);
    assert!(unicast_filter(&host, "lan0").is_empty());
    assert_eq!(promiscuity(&host, "lan0"), 0);
    assert!(parent_pins(&host).is_empty());
    assert!(host.cannot_reach(&lan, &a));
}

#[test]
fn macvlan_networks_are_dual_stack_with_ipv6() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    sh(&[
        "ip",
        "-n",
        &lan_name(&host),
        "addr",
        "add",
        "fd00:50::1/64",
        "dev",
        "br0",
        "nodad",
    ]);
    create(
        &host,
        "macvlan",
        "mv6",
        &[
            "--ipv6",
            "--subnet",
            "192.168.50.0/24",
            "--subnet",
            "fd00:50::/64",
            "--gateway",
            "fd00:50::1",
            "-o",
            "parent=lan0",
        ],
    );
    host.run_sleeper("a", &["--network", "mv6"]);
    host.run_sleeper("b", &["--network", "mv6"]);
    let ip6 = |name: &str| {
        let c = host.inspect(name);
        c["NetworkSettings"]["Networks"]["mv6"]["GlobalIPv6Address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a6, b6) = (ip6("a"), ip6("b"));
    let sa = host.sandbox("a");
    assert!(host.reaches(&lan, &a6), "the LAN cannot reach a over IPv6");
    assert!(
        host.reaches(&sa, "fd00:50::1"),
        "a cannot reach the LAN's router over IPv6"
    );
    assert!(host.reaches(&sa, &b6), "a cannot reach b over IPv6");
    // An advertisement for the router's address (poisoning the LAN's caches) is dropped.
    let before = drops(&host, "malformed-nd");
    let spoof = "import socket\n\
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\n\
        na = bytes([136, 0, 0, 0, 0x20, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, 'fd00:50::1')\n\
        s.sendto(na, ('ff02::1', 0, 0, socket.if_nametoindex('eth0')))\n";
    let out = host.in_container(&sa, &["python3", "-c", spoof]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        eventually(Duration::from_secs(2), || drops(&host, "malformed-nd")
            > before),
        "a spoofed neighbour advertisement was not dropped"
    );
}

#[test]
fn a_container_cannot_tag_its_own_frames_onto_another_vlan() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    let lan = with_lan(&mut host);
    create(
        &host,
        "macvlan",
        "mv",
        &["--subnet", "192.168.50.0/24", "-o", "parent=lan0"],
    );
    host.run_sleeper("a", &["--network", "mv"]);
    let mac = mac_of(&host, "a").replace(':', "");
    let ip: String = host
        .ip_of("a")
        .split('.')
        .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
        .collect();
    // A gratuitous ARP (well-formed: untagged, the datapath would send it out) tagged with VID
    // 60, written by the container itself: the kernel takes the tag into the skb before the
    // datapath runs.
    let arp = format!("00010800060400 01{mac}{ip}000000000000{ip}").replace(' ', "");
    let tagged = format!(
        "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('eth0', 0))\n\
         s.send(bytes.fromhex('ffffffffffff{mac}8100003c0806{arp}'))\n"
    );
    let capture = Capture::start(&host, &lan, "vlan");
    let before = drops(&host, "unsupported-ethertype");
    let out = host.in_container(&host.sandbox("a"), &["python3", "-c", &tagged]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        eventually(Duration::from_secs(2), || drops(
            &host,
            "unsupported-ethertype"
        ) > before),
        "the tagged frame was not dropped"
    );
    let seen = capture.finish();
    assert!(
        !seen.contains("vlan 60"),
        "the container's own tag reached the LAN:\n{seen}"
    );
}

#[test]
fn a_parent_that_is_also_the_uplink_serves_its_lan_and_the_nat() {
    if skip::unless_root() {
        return;
    }
    // The uplink's LAN is 10.200.0.0/24, the outside at 10.200.0.2 (see `Host::with_uplink`).
    let host = Host::with_uplink();
    create(
        &host,
        "macvlan",
        "mv",
        &[
            "--subnet",
            "10.200.0.0/24",
            "--gateway",
            "10.200.0.2",
            "-o",
            "parent=uplink0",
        ],
    );
    host.run_sleeper("a", &["--network", "mv", "--ip", "10.200.0.50"]);
    host.run_sleeper("b", &[]);
    let outside = host.outside();
    assert!(
        host.reaches(&outside, "10.200.0.50"),
        "the LAN cannot reach a"
    );
    assert!(host.reaches(&host.sandbox("a"), "10.200.0.2"));
    // The uplink's own programs still see the rest: a bridge container's NAT replies.
    assert!(host.reaches(&host.sandbox("b"), "10.200.0.2"), "NAT broke");
}
