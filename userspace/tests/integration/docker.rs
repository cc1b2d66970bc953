//! xnetd as a Docker network plugin, driven through the docker CLI as Docker users drive it:
//! a private, real Docker engine (xnet-dockerlab) in each test host's namespace, containers of
//! a busybox image built from scratch, and xnet's datapath carrying their traffic. Skipped,
//! with a message, where no Docker engine is installed.

use std::time::Duration;

use serde_json::Value;

use crate::common::{DockerOptions, Host, eventually, succeeded};

/// A host whose engine has no networking of its own (xnet's plugin only).
fn docker_host(uplink: bool) -> Option<Host> {
    Host::with_docker(uplink, DockerOptions::default())
}

/// `docker network create -d <xnet's plugin> ARGS NAME`.
fn create_network(host: &Host, name: &str, args: &[&str]) {
    let plugin = host.plugin();
    let mut all = vec!["network", "create", "-d", &plugin];
    all.extend_from_slice(args);
    all.push(name);
    host.docker(&all);
}

/// `docker run -d --name NAME ARGS IMAGE sleep 600`.
fn run_sleeper(host: &mut Host, name: &str, args: &[&str]) {
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
    let Some(mut host) = docker_host(false) else {
        return;
    };
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
