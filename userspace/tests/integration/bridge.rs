//! Connectivity on the default bridge network, forwarded by the eBPF datapath.

use std::time::Duration;

use serde_json::Value;
use xnet_dockerlab::skip;

use crate::common::{Host, eventually, stdout, succeeded};

/// Runs an iperf3 client (1 s) against a one-shot server started in `server_ns`, retrying until
/// the server listens. `udp` selects UDP.
fn iperf(host: &mut Host, server_ns: &str, client_ns: &str, server_ip: &str, udp: bool) -> bool {
    host.spawn_in(server_ns, &["iperf3", "-s", "-1"]);
    let mut args = vec!["iperf3", "-c", server_ip, "-t", "1"];
    if udp {
        args.extend(["-u", "-b", "10M"]);
    }
    eventually(Duration::from_secs(10), || {
        let out = host.in_container(client_ns, &args);
        succeeded(&out) && stdout(&out).contains("receiver")
    })
}

#[test]
fn containers_on_the_default_network_talk_over_ping_tcp_and_udp() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.run_sleeper("a", &[]);
    host.run_sleeper("b", &[]);
    let (a, b) = (host.sandbox("a"), host.sandbox("b"));
    let (a_ip, b_ip) = (host.ip_of("a"), host.ip_of("b"));
    assert!(host.reaches(&a, &b_ip), "a cannot ping b");
    assert!(host.reaches(&b, &a_ip), "b cannot ping a");
    // TCP with the containers' default offloads (TSO, checksum offload) left on.
    assert!(iperf(&mut host, &b, &a, &b_ip, false), "TCP a -> b failed");
    assert!(iperf(&mut host, &b, &a, &b_ip, true), "UDP a -> b failed");
    // No Linux bridge anywhere: the host namespace has only the two host-side veths.
    let links = host.host_links();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links.iter().all(|l| l.starts_with("xv")), "{links:?}");
}

#[test]
fn containers_reach_the_gateway_and_the_host_reaches_them() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.run_sleeper("web", &[]);
    let web = host.sandbox("web");
    let web_ip = host.ip_of("web");
    let gateway = host.inspect("web")["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        host.reaches(&web, &gateway),
        "container cannot ping its gateway"
    );
    let host_ns = host.host_netns();
    assert!(
        host.reaches(&host_ns, &web_ip),
        "host cannot ping the container"
    );
    assert!(
        iperf(&mut host, &web, &host_ns, &web_ip, false),
        "TCP host -> container failed"
    );
    assert!(
        iperf(&mut host, &host_ns, &web, &gateway, false),
        "TCP container -> host failed"
    );
    assert!(
        iperf(&mut host, &host_ns, &web, &gateway, true),
        "UDP container -> host failed"
    );
}

#[test]
fn arp_is_answered_by_the_datapath_and_never_for_unknown_addresses() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("a", &[]);
    host.run_sleeper("b", &[]);
    let a = host.sandbox("a");
    let b_ip = host.ip_of("b");
    assert!(host.reaches(&a, &b_ip));
    // a learnt b's MAC, which only the datapath could have told it (there is no bridge to
    // flood the request through, and b's own answer would have to cross one).
    let b_mac = host.inspect("b")["NetworkSettings"]["Networks"]["bridge"]["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let neigh = stdout(&host.in_container(&a, &["ip", "neigh", "show", &b_ip]));
    assert!(
        neigh.contains(&b_mac),
        "a's neighbour entry for b: {neigh:?}"
    );
    // An address nobody owns gets no answer, and the datapath counts the refused requests.
    assert!(host.cannot_reach(&a, "172.17.0.200"));
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    assert!(
        stats["drops"]["unknown-arp-target"].as_u64().unwrap() > 0,
        "{stats}"
    );
}

#[test]
fn networks_are_isolated_from_each_other() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.81.0.0/24", "n1"]);
    host.ok(&["network", "create", "--subnet", "10.82.0.0/24", "n2"]);
    host.run_sleeper("a", &["--network", "n1"]);
    host.run_sleeper("a2", &["--network", "n1"]);
    host.run_sleeper("b", &["--network", "n2"]);
    let a = host.sandbox("a");
    assert!(
        host.reaches(&a, &host.ip_of("a2")),
        "same network must work"
    );
    assert!(
        host.cannot_reach(&a, &host.ip_of("b")),
        "a reached b on another network"
    );
    assert!(
        host.cannot_reach(&a, "10.82.0.1"),
        "a reached the other network's gateway"
    );
}

#[test]
fn stats_count_each_endpoints_traffic() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("a", &[]);
    host.run_sleeper("b", &[]);
    let (a, b_ip) = (host.sandbox("a"), host.ip_of("b"));
    let two_pings = host.in_container(&a, &["ping", "-c", "2", "-i", "0.2", "-W", "2", &b_ip]);
    assert!(
        stdout(&two_pings).contains("2 received"),
        "{}",
        stdout(&two_pings)
    );
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    let of = |name: &str| {
        stats["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == name)
            .cloned()
            .unwrap()
    };
    // Two echo requests out of a and into b, two replies the other way.
    assert!(of("a")["TxPackets"].as_u64().unwrap() >= 2, "{stats}");
    assert!(of("b")["RxPackets"].as_u64().unwrap() >= 2, "{stats}");
    assert!(of("b")["TxPackets"].as_u64().unwrap() >= 2, "{stats}");
    assert!(of("a")["RxBytes"].as_u64().unwrap() >= 2 * 98, "{stats}");
    // Containers on IPv4-only networks send nothing the datapath has to refuse.
    assert_eq!(stats["drops"]["unsupported-ethertype"], 0, "{stats}");
    let table = host.ok(&["stats"]);
    assert!(table.starts_with("NAME"), "{table}");
}
