//! Egress: containers reach the outside through the uplink, source-NATed by the datapath; the
//! outside is a namespace of the test's own ("the internet" behind `uplink0`).

use std::time::Duration;

use serde_json::Value;
use xnet_dockerlab::skip;

use crate::common::{Host, eventually, json_report, succeeded};

fn drops(host: &Host, reason: &str) -> u64 {
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    stats["drops"][reason].as_u64().unwrap()
}

/// Runs an iperf3 client in `client` against a one-shot server in `server` (JSON output of the
/// server, which names the address the connection came from).
fn iperf_seen_by_server(
    host: &mut Host,
    server: &str,
    client: &str,
    ip: &str,
    udp: bool,
) -> Option<Value> {
    let log = host
        .dir
        .join(format!("iperf-{}.json", if udp { "udp" } else { "tcp" }));
    let server_cmd = format!("iperf3 -s -1 -J > {}", log.display());
    host.spawn_in(server, &["sh", "-c", &server_cmd]);
    let mut args = vec!["iperf3", "-c", ip, "-t", "1"];
    if udp {
        args.extend(["-u", "-b", "10M"]);
    }
    let ran = eventually(Duration::from_secs(10), || {
        succeeded(&host.in_container(client, &args))
    });
    if !ran {
        return None;
    }
    // The one-shot server writes its report when the test ends.
    json_report(&log)
}

#[test]
fn containers_reach_the_outside_source_natted_to_the_uplink() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::with_uplink();
    host.run_sleeper("a", &[]);
    let a = host.sandbox("a");
    let outside = host.outside();
    assert!(host.reaches(&a, "10.200.0.2"), "ICMP to the outside failed");
    assert!(
        host.reaches(&a, "10.201.0.1"),
        "ICMP one hop further failed"
    );
    // The outside sees the uplink's address, never the container's.
    let tcp =
        iperf_seen_by_server(&mut host, &outside, &a, "10.200.0.2", false).expect("TCP failed");
    assert_eq!(
        tcp["start"]["connected"][0]["remote_host"], "10.200.0.1",
        "{tcp}"
    );
    let udp =
        iperf_seen_by_server(&mut host, &outside, &a, "10.200.0.2", true).expect("UDP failed");
    assert_eq!(udp["start"]["connected"][0]["remote_host"], "10.200.0.1");
    // An ICMP error about a tracked flow comes back to the container's socket: the second
    // write on a connected UDP socket to a closed port reports the port unreachable.
    let out = host.in_container(
        &a,
        &[
            "bash",
            "-c",
            "exec 3<>/dev/udp/10.200.0.2/9; echo x >&3; sleep 0.5; echo y >&3",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Connection refused"),
        "ICMP port unreachable not delivered: {err}"
    );
    // The host itself stays reachable by its uplink address, without NAT.
    assert!(host.reaches(&a, "10.200.0.1"));

    // Outgoing flows keep working while the daemon is down, and after it comes back.
    host.stop_daemon();
    assert!(
        host.reaches(&a, "10.201.0.1"),
        "egress stopped with the daemon"
    );
    host.start_daemon();
    assert!(
        host.reaches(&a, "10.201.0.1"),
        "egress broken after the restart"
    );
}

#[test]
fn internal_networks_and_other_networks_are_never_reached_through_the_uplink() {
    if skip::unless_root() {
        return;
    }
    let host = Host::with_uplink();
    host.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.67.0.0/24",
        "sealed",
    ]);
    host.ok(&["network", "create", "--subnet", "10.68.0.0/24", "other"]);
    host.run_sleeper("in", &["--network", "sealed"]);
    host.run_sleeper("out", &[]);
    host.run_sleeper("far", &["--network", "other"]);
    let sealed = host.sandbox("in");
    assert!(
        host.cannot_reach(&sealed, "10.201.0.1"),
        "an internal network reached the outside"
    );
    assert!(drops(&host, "internal") > 0);
    // Still reaches its own gateway, like Docker's internal networks.
    assert!(host.reaches(&sealed, "10.67.0.1"));
    let out = host.sandbox("out");
    assert!(host.reaches(&out, "10.201.0.1"));
    // Egress is no back door between networks: the host could route there, xnet won't.
    assert!(
        host.cannot_reach(&out, &host.ip_of("far")),
        "egress reached another network"
    );
    assert!(
        host.cannot_reach(&out, "10.68.0.1"),
        "egress reached another network's gateway"
    );
    assert!(drops(&host, "other-network") > 0);
}

#[test]
fn without_an_uplink_nothing_leaves() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("a", &[]);
    assert!(host.cannot_reach(&host.sandbox("a"), "10.201.0.1"));
    assert!(drops(&host, "no-uplink") > 0);
}
