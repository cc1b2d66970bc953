//! Published ports (`-p`, `--expose`, `xnet port`), as the daemon keeps them: host ports chosen
//! and checked, shown as Docker shows them, written to the pinned `PUBLISHED` trie, kept across
//! restarts, removed with their container. Packets are not tested here: the datapath's side is
//! another step.

use std::{ops::RangeInclusive, time::Duration};

use aya::maps::{LpmTrie, Map, MapData, lpm_trie::Key};
use serde_json::json;
use xnet_common::{PublishKeyV4, PublishedV4};
use xnet_dockerlab::skip;

use crate::common::{Host, eventually, stdout};

/// The host's pinned `PUBLISHED` trie (it outlives the daemon).
fn published_trie(host: &Host) -> LpmTrie<MapData, PublishKeyV4, PublishedV4> {
    let data = MapData::from_pin(host.bpffs.join("maps/PUBLISHED")).unwrap();
    LpmTrie::try_from(Map::LpmTrie(data)).unwrap()
}

/// Its keys as (prefix length, protocol, address, port), sorted.
fn published_keys(host: &Host) -> Vec<(u32, u8, [u8; 4], [u8; 2])> {
    let mut keys: Vec<_> = published_trie(host)
        .keys()
        .map(|k| {
            let k = k.unwrap();
            (k.prefix_len(), k.data().proto, k.data().addr, k.data().port)
        })
        .collect();
    keys.sort();
    keys
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The host namespace's ephemeral port range.
fn ephemeral_range(host: &Host) -> RangeInclusive<u16> {
    let out = stdout(&host.in_host(&["cat", "/proc/sys/net/ipv4/ip_local_port_range"]));
    let mut parts = out.split_whitespace().map(|p| p.parse::<u16>().unwrap());
    parts.next().unwrap()..=parts.next().unwrap()
}

/// The host port of a `xnet port` line (`80/tcp -> 0.0.0.0:8080`).
fn host_port(line: &str) -> u16 {
    line.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn published_ports_are_listed_and_inspected_as_docker_shows_them() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper(
        "web",
        &[
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1::53/udp",
            "-p",
            "9000-9001:90-91",
            "--expose",
            "7070:70",
        ],
    );
    let listed = host.ok(&["port", "web"]);
    let listed = lines(&listed);
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert!(listed[0].starts_with("53/udp -> 127.0.0.1:"), "{listed:?}");
    assert!(ephemeral_range(&host).contains(&host_port(listed[0])));
    assert_eq!(
        listed[1..],
        [
            "70/tcp -> 127.0.0.1:7070",
            "80/tcp -> 0.0.0.0:8080",
            "90/tcp -> 0.0.0.0:9000",
            "91/tcp -> 0.0.0.0:9001"
        ]
    );
    assert_eq!(host.ok(&["port", "web", "80"]), "0.0.0.0:8080\n");
    assert_eq!(
        host.fails(&["port", "web", "81"]),
        "Error: no public port '81/tcp' published for web"
    );
    let ports = &host.inspect("web")["NetworkSettings"]["Ports"];
    assert_eq!(
        ports["80/tcp"],
        json!([{"HostIp": "0.0.0.0", "HostPort": "8080"}])
    );
    assert_eq!(
        ports["70/tcp"],
        json!([{"HostIp": "127.0.0.1", "HostPort": "7070"}])
    );
    assert_eq!(ports.as_object().unwrap().len(), 5);
    // What was asked for: "" where the daemon chose.
    let bindings = &host.inspect("web")["HostConfig"]["PortBindings"];
    assert_eq!(
        bindings["53/udp"],
        json!([{"HostIp": "127.0.0.1", "HostPort": ""}])
    );
    assert_eq!(
        bindings["80/tcp"],
        json!([{"HostIp": "", "HostPort": "8080"}])
    );
    // A container without published ports has an empty map, as in Docker.
    host.run_sleeper("plain", &[]);
    assert_eq!(host.inspect("plain")["NetworkSettings"]["Ports"], json!({}));
    assert_eq!(host.ok(&["port", "plain"]), "");
    // One trie key per single port; 9000-9001 is one aligned pair.
    assert_eq!(published_keys(&host).len(), 4);
}

#[test]
fn omitted_host_ports_come_from_the_ephemeral_range() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("a", &["-p", "80", "-p", "5000-5002/udp", "-p", "80"]);
    let listed = host.ok(&["port", "a"]);
    let listed = lines(&listed);
    assert_eq!(listed.len(), 5, "{listed:?}");
    let ephemeral = ephemeral_range(&host);
    let ports: Vec<u16> = listed.iter().map(|l| host_port(l)).collect();
    assert!(ports.iter().all(|p| ephemeral.contains(p)), "{listed:?}");
    // Two mappings of 80, on two different host ports.
    assert!(listed[0].starts_with("80/tcp") && listed[1].starts_with("80/tcp"));
    assert_ne!(ports[0], ports[1]);
    // A container range gets a contiguous host range.
    assert_eq!([ports[3] - ports[2], ports[4] - ports[3]], [1, 1]);
    // A host range for one container port: its first free port.
    host.run_sleeper("b", &["-p", "8000:1", "-p", "8000-8010:80"]);
    assert_eq!(host.ok(&["port", "b", "80"]), "0.0.0.0:8001\n");
}

#[test]
fn conflicts_and_impossible_requests_are_refused_and_change_nothing() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.ok(&["network", "create", "--internal", "inside"]);
    host.run_sleeper("web", &["-p", "8080:80"]);
    let listener = host.host_netns();
    host.spawn_in(&listener, &["busybox", "nc", "-l", "-p", "8181"]);
    assert!(
        eventually(Duration::from_secs(5), || {
            !stdout(&host.in_host(&["ss", "-Hltn", "sport = :8181"])).is_empty()
        }),
        "the test's listener did not come up"
    );
    let before = (host.ok(&["ps"]), host.host_links(), published_keys(&host));
    for (args, expected) in [
        (
            "-p 8080:81",
            "host port 0.0.0.0:8080/tcp is already published by container web",
        ),
        (
            "-p 127.0.0.1:8079-8080:80-81",
            "host port 127.0.0.1:8080/tcp is already published by container web",
        ),
        (
            "-p 8181:80",
            "host port 0.0.0.0:8181/tcp is in use by busybox (pid ",
        ),
        ("-p 8282:80 -p 8282:81", "already published by container b"),
        (
            "--network inside -p 80",
            "publishing is refused on internal network inside",
        ),
        (
            "--network none -p 80",
            "cannot publish ports of container b: it has no network endpoint (--network none)",
        ),
        (
            "-p [::1]:8080:80",
            "cannot publish on [::1]: the container has no IPv6 address",
        ),
        ("-p 8080:80/icmp", "unknown protocol"),
        ("--expose 80", "expected HOST_PORT:CONTAINER_PORT[/PROTO]"),
    ] {
        let mut line = vec!["run", "--name", "b"];
        line.extend(args.split(' '));
        line.extend(["--", "true"]);
        let err = host.fails(&line);
        assert!(err.contains(expected), "{args}: {err:?} lacks {expected:?}");
    }
    let after = (host.ok(&["ps"]), host.host_links(), published_keys(&host));
    assert_eq!(before, after, "a refused request changed something");
    // The same port of another protocol is free.
    host.run_sleeper("dns", &["-p", "8080:53/udp"]);
}

#[test]
fn ipv6_bindings_conflict_with_ipv6_bindings_and_sockets_only() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.41.0.0/24",
        "--subnet",
        "fd00:41::/64",
        "v6net",
    ]);
    host.run_sleeper("web", &["--network", "v6net", "-p", "9000:80"]);
    let listener = host.host_netns();
    host.spawn_in(&listener, &["iperf3", "-s", "-B", "::1", "-p", "8383"]);
    assert!(
        eventually(Duration::from_secs(5), || {
            !stdout(&host.in_host(&["ss", "-Hltn", "sport = :8383"])).is_empty()
        }),
        "the test's listener did not come up"
    );
    let before = published_keys(&host);
    for (args, expected) in [
        (
            "-p [::1]:9000:80",
            "host port [::1]:9000/tcp is already published by container web",
        ),
        (
            "-p 127.0.0.1:9000:80",
            "host port 127.0.0.1:9000/tcp is already published by container web",
        ),
        (
            "-p [::]:8383:80",
            "host port [::]:8383/tcp is in use by iperf3 (pid ",
        ),
    ] {
        let mut line = vec!["run", "--name", "b", "--network", "v6net"];
        line.extend(args.split(' '));
        line.extend(["--", "true"]);
        let err = host.fails(&line);
        assert!(err.contains(expected), "{args}: {err:?} lacks {expected:?}");
    }
    assert_eq!(
        published_keys(&host),
        before,
        "a refused request changed something"
    );
    // The IPv4 side of a port held on [::1] only is free, and so is another IPv6 address's.
    host.run_sleeper("v4", &["--network", "v6net", "-p", "127.0.0.1:8383:80"]);
    host.run_sleeper("v6", &["--network", "v6net", "-p", "[2001:db8::1]:8383:80"]);
    assert_eq!(host.ok(&["port", "v6"]), "80/tcp -> [2001:db8::1]:8383\n");
    // Without a host address, both families; `port add` reports each mapping whole.
    assert_eq!(
        host.ok(&["port", "add", "v6", "7000-7001:90-91/udp"]),
        "90-91/udp -> 0.0.0.0:7000-7001\n90-91/udp -> [::]:7000-7001\n"
    );
}

#[test]
fn ports_are_added_and_removed_on_a_running_container() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("web", &[]);
    assert_eq!(
        host.ok(&["port", "add", "web", "8080:80", "127.0.0.1:9090:90/udp"]),
        "80/tcp -> 0.0.0.0:8080\n90/udp -> 127.0.0.1:9090\n"
    );
    assert_eq!(published_keys(&host).len(), 2);
    assert_eq!(
        host.fails(&["port", "add", "web", "8080:81"]),
        "Error: host port 0.0.0.0:8080/tcp is already published by container web"
    );
    assert_eq!(
        host.fails(&["port", "rm", "web", "8081:80"]),
        "Error: no published port of container web matches 8081:80"
    );
    assert_eq!(
        host.ok(&["port", "rm", "web", "80", "8080:80"]),
        "80/tcp -> 0.0.0.0:8080\n"
    );
    assert_eq!(host.ok(&["port", "web"]), "90/udp -> 127.0.0.1:9090\n");
    assert_eq!(published_keys(&host).len(), 1);
    // A range is reported whole, one line (`port` itself lists it port by port, as Docker).
    assert_eq!(
        host.ok(&["port", "add", "web", "7000-7009:7100-7109/udp"]),
        "7100-7109/udp -> 0.0.0.0:7000-7009\n"
    );
    assert_eq!(host.ok(&["port", "web"]).lines().count(), 11);
    assert_eq!(
        host.ok(&["port", "rm", "web", "7100-7109/udp"]),
        "7100-7109/udp -> 0.0.0.0:7000-7009\n"
    );
    host.ok(&["port", "rm", "web", "127.0.0.1:9090:90/udp"]);
    assert_eq!(host.ok(&["port", "web"]), "");
    assert!(published_keys(&host).is_empty());
    assert!(
        host.fails(&["port", "add", "ghost", "80"])
            .contains("No such container: ghost")
    );
    host.ok(&[
        "run",
        "--name",
        "h",
        "--network",
        "host",
        "-d",
        "--",
        "sleep",
        "600",
    ]);
    assert!(
        host.fails(&["port", "add", "h", "80"])
            .contains("uses the host network")
    );
}

#[test]
fn mappings_go_with_their_container_and_their_endpoint() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "n1"]);
    host.run_sleeper("a", &["-p", "8080:80"]);
    host.ok(&["rm", "-f", "a"]);
    assert!(published_keys(&host).is_empty());
    // The port is free again.
    host.run_sleeper("b", &["--network", "n1", "-p", "8080:80"]);
    // Connecting another network keeps them; disconnecting the one they lead to drops them.
    host.ok(&["network", "connect", "bridge", "b"]);
    host.ok(&["network", "disconnect", "bridge", "b"]);
    assert_eq!(host.ok(&["port", "b"]), "80/tcp -> 0.0.0.0:8080\n");
    host.ok(&["network", "disconnect", "n1", "b"]);
    assert_eq!(host.ok(&["port", "b"]), "");
    assert!(published_keys(&host).is_empty());
}

#[test]
fn mappings_survive_a_daemon_restart_and_stale_ones_are_removed() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.run_sleeper("web", &["-p", "8080:80", "-p", "80"]);
    let listed = host.ok(&["port", "web"]);
    let keys = published_keys(&host);
    assert_eq!(keys.len(), 2);
    host.stop_daemon();
    // The trie outlives the daemon; give it a key no mapping makes.
    assert_eq!(
        published_keys(&host),
        keys,
        "the daemon's stop removed mappings"
    );
    let mut trie = published_trie(&host);
    let stale = Key::new(
        xnet_common::PUBLISH_PREFIX_FIXED_BITS + 16,
        PublishKeyV4 {
            proto: 6,
            addr: [0; 4],
            port: 9999u16.to_be_bytes(),
            _pad: 0,
        },
    );
    let value = PublishedV4 {
        ifindex: 1,
        container_ip: [10, 0, 0, 1],
        host_port_first: 9999,
        container_port_first: 80,
    };
    trie.insert(&stale, value, 0).unwrap();
    host.start_daemon();
    assert_eq!(host.ok(&["port", "web"]), listed);
    assert_eq!(published_keys(&host), keys);
    // What is published is still taken.
    assert!(
        host.fails(&["run", "--name", "b", "-p", "8080:80", "--", "true"])
            .contains("already published by container web")
    );
}

#[test]
fn a_large_range_is_published() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("big", &["-p", "10000-19999:10000-19999"]);
    let listed = host.ok(&["port", "big"]);
    let listed = lines(&listed);
    assert_eq!(listed.len(), 10000);
    assert_eq!(listed[0], "10000/tcp -> 0.0.0.0:10000");
    assert_eq!(listed[9999], "19999/tcp -> 0.0.0.0:19999");
    // A few prefixes, not one key per port.
    assert!(published_keys(&host).len() <= 30);
}

#[test]
fn published_host_ports_are_kept_from_the_hosts_own_sockets() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::without_daemon();
    let reserved = |host: &Host| {
        let out = host.in_host(&["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"]);
        stdout(&out).trim().to_string()
    };
    // Reserved by the admin before xnet ran: stays, whatever xnet publishes and withdraws.
    host.in_host(&[
        "sh",
        "-c",
        "echo 50000 > /proc/sys/net/ipv4/ip_local_reserved_ports",
    ]);
    host.start_daemon();
    host.run_sleeper("web", &["-p", "8080:80", "-p", "40000-40002:80-82/udp"]);
    // The kernel never hands these to a socket of the host as its ephemeral port, whose UDP
    // replies would then be taken for the container's.
    assert_eq!(reserved(&host), "8080,40000-40002,50000");
    host.ok(&["port", "rm", "web", "80-82/udp"]);
    assert_eq!(reserved(&host), "8080,50000");
    host.stop_daemon();
    host.start_daemon();
    assert_eq!(
        reserved(&host),
        "8080,50000",
        "a restart changed the reservations"
    );
    host.ok(&["rm", "-f", "web"]);
    assert_eq!(reserved(&host), "50000");
}
