//! The private engine starts in a namespace of the test's, runs the scratch image, and leaves
//! nothing behind (namespace, mounts, directories, processes); two of them form a swarm whose
//! overlay network joins their containers. Needs root and a Docker engine.

use std::{net::Ipv4Addr, path::Path, process::Command};

use xnet_dockerlab::{Engine, Options, skip};

#[test]
fn runs_the_busybox_image_and_cleans_up() {
    if skip::unless_docker() {
        return;
    }
    let ns = format!("xtdl{}", std::process::id());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let netns = format!("/run/netns/{ns}");
    let tag = format!("t{}", std::process::id());
    let result = std::panic::catch_unwind(|| {
        let engine = Engine::start(Path::new(&netns), &tag, Options::default()).unwrap();
        let image = engine.busybox_image().unwrap();
        let hello = engine
            .run(&["run", "--rm", "--network", "none", image, "echo", "hello"])
            .unwrap();
        assert_eq!(hello, "hello");
        engine
            .run(&["run", "-d", "--name", "sleeper", image, "sleep", "600"])
            .unwrap();
        assert!(engine.netns_of("sleeper").unwrap().exists());
        // Dropped with a running container: it must go too.
    });
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    result.unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("xdl-{tag}")),
        "mounts left:\n{mounts}"
    );
    assert!(!Path::new(&format!("/run/xdl-{tag}")).exists());
    assert!(
        !std::env::temp_dir()
            .join(format!("xnet-dockerlab-{tag}"))
            .exists()
    );
}

/// Runs `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}

#[test]
fn two_engines_form_a_swarm_whose_overlay_joins_their_containers() {
    if skip::unless_docker() {
        return;
    }
    let names = [1, 2].map(|n| format!("xtdl{}-s{n}", std::process::id()));
    for ns in &names {
        ip(&["netns", "add", ns]);
    }
    let result = std::panic::catch_unwind(|| {
        // The underlay: one veth pair between the two engines' namespaces.
        ip(&[
            "-n", &names[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", &names[1],
        ]);
        let addresses = [Ipv4Addr::new(10, 76, 0, 1), Ipv4Addr::new(10, 76, 0, 2)];
        for (ns, addr) in names.iter().zip(addresses) {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        let options = Options {
            docker_networking: true,
            live_restore: false,
        };
        let engines = [1, 2].map(|n| {
            let netns = format!("/run/netns/{}", names[n - 1]);
            // Not `t<pid>…`: the other test looks for mounts of `xdl-t<pid>`.
            let tag = format!("w{}-{n}", std::process::id());
            Engine::start(Path::new(&netns), &tag, options).unwrap()
        });
        let token = engines[0].init_swarm(addresses[0]).unwrap();
        engines[1]
            .join_swarm(&token, addresses[1], addresses[0])
            .unwrap();
        engines[0]
            .run(&[
                "network",
                "create",
                "-d",
                "overlay",
                "--attachable",
                "--subnet",
                "10.75.0.0/24",
                "ov",
            ])
            .unwrap();
        for (engine, name) in engines.iter().zip(["ov-a", "ov-b"]) {
            let image = engine.busybox_image().unwrap();
            engine
                .run(&[
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--network",
                    "ov",
                    image,
                    "sleep",
                    "600",
                ])
                .unwrap();
        }
        let b = engines[1]
            .run(&[
                "inspect",
                "--format",
                "{{.NetworkSettings.Networks.ov.IPAddress}}",
                "ov-b",
            ])
            .unwrap();
        let pinged = (0..10).any(|_| {
            let ping = [
                "exec",
                "ov-a",
                "/bin/busybox",
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                &b,
            ];
            engines[0].output(&ping).status.success()
        });
        assert!(pinged, "ov-a cannot ping ov-b ({b}) across the overlay");
        // The overlay network's sandbox (bridge, vxlan device) is pinned beside the
        // containers' namespaces.
        let sandboxes = std::fs::read_dir(engines[0].netns_dir()).unwrap();
        let names: Vec<String> = sandboxes
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("1-")), "{names:?}");
        // Dropped with running containers, the worker first: they must go too.
        let [manager, worker] = engines;
        drop(worker);
        drop(manager);
    });
    for ns in &names {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    result.unwrap();
    for n in [1, 2] {
        let tag = format!("w{}-{n}", std::process::id());
        assert!(!Path::new(&format!("/run/xdl-{tag}")).exists());
    }
}
