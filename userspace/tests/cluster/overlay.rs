//! Containers on overlay networks across simulated hosts: real traffic (ping, TCP, UDP, IPv6)
//! through the datapath's VXLAN, isolation, crafted VXLAN from the underlay dropped by reason,
//! the MTU, and traffic that keeps flowing while a host's xnetd restarts or the store is down.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, UdpSocket},
    path::PathBuf,
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use serde_json::Value;
use xnet::os::netns;
use xnet_dockerlab::skip;
use xnet_lab::{Lab, eventually};

use crate::{fails, inspect, lab, ok};

/// The container's first address of `family` ("IPAddress" or "GlobalIPv6Address").
pub(crate) fn address(lab: &Lab, host: &str, container: &str, family: &str) -> String {
    let all: Value = serde_json::from_str(&ok(lab, host, &["inspect", container])).unwrap();
    let nets = all[0]["NetworkSettings"]["Networks"].as_object().unwrap();
    nets.values().next().unwrap()[family]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) fn run_sleeper(lab: &Lab, host: &str, name: &str, network: &str) {
    ok(
        lab,
        host,
        &[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--",
            "sleep",
            "600",
        ],
    );
}

/// Whether `cmd` succeeds inside container `name` of `host`.
pub(crate) fn in_container(lab: &Lab, host: &str, name: &str, cmd: &[&str]) -> bool {
    let args = [&["exec", name, "--"], cmd].concat();
    lab.xnet(host, &args).unwrap().status.success()
}

/// Whether `ip` answers a ping from container `name` of `host`, within a few seconds (the
/// other host learns of a new endpoint through its watch).
pub(crate) fn reaches(lab: &Lab, host: &str, name: &str, ip: &str) -> bool {
    eventually(Duration::from_secs(10), || {
        in_container(lab, host, name, &["ping", "-c", "1", "-W", "1", ip])
    })
}

pub(crate) fn cannot_reach(lab: &Lab, host: &str, name: &str, ip: &str) -> bool {
    !in_container(
        lab,
        host,
        name,
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", ip],
    )
}

/// A drop counter of `host`'s datapath.
pub(crate) fn drops(lab: &Lab, host: &str, reason: &str) -> u64 {
    let stats: Value =
        serde_json::from_str(&ok(lab, host, &["stats", "--format", "json"])).unwrap();
    stats["drops"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop reason {reason}"))
}

/// Starts `cmd` inside container `name` of `host` in the background.
pub(crate) fn spawn_in(lab: &Lab, host: &str, name: &str, cmd: &[&str]) -> Child {
    let xnet = std::path::Path::new(crate::XNETD).with_file_name("xnet");
    lab.command(host, xnet)
        .unwrap()
        .args([&["exec", name, "--"], cmd].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// iperf3 from container `client` of `from` to a one-shot server in `server` of `to` at `ip`
/// (TCP, or UDP with `-u`), retrying while the server starts.
pub(crate) fn iperf(
    lab: &Lab,
    (from, client): (&str, &str),
    (to, server): (&str, &str),
    ip: &str,
    udp: bool,
) {
    let mut child = spawn_in(lab, to, server, &["iperf3", "-s", "-1"]);
    let mut args = vec!["iperf3", "-c", ip, "-t", "1"];
    if udp {
        args.extend(["-u", "-b", "10M"]);
    }
    let worked = eventually(Duration::from_secs(10), || {
        in_container(lab, from, client, &args)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(worked, "iperf3 {args:?} from {from} to {to} failed");
}

/// A lab of two hosts and one etcd member with the attachable overlay `ov`, made on h1.
fn overlay_lab() -> Lab {
    let lab = lab(2, 1);
    ok(
        &lab,
        "h1",
        &["network", "create", "-d", "overlay", "--attachable", "ov"],
    );
    lab
}

/// An overlay lab with container `a` on h1 and `b` on h2, which reach each other; and b's
/// address.
fn pair_across_hosts() -> (Lab, String) {
    let lab = overlay_lab();
    run_sleeper(&lab, "h1", "a", "ov");
    run_sleeper(&lab, "h2", "b", "ov");
    let b4 = address(&lab, "h2", "b", "IPAddress");
    assert!(reaches(&lab, "h1", "a", &b4));
    (lab, b4)
}

#[test]
fn containers_on_two_hosts_talk_over_the_overlay_and_nothing_else_does() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(2, 1);
    ok(
        &lab,
        "h1",
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--ipv6",
            "ov",
        ],
    );
    ok(
        &lab,
        "h1",
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "other",
        ],
    );
    ok(&lab, "h2", &["network", "create", "br"]);
    run_sleeper(&lab, "h1", "a", "ov");
    run_sleeper(&lab, "h2", "b", "ov");
    run_sleeper(&lab, "h2", "c", "other");
    run_sleeper(&lab, "h2", "d", "br");
    let b4 = address(&lab, "h2", "b", "IPAddress");
    let b6 = address(&lab, "h2", "b", "GlobalIPv6Address");
    let a4 = address(&lab, "h1", "a", "IPAddress");
    assert_ne!(a4, b4, "one address handed out on two hosts");

    assert!(reaches(&lab, "h1", "a", &b4), "a (h1) cannot ping b (h2)");
    assert!(reaches(&lab, "h2", "b", &a4), "b (h2) cannot ping a (h1)");
    assert!(
        reaches(&lab, "h1", "a", &b6),
        "a (h1) cannot ping b (h2) over IPv6"
    );
    iperf(&lab, ("h1", "a"), ("h2", "b"), &b4, false);
    iperf(&lab, ("h1", "a"), ("h2", "b"), &b4, true);

    // The MTU leaves room for VXLAN: 1450 on the lab's 1500-byte underlay; a 1400-byte
    // packet that must not be fragmented crosses, a 1500-byte one does not.
    let link = lab
        .xnet(
            "h1",
            &["exec", "a", "--", "ip", "-o", "link", "show", "eth0"],
        )
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("mtu 1450"), "{link}");
    assert!(in_container(
        &lab,
        "h1",
        "a",
        &["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1372", &b4]
    ));
    assert!(!in_container(
        &lab,
        "h1",
        "a",
        &["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", &b4]
    ));

    // Another overlay's container and a bridge network's are out of reach, from both sides.
    let c4 = address(&lab, "h2", "c", "IPAddress");
    let d4 = address(&lab, "h2", "d", "IPAddress");
    assert!(cannot_reach(&lab, "h1", "a", &c4));
    assert!(cannot_reach(&lab, "h1", "a", &d4));
    assert!(cannot_reach(&lab, "h2", "d", &a4));
    assert!(cannot_reach(&lab, "h2", "c", &a4));

    // Both hosts are peers of the overlay, seen from either.
    for host in ["h1", "h2"] {
        let net = inspect(&lab, host, "ov").unwrap();
        let mut peers: Vec<&str> = net["Peers"]
            .as_array()
            .unwrap_or_else(|| panic!("{host}: no Peers in {net}"))
            .iter()
            .map(|p| p["Name"].as_str().unwrap())
            .collect();
        peers.sort();
        assert_eq!(peers, ["h1", "h2"], "{host}");
    }

    // Removing b on h2 removes it from h1's datapath.
    ok(&lab, "h2", &["rm", "-f", "b"]);
    assert!(eventually(Duration::from_secs(5), || cannot_reach(
        &lab, "h1", "a", &b4
    )));
}

#[test]
fn a_non_attachable_overlay_refuses_standalone_containers_with_dockers_words() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(2, 1);
    ok(
        &lab,
        "h1",
        &["network", "create", "-d", "overlay", "swarmonly"],
    );
    assert!(eventually(Duration::from_secs(5), || inspect(
        &lab,
        "h2",
        "swarmonly"
    )
    .is_some()));
    for host in ["h1", "h2"] {
        let line = fails(
            &lab,
            host,
            &[
                "run",
                "-d",
                "--name",
                "x",
                "--network",
                "swarmonly",
                "--",
                "sleep",
                "1",
            ],
        );
        assert!(
            line.contains("network swarmonly not manually attachable"),
            "{line}"
        );
    }
    run_sleeper(&lab, "h1", "y", "bridge");
    let line = fails(&lab, "h1", &["network", "connect", "swarmonly", "y"]);
    assert!(
        line.contains("network swarmonly not manually attachable"),
        "{line}"
    );
}

/// A VXLAN datagram (flags with the I bit, `vni`) carrying an Ethernet frame with an IPv4
/// ICMP echo request from `src` (`src_mac`) to `dst`.
pub(crate) fn vxlan_frame(vni: u32, src_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0x08, 0, 0, 0];
    frame.extend_from_slice(&vni.to_be_bytes()[1..]);
    frame.push(0);
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1];
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&icmp);
    frame
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends `payload` over UDP from the namespace of `node` to `to`:4789.
pub(crate) fn send_from(lab: &Lab, node: &str, to: Ipv4Addr, payload: Vec<u8>) {
    send_to_port(lab, node, (to, 4789), payload);
}

/// Sends `payload` three times in UDP from `node`'s namespace (its own address, a free port)
/// to `to`.
pub(crate) fn send_to_port(lab: &Lab, node: &str, to: (Ipv4Addr, u16), payload: Vec<u8>) {
    let path = lab.netns_of(node).unwrap();
    std::thread::spawn(move || {
        netns::enter(&path).unwrap();
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..3 {
            socket.send_to(&payload, to).unwrap();
        }
    })
    .join()
    .unwrap();
}

#[test]
fn crafted_vxlan_from_the_underlay_is_dropped_and_counted_by_reason() {
    if skip::unless_root() {
        return;
    }
    let lab = overlay_lab();
    ok(
        &lab,
        "h1",
        &["network", "create", "-d", "overlay", "--attachable", "ov2"],
    );
    run_sleeper(&lab, "h1", "a", "ov");
    run_sleeper(&lab, "h2", "b", "ov");
    run_sleeper(&lab, "h2", "c", "ov2");
    let a4: Ipv4Addr = address(&lab, "h1", "a", "IPAddress").parse().unwrap();
    let b4: Ipv4Addr = address(&lab, "h2", "b", "IPAddress").parse().unwrap();
    let c4: Ipv4Addr = address(&lab, "h2", "c", "IPAddress").parse().unwrap();
    assert!(reaches(&lab, "h1", "a", &b4.to_string()));
    let a_mac: Value = serde_json::from_str(&ok(&lab, "h1", &["inspect", "a"])).unwrap();
    let a_mac: Vec<u8> = a_mac[0]["NetworkSettings"]["Networks"]["ov"]["MacAddress"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let a_mac: [u8; 6] = a_mac.try_into().unwrap();
    let vni = |name: &str| -> u32 {
        inspect(&lab, "h1", name).unwrap()["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (ov, ov2) = (vni("ov"), vni("ov2"));
    let h2 = lab.host("h2").unwrap().address;

    // Each case is sent from the node named, and must grow its reason's counter on h2.
    let cases: [(&str, &str, Vec<u8>); 5] = [
        // Not a host of the cluster (an etcd member's namespace sits on the underlay too).
        ("e1", "unknown-vtep", vxlan_frame(ov, a_mac, a4, b4)),
        ("h1", "unknown-vni", vxlan_frame(0xabcde, a_mac, a4, b4)),
        // h1 claims an address that is not one of its endpoints (b's own, on h2).
        ("h1", "spoofed-inner-source", vxlan_frame(ov, a_mac, b4, b4)),
        // a's address with another MAC.
        (
            "h1",
            "spoofed-inner-source",
            vxlan_frame(ov, [0x02, 9, 9, 9, 9, 9], a4, b4),
        ),
        // ov's VNI toward a container of ov2: isolation between overlays.
        (
            "h1",
            "unknown-inner-destination",
            vxlan_frame(ov, a_mac, a4, c4),
        ),
    ];
    for (node, reason, frame) in cases {
        let before = drops(&lab, "h2", reason);
        send_from(&lab, node, h2, frame);
        assert!(
            eventually(Duration::from_secs(3), || drops(&lab, "h2", reason)
                > before),
            "{reason} from {node} was not counted"
        );
    }
    let mut bad_flags = vxlan_frame(ov, a_mac, a4, b4);
    bad_flags[0] = 0;
    let before = drops(&lab, "h2", "malformed-vxlan");
    send_from(&lab, "h1", h2, bad_flags);
    assert!(eventually(Duration::from_secs(3), || drops(
        &lab,
        "h2",
        "malformed-vxlan"
    ) > before));
    // ov2's VNI but ov's source: isolation holds for the inner source too.
    let before = drops(&lab, "h2", "spoofed-inner-source");
    send_from(&lab, "h1", h2, vxlan_frame(ov2, a_mac, a4, c4));
    assert!(eventually(Duration::from_secs(3), || drops(
        &lab,
        "h2",
        "spoofed-inner-source"
    ) > before));
}

/// Starts `count` pings from container `name` of `host` to `ip`, every 50 ms.
fn spawn_pings(lab: &Lab, host: &str, name: &str, ip: &str, count: u32) -> Child {
    let xnet = std::path::Path::new(crate::XNETD).with_file_name("xnet");
    let count = count.to_string();
    lab.command(host, xnet)
        .unwrap()
        .args([
            "exec", name, "--", "ping", "-i", "0.05", "-W", "1", "-c", &count, ip,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The pings a finished [`spawn_pings`] sent and got answers to.
pub(crate) fn ping_counts(child: Child) -> (u32, u32) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in {text}"));
    let numbers: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn traffic_between_hosts_keeps_flowing_across_an_xnetd_restart_and_a_store_outage() {
    if skip::unless_root() {
        return;
    }
    let (mut lab, b4) = pair_across_hosts();

    // h2's xnetd stops and starts again while a pings b every 50 ms: not one lost.
    let pings = spawn_pings(&lab, "h1", "a", &b4, 80);
    std::thread::sleep(Duration::from_millis(500));
    lab.stop_xnetd("h2").unwrap();
    lab.start_xnetd("h2").unwrap();
    let (sent, received) = ping_counts(pings);
    assert_eq!(received, sent, "pings lost across h2's restart");

    // The store goes away: what exists keeps flowing, overlay changes are refused in one
    // line, bridge networks work.
    lab.stop_etcd("e1").unwrap();
    let pings = spawn_pings(&lab, "h1", "a", &b4, 60);
    let line = fails(
        &lab,
        "h1",
        &[
            "run",
            "-d",
            "--name",
            "late",
            "--network",
            "ov",
            "--",
            "sleep",
            "600",
        ],
    );
    assert!(line.contains("does not answer"), "{line}");
    run_sleeper(&lab, "h1", "local", "bridge");
    let (sent, received) = ping_counts(pings);
    assert_eq!(received, sent, "pings lost while the store was down");

    // It comes back: both hosts join again and new endpoints reach the old ones.
    lab.start_etcd("e1").unwrap();
    assert!(eventually(Duration::from_secs(20), || {
        lab.xnet(
            "h1",
            &[
                "run",
                "-d",
                "--name",
                "late",
                "--network",
                "ov",
                "--",
                "sleep",
                "600",
            ],
        )
        .unwrap()
        .status
        .success()
    }));
    assert!(reaches(
        &lab,
        "h2",
        "b",
        &address(&lab, "h1", "late", "IPAddress")
    ));
}

#[test]
fn a_dead_hosts_endpoints_leave_every_host_within_the_lease_ttl_and_free_their_addresses() {
    if skip::unless_root() {
        return;
    }
    let (mut lab, b4) = pair_across_hosts();
    let peers = |lab: &Lab| -> Vec<String> {
        inspect(lab, "h1", "ov").unwrap()["Peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(peers(&lab).contains(&"h2".to_string()));

    lab.kill_xnetd("h2").unwrap();
    let died = std::time::Instant::now();
    // Its address stays taken while its lease lives.
    let line = fails(
        &lab,
        "h1",
        &[
            "run",
            "-d",
            "--name",
            "taker",
            "--ip",
            &b4,
            "--network",
            "ov",
            "--",
            "sleep",
            "600",
        ],
    );
    assert!(line.contains("already in use"), "{line}");
    let ttl = Duration::from_secs(xnet::cluster::store::LEASE_TTL_SECONDS as u64);
    assert!(
        eventually(ttl + Duration::from_secs(5), || !peers(&lab)
            .contains(&"h2".to_string())),
        "h1 still lists h2 as a peer {:?} after its death",
        died.elapsed()
    );
    assert!(cannot_reach(&lab, "h1", "a", &b4));
    ok(
        &lab,
        "h1",
        &[
            "run",
            "-d",
            "--name",
            "taker",
            "--ip",
            &b4,
            "--network",
            "ov",
            "--",
            "sleep",
            "600",
        ],
    );
}

#[test]
fn an_overlay_container_goes_out_and_publishes_ports_through_its_own_host() {
    if skip::unless_root() {
        return;
    }
    let lab = overlay_lab();
    // Egress: NATed to h1's uplink address by h1's datapath, as on a bridge network
    // (Docker's docker_gwbridge); the router beyond the underlay stands for the outside.
    run_sleeper(&lab, "h1", "a", "ov");
    let outside = lab.router().outside.to_string();
    assert!(
        eventually(Duration::from_secs(5), || in_container(
            &lab,
            "h1",
            "a",
            &["ping", "-c", "1", "-W", "1", &outside]
        )),
        "a (h1, overlay) cannot reach the outside"
    );

    // A published port is h1's: a client outside (beyond the router, whose frames carry full
    // checksums as a wire's do) reaches the container through h1's address; h2 does not
    // publish it.
    ok(
        &lab,
        "h1",
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "ov",
            "-p",
            "18080:80",
            "--",
            "iperf3",
            "-s",
            "-p",
            "80",
        ],
    );
    let client = |to: &str| {
        lab.run(
            xnet_lab::ROUTER,
            &["timeout", "5", "iperf3", "-c", to, "-p", "18080", "-t", "1"],
        )
        .unwrap()
        .status
        .success()
    };
    let h1 = lab.hosts()[0].address.to_string();
    let h2 = lab.hosts()[1].address.to_string();
    assert!(
        eventually(Duration::from_secs(10), || client(&h1)),
        "the outside cannot reach the port web publishes on h1"
    );
    assert!(!client(&h2), "h2 publishes a port of a container on h1");
}

/// The network namespace of container `name` of `host` (its sandbox key).
fn sandbox(lab: &Lab, host: &str, name: &str) -> PathBuf {
    let all: Value = serde_json::from_str(&ok(lab, host, &["inspect", name])).unwrap();
    all[0]["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .into()
}

/// The names of the hosts `host` lists as `network`'s peers.
fn peers(lab: &Lab, host: &str, network: &str) -> Vec<String> {
    let Some(net) = inspect(lab, host, network) else {
        return Vec::new();
    };
    let mut names: Vec<String> = net["Peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .map(|p| p["Name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A UDP socket on `port` in the namespace at `netns`, joined to multicast `group`, keeping
/// every datagram it receives in `got` until `stop` is set (and half a second after, for
/// stragglers). Says on `ready` when it listens.
fn listen(
    netns: PathBuf,
    (port, group): (u16, Ipv4Addr),
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        netns::enter(&netns).unwrap();
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        socket
            .join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
            .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready.send(()).unwrap();
        let mut buf = [0u8; 64];
        let mut stopped = None;
        loop {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.lock().unwrap().push(text);
            }
            if stop.load(Ordering::Relaxed)
                && stopped.get_or_insert_with(Instant::now).elapsed() > Duration::from_millis(500)
            {
                return;
            }
        }
    })
}

#[test]
fn broadcasts_and_multicasts_reach_the_overlays_containers_on_every_host_and_no_one_else() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(3, 1);
    for name in ["ov", "other"] {
        ok(
            &lab,
            "h1",
            &["network", "create", "-d", "overlay", "--attachable", name],
        );
    }
    ok(&lab, "h3", &["network", "create", "br"]);
    // a sends; a2 (on a's host), b and c are on the overlay; x is on another overlay, y on a
    // bridge network, on the hosts that get the overlay's copies.
    for (host, name, network) in [
        ("h1", "a", "ov"),
        ("h1", "a2", "ov"),
        ("h2", "b", "ov"),
        ("h3", "c", "ov"),
        ("h2", "x", "other"),
        ("h3", "y", "br"),
    ] {
        run_sleeper(&lab, host, name, network);
    }
    // Every host knows the others' endpoints on the overlay (nothing unicast has crossed yet:
    // the hosts' neighbour entries for each other are not resolved either).
    for host in ["h1", "h2", "h3"] {
        assert!(
            eventually(Duration::from_secs(10), || peers(&lab, host, "ov")
                == ["h1", "h2", "h3"]),
            "{host} lists {:?} as ov's peers",
            peers(&lab, host, "ov")
        );
    }
    let subnet: Ipv4Net = inspect(&lab, "h1", "ov").unwrap()["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (port, group) = (5353, Ipv4Addr::new(239, 1, 2, 3));

    let stop = Arc::new(AtomicBool::new(false));
    let (ready, listening) = mpsc::channel();
    let mut received = BTreeMap::new();
    let mut listeners = Vec::new();
    for (host, name) in [
        ("h1", "a2"),
        ("h2", "b"),
        ("h3", "c"),
        ("h2", "x"),
        ("h3", "y"),
    ] {
        let got = Arc::new(Mutex::new(Vec::new()));
        let netns = sandbox(&lab, host, name);
        listeners.push(listen(
            netns,
            (port, group),
            got.clone(),
            stop.clone(),
            ready.clone(),
        ));
        received.insert(name, got);
    }
    for _ in &listeners {
        listening.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    // a sends a subnet broadcast and a datagram to the group every 200 ms until every member
    // has one of each (the first copies to a host may go while its neighbour entry is being
    // resolved), for 10 s at most.
    let members = ["a2", "b", "c"];
    let heard_all = |received: &BTreeMap<&str, Arc<Mutex<Vec<String>>>>| {
        members.iter().all(|m| {
            let got = received[m].lock().unwrap();
            ["broadcast", "multicast"]
                .iter()
                .all(|kind| got.iter().any(|text| text.starts_with(kind)))
        })
    };
    let a = sandbox(&lab, "h1", "a");
    let (sent, sending) = mpsc::channel::<()>();
    let sender = thread::spawn(move || {
        netns::enter(&a).unwrap();
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        socket.set_broadcast(true).unwrap();
        for seq in 0..50 {
            if sending.try_recv().is_ok() {
                return;
            }
            socket
                .send_to(
                    format!("broadcast {seq}").as_bytes(),
                    (subnet.broadcast(), port),
                )
                .unwrap();
            socket
                .send_to(format!("multicast {seq}").as_bytes(), (group, port))
                .unwrap();
            thread::sleep(Duration::from_millis(200));
        }
    });
    let everyone = eventually(Duration::from_secs(10), || heard_all(&received));
    let _ = sent.send(());
    sender.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for listener in listeners {
        listener.join().unwrap();
    }
    let got = |name: &str| received[name].lock().unwrap().clone();
    assert!(
        everyone,
        "not every member heard both: a2 {:?}, b {:?}, c {:?}\nh1: {}",
        got("a2"),
        got("b"),
        got("c"),
        lab.xnetd_log("h1").unwrap_or_default()
    );
    // One copy per host, delivered once: no loops between the hosts.
    for member in members {
        let mut heard = got(member);
        let count = heard.len();
        heard.sort();
        heard.dedup();
        assert_eq!(
            heard.len(),
            count,
            "{member} heard some twice: {:?}",
            got(member)
        );
    }
    for outsider in ["x", "y"] {
        assert!(
            got(outsider).is_empty(),
            "{outsider} heard {:?}",
            got(outsider)
        );
    }
}
