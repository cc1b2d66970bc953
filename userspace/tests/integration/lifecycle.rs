//! Containers and networks over their whole life: create, inspect, restart the daemon, remove,
//! and what is left behind (nothing).

use serde_json::Value;
use xnet_dockerlab::skip;

use crate::common::{Host, sh, stdout};

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_default_bridge_network_exists_from_the_first_start() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    // As in Docker: bridge, plus host and none.
    let nets = json_lines(&host.ok(&["network", "ls", "--format", "json"]));
    let names: Vec<&str> = nets.iter().map(|n| n["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bridge", "host", "none"]);
    assert_eq!(nets[0]["Driver"], "bridge");
    assert_eq!(nets[1]["Driver"], "host");
    assert_eq!(nets[2]["Driver"], "null");
    let net: Value = serde_json::from_str(&host.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(net[0]["Name"], "bridge");
    assert_eq!(net[0]["Id"].as_str().unwrap().len(), 64);
    assert_eq!(net[0]["Driver"], "bridge");
    assert_eq!(net[0]["Internal"], false);
    assert_eq!(net[0]["Attachable"], false);
    assert!(net[0]["Options"].is_object());
    assert!(net[0]["Containers"].as_object().unwrap().is_empty());
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(net[0]["IPAM"]["Config"][0]["Gateway"], "172.17.0.1");
}

#[test]
fn default_subnets_avoid_routes_the_host_already_has() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::without_daemon();
    // What a Docker engine's docker0 looks like to us: an interface owning 172.17.0.0/16.
    let ns = host.ns.clone();
    sh(&[
        "ip", "-n", &ns, "link", "add", "docker0", "type", "veth", "peer", "name", "docker0p",
    ]);
    sh(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        "172.17.0.1/16",
        "dev",
        "docker0",
    ]);
    sh(&["ip", "-n", &ns, "link", "set", "docker0", "up"]);
    sh(&[
        "ip",
        "-n",
        &ns,
        "route",
        "add",
        "172.18.5.0/24",
        "dev",
        "docker0",
    ]);
    host.start_daemon();
    let net: Value = serde_json::from_str(&host.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "172.19.0.0/16");
    host.ok(&["network", "create", "auto"]);
    let auto: Value = serde_json::from_str(&host.ok(&["network", "inspect", "auto"])).unwrap();
    assert_eq!(auto[0]["IPAM"]["Config"][0]["Subnet"], "172.20.0.0/16");
    let err = host.fails(&["network", "create", "--subnet", "172.17.128.0/24", "clash"]);
    assert!(err.contains("overlaps"), "{err}");
}

#[test]
fn inspect_and_ps_speak_dockers_json() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&[
        "network",
        "create",
        "--subnet",
        "10.70.0.0/24",
        "--gateway",
        "10.70.0.254",
        "n70",
    ]);
    host.run_sleeper("web", &["--network", "n70", "--ip", "10.70.0.10"]);
    let web = host.inspect("web");
    assert_eq!(web["Name"], "/web");
    assert_eq!(web["State"]["Running"], true);
    let sandbox = web["NetworkSettings"]["SandboxKey"].as_str().unwrap();
    assert!(std::path::Path::new(sandbox).exists());
    let ep = &web["NetworkSettings"]["Networks"]["n70"];
    assert_eq!(ep["IPAddress"], "10.70.0.10");
    assert_eq!(ep["IPPrefixLen"], 24);
    assert_eq!(ep["Gateway"], "10.70.0.254");
    assert_eq!(ep["MacAddress"], "02:42:0a:46:00:0a");
    // The container really has that address and MAC on eth0, and its default route.
    let addr = stdout(&host.in_container(sandbox, &["ip", "-o", "addr", "show", "eth0"]));
    assert!(addr.contains("10.70.0.10/24"), "{addr}");
    assert!(
        !addr.contains("inet6"),
        "IPv4-only network, yet eth0 has IPv6: {addr}"
    );
    let link = stdout(&host.in_container(sandbox, &["ip", "-o", "link", "show", "eth0"]));
    assert!(link.contains("02:42:0a:46:00:0a"), "{link}");
    let route = stdout(&host.in_container(sandbox, &["ip", "route", "show", "default"]));
    assert!(route.contains("via 10.70.0.254"), "{route}");

    let net: Value = serde_json::from_str(&host.ok(&["network", "inspect", "n70"])).unwrap();
    let members = net[0]["Containers"].as_object().unwrap();
    assert_eq!(members.len(), 1);
    let member = members.values().next().unwrap();
    assert_eq!(member["Name"], "web");
    assert_eq!(member["IPv4Address"], "10.70.0.10/24");

    let ps = json_lines(&host.ok(&["ps", "--format", "json"]));
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["Names"], "web");
    assert_eq!(ps[0]["Networks"], "n70");
    assert_eq!(ps[0]["State"], "running");
    let both: Value = serde_json::from_str(&host.ok(&["inspect", "web", "web"])).unwrap();
    assert_eq!(both.as_array().unwrap().len(), 2);
}

#[test]
fn run_in_the_foreground_returns_the_commands_exit_code_and_exec_works() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("a", &[]);
    let a_ip = host.ip_of("a");
    // Foreground run: the command sees only its own namespace (eth0 with its own address).
    let out = host.xnet(&[
        "run",
        "--name",
        "b",
        "--",
        "sh",
        "-c",
        &format!("ping -c3 -i0.2 -W2 {a_ip} >/dev/null && exit 7"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host.inspect("b")["State"]["Status"], "exited");
    let out = host.xnet(&[
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "ip -o addr show eth0; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains(&format!("{a_ip}/16")),
        "{}",
        stdout(&out)
    );
    let out = host.xnet(&["exec", "a", "--", "definitely-not-a-command"]);
    assert_eq!(out.status.code(), Some(127));
    // --rm removes the container once the command is done.
    let out = host.xnet(&["run", "--rm", "--name", "gone", "--", "true"]);
    assert!(out.status.success());
    assert!(
        host.fails(&["inspect", "gone"])
            .contains("No such container")
    );
}

#[test]
fn the_datapath_keeps_forwarding_across_a_daemon_restart() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.run_sleeper("a", &[]);
    host.run_sleeper("b", &[]);
    let (a, b_ip, a_ip) = (host.sandbox("a"), host.ip_of("b"), host.ip_of("a"));
    assert!(host.reaches(&a, &b_ip));
    let pins_before = host.endpoint_link_pins();
    assert_eq!(
        pins_before.len(),
        4,
        "ingress+egress per endpoint: {pins_before:?}"
    );

    host.stop_daemon();
    assert!(
        host.reaches(&a, &b_ip),
        "forwarding stopped with the daemon"
    );
    assert!(
        host.reaches(&host.host_netns(), &a_ip),
        "host lost the container"
    );

    host.start_daemon();
    assert!(
        host.reaches(&a, &b_ip),
        "forwarding broke after the restart"
    );
    let ps = json_lines(&host.ok(&["ps", "--format", "json"]));
    assert_eq!(ps.len(), 2, "containers forgotten: {ps:?}");
    let mut pins_after = host.endpoint_link_pins();
    pins_after.sort();
    let mut pins_before = pins_before;
    pins_before.sort();
    assert_eq!(pins_after, pins_before, "links were not adopted");
    // The adopted daemon serves as before: new containers join, old ones leave cleanly.
    host.run_sleeper("c", &[]);
    assert!(host.reaches(&host.sandbox("c"), &a_ip));
    host.ok(&["rm", "-f", "b"]);
    assert!(host.cannot_reach(&a, &b_ip));
}

#[test]
fn rm_and_failed_runs_leave_nothing_behind() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.run_sleeper("a", &[]);
    let a = host.sandbox("a");
    assert_eq!(host.host_links().len(), 1);
    // A running container is only removed with -f, as in Docker.
    let err = host.fails(&["rm", "a"]);
    assert!(err.contains("running"), "{err}");
    host.ok(&["rm", "-f", "a"]);
    assert!(
        host.host_links().is_empty(),
        "veth left: {:?}",
        host.host_links()
    );
    assert!(!std::path::Path::new(&a).exists(), "namespace left at {a}");
    assert!(host.endpoint_link_pins().is_empty(), "link pins left");
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    assert!(stats["containers"].as_array().unwrap().is_empty());

    // A run whose command cannot start is rolled back completely.
    let out = host.xnet(&["run", "--name", "broken", "--", "/no/such/binary"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        host.host_links().is_empty(),
        "veth left: {:?}",
        host.host_links()
    );
    assert!(host.container_namespaces().is_empty(), "namespace left");
    assert!(host.endpoint_link_pins().is_empty(), "link pins left");
    assert!(json_lines(&host.ok(&["ps", "--format", "json"])).is_empty());
    // The failed run released its name and address: both can be used again.
    host.run_sleeper("broken", &["--ip", "172.17.0.2"]);

    // Networks: refused while in use, removed cleanly after.
    host.ok(&["network", "create", "--subnet", "10.71.0.0/24", "n71"]);
    host.run_sleeper("m", &["--network", "n71"]);
    let err = host.fails(&["network", "rm", "n71"]);
    assert!(err.contains("active endpoints"), "{err}");
    host.ok(&["rm", "-f", "m"]);
    host.ok(&["network", "rm", "n71"]);
    let gw = stdout(&host.in_host(&["ip", "-o", "addr", "show", "lo"]));
    assert!(
        !gw.contains("10.71.0.1"),
        "gateway address left on lo: {gw}"
    );
}

#[test]
fn maps_pinned_with_an_older_layout_are_recreated_on_start() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::without_daemon();
    // What an older xnetd would have left: ENDPOINTS with its former 32-byte value.
    let maps = host.bpffs.join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    let old = aya_obj::Map::Legacy(aya_obj::maps::LegacyMap {
        def: aya_obj::maps::bpf_map_def {
            map_type: aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_HASH as u32,
            key_size: 4,
            value_size: 32,
            max_entries: 4096,
            ..Default::default()
        },
        inner_def: None,
        section_index: 0,
        section_kind: aya_obj::EbpfSectionKind::Maps,
        symbol_index: None,
        data: Vec::new(),
    });
    let pinned = aya::maps::MapData::create(old, "ENDPOINTS", None).unwrap();
    pinned.pin(maps.join("ENDPOINTS")).unwrap();
    drop(pinned);

    host.start_daemon();
    assert!(
        host.daemon_log()
            .contains("map ENDPOINTS was pinned by a version with another layout"),
        "{}",
        host.daemon_log()
    );
    host.run_sleeper("a", &[]);
    let gateway = host.inspect("a")["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(host.reaches(&host.sandbox("a"), &gateway));
}
