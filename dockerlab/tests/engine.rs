//! The private engine starts in a namespace of the test's, runs the scratch image, and leaves
//! nothing behind (namespace, mounts, directories, processes). Needs root and a Docker engine.

use std::{path::Path, process::Command};

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
