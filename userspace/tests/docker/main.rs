//! xnetd as a Docker network plugin, driven through the docker CLI as Docker users drive it:
//! a private, real Docker engine (xnet-dockerlab) in each test host's namespace, containers of
//! a busybox image built from scratch, and xnet's datapath carrying their traffic. Needs root
//! and a Docker engine: each test skips (`skipped: needs …`) without them.

#[path = "../integration/common.rs"]
#[allow(
    dead_code,
    reason = "the integration tests' host, all of which they use; these tests use part of it"
)]
mod common;
mod host;

use std::time::Duration;

use serde_json::Value;
use xnet_dockerlab::{Options as DockerOptions, skip};

use crate::{
    common::{Host, eventually, succeeded},
    host::DockerHost,
};

/// A host whose engine has no networking of its own (xnet's plugin only).
fn docker_host(uplink: bool) -> DockerHost {
    DockerHost::start(uplink, DockerOptions::default())
}

/// `docker network create -d <xnet's plugin> ARGS NAME`.
fn create_network(host: &DockerHost, name: &str, args: &[&str]) {
    let plugin = host.plugin();
    let mut all = vec!["network", "create", "-d", &plugin];
    all.extend_from_slice(args);
    all.push(name);
    host.docker(&all);
}

/// `docker run -d --name NAME ARGS IMAGE sleep 600`.
fn run_sleeper(host: &mut DockerHost, name: &str, args: &[&str]) {
    let image = host.engine().busybox_image().unwrap();
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&[image, "sleep", "600"]);
    host.docker(&all);
}

/// `xnet ps` / `xnet network ls` as JSON (one object per line).
fn listed(host: &Host, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    host.ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Names in `xnet ps` (`Names`) or `xnet network ls` (`Name`), once Docker's API has told
/// xnetd what they are (it asks after the call that made them).
fn names_become(host: &Host, args: &[&str], key: &str, want: &[&str]) -> bool {
    eventually(Duration::from_secs(10), || {
        let mut names: Vec<String> = listed(host, args)
            .iter()
            .filter_map(|v| v[key].as_str().map(str::to_string))
            .collect();
        names.sort();
        names == want
    })
}

/// The IPv4 subnet of Docker's network `name`, as Docker shows it.
fn docker_subnet(host: &DockerHost, name: &str) -> String {
    host.docker(&[
        "network",
        "inspect",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}}",
        name,
    ])
}

/// What `xnet inspect` says of container `name`'s endpoint on `network`.
fn endpoint(host: &Host, name: &str, network: &str) -> Value {
    host.inspect(name)["NetworkSettings"]["Networks"][network].clone()
}

/// Host-side veths of xnet's endpoints (`xv…`) and container ends not handed over (`xp…`).
fn xnet_links(host: &Host) -> Vec<String> {
    host.host_links()
        .into_iter()
        .filter(|l| l.starts_with("xv") || l.starts_with("xp"))
        .collect()
}

#[test]
fn docker_networks_connect_their_containers_and_isolate_them() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(false);
    create_network(&host, "n1", &["--subnet", "10.231.1.0/24"]);
    create_network(&host, "n2", &["--subnet", "10.231.2.0/24"]);
    run_sleeper(&mut host, "a1", &["--network", "n1"]);
    run_sleeper(&mut host, "b1", &["--network", "n1"]);
    run_sleeper(&mut host, "c2", &["--network", "n2"]);

    assert!(
        names_become(
            &host,
            &["network", "ls"],
            "Name",
            &["bridge", "host", "n1", "n2", "none"]
        ),
        "{:?}",
        listed(&host, &["network", "ls"])
    );
    let plugin = host.plugin();
    let n1: Value = serde_json::from_str(&host.ok(&["network", "inspect", "n1"])).unwrap();
    let n1 = &n1[0];
    assert_eq!(n1["Driver"], plugin.as_str(), "{n1}");
    assert_eq!(n1["IPAM"]["Config"][0]["Subnet"], "10.231.1.0/24", "{n1}");
    assert_eq!(n1["IPAM"]["Config"][0]["Gateway"], "10.231.1.1", "{n1}");
    assert!(
        names_become(&host, &["ps"], "Names", &["a1", "b1", "c2"]),
        "{:?}",
        listed(&host, &["ps"])
    );
    // xnet enforces the addresses and MACs Docker reports.
    for name in ["a1", "b1", "c2"] {
        let ours = endpoint(&host, name, if name == "c2" { "n2" } else { "n1" });
        let net = if name == "c2" { "n2" } else { "n1" };
        let format = format!("{{{{json .NetworkSettings.Networks.{net}}}}}");
        let docker: Value =
            serde_json::from_str(&host.docker(&["inspect", "--format", &format, name])).unwrap();
        assert_eq!(ours["IPAddress"], docker["IPAddress"], "{name}");
        assert_eq!(ours["MacAddress"], docker["MacAddress"], "{name}");
        assert_eq!(ours["EndpointID"], docker["EndpointID"], "{name}");
    }
    let a1 = host.docker_netns("a1");
    let b1_ip = host.docker(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.Networks.n1.IPAddress}}",
        "b1",
    ]);
    let c2_ip = host.docker(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.Networks.n2.IPAddress}}",
        "c2",
    ]);
    assert!(host.reaches(&a1, &b1_ip), "a1 -> b1 on n1");
    assert!(host.reaches(&a1, "10.231.1.1"), "a1 -> its gateway");
    assert!(
        succeeded(&host.docker_output(&["exec", "a1", "ping", "-c", "1", "-W", "2", &b1_ip])),
        "docker exec a1 ping b1"
    );
    // Docker's embedded DNS (in the container's namespace) names the peers.
    assert!(
        succeeded(&host.docker_output(&["exec", "a1", "ping", "-c", "1", "-W", "2", "b1"])),
        "docker exec a1 ping b1 (by name)"
    );
    assert!(host.cannot_reach(&a1, &c2_ip), "a1 on n1 reached c2 on n2");
    let a1_ip = host.docker(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.Networks.n1.IPAddress}}",
        "a1",
    ]);
    assert!(host.reaches(&host.host_netns(), &a1_ip), "the host -> a1");

    host.docker(&["rm", "-f", "a1", "b1", "c2"]);
    host.docker(&["network", "rm", "n1", "n2"]);
    assert!(
        listed(&host, &["ps"]).is_empty(),
        "{:?}",
        listed(&host, &["ps"])
    );
    assert!(names_become(
        &host,
        &["network", "ls"],
        "Name",
        &["bridge", "host", "none"]
    ));
    assert!(xnet_links(&host).is_empty(), "{:?}", xnet_links(&host));
    assert!(
        host.endpoint_link_pins().is_empty(),
        "{:?}",
        host.endpoint_link_pins()
    );
}

/// `docker run -d --name NAME ARGS` of a web server answering `hi` on ports 80 and 81.
fn run_web(host: &mut DockerHost, name: &str, args: &[&str]) {
    let image = host.engine().busybox_image().unwrap();
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        image,
        "sh",
        "-c",
        "mkdir /www && echo hi > /www/index.html && httpd -p 81 -h /www && exec httpd -f -p 80 -h /www",
    ]);
    host.docker(&all);
}

/// Whether `url` answers `hi` to curl in the namespace at `from`, retrying for a few seconds.
fn serves(host: &Host, from: &str, url: &str) -> bool {
    eventually(Duration::from_secs(8), || {
        let out = host.in_container(from, &["curl", "-s", "--max-time", "2", url]);
        succeeded(&out) && String::from_utf8_lossy(&out.stdout).trim() == "hi"
    })
}

/// The address Docker gave container `name` on `network`.
fn docker_ip(host: &DockerHost, name: &str, network: &str) -> String {
    let format = format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}");
    host.docker(&["inspect", "--format", &format, name])
}

#[test]
fn docker_options_icc_internal_and_egress_hold() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(true);
    create_network(&host, "open", &["--subnet", "10.231.3.0/24"]);
    create_network(
        &host,
        "noicc",
        &[
            "--subnet",
            "10.231.4.0/24",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
        ],
    );
    create_network(&host, "inner", &["--internal", "--subnet", "10.231.5.0/24"]);
    run_sleeper(&mut host, "out1", &["--network", "open"]);
    run_sleeper(&mut host, "lone1", &["--network", "noicc"]);
    run_sleeper(&mut host, "lone2", &["--network", "noicc"]);
    run_sleeper(&mut host, "in1", &["--network", "inner"]);
    run_sleeper(&mut host, "in2", &["--network", "inner"]);

    // Egress: to the outside, source-NATed to the uplink's address.
    let out1 = host.docker_netns("out1");
    assert!(host.reaches(&out1, "10.201.0.1"), "out1 -> the outside");
    // icc=false: no peer, but the gateway (and so the host's services) answers.
    let lone1 = host.docker_netns("lone1");
    assert!(host.reaches(&lone1, "10.231.4.1"), "lone1 -> its gateway");
    assert!(
        host.cannot_reach(&lone1, &docker_ip(&host, "lone2", "noicc")),
        "icc=false let lone1 reach lone2"
    );
    // --internal: peers and gateway, no way out, and no default route to try one.
    let in1 = host.docker_netns("in1");
    assert!(
        host.reaches(&in1, &docker_ip(&host, "in2", "inner")),
        "in1 -> in2"
    );
    assert!(host.reaches(&in1, "10.231.5.1"), "in1 -> its gateway");
    let routes = host.docker(&["exec", "in1", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(
        host.cannot_reach(&in1, "10.201.0.1"),
        "internal reached the outside"
    );
    let inner: Value = serde_json::from_str(&host.ok(&["network", "inspect", "inner"])).unwrap();
    assert_eq!(inner[0]["Internal"], true, "{inner}");
}

#[test]
fn docker_published_ports_reach_the_container_and_conflicts_are_refused() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(true);
    let image = host.engine().busybox_image().unwrap();
    create_network(&host, "web", &["--subnet", "10.231.6.0/24"]);
    let publish = ["-p", "18080:80", "-p", "18100-18110:81", "-p", "82"];
    run_web(
        &mut host,
        "site",
        &[&["--network", "web"][..], &publish].concat(),
    );
    let fetch = |from: &str, url: &str| assert!(serves(&host, from, url), "GET {url} from {from}");
    // From another host through the uplink (XDP DNAT), and from the host itself.
    assert!(names_become(&host, &["ps"], "Names", &["site"]));
    fetch(&host.host_netns(), "http://127.0.0.1:18080/");
    fetch(&host.outside(), "http://10.200.0.1:18080/");
    let ports = host.ok(&["port", "site"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:18080"), "{ports}");
    assert!(ports.contains("81/tcp -> 0.0.0.0:18100"), "{ports}");
    assert!(
        ports.lines().any(|l| l.starts_with("82/tcp -> 0.0.0.0:")),
        "{ports}"
    );
    fetch(&host.outside(), "http://10.200.0.1:18100/");

    // A second container on the same host port: refused with xnet's reason, and rolled back.
    let out = host.docker_output(&[
        "run",
        "-d",
        "--name",
        "copycat",
        "--network",
        "web",
        "-p",
        "18080:80",
        image,
        "sleep",
        "600",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a second binding of 18080 was accepted"
    );
    assert!(
        stderr.contains("driver failed programming external connectivity")
            && stderr.contains("18080")
            && stderr.contains("site"),
        "{stderr}"
    );
    assert_eq!(
        host.docker(&["inspect", "--format", "{{.State.Status}}", "copycat"]),
        "created"
    );
    assert!(
        eventually(Duration::from_secs(10), || host.ok(&["ps"]).lines().count()
            == 2),
        "the refused container kept an endpoint: {}",
        host.ok(&["ps"])
    );
    // xnet's own commands leave Docker's objects to Docker.
    assert!(
        host.fails(&["rm", "-f", "site"])
            .contains("managed by Docker")
    );
    assert!(
        host.fails(&["port", "add", "site", "9999:80"])
            .contains("managed by Docker")
    );
    assert!(
        host.fails(&["network", "rm", "web"])
            .contains("managed by Docker")
    );
    assert!(
        host.fails(&["run", "--network", "web", "--name", "x1", "--", "true"])
            .contains("managed by Docker")
    );

    // Stopping the container withdraws its ports.
    host.docker(&["rm", "-f", "site"]);
    assert!(
        !succeeded(&host.in_container(
            &host.outside(),
            &["curl", "-s", "--max-time", "2", "http://10.200.0.1:18080/"]
        )),
        "a removed container's port still answers"
    );
}

#[test]
fn docker_subnets_that_overlap_are_refused_with_a_clear_error() {
    if skip::unless_docker() {
        return;
    }
    let host = docker_host(false);
    host.ok(&["network", "create", "--subnet", "10.231.9.0/24", "mine"]);
    let plugin = host.plugin();
    let out = host.docker_output(&[
        "network",
        "create",
        "-d",
        &plugin,
        "--subnet",
        "10.231.9.0/25",
        "theirs",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an overlapping subnet was accepted");
    assert!(stderr.contains("overlaps with network mine"), "{stderr}");
    // Docker's own choice without --subnet (172.17.0.0/16 first) is free: xnet's own networks
    // keep out of Docker's pools while it serves a Docker engine (issue #12).
    create_network(&host, "auto", &[]);
    assert_eq!(docker_subnet(&host, "auto"), "172.17.0.0/16");
    host.docker(&["network", "rm", "auto"]);
    let networks = host.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains("theirs"), "{networks}");
    assert!(names_become(
        &host,
        &["network", "ls"],
        "Name",
        &["bridge", "host", "mine", "none"]
    ));
}

#[test]
fn docker_network_connect_and_disconnect_add_and_remove_endpoints() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(false);
    create_network(&host, "front", &["--subnet", "10.231.7.0/24"]);
    create_network(&host, "back", &["--subnet", "10.231.8.0/24"]);
    run_web(&mut host, "app", &["--network", "front", "-p", "18200:80"]);
    let published = |host: &Host| serves(host, &host.host_netns(), "http://127.0.0.1:18200/");
    assert!(published(&host), "app's published port");
    run_sleeper(&mut host, "db", &["--network", "back"]);
    let app = host.docker_netns("app");
    let db_ip = docker_ip(&host, "db", "back");
    assert!(
        host.cannot_reach(&app, &db_ip),
        "app reached db across networks"
    );

    host.docker(&["network", "connect", "back", "app"]);
    assert!(names_become(&host, &["ps"], "Names", &["app", "db"]));
    assert_eq!(
        endpoint(&host, "app", "back")["IPAddress"],
        docker_ip(&host, "app", "back").as_str()
    );
    assert!(host.reaches(&app, &db_ip), "app -> db after connect");
    let links = host.docker(&["exec", "app", "ip", "-o", "link"]);
    assert!(links.contains("eth1"), "{links}");
    // Docker may make the new endpoint the gateway one: the ports follow it.
    assert!(published(&host), "app's published port after connect");

    host.docker(&["network", "disconnect", "back", "app"]);
    assert!(
        host.cannot_reach(&app, &db_ip),
        "app reached db after disconnect"
    );
    assert!(endpoint(&host, "app", "back").is_null());
    assert_eq!(xnet_links(&host).len(), 2, "{:?}", xnet_links(&host));
    assert!(
        host.reaches(&app, "10.231.7.1"),
        "app's first network still works"
    );
    assert!(published(&host), "app's published port after disconnect");
}

/// Network `n1` on `subnet` with sleepers `a1` and `b1` (`args` for both), named in xnet.
fn a1_and_b1_on_n1(host: &mut DockerHost, subnet: &str, args: &[&str]) {
    create_network(host, "n1", &["--subnet", subnet]);
    for name in ["a1", "b1"] {
        run_sleeper(host, name, &[&["--network", "n1"][..], args].concat());
    }
    assert!(names_become(host, &["ps"], "Names", &["a1", "b1"]));
}

#[test]
fn docker_containers_keep_working_across_an_xnetd_restart() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(false);
    a1_and_b1_on_n1(&mut host, "10.231.10.0/24", &[]);
    let before = listed(&host, &["ps"]);
    let a1 = host.docker_netns("a1");
    let b1_ip = docker_ip(&host, "b1", "n1");

    host.stop_daemon();
    assert!(host.reaches(&a1, &b1_ip), "the datapath stopped with xnetd");
    host.start_daemon();
    assert_eq!(listed(&host, &["ps"]), before);
    assert!(host.reaches(&a1, &b1_ip), "a1 -> b1 after the restart");
    // Docker's calls work again: a new container joins, an old one leaves.
    run_sleeper(&mut host, "c1", &["--network", "n1"]);
    assert!(host.reaches(&a1, &docker_ip(&host, "c1", "n1")), "a1 -> c1");
    host.docker(&["rm", "-f", "b1"]);
    assert!(names_become(&host, &["ps"], "Names", &["a1", "c1"]));
    assert_eq!(xnet_links(&host).len(), 2, "{:?}", xnet_links(&host));
}

#[test]
fn docker_live_restore_keeps_traffic_and_state_across_a_dockerd_restart() {
    if skip::unless_docker() {
        return;
    }
    let options = DockerOptions {
        live_restore: true,
        ..DockerOptions::default()
    };
    let mut host = DockerHost::start(false, options);
    a1_and_b1_on_n1(&mut host, "10.231.11.0/24", &[]);
    let before = listed(&host, &["ps"]);
    let a1 = host.docker_netns("a1");
    let b1_ip = docker_ip(&host, "b1", "n1");

    host.engine().stop().unwrap();
    assert!(host.reaches(&a1, &b1_ip), "a1 -> b1 while dockerd is down");
    host.engine().restart().unwrap();
    assert!(
        host.reaches(&a1, &b1_ip),
        "a1 -> b1 after dockerd's restart"
    );
    assert_eq!(
        listed(&host, &["ps"]),
        before,
        "live restore changed xnet's state"
    );
    host.docker(&["rm", "-f", "a1", "b1"]);
    assert!(listed(&host, &["ps"]).is_empty());
    assert!(xnet_links(&host).is_empty(), "{:?}", xnet_links(&host));
}

#[test]
fn docker_restart_policy_containers_rejoin_after_a_dockerd_restart() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(false);
    a1_and_b1_on_n1(&mut host, "10.231.12.0/24", &["--restart", "always"]);

    // Without live restore dockerd stops its containers (they leave), then starts them again
    // (new endpoints join).
    host.engine().stop().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || listed(&host, &["ps"])
            .is_empty()),
        "stopped containers kept their endpoints: {:?}",
        listed(&host, &["ps"])
    );
    host.engine().restart().unwrap();
    assert!(
        names_become(&host, &["ps"], "Names", &["a1", "b1"]),
        "{:?}",
        listed(&host, &["ps"])
    );
    for name in ["a1", "b1"] {
        let docker = host.docker(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.Networks.n1.EndpointID}}",
            name,
        ]);
        assert_eq!(
            endpoint(&host, name, "n1")["EndpointID"],
            docker.as_str(),
            "{name}"
        );
    }
    let a1 = host.docker_netns("a1");
    assert!(
        host.reaches(&a1, &docker_ip(&host, "b1", "n1")),
        "a1 -> b1 after the restart"
    );
    assert_eq!(xnet_links(&host).len(), 2, "{:?}", xnet_links(&host));
}

#[test]
fn xnets_ipam_gives_docker_free_subnets_and_the_lowest_free_addresses() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(false);
    let plugin = host.plugin();
    let ipam: &[&str] = &["--ipam-driver", &plugin];
    // No docker0 here, and xnet's own bridge keeps out of Docker's pools: xnet's IPAM hands
    // out Docker's first pools, skipping what is taken (the test's own network).
    host.ok(&["network", "create", "--subnet", "172.18.0.0/24", "mine"]);
    create_network(&host, "auto1", ipam);
    create_network(&host, "auto2", ipam);
    assert_eq!(docker_subnet(&host, "auto1"), "172.17.0.0/16");
    assert_eq!(docker_subnet(&host, "auto2"), "172.19.0.0/16");
    let fixed = [ipam, &["--subnet", "10.231.13.0/24"]].concat();
    create_network(&host, "fixed", &fixed);
    run_sleeper(
        &mut host,
        "pinned",
        &["--network", "fixed", "--ip", "10.231.13.50"],
    );
    run_sleeper(&mut host, "first", &["--network", "fixed"]);
    assert_eq!(docker_ip(&host, "pinned", "fixed"), "10.231.13.50");
    assert_eq!(docker_ip(&host, "first", "fixed"), "10.231.13.2");
    // (Docker shows only a user-given gateway; xnet shows the one in use.)
    assert!(names_become(
        &host,
        &["network", "ls"],
        "Name",
        &["auto1", "auto2", "bridge", "fixed", "host", "mine", "none"]
    ));
    let net: Value = serde_json::from_str(&host.ok(&["network", "inspect", "fixed"])).unwrap();
    assert_eq!(
        net[0]["IPAM"]["Config"][0]["Gateway"], "10.231.13.1",
        "{net}"
    );
    assert!(host.reaches(&host.docker_netns("first"), "10.231.13.50"));
    // A released address is the lowest free one again.
    host.docker(&["rm", "-f", "first"]);
    run_sleeper(&mut host, "second", &["--network", "fixed"]);
    assert_eq!(docker_ip(&host, "second", "fixed"), "10.231.13.2");
    // Overlaps are refused by the IPAM already.
    let overlapping = [ipam, &["--subnet", "10.231.13.0/25"]].concat();
    let mut args = vec!["network", "create", "-d", &plugin];
    args.extend_from_slice(&overlapping);
    args.push("clash");
    let out = host.docker_output(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("overlaps"),
        "{stderr}"
    );

    host.docker(&["rm", "-f", "pinned", "second"]);
    host.docker(&["network", "rm", "auto1", "auto2", "fixed"]);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(host.dir.join("state/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["docker_pools4"], serde_json::json!({}), "{state}");
    assert_eq!(state["docker_endpoints"], serde_json::json!({}), "{state}");
}

/// Slow (about a minute): Docker retries each call to a plugin that does not answer for 30 s
/// before it gives up and goes on without it.
#[test]
fn docker_objects_removed_while_xnetd_is_down_are_forgotten_at_its_start() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(false);
    create_network(&host, "n1", &["--subnet", "10.231.14.0/24"]);
    create_network(&host, "n2", &["--subnet", "10.231.15.0/24"]);
    run_sleeper(&mut host, "stays", &["--network", "n1"]);
    run_sleeper(&mut host, "goes", &["--network", "n1"]);
    assert!(names_become(&host, &["ps"], "Names", &["goes", "stays"]));
    assert!(names_become(
        &host,
        &["network", "ls"],
        "Name",
        &["bridge", "host", "n1", "n2", "none"]
    ));

    host.stop_daemon();
    // Docker's Leave, DeleteEndpoint and DeleteNetwork fail (after their retries); it removes
    // the container (and its sandbox) and the network anyway.
    std::thread::scope(|s| {
        s.spawn(|| host.docker(&["rm", "-f", "goes"]));
        s.spawn(|| host.docker(&["network", "rm", "n2"]));
    });
    host.start_daemon();
    assert!(names_become(&host, &["ps"], "Names", &["stays"]));
    assert!(
        names_become(
            &host,
            &["network", "ls"],
            "Name",
            &["bridge", "host", "n1", "none"]
        ),
        "{:?}",
        listed(&host, &["network", "ls"])
    );
    assert_eq!(xnet_links(&host).len(), 1, "{:?}", xnet_links(&host));
    assert_eq!(
        host.endpoint_link_pins().len(),
        2,
        "{:?}",
        host.endpoint_link_pins()
    );
    // Its address is free again for Docker's next container.
    run_sleeper(&mut host, "next", &["--network", "n1"]);
    let stays = host.docker_netns("stays");
    assert!(host.reaches(&stays, &docker_ip(&host, "next", "n1")));
}

#[test]
fn docker_dual_stack_networks_carry_ipv6_between_containers() {
    if skip::unless_docker() {
        return;
    }
    let mut host = docker_host(false);
    create_network(
        &host,
        "dual",
        &[
            "--ipv6",
            "--subnet",
            "10.231.16.0/24",
            "--subnet",
            "fd00:231:16::/64",
        ],
    );
    run_sleeper(&mut host, "v6a", &["--network", "dual"]);
    run_sleeper(&mut host, "v6b", &["--network", "dual"]);
    let format = "{{.NetworkSettings.Networks.dual.GlobalIPv6Address}}";
    let b = host.docker(&["inspect", "--format", format, "v6b"]);
    assert!(b.starts_with("fd00:231:16::"), "{b}");
    assert!(names_become(&host, &["ps"], "Names", &["v6a", "v6b"]));
    assert_eq!(
        endpoint(&host, "v6b", "dual")["GlobalIPv6Address"],
        b.as_str()
    );
    let a = host.docker_netns("v6a");
    assert!(host.reaches(&a, &b), "v6a -> v6b over IPv6");
    assert!(
        host.reaches(&a, "fd00:231:16::1"),
        "v6a -> its IPv6 gateway"
    );
}

#[test]
fn a_docker_users_first_network_needs_no_subnet_beside_docker0() {
    // As on a host whose Docker engine owns docker0 (172.17.0.0/16): Docker's default IPAM
    // hands out 172.18.0.0/16 next, which xnet's own `bridge` took before issue #12.
    if skip::unless_docker() {
        return;
    }
    let options = DockerOptions {
        docker_networking: true,
        ..DockerOptions::default()
    };
    let mut host = DockerHost::start(false, options);
    let bridge = host.ok(&["network", "inspect", "bridge"]);
    let bridge: Value = serde_json::from_str(&bridge).unwrap();
    assert_eq!(
        bridge[0]["IPAM"]["Config"][0]["Subnet"], "10.192.0.0/16",
        "xnet's own bridge keeps out of Docker's pools: {bridge}"
    );
    let plugin = host.plugin();
    host.docker(&["network", "create", "-d", &plugin, "web"]);
    assert_eq!(docker_subnet(&host, "web"), "172.18.0.0/16");
    run_sleeper(&mut host, "web1", &["--network", "web"]);
    run_sleeper(&mut host, "web2", &["--network", "web"]);
    let web1 = host.docker_netns("web1");
    assert!(
        host.reaches(&web1, &docker_ip(&host, "web2", "web")),
        "web1 -> web2"
    );
}
