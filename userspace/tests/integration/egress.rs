//! Egress: containers reach the outside through the uplink, source-NATed by the datapath; the
//! outside is a namespace of the test's own ("the internet" behind `uplink0`).

use std::{ffi::CString, io, os::unix::ffi::OsStrExt as _, path::Path, time::Duration};

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

/// A host with an uplink and container `a`, which reaches the outside; and a's sandbox.
fn container_going_out() -> (Host, String) {
    let host = Host::with_uplink();
    host.run_sleeper("a", &[]);
    let a = host.sandbox("a");
    assert!(host.reaches(&a, "10.200.0.2"));
    (host, a)
}

#[test]
fn a_daemon_restarted_after_its_uplink_was_made_again_attaches_to_the_new_one() {
    if skip::unless_root() {
        return;
    }
    let (mut host, a) = container_going_out();
    // While the daemon is down the uplink goes and comes back as a new device (another
    // ifindex, no programs): the daemon must leave the old one's links and attach anew.
    host.stop_daemon();
    host.recreate_uplink();
    host.start_daemon();
    assert!(
        host.reaches(&a, "10.200.0.2"),
        "no egress through the new uplink: {}",
        host.daemon_log()
    );
}

/// Detaches the bpf link pinned at `pin` (`BPF_OBJ_GET`, then `BPF_LINK_DETACH`), as a tool
/// acting behind the daemon's back would: the pin stays, its link is severed.
fn detach_pinned_link(pin: &Path) {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    // `union bpf_attr`: both commands read their first field (the path, the link's fd) at
    // offset 0.
    let path = CString::new(pin.as_os_str().as_bytes()).unwrap();
    let mut attr = [0u64; 16];
    attr[0] = path.as_ptr() as u64;
    let size = std::mem::size_of_val(&attr);
    // SAFETY: `attr` outlives the call and is as large as the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, attr.as_mut_ptr(), size) };
    assert!(
        fd >= 0,
        "BPF_OBJ_GET {}: {}",
        pin.display(),
        io::Error::last_os_error()
    );
    let mut attr = [0u64; 16];
    attr[0] = fd as u64;
    // SAFETY: as above.
    let detached =
        unsafe { libc::syscall(libc::SYS_bpf, BPF_LINK_DETACH, attr.as_mut_ptr(), size) };
    let error = io::Error::last_os_error();
    // SAFETY: `fd` is the descriptor BPF_OBJ_GET opened for us.
    unsafe { libc::close(fd as i32) };
    assert_eq!(detached, 0, "BPF_LINK_DETACH {}: {error}", pin.display());
}

#[test]
fn a_daemon_whose_pinned_uplink_links_were_detached_attaches_new_ones() {
    if skip::unless_root() {
        return;
    }
    let (mut host, a) = container_going_out();
    host.stop_daemon();
    for pin in ["uplink-ingress", "uplink-xdp"] {
        detach_pinned_link(&host.bpffs.join("links").join(pin));
    }
    // Replies of NATed flows need the uplink's tcx program: without it nothing comes back.
    assert!(host.cannot_reach(&a, "10.200.0.2"));
    host.start_daemon();
    assert!(
        host.reaches(&a, "10.200.0.2"),
        "no egress after the restart: {}",
        host.daemon_log()
    );
    assert!(
        host.daemon_log().contains("no longer works"),
        "{}",
        host.daemon_log()
    );
}
