//! Network options, the pre-defined host and none networks, live connect/disconnect, and
//! attaching namespaces that something else created.

use std::process::{Command, Stdio};

use serde_json::Value;
use xnet_dockerlab::skip;

use crate::common::{Host, stdout, succeeded};

fn network(host: &Host, name: &str) -> Value {
    let all: Value = serde_json::from_str(&host.ok(&["network", "inspect", name])).unwrap();
    all[0].clone()
}

#[test]
fn icc_off_blocks_containers_at_l2_and_l3_but_not_the_gateway() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&[
        "network",
        "create",
        "--subnet",
        "10.61.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "quiet",
    ]);
    host.run_sleeper("a", &["--network", "quiet"]);
    host.run_sleeper("b", &["--network", "quiet"]);
    let a = host.sandbox("a");
    let b_ip = host.ip_of("b");
    assert!(
        host.reaches(&a, "10.61.0.1"),
        "the gateway must stay reachable"
    );
    assert!(host.cannot_reach(&a, &b_ip), "ICC off, yet a reached b");
    // Not even ARP gets an answer: b's MAC never reaches a.
    let neigh = stdout(&host.in_container(&a, &["ip", "neigh", "show", &b_ip]));
    assert!(!neigh.contains("lladdr"), "a learnt b's MAC: {neigh}");
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    assert!(
        stats["drops"]["icc-blocked"].as_u64().unwrap() > 0,
        "{stats}"
    );
}

#[test]
fn ip_range_internal_and_mtu_options_take_effect() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&[
        "network",
        "create",
        "--subnet",
        "10.62.0.0/24",
        "--ip-range",
        "10.62.0.128/25",
        "--internal",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "opts",
    ]);
    let net = network(&host, "opts");
    assert_eq!(net["Internal"], true);
    assert_eq!(net["IPAM"]["Config"][0]["IPRange"], "10.62.0.128/25");
    assert_eq!(net["Options"]["com.docker.network.driver.mtu"], "1400");
    host.run_sleeper("a", &["--network", "opts"]);
    assert_eq!(host.ip_of("a"), "10.62.0.129");
    let link =
        stdout(&host.in_container(&host.sandbox("a"), &["ip", "-o", "link", "show", "eth0"]));
    assert!(link.contains("mtu 1400"), "{link}");
    let host_side = stdout(&host.in_host(&["ip", "-o", "link", "show"]));
    assert!(
        host_side
            .lines()
            .filter(|l| l.contains(": xv"))
            .all(|l| l.contains("mtu 1400")),
        "{host_side}"
    );
    for (args, expected) in [
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.63.0.0/24",
                "--ip-range",
                "10.64.0.0/25",
                "x",
            ][..],
            "not inside subnet",
        ),
        (
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.driver.mtu=9",
                "x",
            ][..],
            "invalid com.docker.network.driver.mtu",
        ),
        (
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=br9",
                "x",
            ][..],
            "unsupported network option",
        ),
    ] {
        let err = host.fails(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn host_and_none_networks_behave_as_in_docker() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    // A link only the host namespace has.
    host.in_host(&[
        "ip",
        "link",
        "add",
        "hostmark",
        "type",
        "veth",
        "peer",
        "name",
        "hostmark2",
    ]);
    let out = host.xnet(&[
        "run",
        "--name",
        "h",
        "--network",
        "host",
        "--",
        "ip",
        "link",
        "show",
        "hostmark",
    ]);
    assert!(
        out.status.success(),
        "host network container does not see the host's links"
    );
    assert!(host.inspect("h")["NetworkSettings"]["Networks"]["host"].is_object());
    // Published ports mean nothing in the host's own namespace: discarded, with a warning.
    let out = host.xnet(&[
        "run",
        "--name",
        "hp",
        "--network",
        "host",
        "-p",
        "8080:80",
        "--",
        "true",
    ]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("WARNING: Published ports are discarded when using host network mode"),
        "{out:?}"
    );
    assert!(
        host.host_links().iter().all(|l| !l.starts_with("xv")),
        "host mode made a veth"
    );

    let out = host.xnet(&[
        "run",
        "--name",
        "n",
        "--network",
        "none",
        "--",
        "ip",
        "-o",
        "link",
        "show",
    ]);
    assert!(out.status.success());
    let links = stdout(&out);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    assert!(host.inspect("n")["NetworkSettings"]["Networks"]["none"].is_object());
    assert_eq!(network(&host, "none")["Driver"], "null");
    assert!(
        network(&host, "host")["Containers"]
            .as_object()
            .unwrap()
            .values()
            .any(|c| c["Name"] == "h")
    );

    for name in ["host", "none"] {
        assert!(host.fails(&["network", "rm", name]).contains("pre-defined"));
        assert!(
            host.fails(&["network", "create", name])
                .contains("already exists")
        );
    }
    assert!(
        host.fails(&["network", "connect", "bridge", "h"])
            .contains("host network")
    );
    host.ok(&["rm", "h", "n"]);
    let still_there = host.in_host(&["ip", "link", "show", "hostmark"]);
    assert!(
        succeeded(&still_there),
        "removing a host-network container touched the host"
    );
}

#[test]
fn running_containers_connect_to_and_disconnect_from_networks() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.65.0.0/24", "n1"]);
    host.ok(&["network", "create", "--subnet", "10.66.0.0/24", "n2"]);
    host.run_sleeper("a", &["--network", "n1"]);
    host.run_sleeper("b", &["--network", "n2"]);
    let a = host.sandbox("a");
    let b_ip = host.ip_of("b");
    assert!(host.cannot_reach(&a, &b_ip));

    host.ok(&["network", "connect", "--ip", "10.66.0.50", "n2", "a"]);
    let nets = host.inspect("a")["NetworkSettings"]["Networks"].clone();
    assert_eq!(nets["n1"]["IPAddress"], "10.65.0.2");
    assert_eq!(nets["n2"]["IPAddress"], "10.66.0.50");
    let eth1 = stdout(&host.in_container(&a, &["ip", "-o", "addr", "show", "eth1"]));
    assert!(eth1.contains("10.66.0.50/24"), "{eth1}");
    assert!(
        host.reaches(&a, &b_ip),
        "a cannot reach b after connecting to n2"
    );
    let ps = host.ok(&["ps"]);
    assert!(ps.contains("n1,n2"), "{ps}");
    assert!(
        host.fails(&["network", "connect", "n2", "a"])
            .contains("already exists")
    );
    assert!(
        host.fails(&["network", "rm", "n2"])
            .contains("active endpoints")
    );

    // Dropping the network that gave the default route moves it to the remaining one.
    host.ok(&["network", "disconnect", "n1", "a"]);
    let links = stdout(&host.in_container(&a, &["ip", "-o", "link", "show"]));
    assert!(!links.contains("eth0"), "{links}");
    let route = stdout(&host.in_container(&a, &["ip", "route", "show", "default"]));
    assert!(route.contains("via 10.66.0.1"), "{route}");
    assert!(host.reaches(&a, &b_ip));
    assert!(host.cannot_reach(&a, "10.65.0.1"), "still on n1");
    assert!(
        host.fails(&["network", "disconnect", "n1", "a"])
            .contains("not connected")
    );
    assert_eq!(host.host_links().len(), 2, "{:?}", host.host_links());
    host.ok(&["network", "rm", "n1"]);
}

#[test]
fn namespaces_made_elsewhere_are_attached_and_detached() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.run_sleeper("web", &[]);
    let web = host.sandbox("web");
    // Stand-ins for a Docker container: one known by its namespace file, one by a PID. The
    // first already has an eth0 of its own, so xnet's interface must take another name.
    let by_path = host.foreign_netns("dock1");
    let ns_name = by_path.trim_start_matches("/run/netns/").to_string();
    crate::common::sh(&[
        "ip", "-n", &ns_name, "link", "add", "eth0", "type", "veth", "peer", "name", "own1",
    ]);
    host.ok(&["attach", "--name", "d1", "--netns", &by_path]);
    let d1_ip = host.ip_of("d1");
    let addrs = stdout(&host.in_container(&by_path, &["ip", "-o", "addr", "show", "eth1"]));
    assert!(addrs.contains(&d1_ip), "{addrs}");
    assert!(
        host.reaches(&web, &d1_ip),
        "web cannot reach the attached namespace"
    );

    let by_pid = host.foreign_netns("dock2");
    let sleeper = Command::new("nsenter")
        .arg(format!("--net={by_pid}"))
        .args(["sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    host.ok(&[
        "attach",
        "--name",
        "d2",
        "--pid",
        &sleeper.id().to_string(),
        "--ip",
        "172.17.0.77",
    ]);
    assert!(host.reaches(&web, "172.17.0.77"));
    assert!(host.fails(&["rm", "d2"]).contains("xnet detach"));
    assert!(host.fails(&["detach", "web"]).contains("xnet rm"));
    assert!(
        host.fails(&["attach", "--name", "me", "--netns", "/proc/self/ns/net"])
            .contains("host's own")
    );
    assert!(
        host.fails(&["attach", "--name", "bad", "--netns", "/etc/hostname"])
            .contains("not a network namespace")
    );

    host.ok(&["detach", "d1", "d2"]);
    // Only what xnet added is gone: its interface; the namespace, its own eth0 and the
    // process inside are untouched.
    let links = stdout(&host.in_container(&by_path, &["ip", "-o", "link", "show"]));
    assert!(links.contains("eth0") && !links.contains("eth1"), "{links}");
    assert!(std::path::Path::new(&format!("/proc/{}", sleeper.id())).exists());
    assert!(host.cannot_reach(&web, &d1_ip));
    assert_eq!(host.host_links().len(), 1, "{:?}", host.host_links());
    let mut sleeper = sleeper;
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn broadcasts_reach_exactly_the_other_members_of_the_network() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.69.0.0/24", "lan"]);
    host.ok(&["network", "create", "--subnet", "10.70.0.0/24", "elsewhere"]);
    for (name, net) in [("a", "lan"), ("b", "lan"), ("c", "lan"), ("x", "elsewhere")] {
        host.run_sleeper(name, &["--network", net]);
        // Let them answer broadcast pings (Linux ignores them by default).
        let sandbox = host.sandbox(name);
        let out = host.in_container(
            &sandbox,
            &["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"],
        );
        assert!(succeeded(&out));
    }
    let rx_of = |name: &str| -> u64 {
        let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
        stats["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == name)
            .unwrap()["RxPackets"]
            .as_u64()
            .unwrap()
    };
    let x_before = rx_of("x");
    let out = host.in_container(
        &host.sandbox("a"),
        &[
            "ping",
            "-b",
            "-c",
            "2",
            "-i",
            "0.3",
            "-W",
            "1",
            "10.69.0.255",
        ],
    );
    let replies = stdout(&out);
    assert!(
        replies.contains(&format!("from {}", host.ip_of("b"))),
        "{replies}"
    );
    assert!(
        replies.contains(&format!("from {}", host.ip_of("c"))),
        "{replies}"
    );
    assert!(!replies.contains("10.70.0."), "{replies}");
    assert_eq!(
        rx_of("x"),
        x_before,
        "a broadcast leaked into another network"
    );
}
