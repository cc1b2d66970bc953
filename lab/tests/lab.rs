//! Labs brought up for real: the underlay carries traffic between hosts and to the outside,
//! every xnetd answers and they share one cluster, etcd is healthy (and stays so with a
//! member down), a lab left running is found from its record and taken down, and nothing is
//! left behind. Need root.
//!
//! The binaries are the workspace's xnetd and xnet of this test's profile, which `cargo xtask
//! test integration` builds in the same run (xnet's own integration tests need them).

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use xnet_dockerlab::skip;
use xnet_lab::{Lab, Spec, eventually};

/// `target/<profile>`: the test runs as `target/<profile>/deps/lab-<hash>`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn spec(hosts: usize, etcd_members: usize) -> Spec {
    Spec {
        hosts,
        etcd_members,
        ..Spec::for_test(bin_dir())
    }
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of the lab is left: namespaces, pins, its directory.
fn assert_gone(prefix: &str, dir: &Path, pins: &[PathBuf]) {
    let netns = ok(std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap());
    let left: Vec<&str> = netns
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(!dir.exists(), "{} left", dir.display());
    for pin in pins {
        assert!(!pin.exists(), "{} left", pin.display());
    }
}

struct DownOnDrop<'a>(&'a str);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        if let Ok(Some(lab)) = Lab::load(self.0) {
            let _ = lab.down();
        }
    }
}

#[test]
fn two_hosts_share_an_underlay_and_their_xnetds_answer() {
    if skip::unless_root() {
        return;
    }
    let lab = Lab::up(spec(2, 1)).unwrap();
    let (h1, h2) = (&lab.hosts()[0], &lab.hosts()[1]);
    assert_eq!((h1.name.as_str(), h2.name.as_str()), ("h1", "h2"));

    // Each way across the switch, over IPv4 and IPv6, and out through the router.
    for (from, to) in [
        ("h1", h2.address.to_string()),
        ("h2", h1.address.to_string()),
        ("h1", h2.address6.to_string()),
        ("h2", lab.router().outside.to_string()),
    ] {
        ok(lab.run(from, &["ping", "-c", "1", "-W", "2", &to]).unwrap());
    }
    // The switch forwards frames without the IP hooks br_netfilter would run them through.
    if Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        let nf = ok(lab
            .run(
                "sw",
                &["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"],
            )
            .unwrap());
        assert_eq!(nf.trim(), "0");
    }
    for host in ["h1", "h2"] {
        let networks = ok(lab.xnet(host, &["network", "ls"]).unwrap());
        assert!(networks.contains("bridge"), "{host}: {networks}");
        assert!(lab.xnetd_running(host).unwrap());
    }
    assert!(lab.etcd_healthy("e1").unwrap());
    assert_eq!(lab.etcd_urls(), ["http://10.77.0.11:2379"]);
    // The xnetds share one cluster: a network of global scope made on h1 is listed on h2.
    ok(lab
        .xnet("h1", &["network", "create", "-d", "overlay", "ov"])
        .unwrap());
    assert!(
        eventually(Duration::from_secs(5), || {
            ok(lab.xnet("h2", &["network", "ls"]).unwrap()).contains("ov")
        }),
        "h2 does not list h1's overlay:\n{}",
        lab.xnetd_log("h2").unwrap()
    );

    let (prefix, dir) = (lab.prefix().to_string(), lab.dir().to_path_buf());
    let pins: Vec<PathBuf> = lab.hosts().iter().map(|h| h.bpffs.clone()).collect();
    assert!(pins.iter().all(|p| p.exists()), "each xnetd pins its maps");
    drop(lab);
    assert_gone(&prefix, &dir, &pins);
}

#[test]
fn three_etcd_members_stay_healthy_with_one_stopped() {
    if skip::unless_root() {
        return;
    }
    let mut lab = Lab::up(spec(1, 3)).unwrap();
    for member in ["e1", "e2", "e3"] {
        assert!(lab.etcd_healthy(member).unwrap(), "{member}");
    }
    lab.stop_etcd("e1").unwrap();
    assert!(!lab.etcd_running("e1").unwrap());
    assert!(!lab.etcd_healthy("e1").unwrap());
    // If e1 led, the other two elect a new leader first.
    for member in ["e2", "e3"] {
        assert!(
            eventually(Duration::from_secs(10), || lab
                .etcd_healthy(member)
                .unwrap()),
            "{member} unhealthy with two of three members up:\n{}",
            lab.etcd_log(member).unwrap()
        );
    }
    ok(lab.xnet("h1", &["network", "ls"]).unwrap());
    lab.start_etcd("e1").unwrap();
    assert!(lab.etcd_healthy("e1").unwrap());
}

#[test]
fn a_lab_left_running_is_found_by_its_record_and_taken_down() {
    if skip::unless_root() {
        return;
    }
    let spec = spec(1, 1);
    let prefix = spec.prefix.clone();
    let lab = Lab::up(spec.clone()).unwrap();
    let dir = lab.dir().to_path_buf();
    let pins = [lab.hosts()[0].bpffs.clone()];
    lab.leave_running();
    // A lab left running outlives a failed assertion: taken down by its record then.
    let _down = DownOnDrop(&prefix);

    let again = Lab::up(spec)
        .err()
        .expect("a second lab with the same prefix");
    assert!(again.to_string().contains("already up"), "{again:#}");

    // As `lab status` and `lab down` find it, from another process.
    let mut lab = Lab::load(&prefix).unwrap().expect("its record");
    let pid = lab.hosts()[0].pid().unwrap();
    assert!(lab.xnetd_running("h1").unwrap() && lab.xnetd_answers("h1").unwrap());
    // A loaded lab can drive its nodes like the one that brought it up.
    lab.kill_xnetd("h1").unwrap();
    assert!(!lab.xnetd_answers("h1").unwrap());
    lab.start_xnetd("h1").unwrap();
    assert_ne!(lab.hosts()[0].pid(), Some(pid));
    assert!(lab.xnetd_log("h1").unwrap().contains("xnet.sock"));
    drop(lab);
    let lab = Lab::load(&prefix)
        .unwrap()
        .expect("dropping a loaded lab keeps it");
    lab.down().unwrap();
    assert!(Lab::load(&prefix).unwrap().is_none());
    assert_gone(&prefix, &dir, &pins);
}
