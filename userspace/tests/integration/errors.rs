//! Bad input: every case is one clear line on stderr, a non-zero exit, and no change.

use std::process::Command;

use xnet_dockerlab::skip;

use crate::common::{Host, XNET, XNETD};

#[test]
fn bad_requests_get_one_line_errors_and_change_nothing() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.90.0.0/24", "n90"]);
    host.run_sleeper("a", &["--network", "n90", "--ip", "10.90.0.5"]);
    let before = (
        host.ok(&["network", "ls"]),
        host.ok(&["ps"]),
        host.host_links(),
    );

    // Each case: a command line (split at spaces) and what its error must say.
    let cases = [
        (
            "run --name x --network nope -- true",
            "network nope not found",
        ),
        ("inspect ghost", "No such container: ghost"),
        ("rm ghost", "No such container: ghost"),
        ("exec ghost -- true", "No such container: ghost"),
        ("network inspect nope", "network nope not found"),
        ("network rm nope", "network nope not found"),
        ("run --name a --network n90 -- true", "already in use"),
        ("network create n90", "already exists"),
        ("network create --subnet 10.90.0.0/33 x", "invalid subnet"),
        ("network create --subnet banana x", "invalid subnet"),
        (
            "network create --subnet 10.91.0.7/24 x",
            "it should be 10.91.0.0/24",
        ),
        (
            "network create --subnet 10.90.0.128/25 x",
            "overlaps with network n90",
        ),
        (
            "network create --subnet 10.92.0.0/24 --gateway 10.93.0.1 x",
            "not a host address",
        ),
        // Issue #13: overlay networks exist, and need a cluster (this daemon has none).
        (
            "network create -d overlay x",
            "needs a cluster: start xnetd with --cluster-store",
        ),
        ("network create -d weave x", "not supported"),
        // Issue #15: a LAN network's subnet is its LAN's, which xnet cannot pick.
        ("network create -d macvlan x", "needs --subnet"),
        ("network create bad/name", "invalid network name"),
        (
            "run --name b --network n90 --ip 10.90.0.5 -- true",
            "already in use",
        ),
        (
            "run --name b --network n90 --ip 10.90.0.1 -- true",
            "already in use",
        ),
        (
            "run --name b --network n90 --ip 10.95.0.5 -- true",
            "not a host address",
        ),
        (
            "run --name b --network n90 --ip 10.90.0.x -- true",
            "invalid IP address",
        ),
        // `--name=-b`: with a space clap would refuse `-b` as an unknown flag.
        ("run --name=-b -- true", "invalid container name"),
        ("network rm bridge", "pre-defined network"),
        (
            "network create --subnet fd00:90::/64 x",
            "an IPv6 --subnet needs --ipv6",
        ),
        (
            "network create --ipv6 --subnet 10.96.0.0/24 --subnet 10.97.0.0/24 x",
            "only one IPv4 --subnet",
        ),
        (
            "network create --ipv6 --subnet fd00:96::/64 --subnet fd00:97::/64 x",
            "only one IPv6 --subnet",
        ),
        (
            "network create --ipv6 --subnet fd00:96::/127 x",
            "invalid subnet",
        ),
        (
            "network create --ipv6 -o com.docker.network.driver.mtu=1000 x",
            "1280",
        ),
        (
            "run --name b --network n90 --ip6 fd00:90::5 -- true",
            "--ip6 needs IPv6",
        ),
        (
            "run --name b --network none -p 80 -- true",
            "it has no network endpoint",
        ),
        (
            "run --name b --network host -p 99999 -- true",
            "invalid port specification",
        ),
        (
            "run --name b --network n90 -p 9000:9001/sctp -- true",
            "only on the same host port",
        ),
        (
            "run --name b --network n90 -p 8080:80/icmp -- true",
            "unknown protocol",
        ),
    ];
    for (line, expected) in cases {
        let args: Vec<&str> = line.split(' ').collect();
        let err = host.fails(&args);
        assert!(
            err.contains(expected),
            "xnet {args:?}: {err:?} lacks {expected:?}"
        );
    }
    let after = (
        host.ok(&["network", "ls"]),
        host.ok(&["ps"]),
        host.host_links(),
    );
    assert_eq!(before, after, "a failed request changed something");
}

#[test]
fn no_daemon_means_a_clear_error() {
    let out = Command::new(XNET)
        .args(["--host", "unix:///tmp/xnet-test-nowhere/xnet.sock", "ps"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Cannot connect to the xnet daemon"), "{err}");
    // XNET_HOST selects the daemon too.
    let out = Command::new(XNET)
        .env("XNET_HOST", "unix:///tmp/xnet-test-nowhere-env/xnet.sock")
        .arg("ps")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("xnet-test-nowhere-env")
    );
}

#[test]
fn not_root_means_a_clear_error() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    let as_nobody = |program: &str, args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", program])
            .args(args)
            .output()
            .unwrap()
    };
    let socket = format!("unix://{}", host.socket().display());
    let out = as_nobody(XNET, &["--host", &socket, "ps"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("permission denied") && err.contains("root"),
        "{err}"
    );

    let out = as_nobody(XNETD, &["--socket", "/tmp/xnet-test-nobody.sock"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("must run as root"), "{err}");
}
