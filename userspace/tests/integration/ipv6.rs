//! IPv6 dual-stack networks end to end: addresses, neighbour discovery answered by the
//! datapath, forwarding, isolation, ICC, multicast, NAT66 egress, and survival of a restart.

use serde_json::Value;
use xnet_dockerlab::skip;

use crate::common::{Host, stdout, succeeded};

/// The container's global IPv6 address on its (first) network.
fn ipv6_of(host: &Host, container: &str) -> String {
    let c = host.inspect(container);
    let nets = c["NetworkSettings"]["Networks"].as_object().unwrap();
    nets.values().next().unwrap()["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The container's link-local address on `eth0`, as its kernel reports it.
fn link_local_of(host: &Host, sandbox: &str) -> String {
    let out = host.in_container(
        sandbox,
        &[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
        ],
    );
    let text = stdout(&out);
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .unwrap_or_else(|| panic!("no link-local address: {text:?}"));
    cidr.split('/').next().unwrap().to_string()
}

fn dual_stack(host: &Host, name: &str, v4: &str, v6: &str, extra: &[&str]) {
    let mut args = vec![
        "network", "create", "--ipv6", "--subnet", v4, "--subnet", v6,
    ];
    args.extend_from_slice(extra);
    args.push(name);
    host.ok(&args);
}

#[test]
fn dual_stack_containers_talk_over_ipv6_and_survive_a_restart() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    dual_stack(&host, "v6net", "10.30.0.0/24", "fd00:30::/64", &[]);
    let net: Value = serde_json::from_str(&host.ok(&["network", "inspect", "v6net"])).unwrap();
    assert_eq!(net[0]["EnableIPv6"], true, "{net}");
    let configs = net[0]["IPAM"]["Config"].as_array().unwrap();
    assert!(
        configs
            .iter()
            .any(|c| c["Subnet"] == "fd00:30::/64" && c["Gateway"] == "fd00:30::1"),
        "{net}"
    );

    host.run_sleeper("a", &["--network", "v6net"]);
    host.run_sleeper("b", &["--network", "v6net"]);
    host.run_sleeper("c", &["--network", "v6net", "--ip6", "fd00:30::99"]);
    let (a, b) = (host.sandbox("a"), host.sandbox("b"));
    assert_eq!(ipv6_of(&host, "a"), "fd00:30::2");
    assert_eq!(ipv6_of(&host, "c"), "fd00:30::99");
    let settings = &host.inspect("a")["NetworkSettings"]["Networks"]["v6net"];
    assert_eq!(settings["IPv6Gateway"], "fd00:30::1", "{settings}");
    assert_eq!(settings["GlobalIPv6PrefixLen"], 64, "{settings}");
    let taken = host.fails(&[
        "run",
        "--name",
        "d",
        "--network",
        "v6net",
        "--ip6",
        "fd00:30::99",
        "--",
        "true",
    ]);
    assert!(taken.contains("fd00:30::99"), "{taken}");

    // Neighbour discovery for the gateway and the peers is answered by the datapath.
    assert!(
        host.reaches(&a, "fd00:30::1"),
        "a cannot reach its IPv6 gateway"
    );
    assert!(
        host.reaches(&a, &ipv6_of(&host, "b")),
        "a cannot reach b over IPv6"
    );
    assert!(
        host.reaches(&b, "fd00:30::99"),
        "b cannot reach c's static address"
    );
    let b_link_local = format!("{}%eth0", link_local_of(&host, &b));
    assert!(
        host.reaches(&a, &b_link_local),
        "a cannot reach b's link-local address"
    );
    // IPv4 works beside it.
    assert!(host.reaches(&a, &host.ip_of("b")));
    // TCP over IPv6 (iperf3 pushes full-size segments with offloads on).
    host.spawn_in(&b, &["iperf3", "-s", "-1"]);
    let out = crate::common::eventually(std::time::Duration::from_secs(10), || {
        succeeded(&host.in_container(&a, &["iperf3", "-c", "fd00:30::3", "-t", "1"]))
    });
    assert!(out, "iperf3 over IPv6 failed");

    // The datapath and the kernel state survive the daemon.
    host.stop_daemon();
    assert!(
        host.reaches(&a, "fd00:30::3"),
        "forwarding stopped with xnetd"
    );
    host.start_daemon();
    assert!(host.reaches(&a, "fd00:30::1"), "gateway gone after restart");
    host.run_sleeper("e", &["--network", "v6net"]);
    assert_eq!(
        ipv6_of(&host, "e"),
        "fd00:30::4",
        "addresses re-handed after restart"
    );
    host.ok(&["rm", "-f", "c"]);
    host.run_sleeper("f", &["--network", "v6net", "--ip6", "fd00:30::99"]);
}

#[test]
fn ipv6_is_isolated_between_networks_and_by_icc() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    dual_stack(&host, "n1", "10.31.0.0/24", "fd00:31::/64", &[]);
    dual_stack(&host, "n2", "10.32.0.0/24", "fd00:32::/64", &[]);
    dual_stack(
        &host,
        "quiet",
        "10.33.0.0/24",
        "fd00:33::/64",
        &["-o", "com.docker.network.bridge.enable_icc=false"],
    );
    host.run_sleeper("a", &["--network", "n1"]);
    host.run_sleeper("b", &["--network", "n2"]);
    host.run_sleeper("q1", &["--network", "quiet"]);
    host.run_sleeper("q2", &["--network", "quiet"]);
    let a = host.sandbox("a");
    assert!(host.reaches(&a, "fd00:31::1"));
    assert!(
        host.cannot_reach(&a, &ipv6_of(&host, "b")),
        "a reached b on another network over IPv6"
    );
    assert!(
        host.cannot_reach(&a, "fd00:32::1"),
        "a reached the other network's IPv6 gateway"
    );
    // A forged source address gets nowhere, not even to its own gateway: a claims an address
    // of n1 that is not its own.
    let out = host.in_container(
        &a,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:31::77/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    assert!(succeeded(&out));
    let forged = host.in_container(
        &a,
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "fd00:31::77",
            "fd00:31::1",
        ],
    );
    assert!(!succeeded(&forged), "a forged IPv6 source got through");
    let q1 = host.sandbox("q1");
    assert!(
        host.reaches(&q1, "fd00:33::1"),
        "ICC off must keep the gateway"
    );
    assert!(
        host.cannot_reach(&q1, &ipv6_of(&host, "q2")),
        "ICC off let IPv6 through"
    );
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    assert!(
        stats["drops"]["other-network"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stats["drops"]["icc-blocked"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stats["drops"]["spoofed-ip"].as_u64().unwrap() > 0,
        "{stats}"
    );
}

#[test]
fn ipv6_multicast_reaches_exactly_the_other_members() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    dual_stack(&host, "lan6", "10.34.0.0/24", "fd00:34::/64", &[]);
    dual_stack(&host, "elsewhere6", "10.35.0.0/24", "fd00:35::/64", &[]);
    for (name, net) in [
        ("a", "lan6"),
        ("b", "lan6"),
        ("c", "lan6"),
        ("x", "elsewhere6"),
    ] {
        host.run_sleeper(name, &["--network", net]);
    }
    let [a, b, c, x] = ["a", "b", "c", "x"].map(|n| host.sandbox(n));
    // Pinging all-nodes: every member answers from its link-local address.
    let out = host.in_container(
        &a,
        &["ping", "-c", "3", "-i", "0.3", "-W", "1", "ff02::1%eth0"],
    );
    let replies = stdout(&out);
    for member in [&b, &c] {
        let ll = link_local_of(&host, member);
        assert!(replies.contains(&ll), "{ll} did not answer: {replies}");
    }
    let stranger = link_local_of(&host, &x);
    assert!(!replies.contains(&stranger), "multicast leaked: {replies}");
}

#[test]
fn ipv6_egress_is_nat66_through_the_uplink() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::with_uplink();
    dual_stack(&host, "web", "10.36.0.0/24", "fd00:36::/64", &[]);
    dual_stack(
        &host,
        "sealed",
        "10.37.0.0/24",
        "fd00:37::/64",
        &["--internal"],
    );
    host.run_sleeper("a", &["--network", "web"]);
    host.run_sleeper("s", &["--network", "sealed"]);
    let a = host.sandbox("a");
    assert!(
        host.reaches(&a, "fd00:200::2"),
        "ICMPv6 to the outside failed"
    );
    assert!(
        host.reaches(&a, "fd00:201::1"),
        "ICMPv6 one hop further failed"
    );
    // The outside sees the uplink's address (NAT66), not the container's.
    let outside = host.outside();
    let log = host.dir.join("iperf6.json");
    let server = format!("iperf3 -s -1 -J > {}", log.display());
    host.spawn_in(&outside, &["sh", "-c", &server]);
    let ran = crate::common::eventually(std::time::Duration::from_secs(10), || {
        succeeded(&host.in_container(&a, &["iperf3", "-c", "fd00:200::2", "-t", "1"]))
    });
    assert!(ran, "TCP over NAT66 failed");
    let report = crate::common::json_report(&log).expect("no iperf3 report");
    assert_eq!(
        report["start"]["connected"][0]["remote_host"], "fd00:200::1",
        "{report}"
    );
    // Internal networks have no way out over IPv6 either.
    let s = host.sandbox("s");
    assert!(
        host.cannot_reach(&s, "fd00:200::2"),
        "internal network got out"
    );
}
