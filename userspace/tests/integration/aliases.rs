//! Docker's spellings on a real daemon: `--net` for `--network` (issue #12: it was taken for the
//! command), Docker's `container` and `list`/`remove` command names, and flags xnet does not
//! know refused before anything is made. The parse of every alias is tested in `cli/mod.rs`.

use std::{fs, os::unix::fs::MetadataExt as _};

use xnet_dockerlab::skip;

use crate::common::Host;

/// The (device, inode) of a network namespace file, which identifies the namespace.
fn netns_id(path: &str) -> (u64, u64) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.dev(), meta.ino())
}

#[test]
fn net_is_dockers_spelling_of_network() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&[
        "run",
        "--name",
        "web",
        "--net=host",
        "-d",
        "--",
        "sleep",
        "600",
    ]);
    let web = host.inspect("web");
    assert!(
        web["NetworkSettings"]["Networks"]["host"].is_object(),
        "{web:#}"
    );
    assert_eq!(web["State"]["Running"], true, "-d was not taken as a flag");
    // The command itself runs in the host's namespace, detached (as `-d` says).
    let pid = web["State"]["Pid"].as_u64().unwrap();
    assert_eq!(
        netns_id(&format!("/proc/{pid}/ns/net")),
        netns_id(&host.host_netns())
    );

    host.ok(&[
        "network",
        "create",
        "--driver=bridge",
        "--subnet=10.93.0.0/24",
        "n93",
    ]);
    host.run_sleeper("b", &["--net", "bridge"]);
    host.run_sleeper("c", &["--network=n93"]);
    for (name, network) in [("b", "bridge"), ("c", "n93")] {
        let networks = host.inspect(name)["NetworkSettings"]["Networks"].clone();
        let names: Vec<&String> = networks.as_object().unwrap().keys().collect();
        assert_eq!(names, [network], "{name}");
    }
    assert!(host.ip_of("c").starts_with("10.93.0."));
}

#[test]
fn an_unknown_flag_before_the_command_is_one_line_and_creates_nothing() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    let before = (
        host.ok(&["ps"]),
        host.ok(&["network", "ls"]),
        host.host_links(),
        host.container_namespaces(),
    );
    for line in [
        "run --name web --bogus -d -- sleep 600",
        "run --name web --net=host --bogus sleep 600",
        "run --name web -it -- sh",
        "exec web -it -- sh",
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let err = host.fails(&args);
        assert!(
            err.starts_with("error: unexpected argument"),
            "{line}: {err}"
        );
        assert_eq!(host.xnet(&args).status.code(), Some(2), "{line}");
    }
    let after = (
        host.ok(&["ps"]),
        host.ok(&["network", "ls"]),
        host.host_links(),
        host.container_namespaces(),
    );
    assert_eq!(before, after, "a refused command line changed something");
    assert!(
        host.fails(&["inspect", "web"])
            .contains("No such container")
    );
}

#[test]
fn dockers_command_names_do_what_xnets_do() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "n94"]);
    host.ok(&[
        "container",
        "run",
        "--name",
        "a",
        "--net",
        "n94",
        "-d",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(host.ok(&["container", "ls", "-a"]), host.ok(&["ps"]));
    assert_eq!(
        host.ok(&["network", "list", "--format=json"]),
        host.ok(&["network", "ls", "--format", "json"])
    );
    assert!(host.ok(&["stats", "--all", "--no-stream"]).contains("n94"));
    assert_eq!(host.ok(&["container", "remove", "--force", "a"]), "a\n");
    assert_eq!(host.ok(&["network", "remove", "n94"]), "n94\n");
    assert_eq!(host.ok(&["container", "list", "--format", "json"]), "");
}
