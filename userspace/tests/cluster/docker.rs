//! Docker's side of overlays (issue #13): private Docker engines on two lab hosts, each with its
//! host's xnetd as network plugin and IPAM driver, join the cluster's overlay network through
//! a local Docker network that stands for it (`-o xnet.overlay=NAME`, Weave's pattern: Docker
//! 20.10 takes remote drivers of global scope only with its deprecated cluster store), and
//! their containers reach each other across hosts.

use std::{path::Path, time::Duration};

use xnet_dockerlab::{Engine, Options, skip};
use xnet_lab::{Lab, Spec, eventually};

use crate::{XNETD, inspect, ok};

/// The Docker plugin (and IPAM driver) name of the lab host whose namespace is `node`.
fn plugin(node: &str) -> String {
    format!("xnet-{node}")
}

/// What a lab host's engine is started with (its tag is the host's namespace, as in the
/// xnetd arguments below).
fn engine_socket(node: &str) -> String {
    let dir = std::env::temp_dir().join("xnet-dockerlab-{node}");
    format!("unix://{}/docker.sock", dir.display()).replace("{node}", node)
}

/// A lab whose hosts' engines are dropped first, so their containers leave their networks
/// through xnetd while it still answers.
struct DockerLab {
    engines: Vec<Engine>,
    lab: Lab,
}

impl DockerLab {
    fn up() -> Self {
        let bin_dir = Path::new(XNETD).parent().unwrap().to_path_buf();
        let lab = Lab::up(Spec {
            hosts: 2,
            etcd_members: 1,
            xnetd_args: vec![
                "--docker-plugin".into(),
                plugin("{node}"),
                "--docker-host".into(),
                engine_socket("{node}"),
            ],
            ..Spec::for_test(bin_dir)
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        let engines = lab
            .hosts()
            .iter()
            .map(|h| {
                Engine::start(&h.netns_path(), &h.netns, Options::default())
                    .unwrap_or_else(|e| panic!("{e:#}"))
            })
            .collect();
        Self { engines, lab }
    }

    fn docker(&self, host: usize, args: &[&str]) -> String {
        self.engines[host].run(args).unwrap_or_else(|e| {
            let name = &self.lab.hosts()[host].name;
            panic!(
                "{e:#}\n{name}'s xnetd:\n{}",
                self.lab.xnetd_log(name).unwrap_or_default()
            )
        })
    }
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        for engine in &mut self.engines {
            let _ = engine.stop();
        }
    }
}

#[test]
fn docker_containers_on_two_hosts_meet_on_the_clusters_overlay() {
    if skip::unless_root() || skip::unless_docker() {
        return;
    }
    let lab = DockerLab::up();
    ok(
        &lab.lab,
        "h1",
        &["network", "create", "-d", "overlay", "--attachable", "def"],
    );
    assert!(eventually(Duration::from_secs(5), || inspect(
        &lab.lab, "h2", "def"
    )
    .is_some()));
    for (i, host) in lab.lab.hosts().iter().enumerate() {
        let plugin = plugin(&host.netns);
        lab.docker(
            i,
            &[
                "network",
                "create",
                "-d",
                &plugin,
                "--ipam-driver",
                &plugin,
                "--ipam-opt",
                "xnet.overlay=def",
                "-o",
                "xnet.overlay=def",
                "def",
            ],
        );
    }
    let image = lab.engines[0].busybox_image().unwrap();
    lab.engines[1].busybox_image().unwrap();
    lab.docker(
        0,
        &[
            "run",
            "-d",
            "--name",
            "ca",
            "--network",
            "def",
            image,
            "sleep",
            "600",
        ],
    );
    lab.docker(
        1,
        &[
            "run",
            "-d",
            "--name",
            "cb",
            "--network",
            "def",
            image,
            "sleep",
            "600",
        ],
    );
    let ip = |host: usize, name: &str| {
        lab.docker(
            host,
            &[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.def.IPAddress}}",
                name,
            ],
        )
    };
    let (a, b) = (ip(0, "ca"), ip(1, "cb"));
    assert_ne!(a, b, "the two engines handed out one address");
    let subnet = inspect(&lab.lab, "h1", "def").unwrap()["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = subnet
        .rsplit_once('.')
        .unwrap()
        .0
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string();
    assert!(
        a.starts_with(&prefix) && b.starts_with(&prefix),
        "{a} {b} not in {subnet}"
    );
    let pings = |host: usize, from: &str, to: &str| {
        eventually(Duration::from_secs(10), || {
            lab.engines[host]
                .output(&["exec", from, "ping", "-c", "1", "-W", "1", to])
                .status
                .success()
        })
    };
    assert!(pings(0, "ca", &b), "a (h1) cannot ping b (h2)");
    assert!(pings(1, "cb", &a), "b (h2) cannot ping a (h1)");
    let peers = inspect(&lab.lab, "h1", "def").unwrap()["Peers"].to_string();
    assert!(peers.contains("h1") && peers.contains("h2"), "{peers}");

    // Docker's removals reach the cluster: b's address is free again for h1.
    lab.docker(1, &["rm", "-f", "cb"]);
    assert!(eventually(Duration::from_secs(5), || {
        !lab.engines[0]
            .output(&["exec", "ca", "ping", "-c", "1", "-W", "1", &b])
            .status
            .success()
    }));
    ok(
        &lab.lab,
        "h1",
        &[
            "run",
            "-d",
            "--name",
            "c",
            "--ip",
            &b,
            "--network",
            "def",
            "--",
            "sleep",
            "600",
        ],
    );
}
