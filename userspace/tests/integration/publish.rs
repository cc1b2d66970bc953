//! Published ports end to end, with real iperf3 over TCP and UDP: from another host through
//! the uplink (the container sees the client's own address), from the host itself on 127.0.0.1
//! and on its address (socket hooks, no proxy), from other containers through a host address
//! (hairpin), and host-address bindings; over IPv4, and over IPv6 for a dual-stack container.

use std::time::Duration;

use xnet_dockerlab::skip;

use crate::common::{Host, eventually, json_report, succeeded};

/// One iperf3 client run, killed after `limit` seconds: `timeout LIMIT iperf3 -c IP -p PORT ...`.
fn iperf_client(host: &Host, client_ns: &str, limit: &str, target: (&str, u16), udp: bool) -> bool {
    let port = target.1.to_string();
    let mut args = vec![
        "timeout",
        limit,
        "iperf3",
        "-c",
        target.0,
        "-p",
        &port,
        "-t",
        "1",
        "--connect-timeout",
        "2000",
    ];
    if udp {
        args.extend(["-u", "-b", "10M"]);
    }
    succeeded(&host.in_container(client_ns, &args))
}

/// Whether an iperf3 client in `client_ns` gets through to `ip:port` (TCP, or UDP with its TCP
/// control connection on the same port), against a server already listening.
fn iperf_reaches(host: &Host, client_ns: &str, ip: &str, port: u16, udp: bool) -> bool {
    eventually(Duration::from_secs(8), || {
        iperf_client(host, client_ns, "10", (ip, port), udp)
    })
}

/// Whether a single TCP attempt fails (for what must NOT get through).
fn iperf_refused(host: &Host, client_ns: &str, ip: &str, port: u16) -> bool {
    !iperf_client(host, client_ns, "6", (ip, port), false)
}

/// iperf3 servers in container `name` on ports 80, 81 and 90 (the tests publish them).
fn start_servers(host: &mut Host, name: &str) {
    let sandbox = host.sandbox(name);
    for port in ["80", "81", "90"] {
        host.spawn_in(&sandbox, &["iperf3", "-s", "-p", port]);
    }
}

/// Publishes 8082 to port 82 of container `name`, connects from the outside to the host's
/// address `addresses.0`, and checks the server saw the outside's own address `addresses.1`.
fn outside_client_is_seen_as_itself(host: &mut Host, name: &str, addresses: (&str, &str)) {
    let log = host
        .dir
        .join(format!("iperf-published-{}.json", addresses.1));
    host.spawn_in(
        &host.sandbox(name),
        &[
            "sh",
            "-c",
            &format!("iperf3 -s -1 -J -p 82 > {}", log.display()),
        ],
    );
    host.ok(&["port", "add", name, "8082:82"]);
    assert!(
        iperf_reaches(host, &host.outside(), addresses.0, 8082, false),
        "TCP from outside to {}",
        addresses.0
    );
    let report = json_report(&log).expect("no iperf3 report");
    assert_eq!(
        report["start"]["connected"][0]["remote_host"], addresses.1,
        "the container must see the client's address: {report}"
    );
}

/// The `-p` flags on every address of the container `web` that [`reached_from_everywhere`]
/// checks: 8080/tcp and 8081/udp (and tcp, for iperf3's control connection); its tests add
/// 90 on a loopback address only, as 9090.
const WEB_PORTS: [&str; 6] = ["-p", "8080:80", "-p", "8081:81/udp", "-p", "8081:81"];

/// The host's addresses of one family that published ports are dialed on.
struct HostAddresses<'a> {
    /// The uplink's: from the outside, the host itself, and other containers (hairpin).
    uplink: &'a str,
    loopback: &'a str,
    /// The client container's gateway (hairpin).
    gateway: &'a str,
}

/// Checks the ports the tests publish on container `web` (8080/tcp and 8081/udp on every
/// address, 90 on loopback as 9090) from every place Docker users reach them: another host
/// through the uplink, the host itself on loopback and its own address, container `client`
/// through the uplink's address and its gateway; and that the loopback binding is reached
/// from the host only.
fn reached_from_everywhere(host: &Host, to: HostAddresses) {
    let (outside, host_ns, client) = (host.outside(), host.host_netns(), host.sandbox("client"));
    for (from, addr, port, udp, what) in [
        (&outside, to.uplink, 8080, false, "TCP from outside"),
        (&outside, to.uplink, 8081, true, "UDP from outside"),
        (&host_ns, to.loopback, 8080, false, "the host via loopback"),
        (&host_ns, to.uplink, 8080, false, "the host via its address"),
        (
            &host_ns,
            to.loopback,
            8081,
            true,
            "the host, UDP via loopback",
        ),
        (
            &client,
            to.uplink,
            8080,
            false,
            "hairpin via the uplink's address",
        ),
        (&client, to.gateway, 8080, false, "hairpin via the gateway"),
        (
            &host_ns,
            to.loopback,
            9090,
            false,
            "the loopback binding from the host",
        ),
    ] {
        assert!(
            iperf_reaches(host, from, addr, port, udp),
            "{what} ({addr})"
        );
    }
    assert!(
        iperf_refused(host, &outside, to.uplink, 9090),
        "a port bound to {} was reached from another host",
        to.loopback
    );
}

#[test]
fn published_ports_are_reachable_from_everywhere_docker_users_expect() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::with_uplink();
    host.run_sleeper(
        "web",
        &[&WEB_PORTS[..], &["-p", "127.0.0.1:9090:90"]].concat(),
    );
    host.run_sleeper("client", &[]);
    let outside = host.outside();
    start_servers(&mut host, "web");

    // Another host, through the uplink; the server sees the client's own address.
    outside_client_is_seen_as_itself(&mut host, "web", ("10.200.0.1", "10.200.0.2"));
    let gateway = host.inspect("client")["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    reached_from_everywhere(
        &host,
        HostAddresses {
            uplink: "10.200.0.1",
            loopback: "127.0.0.1",
            gateway: &gateway,
        },
    );

    // From the wire it is the uplink's XDP program that translates, and its link is pinned:
    // published ports keep working while the daemon is down, and after it adopts the link.
    let uplink = host.in_host(&["ip", "-j", "link", "show", "uplink0"]);
    let uplink: serde_json::Value = serde_json::from_slice(&uplink.stdout).unwrap();
    assert!(
        uplink[0]["xdp"]["prog"]["id"].as_u64().is_some(),
        "no XDP program on the uplink: {uplink}"
    );
    host.stop_daemon();
    assert!(
        iperf_reaches(&host, &outside, "10.200.0.1", 8081, false),
        "TCP from outside while the daemon is down"
    );
    host.start_daemon();
    assert!(
        iperf_reaches(&host, &outside, "10.200.0.1", 8081, true),
        "UDP from outside after a restart"
    );

    // Unpublished, it is gone for everyone.
    host.ok(&["port", "rm", "web", "8080:80"]);
    assert!(
        iperf_refused(&host, &outside, "10.200.0.1", 8080),
        "unpublished port reached"
    );
}

#[test]
fn a_dual_stack_container_is_published_over_ipv6_too() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::with_uplink();
    host.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.40.0.0/24",
        "--subnet",
        "fd00:40::/64",
        "v6net",
    ]);
    let publish = [
        &["--network", "v6net"][..],
        &WEB_PORTS,
        &["-p", "[::1]:9090:90"],
    ]
    .concat();
    host.run_sleeper("web", &publish);
    host.run_sleeper("client", &["--network", "v6net"]);

    // Without a host address: 0.0.0.0 and [::], the same host port, as Docker shows them.
    let listed = host.ok(&["port", "web", "80"]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["0.0.0.0:8080", "[::]:8080"]
    );
    let ports = &host.inspect("web")["NetworkSettings"]["Ports"];
    assert_eq!(
        ports["80/tcp"],
        serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": "8080"},
                           {"HostIp": "::", "HostPort": "8080"}]),
        "{ports}"
    );
    assert_eq!(
        ports["90/tcp"],
        serde_json::json!([{"HostIp": "::1", "HostPort": "9090"}])
    );

    let outside = host.outside();
    start_servers(&mut host, "web");

    // Another host, through the uplink's IPv6 address; the server sees the client's own.
    outside_client_is_seen_as_itself(&mut host, "web", ("fd00:200::1", "fd00:200::2"));
    reached_from_everywhere(
        &host,
        HostAddresses {
            uplink: "fd00:200::1",
            loopback: "::1",
            gateway: "fd00:40::1",
        },
    );
    assert!(
        iperf_reaches(&host, &outside, "10.200.0.1", 8080, false),
        "IPv4 from outside, beside IPv6"
    );
}
